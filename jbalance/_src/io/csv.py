"""Label tables (CSV/TSV): one row per image (``wide``) or one row per label (``long``)."""

import csv
import io
import math
import pathlib
import re
from typing import Any

import numpy as np

from jbalance._src.io.common import (
    _INT32_MAX,
    INT_RE,
    LabelFormatError,
    LabelSet,
    PathLike,
    _as_count_matrix,
    _check_cells,
    _decode,
    _read_bytes,
    _scatter_counts,
)

_CSV_LONG_COLUMNS = frozenset({"label", "labels", "class", "classes", "category", "class_name",
                               "category_name", "tags"})
_CSV_ID_COLUMNS = ("image_id", "image", "id", "filename", "file_name", "file", "image_name",
                   "img", "name", "path")


def _cell_count(text: str, path: PathLike, lineno: int, column: str) -> int:
    t = text.strip()
    if INT_RE.match(t):
        v = int(t)
    elif t.lower() in ("true", "false"):
        v = int(t.lower() == "true")
    else:
        try:
            f = float(t)
        except ValueError:
            f = math.nan
        if not math.isfinite(f) or f != round(f):
            raise LabelFormatError(path, f"line {lineno}", f"column {column!r}: {text[:30]!r} "
                                   f"is not a whole number (counts or 0/1 flags)")
        v = int(f)
    if v < 0:
        raise LabelFormatError(path, f"line {lineno}", f"column {column!r}: count {v} is "
                               f"negative")
    if v > _INT32_MAX:
        raise LabelFormatError(path, f"line {lineno}", f"column {column!r}: count {t[:30]} "
                               f"exceeds the int32 range (counts are objects per image)")
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
      LabelFormatError: On a file that is not UTF-8, an empty file, a duplicate header or
        image id (wide), a row with the wrong number of fields, or a cell that is negative,
        not a whole number or above the int32 range (the message names the line and column).

    Examples:
      >>> import pathlib, tempfile
      >>> from jbalance.io import read_csv
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "tags.csv"
      >>> _ = p.write_text("image_id,label\na.jpg,cat;dog\nb.jpg,dog\nc.jpg,\n")
      >>> ls = read_csv(p)
      >>> ls.class_names, ls.counts.tolist()
      (['cat', 'dog'], [[1, 1], [0, 1], [0, 0]])
    """
    path = pathlib.Path(path)
    if layout not in ("auto", "wide", "long"):
        raise ValueError(f"`layout` must be 'auto', 'wide' or 'long', got {layout!r}.")
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    data = _read_bytes(path)
    num_bytes = len(data)
    text = _decode(data, path, "utf-8-sig")
    del data
    with io.StringIO(text, newline="") as f:
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
                return _read_csv_long(reader, path, header, id_col, label_separator,
                                      num_bytes)
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
    _check_cells(len(rows), len(class_cols), num_bytes, path)
    counts = np.asarray(rows, dtype=np.int64).reshape(len(rows), len(class_cols))
    counts = _as_count_matrix(counts, path)
    return LabelSet(counts, [header[j] for j in class_cols], ids, "csv", str(path))


def _read_csv_long(reader: Any, path: pathlib.Path, header: list[str], id_col: int,
                   separator: str, num_bytes: int) -> LabelSet:
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
    _check_cells(len(order), len(names), num_bytes, path)
    counts = _scatter_counts(np.asarray([r for r, _ in pairs], np.int64),
                             np.asarray([index[n] for _, n in pairs], np.int64),
                             len(order), len(names))
    return LabelSet(counts, names, list(order), "csv", str(path))
