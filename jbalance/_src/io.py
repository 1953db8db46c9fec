r"""Readers for annotation formats and writers for resampling plans (host-side NumPy).

Every reader turns a label source into a `LabelSet`: the integer count matrix
``counts[i, c]`` (objects of class ``c`` in image ``i``) that `jbalance.resample` and
`jbalance.report` take, plus the class names and image ids that give its rows and columns a
meaning. Parsing uses only the standard library (``json``, ``csv``, ``xml.parsers.expat``);
XML goes through ``defusedxml`` when it is installed and otherwise through an expat parser that
refuses any document type declaration, so entity-expansion ("billion laughs") and
external-entity attacks fail with an error instead of eating memory or reading files.

Errors in the data raise `LabelFormatError` (a `ValueError`) whose message names the file and
the line or record. A missing file stays a `FileNotFoundError` (an `OSError`). Nothing is
silently skipped: an annotation that points to an unknown image or category is an error, not a
dropped row.
"""

import csv
import errno
import json
import math
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

PathLike = str | os.PathLike

# Image files that may sit next to YOLO labels (an image without a label file has no objects).
_IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm"})
# Files in a YOLO labels folder that hold class names rather than boxes.
_CLASS_FILES = ("classes.txt", "obj.names", "classes.names")
_YAML_FILES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
_CSV_LONG_COLUMNS = frozenset({"label", "labels", "class", "classes", "category", "class_name",
                               "category_name", "tags"})
_CSV_ID_COLUMNS = ("image_id", "image", "id", "filename", "file_name", "file", "image_name",
                   "img", "name", "path")
_INT_RE = re.compile(r"^[+-]?\d+$")


class LabelFormatError(ValueError):
    """Malformed or inconsistent label data; the message names the file and the line/record.

    Attributes:
      path: The offending file (a string), or ``""`` when the data did not come from a file.
      where: The line or record inside the file (e.g. ``"line 3"``, ``"annotations[17]"``),
        or ``""`` when the problem concerns the whole file.
      reason: The message without its location prefix.
    """

    def __init__(self, path: PathLike | None, where: str, reason: str):
        self.path = "" if path is None else str(path)
        self.where = where
        self.reason = reason
        location = ", ".join(p for p in (self.path, where) if p)
        super().__init__(f"{location}: {reason}" if location else reason)


class LabelSet(NamedTuple):
    r"""A label source as a count matrix with named rows and columns.

    Attributes:
      counts: ``int32`` NumPy array of shape ``[num_images, num_classes]``; ``counts[i, c]``
        is the number of objects (boxes, or 0/1 tags for multi-label tables) of class ``c`` in
        image ``i``. Images with no objects are all-zero rows.
      class_names: List of ``num_classes`` strings (the column names).
      image_ids: List of ``num_images`` strings (the row names, e.g. COCO image ids, file stems
        for YOLO and VOC, the id column of a CSV).
      format: Which reader produced it: ``"coco"``, ``"yolo"``, ``"voc"``, ``"csv"``,
        ``"numpy"`` or ``"array"``.
      source: The path that was read (``""`` for in-memory data).
    """

    counts: np.ndarray
    class_names: list[str]
    image_ids: list[str]
    format: str = "array"
    source: str = ""

    @property
    def num_images(self) -> int:
        return int(self.counts.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.counts.shape[1])


# --------------------------------------------------------------------------------------------
# Validation shared by the readers and writers.


