"""Composite augmentations: MixUp, CutMix, Mosaic and Remix, for classification and detection.

Pure JAX functions with explicit keys; each batch function is built from a public
one-example function (``*_one``) that can be `jax.vmap`-ed directly. See docs/augment.md.
"""

from jbalance._src.augment import cutmix as cutmix
from jbalance._src.augment import cutmix_box as cutmix_box
from jbalance._src.augment import cutmix_one as cutmix_one
from jbalance._src.augment import mixup as mixup
from jbalance._src.augment import mixup_boxes as mixup_boxes
from jbalance._src.augment import mixup_boxes_one as mixup_boxes_one
from jbalance._src.augment import mixup_one as mixup_one
from jbalance._src.augment import mosaic as mosaic
from jbalance._src.augment import mosaic_boxes as mosaic_boxes
from jbalance._src.augment import mosaic_boxes_one as mosaic_boxes_one
from jbalance._src.augment import mosaic_layout as mosaic_layout
from jbalance._src.augment import mosaic_one as mosaic_one
from jbalance._src.augment import partner_indices as partner_indices
from jbalance._src.augment import remix as remix

__all__ = [
    "cutmix",
    "cutmix_box",
    "cutmix_one",
    "mixup",
    "mixup_boxes",
    "mixup_boxes_one",
    "mixup_one",
    "mosaic",
    "mosaic_boxes",
    "mosaic_boxes_one",
    "mosaic_layout",
    "mosaic_one",
    "partner_indices",
    "remix",
]
