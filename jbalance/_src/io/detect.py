"""Format detection and `load`, the one entry point the CLI uses."""

import errno
import pathlib
from typing import Any

from jbalance._src.io.coco import read_coco
from jbalance._src.io.coco_masks import read_coco_masks
from jbalance._src.io.common import LabelFormatError, LabelSet, PathLike
from jbalance._src.io.csv import read_csv
from jbalance._src.io.masks import is_mask_folder, read_masks
from jbalance._src.io.numpy import read_numpy
from jbalance._src.io.voc import read_voc
from jbalance._src.io.yolo import YAML_FILES, read_yolo

FORMATS = ("coco", "yolo", "voc", "csv", "numpy", "masks")
_READERS = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc, "csv": read_csv,
            "numpy": read_numpy, "masks": read_masks}
_WITH_BOXES = ("coco", "yolo", "voc")
_WITH_MASKS = ("coco", "masks")
# Class lists that sit beside label maps; alone they do not make a folder YOLO.
_CLASS_LIST_FILES = ("labels.txt", "classes.txt")


def _folder_formats(path: pathlib.Path) -> list[str]:
    """Every format a folder looks like (by its direct entries; no deep walk)."""
    found = []
    ann = [path / n for n in ("Annotations", "annotations") if (path / n).is_dir()]
    if any(next(a.glob("*.xml"), None) is not None for a in ann) or \
            next(path.glob("*.xml"), None) is not None:
        found.append("voc")
    if (path / "labels").is_dir() or \
            any(p.name not in _CLASS_LIST_FILES for p in path.glob("*.txt")) or \
            any((path / n).is_file() for n in YAML_FILES):
        found.append("yolo")
    if next(path.glob("*.json"), None) is not None:
        found.append("coco")
    return found


def detect_format(path: PathLike) -> str:
    r"""Guesses the label format of ``path`` (see `load`).

    A folder is VOC when it holds ``Annotations/*.xml`` or ``*.xml``, YOLO when it holds
    ``labels/``, ``*.txt`` label files or a ``data.yaml``; a folder that looks like several
    formats (or holds ``*.json`` files) is an error listing them: pass ``format=`` or the file
    itself. A folder that is none of these is ``"masks"`` (PNG label maps, `read_masks`) when
    it holds ``SegmentationClass/``, ``gtFine/``, Cityscapes ``*_labelIds.png`` or ``*.png``
    files with at most a ``labels.txt``/``classes.txt`` beside them. A VOC root holding both
    ``Annotations/`` and ``SegmentationClass/`` stays ``"voc"``; ``load(path, masks=True)``
    reads its label maps.

    Args:
      path: A file or folder.

    Returns:
      One of ``"coco"``, ``"yolo"``, ``"voc"``, ``"csv"``, ``"numpy"``, ``"masks"``.

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
        if is_mask_folder(path):
            return "masks"
        raise LabelFormatError(path, "", "cannot tell the label format of this folder: "
                               "expected 'labels/' or *.txt (YOLO), 'Annotations/' or *.xml "
                               "(VOC), or PNG label maps ('SegmentationClass/', 'gtFine/', "
                               "*.png)")
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
         masks: bool = False, **options: Any) -> LabelSet:
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
    folder of PNG label maps      ``masks``    `read_masks`
    ``*.json``, ``masks=True``    ``coco``     `read_coco_masks`
    folder, ``masks=True``        ``masks``    `read_masks`
    ============================  ===========  ==================================

    Args:
      path: A label file or folder.
      format: Skip detection and use this reader (one of the names above).
      boxes: Also read the boxes: the `LabelSet` carries ``objects`` (image index, class
        index, ``[K, 4]`` float32 boxes, box format) and ``image_sizes`` where the format
        records them. COCO, YOLO and VOC only.
      masks: Read segmentations: per-image ``pixel_counts`` and ``instance_counts``
        ``[N, C]`` (and ``image_sizes``). A ``.json`` path reads COCO segmentations
        (`read_coco_masks`; ``counts`` stays the instance counts), a folder reads PNG label
        maps (`read_masks`; ``counts`` is 0/1 presence), also a VOC root's
        ``SegmentationClass/``. ``format="masks"`` implies it.
      **options: Passed on to the reader (e.g. ``include_crowd=True``,
        ``include_difficult=True``, ``image_root=...``, ``ignore_index=...``,
        ``num_classes=...``).

    Returns:
      A `LabelSet`.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: If the format cannot be detected or the data is malformed.
      ValueError: If ``boxes=True`` for a format without boxes (CSV, NumPy, label maps), or
        ``masks=True`` for a format without masks (YOLO, VOC XML, CSV, NumPy).
      ImportError: If a PNG label-map folder is read without Pillow (the ``masks`` extra).
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
        p = pathlib.Path(path)
        format = "masks" if masks and p.is_dir() else detect_format(path)
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(map(repr, FORMATS))}; got "
                         f"{format!r}.")
    if masks or format == "masks":
        if format not in _WITH_MASKS:
            raise ValueError(f"`masks=True`: {format} label files hold no masks (COCO JSON "
                             f"segmentations and folders of PNG label maps do).")
        if boxes and format != "coco":
            raise ValueError("`boxes=True`: PNG label maps hold no boxes (COCO JSON does).")
        if format == "coco":
            return read_coco_masks(path, boxes=boxes, **options)
        return read_masks(path, **options)
    if boxes:
        if format not in _WITH_BOXES:
            raise ValueError(f"`boxes=True`: {format} label files hold no boxes (COCO, YOLO "
                             f"and VOC do).")
        options["boxes"] = True
    return _READERS[format](path, **options)
