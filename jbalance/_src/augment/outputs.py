"""The named results of the augmentations (NamedTuples: they unpack like the tuples they are).

A one-example function (``*_one``) returns the same type as its batch function, without the
leading batch axis.
"""

from typing import NamedTuple

from jbalance._src.typing import Bool, Float, Int, Num


class Mixed(NamedTuple):
    """Augmented images and their labels (MixUp, Remix, CutMix, Mosaic).

    Unpacks as ``images, labels = augment.mixup(...)``.

    Attributes:
      images: ``[B, H, W, C]`` (one example: ``[H, W, C]``), the input dtype.
      labels: ``[B, K]`` (one example: ``[K]``) probabilities in the labels' dtype: each
        row is the weighted mean of the label rows of the examples its pixels came from.
    """

    images: Num[" *b h w ch"]
    labels: Float[" *b c"]


class MosaicBoxes(NamedTuple):
    """Detection Mosaic output: the canvas and its fixed box slots (`augment.mosaic_boxes`).

    Unpacks as ``images, boxes, classes, valid``.

    Attributes:
      images: ``[B, out_H, out_W, C]`` (one example: ``[out_H, out_W, C]``), the input dtype.
      boxes: ``[B, tiles * M, 4]`` in ``box_format`` and the input boxes' dtype; slot
        ``t * M + m`` holds box ``m`` of the tile-``t`` source; dropped slots are 0.
      classes: ``[B, tiles * M]`` class ids, carried unchanged from the sources.
      valid: ``[B, tiles * M]`` bool, True for a box that survived clipping and filtering.
    """

    images: Num[" *b oh ow ch"]
    boxes: Float[" *b n 4"]
    classes: Int[" *b n"]
    valid: Bool[" *b n"]


class MixedBoxes(NamedTuple):
    """Detection MixUp output: blended images, both images' boxes and their weights
    (`augment.mixup_boxes`).

    Unpacks as ``images, boxes, classes, valid, box_weights``.

    Attributes:
      images: ``[B, H, W, C]`` (one example: ``[H, W, C]``), the input dtype.
      boxes: ``[B, 2M, 4]`` in ``box_format`` and the input boxes' dtype: slots ``[0, M)``
        are the example's own boxes, ``[M, 2M)`` its partner's; dropped slots are 0.
      classes: ``[B, 2M]`` class ids in the dtype of ``classes``.
      valid: ``[B, 2M]`` bool, True for a box kept by the box policy.
      box_weights: ``[B, 2M]`` in the boxes' dtype: ``lam`` for own boxes, ``1 - lam`` for
        the partner's, 0 for dropped and padding slots.
    """

    images: Num[" *b h w ch"]
    boxes: Float[" *b n 4"]
    classes: Int[" *b n"]
    valid: Bool[" *b n"]
    box_weights: Float[" *b n"]


class CutMixBox(NamedTuple):
    """One CutMix rectangle and the lambda it was drawn from (`augment.cutmix_box`).

    Attributes:
      box: int32 ``[4]`` ``(y1, y2, x1, x2)``, half-open and clipped to the image: the
        pixels that come from the partner.
      lam: float32 scalar, the ``Beta(alpha, alpha)`` draw. The exact partner fraction is
        ``(y2 - y1) * (x2 - x1) / (H * W)``, not ``1 - lam``.
    """

    box: Int[" 4"]
    lam: Float[" "]


class MosaicLayout(NamedTuple):
    """Where each Mosaic tile is and where its source lies (`augment.mosaic_layout`).

    Attributes:
      rects: int32 ``[tiles, 4]`` tile rectangles ``(y1, y2, x1, x2)``, half-open, in
        output pixels (may be empty).
      offsets: int32 ``[tiles, 2]`` ``(dy, dx)``: source pixel ``(y, x)`` lands at output
        pixel ``(y + dy, x + dx)``.
    """

    rects: Int[" t 4"]
    offsets: Int[" t 2"]


