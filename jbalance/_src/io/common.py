"""`LabelSet`, `LabelFormatError` and the checks and limits shared by every reader.

Bounds on the work a file can cause (see docs/io.md, "Hostile files"):

* A count matrix ``[N, C]`` may hold at most ``CELL_FLOOR + CELLS_PER_BYTE * input_bytes``
  cells, where ``input_bytes`` is the number of bytes the reader consumed plus
  ``BYTES_PER_ENTRY`` for every file or folder entry it listed. Real label sets sit far
  below this (docs/io.md); a file that names a class id of two billion does not get to
  allocate for it.
* YOLO class ids without class names must be below ``MAX_UNNAMED_CLASSES``.
* Text formats are UTF-8; JSON and YAML nesting is limited by the parsers' recursion limit and
  reported as a `LabelFormatError`; YAML files are at most ``MAX_YAML_BYTES``.
"""

import errno
import os
import pathlib
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from jbalance._src import checks
from jbalance._src.boxes import Objects

PathLike = str | os.PathLike

CELL_FLOOR = 1 << 16
CELLS_PER_BYTE = 16
BYTES_PER_ENTRY = 64
MAX_UNNAMED_CLASSES = 1024
MAX_YAML_BYTES = 1 << 20
_INT32_MAX = int(np.iinfo(np.int32).max)
INT_RE = re.compile(r"^[+-]?\d{1,18}$")  # at most 18 digits: always fits in int64


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

    def __reduce__(self):  # picklable across processes (grain / DataLoader workers)
        return (type(self), (self.path, self.where, self.reason))


class LabelSet(NamedTuple):
    r"""A label source as a count matrix with named rows and columns (host NumPy).

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
      objects: With ``boxes=True`` (COCO, YOLO, VOC): every counted object as
        `jbalance._src.boxes.Objects` ``(image_index [K] int32, class_index [K] int32,
        boxes [K, 4] float32, box_format)``, in file order; ``np.bincount`` of its
        ``(image_index, class_index)`` pairs equals ``counts``. Else None.
      image_sizes: With ``boxes=True``: ``int32 [num_images, 2]`` ``(height, width)`` in pixels
        where the format records them (COCO ``images``, VOC ``<size>``, YOLO image headers),
        else None.
      image_paths: Tuple of ``num_images`` image file paths (strings) where the format says
        where the images are (COCO ``file_name``, VOC ``JPEGImages/<filename>``, YOLO images
        matching the label files), else None.
      pixel_counts: With masks (``load(..., masks=True)``, `read_masks`, `read_coco_masks`):
        ``int64 [num_images, num_classes]``, the pixels of class ``c`` in image ``i``
        (ignored pixels count for no class). Else None.
      instance_counts: With masks: ``int32 [num_images, num_classes]``, instances of class
        ``c`` in image ``i`` (COCO annotations; connected regions of a label map). Else None.
      mask_paths: With `read_masks`: tuple of the ``num_images`` label-map files. Else None.

    With masks, ``counts`` is what `jbalance.resample.solve` balances: the instance counts
    for COCO (as without masks) and 0/1 presence for label maps (see `read_masks`).
    """

    counts: np.ndarray
    class_names: list[str]
    image_ids: list[str]
    format: str = "array"
    source: str = ""
    objects: Objects | None = None
    image_sizes: np.ndarray | None = None
    image_paths: tuple[str, ...] | None = None
    pixel_counts: np.ndarray | None = None
    instance_counts: np.ndarray | None = None
    mask_paths: tuple[str, ...] | None = None

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
    bad = checks.count_problem(arr)
    if bad is not None:
        index, reason = bad
        where = f"{name}[{', '.join(map(str, index))}]" if index else name
        raise LabelFormatError(path, where, reason)
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


def _check_cells(n: int, c: int, input_bytes: int, path: PathLike | None) -> None:
    """Refuses a count matrix far larger than the input that describes it (see module doc)."""
    budget = CELL_FLOOR + CELLS_PER_BYTE * int(input_bytes)
    if n * c > budget:
        raise LabelFormatError(path, "", f"{n} images x {c} classes would need a count matrix "
                               f"of {n * c} cells for {input_bytes} bytes of input (limit "
                               f"{budget}); a class id or a class list is far larger than "
                               f"the data (pass class_names=... for the real classes)")


def _scatter_counts(rows: np.ndarray, cols: np.ndarray, n: int, c: int) -> np.ndarray:
    """counts[rows[k], cols[k]] += 1 for all k, without an [n*c] bincount temporary."""
    counts = np.zeros((n, c), dtype=np.int32)
    if rows.size:
        flat, num = np.unique(np.asarray(rows, np.int64) * c + np.asarray(cols, np.int64),
                              return_counts=True)
        counts.reshape(-1)[flat] = num
    return counts


def from_counts(counts: Any, *, class_names: Sequence[Any] | None = None,
                image_ids: Sequence[Any] | None = None, format: str = "array",
                source: PathLike = "", image_paths: Sequence[Any] | None = None) -> LabelSet:
    r"""Builds a validated `LabelSet` from an in-memory count matrix.

    Args:
      counts: Array-like ``[num_images, num_classes]`` of non-negative whole numbers (bool,
        integer, or integral floats).
      class_names: ``num_classes`` unique names; default ``"0"``, ``"1"``, ...
      image_ids: ``num_images`` unique ids; default ``"0"``, ``"1"``, ...
      format: Recorded in ``LabelSet.format``.
      source: Recorded in ``LabelSet.source``.
      image_paths: Optional ``num_images`` image file paths (``LabelSet.image_paths``).

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
    paths = None
    if image_paths is not None:
        paths = tuple(_check_names(image_paths, n, path, "image_paths", unique=False))
    return LabelSet(arr, names, ids, format, str(source), image_paths=paths)


# --------------------------------------------------------------------------------------------
# Files.


def _read_bytes(path: pathlib.Path, limit: int | None = None) -> bytes:
    """The file's bytes; a file over ``limit`` bytes is a `LabelFormatError`."""
    with open(path, "rb") as f:
        if limit is not None:
            data = f.read(limit + 1)
            if len(data) > limit:
                raise LabelFormatError(path, "", f"file is larger than {limit} bytes, the "
                                       f"limit for this kind of file")
            return data
        return f.read()


def _decode(data: bytes, path: PathLike, encoding: str = "utf-8") -> str:
    """UTF-8 text; a decoding error names the file, line and byte."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LabelFormatError(path, f"line {line} (byte {e.start})",
                               "not UTF-8 text; re-save the file as UTF-8") from None


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


def _objects(image_index: Any, class_index: Any, boxes: Any, box_format: str) -> Objects:
    return Objects(np.asarray(image_index, np.int32).reshape(-1),
                   np.asarray(class_index, np.int32).reshape(-1),
                   np.asarray(boxes, np.float32).reshape(-1, 4), box_format)
