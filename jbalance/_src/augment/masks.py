"""Mask-aware MixUp, CutMix and Mosaic: segmentation label maps moved with the pixels.

Each function draws exactly what its image-only twin draws from the same key (lambda,
CutMix box, Mosaic layout and partners), so the images equal `mixup`, `cutmix` and `mosaic`
images and the masks follow them pixel for pixel: MixUp gives soft masks (the same lambda
as the pixels), CutMix and Mosaic copy the integer mask from exactly the source pixel each
image pixel comes from.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.augment._checks import (
    PLACEMENTS,
    _check_alpha,
    _check_centre,
    _check_fill,
    _check_images,
    _check_key,
    _check_mode,
    _check_output_size,
    _check_pair,
    _check_partner_weights,
    _check_tiles,
)
from jbalance._src.augment._common import _blend, _take
from jbalance._src.augment._kernels import _assemble, _paste_boxes, _paste_window
from jbalance._src.augment.cutmix import cutmix_box
from jbalance._src.augment.mixup import _mixup_images
from jbalance._src.augment.mosaic import mosaic_layout
from jbalance._src.augment.partners import (
    _batch_lambdas,
    _draw_lambda,
    _example_keys,
    _with_partners,
    partner_indices,
)
from jbalance._src.typing import Array, ArrayLike, Int, Num, PRNGKey


class MixedMasks(NamedTuple):
    """Augmented images and their segmentation masks (`augment.mixup_masks`,
    `augment.cutmix_masks`, `augment.mosaic_masks`).

    Unpacks as ``images, masks = augment.cutmix_masks(...)``.

    Attributes:
      images: ``[B, H, W, C]`` (one example: ``[H, W, C]``), the input dtype.
      masks: CutMix and Mosaic: ``[B, H, W]`` integer label maps in the masks' dtype.
        MixUp: ``[B, H, W, num_classes]`` soft masks in the images' floating dtype
        (float32 for integer images).
    """

    images: Num[" *b h w ch"]
    masks: Num[" *b h w *k"]


# --------------------------------------------------------------------------------------------
# Checks.


def _check_masks(masks: Any, images: Any, name: str = "masks", image_name: str = "images"
                 ) -> None:
    """Integer label maps with the spatial shape (and batch) of the images."""
    want = tuple(np.shape(images))[:-1]
    checks.check_rank(masks, len(want), name,
                      "[batch, height, width] integer class ids" if len(want) == 3
                      else "[height, width] integer class ids" if len(want) == 2
                      else "[tiles, height, width] integer class ids")
    dtype = jnp.result_type(masks)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"`{name}` must hold integer class ids (e.g. uint8 or int32), got "
                        f"{dtype}. Convert one-hot masks with `jnp.argmax(masks, -1)`.")
    if tuple(np.shape(masks)) != want:
        raise ValueError(f"`{name}` must have the leading shape of `{image_name}` {want} "
                         f"(one class id per pixel), got {tuple(np.shape(masks))}.")


def _check_num_classes(num_classes: Any) -> int:
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1):
        raise ValueError(f"`num_classes` must be a positive int (static), got {num_classes!r}.")
    return int(num_classes)


def _check_ignore_index(ignore_index: Any) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise ValueError(f"`ignore_index` must be None or an int (static, e.g. 255), got "
                         f"{ignore_index!r}.")
    return int(ignore_index)


def _check_mask_values(masks: Any, num_classes: int, ignore_index: int | None,
                       name: str) -> None:
    """Ids in ``[0, num_classes)`` or equal to ``ignore_index``: eagerly when concrete,
    under `jbalance.checks.checked` when traced."""
    allowed = f"[0, {num_classes})" + ("" if ignore_index is None
                                       else f" or `ignore_index`={ignore_index}")
    if checks.is_concrete(masks):
        m = np.asarray(masks).astype(np.int64)
        bad = (m < 0) | (m >= num_classes)
        if ignore_index is not None:
            bad &= m != ignore_index
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"`{name}` holds class id {m[where]} at {where}; ids must be in "
                             f"{allowed}.")
        return
    m = jnp.asarray(masks)
    ok = (m >= 0) & (m < num_classes)
    if ignore_index is not None:
        ok |= m == ignore_index
    checks.require(ok, f"`{name}` holds class ids outside {allowed}.")


def _check_fill_mask(fill_mask: Any, dtype: Any) -> None:
    """``fill_mask`` must be an int representable in the masks' dtype."""
    dtype = jnp.dtype(dtype)
    info = jnp.iinfo(dtype)
    if (isinstance(fill_mask, bool) or not isinstance(fill_mask, (int, np.integer))
            or not info.min <= int(fill_mask) <= info.max):
        raise ValueError(f"`fill_mask` must be a static int in the range of the masks' dtype "
                         f"{dtype} [{info.min}, {info.max}] (it would wrap), got {fill_mask!r}.")


