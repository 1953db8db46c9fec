r"""Segmentation metrics: the pixel confusion matrix and IoU / Dice reports.

In a street scene or a scan, background takes most of the pixels: pixel accuracy is then
high for a model that never finds the rare class. Per-class IoU and its mean (mIoU) weigh
every class the same. As for classification, the confusion matrix is the sufficient
statistic: `segmentation_confusion` is jittable and sums over batches (and devices), and
`segmentation_report` turns the total into metrics.
"""

import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.metrics.classification import _check_num_classes, _check_where, _float_dtype
from jbalance._src.typing import Array, Bool, Int, Num


def segmentation_confusion(labels: Int[" n *spatial"], predictions: Num[" n *k"], *,
                           num_classes: int, ignore_index: int | None = None,
                           where: Bool[" n *spatial"] | None = None) -> Int[" c c"]:
    r"""Pixel confusion matrix ``[C, C]`` of label maps: rows the truth, columns the prediction.

    .. math::
      M_{ij} = \sum_{\text{pixels } p} [y_p = i]\,[\hat y_p = j]\,[y_p \ne \text{ignore}]\,w_p

    The layout is `confusion_matrix`'s (and scikit-learn's). Matrices add up: the sum of the
    matrices of the batches of an evaluation set (or a `jax.lax.psum` over devices) is the
    matrix of the whole set, which `segmentation_report` turns into IoU and Dice.

    Args:
      labels: Integer label maps ``[N, *spatial]`` (e.g. ``[N, H, W]``), class ids in
        ``[0, num_classes)`` or ``ignore_index``.
      predictions: Predicted class ids ``[N, *spatial]``, or floating scores
        ``[N, *spatial, num_classes]`` (logits or probabilities; the arg-max is taken).
      num_classes: Number of classes ``C``. Static (it sets the output shape).
      ignore_index: A label value whose pixels are not counted (VOC's 255, for object
        boundaries). Static. ``None``: every label must be a class id.
      where: Optional boolean (or integer, non-zero = counted) mask broadcastable to
        ``labels.shape``: only those pixels are counted (e.g. the padding of a batch).

    Returns:
      int32 ``[C, C]`` counts. Accumulate large evaluation sets (beyond ``2**31`` pixels in
      one cell) in int64 on the host, e.g. ``np.asarray(cm, np.int64)`` per batch.

    Raises:
      TypeError: non-integer labels or predictions of an unsupported dtype, a non-static
        ``num_classes`` or ``ignore_index``, a real-valued mask.
      ValueError: ``predictions`` whose shape is neither ``labels.shape`` nor
        ``labels.shape + (num_classes,)``; ``num_classes < 1``; a label outside
        ``[0, num_classes)`` other than ``ignore_index``, or a predicted id outside
        ``[0, num_classes)`` (eagerly; under `jit` through `jbalance.checks.checked`, and
        otherwise such pixels are not counted, never aliased onto a real cell).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> labels = jnp.array([[[0, 0], [1, 255]]])
      >>> predictions = jnp.array([[[0, 1], [1, 1]]])
      >>> metrics.segmentation_confusion(labels, predictions, num_classes=2, ignore_index=255)
      Array([[1, 1],
             [0, 1]], dtype=int32)

    References:
      Everingham et al., `The PASCAL Visual Object Classes (VOC) Challenge
      <https://doi.org/10.1007/s11263-009-0275-4>`_, IJCV 2010 (segmentation accuracy and
      the ignored boundary label).

    .. versionadded:: 0.2.0
    """
    num_classes = _check_num_classes(num_classes)
    if ignore_index is not None and (isinstance(ignore_index, bool) or
                                     not isinstance(ignore_index, (int, np.integer))):
        raise TypeError(f"`ignore_index` must be a Python int or None (static), got "
                        f"{type(ignore_index).__name__}.")
    labels = checks.check_array(labels, "labels")
    predictions = checks.check_array(predictions, "predictions")
    checks.check_integer(labels, "labels")
    checks.check_min_rank(labels, 1, "labels", "[num_images, *spatial]")
    shape = tuple(np.shape(labels))
    if np.shape(predictions) == shape + (num_classes,) and \
            jnp.issubdtype(jnp.result_type(predictions), jnp.floating):
        predictions = jnp.argmax(jnp.asarray(predictions), axis=-1)
    elif np.shape(predictions) != shape:
        raise ValueError(
            f"`predictions` must have the shape of `labels` {shape} (class ids) or "
            f"{shape + (num_classes,)} (floating scores), got {tuple(np.shape(predictions))}.")
    checks.check_integer(predictions, "predictions")
    mask = _check_where(where, shape)
    y = jnp.asarray(labels).astype(jnp.int32)
    p = jnp.asarray(predictions).astype(jnp.int32)
    in_range = (y >= 0) & (y < num_classes)
    counted = in_range
    if ignore_index is not None:
        ignored = y == ignore_index
        counted = in_range & ~ignored
        label_ok = in_range | ignored
        hint = f" or `ignore_index` ({ignore_index})"
    else:
        label_ok, hint = in_range, ""
    if mask is not None:
        counted = counted & mask
        label_ok = label_ok | ~mask
    checks.require(label_ok, f"`labels` must hold class ids in [0, {num_classes}){hint}; mask "
                             f"other pixels out with `ignore_index=` or `where=`.")
    pred_ok = (p >= 0) & (p < num_classes)
    checks.require(pred_ok | ~counted,
                   f"`predictions` must hold class ids in [0, {num_classes}).")
    counted = counted & pred_ok
    # One flat histogram of (label, prediction) pairs; uncounted pixels go to an extra bin
    # that is cut off, so out-of-range values never alias onto a real cell.
    overflow = num_classes * num_classes
    flat = jnp.where(counted, y * num_classes + p, jnp.full_like(y, overflow)).reshape(-1)
    hist = jnp.bincount(flat, length=overflow + 1)
    return hist[:overflow].reshape(num_classes, num_classes).astype(jnp.int32)


