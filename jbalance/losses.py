"""Class weights, weighted and focal cross-entropies, and loss reductions.

All losses return unreduced values (one per example for the softmax losses, one per element
for the sigmoid losses); reduce them with `reduce_loss`. See ``docs/losses.md``.
"""

from jbalance._src.losses import class_weights as class_weights
from jbalance._src.losses import example_weights as example_weights
from jbalance._src.losses import reduce_loss as reduce_loss
from jbalance._src.losses import sigmoid_focal_loss as sigmoid_focal_loss
from jbalance._src.losses import softmax_focal_loss as softmax_focal_loss
from jbalance._src.losses import weighted_sigmoid_cross_entropy as weighted_sigmoid_cross_entropy
from jbalance._src.losses import weighted_softmax_cross_entropy as weighted_softmax_cross_entropy

__all__ = [
    "class_weights",
    "example_weights",
    "reduce_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
    "weighted_sigmoid_cross_entropy",
    "weighted_softmax_cross_entropy",
]
