"""Implementation of `jbalance.losses` (private). One capability per module:

* `weights`: `class_weights`, `log_prior`, `deferred_reweighting` (class weights and priors
  from counts);
* `softmax`: `weighted_softmax_cross_entropy`, `softmax_focal_loss`, and the softmax core the
  long-tail losses reuse;
* `sigmoid`: `weighted_sigmoid_cross_entropy`, `sigmoid_focal_loss` (elementwise);
* `asymmetric`: `asymmetric_loss` (multi-label);
* `longtail`: `adjust_logits`, `logit_adjusted_cross_entropy`,
  `balanced_softmax_cross_entropy`, `ldam_margins`, `ldam_loss`;
* `seesaw`: `seesaw_loss` and its state, `update_counts`;
* `distribution_balanced`: `distribution_balanced_loss` (multi-label, elementwise);
* `segmentation`: `dice_loss`, `generalized_dice_loss`, `tversky_loss`,
  `focal_tversky_loss`, `pixel_class_weights`;
* `lovasz`: `lovasz_softmax_loss`;
* `reduction`: `reduce_loss`, `example_weights`;
* `_inputs` (argument checks, targets, masks) and `_numerics` (stable sigmoid building
  blocks with their derivative rules).

Further losses belong in modules of their own beside these, built from `_inputs` and
`_numerics`.

Every loss returns *unreduced* values (the optax convention): one value per example for the
softmax losses, one per element for the sigmoid losses, one per image and class for the Dice
family; reduce them with `reduce_loss`.
All losses are computed in log space. Half-precision inputs (float16, bfloat16) are computed
in float32 and cast back, so the output dtype always follows ``logits``. Labels, counts,
weights and hyper-parameters are validated with `jbalance._src.checks` (eager `ValueError`;
checkify checks under `jbalance.checks.checked`, with the same ranges and messages).
"""

from jbalance._src.losses.asymmetric import asymmetric_loss as asymmetric_loss
from jbalance._src.losses.distribution_balanced import (
    distribution_balanced_loss as distribution_balanced_loss,
)
from jbalance._src.losses.longtail import adjust_logits as adjust_logits
from jbalance._src.losses.longtail import (
    balanced_softmax_cross_entropy as balanced_softmax_cross_entropy,
)
from jbalance._src.losses.longtail import ldam_loss as ldam_loss
from jbalance._src.losses.longtail import ldam_margins as ldam_margins
from jbalance._src.losses.longtail import (
    logit_adjusted_cross_entropy as logit_adjusted_cross_entropy,
)
from jbalance._src.losses.lovasz import lovasz_softmax_loss as lovasz_softmax_loss
from jbalance._src.losses.reduction import example_weights as example_weights
from jbalance._src.losses.reduction import reduce_loss as reduce_loss
from jbalance._src.losses.seesaw import seesaw_loss as seesaw_loss
from jbalance._src.losses.seesaw import update_counts as update_counts
from jbalance._src.losses.segmentation import dice_loss as dice_loss
from jbalance._src.losses.segmentation import focal_tversky_loss as focal_tversky_loss
from jbalance._src.losses.segmentation import generalized_dice_loss as generalized_dice_loss
from jbalance._src.losses.segmentation import pixel_class_weights as pixel_class_weights
from jbalance._src.losses.segmentation import tversky_loss as tversky_loss
from jbalance._src.losses.sigmoid import sigmoid_focal_loss as sigmoid_focal_loss
from jbalance._src.losses.sigmoid import (
    weighted_sigmoid_cross_entropy as weighted_sigmoid_cross_entropy,
)
from jbalance._src.losses.softmax import softmax_focal_loss as softmax_focal_loss
from jbalance._src.losses.softmax import (
    weighted_softmax_cross_entropy as weighted_softmax_cross_entropy,
)
from jbalance._src.losses.weights import class_weights as class_weights
from jbalance._src.losses.weights import deferred_reweighting as deferred_reweighting
from jbalance._src.losses.weights import log_prior as log_prior
