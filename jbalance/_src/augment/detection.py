"""Detection Mosaic and MixUp: pixels as the classification functions, plus fixed box slots.

Boxes follow the one box policy of `jbalance.boxes.clip_boxes` (clip; drop non-finite,
inverted, empty and off-image boxes), in any of `jbalance.boxes.FORMATS`.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import boxes as _boxes
from jbalance._src.augment._checks import (
    _check_alpha,
    _check_box_options,
    _check_detection,
    _check_fill,
    _check_images,
    _check_in_place,
    _check_key,
    _check_mode,
    _check_output_size,
    _check_pair,
    _check_partner_weights,
    _check_tiles,
)
from jbalance._src.augment._common import _blend, _take
from jbalance._src.augment._kernels import _assemble
from jbalance._src.augment.mixup import _mixup_images
from jbalance._src.augment.mosaic import mosaic_layout
from jbalance._src.augment.outputs import MixedBoxes, MosaicBoxes
from jbalance._src.augment.partners import (
    _batch_lambdas,
    _draw_lambda,
    _example_keys,
    _with_partners,
    partner_indices,
)
from jbalance._src.typing import Array, ArrayLike, Bool, Float, Int, Num, PRNGKey


def _boxes_in(boxes: Array, valid: Array, box_format: str, hw: tuple[int, int]) -> Array:
    """Boxes in ``box_format`` -> pixel xyxy, after the wrong-format check."""
    _boxes.check_plausible(boxes, valid, box_format, hw)
    return _boxes.convert(boxes, src=box_format, dst="xyxy", image_size=hw)


def _boxes_out(xyxy: Array, box_format: str, hw: tuple[int, int], dtype: Any) -> Array:
    return _boxes.convert(xyxy, src="xyxy", dst=box_format, image_size=hw).astype(dtype)


# --------------------------------------------------------------------------------------------
# Mosaic with boxes.


def _mosaic_boxes_inputs(key, images, boxes, classes, valid, tiles, min_size, min_visible,
                         centre, fill_value, box_format):
    """Checks shared by `mosaic_boxes_one` and `mosaic_boxes`; returns the inputs as arrays."""
    _check_key(key)
    _check_tiles(tiles)
    _check_images(images, 4, "images")
    _boxes.check_format(box_format)
    _check_detection(images, boxes, classes, valid, batched=True)
    _check_box_options(min_size, min_visible, centre)
    _check_fill(fill_value, jnp.result_type(images))
    return (jnp.asarray(images), jnp.asarray(boxes), jnp.asarray(classes),
            jnp.asarray(valid))


def mosaic_boxes_one(key: PRNGKey, images: Num[" t h w ch"], boxes: Float[" t m 4"],
                     classes: Int[" t m"],
                     valid: Bool[" t m"], *, tiles: int = 4,
                     output_size: tuple[int, int] | None = None,
                     min_size: ArrayLike = 2.0, min_visible: ArrayLike = 0.1,
                     centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                     placement: str = "corner", fill_value: ArrayLike = 0,
                     box_format: str = "xyxy") -> MosaicBoxes:
    r"""Detection Mosaic of ``tiles`` given sources with their boxes.

    Pixels as `mosaic_one` (layout from `mosaic_layout`), on an output of ``output_size``
    (e.g. ``(2H, 2W)``, the ultralytics canvas); uncovered pixels get ``fill_value``
    (ultralytics uses 114). Box ``m`` of source ``t`` goes to slot ``t * M + m``: it is
    shifted with its tile, clipped to the tile, and kept (``valid=True``) only if it passes
    the box policy of `jbalance.boxes.clip_boxes` (valid, finite, a positive area before
    clipping and some of it inside the tile), its clipped width and height are
    ``>= min_size`` pixels and its clipped area is ``>= min_visible`` times its original
    area (ultralytics' defaults: 2 px, 10%). Dropped slots get zero boxes; ``classes`` are
    carried unchanged.

    Args:
      key: PRNG key.
      images: ``[tiles, H, W, C]`` sources, any numeric dtype.
      boxes: ``[tiles, M, 4]`` floating boxes in ``box_format`` (default pixel
        ``(x1, y1, x2, y2)``).
      classes: ``[tiles, M]`` integer class ids.
      valid: ``[tiles, M]`` bool, False for padding slots.
      tiles: 2 or 4 (static).
      output_size: ``(out_H, out_W)`` (static), default ``(H, W)``.
      min_size: Minimum clipped width and height in pixels (traceable).
      min_visible: Minimum fraction of the original area still visible (traceable).
      centre: ``(low, high)`` range of the mosaic centre as fractions of the output size.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.
      fill_value: Value of pixels no source covers, finite and in the image dtype's range
        (uint8: 0-255; checked, never wrapped).
      box_format: Format of ``boxes`` and of the returned boxes, one of
        `jbalance.boxes.FORMATS` (static; default ``"xyxy"`` pixels). Normalised formats
        (e.g. YOLO's ``"cxcywhn"``) are read against the source size and written against
        the output size. Boxes clearly in another format (all valid boxes within
        ``[0, 1]`` on a >= 32-pixel image in a pixel format, or coordinates > 2 in a
        normalised one) raise a `ValueError` (under `jit`: through `jbalance.checks.checked`).

    Returns:
      A `MosaicBoxes` ``(images, boxes, classes, valid)``: here one image
      ``[out_H, out_W, C]``, boxes ``[tiles*M, 4]``, classes ``[tiles*M]`` and valid
      ``[tiles*M]``.

    Raises:
      ValueError, TypeError: bad ranks, shapes or dtypes, ``tiles`` not the int 2 or 4,
        ``fill_value`` out of range, boxes in the wrong format.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((4, 32, 32, 3), jnp.uint8)
      >>> b = jnp.tile(jnp.array([[[4., 4., 28., 28.]]]), (4, 1, 1))
      >>> c = jnp.zeros((4, 1), jnp.int32); v = jnp.ones((4, 1), bool)
      >>> img, b2, c2, v2 = augment.mosaic_boxes_one(jax.random.key(0), x, b, c, v,
      ...                                            output_size=(64, 64))
      >>> img.shape, b2.shape
      ((64, 64, 3), (4, 4))

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    images, boxes, classes, valid = _mosaic_boxes_inputs(
        key, images, boxes, classes, valid, tiles, min_size, min_visible, centre, fill_value,
        box_format)
    if images.shape[0] != tiles:
        raise ValueError(f"`images` must hold `tiles`={tiles} sources along axis 0, got shape "
                         f"{tuple(images.shape)}.")
    h, w = images.shape[1], images.shape[2]
    oh, ow = _check_output_size(output_size, (h, w))
    rects, offsets = mosaic_layout(key, (h, w), tiles=tiles, output_size=(oh, ow),
                                   centre=centre, placement=placement)
    src = jnp.arange(tiles, dtype=jnp.int32)[None]
    xyxy = _boxes_in(boxes, valid, box_format, (h, w))  # checks the format before work
    out = _assemble(images, src, rects[None], offsets[None], (oh, ow), fill_value)[0]
    nb, keep = _move_boxes(xyxy, valid, rects, offsets, h, w, min_size, min_visible)
    m = boxes.shape[1]
    nb = _boxes_out(nb, box_format, (oh, ow), boxes.dtype)
    return MosaicBoxes(out, nb.reshape(tiles * m, 4), classes.reshape(tiles * m),
                       keep.reshape(tiles * m))


def mosaic_boxes(key: PRNGKey, images: Num[" b h w ch"], boxes: Float[" b m 4"],
                 classes: Int[" b m"],
                 valid: Bool[" b m"], *, tiles: int = 4,
                 output_size: tuple[int, int] | None = None, min_size: ArrayLike = 2.0,
                 min_visible: ArrayLike = 0.1,
                 centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                 placement: str = "corner", fill_value: ArrayLike = 0,
                 partner_weights: ArrayLike | None = None,
                 box_format: str = "xyxy") -> MosaicBoxes:
    r"""Detection Mosaic over a batch, with static box slots.

    Output ``i`` is stitched from example ``i`` and ``tiles - 1`` partners. Equals
    ``jax.vmap(mosaic_boxes_one)`` over ``images[s], boxes[s], classes[s], valid[s]`` with
    ``s[i] = [i, *partners[i]]`` (keys and partners as the `jbalance.augment` module
    docstring says).

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      boxes: ``[B, M, 4]`` floating boxes in ``box_format`` (default pixel
        ``(x1, y1, x2, y2)``).
      classes: ``[B, M]`` integer class ids.
      valid: ``[B, M]`` bool, False for padding slots.
      tiles: 2 or 4 (static).
      output_size: ``(out_H, out_W)`` (static), default ``(H, W)``; ``(2H, 2W)`` gives the
        ultralytics canvas.
      min_size: Minimum clipped box width and height in pixels (default 2, traceable).
      min_visible: Minimum visible fraction of a box's original area (default 0.1).
      centre: ``(low, high)`` range of the mosaic centre as fractions of the output size.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.
      fill_value: Value of pixels no source covers (ultralytics uses 114); finite and in
        the image dtype's range (checked, never wrapped).
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.
      box_format: Format of ``boxes`` and of the returned boxes, one of
        `jbalance.boxes.FORMATS` (static; default ``"xyxy"`` pixels). Normalised formats
        (e.g. YOLO's ``"cxcywhn"``) are read against the source size and written against
        the output size. Boxes clearly in another format (all valid boxes within
        ``[0, 1]`` on a >= 32-pixel image in a pixel format, or coordinates > 2 in a
        normalised one) raise a `ValueError` (under `jit`: through `jbalance.checks.checked`).

    Returns:
      A `MosaicBoxes` ``(images [B, out_H, out_W, C], boxes [B, tiles*M, 4],
      classes [B, tiles*M], valid [B, tiles*M])``; slot ``t*M + m`` holds box ``m`` of
      the tile-``t`` source.

    Raises:
      ValueError, TypeError: bad ranks, shapes or dtypes, different batch sizes,
        ``tiles`` not the int 2 or 4, ``fill_value`` out of range, boxes in the wrong
        format.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
      >>> b = jnp.array([[[4., 4., 28., 28.]]] * 2)
      >>> c = jnp.zeros((2, 1), jnp.int32); v = jnp.ones((2, 1), bool)
      >>> out = augment.mosaic_boxes(jax.random.key(0), x, b, c, v)
      >>> [o.shape for o in out]
      [(2, 32, 32, 3), (2, 4, 4), (2, 4), (2, 4)]

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    images, boxes, classes, valid = _mosaic_boxes_inputs(
        key, images, boxes, classes, valid, tiles, min_size, min_visible, centre, fill_value,
        box_format)
    _check_partner_weights(partner_weights, np.shape(images)[0])
    b, h, w = images.shape[:3]
    m = boxes.shape[1]
    oh, ow = _check_output_size(output_size, (h, w))
    key_partners, keys = _example_keys(key, b, "elem")
    sources = _with_partners(key_partners, b, tiles, partner_weights)
    rects, offsets = jax.vmap(lambda k: mosaic_layout(
            k, (h, w), tiles=tiles, output_size=(oh, ow), centre=centre,
            placement=placement))(keys)
    xyxy = _boxes_in(boxes, valid, box_format, (h, w))  # checks the format before work
    out = _assemble(images, sources, rects, offsets, (oh, ow), fill_value)
    nb, keep = _move_boxes(_take(xyxy, sources), _take(valid, sources), rects, offsets, h, w,
                           min_size, min_visible)
    nb = _boxes_out(nb, box_format, (oh, ow), boxes.dtype)
    return MosaicBoxes(out, nb.reshape(b, tiles * m, 4),
                       _take(classes, sources).reshape(b, tiles * m), keep.reshape(b, tiles * m))


def _move_boxes(boxes: Array, valid: Array, rects: Array, offsets: Array, h: int, w: int,
                min_size: ArrayLike, min_visible: ArrayLike) -> tuple[Array, Array]:
    """Shifts ``[..., T, M, 4]`` pixel xyxy boxes by their tile offset, clips, filters.

    The box policy of `boxes.clip_boxes` (clip; drop non-finite, inverted, empty boxes)
    with the bounds of the tile and of the box's own source footprint, then Mosaic's own
    ``min_size`` / ``min_visible`` filters.
    """
    dt = boxes.dtype
    dy = offsets[..., 0, None].astype(dt)
    dx = offsets[..., 1, None].astype(dt)
    ylo = jnp.maximum(rects[..., 0], offsets[..., 0])[..., None].astype(dt)
    yhi = jnp.minimum(rects[..., 1], offsets[..., 0] + h)[..., None].astype(dt)
    xlo = jnp.maximum(rects[..., 2], offsets[..., 1])[..., None].astype(dt)
    xhi = jnp.minimum(rects[..., 3], offsets[..., 1] + w)[..., None].astype(dt)
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    zero = jnp.zeros((), dt)
    area = jnp.maximum(x2 - x1, zero) * jnp.maximum(y2 - y1, zero)  # before the shift
    shifted = jnp.stack([x1 + dx, y1 + dy, x2 + dx, y2 + dy], axis=-1)
    out, keep, _ = _boxes._clip_filter(shifted, valid, xlo, ylo, xhi, yhi)
    bw, bh = out[..., 2] - out[..., 0], out[..., 3] - out[..., 1]
    min_size = jnp.asarray(min_size).astype(dt)
    min_visible = jnp.asarray(min_visible).astype(dt)
    keep = keep & (area > 0) & (bw >= min_size) & (bh >= min_size) & (
            bw * bh >= min_visible * area)
    return jnp.where(keep[..., None], out, zero), keep


# --------------------------------------------------------------------------------------------
# MixUp with boxes.


def mixup_boxes_one(key: PRNGKey, image: Num[" h w ch"], boxes: Float[" m 4"], classes: Int[" m"],
                    valid: Bool[" m"], partner_image: Num[" h w ch"], partner_boxes: Float[" pm 4"],
                    partner_classes: Int[" pm"], partner_valid: Bool[" pm"], *,
                    alpha: ArrayLike = 32.0,
                    box_format: str = "xyxy") -> MixedBoxes:
    r"""Detection MixUp of one image with a given partner (YOLOv4 style).

    Pixels are blended with ``lam ~ Beta(alpha, alpha)`` as in `mixup_one`; the boxes are
    the concatenation of both images' boxes (slots ``[0, M)`` from ``image``, ``[M, 2M)``
    from the partner) after the box policy of `mosaic_boxes` (`jbalance.boxes.clip_boxes`:
    clipped to the image; non-finite, inverted, empty and off-image boxes dropped: zero
    box, ``valid=False``), and ``box_weights`` gives each kept box the weight of its image
    (``lam`` or ``1 - lam``; 0 for dropped and padding slots) for losses that want it.

    Args:
      key: PRNG key.
      image: ``[H, W, C]`` float or integer (integers are rounded).
      boxes: ``[M, 4]`` floating boxes in ``box_format``. classes: ``[M]`` int.
        valid: ``[M]`` bool.
      partner_image: Same shape and dtype as ``image``.
      partner_boxes: ``[M, 4]``. partner_classes: ``[M]``. partner_valid: ``[M]``.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`). The default 32 is ultralytics' and
        YOLOv5's ``Beta(32, 32)``, which keeps ``lam`` near 0.5.
      box_format: Format of the boxes in and out, one of `jbalance.boxes.FORMATS`
        (static; default ``"xyxy"`` pixels); wrong-format boxes raise as in `mosaic_boxes`.

    Returns:
      A `MixedBoxes` ``(images, boxes, classes, valid, box_weights)``: here one image
      ``[H, W, C]``, boxes ``[2M, 4]``, classes, valid and box_weights ``[2M]``;
      ``box_weights`` has the boxes' dtype.

    Raises:
      ValueError, TypeError: bad ranks, shapes or dtypes, ``alpha <= 0``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((8, 8, 3)); b = jnp.array([[1., 1., 5., 5.]])
      >>> c = jnp.array([3]); v = jnp.array([True])
      >>> out = augment.mixup_boxes_one(jax.random.key(0), x, b, c, v, x, b, c, v)
      >>> float(out[4].sum())
      1.0

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_images(image, 3, "image")
    _check_pair(image, partner_image, "image", "partner_image")
    _check_detection(image, boxes, classes, valid, batched=False)
    _check_detection(partner_image, partner_boxes, partner_classes, partner_valid,
                     batched=False, prefix="partner_")
    _check_pair(boxes, partner_boxes, "boxes", "partner_boxes")
    _boxes.check_format(box_format)
    image = jnp.asarray(image)
    lam = _draw_lambda(key, alpha)
    both = _mixup_targets(jnp.concatenate([jnp.asarray(boxes), jnp.asarray(partner_boxes)]),
                          jnp.concatenate([jnp.asarray(classes), jnp.asarray(
                              partner_classes).astype(jnp.result_type(classes))]),
                          jnp.concatenate([jnp.asarray(valid), jnp.asarray(partner_valid)]),
                          lam, image.shape[:2], box_format)
    return MixedBoxes(_blend(image, jnp.asarray(partner_image), lam), *both)


def mixup_boxes(key: PRNGKey, images: Num[" b h w ch"], boxes: Float[" b m 4"],
                classes: Int[" b m"],
                valid: Bool[" b m"], *, alpha: ArrayLike = 32.0, mode: str = "elem",
                partner_weights: Num[" b"] | None = None, box_format: str = "xyxy",
                in_place: bool = False) -> MixedBoxes:
    r"""Detection MixUp over a batch: pixels blended, boxes of both images concatenated.

    Equals ``jax.vmap(mixup_boxes_one)`` with partners ``p`` from `partner_indices` (keys
    as the `jbalance.augment` module docstring says).

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` float or integer (integers are rounded).
      boxes: ``[B, M, 4]`` floating boxes in ``box_format``.
      classes: ``[B, M]`` integer class ids.
      valid: ``[B, M]`` bool.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`); default 32 as ultralytics.
      mode: ``"elem"`` (one lambda per example) or ``"batch"`` (one for the batch). Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.
      box_format: Format of the boxes in and out, one of `jbalance.boxes.FORMATS`
        (static; default ``"xyxy"`` pixels); wrong-format boxes raise as in `mosaic_boxes`.
      in_place: Static; as `mixup` (``True``: the images are written into the buffer of
        ``images``, aliased to it when it is donated to `jax.jit`; the targets are the
        same either way).

    Returns:
      A `MixedBoxes` ``(images [B, H, W, C], boxes [B, 2M, 4], classes [B, 2M],
      valid [B, 2M], box_weights [B, 2M])``: slots ``[0, M)`` are the example's own boxes
      with weight ``lam``, ``[M, 2M)`` the partner's with ``1 - lam``, after the box policy
      of `mosaic_boxes` (clipped; bad boxes dropped); dropped and padding slots weigh 0.

    Raises:
      ValueError, TypeError: bad ranks, shapes or dtypes, different batch sizes,
        ``alpha <= 0``, unknown ``mode``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((3, 8, 8, 3)); b = jnp.ones((3, 2, 4))
      >>> c = jnp.zeros((3, 2), jnp.int32); v = jnp.ones((3, 2), bool)
      >>> [o.shape for o in augment.mixup_boxes(jax.random.key(0), x, b, c, v)]
      [(3, 8, 8, 3), (3, 4, 4), (3, 4), (3, 4), (3, 4)]

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_mode(mode)
    _check_images(images, 4, "images")
    _check_detection(images, boxes, classes, valid, batched=True)
    _check_partner_weights(partner_weights, np.shape(images)[0])
    _boxes.check_format(box_format)
    _check_in_place(in_place)
    images = jnp.asarray(images)
    boxes, classes, valid = jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(valid)
    b = images.shape[0]
    key_partners, keys = _example_keys(key, b, mode)
    p = partner_indices(key_partners, b, partner_weights=partner_weights)[:, 0]
    lam = _batch_lambdas(keys, alpha, mode)
    cat = lambda x: jnp.concatenate([x, _take(x, p)], axis=1)  # noqa: E731
    targets = _mixup_targets(cat(boxes), cat(classes), cat(valid), lam, images.shape[1:3],
                             box_format)  # first: checks the box format before the pixels
    return MixedBoxes(_mixup_images(images, p, lam, in_place), *targets)


def _mixup_targets(boxes: Array, classes: Array, valid: Array, lam: Array,
                   hw: tuple[int, int], box_format: str) -> tuple[Array, Array, Array, Array]:
    """``[..., 2M]`` own + partner slots -> the box policy, then weights ``lam`` / ``1-lam``."""
    dt = boxes.dtype
    m = boxes.shape[-2] // 2
    xyxy = _boxes_in(boxes, valid, box_format, hw)
    zero = jnp.zeros((), xyxy.dtype)
    h, w = (jnp.asarray(s, xyxy.dtype) for s in hw)
    clipped, keep, _ = _boxes._clip_filter(xyxy, valid, zero, zero, w, h)
    clipped = jnp.where(keep[..., None], clipped, zero)
    lam_b = lam.astype(dt)[..., None]
    own = (jnp.arange(2 * m) < m).reshape(*(1,) * (keep.ndim - 1), 2 * m)
    weights = jnp.where(keep, jnp.where(own, lam_b, 1 - lam_b), jnp.zeros((), dt))
    return _boxes_out(clipped, box_format, hw, dt), classes, keep, weights
