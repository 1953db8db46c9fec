"""Folders of PNG label maps (Pascal VOC ``SegmentationClass``, Cityscapes ids, any id PNGs).

A label map is a single-channel PNG whose pixel values are class ids: palette indices for
VOC's colour-palette PNGs (the colours are only for display), grey levels for Cityscapes'
``*_labelIds.png``. Images are decoded one at a time with Pillow (the ``masks`` extra) after
their header's size has been checked against a bound, so memory is one image whatever the
folder holds and whatever a header claims.
"""

import pathlib
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jbalance._src.io.common import (
    BYTES_PER_ENTRY,
    MAX_UNNAMED_CLASSES,
    LabelFormatError,
    LabelSet,
    PathLike,
    _check_cells,
    _check_names,
    _decode,
    _read_bytes,
)
from jbalance._src.io.yolo import IMAGE_SUFFIXES, image_size

MAX_MASK_PIXELS = 1 << 26  # 8192 x 8192; `max_pixels=` raises it

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor")
# cityscapesScripts labels.py: `id` order (0..33) and `trainId` order (0..18; 255 ignored).
CITYSCAPES_CLASSES = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic",
    "ground", "road", "sidewalk", "parking", "rail track", "building", "wall", "fence",
    "guard rail", "bridge", "tunnel", "pole", "polegroup", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "caravan",
    "trailer", "train", "motorcycle", "bicycle")
CITYSCAPES_TRAIN_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle")

_CLASS_FILES = ("labels.txt", "classes.txt")
_VOC_DIRS = ("SegmentationClass", "SegmentationClassAug")
_CITYSCAPES_DIRS = ("gtFine", "gtCoarse")
_CITYSCAPES_SUFFIX = re.compile(r"_gt(Fine|Coarse)_label(Train)?Ids$")
# Folder names that hold label maps, and where the images sit instead.
_IMAGE_DIRS = {"SegmentationClass": "JPEGImages", "SegmentationClassAug": "JPEGImages",
               "gtFine": "leftImg8bit", "gtCoarse": "leftImg8bit", "masks": "images",
               "annotations": "images", "labels": "images", "segmentations": "images"}
