"""Box formats, padded per-image box arrays, and the one box policy of the augmentations.

`convert` is pure JAX (jittable, vmappable, differentiable). `pad_objects` runs on the host
(NumPy): it turns the variable-length object list of a label set into the fixed box slots
that jitted code needs. `clip_boxes` is the box policy shared by `augment.mosaic_boxes` and
`augment.mixup_boxes`: clip to the image, drop non-finite and degenerate boxes.
`from_instance_ids` gives the boxes of an instance id map (`augment.copy_paste` output).
"""

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.typing import Array, ArrayLike, Bool, Float, Int

# Pixel formats and their normalised twins (the `n` suffix: divided by image width/height).
PIXEL_FORMATS = ("xyxy", "xywh", "cxcywh")
FORMATS = PIXEL_FORMATS + tuple(f + "n" for f in PIXEL_FORMATS)


class Objects(NamedTuple):
    """Every object of a label set, one row per object (host NumPy arrays).

    Attributes:
      image_index: ``[K] int32``, the row of the image in the label set's count matrix.
      class_index: ``[K] int32``, the class (column) of the object.
      boxes: ``[K, 4] float32`` in ``box_format``.
      box_format: one of `FORMATS` (``"xyxy"``, ``"xywh"``, ``"cxcywh"``, or with an ``n``
        suffix when normalised by the image's width and height, e.g. YOLO's ``"cxcywhn"``).
    """

    image_index: np.ndarray
    class_index: np.ndarray
    boxes: np.ndarray
    box_format: str


class PaddedObjects(NamedTuple):
    """The fixed-slot form of some images' objects (unpacks as ``boxes, classes, valid``).

    Attributes:
      boxes: ``[B, M, 4] float32`` in the objects' ``box_format``; padding slots are 0.
      classes: ``[B, M] int32``; padding slots are 0.
      valid: ``[B, M] bool``, True for a real object.
    """

    boxes: np.ndarray
    classes: np.ndarray
    valid: np.ndarray


class ClippedBoxes(NamedTuple):
    """Boxes after the box policy of `clip_boxes` (unpacks as ``boxes, valid``).

    Attributes:
      boxes: ``[..., 4]`` in the input's ``box_format`` and dtype, clipped to the image;
        dropped slots are zero boxes.
      valid: ``[...]`` bool, True for a box that was valid and survived the policy.
    """

    boxes: Float[" *n 4"]
    valid: Bool[" *n"]


class InstanceBoxes(NamedTuple):
    """Boxes of the instances of an id map (`from_instance_ids`; unpacks as ``boxes, valid``).

    Attributes:
      boxes: ``[..., N, 4]`` float32 pixel ``"xyxy"`` boxes with exclusive ``x2``/``y2``
        pixel edges; zero boxes for instances without pixels.
      valid: ``[..., N]`` bool, True for an instance with at least one pixel.
    """

    boxes: Float[" *n 4"]
    valid: Bool[" *n"]


class BoxesTruncatedWarning(UserWarning):
    """`pad_objects` dropped objects of images holding more than ``max_boxes``."""


# ----------------------------------------------------------------------------------------
# Formats.


def check_format(box_format: Any, name: str = "box_format") -> str:
    """Returns ``box_format`` if it is one of `FORMATS`, else raises a `ValueError`."""
    if not isinstance(box_format, str) or box_format not in FORMATS:
        listed = ", ".join(repr(f) for f in FORMATS)
        raise ValueError(f"`{name}` must be one of {listed} (the `n` suffix: normalised by the "
                         f"image width and height, e.g. YOLO txt is 'cxcywhn'); got "
                         f"{box_format!r}.")
    return box_format


def _to_xyxy(b: Array, fmt: str) -> Array:
    # torchvision's formulas (ops/_box_convert.py), so pixel results agree bit for bit.
    p, q, r, s = (b[..., i] for i in range(4))
    if fmt == "xywh":
        return jnp.stack([p, q, p + r, q + s], axis=-1)
    if fmt == "cxcywh":
        half = jnp.asarray(0.5, b.dtype)
        return jnp.stack([p - half * r, q - half * s, p + half * r, q + half * s], axis=-1)
    return b


