"""COCO segmentations (polygons, uncompressed and compressed RLE) as pixel counts, in NumPy.

Every segmentation becomes the list of its foreground runs in COCO's column-major pixel order
(``position = x * height + y``), as ``(starts, ends)`` int64 arrays; a class's pixels in an image
are the length of the union of its instances' runs. No raster is built, so memory follows the
number of runs (bounded by the annotation's own size), not the image's pixels. Polygons are
rasterised exactly as pycocotools' ``rleFrPoly`` does (a port of its integer walk along the
boundary), compressed RLE strings are decoded as its ``rleFrString`` does; the tests compare
both with pycocotools itself, which is not needed at run time.
"""

import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from jbalance._src.io.coco import _ann_where, _build, _columns_standard, _loads
from jbalance._src.io.common import (
    LabelFormatError,
    LabelSet,
    PathLike,
    _read_bytes,
)
from jbalance._src.io.masks import MAX_MASK_PIXELS

# A polygon may walk at most this many pixels along its boundary: 16 image perimeters plus
# 16 pixels per vertex. Real outlines stay far below; the bound keeps a hostile polygon
# (a million vertices zig-zagging across a large image) from costing unbounded time and memory.
_WALK_PERIMETERS = 16
_WALK_PER_VERTEX = 16
_SCALE = 5.0  # pycocotools' boundary upsampling factor (rleFrPoly)
_MAX_RLE_DIGITS = 12  # 60 bits: more 6-bit characters in one number is not a COCO RLE
_CHUNK = 1 << 18  # boundary points walked at a time


class _SegmentationError(ValueError):
    """A malformed segmentation; the reader adds the file and the annotation."""


# --------------------------------------------------------------------------------------------
# Run-length encodings


def rle_string_counts(s: str) -> np.ndarray:
    """Decodes a COCO compressed RLE string (pycocotools' ``rleFrString``) into run lengths.

    Each number is written in 6-bit characters (``chr(48 + bits)``): 5 value bits and a
    continuation bit, the last character's bit 4 the sign; from the fourth number on, each is
    stored as the difference to the number two places back.

    Raises:
      _SegmentationError: On a character outside ``'0'..'o'``, a number cut off at the end of
        the string, a number of more than 12 characters, or a negative run length.
    """
    if not s.isascii():
        raise _SegmentationError("compressed RLE 'counts' must be ASCII characters '0'..'o'")
    b = np.frombuffer(s.encode("ascii"), np.uint8).astype(np.int64) - 48
    if b.size == 0:
        return np.zeros(0, np.int64)
    if b.min() < 0 or b.max() > 63:
        k = int(np.argmax((b < 0) | (b > 63)))
        raise _SegmentationError(f"compressed RLE 'counts' has character {s[k]!r} at {k}; "
                                 f"COCO RLE strings use '0'..'o'")
    last = np.flatnonzero((b & 0x20) == 0)  # the final character of every number
    if last.size == 0 or last[-1] != b.size - 1:
        raise _SegmentationError("compressed RLE 'counts' ends in the middle of a number "
                                 "(truncated string)")
    first = np.concatenate([[0], last[:-1] + 1])
    lengths = last - first + 1
    if lengths.max() > _MAX_RLE_DIGITS:
        raise _SegmentationError(f"compressed RLE 'counts' holds a number of "
                                 f"{int(lengths.max())} characters (at most "
                                 f"{_MAX_RLE_DIGITS})")
    digit = np.arange(b.size) - np.repeat(first, lengths)
    x = np.add.reduceat((b & 0x1F) << (5 * digit), first)
    negative = (b[last] & 0x10) != 0
    x = np.where(negative, x - (np.int64(1) << (5 * lengths)), x)
    counts = x.copy()
    counts[1::2] = np.cumsum(x[1::2])  # counts[i] = x[i] + counts[i - 2] for i > 2
    if x.size > 2:
        counts[2::2] = np.cumsum(x[2::2])
    if counts.size and counts.min() < 0:
        k = int(np.argmax(counts < 0))
        raise _SegmentationError(f"compressed RLE 'counts' decodes to a negative run length "
                                 f"({int(counts[k])} at run {k})")
    return counts