def _as_count_matrix(values: Any, path: PathLike | None, name: str = "counts") -> np.ndarray:
    """Checks a count matrix (2-D, integral, finite, non-negative) and returns it as int32."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise LabelFormatError(path, name, f"a count matrix must be 2-D [num_images, "
                               f"num_classes], got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr.astype(np.int32)
    if arr.dtype.kind not in "iuf":
        raise LabelFormatError(path, name, f"counts must be numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            i, c = np.argwhere(bad)[0]
            raise LabelFormatError(path, f"{name}[{i}, {c}]",
                                   f"count is {arr[i, c]}; counts must be finite")
        frac = arr != np.round(arr)
        if frac.any():
            i, c = np.argwhere(frac)[0]
            raise LabelFormatError(path, f"{name}[{i}, {c}]",
                                   f"count {arr[i, c]} is not a whole number")
    if arr.size and arr.min() < 0:
        i, c = np.argwhere(arr < 0)[0]
        raise LabelFormatError(path, f"{name}[{i}, {c}]",
                               f"count {arr[i, c]} is negative; counts must be >= 0")
    if arr.size and arr.max() > np.iinfo(np.int32).max:
        raise LabelFormatError(path, name, "a count exceeds the int32 range")
    return arr.astype(np.int32)


def _check_names(names: Sequence[Any], expected: int, path: PathLike | None, what: str,
                 *, unique: bool = True) -> list[str]:
    names = [str(n) for n in names]
    if len(names) != expected:
        raise LabelFormatError(path, what, f"expected {expected} entries, got {len(names)}")
    if unique and len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))
        raise LabelFormatError(path, what, f"duplicate entry {dup!r}")
    return names


def from_counts(counts: Any, *, class_names: Sequence[Any] | None = None,
                image_ids: Sequence[Any] | None = None, format: str = "array",
                source: PathLike = "") -> LabelSet:
    r"""Builds a validated `LabelSet` from an in-memory count matrix.

    Args:
      counts: Array-like ``[num_images, num_classes]`` of non-negative whole numbers (bool,
        integer, or integral floats).
      class_names: ``num_classes`` unique names; default ``"0"``, ``"1"``, ...
      image_ids: ``num_images`` unique ids; default ``"0"``, ``"1"``, ...
      format: Recorded in ``LabelSet.format``.
      source: Recorded in ``LabelSet.source``.

    Returns:
      A `LabelSet` with ``int32`` counts.

    Raises:
      LabelFormatError: If ``counts`` is not 2-D, is negative, non-integral or non-finite, or
        the names do not match its shape or repeat.

    Examples:
      >>> from jbalance.io import from_counts
      >>> ls = from_counts([[1, 0], [0, 2]], class_names=["cat", "dog"])
      >>> ls.counts.sum(axis=0).tolist(), ls.image_ids
      ([1, 2], ['0', '1'])
    """
    path = str(source) or None
    arr = _as_count_matrix(counts, path)
    n, c = arr.shape
    names = _check_names(range(c) if class_names is None else class_names, c, path,
                         "class_names")
    ids = _check_names(range(n) if image_ids is None else image_ids, n, path, "image_ids")
    return LabelSet(arr, names, ids, format, str(source))


# --------------------------------------------------------------------------------------------
# COCO


def read_coco(path: PathLike, *, include_crowd: bool = False) -> LabelSet:
    r"""Reads a COCO-style instances JSON file (``images``, ``annotations``, ``categories``).

    One row per entry of ``images`` (in file order, so images without annotations are kept as
    empty rows) and one column per entry of ``categories`` (in file order; category ids need
    not be contiguous, e.g. COCO's 80 classes use ids 1..90).

    Args:
      path: The JSON file (e.g. ``annotations/instances_train2017.json``).
      include_crowd: Whether annotations with ``"iscrowd": 1`` count as objects. Default
        False: detectors ignore crowd regions in their losses, so they are not training signal
        for any class.

    Returns:
      A `LabelSet`; ``image_ids`` are the COCO image ids as strings.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: On malformed JSON (with line and column), a missing top-level key, a
        duplicate image or category id, or an annotation whose ``image_id`` or ``category_id``
        is unknown (the message names ``annotations[k]`` and its ``id``).

    Examples:
      >>> import json, tempfile, pathlib
      >>> from jbalance.io import read_coco
      >>> doc = {"images": [{"id": 7}, {"id": 9}],
      ...        "categories": [{"id": 1, "name": "cat"}, {"id": 18, "name": "dog"}],
      ...        "annotations": [{"id": 1, "image_id": 7, "category_id": 18}]}
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "instances.json"
      >>> _ = p.write_text(json.dumps(doc))
      >>> read_coco(p).counts.tolist()
      [[0, 1], [0, 0]]
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LabelFormatError(path, f"line {e.lineno} column {e.colno}",
                               f"malformed JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise LabelFormatError(path, f"byte {e.start}", "not UTF-8 text") from None
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

    image_index: dict[Any, int] = {}
    for i, rec in enumerate(images):
        key = _id(rec, "id", f"images[{i}]")
        if key in image_index:
            raise LabelFormatError(path, f"images[{i}]", f"duplicate image id {key!r}")
        image_index[key] = i
    cat_index: dict[Any, int] = {}
    names: list[str] = []
    for j, rec in enumerate(cats):
        key = _id(rec, "id", f"categories[{j}]")
        if key in cat_index:
            raise LabelFormatError(path, f"categories[{j}]", f"duplicate category id {key!r}")
        name = rec.get("name", str(key))
        if not isinstance(name, str):
            raise LabelFormatError(path, f"categories[{j}]", f"'name' must be a string, "
                                   f"got {name!r}")
        cat_index[key] = j
        names.append(name)
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))
        raise LabelFormatError(path, "categories", f"two categories are named {dup!r}")

    def _where(k: int) -> str:
        rec = anns[k]
        ann_id = rec.get("id") if isinstance(rec, dict) else None
        return f"annotations[{k}]" + (f" (id {ann_id!r})" if ann_id is not None else "")

    def _bad_record(k: int, reason: str) -> LabelFormatError:
        return LabelFormatError(path, _where(k), reason)

    # Fast path: list comprehensions over the (possibly 10^6) annotations; on any failure,
    # fall back to a loop that finds and names the first offending record.
    try:
        rows = [image_index[a["image_id"]] for a in anns]
        cols = [cat_index[a["category_id"]] for a in anns]
        crowd = [a.get("iscrowd", 0) for a in anns]
    except (KeyError, TypeError, AttributeError):
        for k, a in enumerate(anns):
            if not isinstance(a, dict):
                raise _bad_record(k, f"expected an object, got {type(a).__name__}") from None
            for field, index, what in (("image_id", image_index, "images"),
                                       ("category_id", cat_index, "categories")):
                if field not in a:
                    raise _bad_record(k, f"missing {field!r}") from None
                try:
                    index[a[field]]
                except (KeyError, TypeError):
                    raise _bad_record(k, f"{field} {a[field]!r} does not match any id in "
                                      f"{what!r}") from None
        raise  # pragma: no cover - the loop above always finds the culprit.
    crowd_arr = np.asarray(crowd, dtype=object) if crowd else np.zeros(0, dtype=object)
    valid = np.fromiter((c in (0, 1) and not isinstance(c, float) for c in crowd),
                        dtype=bool, count=len(crowd))
    if not valid.all():
        k = int(np.argmin(valid))
        raise _bad_record(k, f"'iscrowd' must be 0 or 1, got {crowd_arr[k]!r}")
    rows_arr = np.asarray(rows, dtype=np.int64)
    cols_arr = np.asarray(cols, dtype=np.int64)
    if not include_crowd and len(crowd):
        keep = np.fromiter((bool(c) for c in crowd), dtype=bool, count=len(crowd))
        rows_arr, cols_arr = rows_arr[~keep], cols_arr[~keep]
    counts = _scatter_counts(rows_arr, cols_arr, len(images), len(cats))
    ids = [str(rec["id"]) for rec in images]
    if len(set(ids)) != len(ids):
        raise LabelFormatError(path, "images", "image ids collide when written as strings "
                               "(e.g. 1 and '1')")
    return LabelSet(counts, names, ids, "coco", str(path))


