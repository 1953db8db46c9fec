"""CutMix: a rectangle pasted from a partner; labels weighted by the exact pasted fraction.

The pixel copies themselves (a select, row bands, permutation cycles, one shared window)
live in `_kernels`; every one of them returns the same pixels.
"""

import jax
import jax.numpy as jnp

from jbalance._src.augment._checks import (
    _check_alpha,
    _check_images,
    _check_key,
    _check_labels,
    _check_pair,
)
from jbalance._src.augment._common import _blend, _exact_fraction, _take
from jbalance._src.augment._kernels import _paste_boxes, _paste_cycles, _paste_window
from jbalance._src.augment.outputs import CutMixBox, Mixed
from jbalance._src.augment.partners import _draw_lambda, _pairwise_draw
from jbalance._src.typing import ArrayLike, Num, PRNGKey


def cutmix_box(key: PRNGKey, height: int, width: int, *,
               alpha: ArrayLike = 1.0) -> CutMixBox:
    r"""Draws one CutMix rectangle (the box whose pixels come from the partner).

    ``lam ~ Beta(alpha, alpha)``; the box has height ``floor(H sqrt(1-lam))`` and width
    ``floor(W sqrt(1-lam))`` before clipping, its centre is uniform over the pixel grid
    (as in the paper and timm), and it is clipped to the image.

    Args:
      key: PRNG key.
      height: Image height ``H`` (static int).
      width: Image width ``W`` (static int).
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).

    Returns:
      A `CutMixBox` ``(box, lam)``: int32 ``[4]`` box ``(y1, y2, x1, x2)`` (half-open,
      clipped) and the float32 lambda drawn. The exact partner fraction is
      ``(y2 - y1) * (x2 - x1) / (H * W)``.

    Examples:
      >>> import jax
      >>> from jbalance import augment
      >>> box, lam = augment.cutmix_box(jax.random.key(0), 32, 32)
      >>> box.shape
      (4,)
    """
    _check_alpha(alpha)
    k_lam, k_y, k_x = jax.random.split(key, 3)
    lam = _draw_lambda(k_lam, alpha)
    ratio = jnp.sqrt(jnp.clip(1.0 - lam, 0.0, 1.0))
    cut_h = jnp.floor(height * ratio).astype(jnp.int32)
    cut_w = jnp.floor(width * ratio).astype(jnp.int32)
    cy = jax.random.randint(k_y, (), 0, height, dtype=jnp.int32)
    cx = jax.random.randint(k_x, (), 0, width, dtype=jnp.int32)
    y1 = cy - cut_h // 2
    x1 = cx - cut_w // 2
    box = jnp.stack([jnp.clip(y1, 0, height), jnp.clip(y1 + cut_h, 0, height),
                     jnp.clip(x1, 0, width), jnp.clip(x1 + cut_w, 0, width)])
    return CutMixBox(box, lam)


