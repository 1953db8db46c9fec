"""Box formats and padded per-image box arrays (stub: the augment/boxes helper fills this in)."""

from typing import NamedTuple

import numpy as np

# Pixel formats and their normalised twins (the `n` suffix: divided by image width/height).
PIXEL_FORMATS = ("xyxy", "xywh", "cxcywh")
FORMATS = PIXEL_FORMATS + tuple(f + "n" for f in PIXEL_FORMATS)


class Objects(NamedTuple):
    """Every object of a label set, one row per object (host NumPy arrays).

    Attributes:
      image_index: ``[K] int32``, the row of the image in the label set's count matrix.
      class_index: ``[K] int32``, the class (column) of the object.
      boxes: ``[K, 4] float32`` in ``box_format``.
      box_format: one of `FORMATS` (``"xyxy"``, ``"xywh"``, ``"cxcywh"``, or with an ``n``
        suffix when normalised by the image's width and height, e.g. YOLO's ``"cxcywhn"``).
    """

    image_index: np.ndarray
    class_index: np.ndarray
    boxes: np.ndarray
    box_format: str