def _scatter_counts(rows: np.ndarray, cols: np.ndarray, n: int, c: int) -> np.ndarray:
    """counts[rows[k], cols[k]] += 1 for all k, without an [n*c] bincount temporary."""
    counts = np.zeros((n, c), dtype=np.int32)
    if rows.size:
        flat, num = np.unique(rows * c + cols, return_counts=True)
        counts.reshape(-1)[flat] = num
    return counts


# --------------------------------------------------------------------------------------------
# YOLO


def _parse_scalar(text: str) -> Any:
    """A YAML-ish scalar: strips quotes, turns integers into int."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _INT_RE.match(text):
        return int(text)
    return text


def _split_flow(body: str) -> list[str]:
    """Splits ``a, 'b, c', d`` at top-level commas, respecting quotes."""
    items, buf, quote = [], [], ""
    for ch in body:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch == ",":
            items.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    if "".join(buf).strip():
        items.append("".join(buf))
    return [i for i in (s.strip() for s in items) if i]


def _strip_comment(line: str) -> str:
    quote = ""
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip()
    return line.rstrip()


def _names_from_mapping(names: Any, path: PathLike, where: str) -> list[str]:
    if isinstance(names, Mapping):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise LabelFormatError(path, where, "'names' keys must be class ids 0, 1, ...") \
                from None
        if keys != list(range(len(keys))):
            raise LabelFormatError(path, where, f"'names' keys must be 0..{len(keys) - 1} "
                                   f"without gaps, got {keys}")
        lookup = {int(k): v for k, v in names.items()}
        return [str(lookup[k]) for k in keys]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    raise LabelFormatError(path, where, f"'names' must be a list or a mapping, got {names!r}")


def _parse_data_yaml(path: pathlib.Path) -> list[str] | None:
    r"""Class names from an Ultralytics ``data.yaml`` (``names:`` as a list or an id mapping).

    Uses PyYAML's ``safe_load`` when it is installed; otherwise a small parser that
    understands the forms ``names: [a, b]``, ``names: {0: a, 1: b}`` and block lists/mappings
    under ``names:``. Returns None when the file has no ``names`` key.
    """
    text = path.read_text(encoding="utf-8")
    try:
        import yaml  # Optional: more forgiving about exotic YAML.
    except ImportError:
        yaml = None
    if yaml is not None:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else ""
            raise LabelFormatError(path, where, f"malformed YAML ({e})") from None
        if not isinstance(doc, dict) or "names" not in doc:
            return None
        return _names_from_mapping(doc["names"], path, "names")

    lines = text.splitlines()
    for k, raw in enumerate(lines):
        line = _strip_comment(raw)
        if not line.startswith("names:"):
            continue
        rest = line[len("names:"):].strip()
        where = f"line {k + 1}"
        if rest.startswith("["):
            if not rest.endswith("]"):
                raise LabelFormatError(path, where, "unterminated '[' list (multi-line flow "
                                       "lists need PyYAML: pip install pyyaml)")
            return [str(_parse_scalar(s)) for s in _split_flow(rest[1:-1])]
        if rest.startswith("{"):
            if not rest.endswith("}"):
                raise LabelFormatError(path, where, "unterminated '{' mapping")
            mapping = {}
            for item in _split_flow(rest[1:-1]):
                key, sep, value = item.partition(":")
                if not sep:
                    raise LabelFormatError(path, where, f"expected 'id: name', got {item!r}")
                mapping[_parse_scalar(key)] = _parse_scalar(value)
            return _names_from_mapping(mapping, path, where)
        if rest:
            raise LabelFormatError(path, where, f"cannot read 'names: {rest}'")
        # Block form: indented '- name' or 'id: name' lines.
        items: list[Any] = []
        mapping = {}
        for j in range(k + 1, len(lines)):
            sub = _strip_comment(lines[j])
            if not sub.strip():
                continue
            if not sub[0].isspace():
                break
            sub = sub.strip()
            if sub.startswith("- ") or sub == "-":
                items.append(_parse_scalar(sub[1:]))
            else:
                key, sep, value = sub.partition(":")
                if not sep:
                    raise LabelFormatError(path, f"line {j + 1}", f"expected '- name' or "
                                           f"'id: name', got {sub!r}")
                mapping[_parse_scalar(key)] = _parse_scalar(value)
        if items and mapping:
            raise LabelFormatError(path, where, "'names' mixes list and mapping entries")
        return _names_from_mapping(mapping or items, path, where)
    return None


def _read_class_file(path: pathlib.Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _resolve_dir(folder: PathLike, child: str, suffix: str) -> tuple[pathlib.Path, pathlib.Path]:
    """Returns (dataset root, annotation folder) for a root holding ``child`` or that folder."""
    folder = pathlib.Path(folder)
    if not folder.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(folder))
    if not folder.is_dir():
        raise LabelFormatError(folder, "", f"expected a folder of {suffix} files (or its "
                               f"parent holding '{child}/')")
    for name in (child, child.lower(), child.capitalize()):
        if (folder / name).is_dir():
            return folder, folder / name
    return folder.parent, folder


def read_yolo(folder: PathLike, *, class_names: Sequence[str] | None = None) -> LabelSet:
    r"""Reads a YOLO (Darknet / Ultralytics) label folder: one ``.txt`` file per image.

    Each line of a label file is ``class cx cy w h`` (normalised box; extra numbers, as in the
    segmentation and pose variants, are accepted). An empty label file is an image with no
    objects. Label files are found recursively, so ``labels/train`` and ``labels/val``
    subfolders are both read; the image id is the path relative to the labels folder without
    the suffix (``train/000123``). When the dataset root also holds an ``images/`` folder, an
    image there without a label file is kept as an empty row (the YOLO convention for
    background images).

    Class names come from, in order: ``class_names``; the ``names:`` entry of ``data.yaml``
    (or ``data.yml``/``dataset.yaml``) in the root or the labels folder, as a list or an
    ``{id: name}`` mapping (parsed without PyYAML; PyYAML is used when installed);
    ``classes.txt``/``obj.names`` (one name per line); else ``"0"``, ``"1"``, ... up to the
    largest class id seen.

    Args:
      folder: The dataset root holding ``labels/``, or the labels folder itself.
      class_names: Overrides the names found on disk.

    Returns:
      A `LabelSet` with rows sorted by image id.

    Raises:
      FileNotFoundError: If ``folder`` does not exist.
      LabelFormatError: If a line has fewer than 5 fields, a class id that is not a
        non-negative integer (or is out of range of the known class names), or a coordinate
        that is not a finite number (the message names the file and line); or the folder has
        no label files.
    """
    root, labels = _resolve_dir(folder, "labels", ".txt")
    names: list[str] | None = list(class_names) if class_names is not None else None
    names_source = "class_names"
    if names is None:
        for base in dict.fromkeys((root, labels)):
            for fname in _YAML_FILES:
                if (base / fname).is_file():
                    names = _parse_data_yaml(base / fname)
                    names_source = str(base / fname)
                    if names is not None:
                        break
            if names is not None:
                break
    class_files = {labels / n for n in _CLASS_FILES}
    if names is None:
        for base in dict.fromkeys((labels, root)):
            for fname in _CLASS_FILES:
                if (base / fname).is_file():
                    names = _read_class_file(base / fname)
                    names_source = str(base / fname)
                    break
            if names is not None:
                break

    files = sorted(p for p in labels.rglob("*.txt") if p not in class_files and p.is_file())
    ids = [p.relative_to(labels).with_suffix("").as_posix() for p in files]
    images_dir = root / "images"
    if labels != root and images_dir.is_dir():
        present = set(ids)
        extra = sorted(p.relative_to(images_dir).with_suffix("").as_posix()
                       for p in images_dir.rglob("*")
                       if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
        extra = [i for i in extra if i not in present]
    else:
        extra = []
    if not files and not extra:
        raise LabelFormatError(labels, "", "no YOLO label files (*.txt) found")

    rows: list[int] = []
    cols: list[int] = []
    for r, p in enumerate(files):
        with open(p, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 5:
                    raise LabelFormatError(p, f"line {lineno}", f"expected 'class cx cy w h', "
                                           f"got {line.strip()!r}")
                cls = parts[0]
                if not _INT_RE.match(cls) or int(cls) < 0:
                    raise LabelFormatError(p, f"line {lineno}", f"class id {cls!r} is not a "
                                           f"non-negative integer")
                for tok in parts[1:]:
                    try:
                        ok = math.isfinite(float(tok))
                    except ValueError:
                        ok = False
                    if not ok:
                        raise LabelFormatError(p, f"line {lineno}", f"coordinate {tok!r} is "
                                               f"not a finite number")
                rows.append(r)
                cols.append(int(cls))
    num_seen = max(cols) + 1 if cols else 0
    if names is None:
        names = [str(c) for c in range(num_seen)]
    elif num_seen > len(names):
        # Name the first offending line, for a fix that takes seconds.
        k = next(k for k, c in enumerate(cols) if c >= len(names))
        p = files[rows[k]]
        lineno = _find_class_line(p, cols[k])
        raise LabelFormatError(p, f"line {lineno}", f"class id {cols[k]} is out of range: "
                               f"{len(names)} class names in {names_source}")
    names = _check_names(names, len(names), names_source, "class names")
    counts = _scatter_counts(np.asarray(rows, np.int64), np.asarray(cols, np.int64),
                             len(files), len(names))
    if extra:
        counts = np.concatenate([counts, np.zeros((len(extra), len(names)), np.int32)])
        ids = ids + extra
        order = np.argsort(np.asarray(ids), kind="stable")
        counts = counts[order]
        ids = [ids[i] for i in order]
    return LabelSet(counts, names, ids, "yolo", str(pathlib.Path(folder)))


def _find_class_line(path: pathlib.Path, cls: int) -> int:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if parts and int(parts[0]) == cls:
                return lineno
    return 0  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Pascal VOC (safe XML)


class _Forbidden(Exception):
    pass


def _parse_xml_stdlib(data: bytes) -> Any:
    """ElementTree from bytes with expat, refusing any DTD (so no entities can be declared)."""
    import xml.etree.ElementTree as ET
    from xml.parsers import expat

    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    # Never load external DTDs or parameter entities, whatever the document says.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def forbid(*_args: Any) -> None:
        raise _Forbidden("DTD and entity declarations are not allowed in annotation files")

    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.UnparsedEntityDeclHandler = forbid
    parser.ExternalEntityRefHandler = forbid
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = lambda tag: builder.end(tag)
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    parser.Parse(data, True)
    return builder.close()


def _parse_xml(data: bytes, path: PathLike, *, use_defusedxml: bool | None = None) -> Any:
    """Parses XML safely; any error becomes a `LabelFormatError` naming the file and line."""
    from xml.parsers import expat

    defused = None
    if use_defusedxml is not False:
        try:
            import defusedxml
            import defusedxml.ElementTree as defused
        except ImportError:
            if use_defusedxml:
                raise
    try:
        if defused is not None:
            try:
                return defused.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                          forbid_external=True)
            except defusedxml.DefusedXmlException as e:
                raise _Forbidden(f"unsafe XML refused ({type(e).__name__}: {e})") from None
        return _parse_xml_stdlib(data)
    except _Forbidden as e:
        raise LabelFormatError(path, "", str(e)) from None
    except expat.ExpatError as e:
        raise LabelFormatError(path, f"line {e.lineno} column {e.offset + 1}",
                               f"malformed XML ({expat.ErrorString(e.code)})") from None
    except Exception as e:  # ET.ParseError is a SyntaxError with .position
        position = getattr(e, "position", None)
        if position is not None:
            raise LabelFormatError(path, f"line {position[0]} column {position[1] + 1}",
                                   f"malformed XML ({e})") from None
        raise


def read_voc(folder: PathLike, *, include_difficult: bool = False,
             class_names: Sequence[str] | None = None, split: str | None = None) -> LabelSet:
    r"""Reads a Pascal VOC dataset: one XML file per image under ``Annotations/``.

    Every ``<object>`` with a ``<name>`` is one object of that class. Objects marked
    ``<difficult>1</difficult>`` are excluded by default, as in the VOC evaluation protocol
    and the usual training setups (a missing or empty ``<difficult>`` means 0). XML is parsed
    safely (see the module docstring): a file with a DTD or entity declarations is refused.

    Args:
      folder: The dataset root holding ``Annotations/`` (e.g. ``VOCdevkit/VOC2007``) or the
        annotations folder itself.
      include_difficult: Count difficult objects too.
      class_names: Fixes the columns and their order; an object of another class is then an
        error. Default: the sorted set of names found (for VOC, its usual 20-class order).
      split: Read only the images listed in ``ImageSets/Main/<split>.txt`` (e.g.
        ``"trainval"``), in that order. Default: every XML file, sorted by name.

    Returns:
      A `LabelSet`; ``image_ids`` are the XML file stems (``000005``).

    Raises:
      FileNotFoundError: If ``folder`` (or a listed image's XML file) does not exist.
      LabelFormatError: On malformed or unsafe XML, an ``<object>`` without ``<name>``, a
        non-integer ``<difficult>``, an unknown class (with ``class_names``), or no XML files.
    """
    root, ann_dir = _resolve_dir(folder, "Annotations", ".xml")
    if split is not None:
        list_file = root / "ImageSets" / "Main" / f"{split}.txt"
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        files = [ann_dir / f"{i}.xml" for i in ids]
    else:
        files = sorted(p for p in ann_dir.rglob("*.xml") if p.is_file())
        ids = [p.relative_to(ann_dir).with_suffix("").as_posix() for p in files]
    if not files:
        raise LabelFormatError(ann_dir, "", "no VOC annotation files (*.xml) found")
    per_image: list[list[str]] = []
    for p in files:
        with open(p, "rb") as f:
            tree = _parse_xml(f.read(), p)
        names_here = []
        for k, obj in enumerate(tree.iter("object")):
            name = obj.findtext("name")
            if name is None or not name.strip():
                raise LabelFormatError(p, f"object {k + 1}", "<object> has no <name>")
            diff = (obj.findtext("difficult") or "0").strip() or "0"
            if not _INT_RE.match(diff) or int(diff) not in (0, 1):
                raise LabelFormatError(p, f"object {k + 1} ({name.strip()})",
                                       f"<difficult> must be 0 or 1, got {diff!r}")
            if int(diff) and not include_difficult:
                continue
            names_here.append(name.strip())
        per_image.append(names_here)
    if class_names is None:
        names = sorted({n for row in per_image for n in row})
    else:
        names = _check_names(class_names, len(class_names), None, "class_names")
    index = {n: j for j, n in enumerate(names)}
    rows, cols = [], []
    for r, row in enumerate(per_image):
        for n in row:
            if n not in index:
                raise LabelFormatError(files[r], "", f"class {n!r} is not in class_names")
            rows.append(r)
            cols.append(index[n])
    counts = _scatter_counts(np.asarray(rows, np.int64), np.asarray(cols, np.int64),
                             len(files), len(names))
    return LabelSet(counts, names, _check_names(ids, len(ids), root, "image ids"), "voc",
                    str(pathlib.Path(folder)))


# --------------------------------------------------------------------------------------------
# CSV


def _cell_count(text: str, path: PathLike, lineno: int, column: str) -> int:
    t = text.strip()
    if _INT_RE.match(t):
        v = int(t)
    elif t.lower() in ("true", "false"):
        v = int(t.lower() == "true")
    else:
        try:
            f = float(t)
        except ValueError:
            f = math.nan
        if not math.isfinite(f) or f != round(f):
            raise LabelFormatError(path, f"line {lineno}", f"column {column!r}: {text!r} is "
                                   f"not a whole number (counts or 0/1 flags)")
        v = int(f)
    if v < 0:
        raise LabelFormatError(path, f"line {lineno}", f"column {column!r}: count {v} is "
                               f"negative")
    return v


def read_csv(path: PathLike, *, id_column: str | None = None, layout: str = "auto",
             delimiter: str | None = None, label_separator: str = ";|") -> LabelSet:
    r"""Reads a label table: one row per image (``wide``) or one row per label (``long``).

    ``wide`` (multi-hot or count table): a header row, then one row per image::

        image_id,cat,dog,person
        img001,1,0,2
        img002,0,0,0

    The id column is ``id_column``, else the first column named ``image_id``, ``image``,
    ``id``, ``filename``, ... (case-insensitive), else the first column; every other column is
    a class. Cells are non-negative whole numbers (``1.0`` is accepted; ``true``/``false`` are
    1/0). Image ids must be unique.

    ``long``: exactly two columns, an id and a label column named ``label``, ``labels``,
    ``class``, ``category``, ``tags``, ...; each row adds one object per label in its label
    cell (several labels may be separated by ``;`` or ``|``; pass ``label_separator=" "`` for
    space-separated tags as in some Kaggle tables); an id may repeat, and a row with an empty
    label cell is an image without objects. Labels are stripped of surrounding spaces.
    Classes are sorted by name. ``layout="auto"`` picks ``long`` exactly when the header has
    two columns and the second has one of those names.

    Args:
      path: The ``.csv`` (comma) or ``.tsv`` (tab) file.
      id_column: The image-id column name.
      layout: ``"auto"``, ``"wide"`` or ``"long"``.
      delimiter: Field separator; default by suffix (tab for ``.tsv``, else comma).
      label_separator: ``long`` layout: each of these characters separates labels inside a
        cell (``" "`` splits on any whitespace).

    Returns:
      A `LabelSet`, rows in file order (first appearance for ``long``).

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: On an empty file, a duplicate header or image id (wide), a row with
        the wrong number of fields, or a cell that is negative or not a whole number (the
        message names the line and column).
    """
    path = pathlib.Path(path)
    if layout not in ("auto", "wide", "long"):
        raise ValueError(f"`layout` must be 'auto', 'wide' or 'long', got {layout!r}.")
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise LabelFormatError(path, "line 1", "empty file (expected a header row)")
            header = [h.strip() for h in header]
            if len(set(header)) != len(header):
                dup = next(h for h in header if header.count(h) > 1)
                raise LabelFormatError(path, "line 1", f"duplicate column {dup!r}")
            if id_column is not None:
                if id_column not in header:
                    raise LabelFormatError(path, "line 1", f"no column {id_column!r} "
                                           f"(columns: {', '.join(header)})")
                id_col = header.index(id_column)
            else:
                lower = [h.lower() for h in header]
                id_col = next((lower.index(c) for c in _CSV_ID_COLUMNS if c in lower), 0)
            if layout == "auto":
                layout = ("long" if len(header) == 2 and
                          header[1 - id_col].lower() in _CSV_LONG_COLUMNS else "wide")
            if layout == "long":
                return _read_csv_long(reader, path, header, id_col, label_separator)
            class_cols = [j for j in range(len(header)) if j != id_col]
            if not class_cols:
                raise LabelFormatError(path, "line 1", "no class columns besides the id "
                                       "column")
            ids: list[str] = []
            rows: list[list[int]] = []
            seen: dict[str, int] = {}
            for row in reader:
                lineno = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise LabelFormatError(path, f"line {lineno}", f"{len(row)} fields, "
                                           f"header has {len(header)}")
                image_id = row[id_col].strip()
                if image_id in seen:
                    raise LabelFormatError(path, f"line {lineno}", f"duplicate image id "
                                           f"{image_id!r} (first on line {seen[image_id]})")
                seen[image_id] = lineno
                ids.append(image_id)
                rows.append([_cell_count(row[j], path, lineno, header[j]) for j in class_cols])
        except csv.Error as e:
            raise LabelFormatError(path, f"line {reader.line_num}", f"malformed CSV ({e})") \
                from None
    counts = np.asarray(rows, dtype=np.int64).reshape(len(rows), len(class_cols))
    counts = _as_count_matrix(counts, path)
    return LabelSet(counts, [header[j] for j in class_cols], ids, "csv", str(path))


def _read_csv_long(reader: Any, path: pathlib.Path, header: list[str], id_col: int,
                   separator: str) -> LabelSet:
    lab_col = 1 - id_col
    pattern = re.compile("[" + "".join(r"\s" if ch.isspace() else re.escape(ch)
                                       for ch in separator) + "]+")
    order: dict[str, int] = {}
    pairs: list[tuple[int, str]] = []
    for row in reader:
        lineno = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 2:
            raise LabelFormatError(path, f"line {lineno}", f"{len(row)} fields, expected 2 "
                                   f"({header[id_col]}, {header[lab_col]})")
        image_id = row[id_col].strip()
        if not image_id:
            raise LabelFormatError(path, f"line {lineno}", "empty image id")
        r = order.setdefault(image_id, len(order))
        for label in pattern.split(row[lab_col]) if separator else [row[lab_col]]:
            if label.strip():
                pairs.append((r, label.strip()))
    names = sorted({label for _, label in pairs})
    index = {n: j for j, n in enumerate(names)}
    counts = _scatter_counts(np.asarray([r for r, _ in pairs], np.int64),
                             np.asarray([index[n] for _, n in pairs], np.int64),
                             len(order), len(names))
    return LabelSet(counts, names, list(order), "csv", str(path))


# --------------------------------------------------------------------------------------------
# NumPy


def read_numpy(path: PathLike) -> LabelSet:
    r"""Reads a count matrix from ``.npy`` (the matrix) or ``.npz`` (named arrays).

    An ``.npz`` holds ``counts`` (or a single 2-D array under any name) and optionally
    ``class_names`` and ``image_ids`` (as written by `write_label_set` or ``np.savez``).
    Pickled objects are never loaded.

    Args:
      path: The ``.npy`` or ``.npz`` file.

    Returns:
      A `LabelSet`; names default to ``"0"``, ``"1"``, ...

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: If the file is not a NumPy file, needs pickle, has no (unique) 2-D
        array, or the counts are negative, non-integral or non-finite.
    """
    path = pathlib.Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise LabelFormatError(path, "", f"not a readable NumPy file without pickle ({e})") \
            from None
    except (OSError, EOFError) as e:
        if not path.exists():
            raise
        raise LabelFormatError(path, "", f"not a NumPy file ({e})") from None
    names = ids = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            try:
                arrays = {k: loaded[k] for k in loaded.files}
            except ValueError as e:
                raise LabelFormatError(path, "", f"cannot read without pickle ({e})") from None
        if "counts" in arrays:
            key = "counts"
        else:
            two_d = [k for k, v in arrays.items() if v.ndim == 2]
            if len(two_d) != 1:
                raise LabelFormatError(path, "", f"expected an array named 'counts' (found "
                                       f"{', '.join(arrays) or 'none'})")
            key = two_d[0]
        counts = arrays[key]
        names = arrays.get("class_names")
        ids = arrays.get("image_ids")
        where = key
    else:
        counts, where = loaded, ""
    counts = _as_count_matrix(counts, path, where or "counts")
    n, c = counts.shape
    names = _check_names(range(c) if names is None else np.ravel(names).tolist(), c, path,
                         "class_names")
    ids = _check_names(range(n) if ids is None else np.ravel(ids).tolist(), n, path,
                       "image_ids")
    return LabelSet(counts, names, ids, "numpy", str(path))


# --------------------------------------------------------------------------------------------
# Dispatch


_FORMATS = ("coco", "yolo", "voc", "csv", "numpy")


def detect_format(path: PathLike) -> str:
    r"""Guesses the label format of ``path`` (see `load`).

    Args:
      path: A file or folder.

    Returns:
      One of ``"coco"``, ``"yolo"``, ``"voc"``, ``"csv"``, ``"numpy"``.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: If the format cannot be told from the path.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    if path.is_dir():
        if any((path / n).is_dir() for n in ("Annotations", "annotations")) and \
                any((path / n).rglob("*.xml") for n in ("Annotations", "annotations")
                    if (path / n).is_dir()):
            return "voc"
        if (path / "labels").is_dir():
            return "yolo"
        if any(path.glob("*.xml")):
            return "voc"
        if any(path.glob("*.txt")) or any(path.glob("*.yaml")):
            return "yolo"
        raise LabelFormatError(path, "", "cannot tell the label format of this folder: "
                               "expected 'labels/' or *.txt (YOLO), 'Annotations/' or *.xml "
                               "(VOC)")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".npy", ".npz"):
        return "numpy"
    if suffix in (".yaml", ".yml"):
        return "yolo"
    raise LabelFormatError(path, "", f"unknown label file type {suffix!r}: expected a COCO "
                           ".json, a .csv/.tsv table, a .npy/.npz count matrix, a YOLO "
                           "data.yaml, or a YOLO/VOC folder")