def _soft_dtype(images: Array) -> Any:
    return images.dtype if jnp.issubdtype(images.dtype, jnp.floating) else jnp.dtype(jnp.float32)


def _soft_masks(masks: Array, partner_masks: Array, lam: Array, num_classes: int,
                ignore_index: int | None, dtype: Any) -> Array:
    """``lam one_hot(a) + (1 - lam) one_hot(b)``, a zero row where either is ignored.

    ``lam`` broadcasts against ``masks`` (a scalar, or ``[B, 1, 1]``). Ids outside
    ``[0, num_classes)`` one-hot to a zero row (`jax.nn.one_hot`).
    """
    cdt = checks.compute_dtype(dtype)
    lam = lam.astype(cdt)
    lam = lam.reshape(lam.shape + (1,) * (masks.ndim + 1 - lam.ndim))  # explicit ranks
    soft = (lam * jax.nn.one_hot(masks, num_classes, dtype=cdt)
            + (jnp.ones((), cdt) - lam) * jax.nn.one_hot(partner_masks, num_classes, dtype=cdt))
    if ignore_index is not None:
        ignored = (masks == ignore_index) | (partner_masks == ignore_index)
        soft = jnp.where(ignored[..., None], jnp.zeros((), cdt), soft)
    return soft.astype(dtype)


# --------------------------------------------------------------------------------------------
# MixUp.