# Single-channel modes whose values are class ids ("1": 0/1 masks, "I;16": 16-bit ids).
_ID_MODES = frozenset({"P", "L", "1", "I;16", "I;16L", "I;16B", "I"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading PNG label maps needs Pillow: pip install 'jbalance[masks]' "
                          "(or pip install Pillow)") from None
    return Image


def is_mask_folder(path: pathlib.Path) -> bool:
    """Whether a folder looks like label maps (for `detect_format`; direct entries only)."""
    if any((path / d).is_dir() for d in _VOC_DIRS + _CITYSCAPES_DIRS):
        return True
    if path.name in _VOC_DIRS + _CITYSCAPES_DIRS:
        return True
    if next(path.glob("*_label*Ids.png"), None) is not None or \
            next(path.glob("*/*_label*Ids.png"), None) is not None:
        return True
    has_png = next(path.glob("*.png"), None) is not None
    other_txt = any(p.name not in _CLASS_FILES for p in path.glob("*.txt"))
    return has_png and not other_txt


def _resolve(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, str]:
    """(dataset root, label-map folder, layout: "voc", "cityscapes" or "folder")."""
    if not folder.exists():
        raise FileNotFoundError(2, "No such file or directory", str(folder))
    if not folder.is_dir():
        raise LabelFormatError(folder, "", "expected a folder of PNG label maps (or a VOC "
                               "root holding 'SegmentationClass/', a Cityscapes root holding "
                               "'gtFine/')")
    for d in _VOC_DIRS:
        if (folder / d).is_dir():
            return folder, folder / d, "voc"
    if folder.name in _VOC_DIRS:
        return folder.parent, folder, "voc"
    for d in _CITYSCAPES_DIRS:
        if (folder / d).is_dir():
            return folder, folder / d, "cityscapes"
    if any(part in _CITYSCAPES_DIRS for part in folder.parts):
        return folder, folder, "cityscapes"
    return folder, folder, "folder"


def _list_masks(root: pathlib.Path, mask_dir: pathlib.Path, layout: str, split: str | None,
                pattern: str | None) -> tuple[list[pathlib.Path], str]:
    """The label-map files, and the Cityscapes id kind they hold ("ids", "train" or "")."""
    if split is not None:
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        text = _decode(_read_bytes(list_file), list_file)
        ids = [line.split()[0] for line in text.splitlines() if line.strip()]
        files = [mask_dir / f"{i}.png" for i in ids]
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(2, f"label map listed in {list_file} not found", str(f))
        return files, ""
    if pattern is not None:
        return sorted(p for p in mask_dir.rglob(pattern) if p.is_file()), ""
    files = sorted(p for p in mask_dir.rglob("*") if p.suffix.lower() == ".png" and p.is_file())
    ids = [p for p in files if p.name.endswith("_labelIds.png")]
    if ids:  # Cityscapes: the id maps, not the colour or instance PNGs beside them
        return ids, "ids"
    train = [p for p in files if p.name.endswith("_labelTrainIds.png")]
    if train:
        return train, "train"
    if layout == "cityscapes" and files:
        raise LabelFormatError(mask_dir, "", "a Cityscapes folder without *_labelIds.png or "
                               "*_labelTrainIds.png: pass pattern=... for the id maps")
    return files, ""


def _class_list(root: pathlib.Path, mask_dir: pathlib.Path, layout: str, kind: str,
                class_names: Sequence[str] | None,
                num_classes: int | None) -> tuple[list[str] | None, str, int]:
    """(names or None for "0".."max id", where they came from, bytes read)."""
    if num_classes is not None and (not _is_int(num_classes) or num_classes < 1):
        raise ValueError(f"`num_classes` must be a positive integer; got {num_classes!r}.")
    names, source, nbytes = None, "", 0
    if class_names is not None:
        names, source = [str(n) for n in class_names], "class_names"
    else:
        for base in dict.fromkeys((mask_dir, root)):
            for fname in _CLASS_FILES:
                if (base / fname).is_file():
                    data = _read_bytes(base / fname)
                    text = _decode(data, base / fname)
                    names = [line.strip() for line in text.splitlines() if line.strip()]
                    source, nbytes = str(base / fname), len(data)
                    break
            if names is not None:
                break
    if names is not None:
        if num_classes is not None and num_classes != len(names):
            raise LabelFormatError(source if source != "class_names" else None, "",
                                   f"num_classes={num_classes} but {len(names)} class names "
                                   f"in {source}")
        return _check_names(names, len(names), None if source == "class_names" else source,
                            "class names"), source, nbytes
    if num_classes is not None:
        return [str(c) for c in range(num_classes)], "num_classes", 0
    if layout == "voc":
        return list(VOC_CLASSES), "the Pascal VOC classes", 0
    if kind == "ids":
        return list(CITYSCAPES_CLASSES), "the Cityscapes label ids", 0
    if kind == "train":
        return list(CITYSCAPES_TRAIN_CLASSES), "the Cityscapes train ids", 0
    return None, "", 0


def _image_id(mask_dir: pathlib.Path, p: pathlib.Path) -> str:
    stem = p.relative_to(mask_dir).with_suffix("").as_posix()
    return _CITYSCAPES_SUFFIX.sub("", stem)


def _image_for(mask: pathlib.Path, mask_dir: pathlib.Path) -> pathlib.Path | None:
    """The image a label map belongs to, by the usual folder conventions (None if absent).

    The folder naming the maps (``SegmentationClass``, ``masks``, ...) is looked for from the
    label-map folder down (Cityscapes' ``gtFine`` anywhere in the path): a folder named
    ``labels`` far above the data set says nothing about it.
    """
    parts = mask.parts
    lowest = len(mask_dir.parts) - 1
    for k in range(len(parts) - 2, -1, -1):
        other = _IMAGE_DIRS.get(parts[k])
        if other is None or (k < lowest and parts[k] not in _CITYSCAPES_DIRS):
            continue
        folder = pathlib.Path(*parts[:k], other, *parts[k + 1:-1])
        stem = mask.stem
        if parts[k] in _CITYSCAPES_DIRS:
            candidate = folder / f"{_CITYSCAPES_SUFFIX.sub('', stem)}_leftImg8bit.png"
            return candidate if candidate.is_file() else None
        for suffix in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp", ".tif",
                       ".tiff", ".webp"):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file() and candidate.suffix.lower() in IMAGE_SUFFIXES:
                return candidate
        return None
    return None