def load(path: PathLike, *, format: str | None = None, **options: Any) -> LabelSet:
    r"""Reads any supported label source, detecting its format from the path.

    ============================  ===========  ==================================
    path                          format       reader
    ============================  ===========  ==================================
    ``*.json``                    ``coco``     `read_coco`
    folder with ``labels/``,      ``yolo``     `read_yolo`
    ``*.txt`` files, or a
    ``data.yaml`` file
    folder with ``Annotations/``  ``voc``      `read_voc`
    or ``*.xml`` files
    ``*.csv`` / ``*.tsv``         ``csv``      `read_csv`
    ``*.npy`` / ``*.npz``         ``numpy``    `read_numpy`
    ============================  ===========  ==================================

    Args:
      path: A label file or folder.
      format: Skip detection and use this reader (one of the names above).
      **options: Passed on to the reader (e.g. ``include_crowd=True``,
        ``include_difficult=True``).

    Returns:
      A `LabelSet`.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: If the format cannot be detected or the data is malformed.
      TypeError: If an option does not belong to the chosen reader.

    Examples:
      >>> import numpy as np, tempfile, pathlib
      >>> import jbalance.io as jio
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.npy"
      >>> np.save(p, np.array([[2, 0], [0, 1]]))
      >>> ls = jio.load(p)
      >>> ls.format, ls.counts.shape
      ('numpy', (2, 2))
    """
    if format is None:
        format = detect_format(path)
    if format not in _FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(map(repr, _FORMATS))}; got "
                         f"{format!r}.")
    if format == "yolo" and pathlib.Path(path).suffix.lower() in (".yaml", ".yml"):
        path = pathlib.Path(path).parent
    reader = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc, "csv": read_csv,
              "numpy": read_numpy}[format]
    return reader(path, **options)


