"""YOLO (Darknet / Ultralytics) label folders: counts, ``cxcywhn`` boxes, image headers."""

import array
import math
import os
import pathlib
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import yaml

from jbalance._src.io.common import (
    BYTES_PER_ENTRY,
    INT_RE,
    MAX_UNNAMED_CLASSES,
    MAX_YAML_BYTES,
    LabelFormatError,
    LabelSet,
    PathLike,
    _check_cells,
    _check_names,
    _decode,
    _objects,
    _read_bytes,
    _resolve_dir,
    _scatter_counts,
)

# Image files that may sit next to YOLO labels (an image without a label file has no objects).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm"})
# Files in a YOLO labels folder that hold class names rather than boxes.
_CLASS_FILES = ("classes.txt", "obj.names", "classes.names")
YAML_FILES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")


# --------------------------------------------------------------------------------------------
# data.yaml


def _read_yaml(path: pathlib.Path) -> Any:
    """``yaml.safe_load`` of a file of at most `MAX_YAML_BYTES`; errors name file and line."""
    text = _decode(_read_bytes(path, MAX_YAML_BYTES), path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise LabelFormatError(path, where, f"malformed YAML ({problem})") from None
    except RecursionError:
        raise LabelFormatError(path, "", "YAML nested too deeply") from None


def _scalar_name(value: Any, path: PathLike, where: str) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise LabelFormatError(path, where, f"a class name must be a string or a number, got "
                           f"{type(value).__name__}")


def _names_from_yaml(names: Any, path: PathLike) -> list[str]:
    """``names:`` as a list (``[a, b]`` or ``- a`` lines) or an ``{id: name}`` mapping."""
    if isinstance(names, Mapping):
        try:
            keys = sorted(int(k) for k in names if not isinstance(k, bool))
        except (TypeError, ValueError):
            keys = []
        if len(keys) != len(names) or keys != list(range(len(keys))):
            raise LabelFormatError(path, "names", f"'names' keys must be the class ids 0.."
                                   f"{len(names) - 1} without gaps")
        lookup = {int(k): v for k, v in names.items()}
        return [_scalar_name(lookup[k], path, f"names[{k}]") for k in keys]
    if isinstance(names, list):
        return [_scalar_name(n, path, f"names[{k}]") for k, n in enumerate(names)]
    raise LabelFormatError(path, "names", f"'names' must be a list or an {{id: name}} mapping, "
                           f"got {type(names).__name__}")


def _read_data_yaml(path: pathlib.Path) -> dict:
    doc = _read_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise LabelFormatError(path, "top level", "expected a mapping (names:, path:, "
                               "train:, ...)")
    return doc


# --------------------------------------------------------------------------------------------
# Image sizes from file headers (PNG, JPEG, BMP, GIF, WebP); no image library needed.

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(path: PathLike) -> tuple[int, int] | None:
    r"""``(height, width)`` read from an image file's header, or None if not recognised.

    Reads at most a few bytes per JPEG segment (seeking over the rest), so the work is bounded
    by the file's size whatever its content. EXIF orientation is not applied: the size is the
    stored raster's.

    Args:
      path: A PNG, JPEG, BMP, GIF or WebP file.

    Returns:
      ``(height, width)`` in pixels, or None for another or a corrupt file.

    Examples:
      >>> import pathlib, struct, tempfile, zlib
      >>> from jbalance.io import image_size
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
      >>> ihdr = struct.pack(">IIBBBBB", 640, 480, 8, 2, 0, 0, 0)
      >>> _ = p.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr)
      >>> image_size(p)
      (480, 640)
    """
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return _size(h, w)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                w, h = struct.unpack("<HH", head[6:10])
                return _size(h, w)
            if head[:2] == b"BM" and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                return _size(abs(h), w)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_size(head)
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(f)
    except (OSError, struct.error):
        return None
    return None


def _size(h: int, w: int) -> tuple[int, int] | None:
    return (int(h), int(w)) if 0 < h <= 1 << 30 and 0 < w <= 1 << 30 else None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        w = 1 + int.from_bytes(head[24:27], "little")
        h = 1 + int.from_bytes(head[27:30], "little")
        return _size(h, w)
    if kind == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return _size(1 + ((bits >> 14) & 0x3FFF), 1 + (bits & 0x3FFF))
    if kind == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return _size(h & 0x3FFF, w & 0x3FFF)
    return None


def _jpeg_size(f: Any) -> tuple[int, int] | None:
    f.seek(2)
    for _ in range(4096):  # a JPEG has a few dozen segments before its frame header
        byte = f.read(1)
        while byte == b"\xff":  # fill bytes
            marker = f.read(1)
            if marker != b"\xff":
                break
            byte = marker
        else:
            return None
        if not marker:
            return None
        m = marker[0]
        if m in (0x01,) or 0xD0 <= m <= 0xD7:  # stand-alone markers
            continue
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if length < 2:
            return None
        if m in _JPEG_SOF:
            data = f.read(5)
            if len(data) < 5:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return _size(h, w)
        f.seek(length - 2, os.SEEK_CUR)
    return None


# --------------------------------------------------------------------------------------------
# Reader


def _class_names_on_disk(root: pathlib.Path, labels: pathlib.Path,
                         yaml_doc: tuple[pathlib.Path, dict] | None) -> tuple[Any, str, int]:
    """(names or None, where they came from, bytes read)."""
    if yaml_doc is not None and "names" in yaml_doc[1]:
        return _names_from_yaml(yaml_doc[1]["names"], yaml_doc[0]), str(yaml_doc[0]), 0
    for base in dict.fromkeys((labels, root)):
        for fname in _CLASS_FILES:
            if (base / fname).is_file():
                data = _read_bytes(base / fname)
                text = _decode(data, base / fname)
                names = [line.strip() for line in text.splitlines() if line.strip()]
                return names, str(base / fname), len(data)
    return None, "", 0


def _find_yaml(root: pathlib.Path, labels: pathlib.Path) -> tuple[pathlib.Path, dict] | None:
    for base in dict.fromkeys((root, labels)):
        for fname in YAML_FILES:
            if (base / fname).is_file():
                doc = _read_data_yaml(base / fname)
                if "names" in doc:
                    return base / fname, doc
    return None


def _yaml_root(path: pathlib.Path, doc: dict) -> pathlib.Path:
    """The dataset root a data.yaml points to (its ``path:``, else its folder)."""
    root = doc.get("path")
    if isinstance(root, str) and root:
        p = pathlib.Path(root)
        p = p if p.is_absolute() else path.parent / p
        if p.is_dir():
            return p
    return path.parent


def _list_images(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """``{relative stem: image path}`` for the image files under ``folder`` (first by name)."""
    found: dict[str, pathlib.Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.setdefault(p.relative_to(folder).with_suffix("").as_posix(), p)
    return found


def read_yolo(folder: PathLike, *, class_names: Sequence[str] | None = None,
              boxes: bool = False) -> LabelSet:
    r"""Reads a YOLO (Darknet / Ultralytics) label folder: one ``.txt`` file per image.

    Each line of a label file is ``class cx cy w h`` (a box normalised by the image's width and
    height). Lines with more numbers are accepted as Ultralytics writes them: segmentation
    polygons ``class x1 y1 x2 y2 ...`` (more than 5 numbers after the class; the box is the
    polygon's extent, as Ultralytics computes it) or, when ``data.yaml`` has ``kpt_shape``,
    pose lines ``class cx cy w h`` followed by keypoints. An empty label file is an image with
    no objects. Label files are found recursively, so ``labels/train`` and ``labels/val``
    subfolders are both read; the image id is the path relative to the labels folder without
    the suffix (``train/000123``). When the dataset root also holds an ``images/`` folder, an
    image there without a label file is kept as an empty row (the YOLO convention for
    background images).

    Class names come from, in order: ``class_names``; the ``names:`` entry of ``data.yaml``
    (or ``data.yml``/``dataset.yaml``) in the root or the labels folder, as a list or an
    ``{id: name}`` mapping (parsed with ``yaml.safe_load``; files over 1 MiB are refused);
    ``classes.txt``/``obj.names`` (one name per line); else ``"0"``, ``"1"``, ... up to the
    largest class id seen, which must then be below 1024 (`MAX_UNNAMED_CLASSES`: a larger id
    without names is far more likely a corrupt line than a class).

    Images: the image of ``labels/<id>.txt`` is ``images/<id>.<ext>`` (Ultralytics layout)
    or, for a flat Darknet folder, ``<id>.<ext>`` beside the label. ``image_paths`` lists them
    when every row has one (else None); with ``boxes=True``, ``image_sizes`` is read from the
    image headers (PNG, JPEG, BMP, GIF, WebP; no image library) when every size can be read,
    else None.

    Args:
      folder: The dataset root holding ``labels/``, the labels folder itself, or a
        ``data.yaml`` (its ``path:`` entry, when it names an existing folder, is the root;
        else the file's folder).
      class_names: Overrides the names found on disk.
      boxes: Also return ``objects`` with ``box_format="cxcywhn"`` (YOLO's normalised centre
        and size) and ``image_sizes`` as above.

    Returns:
      A `LabelSet` with rows sorted by image id.

    Raises:
      FileNotFoundError: If ``folder`` does not exist.
      LabelFormatError: If a label file is not UTF-8, a line has fewer than 5 fields, a class
        id that is not a non-negative integer, is out of range of the class names (or, without
        names, >= 1024), or a coordinate that is not a finite number (the message names the
        file and line); if ``data.yaml`` is malformed; or the folder has no label files.

    Examples:
      >>> import pathlib, tempfile
      >>> from jbalance.io import read_yolo
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> (root / "labels").mkdir()
      >>> _ = (root / "data.yaml").write_text("names: {0: cat, 1: dog}\n")
      >>> _ = (root / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n")
      >>> ls = read_yolo(root, boxes=True)
      >>> ls.counts.tolist(), ls.objects.box_format, ls.objects.boxes.tolist()
      ([[0, 1]], 'cxcywhn', [[0.5, 0.5, 0.20000000298023224, 0.4000000059604645]])
    """
    folder = pathlib.Path(folder)
    yaml_doc = None
    if folder.suffix.lower() in (".yaml", ".yml") and folder.is_file():
        yaml_doc = (folder, _read_data_yaml(folder))
        root, labels = _resolve_dir(_yaml_root(*yaml_doc), "labels", ".txt")
    else:
        root, labels = _resolve_dir(folder, "labels", ".txt")
        if class_names is None or boxes:
            yaml_doc = _find_yaml(root, labels)
    names: list[str] | None
    if class_names is not None:
        names, names_source, input_bytes = list(class_names), "class_names", 0
    else:
        names, names_source, input_bytes = _class_names_on_disk(root, labels, yaml_doc)
    if yaml_doc is not None:
        input_bytes += yaml_doc[0].stat().st_size
    if names is not None:
        names = _check_names(names, len(names), names_source, "class names")
    max_class = len(names) if names is not None else MAX_UNNAMED_CLASSES
    pose = yaml_doc is not None and "kpt_shape" in yaml_doc[1]

    class_files = {labels / n for n in _CLASS_FILES}
    files = sorted(p for p in labels.rglob("*.txt") if p not in class_files and p.is_file())
    ids = [p.relative_to(labels).with_suffix("").as_posix() for p in files]
    images_dir = root / "images"
    flat = not (labels != root and images_dir.is_dir())
    image_files = _list_images(labels if flat else images_dir)
    # Background images (no label file) are rows only in the Ultralytics layout.
    extra = sorted(set(image_files) - set(ids)) if image_files and not flat else []
    if not files and not extra:
        raise LabelFormatError(labels, "", "no YOLO label files (*.txt) found")
    input_bytes += BYTES_PER_ENTRY * (len(files) + len(image_files))

    rows = array.array("i")
    cols = array.array("i")
    coords = array.array("f")
    for r, p in enumerate(files):
        data = _read_bytes(p)
        input_bytes += len(data)
        text = _decode(data, p)
        for lineno, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 5:
                raise LabelFormatError(p, f"line {lineno}", f"expected 'class cx cy w h', "
                                       f"got {line.strip()[:80]!r}")
            cls = parts[0]
            if not INT_RE.match(cls) or not 0 <= int(cls) < max_class:
                if INT_RE.match(cls) and int(cls) >= 0:
                    if names is None:
                        reason = (f"class id {cls} without class names: ids must be below "
                                  f"{MAX_UNNAMED_CLASSES}; give the names (data.yaml, "
                                  f"classes.txt or class_names=...)")
                    else:
                        reason = (f"class id {cls} is out of range: {len(names)} class "
                                  f"names in {names_source}")
                else:
                    reason = f"class id {cls[:20]!r} is not a non-negative integer"
                raise LabelFormatError(p, f"line {lineno}", reason)
            try:
                values = [float(tok) for tok in parts[1:]]
            except ValueError:
                values = [math.nan]
            if not all(map(math.isfinite, values)):
                bad = next(t for t in parts[1:] if not _finite(t))
                raise LabelFormatError(p, f"line {lineno}", f"coordinate {bad[:30]!r} is not "
                                       f"a finite number")
            rows.append(r)
            cols.append(int(cls))
            if boxes:
                coords.extend(_yolo_box(values, pose, p, lineno))
    if names is None:
        num_seen = max(cols) + 1 if cols else 0
        names = [str(c) for c in range(num_seen)]
    n = len(files) + len(extra)
    _check_cells(n, len(names), input_bytes, labels)
    rows_arr = np.frombuffer(rows, np.int32) if rows else np.zeros(0, np.int32)
    cols_arr = np.frombuffer(cols, np.int32) if cols else np.zeros(0, np.int32)
    counts = _scatter_counts(rows_arr, cols_arr, len(files), len(names))
    order = None
    if extra:
        counts = np.concatenate([counts, np.zeros((len(extra), len(names)), np.int32)])
        ids = ids + extra
        order = np.argsort(np.asarray(ids), kind="stable")
        counts = counts[order]
        ids = [ids[i] for i in order]
    found = [image_files.get(i) for i in ids] if image_files else [None]
    paths = tuple(str(p) for p in found) if all(p is not None for p in found) else None
    objects = sizes = None
    if boxes:
        if order is not None:  # rows moved: image_index follows them
            rows_arr = np.argsort(order).astype(np.int32)[rows_arr]
        objects = _objects(rows_arr, cols_arr,
                           np.frombuffer(coords, np.float32) if coords else np.zeros((0, 4)),
                           "cxcywhn")
        if paths is not None:
            hw = [image_size(p) for p in paths]
            if all(s is not None for s in hw):
                sizes = np.asarray(hw, np.int32).reshape(len(hw), 2)
    return LabelSet(counts, names, ids, "yolo", str(folder), objects, sizes, paths)


def _finite(tok: str) -> bool:
    try:
        return math.isfinite(float(tok))
    except ValueError:
        return False


def _yolo_box(values: list[float], pose: bool, path: pathlib.Path, lineno: int) -> list[float]:
    """``cx cy w h`` of a detection/pose line, or of a polygon's extent (Ultralytics rule)."""
    if len(values) <= 5 or pose:
        return values[:4]
    if len(values) % 2:
        raise LabelFormatError(path, f"line {lineno}", f"a polygon needs x y pairs, got "
                               f"{len(values)} numbers")
    xs, ys = values[0::2], values[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
