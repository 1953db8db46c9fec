"""Readers for annotation formats and writers for resampling plans (host-side NumPy).

Every reader turns a label source into a `LabelSet`: the integer count matrix
``counts[i, c]`` (objects of class ``c`` in image ``i``) that `jbalance.resample` and
`jbalance.report` take, plus the class names and image ids that give its rows and columns a
meaning, and on request (``boxes=True``) every object's box. One module per format:

* ``common``: `LabelSet`, `LabelFormatError`, `from_counts`, the shared checks and the bounds
  on the work a file may cause;
* ``coco``, ``yolo``, ``voc``, ``csv``, ``numpy``: the readers;
* ``masks``, ``coco_masks``: segmentation readers (PNG label maps, COCO polygons and RLE)
  filling ``pixel_counts`` and ``instance_counts``;
* ``detect``: `detect_format` and `load`;
* ``writers``: atomic writers (`write_repeats`, `write_indices`, `write_image_list`,
  `write_label_set`) and `read_repeats`.

Errors in the data raise `LabelFormatError` (a `ValueError`) whose message names the file and
the line or record. A missing file stays a `FileNotFoundError` (an `OSError`). Nothing is
silently skipped: an annotation that points to an unknown image or category is an error, not a
dropped row.
"""

# Re-exported for the public `jbalance.io` and for `report` (which reads count matrices).
# ruff: noqa: F401
from jbalance._src.io.coco import read_coco
from jbalance._src.io.coco_masks import read_coco_masks
from jbalance._src.io.common import (
    CELL_FLOOR,
    CELLS_PER_BYTE,
    MAX_UNNAMED_CLASSES,
    MAX_YAML_BYTES,
    LabelFormatError,
    LabelSet,
    _as_count_matrix,
    from_counts,
)
from jbalance._src.io.csv import read_csv
from jbalance._src.io.detect import FORMATS, detect_format, load
from jbalance._src.io.masks import MAX_MASK_PIXELS, read_masks
from jbalance._src.io.numpy import read_numpy
from jbalance._src.io.voc import read_voc
from jbalance._src.io.writers import (
    atomic_write,
    read_repeats,
    write_image_list,
    write_indices,
    write_label_set,
    write_repeats,
)
from jbalance._src.io.yolo import image_size, read_yolo