# --------------------------------------------------------------------------------------------
# Writers


def _check_repeats(repeats: Any, image_ids: Sequence[Any] | None) -> tuple[np.ndarray, list[str]]:
    arr = np.asarray(repeats)
    if arr.ndim != 1:
        raise ValueError(f"`repeats` must be 1-D [num_images], got shape {arr.shape}.")
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("`repeats` must hold whole numbers (round fractional rates first, "
                             "e.g. with `jbalance.resample.stochastic_round`).")
    if arr.size and arr.min() < 0:
        raise ValueError(f"`repeats` must be >= 0, got {arr.min()}.")
    arr = arr.astype(np.int64)
    if image_ids is None:
        ids = [str(i) for i in range(arr.size)]
    else:
        ids = [str(i) for i in image_ids]
        if len(ids) != arr.size:
            raise ValueError(f"`image_ids` has {len(ids)} entries but `repeats` has "
                             f"{arr.size}; they must match.")
        if len(set(ids)) != len(ids):
            raise ValueError("`image_ids` must be unique.")
    return arr, ids


def write_repeats(path: PathLike, repeats: Any, *, image_ids: Sequence[Any] | None = None,
                  format: str | None = None) -> pathlib.Path:
    r"""Writes per-image repeat counts as CSV (``image_id,repeats``) or JSON ``{id: repeats}``.

    A repeat count of 0 drops the image, 1 keeps it, ``k`` shows it ``k`` times per epoch.

    Args:
      path: Output file; ``.json`` writes JSON, anything else CSV.
      repeats: Whole numbers ``[num_images]`` (e.g. ``Solution.repeats``).
      image_ids: ``num_images`` unique ids (e.g. ``LabelSet.image_ids``); default the row
        indices.
      format: ``"csv"`` or ``"json"`` to override the suffix.

    Returns:
      The path written.

    Raises:
      ValueError: If ``repeats`` is not 1-D whole non-negative numbers or the ids do not match.

    Examples:
      >>> import tempfile, pathlib
      >>> from jbalance.io import write_repeats, read_repeats
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "plan.csv"
      >>> p = write_repeats(p, [0, 2], image_ids=["a", "b"])
      >>> p.read_text().splitlines()
      ['image_id,repeats', 'a,0', 'b,2']
    """
    arr, ids = _check_repeats(repeats, image_ids)
    path = pathlib.Path(path)
    if format is None:
        format = "json" if path.suffix.lower() == ".json" else "csv"
    if format not in ("csv", "json"):
        raise ValueError(f"`format` must be 'csv' or 'json', got {format!r}.")
    if format == "json":
        path.write_text(json.dumps(dict(zip(ids, arr.tolist())), indent=1) + "\n")
    else:
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["image_id", "repeats"])
            w.writerows(zip(ids, arr.tolist()))
    return path


