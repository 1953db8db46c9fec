"""Metrics for imbalanced data (implementation package; the public API is `jbalance.metrics`).

* `classification`: confusion matrices and per-class / macro / micro reports.
* `ranking`: per-class average precision of multi-label scores.
* `detection`: COCO-style per-class detection AP.
* `segmentation`: pixel confusion matrices and IoU / Dice reports.
"""

from jbalance._src.metrics.classification import classification_report as classification_report
from jbalance._src.metrics.classification import confusion_matrix as confusion_matrix
from jbalance._src.metrics.classification import (
    multilabel_classification_report as multilabel_classification_report,
)
from jbalance._src.metrics.classification import (
    multilabel_confusion_matrix as multilabel_confusion_matrix,
)
from jbalance._src.metrics.classification import report_from_confusion as report_from_confusion
from jbalance._src.metrics.detection import (
    detection_average_precision as detection_average_precision,
)
from jbalance._src.metrics.ranking import average_precision as average_precision
from jbalance._src.metrics.segmentation import segmentation_confusion as segmentation_confusion
from jbalance._src.metrics.segmentation import segmentation_report as segmentation_report