def _decode_png(path: pathlib.Path, max_pixels: int) -> np.ndarray:
    """The label map's ids as a 2-D integer array; every failure a `LabelFormatError`."""
    Image = _pillow()
    with open(path, "rb") as f:
        head = f.read(33)
    if head[:8] != _PNG_SIGNATURE:
        raise LabelFormatError(path, "", "not a PNG file; label maps must be PNGs (lossy JPEG "
                               "masks change class ids at every edge)")
    hw = image_size(path)
    if hw is None:
        raise LabelFormatError(path, "", "corrupt PNG header (no valid IHDR size)")
    if hw[0] * hw[1] > max_pixels:
        raise LabelFormatError(path, "", f"PNG header declares {hw[0]}x{hw[1]} = "
                               f"{hw[0] * hw[1]} pixels, more than max_pixels={max_pixels}; "
                               f"pass a larger max_pixels=... if that is its real size")
    bomb = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with warnings.catch_warnings():
            # Our own bound was checked above; Pillow's (a module global) is not ours to set.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=["PNG"]) as im:
                mode = im.mode
                if mode not in _ID_MODES:
                    raise LabelFormatError(path, "", _mode_advice(mode))
                im.load()
                arr = np.asarray(im)
    except LabelFormatError:
        raise
    except bomb as e:
        raise LabelFormatError(path, "", f"Pillow refused the image as a decompression bomb "
                               f"({e}); raise PIL.Image.MAX_IMAGE_PIXELS as well") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        raise LabelFormatError(path, "", f"cannot decode the PNG (truncated or corrupt: "
                               f"{str(e)[:80] or type(e).__name__})") from None
    if arr.ndim != 2:
        raise LabelFormatError(path, "", f"expected a single-channel label map, got an array "
                               f"of shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)  # not a view: Pillow stores True as 255
    return arr


def _mode_advice(mode: str) -> str:
    if mode in ("RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
        return (f"a {mode} image is not a label map: class ids must be single-channel "
                f"(palette 'P' or grey 'L' / 16-bit). Colour masks need their colours "
                f"mapped to ids first (VOC: the palette PNGs of SegmentationClass; "
                f"Cityscapes: *_labelIds.png, not *_color.png)")
    return f"PNG mode {mode!r} does not hold integer class ids (expected P, L, 1 or I;16)"


def _regions(arr: np.ndarray, ignore: int | None, num_ids: int) -> np.ndarray:
    """8-connected regions of every id (``scipy.ndimage.label`` per class, in one pass).

    Rows are cut into runs of equal ids; a run is joined to the runs of the next row that
    touch it (below or diagonally) with the same id, so only run starts are visited.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    h, w = arr.shape
    flat = arr.reshape(-1)
    start = np.empty((h, w), bool)
    start[:, 0] = True
    np.not_equal(arr[:, 1:], arr[:, :-1], out=start[:, 1:])
    start = start.reshape(-1)
    start_pos = np.flatnonzero(start)
    src, dst = [], []
    # Pixel pairs (p, p + offset) between a row and the next: below, below-right (p not in
    # the last column), below-left (p not in the first). A pair links two runs; only pairs
    # where a run starts on either side are needed, as the rest repeat the pair to the left.
    for offset, bad_col in ((w, -1), (w + 1, w - 1), (w - 1, 0)):
        if offset == 0 or offset >= flat.size:
            continue
        pa = np.flatnonzero(start[:-offset] | start[offset:])
        if bad_col >= 0:
            pa = pa[pa % w != bad_col]
        pb = pa + offset
        same = flat[pa] == flat[pb]
        src.append(np.searchsorted(start_pos, pa[same], "right") - 1)
        dst.append(np.searchsorted(start_pos, pb[same], "right") - 1)
    if not src:
        src, dst = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    a, b = np.concatenate(src), np.concatenate(dst)
    n = start_pos.size
    graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(n, n))
    num, label = connected_components(graph, directed=False)
    comp_id = np.zeros(num, np.int64)
    comp_id[label] = flat[start_pos]
    if ignore is not None:
        comp_id = comp_id[comp_id != ignore]
    return np.bincount(comp_id, minlength=num_ids)[:num_ids]


def read_masks(folder: PathLike, *, class_names: Sequence[str] | None = None,
               num_classes: int | None = None, ignore_index: int | None = 255,
               split: str | None = None, pattern: str | None = None,
               max_pixels: int = MAX_MASK_PIXELS) -> LabelSet:
    r"""Reads a folder of PNG label maps: per-image pixel, region and presence counts.

    Every pixel value is a class id; ``ignore_index`` (VOC's 255 "void" borders, Cityscapes'
    255 in ``*_labelTrainIds.png``) counts for no class. Layouts:

    * **Pascal VOC**: a root holding ``SegmentationClass/`` (or ``SegmentationClassAug/``),
      or that folder; palette PNGs whose palette index is the class id. ``split="train"``
      reads ``ImageSets/Segmentation/train.txt``, in its order. Default names: the 21 VOC
      classes, ``background`` first. Images: ``JPEGImages/<id>.jpg``.
    * **Cityscapes**: a root holding ``gtFine/`` (or ``gtCoarse/``) or a folder under it;
      only ``*_labelIds.png`` are read (34 classes, cityscapesScripts' ``id``), else
      ``*_labelTrainIds.png`` (19 classes, ``trainId``; 255 ignored); the ``_color`` and
      ``_instanceIds`` PNGs beside them are skipped. Image ids drop the ``_gtFine_labelIds``
      suffix; images: ``leftImg8bit/.../<id>_leftImg8bit.png``.
    * **Any folder** of ``*.png`` (found recursively, sorted; ``pattern="*_mask.png"``
      selects some). Images: a sibling ``images/`` folder for ``masks/``, ``annotations/``,
      ``labels/`` or ``segmentations/`` (ADE20K's layout), same relative name, any image
      suffix.

    Class names come from, in order: ``class_names``; ``labels.txt`` or ``classes.txt`` in
    the label-map folder or the root (one name per line, line ``k`` naming id ``k``);
    ``num_classes`` (``"0"``, ``"1"``, ...); the layout's own classes above; else ``"0"``,
    ``"1"``, ... up to the largest id found, which must then be below 1024
    (`MAX_UNNAMED_CLASSES`). An id at or beyond the class list that is not ``ignore_index``
    is an error.

    Returned counts (``[N, C]``, rows in file order):

    * ``pixel_counts`` (int64): pixels of each class.
    * ``instance_counts`` (int32): 8-connected regions of each class, what a label map can
      say about instances (VOC's void borders keep touching objects apart; elsewhere
      touching objects of a class merge and occluded ones may split).
    * ``counts`` (int32): 1 where the class has at least one pixel, else 0: the number of
      images containing each class is what resampling balances for segmentation
      (`jbalance.resample.solve` on ``counts``; solve on ``pixel_counts`` to balance pixels).

    ``image_sizes`` holds every map's ``(height, width)``; ``mask_paths`` the PNG files;
    ``image_paths`` the images when every one is found (a found image whose header gives a
    different size than its map is an error), else None.

    Args:
      folder: The dataset root or the label-map folder (see the layouts).
      class_names: The class of each id, ``class_names[k]`` for id ``k``.
      num_classes: The number of classes when no names are given (fixes the columns even for
        classes no image contains).
      ignore_index: The id of unlabelled pixels, counted for no class (default 255, VOC's
        void); None counts every value as a class. Binary masks written as 0/255 need
        converting to 0/1 first: by default their 255 is read as void.
      split: VOC only: read the ids listed in ``ImageSets/Segmentation/<split>.txt``.
      pattern: A glob (``"*_labelTrainIds.png"``) selecting the label maps, recursively.
      max_pixels: Largest ``height * width`` of a map, checked from the PNG header before
        decoding (default ``MAX_MASK_PIXELS``, 2**26, e.g. 8192 x 8192).

    Returns:
      A `LabelSet` with ``format="masks"``.

    Raises:
      FileNotFoundError: If ``folder`` (or a map listed by ``split``) does not exist.
      ImportError: If Pillow is not installed (``pip install 'jbalance[masks]'``).
      LabelFormatError: Naming the file (and the first offending pixel ``(y, x)``): a file
        that is not a PNG, a truncated or corrupt PNG, a header larger than ``max_pixels``, a
        map that is not single-channel (RGB colour masks), an id outside the class list other
        than ``ignore_index``, a map whose size differs from its image's, no maps found,
        duplicate image ids, or an unreadable ``labels.txt``.

    Examples:
      >>> import pathlib, tempfile
      >>> import numpy as np
      >>> from PIL import Image
      >>> from jbalance.io import read_masks
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (root / "labels.txt").write_text("background\ncat\ndog\n")
      >>> m = np.zeros((4, 6), np.uint8); m[1:3, 1:3] = 2; m[0, 5] = 255
      >>> Image.fromarray(m, mode="L").save(root / "a.png")
      >>> ls = read_masks(root)
      >>> ls.pixel_counts.tolist(), ls.counts.tolist(), ls.class_names
      ([[19, 0, 4]], [[1, 0, 1]], ['background', 'cat', 'dog'])
    """
    folder = pathlib.Path(folder)
    if ignore_index is not None and (not _is_int(ignore_index) or ignore_index < 0):
        raise ValueError(f"`ignore_index` must be a non-negative integer or None; got "
                         f"{ignore_index!r}.")
    if not _is_int(max_pixels) or max_pixels < 1:
        raise ValueError(f"`max_pixels` must be a positive integer; got {max_pixels!r}.")
    ignore_index = None if ignore_index is None else int(ignore_index)
    max_pixels = int(max_pixels)
    num_classes = None if num_classes is None else int(num_classes)
    root, mask_dir, layout = _resolve(folder)
    files, kind = _list_masks(root, mask_dir, layout, split, pattern)
    if not files:
        raise LabelFormatError(mask_dir, "", "no PNG label maps (*.png) found")
    names, names_source, input_bytes = _class_list(root, mask_dir, layout, kind, class_names,
                                                   num_classes)
    ids = _check_names([_image_id(mask_dir, p) for p in files], len(files), mask_dir,
                       "image ids")
    input_bytes += BYTES_PER_ENTRY * len(files)
    num_ids = len(names) if names is not None else MAX_UNNAMED_CLASSES
    input_bytes += sum(p.stat().st_size for p in files)
    if names is not None:
        _check_cells(len(files), num_ids, input_bytes, mask_dir)
    pixel_rows, region_rows, sizes = [], [], []
    for p in files:
        arr = _decode_png(p, max_pixels)
        valid = _valid_ids(arr, p, num_ids, ignore_index, names, names_source)
        width = num_ids if names is not None else (int(valid.max()) + 1 if valid.size else 0)
        pixel_rows.append(np.bincount(valid, minlength=width).astype(np.int64))
        region_rows.append(_regions(arr, ignore_index, width).astype(np.int32))
        sizes.append(arr.shape)
        del arr, valid
    if names is None:
        width = max((len(r) for r in pixel_rows), default=0)
        names = [str(c) for c in range(width)]
    c = len(names)
    pixel_counts = np.zeros((len(files), c), np.int64)
    instance_counts = np.zeros((len(files), c), np.int32)
    for i, (pr, rr) in enumerate(zip(pixel_rows, region_rows)):
        pixel_counts[i, :pr.size] = pr
        instance_counts[i, :rr.size] = rr
    image_sizes = np.asarray(sizes, np.int32).reshape(len(files), 2)
    image_paths = _image_paths(files, mask_dir, image_sizes)
    return LabelSet((pixel_counts > 0).astype(np.int32), names, ids, "masks", str(folder),
                    image_sizes=image_sizes, image_paths=image_paths,
                    pixel_counts=pixel_counts, instance_counts=instance_counts,
                    mask_paths=tuple(str(p) for p in files))


def _valid_ids(arr: np.ndarray, path: pathlib.Path, num_ids: int, ignore: int | None,
               names: list[str] | None, names_source: str) -> np.ndarray:
    """The map's ids without the ignored pixels (flat); an id beyond the classes is an error."""
    flat = arr.reshape(-1)
    if flat.size == 0:
        return flat
    low, top = int(flat.min()), int(flat.max())
    if low < 0 or top >= num_ids:
        bad = (arr < 0) | (arr >= num_ids)
        if ignore is not None:
            bad &= arr != ignore
        if bad.any():
            y, x = np.unravel_index(int(np.argmax(bad)), arr.shape)
            raise LabelFormatError(path, f"pixel (y={y}, x={x})",
                                   _id_reason(int(arr[y, x]), ignore, names, names_source))
    if ignore is not None and low <= ignore <= top:
        flat = flat[flat != ignore]
    return flat


def _id_reason(value: int, ignore: int | None, names: list[str] | None,
               names_source: str) -> str:
    void = f"; {ignore} is ignored" if ignore is not None else ""
    if names is None:
        return (f"class id {value} without class names: ids must be below "
                f"{MAX_UNNAMED_CLASSES}; give the names (labels.txt, class_names=...) or "
                f"num_classes=...{void}")
    return (f"class id {value} is outside the {len(names)} classes of {names_source} "
            f"(ids 0..{len(names) - 1}{void}); pass class_names=..., num_classes=... "
            f"or ignore_index=...")


def _image_paths(files: list[pathlib.Path], mask_dir: pathlib.Path,
                 sizes: np.ndarray) -> tuple[str, ...] | None:
    found = [_image_for(p, mask_dir) for p in files]
    for p, img, hw in zip(files, found, sizes):
        if img is None:
            continue
        size = image_size(img)
        if size is not None and tuple(size) != tuple(int(v) for v in hw):
            raise LabelFormatError(p, "", f"label map is {hw[0]}x{hw[1]} (height x width) but "
                                   f"its image {img} is {size[0]}x{size[1]}; the map belongs "
                                   f"to another image or was resized")
    if all(img is not None for img in found):
        return tuple(str(img) for img in found)
    return None