def _from_xyxy(b: Array, fmt: str) -> Array:
    x1, y1, x2, y2 = (b[..., i] for i in range(4))
    if fmt == "xywh":
        return jnp.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)
    if fmt == "cxcywh":
        two = jnp.asarray(2, b.dtype)
        return jnp.stack([(x1 + x2) / two, (y1 + y2) / two, x2 - x1, y2 - y1], axis=-1)
    return b


def _image_size(image_size: Any, batch_shape: tuple[int, ...], dtype: Any
                ) -> tuple[Array, Array]:
    """``(height, width)`` as arrays broadcast to ``batch_shape``; checks values if concrete."""
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise ValueError(f"`image_size` must be a pair (height, width) of scalars or of "
                         f"per-box arrays, got {image_size!r}.")
    out = []
    for side, v in zip(("height", "width"), image_size):
        v = jnp.asarray(checks.check_array(v, f"image_size {side}"))
        if not (jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)):
            raise TypeError(f"`image_size` {side} must be numeric, got {v.dtype}.")
        v = checks.broadcast(v, batch_shape, f"image_size {side}",
                             "(a scalar or one value per box)")
        checks.check_finite(v, f"image_size {side}")
        checks.require(v > 0, f"`image_size` {side} must be > 0 pixels.")
        out.append(v.astype(dtype))
    return out[0], out[1]


def convert(boxes: Float[" *n 4"], *, src: str, dst: str,
            image_size: tuple[ArrayLike, ArrayLike] | None = None) -> Float[" *n 4"]:
    r"""Converts boxes between the corner, COCO, centre and normalised (YOLO) formats.

    Formats: ``"xyxy"`` ``(x1, y1, x2, y2)`` corners; ``"xywh"`` ``(x1, y1, w, h)``
    top-left corner and size (COCO); ``"cxcywh"`` ``(cx, cy, w, h)`` centre and size; each
    with an ``n`` suffix when x and widths are divided by the image width and y and heights
    by the image height (``"cxcywhn"`` is the YOLO txt format).

    .. math::
      \mathrm{xywh} \to \mathrm{xyxy}: (x, y, x + w, y + h), \qquad
      \mathrm{cxcywh} \to \mathrm{xyxy}: (c_x - w/2,\ c_y - h/2,\ c_x + w/2,\ c_y + h/2)

    Every conversion goes through ``xyxy`` with torchvision's formulas, so the pixel formats
    agree with ``torchvision.ops.box_convert`` exactly; a round trip is exact up to float
    rounding.

    Args:
      boxes: ``[..., 4]`` boxes in ``src``, floating (integer boxes are converted to
        float32).
      src: Format of ``boxes``, one of `FORMATS` (static).
      dst: Format of the result, one of `FORMATS` (static).
      image_size: ``(height, width)`` in pixels, each a scalar or an array that broadcasts
        to ``boxes.shape[:-1]`` (one size per box). Required when exactly one of ``src`` and
        ``dst`` is normalised; ignored otherwise. Must be finite and > 0 (checked when
        concrete; under `jax.jit` through `jbalance.checks.checked`).

    Returns:
      ``[..., 4]`` boxes in ``dst``, in the dtype of ``boxes`` (float32 for integer boxes).

    Raises:
      ValueError: unknown format, last axis not 4, ``image_size`` missing when needed or
        not positive.
      TypeError: non-numeric boxes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import boxes
      >>> yolo = jnp.array([[0.5, 0.5, 0.25, 0.5]])        # cx, cy, w, h of a 640x480 image
      >>> boxes.convert(yolo, src="cxcywhn", dst="xyxy", image_size=(480, 640)).tolist()
      [[240.0, 120.0, 400.0, 360.0]]
      >>> boxes.convert(jnp.array([[10., 20., 30., 40.]]), src="xywh", dst="xyxy").tolist()
      [[10.0, 20.0, 40.0, 60.0]]

    References:
      torchvision `box_convert
      <https://pytorch.org/vision/main/generated/torchvision.ops.box_convert.html>`_;
      YOLO label format, `ultralytics docs <https://docs.ultralytics.com/datasets/detect/>`_.
    """
    check_format(src, "src")
    check_format(dst, "dst")
    b = jnp.asarray(checks.check_array(boxes, "boxes"))
    if b.ndim < 1 or b.shape[-1] != 4:
        raise ValueError(f"`boxes` must have shape [..., 4], got {tuple(b.shape)}.")
    if jnp.issubdtype(b.dtype, jnp.integer):
        b = b.astype(jnp.float32)
    elif not jnp.issubdtype(b.dtype, jnp.floating):
        raise TypeError(f"`boxes` must be numeric (floating), got {b.dtype}.")
    src_n, dst_n = src.endswith("n"), dst.endswith("n")
    src_base, dst_base = src.rstrip("n"), dst.rstrip("n")
    if src_n == dst_n:
        if src_base == dst_base:
            return b
        return _from_xyxy(_to_xyxy(b, src_base), dst_base)
    if image_size is None:
        raise ValueError(f"`image_size=(height, width)` is required to convert from {src!r} to "
                         f"{dst!r} (exactly one of them is normalised).")
    out_dtype = b.dtype
    cdt = checks.compute_dtype(out_dtype)
    h, w = _image_size(image_size, b.shape[:-1], cdt)
    xyxy = _to_xyxy(b.astype(cdt), src_base)
    scale = jnp.stack([w, h, w, h], axis=-1)
    xyxy = xyxy * scale if src_n else xyxy / scale
    return _from_xyxy(xyxy, dst_base).astype(out_dtype)


