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