def _runs_to_intervals(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground ``[start, end)`` positions of run lengths that start with background."""
    bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    ones = counts.size // 2
    starts, ends = bounds[1:2 * ones:2], bounds[2:2 * ones + 1:2]
    keep = ends > starts
    return starts[keep], ends[keep]


def _check_size(size: Any, height: int, width: int) -> None:
    if not (isinstance(size, list) and len(size) == 2
            and all(type(v) is int for v in size)):
        raise _SegmentationError(f"RLE 'size' must be [height, width] integers, got "
                                 f"{str(size)[:40]}")
    if (size[0], size[1]) != (height, width):
        raise _SegmentationError(f"RLE mask is {size[0]}x{size[1]} (height x width) but its "
                                 f"image is {height}x{width} in 'images'; the mask belongs to "
                                 f"another image or was encoded at another resolution")


def _rle_intervals(seg: dict, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    if "counts" not in seg or "size" not in seg:
        raise _SegmentationError("an RLE segmentation needs 'counts' and 'size'")
    _check_size(seg["size"], height, width)
    raw = seg["counts"]
    if isinstance(raw, str):
        counts = rle_string_counts(raw)
    elif isinstance(raw, list):
        if not all(type(v) is int for v in raw):
            bad = next(v for v in raw if type(v) is not int)
            raise _SegmentationError(f"uncompressed RLE 'counts' must be whole numbers, got "
                                     f"{str(bad)[:30]}")
        try:
            counts = np.asarray(raw, np.int64)
        except OverflowError:
            raise _SegmentationError("uncompressed RLE 'counts' holds a number beyond "
                                     "64 bits") from None
        if counts.size and counts.min() < 0:
            raise _SegmentationError(f"uncompressed RLE 'counts' holds a negative run length "
                                     f"({int(counts.min())})")
    else:
        raise _SegmentationError(f"RLE 'counts' must be a list of run lengths or a "
                                 f"compressed string, got {type(raw).__name__}")
    total = int(counts.sum()) if counts.size else 0
    if total != height * width:
        raise _SegmentationError(f"RLE run lengths sum to {total}, but a {height}x{width} "
                                 f"mask has {height * width} pixels (truncated or corrupt "
                                 f"'counts')")
    return _runs_to_intervals(counts)


# --------------------------------------------------------------------------------------------
# Polygons (a NumPy port of pycocotools' rleFrPoly, maskApi.c)


def _polygon_toggles(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Column-major positions where the polygon's mask flips (pycocotools' y-boundary points).

    ``xy`` is ``[x1, y1, x2, y2, ...]`` (float64, finite, at least three points). The C code
    casts with truncation toward zero (``(int)(v + .5)``), computes in double in the same
    order, and skips zero-length edges' slopes (0/0 there, whose point is never used). The
    boundary is walked in chunks of about `_CHUNK` points, so the temporaries stay small
    whatever the polygon's length.
    """
    x = np.trunc(_SCALE * xy[0::2] + 0.5).astype(np.int64)
    y = np.trunc(_SCALE * xy[1::2] + 0.5).astype(np.int64)
    x0, x1 = x, np.roll(x, -1)
    y0, y1 = y, np.roll(y, -1)
    dx, dy = np.abs(x1 - x0), np.abs(y0 - y1)
    along_x = dx >= dy
    flip = (along_x & (x0 > x1)) | (~along_x & (y0 > y1))
    xs, xe = np.where(flip, x1, x0), np.where(flip, x0, x1)
    ys, ye = np.where(flip, y1, y0), np.where(flip, y0, y1)
    steps = np.where(along_x, dx, dy)
    rise = np.where(along_x, ye - ys, xe - xs).astype(np.float64)
    slope = np.divide(rise, steps, out=np.zeros_like(rise), where=steps > 0)
    n = steps + 1
    ends = np.cumsum(n)
    cuts = np.searchsorted(ends, np.arange(_CHUNK, int(ends[-1]), _CHUNK), side="left")
    bounds = np.unique(np.concatenate([[0], cuts + 1, [n.size]]))
    bounds = bounds[bounds <= n.size]
    out = []
    prev_u = prev_v = None
    for e0, e1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        ne = n[e0:e1]
        edge = np.repeat(np.arange(e0, e1), ne)
        d = np.arange(int(ne.sum())) - np.repeat(np.cumsum(ne) - ne, ne)
        t = np.where(flip[edge], steps[edge] - d, d)
        e_along = along_x[edge]
        lin = np.where(e_along, ys[edge], xs[edge]).astype(np.float64) + slope[edge] * t + 0.5
        lin = np.trunc(lin).astype(np.int64)
        u = np.where(e_along, t + xs[edge], lin)
        v = np.where(e_along, lin, t + ys[edge])
        del edge, d, t, e_along, lin
        if prev_u is not None:  # the walk goes on from the previous chunk's last point
            u, v = np.concatenate([[prev_u], u]), np.concatenate([[prev_v], v])
        prev_u, prev_v = u[-1], v[-1]
        out.append(_boundary_points(u, v, height, width))
    out.append(np.array([height * width], np.int64))
    return np.concatenate(out)


def _boundary_points(u: np.ndarray, v: np.ndarray, height: int, width: int) -> np.ndarray:
    """Points on the y-boundary of a walk ``(u, v)``, downsampled back to pixel columns."""
    j = np.flatnonzero(u[1:] != u[:-1]) + 1
    uj, up = u[j], u[j - 1]
    xd = (np.where(uj < up, uj, uj - 1).astype(np.float64) + 0.5) / _SCALE - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    yd = (np.minimum(v[j], v[j - 1]).astype(np.float64) + 0.5) / _SCALE - 0.5
    yd = np.ceil(np.clip(yd, 0, height))
    return xd[keep].astype(np.int64) * height + yd[keep].astype(np.int64)


def _toggles_to_intervals(pos: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """``[start, end)`` runs of the parity of flips at ``pos`` (pairs cancel, as in rleFrPoly)."""
    uniq, num = np.unique(pos, return_counts=True)
    flips = uniq[num % 2 == 1]
    if flips.size % 2:
        flips = np.append(flips, total)
    starts, ends = flips[0::2], np.minimum(flips[1::2], total)
    keep = ends > starts
    return starts[keep], ends[keep]


def _polygon_intervals(poly: Any, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(poly, list) or not all(type(v) in (int, float) for v in poly):
        raise _SegmentationError(f"a polygon must be a list of numbers [x1, y1, x2, y2, ...], "
                                 f"got {str(poly)[:60]}")
    if len(poly) % 2 or len(poly) < 6:
        raise _SegmentationError(f"a polygon needs x, y pairs of at least 3 points (6 "
                                 f"numbers), got {len(poly)} numbers (pycocotools reads 4 "
                                 f"numbers as a box); fix or remove the polygon")
    try:
        xy = np.asarray(poly, np.float64)
    except OverflowError:  # an integer beyond float64
        xy = np.array([math.inf])
    if not np.isfinite(xy).all():
        bad = next(v for v in poly if not _finite(v))
        raise _SegmentationError(f"polygon coordinate {str(bad)[:30]} is not a finite number")
    xs, ys = xy[0::2], xy[1::2]
    if xs.min() < -width or xs.max() > 2 * width or ys.min() < -height or \
            ys.max() > 2 * height:
        raise _SegmentationError(f"polygon reaches ({xs.min():.6g}..{xs.max():.6g}, "
                                 f"{ys.min():.6g}..{ys.max():.6g}), far outside its "
                                 f"{height}x{width} image; COCO polygons are in pixels of "
                                 f"their image")
    walk = float(np.maximum(np.abs(np.diff(xs, append=xs[0])),
                            np.abs(np.diff(ys, append=ys[0]))).sum())
    limit = _WALK_PERIMETERS * 2 * (height + width) + _WALK_PER_VERTEX * xs.size
    if walk > limit:
        raise _SegmentationError(f"polygon boundary walks {walk:.0f} pixels, more than "
                                 f"{limit} (16 perimeters of its {height}x{width} image plus "
                                 f"16 per vertex): not an object outline")
    return _toggles_to_intervals(_polygon_toggles(xy, height, width), height * width)


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def segmentation_intervals(seg: Any, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The foreground runs of one COCO ``segmentation`` (polygons or RLE) on its image.

    Returns ``(starts, ends)`` int64 arrays of column-major positions ``x * height + y``;
    the runs of several polygons may overlap (their union is the mask, as pycocotools'
    ``merge``).

    Raises:
      _SegmentationError: If the segmentation is malformed (see `read_coco_masks`).
    """
    if isinstance(seg, dict):
        return _rle_intervals(seg, height, width)
    if isinstance(seg, list):
        parts = [_polygon_intervals(p, height, width) for p in seg]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    raise _SegmentationError(f"'segmentation' must be a list of polygons or an RLE object "
                             f"{{'counts', 'size'}}, got {type(seg).__name__}")


def union_length(starts: np.ndarray, ends: np.ndarray) -> int:
    """Number of positions covered by the union of ``[starts[i], ends[i])``."""
    if starts.size == 0:
        return 0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    before = np.concatenate([[s[0]], reach[:-1]])  # furthest end of the runs before each
    return int(np.maximum(e - np.maximum(s, before), 0).sum())


def intervals_to_mask(starts: np.ndarray, ends: np.ndarray, height: int,
                      width: int) -> np.ndarray:
    """``bool [height, width]`` mask of column-major runs (for tests and callers)."""
    flat = np.zeros(height * width + 1, np.int32)
    np.add.at(flat, starts, 1)
    np.add.at(flat, ends, -1)
    return (np.cumsum(flat[:-1]) > 0).reshape(width, height).T


# --------------------------------------------------------------------------------------------
# Reader


def read_coco_masks(path: PathLike, *, include_crowd: bool = False, boxes: bool = False,
                    image_root: PathLike | None = None,
                    max_pixels: int = MAX_MASK_PIXELS) -> LabelSet:
    r"""Reads a COCO instances JSON file with its segmentations: pixel and instance counts.

    Rows, columns, ``counts``, ``image_ids``, ``image_paths`` (and with ``boxes=True``
    ``objects``) are exactly those of `read_coco` on the same file, so a segmentation and a
    detection plan of one data set agree. On top of them:

    * ``pixel_counts[i, c]``: the pixels of image ``i`` covered by at least one counted
      instance of class ``c`` (the union of their masks, so overlapping instances of one class
      count once; a pixel covered by two classes counts for both). COCO has no background
      class: the uncovered pixels are ``height * width - `` the covered ones.
    * ``instance_counts``: the counted annotations per image and class (equal to ``counts``).
    * ``image_sizes``: ``(height, width)`` from ``images``.

    Segmentations may be polygons (``[[x1, y1, x2, y2, ...], ...]``, pixel coordinates),
    uncompressed RLE (``{"counts": [...], "size": [h, w]}``, as COCO writes crowd regions) or
    compressed RLE (``counts`` a string, as ``pycocotools.mask.encode`` writes). Polygons are
    rasterised and strings decoded exactly as pycocotools does (tested pixel for pixel), in
    NumPy: pycocotools is not needed. An empty list is an instance without pixels. The work is
    per image, run by run: no mask raster is ever allocated.

    Args:
      path: The JSON file (e.g. ``annotations/instances_train2017.json``).
      include_crowd: Whether ``"iscrowd": 1`` annotations count, in both the instance and the
        pixel counts. Default False, as `read_coco`.
      boxes: Also return ``objects`` (the ``bbox`` of every counted annotation), as `read_coco`.
      image_root: Folder the ``file_name`` are relative to, as `read_coco`.
      max_pixels: Largest ``height * width`` of an image with annotations (default
        ``MAX_MASK_PIXELS``, 2**26, e.g. 8192 x 8192).

    Returns:
      A `LabelSet` with ``format="coco"`` and ``pixel_counts`` (int64), ``instance_counts``
      (int32) and ``image_sizes`` (int32 ``[N, 2]``) set.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: On everything `read_coco` rejects, and (naming the file, the
        annotation, its id and its image id) a counted annotation without ``segmentation``;
        a polygon with an odd number or fewer than 6 numbers, a non-finite coordinate, or one
        far outside its image; RLE ``counts`` that are negative, malformed or do not sum to
        ``height * width``; an RLE ``size`` different from the image's; an image with
        annotations but without a valid ``height``/``width`` or larger than ``max_pixels``.

    Examples:
      >>> import json, tempfile, pathlib
      >>> from jbalance.io import read_coco_masks
      >>> doc = {"images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 5}],
      ...        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
      ...        "annotations": [
      ...            {"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 2, 4],
      ...             "segmentation": {"counts": [4, 8, 8], "size": [4, 5]}}]}
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "instances.json"
      >>> _ = p.write_text(json.dumps(doc))
      >>> ls = read_coco_masks(p)
      >>> ls.counts.tolist(), ls.pixel_counts.tolist(), ls.image_sizes.tolist()
      ([[0, 1]], [[0, 8]], [[4, 5]])
    """
    path = pathlib.Path(path)
    raw = _read_bytes(path)
    doc = _loads(raw, path)
    cols = _columns_standard(doc, path, boxes)
    base = _build(cols, path, len(raw), include_crowd, boxes, image_root)
    del raw
    anns = doc["annotations"]
    images = doc["images"]
    image_index = {key: i for i, key in enumerate(cols.image_keys)}
    cat_index = {key: j for j, key in enumerate(cols.cat_keys)}
    n, c = base.counts.shape
    keep = [k for k, crowd in enumerate(cols.ann_crowd) if include_crowd or not crowd]
    rows = np.fromiter((image_index[cols.ann_images[k]] for k in keep), np.int64, len(keep))
    order = np.asarray(keep, np.int64)[np.argsort(rows, kind="stable")]
    pixel_counts = np.zeros((n, c), np.int64)
    sizes = _image_sizes(images, path)

    def where(k: int) -> str:
        return f"{_ann_where(k, cols.ann_id)}, image_id {cols.ann_images[k]!r}"

    start = 0
    sorted_rows = np.sort(rows, kind="stable")
    while start < order.size:
        i = int(sorted_rows[start])
        stop = int(np.searchsorted(sorted_rows, i, side="right"))
        hw = sizes[i]
        if hw is None:
            k = int(order[start])
            raise LabelFormatError(path, f"images[{i}]", f"image {cols.image_keys[i]!r} has "
                                   f"annotations with masks (e.g. {_ann_where(k, cols.ann_id)}) "
                                   f"but no valid 'height' and 'width'")
        h, w = hw
        if h * w > max_pixels:
            raise LabelFormatError(path, f"images[{i}]", f"image {cols.image_keys[i]!r} is "
                                   f"{h}x{w} = {h * w} pixels, more than max_pixels="
                                   f"{max_pixels}; pass a larger max_pixels=... if that is "
                                   f"its real size")
        per_class: dict[int, tuple[list, list]] = {}
        for k in order[start:stop].tolist():
            ann = anns[k]
            if "segmentation" not in ann:
                raise LabelFormatError(path, where(k), "no 'segmentation' (a detection-only "
                                       "file? read it without masks=True)")
            try:
                s, e = segmentation_intervals(ann["segmentation"], h, w)
            except _SegmentationError as err:
                raise LabelFormatError(path, where(k), str(err)) from None
            lists = per_class.setdefault(cat_index[cols.ann_cats[k]], ([], []))
            lists[0].append(s)
            lists[1].append(e)
        for j, (s_list, e_list) in per_class.items():
            pixel_counts[i, j] = union_length(np.concatenate(s_list), np.concatenate(e_list))
        start = stop
    all_sizes = None
    if all(s is not None for s in sizes):
        all_sizes = np.asarray(sizes, np.int32).reshape(n, 2)
    return base._replace(pixel_counts=pixel_counts, instance_counts=base.counts.copy(),
                         image_sizes=all_sizes)


def _image_sizes(images: Sequence[Any], path: pathlib.Path) -> list[tuple[int, int] | None]:
    """``(height, width)`` of every image, None where it records no valid size."""
    out: list[tuple[int, int] | None] = []
    for rec in images:
        h, w = rec.get("height"), rec.get("width")
        ok = all(type(v) in (int, float) and math.isfinite(v) and v == int(v) and
                 0 < v <= 1 << 30 for v in (h, w))
        out.append((int(h), int(w)) if ok else None)
    return out
