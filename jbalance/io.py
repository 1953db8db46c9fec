"""Readers for COCO, YOLO, Pascal VOC, CSV, NumPy and segmentation label sets; atomic writers.

`load` detects the format and returns a `LabelSet` (``counts [N, C]``, ``class_names``,
``image_ids``, and with ``boxes=True`` every object's box as ``objects`` plus
``image_sizes``; ``image_paths`` where the format says where the images are; with
``masks=True`` per-image ``pixel_counts`` and ``instance_counts`` from COCO segmentations or
PNG label maps). Malformed or hostile data raises `LabelFormatError` (a `ValueError`) naming
the file and the line, record or pixel; a reader's work is bounded by its input's size (and,
for masks, by ``MAX_MASK_PIXELS`` per image). Every writer writes atomically (temporary file,
``fsync``, ``os.replace``), in UTF-8. See docs/io.md.
"""

from jbalance._src.io import MAX_MASK_PIXELS as MAX_MASK_PIXELS
from jbalance._src.io import MAX_UNNAMED_CLASSES as MAX_UNNAMED_CLASSES
from jbalance._src.io import LabelFormatError as LabelFormatError
from jbalance._src.io import LabelSet as LabelSet
from jbalance._src.io import atomic_write as atomic_write
from jbalance._src.io import detect_format as detect_format
from jbalance._src.io import from_counts as from_counts
from jbalance._src.io import image_size as image_size
from jbalance._src.io import load as load
from jbalance._src.io import read_coco as read_coco
from jbalance._src.io import read_coco_masks as read_coco_masks
from jbalance._src.io import read_csv as read_csv
from jbalance._src.io import read_masks as read_masks
from jbalance._src.io import read_numpy as read_numpy
from jbalance._src.io import read_repeats as read_repeats
from jbalance._src.io import read_voc as read_voc
from jbalance._src.io import read_yolo as read_yolo
from jbalance._src.io import write_image_list as write_image_list
from jbalance._src.io import write_indices as write_indices
from jbalance._src.io import write_label_set as write_label_set
from jbalance._src.io import write_repeats as write_repeats

__all__ = [
    "MAX_MASK_PIXELS",
    "MAX_UNNAMED_CLASSES",
    "LabelFormatError",
    "LabelSet",
    "atomic_write",
    "detect_format",
    "from_counts",
    "image_size",
    "load",
    "read_coco",
    "read_coco_masks",
    "read_csv",
    "read_masks",
    "read_numpy",
    "read_repeats",
    "read_voc",
    "read_yolo",
    "write_image_list",
    "write_indices",
    "write_label_set",
    "write_repeats",
]