def read_repeats(path: PathLike) -> tuple[list[str], np.ndarray]:
    r"""Reads a file written by `write_repeats`.

    Args:
      path: A ``.json`` (``{id: repeats}``) or CSV (``image_id,repeats``) file.

    Returns:
      ``(image_ids, repeats)`` with ``repeats`` an ``int64`` array.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: On malformed content or negative/non-integer repeats.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise LabelFormatError(path, f"line {e.lineno} column {e.colno}",
                                   f"malformed JSON ({e.msg})") from None
        if not isinstance(doc, dict):
            raise LabelFormatError(path, "top level", "expected an object {image_id: repeats}")
        ids, vals = list(doc), []
        for k, v in doc.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise LabelFormatError(path, f"key {k!r}", f"repeats must be a non-negative "
                                       f"integer, got {v!r}")
            vals.append(v)
        return ids, np.asarray(vals, dtype=np.int64)
    ls = read_csv(path, id_column="image_id", layout="wide")
    if ls.class_names != ["repeats"]:
        raise LabelFormatError(path, "line 1", "expected the columns image_id,repeats")
    return ls.image_ids, ls.counts[:, 0].astype(np.int64)


def write_indices(path: PathLike, indices: Any, *,
                  image_ids: Sequence[Any] | None = None) -> pathlib.Path:
    r"""Writes a resampled index list (one entry per drawn example, e.g. `resample.indices`).

    Formats by suffix: ``.npy`` (int64 row indices), ``.json`` (a list of image ids, or of
    indices without ids), ``.csv`` (columns ``index,image_id``), anything else plain text with
    one image id (or index) per line.

    Args:
      path: Output file.
      indices: Row indices ``[num_drawn]`` into the label set, in the order to write.
      image_ids: Ids of the rows, so ids can be written instead of indices.

    Returns:
      The path written.

    Raises:
      ValueError: If ``indices`` is not 1-D integers within ``[0, len(image_ids))``.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError(f"`indices` must be a 1-D integer array, got shape {idx.shape} and "
                         f"dtype {idx.dtype}.")
    idx = idx.astype(np.int64)
    if idx.size and idx.min() < 0:
        raise ValueError(f"`indices` must be >= 0, got {idx.min()}.")
    ids = None if image_ids is None else [str(i) for i in image_ids]
    if ids is not None and idx.size and idx.max() >= len(ids):
        raise ValueError(f"`indices` holds {idx.max()} but there are only {len(ids)} image "
                         f"ids.")
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, idx)
    elif suffix == ".json":
        items = idx.tolist() if ids is None else [ids[i] for i in idx]
        path.write_text(json.dumps(items) + "\n")
    elif suffix == ".csv":
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["index", "image_id"])
            for i in idx.tolist():
                w.writerow([i, i if ids is None else ids[i]])
    else:
        lines = (str(i) for i in idx.tolist()) if ids is None else (ids[i] for i in idx)
        path.write_text("".join(f"{s}\n" for s in lines))
    return path


def write_label_set(path: PathLike, label_set: LabelSet) -> pathlib.Path:
    r"""Saves a `LabelSet` as ``.npz`` (``counts``, ``class_names``, ``image_ids``) or CSV.

    The ``.npz`` loads back with `read_numpy` without pickle; a ``.csv`` path writes the wide
    table `read_csv` reads (``image_id`` then one column per class).

    Args:
      path: ``.npz`` or ``.csv`` output file.
      label_set: What to save.

    Returns:
      The path written.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["image_id", *label_set.class_names])
            for image_id, row in zip(label_set.image_ids, np.asarray(label_set.counts).tolist()):
                w.writerow([image_id, *row])
        return path
    np.savez_compressed(path, counts=np.asarray(label_set.counts, np.int32),
                        class_names=np.asarray(label_set.class_names, dtype=str),
                        image_ids=np.asarray(label_set.image_ids, dtype=str))
    return path if path.suffix else path.with_suffix(".npz")