# ----------------------------------------------------------------------------------------
# The box policy.


def _clip_filter(xyxy: Array, valid: Array, lo_x: Any, lo_y: Any, hi_x: Any, hi_y: Any
                 ) -> tuple[Array, Array, Array]:
    """Clips pixel ``xyxy`` boxes to ``[lo, hi]``; returns ``(clipped, keep, raw_area)``.

    ``keep`` is ``valid`` and: every input coordinate finite, a positive original area
    (inverted and zero-size boxes drop), and a positive area after clipping (boxes wholly
    outside the bounds drop). Bounds broadcast against ``xyxy[..., 0]``.
    """
    dt = xyxy.dtype
    x1, y1, x2, y2 = (xyxy[..., i] for i in range(4))
    finite = jnp.all(jnp.isfinite(xyxy), axis=-1)
    zero = jnp.zeros((), dt)
    area = jnp.maximum(x2 - x1, zero) * jnp.maximum(y2 - y1, zero)
    nx1, nx2 = jnp.clip(x1, lo_x, hi_x), jnp.clip(x2, lo_x, hi_x)
    ny1, ny2 = jnp.clip(y1, lo_y, hi_y), jnp.clip(y2, lo_y, hi_y)
    keep = valid & finite & (area > 0) & (nx2 > nx1) & (ny2 > ny1)
    out = jnp.stack([nx1, ny1, nx2, ny2], axis=-1)
    return out, keep, jnp.where(finite, area, zero)


