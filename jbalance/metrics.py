"""Metrics for imbalanced data: per-class, macro and micro, jit-compatible.

Classification: `confusion_matrix` and `classification_report` dispatch on the rank of
``labels``: class indices ``[N]`` are multi-class, 0/1 matrices ``[N, C]`` are multi-label
(the ``multilabel_*`` functions are the explicit spelling). Ratios with a zero denominator
are 0 (scikit-learn's ``zero_division=0``); macro averages run over all ``num_classes``
classes.

Ranking and detection: `average_precision` (per-class AP of multi-label scores, scikit-learn's
definition) and `detection_average_precision` (COCO's per-class AP at one IoU threshold). A
class without positives has AP NaN, so ``nanmean`` is the macro mAP over the classes present.

Segmentation: `segmentation_confusion` (pixel confusion matrix, jittable, sums over batches)
and `segmentation_report` (per-class IoU and Dice, mIoU, fwIoU, pixel accuracy). See
docs/metrics.md.
"""

from jbalance._src.metrics import average_precision as average_precision
from jbalance._src.metrics import classification_report as classification_report
from jbalance._src.metrics import confusion_matrix as confusion_matrix
from jbalance._src.metrics import detection_average_precision as detection_average_precision
from jbalance._src.metrics import (
    multilabel_classification_report as multilabel_classification_report,
)
from jbalance._src.metrics import multilabel_confusion_matrix as multilabel_confusion_matrix
from jbalance._src.metrics import report_from_confusion as report_from_confusion
from jbalance._src.metrics import segmentation_confusion as segmentation_confusion
from jbalance._src.metrics import segmentation_report as segmentation_report

__all__ = [
    "average_precision",
    "classification_report",
    "confusion_matrix",
    "detection_average_precision",
    "multilabel_classification_report",
    "multilabel_confusion_matrix",
    "report_from_confusion",
    "segmentation_confusion",
    "segmentation_report",
]
