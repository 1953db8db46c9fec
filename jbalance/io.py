"""Readers for COCO, YOLO, Pascal VOC, CSV and NumPy label sets; writers for plans.

`load` detects the format and returns a `LabelSet` (``counts [N, C]``, ``class_names``,
``image_ids``); malformed data raises `LabelFormatError` (a `ValueError`) naming the file and
the line or record. See docs/io.md.
"""

from jbalance._src.io import LabelFormatError as LabelFormatError
from jbalance._src.io import LabelSet as LabelSet
from jbalance._src.io import detect_format as detect_format
from jbalance._src.io import from_counts as from_counts
from jbalance._src.io import load as load
from jbalance._src.io import read_coco as read_coco
from jbalance._src.io import read_csv as read_csv
from jbalance._src.io import read_numpy as read_numpy
from jbalance._src.io import read_repeats as read_repeats
from jbalance._src.io import read_voc as read_voc
from jbalance._src.io import read_yolo as read_yolo
from jbalance._src.io import write_indices as write_indices
from jbalance._src.io import write_label_set as write_label_set
from jbalance._src.io import write_repeats as write_repeats

__all__ = [
    "LabelFormatError",
    "LabelSet",
    "detect_format",
    "from_counts",
    "load",
    "read_coco",
    "read_csv",
    "read_numpy",
    "read_repeats",
    "read_voc",
    "read_yolo",
    "write_indices",
    "write_label_set",
    "write_repeats",
]