def mixup_masks_one(key: PRNGKey, image: Num[" h w ch"], mask: Int[" h w"],
                    partner_image: Num[" h w ch"], partner_mask: Int[" h w"], *,
                    num_classes: int, alpha: ArrayLike = 1.0,
                    ignore_index: int | None = None) -> MixedMasks:
    r"""MixUp of one image and its label map with a given partner: soft masks.

    .. math::
      \lambda \sim \mathrm{Beta}(\alpha, \alpha), \quad
      x = \lambda x_i + (1-\lambda) x_j, \quad
      s_{hw} = \lambda\, e_{m_i[h,w]} + (1-\lambda)\, e_{m_j[h,w]}

    The image (and lambda) is exactly `mixup_one`'s for the same key. A pixel ignored
    (``== ignore_index``) in the image *or* in its partner gets a zero row: part of its
    target is unknown, and a zero row is what the segmentation losses skip.

    Args:
      key: PRNG key (draws lambda).
      image: ``[H, W, C]`` float or integer (integers are blended in float32 and rounded).
      mask: ``[H, W]`` integer class ids in ``[0, num_classes)`` or ``ignore_index``.
      partner_image: Same shape and dtype as ``image``.
      partner_mask: Same shape and dtype as ``mask``.
      num_classes: Number of classes ``K`` (static int).
      alpha: Beta concentration, finite and > 0 (traceable).
      ignore_index: Optional id (static int, e.g. VOC's 255) of pixels without a label.

    Returns:
      A `MixedMasks` ``(image [H, W, C], soft_mask [H, W, K])``; the soft mask is in the
      image's floating dtype (float32 for integer images).

    Raises:
      ValueError, TypeError: bad ranks or dtypes, a mask whose shape is not the image's
        ``[H, W]``, ids out of range (eagerly; under `jit` through
        `jbalance.checks.checked`; unchecked, such ids give a zero one-hot row).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x, s = augment.mixup_masks_one(jax.random.key(0), jnp.ones((4, 4, 3)),
      ...                                jnp.zeros((4, 4), jnp.int32), jnp.zeros((4, 4, 3)),
      ...                                jnp.ones((4, 4), jnp.int32), num_classes=2)
      >>> bool(jnp.allclose(x[..., 0], s[..., 0]))
      True

    References:
      Zhang et al., `mixup: Beyond Empirical Risk Minimization
      <https://arxiv.org/abs/1710.09412>`_, ICLR 2018.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_images(image, 3, "image")
    _check_pair(image, partner_image, "image", "partner_image")
    k = _check_num_classes(num_classes)
    ignore_index = _check_ignore_index(ignore_index)
    _check_masks(mask, image, "mask", "image")
    _check_masks(partner_mask, partner_image, "partner_mask", "partner_image")
    _check_mask_values(mask, k, ignore_index, "mask")
    _check_mask_values(partner_mask, k, ignore_index, "partner_mask")
    image, mask = jnp.asarray(image), jnp.asarray(mask)
    lam = _draw_lambda(key, alpha)
    return MixedMasks(_blend(image, jnp.asarray(partner_image), lam),
                      _soft_masks(mask, jnp.asarray(partner_mask), lam, k, ignore_index,
                                  _soft_dtype(image)))


def _batch_prologue(key, images, masks, mode, partner_weights):
    """Checks, keys and partners shared by `mixup_masks` and `cutmix_masks`."""
    _check_key(key)
    _check_images(images, 4, "images")
    _check_masks(masks, images)
    _check_mode(mode)
    _check_partner_weights(partner_weights, np.shape(images)[0])
    images, masks = jnp.asarray(images), jnp.asarray(masks)
    key_partners, keys = _example_keys(key, images.shape[0], mode)
    p = partner_indices(key_partners, images.shape[0], partner_weights=partner_weights)[:, 0]
    return images, masks, keys, p


def mixup_masks(key: PRNGKey, images: Num[" b h w ch"], masks: Int[" b h w"], *,
                num_classes: int, alpha: ArrayLike = 1.0, mode: str = "elem",
                partner_weights: Num[" b"] | None = None,
                ignore_index: int | None = None) -> MixedMasks:
    r"""MixUp over a batch of images and label maps: images blended, masks made soft.

    .. math::
      x_i' = \lambda_i x_i + (1-\lambda_i) x_{p(i)}, \quad
      s_i' = \lambda_i\, \mathrm{onehot}(m_i) + (1-\lambda_i)\, \mathrm{onehot}(m_{p(i)})

    Keys, partners and lambdas are those of `mixup` (so the images equal `mixup`'s for the
    same key), and the result equals ``jax.vmap(mixup_masks_one)`` over ``keys, images,
    masks, images[p], masks[p]``. A pixel ignored in the example *or* its partner is a zero
    row of the soft mask (documented in docs/augment.md, "Segmentation masks").

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` float or integer (uint8: blended in float32, rounded).
      masks: ``[B, H, W]`` integer class ids in ``[0, num_classes)`` or ``ignore_index``.
      num_classes: Number of classes ``K`` (static int).
      alpha: Beta concentration, finite and > 0 (traceable).
      mode: ``"elem"`` (one lambda per example) or ``"batch"`` (one shared lambda). Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights (class-aware
        mixing), as `mixup`.
      ignore_index: Optional id (static int, e.g. 255) of unlabelled pixels.

    Returns:
      A `MixedMasks` ``(images [B, H, W, C], soft_masks [B, H, W, K])``; soft masks in the
      images' floating dtype (float32 for integer images); rows sum to 1 except ignored
      pixels (0).

    Raises:
      ValueError: bad ranks, masks whose shape is not ``images.shape[:-1]``, ids out of
        range (eagerly; under `jit` through `jbalance.checks.checked`; unchecked, such ids
        one-hot to zero rows), ``alpha <= 0``, unknown ``mode``, bad ``partner_weights``.
      TypeError: non-integer masks, non-numeric images.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((3, 8, 8, 3)); m = jnp.zeros((3, 8, 8), jnp.uint8)
      >>> x2, s = augment.mixup_masks(jax.random.key(0), x, m, num_classes=5)
      >>> s.shape
      (3, 8, 8, 5)

    References:
      Zhang et al., `mixup: Beyond Empirical Risk Minimization
      <https://arxiv.org/abs/1710.09412>`_, ICLR 2018.
    """
    k = _check_num_classes(num_classes)
    ignore_index = _check_ignore_index(ignore_index)
    _check_alpha(alpha)
    images, masks, keys, p = _batch_prologue(key, images, masks, mode, partner_weights)
    _check_mask_values(masks, k, ignore_index, "masks")
    lam = _batch_lambdas(keys, alpha, mode)
    return MixedMasks(_mixup_images(images, p, lam, False),
                      _soft_masks(masks, _take(masks, p), lam[:, None, None], k, ignore_index,
                                  _soft_dtype(images)))


# --------------------------------------------------------------------------------------------
# CutMix.


def cutmix_masks_one(key: PRNGKey, image: Num[" h w ch"], mask: Int[" h w"],
                     partner_image: Num[" h w ch"], partner_mask: Int[" h w"], *,
                     alpha: ArrayLike = 1.0) -> MixedMasks:
    r"""CutMix of one image and its label map with a given partner.

    The box is `cutmix_box`'s for ``key`` (the image equals `cutmix_one`'s), and the mask
    is pasted with exactly the pixels of the box: every output pixel and its class id come
    from the same source.

    Args:
      key: PRNG key.
      image: ``[H, W, C]``, any numeric dtype (pixels are copied).
      mask: ``[H, W]`` integer class ids (any values: they are copied, never read).
      partner_image: Same shape and dtype as ``image``.
      partner_mask: Same shape and dtype as ``mask``.
      alpha: Beta concentration, finite and > 0 (traceable).

    Returns:
      A `MixedMasks` ``(image [H, W, C], mask [H, W])`` in the input dtypes.

    Raises:
      ValueError, TypeError: bad ranks or dtypes, a mask whose shape is not ``[H, W]``,
        ``alpha <= 0``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x, m = augment.cutmix_masks_one(jax.random.key(1), jnp.ones((8, 8, 1)),
      ...                                 jnp.ones((8, 8), jnp.int32), jnp.zeros((8, 8, 1)),
      ...                                 jnp.zeros((8, 8), jnp.int32))
      >>> bool((x[..., 0] == m).all())
      True

    References:
      Yun et al., `CutMix: Regularization Strategy to Train Strong Classifiers with
      Localizable Features <https://arxiv.org/abs/1905.04899>`_, ICCV 2019.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_images(image, 3, "image")
    _check_pair(image, partner_image, "image", "partner_image")
    _check_masks(mask, image, "mask", "image")
    _check_masks(partner_mask, partner_image, "partner_mask", "partner_image")
    _check_pair(mask, partner_mask, "mask", "partner_mask")
    image, mask = jnp.asarray(image), jnp.asarray(mask)
    h, w = image.shape[0], image.shape[1]
    box, _ = cutmix_box(key, h, w, alpha=alpha)
    inside = _paste_boxes_mask(box[None], h, w)[0]
    return MixedMasks(jnp.where(inside[..., None], jnp.asarray(partner_image), image),
                      jnp.where(inside, jnp.asarray(partner_mask), mask))


