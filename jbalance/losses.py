"""Class weights, class-imbalance losses (weighted, focal, logit-adjusted, balanced softmax,
LDAM-DRW, seesaw, asymmetric, distribution-balanced), segmentation losses (Dice,
generalized Dice, Tversky, focal Tversky, Lovász-softmax, pixel class weights) and loss
reductions.

All losses return unreduced values (one per example for the softmax losses, one per element
for the sigmoid losses); reduce them with `reduce_loss`. See ``docs/losses.md``.
"""

from jbalance._src.losses import adjust_logits as adjust_logits
from jbalance._src.losses import asymmetric_loss as asymmetric_loss
from jbalance._src.losses import balanced_softmax_cross_entropy as balanced_softmax_cross_entropy
from jbalance._src.losses import class_weights as class_weights
from jbalance._src.losses import deferred_reweighting as deferred_reweighting
from jbalance._src.losses import dice_loss as dice_loss
from jbalance._src.losses import distribution_balanced_loss as distribution_balanced_loss
from jbalance._src.losses import example_weights as example_weights
from jbalance._src.losses import focal_tversky_loss as focal_tversky_loss
from jbalance._src.losses import generalized_dice_loss as generalized_dice_loss
from jbalance._src.losses import ldam_loss as ldam_loss
from jbalance._src.losses import ldam_margins as ldam_margins
from jbalance._src.losses import log_prior as log_prior
from jbalance._src.losses import logit_adjusted_cross_entropy as logit_adjusted_cross_entropy
from jbalance._src.losses import lovasz_softmax_loss as lovasz_softmax_loss
from jbalance._src.losses import pixel_class_weights as pixel_class_weights
from jbalance._src.losses import reduce_loss as reduce_loss
from jbalance._src.losses import seesaw_loss as seesaw_loss
from jbalance._src.losses import sigmoid_focal_loss as sigmoid_focal_loss
from jbalance._src.losses import softmax_focal_loss as softmax_focal_loss
from jbalance._src.losses import tversky_loss as tversky_loss
from jbalance._src.losses import update_counts as update_counts
from jbalance._src.losses import weighted_sigmoid_cross_entropy as weighted_sigmoid_cross_entropy
from jbalance._src.losses import weighted_softmax_cross_entropy as weighted_softmax_cross_entropy

__all__ = [
    "adjust_logits",
    "asymmetric_loss",
    "balanced_softmax_cross_entropy",
    "class_weights",
    "deferred_reweighting",
    "dice_loss",
    "distribution_balanced_loss",
    "example_weights",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "ldam_loss",
    "ldam_margins",
    "log_prior",
    "logit_adjusted_cross_entropy",
    "lovasz_softmax_loss",
    "pixel_class_weights",
    "reduce_loss",
    "seesaw_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
    "tversky_loss",
    "update_counts",
    "weighted_sigmoid_cross_entropy",
    "weighted_softmax_cross_entropy",
]
