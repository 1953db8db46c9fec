"""COCO segmentations (polygons, uncompressed and compressed RLE) as pixel counts, in NumPy.

Every segmentation becomes the list of its foreground runs in COCO's column-major pixel order
(``position = x * height + y``), as ``(starts, ends)`` int64 arrays; a class's pixels in an image
are the length of the union of its instances' runs. No raster is built, so memory follows the
number of runs (at most one per pixel column a polygon crosses, or the RLE's own length), not
the image's pixels. Polygons are rasterised exactly as pycocotools' ``rleFrPoly`` does (its
flips, computed only at the steps of its boundary walk that cross a pixel column), compressed
RLE strings are decoded as its ``rleFrString`` does; the tests compare both with pycocotools
itself, pixel for pixel, which is not needed at run time. The polygons of many images are
rasterised in one batch of array operations.
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
# (a million vertices zig-zagging across a large image) from costing time and memory out of
# proportion to its size in the file.
_WALK_PERIMETERS = 16
_WALK_PER_VERTEX = 16
_SCALE = 5.0  # pycocotools' boundary upsampling factor (rleFrPoly)
_MAX_RLE_DIGITS = 12  # 60 bits: more 6-bit characters in one number is not a COCO RLE
_BATCH_VERTICES = 1 << 16  # polygon coordinates rasterised together


class _SegmentationError(ValueError):
    """A malformed segmentation; the reader adds the file and the annotation."""

    owner: int = -1  # set by `_rasterise`: which polygon of a batch failed


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
# Polygons (a NumPy port of pycocotools' rleFrPoly, maskApi.c), many at a time


def _check_polygon(poly: Any, height: int, width: int) -> None:
    """Raises `_SegmentationError` for a malformed polygon (the message for the reader)."""
    if not isinstance(poly, list) or not set(map(type, poly)) <= {int, float}:
        raise _SegmentationError(f"a polygon must be a list of numbers [x1, y1, x2, y2, ...], "
                                 f"got {str(poly)[:60]}")
    if len(poly) % 2 or len(poly) < 6:
        raise _SegmentationError(f"a polygon needs x, y pairs of at least 3 points (6 "
                                 f"numbers), got {len(poly)} numbers (pycocotools reads 4 "
                                 f"numbers as a box); fix or remove the polygon")
    bad = next((v for v in poly if not _finite(v)), None)
    if bad is not None:
        raise _SegmentationError(f"polygon coordinate {str(bad)[:30]} is not a finite number")
    xy = np.asarray(poly, np.float64)
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


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


class _Polygons:
    """Polygons gathered for one batched rasterisation: coordinates and, per polygon, its
    vertex count, image size, group (the image-and-class union it belongs to) and owner (an
    index the caller maps back to its annotation)."""

    def __init__(self) -> None:
        self.coords: list[float] = []
        self.lengths: list[int] = []
        self.sizes: list[tuple[int, int]] = []
        self.groups: list[int] = []
        self.owners: list[int] = []
        self.polys: list[list] = []

    def add(self, poly: Any, height: int, width: int, group: int, owner: int) -> None:
        # Cheap structural checks here; the numeric ones run on the whole batch.
        if not isinstance(poly, list) or len(poly) % 2 or len(poly) < 6 or \
                not set(map(type, poly)) <= {int, float}:
            _check_polygon(poly, height, width)
        self.coords.extend(poly)
        self.lengths.append(len(poly) // 2)
        self.sizes.append((height, width))
        self.groups.append(group)
        self.owners.append(owner)
        self.polys.append(poly)

    def __len__(self) -> int:
        return len(self.lengths)


def _rasterise(batch: _Polygons) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(group, start, end, stride)`` of the batch's foreground runs, checked.

    Runs are column-major positions in their own image; ``stride`` exceeds every image's
    ``height * width``, so ``group * stride + position`` keeps groups apart on one line.

    Raises:
      _SegmentationError: With ``.owner`` set, for the first polygon that is non-finite, far
        outside its image or walks too long a boundary.
    """
    lengths = np.asarray(batch.lengths, np.int64)
    hw = np.asarray(batch.sizes, np.int64).reshape(-1, 2)
    height, width = hw[:, 0], hw[:, 1]
    stride = int((height * width).max()) + 1
    try:
        xy = np.asarray(batch.coords, np.float64).reshape(-1, 2)
    except OverflowError:  # an integer beyond float64
        xy = np.full((int(lengths.sum()), 2), np.inf)
    first = np.cumsum(lengths) - lengths
    # Per-polygon checks, vectorised: finite, near the image, a plausible boundary length.
    vert_poly = np.repeat(np.arange(lengths.size), lengths)
    nxt = np.arange(vert_poly.size) + 1
    nxt[first + lengths - 1] = first
    with np.errstate(invalid="ignore"):
        lo, hi = np.minimum.reduceat(xy, first), np.maximum.reduceat(xy, first)
        walk = np.add.reduceat(np.abs(xy[nxt] - xy).max(axis=1), first)
    ok = np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1)
    ok &= (lo[:, 0] >= -width) & (hi[:, 0] <= 2 * width)
    ok &= (lo[:, 1] >= -height) & (hi[:, 1] <= 2 * height)
    ok &= walk <= _WALK_PERIMETERS * 2 * (height + width) + _WALK_PER_VERTEX * lengths
    if not ok.all():
        p = int(np.argmin(ok))
        try:
            _check_polygon(batch.polys[p], *batch.sizes[p])
        except _SegmentationError as e:
            e.owner = batch.owners[p]
            raise
        raise AssertionError("unreachable: the polygon check disagrees")  # pragma: no cover
    # rleFrPoly walks every edge on a 5x grid (vertices rounded as `(int)(5 v + .5)`), then
    # keeps the steps that cross a pixel column's centre (grid column 5c + 2): there the
    # mask flips at row ceil(clip((min(v) + .5) / 5 - .5, 0, h)). Only those steps are
    # computed here, with the C expressions evaluated in the same order, so the flips are
    # pycocotools' own; the cost is per column crossed, not per grid step.
    x = np.trunc(_SCALE * xy[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(_SCALE * xy[:, 1] + 0.5).astype(np.int64)
    x0, x1, y0, y1 = x, x[nxt], y, y[nxt]
    dx, dy = np.abs(x1 - x0), np.abs(y0 - y1)
    along_x = dx >= dy
    flip = (along_x & (x0 > x1)) | (~along_x & (y0 > y1))
    xs, ys = np.where(flip, x1, x0), np.where(flip, y1, y0)
    xe, ye = np.where(flip, x0, x1), np.where(flip, y0, y1)
    steps = np.where(along_x, dx, dy)
    rise = np.where(along_x, ye - ys, xe - xs).astype(np.float64)
    # 0/0 on a zero-length edge in C; such an edge has no step, so its slope is never used.
    slope = np.divide(rise, steps, out=np.zeros_like(rise), where=steps > 0)
    walked = steps > 0
    col_a, v_a, e_a = _crossings_along_x(xs, ys, steps, slope, np.flatnonzero(walked & along_x),
                                         width[vert_poly])
    col_b, v_b, e_b = _crossings_along_y(xs, ys, steps, slope,
                                         np.flatnonzero(walked & ~along_x), width[vert_poly])
    col = np.concatenate([col_a, col_b])
    poly = vert_poly[np.concatenate([e_a, e_b])]
    h = height[poly]
    yd = (np.concatenate([v_a, v_b]).astype(np.float64) + 0.5) / _SCALE - 0.5
    yd = np.ceil(np.clip(yd, 0, h)).astype(np.int64)
    keys = [poly * stride + col * h + yd,
            # every polygon's walk ends with a flip at height * width, as rleFrPoly appends
            np.arange(lengths.size) * stride + height * width]
    return _parity_runs(np.concatenate(keys), height * width, stride, batch.groups)


def _column_range(lo: np.ndarray, hi: np.ndarray,
                  width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, count)`` of the pixel columns ``c < width`` with ``lo <= 5c + 2 <= hi``."""
    first = np.maximum(-((2 - lo) // 5), 0)  # ceil((lo - 2) / 5), at least 0
    last = np.minimum((hi - 2) // 5, width - 1)
    return first, np.maximum(last - first + 1, 0)


def _expand(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, value)``: for every ``i``, ``count[i]`` values ``first[i], first[i] + 1, ...``."""
    owner = np.repeat(np.arange(count.size), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return owner, first[owner] + offset


def _crossings_along_x(xs: np.ndarray, ys: np.ndarray, steps: np.ndarray, slope: np.ndarray,
                       e: np.ndarray, width: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges walked along x (``u = t + xs``, ``v = (int)(ys + s t + .5)``): ``(column,
    min(v) of the crossing step, edge)`` for every step from grid column 5c + 2 to 5c + 3."""
    first, count = _column_range(xs[e], xs[e] + steps[e] - 1, width[e])
    k, c = _expand(first, count)
    e = e[k]
    t = (5 * c + 2 - xs[e]).astype(np.float64)
    base, s = ys[e].astype(np.float64), slope[e]
    v0 = np.trunc(base + s * t + 0.5).astype(np.int64)
    v1 = np.trunc(base + s * (t + 1) + 0.5).astype(np.int64)
    return c, np.minimum(v0, v1), e


def _crossings_along_y(xs: np.ndarray, ys: np.ndarray, steps: np.ndarray, slope: np.ndarray,
                       e: np.ndarray, width: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges walked along y (``v = t + ys``, ``u = (int)(xs + s t + .5)``, ``|s| < 1``): u
    moves monotonically by at most one per step; find the step of every crossing of a
    column centre, starting from the real-number solution and correcting it with the exact
    expression (rounding moves it by a step at most)."""
    base, s, n = xs[e].astype(np.float64), slope[e], steps[e]

    def u(k: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.trunc(base[k] + s[k] * t.astype(np.float64) + 0.5).astype(np.int64)

    idx = np.arange(e.size)
    u0, un = u(idx, np.zeros(e.size)), u(idx, n)
    # a crossing between m and m + 1 for lo <= m < hi; kept where m = 5c + 2
    first, count = _column_range(np.minimum(u0, un), np.maximum(u0, un) - 1, width[e])
    k, c = _expand(first, count)
    m = 5 * c + 2
    up = s[k] > 0
    # going up, u(tau) = m and u(tau + 1) = m + 1; going down, u(tau) = m + 1, u(tau + 1) = m
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = (m + 0.5 - base[k]) / s[k]
    tau = np.where(up, np.ceil(guess) - 1, np.floor(guess))
    tau = np.clip(np.nan_to_num(tau), 0, n[k] - 1).astype(np.int64)
    for _ in range(8):
        a, b = u(k, tau), u(k, tau + 1)
        later = np.where(up, b <= m, b >= m + 1)
        earlier = np.where(up, a > m, a < m + 1)
        if not (later.any() or earlier.any()):
            break
        tau = np.clip(tau + later.astype(np.int64) - earlier.astype(np.int64), 0, n[k] - 1)
    else:  # pragma: no cover - rounding moves the real solution by a step at most
        raise AssertionError("polygon column crossing not found")
    return c, ys[e[k]] + tau, e[k]


def _parity_runs(keys: np.ndarray, total: np.ndarray, stride: int,
                 groups: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Runs between flips of odd multiplicity (pairs cancel, as rleFrPoly's run merging)."""
    uniq, num = np.unique(keys, return_counts=True)
    flips = uniq[num % 2 == 1]
    poly = flips // stride
    odd = np.flatnonzero(np.bincount(poly, minlength=total.size) % 2)
    if odd.size:  # a polygon whose last flip opens a run: it ends at the image's end
        flips = np.sort(np.concatenate([flips, odd * stride + total[odd]]))
        poly = flips // stride
    start_key, end_key = flips[0::2], flips[1::2]
    owner = poly[0::2]
    start, end = start_key - owner * stride, end_key - owner * stride
    keep = end > start
    group = np.asarray(groups, np.int64)[owner[keep]] if owner.size else owner
    return group, start[keep], end[keep], stride


def _union_by_group(group: np.ndarray, start: np.ndarray, end: np.ndarray, stride: int,
                    num_groups: int) -> np.ndarray:
    """Pixels covered per group: the length of the union of the group's runs."""
    if group.size == 0:
        return np.zeros(num_groups, np.int64)
    s, e = group * stride + start, group * stride + end
    order = np.argsort(s, kind="stable")
    s, e, g = s[order], e[order], group[order]
    reach = np.maximum.accumulate(e)
    before = np.concatenate([[s[0]], reach[:-1]])  # furthest end of the runs before each
    gain = np.maximum(e - np.maximum(s, before), 0)
    out = np.zeros(num_groups, np.int64)
    np.add.at(out, g, gain)
    return out


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
    if not isinstance(seg, list):
        raise _SegmentationError(f"'segmentation' must be a list of polygons or an RLE "
                                 f"object {{'counts', 'size'}}, got {type(seg).__name__}")
    if not seg:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    batch = _Polygons()
    for poly in seg:
        batch.add(poly, height, width, 0, 0)
    _, start, end, _ = _rasterise(batch)
    return start, end


def union_length(starts: np.ndarray, ends: np.ndarray) -> int:
    """Number of positions covered by the union of ``[starts[i], ends[i])``."""
    group = np.zeros(starts.size, np.int64)
    stride = int(ends.max()) + 1 if ends.size else 1
    return int(_union_by_group(group, starts, ends, stride, 1)[0])


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
      class: the uncovered pixels are ``height * width`` minus the covered ones.
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

    sorted_rows = np.sort(rows, kind="stable")
    bounds = np.flatnonzero(np.diff(sorted_rows)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64) if order.size else order
    stops = np.concatenate([bounds, [order.size]]).astype(np.int64) if order.size else order
    # Whole images go into a batch until it holds about `_BATCH_VERTICES` polygon vertices:
    # one rasterisation per batch, so the cost per annotation is a few Python steps.
    group_keys: list[tuple[int, int]] = []
    group_of: dict[tuple[int, int], int] = {}
    polys = _Polygons()
    runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # RLE (group, start, end)
    max_hw = 1

    def flush() -> None:
        nonlocal polys, runs, max_hw, group_keys, group_of
        pieces = list(runs)
        stride = max_hw + 1
        if len(polys):
            try:
                g, s, e, stride_p = _rasterise(polys)
            except _SegmentationError as err:
                raise LabelFormatError(path, where(int(err.owner)), str(err)) from None
            pieces.append((g, s, e))
            stride = max(stride, stride_p)
        if pieces:
            g = np.concatenate([p[0] for p in pieces])
            s = np.concatenate([p[1] for p in pieces])
            e = np.concatenate([p[2] for p in pieces])
            covered = _union_by_group(g, s, e, stride, len(group_keys))
            if group_keys:
                keys = np.asarray(group_keys, np.int64).reshape(-1, 2)
                pixel_counts[keys[:, 0], keys[:, 1]] = covered
        polys, runs, max_hw, group_keys, group_of = _Polygons(), [], 1, [], {}

    for a, b in zip(starts.tolist(), stops.tolist()):
        i = int(sorted_rows[a])
        hw = sizes[i]
        if hw is None:
            raise LabelFormatError(path, f"images[{i}]", f"image {cols.image_keys[i]!r} has "
                                   f"annotations with masks (e.g. "
                                   f"{_ann_where(int(order[a]), cols.ann_id)}) but no valid "
                                   f"'height' and 'width'")
        h, w = hw
        if h * w > max_pixels:
            raise LabelFormatError(path, f"images[{i}]", f"image {cols.image_keys[i]!r} is "
                                   f"{h}x{w} = {h * w} pixels, more than max_pixels="
                                   f"{max_pixels}; pass a larger max_pixels=... if that is "
                                   f"its real size")
        max_hw = max(max_hw, h * w)
        for k in order[a:b].tolist():
            ann = anns[k]
            if "segmentation" not in ann:
                raise LabelFormatError(path, where(k), "no 'segmentation' (a detection-only "
                                       "file? read it without masks=True)")
            key = (i, cat_index[cols.ann_cats[k]])
            group = group_of.setdefault(key, len(group_keys))
            if group == len(group_keys):
                group_keys.append(key)
            seg = ann["segmentation"]
            try:
                if isinstance(seg, list):
                    for poly in seg:
                        polys.add(poly, h, w, group, k)
                else:
                    s, e = segmentation_intervals(seg, h, w)
                    runs.append((np.full(s.size, group, np.int64), s, e))
            except _SegmentationError as err:
                raise LabelFormatError(path, where(k), str(err)) from None
        if len(polys.coords) >= _BATCH_VERTICES:
            flush()
    flush()
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