def _paste_boxes_mask(boxes: Array, h: int, w: int) -> Array:
    """``[B, H, W]`` bool: pixels inside each box ``(y1, y2, x1, x2)``."""
    rows = jnp.arange(h, dtype=jnp.int32)[None, :]
    cols = jnp.arange(w, dtype=jnp.int32)[None, :]
    in_rows = (rows >= boxes[:, 0, None]) & (rows < boxes[:, 1, None])
    in_cols = (cols >= boxes[:, 2, None]) & (cols < boxes[:, 3, None])
    return in_rows[:, :, None] & in_cols[:, None, :]


def cutmix_masks(key: PRNGKey, images: Num[" b h w ch"], masks: Int[" b h w"], *,
                 alpha: ArrayLike = 1.0, mode: str = "elem",
                 partner_weights: Num[" b"] | None = None) -> MixedMasks:
    r"""CutMix over a batch of images and label maps: the box's pixels and ids from the
    partner.

    Keys, partners and boxes are those of `cutmix` (the images equal `cutmix`'s for the
    same key and arguments), and the integer masks are pasted with exactly the pixels of
    each box. Equals ``jax.vmap(cutmix_masks_one)`` over ``keys, images, masks, images[p],
    masks[p]``.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      masks: ``[B, H, W]`` integer class ids (copied; ``ignore_index`` pixels stay so).
      alpha: Beta concentration, finite and > 0 (traceable).
      mode: ``"elem"`` (one box per example) or ``"batch"`` (one box for the batch). Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.

    Returns:
      A `MixedMasks` ``(images [B, H, W, C], masks [B, H, W])`` in the input dtypes.

    Raises:
      ValueError: bad ranks, masks whose shape is not ``images.shape[:-1]``,
        ``alpha <= 0``, unknown ``mode``, bad ``partner_weights``.
      TypeError: non-integer masks, non-numeric images.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((4, 8, 8, 3), jnp.uint8); m = jnp.zeros((4, 8, 8), jnp.uint8)
      >>> x2, m2 = augment.cutmix_masks(jax.random.key(0), x, m)
      >>> x2.shape, m2.dtype
      ((4, 8, 8, 3), dtype('uint8'))

    References:
      Yun et al., `CutMix: Regularization Strategy to Train Strong Classifiers with
      Localizable Features <https://arxiv.org/abs/1905.04899>`_, ICCV 2019.
    """
    _check_alpha(alpha)
    images, masks, keys, p = _batch_prologue(key, images, masks, mode, partner_weights)
    h, w = images.shape[1:3]
    if mode == "batch":  # one box: the window kernel of `cutmix`, for pixels and ids
        box, _ = cutmix_box(keys[0], h, w, alpha=alpha)
        return MixedMasks(_paste_window(images, p, box),
                          _paste_window(masks[..., None], p, box)[..., 0])
    boxes, _ = jax.vmap(lambda k: cutmix_box(k, h, w, alpha=alpha))(keys)
    return MixedMasks(_paste_boxes(images, p, boxes, False),
                      jnp.where(_paste_boxes_mask(boxes, h, w), _take(masks, p), masks))


