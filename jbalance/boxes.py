"""Box formats and fixed-slot detection targets.

`convert` moves boxes between ``"xyxy"``, ``"xywh"`` (COCO), ``"cxcywh"`` and their
normalised ``n`` twins (``"cxcywhn"`` is YOLO txt); `pad_objects` turns a label set's
objects (`Objects`, from ``jbalance.io.load(path, boxes=True)``) into the
``(boxes, classes, valid)`` slots of `jbalance.augment`; `clip_boxes` is the box policy of
the detection augmentations (it returns a `ClippedBoxes`); `from_instance_ids` gives the
boxes of an instance id map (`augment.copy_paste` output, an `InstanceBoxes`). See
docs/boxes.md.
"""

from jbalance._src.boxes import FORMATS as FORMATS
from jbalance._src.boxes import BoxesTruncatedWarning as BoxesTruncatedWarning
from jbalance._src.boxes import ClippedBoxes as ClippedBoxes
from jbalance._src.boxes import InstanceBoxes as InstanceBoxes
from jbalance._src.boxes import Objects as Objects
from jbalance._src.boxes import PaddedObjects as PaddedObjects
from jbalance._src.boxes import clip_boxes as clip_boxes
from jbalance._src.boxes import convert as convert
from jbalance._src.boxes import from_instance_ids as from_instance_ids
from jbalance._src.boxes import pad_objects as pad_objects

__all__ = [
    "FORMATS",
    "BoxesTruncatedWarning",
    "ClippedBoxes",
    "InstanceBoxes",
    "Objects",
    "PaddedObjects",
    "clip_boxes",
    "convert",
    "from_instance_ids",
    "pad_objects",
]
