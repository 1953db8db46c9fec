"""Pascal VOC XML folders (parsed with defusedxml): counts, ``xyxy`` boxes, sizes, paths."""

import math
import pathlib
from collections.abc import Sequence
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as defused_et
import numpy as np

from jbalance._src.io.common import (
    BYTES_PER_ENTRY,
    INT_RE,
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

_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def parse_xml(data: bytes, path: PathLike) -> Any:
    """Parses XML with defusedxml (no DTD, no entities); errors name the file and line."""
    try:
        return defused_et.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                     forbid_external=True)
    except defusedxml.DefusedXmlException as e:
        raise LabelFormatError(path, "", f"unsafe XML refused: DTDs and entity declarations "
                               f"are not allowed in annotation files ({type(e).__name__})") \
            from None
    except ParseError as e:
        line, column = e.position
        raise LabelFormatError(path, f"line {line} column {column + 1}",
                               f"malformed XML ({str(e).split(':')[0]})") from None
    except RecursionError:  # pragma: no cover - expat builds trees without recursion
        raise LabelFormatError(path, "", "XML nested too deeply") from None


def _number(text: str | None, path: PathLike, where: str, tag: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LabelFormatError(path, where, f"<{tag}> must be a finite number, got {text!r}")
    return value


def read_voc(folder: PathLike, *, include_difficult: bool = False,
             class_names: Sequence[str] | None = None, split: str | None = None,
             boxes: bool = False) -> LabelSet:
    r"""Reads a Pascal VOC dataset: one XML file per image under ``Annotations/``.

    Every ``<object>`` with a ``<name>`` is one object of that class. Objects marked
    ``<difficult>1</difficult>`` are excluded by default, as in the VOC evaluation protocol
    and the usual training setups (a missing or empty ``<difficult>`` means 0); the same rule
    selects ``objects``. XML is parsed with defusedxml: a file with a DTD or entity
    declarations is refused (no "billion laughs", no external entities).

    Args:
      folder: The dataset root holding ``Annotations/`` (e.g. ``VOCdevkit/VOC2007``) or the
        annotations folder itself.
      include_difficult: Count difficult objects too.
      class_names: Fixes the columns and their order; an object of another class is then an
        error. Default: the sorted set of names found (for VOC, its usual 20-class order).
      split: Read only the images listed in ``ImageSets/Main/<split>.txt`` (e.g.
        ``"trainval"``), in that order. Default: every XML file, sorted by name.
      boxes: Also return ``objects`` (``<bndbox>`` as ``"xyxy"`` pixels, as written: VOC
        coordinates are 1-based) and ``image_sizes`` (``<size>`` ``(height, width)``; None
        when a file lacks it or records 0).

    Returns:
      A `LabelSet`; ``image_ids`` are the XML file stems (``000005``); ``image_paths`` are
      ``<root>/JPEGImages/<filename>`` (``<filename>`` from the XML, else ``<id>.jpg``; not
      checked to exist).

    Raises:
      FileNotFoundError: If ``folder`` (or a listed image's XML file) does not exist.
      LabelFormatError: On malformed or unsafe XML, an ``<object>`` without ``<name>``, a
        non-integer ``<difficult>``, an unknown class (with ``class_names``), no XML files,
        or with ``boxes=True`` a missing or non-finite ``<bndbox>`` coordinate.

    Examples:
      >>> import pathlib, tempfile
      >>> from jbalance.io import read_voc
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> (root / "Annotations").mkdir()
      >>> _ = (root / "Annotations" / "000005.xml").write_text(
      ...     "<annotation><filename>000005.jpg</filename><size><width>500</width>"
      ...     "<height>375</height></size><object><name>dog</name><bndbox><xmin>1</xmin>"
      ...     "<ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>")
      >>> ls = read_voc(root, boxes=True)
      >>> ls.counts.tolist(), ls.objects.boxes.tolist(), ls.image_sizes.tolist()
      ([[1]], [[1.0, 2.0, 30.0, 40.0]], [[375, 500]])
    """
    root, ann_dir = _resolve_dir(folder, "Annotations", ".xml")
    input_bytes = 0
    if split is not None:
        list_file = root / "ImageSets" / "Main" / f"{split}.txt"
        data = _read_bytes(list_file)
        input_bytes += len(data)
        ids = [line.split()[0] for line in _decode(data, list_file).splitlines()
               if line.strip()]
        files = [ann_dir / f"{i}.xml" for i in ids]
    else:
        files = sorted(p for p in ann_dir.rglob("*.xml") if p.is_file())
        ids = [p.relative_to(ann_dir).with_suffix("").as_posix() for p in files]
    if not files:
        raise LabelFormatError(ann_dir, "", "no VOC annotation files (*.xml) found")
    input_bytes += BYTES_PER_ENTRY * len(files)
    per_image: list[list[str]] = []
    coords: list[list[float]] = []
    sizes: list[tuple[int, int]] | None = [] if boxes else None
    file_names: list[str] = []
    for p, image_id in zip(files, ids):
        data = _read_bytes(p)
        input_bytes += len(data)
        tree = parse_xml(data, p)
        names_here = []
        for k, obj in enumerate(tree.iter("object")):
            name = obj.findtext("name")
            if name is None or not name.strip():
                raise LabelFormatError(p, f"object {k + 1}", "<object> has no <name>")
            diff = (obj.findtext("difficult") or "0").strip() or "0"
            if not INT_RE.match(diff) or int(diff) not in (0, 1):
                raise LabelFormatError(p, f"object {k + 1} ({name.strip()})",
                                       f"<difficult> must be 0 or 1, got {diff[:20]!r}")
            if int(diff) and not include_difficult:
                continue
            names_here.append(name.strip())
            if boxes:
                where = f"object {k + 1} ({name.strip()})"
                box = obj.find("bndbox")
                if box is None:
                    raise LabelFormatError(p, where, "<object> has no <bndbox>")
                coords.append([_number(box.findtext(t), p, where, t) for t in _BOX_TAGS])
        per_image.append(names_here)
        file_name = (tree.findtext("filename") or "").strip()
        file_names.append(file_name or f"{image_id}.jpg")
        if sizes is not None:
            h, w = tree.findtext("size/height"), tree.findtext("size/width")
            if h is None or w is None or not INT_RE.match(h.strip()) or \
                    not INT_RE.match(w.strip()) or not 0 < int(h) <= 1 << 30 or \
                    not 0 < int(w) <= 1 << 30:
                sizes = None
            else:
                sizes.append((int(h), int(w)))
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
    _check_cells(len(files), len(names), input_bytes, ann_dir)
    rows_arr, cols_arr = np.asarray(rows, np.int32), np.asarray(cols, np.int32)
    counts = _scatter_counts(rows_arr, cols_arr, len(files), len(names))
    objects = image_sizes = None
    if boxes:
        objects = _objects(rows_arr, cols_arr, np.asarray(coords, np.float32).reshape(-1, 4),
                           "xyxy")
        if sizes is not None:
            image_sizes = np.asarray(sizes, np.int32).reshape(-1, 2)
    paths = tuple(str(root / "JPEGImages" / f) for f in file_names)
    return LabelSet(counts, names, _check_names(ids, len(ids), root, "image ids"), "voc",
                    str(pathlib.Path(folder)), objects, image_sizes, paths)
