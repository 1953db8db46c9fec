"""Copy-Paste (Ghiasi et al., CVPR 2021): a random subset of a partner's instances pasted on.

Instances are an id map ``[B, H, W]`` (0 = none, id ``k`` = row ``k - 1`` of the padded
``classes`` / ``valid`` ``[B, M]``). Simple Copy-Paste: no blending, no scale jitter; the
pasted instances keep their place. Donors are the partners of `partner_indices`, so
``partner_weights`` makes the donor choice class-aware (X-Paste's repeat-factor donors).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.augment._checks import (
    _check_images,
    _check_key,
    _check_pair,
    _check_partner_weights,
    _check_scalar,
)
from jbalance._src.augment._common import _take
from jbalance._src.augment.masks import _check_masks
from jbalance._src.augment.partners import _example_keys, partner_indices
from jbalance._src.typing import Array, ArrayLike, Bool, Int, Num, PRNGKey


class Pasted(NamedTuple):
    """Copy-Paste output (`augment.copy_paste`): unpacks as ``images, instance_ids, classes,
    valid``.

    Attributes:
      images: ``[B, H, W, C]`` (one example: ``[H, W, C]``), the input dtype.
      instance_ids: ``[B, H, W]`` in the input ids' dtype: 0 = none, ``1..M`` the
        example's own instances, ``M+1..2M`` the pasted ones (id ``k`` is row ``k - 1``);
        every nonzero id names a valid row.
      classes: ``[B, 2M]``: rows ``[0, M)`` the example's classes, ``[M, 2M)`` the
        partner's, carried unchanged (also for invalid rows).
      valid: ``[B, 2M]`` bool, True for an instance with at least ``min_area`` visible
        pixels.
    """

    images: Num[" *b h w ch"]
    instance_ids: Int[" *b h w"]
    classes: Int[" *b n"]
    valid: Bool[" *b n"]


# --------------------------------------------------------------------------------------------
# Checks.


def _check_instances(images: Any, ids: Any, classes: Any, valid: Any, *, batched: bool,
                     prefix: str = "") -> int:
    """Shapes and dtypes of one instance set; returns ``M``."""
    image_name = f"{prefix}image" + ("s" if batched else "")
    ids_name = f"{prefix}instance_ids"
    _check_images(images, 4 if batched else 3, image_name)
    _check_masks(ids, images, ids_name, image_name)
    lead = 1 if batched else 0
    checks.check_rank(classes, 1 + lead, f"{prefix}classes",
                      "[batch, max_instances]" if batched else "[max_instances]")
    checks.check_integer(classes, f"{prefix}classes")
    checks.check_rank(valid, 1 + lead, f"{prefix}valid",
                      "[batch, max_instances]" if batched else "[max_instances]")
    if jnp.result_type(valid) != jnp.bool_:
        raise TypeError(f"`{prefix}valid` must be boolean (True for real instances, False for "
                        f"padding), got {jnp.result_type(valid)}.")
    if tuple(np.shape(valid)) != tuple(np.shape(classes)):
        raise ValueError(f"`{prefix}valid` must have the shape of `{prefix}classes` "
                         f"{tuple(np.shape(classes))}, got {tuple(np.shape(valid))}.")
    if batched:
        checks.check_same_batch({image_name: images, f"{prefix}classes": classes})
    m = int(np.shape(classes)[-1])
    info = jnp.iinfo(jnp.result_type(ids))
    if 2 * m > info.max:
        raise TypeError(f"`{ids_name}` has dtype {jnp.result_type(ids)}, which cannot hold the "
                        f"pasted ids up to 2 * max_instances = {2 * m}; use int32.")
    return m


def _check_id_values(ids: Any, m: int, name: str) -> None:
    """Ids in ``[0, M]``: eagerly when concrete, under `jbalance.checks.checked` when traced."""
    if checks.is_concrete(ids):
        a = np.asarray(ids).astype(np.int64)
        bad = (a < 0) | (a > m)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"`{name}` holds id {a[where]} at {where}; ids must be in [0, {m}] "
                             f"(0 = none, k = row k - 1 of the {m} instance slots).")
        return
    a = jnp.asarray(ids)
    checks.require((a >= 0) & (a <= m), f"`{name}` holds ids outside [0, {m}].")


def _check_options(paste_prob: Any, min_area: Any) -> None:
    _check_scalar(paste_prob, "paste_prob", low=0.0, high=1.0)
    _check_scalar(min_area, "min_area", low=1.0, finite=True,
                  fix="An instance needs at least one visible pixel.")


def _check_instance_weights(weights: Any, shape: tuple[int, ...], name: str) -> None:
    if weights is None:
        return
    checks.check_shape(weights, shape, name, "one non-negative weight per instance slot")
    checks.check_real(weights, name)
    checks.check_nonnegative(weights, name)


# --------------------------------------------------------------------------------------------
# The paste.


def _areas(ids: Array, length: int) -> Array:
    """Pixels of each id ``0..length-1`` in an ``[H, W]`` map (ids outside are dropped)."""
    return jnp.zeros((length,), jnp.int32).at[ids.reshape(-1)].add(1, mode="drop")


def _paste(key: PRNGKey, image: Array, ids: Array, classes: Array, valid: Array,
           p_image: Array, p_ids: Array, p_classes: Array, p_valid: Array,
           weights: Array | None, paste_prob: ArrayLike, min_area: ArrayLike) -> Pasted:
    m = classes.shape[0]
    dt = ids.dtype
    # Ids outside [0, M] count as "none" (documented): they name no slot.
    ids = jnp.where((ids >= 0) & (ids <= m), ids, jnp.zeros((), dt))
    p_ids = jnp.where((p_ids >= 0) & (p_ids <= m), p_ids, jnp.zeros((), dt))
    prob = jnp.asarray(paste_prob, jnp.float32)
    if weights is not None:
        prob = prob * jnp.asarray(weights).astype(jnp.float32)
    prob = jnp.clip(jnp.broadcast_to(prob, (m,)), 0.0, 1.0)
    min_area = jnp.asarray(min_area).astype(jnp.float32)
    p_area = _areas(p_ids, m + 1)[1:]
    # Each valid donor instance with enough pixels is kept with probability prob_k.
    keep = (p_valid & (jax.random.uniform(key, (m,), jnp.float32) < prob)
            & (p_area.astype(jnp.float32) >= min_area))
    keep0 = jnp.concatenate([jnp.zeros((1,), bool), keep])
    pasted = keep0[p_ids]  # [H, W]: pixels covered by a kept donor instance
    out_image = jnp.where(pasted[..., None], p_image, image)
    shifted = jnp.where(p_ids > 0, p_ids + jnp.asarray(m, dt), jnp.zeros((), dt))
    new_ids = jnp.where(pasted, shifted, ids)
    # Own instances lose their covered pixels; those left below min_area become invalid.
    own_area = _areas(new_ids, m + 1)[1:]
    own_valid = valid & (own_area.astype(jnp.float32) >= min_area)
    out_valid = jnp.concatenate([own_valid, keep])
    valid0 = jnp.concatenate([jnp.zeros((1,), bool), out_valid])
    # Every nonzero id names a valid row: pixels of invalid rows are labelled 0.
    new_ids = jnp.where(valid0[new_ids], new_ids, jnp.zeros((), dt))
    return Pasted(out_image, new_ids, jnp.concatenate([classes, p_classes]), out_valid)


def copy_paste_one(key: PRNGKey, image: Num[" h w ch"], instance_ids: Int[" h w"],
                   classes: Int[" m"], valid: Bool[" m"], partner_image: Num[" h w ch"],
                   partner_instance_ids: Int[" h w"], partner_classes: Int[" m"],
                   partner_valid: Bool[" m"], *,
                   partner_instance_weights: Num[" m"] | None = None,
                   paste_prob: ArrayLike = 0.5, min_area: ArrayLike = 1) -> Pasted:
    r"""Copy-Paste of one example: a random subset of a partner's instances pasted on top.

    Donor instance ``k`` (valid, with at least ``min_area`` pixels) is pasted with
    probability ``clip(paste_prob * w_k, 0, 1)`` (``w_k = 1`` without weights), one
    uniform draw per slot from ``key``. Its pixels replace the image's at the same place
    (no blending, no scale jitter) and get id ``M + k``. Own instances lose the pixels
    pasted over them; one left with fewer than ``min_area`` pixels becomes invalid, and its
    remaining pixels (still in the image) get id 0, so every nonzero id names a valid row.

    Args:
      key: PRNG key (the paste draws).
      image: ``[H, W, C]``, any numeric dtype (pixels are copied).
      instance_ids: ``[H, W]`` integer ids in ``[0, M]``: 0 = none, ``k`` = row ``k - 1``.
      classes: ``[M]`` integer class of each slot.
      valid: ``[M]`` bool, False for padding slots.
      partner_image, partner_instance_ids, partner_classes, partner_valid: the donor, with
        the same shapes and dtypes.
      partner_instance_weights: Optional ``[M]`` non-negative finite weights of the donor's
        instances (e.g. per-class repeat factors), multiplying ``paste_prob``; the product
        is clipped to ``[0, 1]``.
      paste_prob: Probability in ``[0, 1]`` that a donor instance is pasted (traceable).
      min_area: Minimum visible pixels of a valid instance, ``>= 1`` (traceable).

    Returns:
      A `Pasted` ``(image [H, W, C], instance_ids [H, W], classes [2M], valid [2M])``.

    Raises:
      ValueError, TypeError: bad ranks, shapes or dtypes (ids must be integer and hold
        ``2M``), ids outside ``[0, M]`` (eagerly; under `jit` through
        `jbalance.checks.checked`; unchecked, such ids count as 0), non-finite or negative
        weights, options out of range.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> ids = jnp.zeros((8, 8), jnp.int32).at[2:5, 2:5].set(1)
      >>> c = jnp.array([3]); v = jnp.array([True])
      >>> out = augment.copy_paste_one(jax.random.key(0), jnp.zeros((8, 8, 3)), ids, c, v,
      ...                              jnp.ones((8, 8, 3)), ids, c, v, paste_prob=1.0)
      >>> int(out.instance_ids[3, 3]), out.valid.tolist()
      (2, [False, True])

    References:
      Ghiasi et al., `Simple Copy-Paste is a Strong Data Augmentation Method for Instance
      Segmentation <https://arxiv.org/abs/2012.07177>`_, CVPR 2021.
    """
    _check_key(key)
    m = _check_instances(image, instance_ids, classes, valid, batched=False)
    mp = _check_instances(partner_image, partner_instance_ids, partner_classes, partner_valid,
                          batched=False, prefix="partner_")
    _check_pair(image, partner_image, "image", "partner_image")
    _check_pair(instance_ids, partner_instance_ids, "instance_ids", "partner_instance_ids")
    _check_pair(classes, partner_classes, "classes", "partner_classes")
    del mp
    _check_instance_weights(partner_instance_weights, (m,), "partner_instance_weights")
    _check_options(paste_prob, min_area)
    _check_id_values(instance_ids, m, "instance_ids")
    _check_id_values(partner_instance_ids, m, "partner_instance_ids")
    return _paste(key, *(jnp.asarray(a) for a in (
            image, instance_ids, classes, valid, partner_image, partner_instance_ids,
            partner_classes, partner_valid)),
                  None if partner_instance_weights is None
                  else jnp.asarray(partner_instance_weights), paste_prob, min_area)


def copy_paste(key: PRNGKey, images: Num[" b h w ch"], instance_ids: Int[" b h w"],
               classes: Int[" b m"], valid: Bool[" b m"], *,
               partner_weights: Num[" b"] | None = None,
               instance_weights: Num[" b m"] | None = None, paste_prob: ArrayLike = 0.5,
               min_area: ArrayLike = 1) -> Pasted:
    r"""Copy-Paste over a batch: each example gets a random subset of a partner's instances.

    Partners come from `partner_indices` (a permutation by default; with
    ``partner_weights``, drawn with those probabilities: give images holding rare classes
    larger weights, e.g. LVIS repeat factors, for X-Paste's class-aware donors). Keys as the
    `jbalance.augment` module docstring says (``mode="elem"``): the result equals
    ``jax.vmap(copy_paste_one)`` over ``keys, images, instance_ids, classes, valid`` and the
    same arrays at the partners (``instance_weights[p]`` as the donor weights). An example
    drawn as its own partner pastes its instances onto themselves: its image is unchanged
    and the pasted copies replace the originals.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      instance_ids: ``[B, H, W]`` integer id maps in ``[0, M]`` (0 = none, id ``k`` = row
        ``k - 1``); the dtype must hold ``2M`` (int32 is safe).
      classes: ``[B, M]`` integer classes of the instance slots.
      valid: ``[B, M]`` bool, False for padding slots.
      partner_weights: Optional ``[B]`` non-negative donor-sampling weights.
      instance_weights: Optional ``[B, M]`` non-negative finite weights of each instance
        as a donor's: instance ``k`` of the donor is pasted with probability
        ``clip(paste_prob * w_k, 0, 1)``, so rare-class instances can be preferred.
      paste_prob: Probability in ``[0, 1]`` that a donor instance is pasted (traceable;
        Ghiasi et al. paste a random subset).
      min_area: Minimum visible pixels, ``>= 1`` (traceable): occluded own instances left
        with fewer become invalid (their remaining pixels get id 0), and donor instances
        with fewer are not pasted.

    Returns:
      A `Pasted` ``(images [B, H, W, C], instance_ids [B, H, W], classes [B, 2M],
      valid [B, 2M])``: pasted instances have ids ``M+1..2M`` and rows ``[M, 2M)``.
      `jbalance.boxes.from_instance_ids` turns the result into detection boxes.

    Raises:
      ValueError: bad ranks or shapes, different batch sizes, ids outside ``[0, M]``
        (eagerly; under `jit` through `jbalance.checks.checked`; unchecked they count as
        0), negative, non-finite or all-zero weights, options out of range.
      TypeError: non-integer ids or classes, non-bool ``valid``, an ids dtype too small.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> ids = jnp.zeros((2, 8, 8), jnp.int32).at[:, 1:4, 1:4].set(1)
      >>> c = jnp.array([[1], [2]]); v = jnp.ones((2, 1), bool)
      >>> out = augment.copy_paste(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), ids, c, v)
      >>> out.classes.shape, out.valid.shape
      ((2, 2), (2, 2))

    References:
      Ghiasi et al., `Simple Copy-Paste is a Strong Data Augmentation Method for Instance
      Segmentation <https://arxiv.org/abs/2012.07177>`_, CVPR 2021.

      Zhao et al., `X-Paste: Revisiting Scalable Copy-Paste for Instance Segmentation
      using CLIP and StableDiffusion <https://arxiv.org/abs/2212.03863>`_, ICML 2023.
    """
    _check_key(key)
    m = _check_instances(images, instance_ids, classes, valid, batched=True)
    b = np.shape(images)[0]
    _check_partner_weights(partner_weights, b)
    _check_instance_weights(instance_weights, (b, m), "instance_weights")
    _check_options(paste_prob, min_area)
    _check_id_values(instance_ids, m, "instance_ids")
    images, instance_ids, classes, valid = (jnp.asarray(a) for a in (
            images, instance_ids, classes, valid))
    key_partners, keys = _example_keys(key, b, "elem")
    p = partner_indices(key_partners, b, partner_weights=partner_weights)[:, 0]
    w = None if instance_weights is None else _take(jnp.asarray(instance_weights), p)

    def one(k, x, i, c, v, px, pi, pc, pv, pw):
        return _paste(k, x, i, c, v, px, pi, pc, pv, pw, paste_prob, min_area)

    return jax.vmap(one)(keys, images, instance_ids, classes, valid, _take(images, p),
                         _take(instance_ids, p), _take(classes, p), _take(valid, p), w)
