"""Composite augmentations: MixUp, CutMix, Mosaic and Remix, for classification and detection.

Pure JAX functions with explicit keys; each batch function is built from a public
one-example function (``*_one``) that can be `jax.vmap`-ed directly, and returns a
NamedTuple (`Mixed`, `MosaicBoxes`, `MixedBoxes`, `MixedMasks`, `Pasted`) that unpacks like
a tuple. Segmentation masks go through `mixup_masks`, `cutmix_masks` and `mosaic_masks`;
instance id maps through `copy_paste`. See docs/augment.md.

Every batch function derives its randomness in one documented way::

    key_partners, key_examples = jax.random.split(key)
    partners = partner_indices(key_partners, batch_size, ...)
    keys = jax.random.split(key_examples, batch_size)      # mode="elem"
    keys = [key_examples] * batch_size                       # mode="batch": one shared draw

so ``batch_fn(key, ...)`` equals ``jax.vmap(one_fn)(keys, ..., partners...)``, and a batch
function run on a device's shard (inside `jax.shard_map`, key folded by the axis index)
draws partners from that shard only. No function keeps state or assumes a batch size.

Pixel copies (CutMix, Mosaic) never resample: every output pixel is a copy of one source
pixel or the fill value.
"""

from jbalance._src.augment import CutMixBox as CutMixBox
from jbalance._src.augment import Mixed as Mixed
from jbalance._src.augment import MixedBoxes as MixedBoxes
from jbalance._src.augment import MosaicBoxes as MosaicBoxes
from jbalance._src.augment import MosaicLayout as MosaicLayout
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
from jbalance._src.augment.copy_paste import Pasted as Pasted
from jbalance._src.augment.copy_paste import copy_paste as copy_paste
from jbalance._src.augment.copy_paste import copy_paste_one as copy_paste_one
from jbalance._src.augment.masks import MixedMasks as MixedMasks
from jbalance._src.augment.masks import cutmix_masks as cutmix_masks
from jbalance._src.augment.masks import cutmix_masks_one as cutmix_masks_one
from jbalance._src.augment.masks import mixup_masks as mixup_masks
from jbalance._src.augment.masks import mixup_masks_one as mixup_masks_one
from jbalance._src.augment.masks import mosaic_masks as mosaic_masks
from jbalance._src.augment.masks import mosaic_masks_one as mosaic_masks_one

__all__ = [
    "CutMixBox",
    "Mixed",
    "MixedBoxes",
    "MixedMasks",
    "MosaicBoxes",
    "MosaicLayout",
    "Pasted",
    "copy_paste",
    "copy_paste_one",
    "cutmix",
    "cutmix_box",
    "cutmix_masks",
    "cutmix_masks_one",
    "cutmix_one",
    "mixup",
    "mixup_boxes",
    "mixup_boxes_one",
    "mixup_masks",
    "mixup_masks_one",
    "mixup_one",
    "mosaic",
    "mosaic_boxes",
    "mosaic_boxes_one",
    "mosaic_layout",
    "mosaic_masks",
    "mosaic_masks_one",
    "mosaic_one",
    "partner_indices",
    "remix",
]