def segmentation_report(confusion: Num[" c c"]) -> dict[str, Array]:
    r"""Per-class IoU and Dice, mIoU, frequency-weighted IoU and pixel accuracy.

    From the pixel confusion matrix ``M`` (rows the truth) with ``tp_c = M_cc``,
    ``fp_c = sum_i M_ic - tp_c`` and ``fn_c = sum_j M_cj - tp_c``:

    .. math::
      \mathrm{IoU}_c = \frac{tp_c}{tp_c + fp_c + fn_c},\quad
      \mathrm{Dice}_c = \frac{2\,tp_c}{2\,tp_c + fp_c + fn_c},\quad
      \mathrm{fwIoU} = \sum_c \frac{t_c}{\sum_k t_k}\,\mathrm{IoU}_c,\quad
      \text{pixel accuracy} = \frac{\sum_c tp_c}{\sum_c t_c}

    with ``t_c = tp_c + fn_c`` the true pixels of class ``c``.

    **Absent classes.** A class that is neither in the labels nor predicted
    (``tp + fp + fn = 0``) has no IoU: its ``iou`` and ``dice`` are NaN and it is left out of
    ``miou``, ``mdice`` and ``worst_class_iou`` (the mean runs over the classes present in
    the labels or the predictions, as mmsegmentation's ``nanmean``). A class predicted but
    absent from the labels has IoU 0 and counts. ``fwiou`` weighs each class by its share of
    true pixels, so classes without true pixels weigh 0. With no counted pixel at all, every
    scalar is NaN.

    Args:
      confusion: ``[C, C]`` pixel counts from `segmentation_confusion` (integer, or floating
        weighted counts), e.g. summed over the batches of an evaluation set.

    Returns:
      A dict of arrays in the default float dtype (float32, or float64 with
      ``jax_enable_x64``):

      * ``iou``, ``dice``: per class ``[C]``, NaN for absent classes;
      * ``miou``, ``mdice``: their means over the classes present;
      * ``worst_class_iou``: the lowest IoU among the classes present;
      * ``fwiou``: frequency-weighted IoU (Long et al.);
      * ``pixel_accuracy``: the fraction of counted pixels predicted right.

    Raises:
      ValueError: a shape other than ``[C, C]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> cm = jnp.array([[6, 2, 0], [1, 1, 0], [0, 0, 0]])
      >>> r = metrics.segmentation_report(cm)
      >>> print(f"{float(r['miou']):.4f} {float(r['fwiou']):.4f} {float(r['pixel_accuracy']):.4f}")
      0.4583 0.5833 0.7000
      >>> bool(jnp.isnan(r["iou"][2]))
      True

    References:
      Everingham et al., `The PASCAL Visual Object Classes (VOC) Challenge
      <https://doi.org/10.1007/s11263-009-0275-4>`_, IJCV 2010 (per-class IoU, its mean).
      Long, Shelhamer and Darrell, `Fully Convolutional Networks for Semantic Segmentation
      <https://arxiv.org/abs/1411.4038>`_, CVPR 2015 (pixel accuracy, mean and
      frequency-weighted IoU).

    .. versionadded:: 0.2.0
    """
    confusion = checks.check_array(confusion, "confusion")
    shape = tuple(np.shape(confusion))
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"`confusion` must have shape [C, C] (rows the truth), got {shape}. "
                         f"Build it with `jbalance.metrics.segmentation_confusion`.")
    dtype = _float_dtype()
    m = jnp.asarray(confusion).astype(dtype)
    tp = jnp.diagonal(m)
    true = jnp.sum(m, axis=1)
    fp = jnp.sum(m, axis=0) - tp
    fn = true - tp
    union = tp + fp + fn
    present = union > 0
    nan = jnp.full_like(tp, jnp.nan)

    def ratio(num: Array, den: Array) -> Array:
        # Double `where`: an absent class never divides by zero (NaN there by contract).
        return jnp.where(present, num / jnp.where(present, den, jnp.ones_like(den)), nan)

    iou = ratio(tp, union)
    dice = ratio(2 * tp, 2 * tp + fp + fn)
    count = jnp.sum(present.astype(dtype))
    zero = jnp.zeros_like(tp)

    def mean(x: Array) -> Array:
        return jnp.where(count > 0, jnp.sum(jnp.where(present, x, zero)) /
                         jnp.where(count > 0, count, jnp.ones_like(count)),
                         jnp.full((), jnp.nan, dtype))

    total = jnp.sum(true)
    has_pixels = total > 0
    safe_total = jnp.where(has_pixels, total, jnp.ones_like(total))
    scalar_nan = jnp.full((), jnp.nan, dtype)
    fw = jnp.sum(jnp.where(true > 0, true * jnp.where(present, iou, zero), zero)) / safe_total
    return {
        "iou": iou,
        "dice": dice,
        "miou": mean(iou),
        "mdice": mean(dice),
        "worst_class_iou": jnp.where(count > 0, jnp.min(jnp.where(present, iou, jnp.inf)),
                                     scalar_nan),
        "fwiou": jnp.where(has_pixels, fw, scalar_nan),
        "pixel_accuracy": jnp.where(has_pixels, jnp.sum(tp) / safe_total, scalar_nan),
    }