def cutmix_one(key: PRNGKey, image: Num[" h w ch"], label: Num[" c"], partner_image: Num[" h w ch"],
               partner_label: Num[" c"], *, alpha: ArrayLike = 1.0) -> Mixed:
    r"""CutMix of one example with a given partner.

    A rectangle drawn by `cutmix_box` is pasted from ``partner_image``; the label is
    ``(1 - f) * label + f * partner_label`` where ``f`` is the *exact* fraction of pixels
    pasted after clipping the box to the image (not the drawn ``1 - lam``).

    Args:
      key: PRNG key.
      image: ``[H, W, C]``, any numeric dtype (pixels are copied, never blended).
      label: ``[K]`` floating probabilities.
      partner_image: Same shape and dtype as ``image``.
      partner_label: Same shape as ``label``.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).

    Returns:
      A `Mixed` ``(images, labels)``: here one image and one label, with the input shapes
      and dtypes.

    Raises:
      ValueError, TypeError: on bad ranks, mismatched shapes or ``alpha <= 0``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x, y = augment.cutmix_one(jax.random.key(1), jnp.ones((8, 8, 1)),
      ...                           jnp.array([1., 0.]), jnp.zeros((8, 8, 1)),
      ...                           jnp.array([0., 1.]))
      >>> bool(jnp.isclose(1 - x.mean(), y[1]))
      True

    References:
      Yun et al., `CutMix: Regularization Strategy to Train Strong Classifiers with
      Localizable Features <https://arxiv.org/abs/1905.04899>`_, ICCV 2019.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_images(image, 3, "image")
    _check_labels(label, 1, "label")
    _check_pair(image, partner_image, "image", "partner_image")
    _check_pair(label, partner_label, "label", "partner_label")
    image, label = jnp.asarray(image), jnp.asarray(label)
    h, w = image.shape[0], image.shape[1]
    box, _ = cutmix_box(key, h, w, alpha=alpha)
    rows = jnp.arange(h, dtype=jnp.int32)
    cols = jnp.arange(w, dtype=jnp.int32)
    in_rows = (rows >= box[0]) & (rows < box[1])
    in_cols = (cols >= box[2]) & (cols < box[3])
    mask = in_rows[:, None, None] & in_cols[None, :, None]
    out = jnp.where(mask, jnp.asarray(partner_image), image)
    frac = _exact_fraction((box[1] - box[0]) * (box[3] - box[2]), h * w)
    return Mixed(out, _blend(label, jnp.asarray(partner_label), 1.0 - frac, frac))


def cutmix(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, alpha: ArrayLike = 1.0,
           mode: str = "elem", partner_weights: Num[" b"] | None = None,
           in_place: bool = False) -> Mixed:
    r"""CutMix over a batch: each example gets a rectangle pasted from a random partner.

    Equals ``jax.vmap(cutmix_one)(keys, images, labels, images[p], labels[p])`` (keys and
    partners as the `jbalance.augment` module docstring says). Label weights are exact
    pasted-pixel fractions.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      labels: ``[B, K]`` floating probabilities.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).
      mode: ``"elem"`` (one lambda and box per example) or ``"batch"`` (one lambda and one
        box for the whole batch, as timm's batch mode). Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.
      in_place: Static. ``True``: the images are written into the buffer of ``images``:
        when ``images`` is donated to `jax.jit` (``donate_argnums``) the output aliases it
        and no second batch-sized buffer is allocated. ``False`` (default): elem mode
        writes a new array; batch mode writes into the buffer of ``images`` either way.
        Pixels and labels are the same for both values (pixels are copies). How each mode
        copies and when it pays off: docs/augment.md, "Updating a donated batch in place".

    Returns:
      A `Mixed` ``(images, labels)``, shapes and dtypes as given.

    Raises:
      ValueError: wrong ranks, different batch sizes, ``alpha <= 0``, unknown ``mode``.
      TypeError: non-floating labels, non-bool ``in_place``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((5, 8, 8, 3), jnp.uint8); y = jax.nn.one_hot(jnp.arange(5), 5)
      >>> x2, y2 = augment.cutmix(jax.random.key(0), x, y)
      >>> x2.dtype, y2.shape
      (dtype('uint8'), (5, 5))

    References:
      Yun et al., `CutMix: Regularization Strategy to Train Strong Classifiers with
      Localizable Features <https://arxiv.org/abs/1905.04899>`_, ICCV 2019.
    """
    images, labels, keys, p = _pairwise_draw(key, images, labels, alpha=alpha, mode=mode,
                                             partner_weights=partner_weights, in_place=in_place)
    b, h, w = images.shape[:3]
    # Four copy kernels, one set of pixels (each pinned against the reference in tests).
    if mode == "batch":  # one box for the batch: one window of box rows.
        box, _ = cutmix_box(keys[0], h, w, alpha=alpha)
        out = _paste_window(images, p, box)
        boxes = jnp.broadcast_to(box, (b, 4))
    else:
        boxes, _ = jax.vmap(lambda k: cutmix_box(k, h, w, alpha=alpha))(keys)
        if in_place and partner_weights is None:  # partners form a permutation
            out = _paste_cycles(images, p, boxes)
        else:  # one select (default), or row bands (in place, partners drawn with replacement)
            out = _paste_boxes(images, p, boxes, in_place)
    frac = _exact_fraction((boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2]), h * w)
    frac = frac[:, None]
    return Mixed(out, _blend(labels, _take(labels, p), 1.0 - frac, frac))