def clip_boxes(boxes: Float[" *n 4"], valid: Bool[" *n"], *, image_size: tuple[ArrayLike,
               ArrayLike],
               box_format: str = "xyxy") -> ClippedBoxes:
    r"""The box policy of jbalance's detection augmentations: clip, drop bad boxes.

    A box is clipped to the image ``[0, W] x [0, H]`` and stays valid only if it was valid,
    all four coordinates are finite, its area was positive (inverted or zero-size boxes
    drop) and some of it lies inside the image. Dropped slots become zero boxes with
    ``valid=False``. `augment.mosaic_boxes` and `augment.mixup_boxes` both apply exactly
    this rule to their input boxes (Mosaic then also clips to each tile and applies its
    ``min_size`` / ``min_visible`` filters).

    Args:
      boxes: ``[..., 4]`` floating boxes in ``box_format``.
      valid: ``[...]`` bool, False for padding slots.
      image_size: ``(height, width)`` in pixels, scalars or arrays broadcasting to
        ``valid.shape``.
      box_format: One of `FORMATS` (static); normalised boxes are clipped to ``[0, 1]``.

    Returns:
      A `ClippedBoxes` ``(boxes, valid)`` with the input shapes, boxes in ``box_format``
      and dtype.

    Raises:
      ValueError, TypeError: bad shapes, dtypes or format.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import boxes
      >>> b = jnp.array([[-4., 2., 8., 6.], [5., 5., 3., 9.], [jnp.nan, 0., 1., 1.]])
      >>> out, ok = boxes.clip_boxes(b, jnp.array([True, True, True]), image_size=(10, 6))
      >>> out[0].tolist(), ok.tolist()
      ([0.0, 2.0, 6.0, 6.0], [True, False, False])
    """
    check_format(box_format)
    b = jnp.asarray(checks.check_array(boxes, "boxes"))
    checks.check_floating(b, "boxes")
    if b.ndim < 1 or b.shape[-1] != 4:
        raise ValueError(f"`boxes` must have shape [..., 4], got {tuple(b.shape)}.")
    valid = jnp.asarray(checks.check_array(valid, "valid"))
    if valid.dtype != jnp.bool_ or valid.shape != b.shape[:-1]:
        raise ValueError(f"`valid` must be a bool array of shape {tuple(b.shape[:-1])}, got "
                         f"{valid.dtype} {tuple(valid.shape)}.")
    h, w = _image_size(image_size, b.shape[:-1], checks.compute_dtype(b.dtype))
    xyxy = convert(b, src=box_format, dst="xyxy", image_size=(h, w))
    zero = jnp.zeros((), xyxy.dtype)
    out, keep, _ = _clip_filter(xyxy, valid, zero, zero, w.astype(xyxy.dtype),
                                h.astype(xyxy.dtype))
    out = jnp.where(keep[..., None], out, zero)
    return ClippedBoxes(
            convert(out, src="xyxy", dst=box_format, image_size=(h, w)).astype(b.dtype), keep)


def check_plausible(boxes: Array, valid: Array, box_format: str, image_hw: tuple[int, int],
                    name: str = "boxes") -> None:
    """Raises (eagerly; a checkify check under `checked`) when boxes look mis-formatted.

    Pixel formats on an image of at least 32 pixels a side whose valid finite boxes all
    lie within ``[0, 1]``: these are normalised boxes passed as pixels (they would shrink
    to sub-pixel boxes and be dropped). Normalised formats with a coordinate beyond
    ``[-1, 2]``: pixel boxes passed as normalised. ``boxes`` are raw, in ``box_format``.
    """
    ok = valid & jnp.all(jnp.isfinite(boxes), axis=-1)
    mag = jnp.where(ok[..., None], jnp.abs(boxes), jnp.zeros((), boxes.dtype))
    if box_format.endswith("n"):
        lo = jnp.where(ok[..., None], boxes, jnp.zeros((), boxes.dtype))
        fine = (jnp.max(mag, initial=0.0) <= 2) & (jnp.min(lo, initial=0.0) >= -1)
        checks.require(fine, f"`{name}` are in the normalised format {box_format!r} but hold "
                             f"pixel-sized coordinates (> 2): pass the pixel format (e.g. "
                             f"box_format={box_format[:-1]!r}) or normalise them.")
    elif min(image_hw) >= 32:
        fine = ~jnp.any(ok) | (jnp.max(mag, initial=0.0) > 1)
        checks.require(fine, f"`{name}` are in the pixel format {box_format!r} but every valid "
                             f"box lies within [0, 1] on a {image_hw[0]}x{image_hw[1]} image: "
                             f"they look normalised; pass box_format={box_format + 'n'!r}.")


# ----------------------------------------------------------------------------------------
# Padding a label set's objects into fixed slots (host side).


