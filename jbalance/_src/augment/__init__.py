"""Composite augmentations: MixUp, Remix, CutMix and Mosaic, for classification and detection.

One capability per module; `jbalance.augment` re-exports the public names:

* `partners`: `partner_indices`, the key split of every batch function, the lambda draws;
* `mixup`: `mixup_one`, `mixup`, `remix`;
* `cutmix`: `cutmix_box`, `cutmix_one`, `cutmix`;
* `mosaic`: `mosaic_layout`, `mosaic_one`, `mosaic`;
* `detection`: `mosaic_boxes_one`, `mosaic_boxes`, `mixup_boxes_one`, `mixup_boxes`;
* `outputs`: the NamedTuples they return (`Mixed`, `MosaicBoxes`, `MixedBoxes`,
  `CutMixBox`, `MosaicLayout`);
* `_checks` (argument checks), `_common` (blend, exact fractions, the `shard_map` cast of
  loop carries) and `_kernels` (the XLA:CPU copy kernels: row bands, permutation cycles,
  windows).

Mask-aware augmentations (segmentation masks through MixUp, CutMix and Mosaic, and
Copy-Paste) belong in modules of their own beside these (``masks``, ``copy_paste``),
built from the same partners, checks and kernels.
"""

from jbalance._src.augment.cutmix import cutmix as cutmix
from jbalance._src.augment.cutmix import cutmix_box as cutmix_box
from jbalance._src.augment.cutmix import cutmix_one as cutmix_one
from jbalance._src.augment.detection import mixup_boxes as mixup_boxes
from jbalance._src.augment.detection import mixup_boxes_one as mixup_boxes_one
from jbalance._src.augment.detection import mosaic_boxes as mosaic_boxes
from jbalance._src.augment.detection import mosaic_boxes_one as mosaic_boxes_one
from jbalance._src.augment.mixup import mixup as mixup
from jbalance._src.augment.mixup import mixup_one as mixup_one
from jbalance._src.augment.mixup import remix as remix
from jbalance._src.augment.mosaic import mosaic as mosaic
from jbalance._src.augment.mosaic import mosaic_layout as mosaic_layout
from jbalance._src.augment.mosaic import mosaic_one as mosaic_one
from jbalance._src.augment.outputs import CutMixBox as CutMixBox
from jbalance._src.augment.outputs import Mixed as Mixed
from jbalance._src.augment.outputs import MixedBoxes as MixedBoxes
from jbalance._src.augment.outputs import MosaicBoxes as MosaicBoxes
from jbalance._src.augment.outputs import MosaicLayout as MosaicLayout
from jbalance._src.augment.partners import partner_indices as partner_indices