# --------------------------------------------------------------------------------------------
# Mosaic.


def _mosaic_checks(key, images, masks, tiles, centre, placement, fill_mask, fill_value):
    _check_key(key)
    _check_tiles(tiles)
    _check_images(images, 4, "images")
    _check_masks(masks, images)
    _check_centre(centre)
    checks.check_one_of(placement, PLACEMENTS, "placement")
    _check_fill_mask(fill_mask, jnp.result_type(masks))
    _check_fill(fill_value, jnp.result_type(images))
    return jnp.asarray(images), jnp.asarray(masks)


def mosaic_masks_one(key: PRNGKey, images: Num[" t h w ch"], masks: Int[" t h w"], *,
                     tiles: int = 4, output_size: tuple[int, int] | None = None,
                     fill_mask: int = 255, fill_value: ArrayLike = 0,
                     centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                     placement: str = "corner") -> MixedMasks:
    r"""Mosaic of ``tiles`` given sources and their label maps into one image and mask.

    The layout is `mosaic_layout`'s for ``key`` (the image equals `mosaic_one`'s, and
    `mosaic_boxes_one`'s with ``output_size``). Each mask pixel is the id of exactly the
    source pixel its image pixel copies (nearest: no resampling); pixels no tile covers
    (only when ``output_size`` exceeds the sources) get ``fill_mask`` and ``fill_value``.

    Args:
      key: PRNG key.
      images: ``[tiles, H, W, C]`` sources, any numeric dtype.
      masks: ``[tiles, H, W]`` integer class ids.
      tiles: 2 or 4 (static).
      output_size: ``(out_H, out_W)`` (static), default ``(H, W)``.
      fill_mask: Id of uncovered pixels (static int in the masks' dtype range; default
        255, VOC's ignore value).
      fill_value: Image value of uncovered pixels, in the image dtype's range.
      centre: ``(low, high)`` range of the mosaic centre as fractions of the output size.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.

    Returns:
      A `MixedMasks` ``(image [out_H, out_W, C], mask [out_H, out_W])`` in the input
      dtypes.

    Raises:
      ValueError, TypeError: bad ranks, shapes or dtypes, ``tiles`` not 2 or 4,
        ``images`` not holding ``tiles`` sources, fill values out of range.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.arange(4.)[:, None, None, None] * jnp.ones((4, 8, 8, 1))
      >>> m = jnp.arange(4)[:, None, None] * jnp.ones((4, 8, 8), jnp.int32)
      >>> img, mask = augment.mosaic_masks_one(jax.random.key(0), x, m)
      >>> bool((img[..., 0] == mask).all())
      True

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    images, masks = _mosaic_checks(key, images, masks, tiles, centre, placement, fill_mask,
                                   fill_value)
    if images.shape[0] != tiles:
        raise ValueError(f"`images` must hold `tiles`={tiles} sources along axis 0, got shape "
                         f"{tuple(images.shape)}.")
    h, w = images.shape[1], images.shape[2]
    oh, ow = _check_output_size(output_size, (h, w))
    rects, offsets = mosaic_layout(key, (h, w), tiles=tiles, output_size=(oh, ow),
                                   centre=centre, placement=placement)
    src = jnp.arange(tiles, dtype=jnp.int32)[None]
    out = _assemble(images, src, rects[None], offsets[None], (oh, ow), fill_value)[0]
    out_m = _assemble(masks[..., None], src, rects[None], offsets[None], (oh, ow),
                      fill_mask)[0, ..., 0]
    return MixedMasks(out, out_m)


def mosaic_masks(key: PRNGKey, images: Num[" b h w ch"], masks: Int[" b h w"], *,
                 tiles: int = 4, output_size: tuple[int, int] | None = None,
                 fill_mask: int = 255, partner_weights: Num[" b"] | None = None,
                 fill_value: ArrayLike = 0, centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                 placement: str = "corner") -> MixedMasks:
    r"""Mosaic over a batch of images and label maps: masks move with their tiles.

    Sources, keys and layouts are those of `mosaic` (and of `mosaic_boxes` with the same
    ``output_size``): output ``i`` is stitched from example ``i`` and ``tiles - 1``
    partners, and every mask pixel is the id of exactly the source pixel its image pixel
    copies (nearest, never resampled). Equals ``jax.vmap(mosaic_masks_one)`` over
    ``keys, images[s], masks[s]`` with ``s[i] = [i, *partners[i]]``.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      masks: ``[B, H, W]`` integer class ids.
      tiles: 2 or 4 (static).
      output_size: ``(out_H, out_W)`` (static), default ``(H, W)``; ``(2H, 2W)`` gives the
        ultralytics canvas.
      fill_mask: Id of pixels no tile covers (static int in the masks' dtype range; default
        255, VOC's ignore value: give the losses' ``ignore_index`` the same value).
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.
      fill_value: Image value of uncovered pixels (ultralytics uses 114).
      centre: ``(low, high)`` range of the mosaic centre as fractions of the output size.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.

    Returns:
      A `MixedMasks` ``(images [B, out_H, out_W, C], masks [B, out_H, out_W])`` in the
      input dtypes.

    Raises:
      ValueError: bad ranks, masks whose shape is not ``images.shape[:-1]``, ``tiles`` not
        2 or 4, fill values out of range, bad ``partner_weights``.
      TypeError: non-integer masks, non-numeric images.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((3, 16, 16, 3), jnp.uint8); m = jnp.zeros((3, 16, 16), jnp.uint8)
      >>> x2, m2 = augment.mosaic_masks(jax.random.key(0), x, m, output_size=(32, 32))
      >>> x2.shape, m2.shape
      ((3, 32, 32, 3), (3, 32, 32))

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    images, masks = _mosaic_checks(key, images, masks, tiles, centre, placement, fill_mask,
                                   fill_value)
    _check_partner_weights(partner_weights, images.shape[0])
    b, h, w = images.shape[:3]
    oh, ow = _check_output_size(output_size, (h, w))
    key_partners, keys = _example_keys(key, b, "elem")
    sources = _with_partners(key_partners, b, tiles, partner_weights)
    rects, offsets = jax.vmap(lambda k: mosaic_layout(
            k, (h, w), tiles=tiles, output_size=(oh, ow), centre=centre,
            placement=placement))(keys)
    out = _assemble(images, sources, rects, offsets, (oh, ow), fill_value)
    out_m = _assemble(masks[..., None], sources, rects, offsets, (oh, ow), fill_mask)[..., 0]
    return MixedMasks(out, out_m)

