"""Classification metrics for imbalanced data: per-class, macro and micro, jit-compatible.

`confusion_matrix` and `classification_report` dispatch on the rank of ``labels``: class
indices ``[N]`` are multi-class, 0/1 matrices ``[N, C]`` are multi-label (the ``multilabel_*``
functions are the explicit spelling). Ratios with a zero denominator are 0 (scikit-learn's
``zero_division=0``); macro averages run over all ``num_classes`` classes.
"""

from jbalance._src.metrics import classification_report as classification_report
from jbalance._src.metrics import confusion_matrix as confusion_matrix
from jbalance._src.metrics import (
    multilabel_classification_report as multilabel_classification_report,
)
from jbalance._src.metrics import multilabel_confusion_matrix as multilabel_confusion_matrix
from jbalance._src.metrics import report_from_confusion as report_from_confusion

__all__ = [
    "classification_report",
    "confusion_matrix",
    "multilabel_classification_report",
    "multilabel_confusion_matrix",
    "report_from_confusion",
]