def pad_objects(objects: Objects, image_indices: Int[" b"], *, max_boxes: int,
                on_overflow: str = "warn") -> PaddedObjects:
    r"""Gathers the objects of some images into fixed box slots (host-side NumPy).

    Row ``b`` holds the objects of image ``image_indices[b]`` in their order in
    ``objects`` (the reader's file order), padded with ``valid=False`` slots. An image with
    more than ``max_boxes`` objects keeps its first ``max_boxes``; by default the call then
    warns with a `BoxesTruncatedWarning` that says how many objects of how many images
    were dropped (``on_overflow="error"`` raises instead, ``"ignore"`` stays silent). Pick
    ``max_boxes`` from ``np.bincount(objects.image_index).max()`` to never drop.

    The result is ready for `augment.mosaic_boxes` / `augment.mixup_boxes` with
    ``box_format=objects.box_format``.

    Args:
      objects: An `Objects` (e.g. ``jbalance.io.load(path, boxes=True).objects``).
      image_indices: ``[B]`` integer image indices (rows of the label set), may repeat;
        an index with no objects gives an all-padding row.
      max_boxes: Slots per image ``M`` (a positive int).
      on_overflow: ``"warn"`` (default), ``"error"`` or ``"ignore"``.

    Returns:
      A `PaddedObjects` ``(boxes [B, M, 4] float32, classes [B, M] int32, valid [B, M]
      bool)`` of NumPy arrays; unpack it as ``boxes, classes, valid``.

    Raises:
      ValueError: inconsistent ``objects``, negative or non-integer indices, bad
        ``max_boxes``, or an overflow with ``on_overflow="error"``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import boxes
      >>> objs = boxes.Objects(np.array([0, 2, 0], np.int32), np.array([1, 0, 3], np.int32),
      ...                      np.arange(12, dtype=np.float32).reshape(3, 4), "xyxy")
      >>> b, c, v = boxes.pad_objects(objs, [0, 1, 2], max_boxes=2)
      >>> c.tolist(), v.tolist()
      ([[1, 3], [0, 0], [0, 0]], [[True, True], [False, False], [True, False]])
    """
    if not isinstance(objects, tuple) or len(objects) != 4:
        raise TypeError(f"`objects` must be a jbalance.boxes.Objects (image_index, class_index, "
                        f"boxes, box_format), got {type(objects).__name__}.")
    image_index, class_index, obj_boxes, box_format = objects
    check_format(box_format, "objects.box_format")
    image_index = np.asarray(image_index)
    class_index = np.asarray(class_index)
    obj_boxes = np.asarray(obj_boxes)
    k = image_index.shape[0] if image_index.ndim == 1 else -1
    if (image_index.ndim != 1 or class_index.shape != (k,) or obj_boxes.shape != (k, 4)):
        raise ValueError(f"`objects` must hold image_index [K], class_index [K] and boxes "
                         f"[K, 4] of one K, got {image_index.shape}, {class_index.shape}, "
                         f"{obj_boxes.shape}.")
    if not np.issubdtype(image_index.dtype, np.integer) or (k and image_index.min() < 0):
        raise ValueError("`objects.image_index` must hold non-negative integers.")
    if isinstance(max_boxes, bool) or not isinstance(max_boxes, (int, np.integer)) \
            or max_boxes < 1:
        raise ValueError(f"`max_boxes` must be a positive int, got {max_boxes!r}.")
    checks.check_one_of(on_overflow, ("warn", "error", "ignore"), "on_overflow")
    idx = np.asarray(image_indices)
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise ValueError(f"`image_indices` must be a 1-D array of integer image indices, got "
                         f"dtype {idx.dtype} shape {idx.shape}.")
    idx = idx.astype(np.int64)
    if idx.size and idx.min() < 0:
        raise ValueError(f"`image_indices` must be non-negative, got {int(idx.min())}.")
    # Objects grouped by image, file order kept within an image (stable sort).
    order = np.argsort(image_index, kind="stable")
    sorted_images = image_index[order]
    start = np.searchsorted(sorted_images, idx, side="left")
    count = np.searchsorted(sorted_images, idx, side="right") - start
    m = int(max_boxes)
    slot = np.arange(m)
    valid = slot[None, :] < count[:, None]
    boxes_out = np.zeros((idx.size, m, 4), np.float32)
    classes_out = np.zeros((idx.size, m), np.int32)
    if k:
        rows = order[np.where(valid, start[:, None] + slot[None, :], 0)]
        boxes_out[valid] = obj_boxes[rows[valid]]
        classes_out[valid] = class_index[rows[valid]]
    over = count > m
    if over.any() and on_overflow != "ignore":
        msg = (f"pad_objects: {int(over.sum())} of {idx.size} images hold more than "
               f"max_boxes={m} objects; kept the first {m} of each and dropped "
               f"{int((count[over] - m).sum())} objects (largest image: {int(count.max())}). "
               f"Raise `max_boxes` to keep them.")
        if on_overflow == "error":
            raise ValueError(msg)
        warnings.warn(msg, BoxesTruncatedWarning, stacklevel=2)
    return PaddedObjects(boxes_out, classes_out, valid)


