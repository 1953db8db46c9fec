"""COCO instances JSON: counts, boxes (``xywh`` pixels), image sizes and file names."""

import functools
import itertools
import json
import math
import os
import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from jbalance._src.io.common import (
    LabelFormatError,
    LabelSet,
    PathLike,
    _check_cells,
    _objects,
    _read_bytes,
    _scatter_counts,
)


def _loads(raw: bytes, path: PathLike) -> Any:
    """Parses JSON bytes; every failure is a `LabelFormatError` naming the file (and line)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise LabelFormatError(path, f"line {e.lineno} column {e.colno}",
                               f"malformed JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise LabelFormatError(path, f"line {line} (byte {e.start})",
                               "not UTF-8 text; re-save the file as UTF-8") from None
    except RecursionError:
        raise LabelFormatError(path, "", "JSON nested too deeply (a label file needs a few "
                               "levels)") from None


def read_coco(path: PathLike, *, include_crowd: bool = False, boxes: bool = False,
              image_root: PathLike | None = None) -> LabelSet:
    r"""Reads a COCO-style instances JSON file (``images``, ``annotations``, ``categories``).

    One row per entry of ``images`` (in file order, so images without annotations are kept as
    empty rows) and one column per entry of ``categories`` (in file order; category ids need
    not be contiguous, e.g. COCO's 80 classes use ids 1..90).

    Args:
      path: The JSON file (e.g. ``annotations/instances_train2017.json``).
      include_crowd: Whether annotations with ``"iscrowd": 1`` count as objects. Default
        False: detectors ignore crowd regions in their losses, so they are not training signal
        for any class. The same rule selects ``objects`` with ``boxes=True``.
      boxes: Also return ``objects`` (every counted annotation's ``bbox`` as ``"xywh"``
        pixels: top-left corner, width, height) and ``image_sizes`` (``(height, width)`` from
        ``images``; None when an image lacks them).
      image_root: Folder the images' ``file_name`` are relative to (e.g. ``coco/train2017``);
        ``image_paths`` joins them. Default: ``file_name`` as written.

    Returns:
      A `LabelSet`; ``image_ids`` are the COCO image ids as strings; ``image_paths`` the
      ``file_name`` of every image (None if one has none).

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: On malformed or too deeply nested JSON (with line and column), a
        missing top-level key, a duplicate image or category id, an annotation whose
        ``image_id`` or ``category_id`` is unknown (the message names ``annotations[k]`` and
        its ``id``) and, with ``boxes=True``, a missing or non-finite ``bbox`` or a negative
        width or height.

    Examples:
      >>> import json, tempfile, pathlib
      >>> from jbalance.io import read_coco
      >>> doc = {"images": [{"id": 7, "file_name": "a.jpg", "height": 480, "width": 640},
      ...                   {"id": 9, "file_name": "b.jpg", "height": 480, "width": 640}],
      ...        "categories": [{"id": 1, "name": "cat"}, {"id": 18, "name": "dog"}],
      ...        "annotations": [{"id": 1, "image_id": 7, "category_id": 18,
      ...                         "bbox": [10, 20, 30, 40]}]}
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "instances.json"
      >>> _ = p.write_text(json.dumps(doc))
      >>> read_coco(p).counts.tolist()
      [[0, 1], [0, 0]]
      >>> ls = read_coco(p, boxes=True)
      >>> ls.objects.boxes.tolist(), ls.objects.box_format, ls.image_sizes.tolist()
      ([[10.0, 20.0, 30.0, 40.0]], 'xywh', [[480, 640], [480, 640]])
    """
    path = pathlib.Path(path)
    raw = _read_bytes(path)
    cols = _columns_fast(raw, boxes)
    if cols is not None:
        try:
            return _build(cols, path, len(raw), include_crowd, boxes, image_root)
        except LabelFormatError:
            pass  # name the culprit exactly as the standard parser would
    cols = _columns_standard(_loads(raw, path), path, boxes)
    return _build(cols, path, len(raw), include_crowd, boxes, image_root)


class _Columns(NamedTuple):
    """What the reader needs from the file, as parallel lists in file order."""

    image_keys: list
    file_names: list
    heights: list
    widths: list
    cat_keys: list
    cat_names: list
    ann_images: list
    ann_cats: list
    ann_crowd: list
    ann_bbox: list | None
    ann_id: Callable[[int], Any]  # the k-th annotation's "id" (for messages)


@functools.cache
def _fast_decoder() -> Any:
    """A msgspec decoder for the fields the reader uses, or None without msgspec.

    msgspec (the optional ``fast`` extra) decodes straight into these records and skips every
    other field (segmentation polygons, areas, ...) without building Python objects for them
    (figures in docs/io.md, "Speed"). Anything it rejects goes through the standard parser,
    so errors read the same either way.
    """
    try:
        import msgspec
    except ImportError:
        return None

    class Image(msgspec.Struct):
        id: int | str
        file_name: Any = None
        height: Any = None
        width: Any = None

    class Category(msgspec.Struct):
        id: int | str
        name: Any = None

    class Annotation(msgspec.Struct):
        image_id: Any
        category_id: Any
        iscrowd: Any = 0
        bbox: Any = None
        id: Any = None

    class Coco(msgspec.Struct):
        images: list[Image]
        annotations: list[Annotation]
        categories: list[Category]

    return msgspec.json.Decoder(Coco), (msgspec.DecodeError, msgspec.ValidationError)


def _columns_fast(raw: bytes, boxes: bool) -> _Columns | None:
    fast = _fast_decoder()
    if fast is None:
        return None
    decoder, errors = fast
    try:
        doc = decoder.decode(raw)
    except (*errors, RecursionError):
        return None
    images, anns, cats = doc.images, doc.annotations, doc.categories
    return _Columns(
        [r.id for r in images], [r.file_name for r in images], [r.height for r in images],
        [r.width for r in images], [r.id for r in cats],
        [str(r.id) if r.name is None else r.name for r in cats],
        [a.image_id for a in anns], [a.category_id for a in anns], [a.iscrowd for a in anns],
        [a.bbox for a in anns] if boxes else None, lambda k: anns[k].id)


def _columns_standard(doc: Any, path: pathlib.Path, boxes: bool) -> _Columns:
    """Columns from ``json.loads`` output, naming the first record of the wrong shape."""
    if not isinstance(doc, dict):
        raise LabelFormatError(path, "top level", "expected a JSON object with 'images', "
                               "'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            hint = " (an image-info file without labels?)" if key == "annotations" else ""
            raise LabelFormatError(path, "top level", f"missing key {key!r}{hint}")
        if not isinstance(doc[key], list):
            raise LabelFormatError(path, key, f"{key!r} must be a list")
    images, anns, cats = doc["images"], doc["annotations"], doc["categories"]

    def _id(rec: Any, field: str, where: str) -> Any:
        if not isinstance(rec, dict):
            raise LabelFormatError(path, where, f"expected an object, got {type(rec).__name__}")
        if field not in rec:
            raise LabelFormatError(path, where, f"missing {field!r}")
        value = rec[field]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise LabelFormatError(path, where, f"{field!r} must be an integer or a string, "
                                   f"got {value!r}")
        return value

    image_keys = [_id(rec, "id", f"images[{i}]") for i, rec in enumerate(images)]
    cat_keys = [_id(rec, "id", f"categories[{j}]") for j, rec in enumerate(cats)]

    def ann_id(k: int) -> Any:
        return anns[k].get("id") if isinstance(anns[k], dict) else None

    # List comprehensions over the (possibly 10^6) annotations; on any failure, a loop
    # finds and names the first offending record.
    try:
        ann_images = [a["image_id"] for a in anns]
        ann_cats = [a["category_id"] for a in anns]
        crowd = [a.get("iscrowd", 0) for a in anns]
        bbox = [a.get("bbox") for a in anns] if boxes else None
    except (KeyError, TypeError, AttributeError):
        for k, a in enumerate(anns):
            where = _ann_where(k, ann_id)
            if not isinstance(a, dict):
                raise LabelFormatError(path, where, f"expected an object, got "
                                       f"{type(a).__name__}") from None
            for field in ("image_id", "category_id"):
                if field not in a:
                    raise LabelFormatError(path, where, f"missing {field!r}") from None
        raise  # pragma: no cover - the loop above always finds the culprit.
    return _Columns(
        image_keys, [r.get("file_name") for r in images], [r.get("height") for r in images],
        [r.get("width") for r in images], cat_keys,
        [r.get("name", str(k)) for r, k in zip(cats, cat_keys)], ann_images, ann_cats, crowd,
        bbox, ann_id)


def _ann_where(k: int, ann_id: Callable[[int], Any]) -> str:
    value = ann_id(k)
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        value = None
    return f"annotations[{k}]" + (f" (id {value!r})" if value is not None else "")


def _build(cols: _Columns, path: pathlib.Path, num_bytes: int, include_crowd: bool,
           boxes: bool, image_root: PathLike | None) -> LabelSet:
    image_index: dict[Any, int] = {}
    for i, key in enumerate(cols.image_keys):
        if image_index.setdefault(key, i) != i:
            raise LabelFormatError(path, f"images[{i}]", f"duplicate image id {key!r}")
    cat_index: dict[Any, int] = {}
    for j, (key, name) in enumerate(zip(cols.cat_keys, cols.cat_names)):
        if cat_index.setdefault(key, j) != j:
            raise LabelFormatError(path, f"categories[{j}]", f"duplicate category id {key!r}")
        if not isinstance(name, str):
            raise LabelFormatError(path, f"categories[{j}]", f"'name' must be a string, "
                                   f"got {name!r}")
    names = list(cols.cat_names)
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))
        raise LabelFormatError(path, "categories", f"two categories are named {dup!r}")
    num_images, num_cats = len(cols.image_keys), len(cols.cat_keys)
    _check_cells(num_images, num_cats, num_bytes, path)

    def bad(k: int, reason: str) -> LabelFormatError:
        return LabelFormatError(path, _ann_where(k, cols.ann_id), reason)

    try:
        rows = np.fromiter(map(image_index.__getitem__, cols.ann_images), np.int32,
                           len(cols.ann_images))
        cls = np.fromiter(map(cat_index.__getitem__, cols.ann_cats), np.int32,
                          len(cols.ann_cats))
    except (KeyError, TypeError):
        for k, (i, c) in enumerate(zip(cols.ann_images, cols.ann_cats)):
            for field, key, index, what in (("image_id", i, image_index, "images"),
                                            ("category_id", c, cat_index, "categories")):
                try:
                    index[key]
                except (KeyError, TypeError):
                    raise bad(k, f"{field} {key!r} does not match any id in {what!r}") \
                        from None
        raise  # pragma: no cover - the loop above always finds the culprit.
    # 0/1 (or false/true) only: 1.0 or 2 is a malformed record, not a crowd.
    crowd = cols.ann_crowd
    kinds = set(map(type, crowd))
    if not kinds <= {int, bool} or not set(crowd) <= {0, 1}:
        k = next(k for k, c in enumerate(crowd) if type(c) not in (int, bool) or c not in (0, 1))
        raise bad(k, f"'iscrowd' must be 0 or 1, got {crowd[k]!r}")
    keep = None
    if not include_crowd and len(crowd) and (1 in crowd):
        keep = ~np.asarray(crowd, dtype=bool)
        rows, cls = rows[keep], cls[keep]
    counts = _scatter_counts(rows, cls, num_images, num_cats)
    ids = [str(k) for k in cols.image_keys]
    if len(set(ids)) != len(ids):
        raise LabelFormatError(path, "images", "image ids collide when written as strings "
                               "(e.g. 1 and '1')")
    objects = sizes = None
    if boxes:
        objects = _objects(rows, cls, _coco_boxes(cols.ann_bbox, keep, bad), "xywh")
        sizes = _coco_sizes(cols.heights, cols.widths, path)
    return LabelSet(counts, names, ids, "coco", str(path), objects, sizes,
                    _coco_paths(cols.file_names, image_root))


def _coco_boxes(bb: list, keep: np.ndarray | None, bad: Any) -> np.ndarray:
    """``[K, 4]`` float32 ``xywh`` boxes of the kept annotations, checked."""
    try:
        if set(map(len, bb)) - {4}:  # TypeError for a non-list
            raise ValueError
        arr = np.fromiter(itertools.chain.from_iterable(bb), np.float64,
                          4 * len(bb)).reshape(-1, 4)
    except (ValueError, TypeError, OverflowError):
        for k, b in enumerate(bb):
            if not isinstance(b, list) or len(b) != 4 or not all(
                    type(v) in (int, float) and _float_ok(v) for v in b):
                raise bad(k, f"'bbox' must be [x, y, width, height] numbers, got "
                          f"{str(b)[:80]}") from None
        raise  # pragma: no cover - the loop above always finds the culprit.
    index = np.arange(len(bb))
    if keep is not None:
        arr, index = arr[keep], index[keep]
    bad_rows = ~np.isfinite(arr).all(axis=1) | (arr[:, 2] < 0) | (arr[:, 3] < 0)
    if bad_rows.any():
        k = int(index[np.argmax(bad_rows)])
        raise bad(k, f"'bbox' {bb[k]!r} must be finite with width, height >= 0")
    return arr.astype(np.float32)


def _coco_sizes(heights: list, widths: list, path: pathlib.Path) -> np.ndarray | None:
    """``[N, 2]`` int32 (height, width), or None when an image does not record them."""
    if None in heights or None in widths:
        return None
    try:
        if not set(map(type, heights)) | set(map(type, widths)) <= {int, float}:
            raise TypeError
        hw = np.stack([np.fromiter(heights, np.float64, len(heights)),
                       np.fromiter(widths, np.float64, len(widths))], axis=1)
        ok = (np.isfinite(hw) & (hw == np.round(hw)) & (hw > 0) & (hw <= 1 << 30)).all(axis=1)
    except (TypeError, OverflowError):
        ok = np.asarray([_is_size(h) and _is_size(w) for h, w in zip(heights, widths)])
        hw = None
    if not ok.all() or hw is None:
        i = int(np.argmin(ok))
        raise LabelFormatError(path, f"images[{i}]", f"height and width must be positive "
                               f"whole numbers, got {str(heights[i])[:30]} x "
                               f"{str(widths[i])[:30]}")
    return hw.astype(np.int32)


def _float_ok(v: Any) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


def _is_size(v: Any) -> bool:
    try:
        return type(v) in (int, float) and math.isfinite(v) and v == int(v) and 0 < v <= 1 << 30
    except OverflowError:
        return False


def _coco_paths(names: list, image_root: PathLike | None) -> tuple[str, ...] | None:
    if not all(isinstance(n, str) and n for n in names):
        return None
    if image_root is None:
        return tuple(names)
    root = os.fspath(image_root)
    return tuple(os.path.join(root, n) for n in names)
