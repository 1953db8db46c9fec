"""Format detection and `load`, the one entry point the CLI uses."""

import errno
import pathlib
from typing import Any

from jbalance._src.io.coco import read_coco
from jbalance._src.io.common import LabelFormatError, LabelSet, PathLike
from jbalance._src.io.csv import read_csv
from jbalance._src.io.numpy import read_numpy
from jbalance._src.io.voc import read_voc
from jbalance._src.io.yolo import YAML_FILES, read_yolo

FORMATS = ("coco", "yolo", "voc", "csv", "numpy")
_READERS = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc, "csv": read_csv,
            "numpy": read_numpy}
_WITH_BOXES = ("coco", "yolo", "voc")


def _folder_formats(path: pathlib.Path) -> list[str]:
    """Every format a folder looks like (by its direct entries; no deep walk)."""
    found = []
    ann = [path / n for n in ("Annotations", "annotations") if (path / n).is_dir()]
    if any(next(a.glob("*.xml"), None) is not None for a in ann) or \
            next(path.glob("*.xml"), None) is not None:
        found.append("voc")
    if (path / "labels").is_dir() or next(path.glob("*.txt"), None) is not None or \
            any((path / n).is_file() for n in YAML_FILES):
        found.append("yolo")
    if next(path.glob("*.json"), None) is not None:
        found.append("coco")
    return found


def detect_format(path: PathLike) -> str:
    r"""Guesses the label format of ``path`` (see `load`).

    A folder is VOC when it holds ``Annotations/*.xml`` or ``*.xml``, YOLO when it holds
    ``labels/``, ``*.txt`` or a ``data.yaml``; a folder that looks like several formats (or
    holds ``*.json`` files) is an error listing them: pass ``format=`` or the file itself.

    Args:
      path: A file or folder.

    Returns:
      One of ``"coco"``, ``"yolo"``, ``"voc"``, ``"csv"``, ``"numpy"``.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: If the format cannot be told from the path, or the folder is
        ambiguous.

    Examples:
      >>> import pathlib, tempfile
      >>> from jbalance.io import detect_format
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "instances.json"
      >>> _ = p.write_text("{}")
      >>> detect_format(p)
      'coco'
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    if path.is_dir():
        found = _folder_formats(path)
        if found == ["coco"]:
            raise LabelFormatError(path, "", "a folder of JSON files: pass the COCO "
                                   "annotation file itself")
        if len(found) > 1:
            raise LabelFormatError(path, "", f"the folder looks like several label formats "
                                   f"({', '.join(found)}); pass format=... (CLI: --format) or "
                                   f"the annotation file or folder itself")
        if found:
            return found[0]
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


def load(path: PathLike, *, format: str | None = None, boxes: bool = False,
         **options: Any) -> LabelSet:
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
      boxes: Also read the boxes: the `LabelSet` carries ``objects`` (image index, class
        index, ``[K, 4]`` float32 boxes, box format) and ``image_sizes`` where the format
        records them. COCO, YOLO and VOC only.
      **options: Passed on to the reader (e.g. ``include_crowd=True``,
        ``include_difficult=True``, ``image_root=...``).

    Returns:
      A `LabelSet`.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: If the format cannot be detected or the data is malformed.
      ValueError: If ``boxes=True`` for a format without boxes (CSV, NumPy).
      TypeError: If an option does not belong to the chosen reader.

    Examples:
      >>> import numpy as np, tempfile, pathlib
      >>> import jbalance.io as jio
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.npy"
      >>> np.save(p, np.array([[2, 0], [0, 1]]))
      >>> ls = jio.load(p)
      >>> ls.format, ls.counts.shape, ls.objects
      ('numpy', (2, 2), None)
    """
    if format is None:
        format = detect_format(path)
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(map(repr, FORMATS))}; got "
                         f"{format!r}.")
    if boxes:
        if format not in _WITH_BOXES:
            raise ValueError(f"`boxes=True`: {format} label files hold no boxes (COCO, YOLO "
                             f"and VOC do).")
        options["boxes"] = True
    return _READERS[format](path, **options)