# ----------------------------------------------------------------------------------------
# Instance id maps -> boxes.


def from_instance_ids(instance_ids: Int[" *b h w"], num_instances: int) -> InstanceBoxes:
    r"""The enclosing box of every instance of an id map (pure JAX).

    ``instance_ids`` follows `jbalance.augment.copy_paste`: 0 is no instance and id ``k``
    is slot ``k - 1``. Pixel ``(y, x)`` covers ``[x, x + 1) x [y, y + 1)``, so the box of
    an instance is ``(min x, min y, max x + 1, max y + 1)``: x2/y2 are exclusive pixel
    edges, the convention of the package's pixel boxes (`clip_boxes` clips to
    ``[0, W] x [0, H]``; a one-pixel instance has width 1). torchvision's
    ``masks_to_boxes`` returns the inclusive ``max x, max y`` instead: its boxes are ours
    minus 1 in ``x2`` and ``y2``.

    Args:
      instance_ids: ``[..., H, W]`` integer ids; ids outside ``[1, num_instances]`` belong
        to no box (they are not checked).
      num_instances: Number of slots ``N`` (static positive int), e.g. ``2M`` for
        `copy_paste` output.

    Returns:
      An `InstanceBoxes` ``(boxes [..., N, 4] float32 xyxy, valid [..., N] bool)``; an
      instance without pixels has a zero box and ``valid=False``. Use
      ``valid & pasted.valid`` with `copy_paste` output.

    Raises:
      ValueError, TypeError: ``instance_ids`` of rank < 2 or not integer, bad
        ``num_instances``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import boxes
      >>> ids = jnp.zeros((6, 8), jnp.int32).at[1:3, 2:7].set(2)
      >>> b, v = boxes.from_instance_ids(ids, 2)
      >>> b.tolist(), v.tolist()
      ([[0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 7.0, 3.0]], [False, True])
    """
    checks.check_min_rank(instance_ids, 2, "instance_ids", "[..., height, width]")
    checks.check_integer(instance_ids, "instance_ids")
    if (isinstance(num_instances, bool) or not isinstance(num_instances, (int, np.integer))
            or num_instances < 1):
        raise ValueError(f"`num_instances` must be a positive int (static), got "
                         f"{num_instances!r}.")
    n = int(num_instances)
    ids = jnp.asarray(instance_ids)
    *lead, h, w = ids.shape
    flat = ids.reshape(-1, h, w)
    # Slot of each pixel, n (one past the last slot: dropped) for no instance.
    slot = jnp.where((flat >= 1) & (flat <= n), flat.astype(jnp.int32) - 1, jnp.int32(n))
    rows = jnp.broadcast_to(jnp.arange(h, dtype=jnp.int32)[:, None], (h, w))
    cols = jnp.broadcast_to(jnp.arange(w, dtype=jnp.int32)[None, :], (h, w))

    def one(s):
        # Which rows / columns each slot touches: two scatters over the pixels.
        in_rows = jnp.zeros((n, h), bool).at[s, rows].set(True, mode="drop")
        in_cols = jnp.zeros((n, w), bool).at[s, cols].set(True, mode="drop")
        return in_rows, in_cols

    in_rows, in_cols = jax.vmap(one)(slot)
    valid = in_rows.any(-1)
    y1 = jnp.argmax(in_rows, -1)
    y2 = h - jnp.argmax(in_rows[..., ::-1], -1)
    x1 = jnp.argmax(in_cols, -1)
    x2 = w - jnp.argmax(in_cols[..., ::-1], -1)
    out = jnp.stack([x1, y1, x2, y2], -1).astype(jnp.float32)
    out = jnp.where(valid[..., None], out, jnp.zeros((), jnp.float32))
    return InstanceBoxes(out.reshape(*lead, n, 4), valid.reshape(*lead, n))
