"""Segmentation losses of the Dice family: `dice_loss`, `generalized_dice_loss`,
`tversky_loss`, `focal_tversky_loss`, and pixel class weights (`pixel_class_weights`).

Channels-last, as everywhere in jbalance: logits ``[N, *spatial, C]``; labels are integer
label maps ``[N, *spatial]`` (checked as the softmax losses check class ids, with
``ignore_index`` and ``where=``) or one-hot / soft targets ``[N, *spatial, C]``. Every loss
is built from three per-class sums over the kept pixels of one image (or of the batch):
``tp = sum p g``, ``P = sum p`` and ``G = sum g``; false positives and false negatives are
``P - tp`` and ``G - tp``. Ignored and masked pixels enter none of the sums; their logits are
replaced by 0 before the activation, so NaN there gives 0 gradient.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jbalance._src import checks
from jbalance._src.losses import _inputs
from jbalance._src.typing import Array, ArrayLike, DTypeLike, Float, Num

ACTIVATIONS = ("softmax", "sigmoid")
WEIGHT_TYPES = ("square", "simple", "uniform")
PIXEL_METHODS = ("median_frequency", "enet")


class _Sums(NamedTuple):
    tp: Array  # [N, C'] (or [C'] over the batch): sum of p * g
    pred: Array  # sum of p (or p^2 with squared)
    truth: Array  # sum of g (or g^2 with squared)
    bad: Array | None  # [N] (or []) an unmasked class id out of range (NaN marker)
    dtype: Any
    cdt: Any


def _sums(logits: Any, labels: Any, *, activation: str, include_background: bool,
          reduce_batch: bool, ignore_index: Any, where: Any, squared: bool = False) -> _Sums:
    """Validated inputs -> the per-class sums of the Dice family."""
    checks.check_one_of(activation, ACTIVATIONS, "activation")
    logits = _inputs.logits_array(logits, min_rank=2)
    z, t, dtype, cdt = _inputs.softmax_inputs(logits, labels, where, ignore_index)
    num_classes = z.shape[-1]
    if not include_background and num_classes < 2:
        raise ValueError("`include_background=False` drops channel 0 and needs at least two "
                         "channels in `logits`.")
    if activation == "softmax":
        p = jax.nn.softmax(z, axis=-1)
    else:
        p = jax.nn.sigmoid(z)
    g = t.hit.astype(cdt) if t.ids is not None else t.probs
    if t.mask is not None:
        # Masked pixels leave every sum (their ids were replaced by 0: drop that hit too).
        keep = t.mask[..., None]
        p = jnp.where(keep, p, jnp.zeros((), cdt))
        g = jnp.where(keep, g, jnp.zeros((), cdt))
    if not include_background:
        p, g = p[..., 1:], g[..., 1:]
    axes = tuple(range(1, z.ndim - 1))
    if reduce_batch:
        axes = (0, *axes)
    tp = jnp.sum(p * g, axis=axes)
    if squared:
        pred, truth = jnp.sum(p * p, axis=axes), jnp.sum(g * g, axis=axes)
    else:
        pred, truth = jnp.sum(p, axis=axes), jnp.sum(g, axis=axes)
    bad = None
    if t.valid is not None:
        # Out-of-range ids (reachable only under an unchecked jit) make their image NaN.
        wrong = ~t.valid if t.mask is None else ~t.valid & t.mask
        bad = (jnp.any(wrong) if reduce_batch
               else jnp.any(wrong.reshape(wrong.shape[0], -1), axis=1))
    return _Sums(tp, pred, truth, bad, dtype, cdt)


def _finish(loss: Array, s: _Sums, per_class: bool) -> Array:
    if s.bad is not None:
        bad = s.bad[..., None] if (per_class and s.bad.ndim) else s.bad
        loss = jnp.where(bad, jnp.asarray(jnp.nan, loss.dtype), loss)
    return loss.astype(s.dtype)


def _weights(class_weights: Any, num_classes: int, include_background: bool,
             cdt: Any) -> Array | None:
    w = _inputs.class_weights_1d(class_weights, num_classes, (num_classes,))
    if w is None:
        return None
    w = w.astype(cdt)
    return w if include_background else w[1:]


def _smooth(smooth_nr: Any, smooth_dr: Any, cdt: Any) -> tuple[Array, Array]:
    return (_inputs.hyper(smooth_nr, "smooth_nr", (), cdt, low=0.0),
            _inputs.hyper(smooth_dr, "smooth_dr", (), cdt, low=0.0))


def dice_loss(logits: Float[" n *spatial c"], labels: Num[" n *labels"], *,
              activation: str = "softmax", include_background: bool = True,
              squared: bool = False, smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5,
              reduce_batch: bool = False, class_weights: Num[" c"] | None = None,
              ignore_index: int | None = None,
              where: ArrayLike | None = None) -> Float[" ..."]:
    r"""Soft Dice loss per image and class (Milletari et al.), as MONAI's ``DiceLoss``.

    Dice measures overlap per class, so a class's loss does not shrink with its pixel count:
    a class covering 0.1 % of the image weighs as much as the background. Combine it with a
    per-pixel cross-entropy for stable early training.

    .. math::
      \ell_{nc} = w_c \left(1 - \frac{2 \sum_i p_{nic}\, g_{nic} + s_{nr}}
          {\sum_i p_{nic}^{k} + \sum_i g_{nic}^{k} + s_{dr}}\right)

    over the kept pixels ``i`` of image ``n``, with :math:`p` the softmax (or sigmoid) of the
    logits, :math:`g` the one-hot or soft target, :math:`k = 2` with ``squared=True`` (V-Net's
    form) and 1 otherwise. It equals MONAI's ``DiceLoss(to_onehot_y=True, softmax=True,
    include_background=..., squared_pred=..., smooth_nr=..., smooth_dr=..., batch=...,
    weight=..., reduction="none")`` (``sigmoid=True`` for ``activation="sigmoid"``; no
    ``to_onehot_y`` for one-hot labels) with the channel axis moved last and the trailing
    singleton axes dropped. Reduce with ``.mean()`` for MONAI's ``reduction="mean"``.

    Shapes. Per image the output is ``[N, C]``; with ``reduce_batch=True`` the sums run over
    the batch as well and the output is ``[C]``. With ``include_background=False`` channel 0
    is dropped (MONAI's rule), so the class axis has ``C - 1`` entries, for classes
    ``1 .. C-1``; ``class_weights`` still has one entry per logit channel (``C``) and its
    first entry is then unused (MONAI's ``weight`` is ``class_weights[1:]``).

    Conventions. Ignored (``ignore_index``) and masked (``where=``) pixels enter no sum. A
    class absent from an image's labels has ``G = 0`` and ``tp = 0``: its loss is
    :math:`1 - s_{nr} / (P + s_{dr})`, close to 1 unless the prediction is empty too (MONAI's
    convention). An empty or entirely ignored image has every sum 0: its loss is
    :math:`1 - s_{nr} / s_{dr}` (0 with the default equal smoothing terms) with gradient 0.
    With ``smooth_dr > 0`` values and gradients are finite in every case.

    Args:
        logits: Unnormalised scores ``[N, *spatial, C]``, floating (rank >= 2).
        labels: Integer label maps ``[N, *spatial]`` with ids in ``[0, C)`` (other than
            ``ignore_index``/masked pixels), or floating one-hot / soft targets
            ``[N, *spatial, C]``, finite and ``>= 0``.
        activation: ``"softmax"`` (one class per pixel) or ``"sigmoid"`` (multi-label:
            every channel an independent yes/no; static).
        include_background: ``False`` drops channel 0 from the loss (static).
        squared: Square the terms of the denominator (static).
        smooth_nr: Added to the numerator, ``>= 0``. Traceable.
        smooth_dr: Added to the denominator, ``>= 0`` (keep it ``> 0`` for empty images).
            Traceable.
        reduce_batch: Sum over the batch before the ratio (MONAI's ``batch=True``; static).
        class_weights: Optional finite, non-negative weights ``[C]`` multiplying each class's
            loss.
        ignore_index: Optional label id (VOC's 255) whose pixels are left out of every sum.
        where: Optional boolean mask broadcastable to ``[N, *spatial]``; masked pixels are
            left out of every sum (0 gradient, even for NaN logits there).

    Returns:
        Losses ``[N, C]`` (``[N, C - 1]`` without background; ``[C]`` / ``[C - 1]`` with
        ``reduce_batch=True``), dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating; ``labels``/``where`` of the wrong dtype.
        ValueError: a bad ``activation``; ``labels`` of the wrong shape (one-hot with a
            channel count other than ``C``); class ids out of range (eagerly and under
            `jbalance.checks.checked`; an unchecked `jit` gives NaN for that image); negative
            smoothing; negative or non-finite ``class_weights``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])  # [1, 3, 2]
        >>> loss = losses.dice_loss(logits, jnp.array([[0, 1, 1]]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [[0.3885 0.3588]]

    References:
        Milletari et al., `V-Net: Fully Convolutional Neural Networks for Volumetric Medical
        Image Segmentation <https://arxiv.org/abs/1606.04797>`_, 3DV 2016.

        MONAI, `DiceLoss
        <https://docs.monai.io/en/stable/losses.html#diceloss>`_.

    .. versionadded:: 0.3.0
    """
    s = _sums(logits, labels, activation=activation, include_background=include_background,
              reduce_batch=reduce_batch, ignore_index=ignore_index, where=where,
              squared=squared)
    nr, dr = _smooth(smooth_nr, smooth_dr, s.cdt)
    loss = 1 - (2 * s.tp + nr) / (s.pred + s.truth + dr)
    w = _weights(class_weights, jnp.shape(logits)[-1], include_background, s.cdt)
    if w is not None:
        loss = loss * jnp.broadcast_to(w, loss.shape)
    return _finish(loss, s, per_class=True)


def generalized_dice_loss(logits: Float[" n *spatial c"], labels: Num[" n *labels"], *,
                          activation: str = "softmax", include_background: bool = True,
                          weight_type: str = "square", smooth_nr: ArrayLike = 1e-5,
                          smooth_dr: ArrayLike = 1e-5, reduce_batch: bool = False,
                          ignore_index: int | None = None,
                          where: ArrayLike | None = None) -> Float[" ..."]:
    r"""Generalized Dice loss (Sudre et al. 2017), one value per image, as MONAI's.

    One Dice ratio over all classes, each class weighted by the inverse square of its
    ground-truth volume, so that small structures count as much as large ones.

    .. math::
      \ell_n = 1 - \frac{2 \sum_c w_{nc} \sum_i p_{nic} g_{nic} + s_{nr}}
          {\sum_c w_{nc} \sum_i (p_{nic} + g_{nic}) + s_{dr}}, \qquad
      w_{nc} = 1 / G_{nc}^2 \;(\text{square}),\; 1 / G_{nc} \;(\text{simple}),\;
      1 \;(\text{uniform})

    with :math:`G_{nc} = \sum_i g_{nic}`. Absent classes (MONAI's rule): a class with
    :math:`G_{nc} = 0` would get an infinite weight; it gets the largest finite weight of
    the same image instead (of the whole batch with ``reduce_batch=True``). An image in
    which no class is present (empty, or entirely ignored) has every weight 0, so its loss is
    :math:`1 - s_{nr}/s_{dr}` (0 by default) with gradient 0. Equals MONAI's
    ``GeneralizedDiceLoss(to_onehot_y=True, softmax=True, w_type=..., reduction="none")``
    with the trailing singleton axes dropped. The weights are functions of the labels only.

    Args:
        logits: Unnormalised scores ``[N, *spatial, C]``, floating (rank >= 2).
        labels: Integer label maps ``[N, *spatial]`` or one-hot / soft ``[N, *spatial, C]``
            (as in `dice_loss`).
        activation: ``"softmax"`` or ``"sigmoid"`` (static).
        include_background: ``False`` drops channel 0 (static).
        weight_type: ``"square"``, ``"simple"`` or ``"uniform"`` (static).
        smooth_nr: Added to the numerator, ``>= 0``. Traceable.
        smooth_dr: Added to the denominator, ``>= 0``. Traceable.
        reduce_batch: Sum over the batch first (MONAI's ``batch=True``): one value ``[]``.
        ignore_index: Optional label id left out of every sum.
        where: Optional boolean mask broadcastable to ``[N, *spatial]``.

    Returns:
        Losses ``[N]`` (a scalar with ``reduce_batch=True``), dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating; ``labels``/``where`` of the wrong dtype.
        ValueError: a bad ``activation`` or ``weight_type``; wrong label shapes; class ids
            out of range; negative smoothing.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])
        >>> loss = losses.generalized_dice_loss(logits, jnp.array([[0, 1, 1]]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [0.3822]

    References:
        Sudre et al., `Generalised Dice overlap as a deep learning loss function for highly
        unbalanced segmentations <https://arxiv.org/abs/1707.03237>`_, DLMIA 2017.

        MONAI, `GeneralizedDiceLoss
        <https://docs.monai.io/en/stable/losses.html#generalizeddiceloss>`_.

    .. versionadded:: 0.3.0
    """
    checks.check_one_of(weight_type, WEIGHT_TYPES, "weight_type")
    s = _sums(logits, labels, activation=activation, include_background=include_background,
              reduce_batch=reduce_batch, ignore_index=ignore_index, where=where)
    nr, dr = _smooth(smooth_nr, smooth_dr, s.cdt)
    g = jax.lax.stop_gradient(s.truth)
    present = g > 0
    one = jnp.ones((), s.cdt)
    if weight_type == "uniform":
        w = jnp.ones_like(g)
    else:
        safe = jnp.where(present, g, one)
        w = 1 / (safe * safe) if weight_type == "square" else 1 / safe
        # float32 overflow of 1 / G^2 for tiny soft volumes counts as infinite, like MONAI's.
        present = present & jnp.isfinite(w)
        w = jnp.where(present, w, jnp.zeros((), s.cdt))
        w_max = jnp.max(w, axis=-1, keepdims=True)
        w = jnp.where(present, w, w_max)
    numer = 2 * jnp.sum(w * s.tp, axis=-1) + nr
    denom = jnp.sum(w * (s.pred + s.truth), axis=-1) + dr
    return _finish(1 - numer / denom, s, per_class=False)


def _tversky(logits, labels, alpha, beta, smooth_nr, smooth_dr, activation,
             include_background, reduce_batch, class_weights, ignore_index,
             where) -> tuple[Array, _Sums, Array | None]:
    s = _sums(logits, labels, activation=activation, include_background=include_background,
              reduce_batch=reduce_batch, ignore_index=ignore_index, where=where)
    nr, dr = _smooth(smooth_nr, smooth_dr, s.cdt)
    a = _inputs.hyper(alpha, "alpha", (), s.cdt, low=0.0)
    b = _inputs.hyper(beta, "beta", (), s.cdt, low=0.0)
    fp, fn = s.pred - s.tp, s.truth - s.tp
    loss = 1 - (s.tp + nr) / (s.tp + a * fp + b * fn + dr)
    w = _weights(class_weights, jnp.shape(logits)[-1], include_background, s.cdt)
    return loss, s, w


def tversky_loss(logits: Float[" n *spatial c"], labels: Num[" n *labels"], *,
                 alpha: ArrayLike = 0.5, beta: ArrayLike = 0.5, smooth_nr: ArrayLike = 1e-5,
                 smooth_dr: ArrayLike = 1e-5, activation: str = "softmax",
                 include_background: bool = True, reduce_batch: bool = False,
                 class_weights: Num[" c"] | None = None, ignore_index: int | None = None,
                 where: ArrayLike | None = None) -> Float[" ..."]:
    r"""Tversky loss per image and class (Salehi et al. 2017), as MONAI's ``TverskyLoss``.

    Dice with separate weights for false positives (``alpha``) and false negatives
    (``beta``): raising ``beta`` trades precision for the recall of small structures.

    .. math::
      \ell_{nc} = w_c \left(1 - \frac{TP + s_{nr}}{TP + \alpha\, FP + \beta\, FN + s_{dr}}
          \right), \quad TP = \sum_i p g,\; FP = \sum_i p (1 - g),\; FN = \sum_i (1 - p) g

    over the kept pixels of image ``n`` and class ``c``. ``alpha = beta = 0.5`` gives
    `dice_loss`. Equals MONAI's ``TverskyLoss(to_onehot_y=True, softmax=True, alpha=...,
    beta=..., reduction="none")`` with the channel axis last.

    Shapes. Per image the output is ``[N, C]``; with ``reduce_batch=True`` the sums run over
    the batch as well and the output is ``[C]``. With ``include_background=False`` channel 0
    is dropped (MONAI's rule), so the class axis has ``C - 1`` entries, for classes
    ``1 .. C-1``; ``class_weights`` still has one entry per logit channel (``C``) and its
    first entry is then unused (MONAI's ``weight`` is ``class_weights[1:]``).

    Conventions. Ignored (``ignore_index``) and masked (``where=``) pixels enter no sum. A
    class absent from an image's labels has ``G = 0`` and ``tp = 0``: its loss is
    :math:`1 - s_{nr} / (P + s_{dr})`, close to 1 unless the prediction is empty too (MONAI's
    convention). An empty or entirely ignored image has every sum 0: its loss is
    :math:`1 - s_{nr} / s_{dr}` (0 with the default equal smoothing terms) with gradient 0.
    With ``smooth_dr > 0`` values and gradients are finite in every case.

    Args:
        logits: Unnormalised scores ``[N, *spatial, C]``, floating (rank >= 2).
        labels: Integer label maps ``[N, *spatial]`` or one-hot / soft ``[N, *spatial, C]``
            (as in `dice_loss`).
        alpha: Weight of the false positives, ``>= 0``. Traceable.
        beta: Weight of the false negatives, ``>= 0``. Traceable.
        smooth_nr: Added to the numerator, ``>= 0``. Traceable.
        smooth_dr: Added to the denominator, ``>= 0``. Traceable.
        activation: ``"softmax"`` or ``"sigmoid"`` (static).
        include_background: ``False`` drops channel 0 (static).
        reduce_batch: Sum over the batch before the ratio (static): output ``[C]``.
        class_weights: Optional finite, non-negative weights ``[C]`` multiplying each
            class's loss.
        ignore_index: Optional label id left out of every sum.
        where: Optional boolean mask broadcastable to ``[N, *spatial]``.

    Returns:
        Losses ``[N, C]`` (``[N, C - 1]`` without background, ``[C]`` with
        ``reduce_batch=True``), dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating; ``labels``/``where`` of the wrong dtype.
        ValueError: wrong label shapes, class ids out of range, negative hyper-parameters,
            negative or non-finite ``class_weights``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])
        >>> loss = losses.tversky_loss(logits, jnp.array([[0, 1, 1]]), alpha=0.3, beta=0.7)
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [[0.3033 0.4239]]

    References:
        Salehi et al., `Tversky loss function for image segmentation using 3D fully
        convolutional deep networks <https://arxiv.org/abs/1706.05721>`_, MLMI 2017.

        MONAI, `TverskyLoss <https://docs.monai.io/en/stable/losses.html#tverskyloss>`_.

    .. versionadded:: 0.3.0
    """
    loss, s, w = _tversky(logits, labels, alpha, beta, smooth_nr, smooth_dr, activation,
                          include_background, reduce_batch, class_weights, ignore_index, where)
    if w is not None:
        loss = loss * jnp.broadcast_to(w, loss.shape)
    return _finish(loss, s, per_class=True)


def focal_tversky_loss(logits: Float[" n *spatial c"], labels: Num[" n *labels"], *,
                       alpha: ArrayLike = 0.7, beta: ArrayLike = 0.3, gamma: ArrayLike = 0.75,
                       smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5,
                       activation: str = "softmax", include_background: bool = True,
                       reduce_batch: bool = False, class_weights: Num[" c"] | None = None,
                       ignore_index: int | None = None,
                       where: ArrayLike | None = None) -> Float[" ..."]:
    r"""Focal Tversky loss (Abraham and Khan 2019): each class's Tversky loss to ``gamma``.

    With ``gamma < 1`` a class that is already segmented well (small Tversky loss) keeps a
    relatively large loss and gradient, which focuses training on the small, hard
    structures. The exponent applies to *each class's* loss (the paper's eq. 4), not to their
    mean (segmentation_models_pytorch's issue #734).

    .. math::
      \ell_{nc} = w_c\, \big(\max(T_{nc}, 0)\big)^{\gamma}

    with :math:`T_{nc}` the unweighted `tversky_loss`. The paper writes the exponent as
    :math:`1/\gamma` with :math:`\gamma = 4/3`; ``gamma`` here is that :math:`1/\gamma`
    (default 0.75). :math:`T` is clipped at 0 (it is negative only when ``smooth_nr >
    smooth_dr``), and where :math:`T = 0` (e.g. an empty image) the value and gradient are 0
    rather than the infinite slope of :math:`x^\gamma` at 0.

    Shapes. Per image the output is ``[N, C]``; with ``reduce_batch=True`` the sums run over
    the batch as well and the output is ``[C]``. With ``include_background=False`` channel 0
    is dropped (MONAI's rule), so the class axis has ``C - 1`` entries, for classes
    ``1 .. C-1``; ``class_weights`` still has one entry per logit channel (``C``) and its
    first entry is then unused (MONAI's ``weight`` is ``class_weights[1:]``).

    Conventions. Ignored (``ignore_index``) and masked (``where=``) pixels enter no sum. A
    class absent from an image's labels has ``G = 0`` and ``tp = 0``: its loss is
    :math:`1 - s_{nr} / (P + s_{dr})`, close to 1 unless the prediction is empty too (MONAI's
    convention). An empty or entirely ignored image has every sum 0: its loss is
    :math:`1 - s_{nr} / s_{dr}` (0 with the default equal smoothing terms) with gradient 0.
    With ``smooth_dr > 0`` values and gradients are finite in every case.

    Args:
        logits: Unnormalised scores ``[N, *spatial, C]``, floating (rank >= 2).
        labels: Integer label maps ``[N, *spatial]`` or one-hot / soft ``[N, *spatial, C]``
            (as in `dice_loss`).
        alpha: Weight of the false positives, ``>= 0``. Traceable.
        beta: Weight of the false negatives, ``>= 0``. Traceable.
        gamma: Exponent, ``> 0`` (default 0.75). Traceable.
        smooth_nr: Added to the numerator, ``>= 0``. Traceable.
        smooth_dr: Added to the denominator, ``>= 0``. Traceable.
        activation: ``"softmax"`` or ``"sigmoid"`` (static).
        include_background: ``False`` drops channel 0 (static).
        reduce_batch: Sum over the batch before the ratio (static): output ``[C]``.
        class_weights: Optional finite, non-negative weights ``[C]`` multiplying each
            class's loss.
        ignore_index: Optional label id left out of every sum.
        where: Optional boolean mask broadcastable to ``[N, *spatial]``.

    Returns:
        Losses ``[N, C]`` (``[N, C - 1]`` without background, ``[C]`` with
        ``reduce_batch=True``), dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating; ``labels``/``where`` of the wrong dtype.
        ValueError: wrong label shapes, class ids out of range, negative hyper-parameters,
            negative or non-finite ``class_weights``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])
        >>> loss = losses.focal_tversky_loss(logits, jnp.array([[0, 1, 1]]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [[0.5541 0.382 ]]

    References:
        Abraham and Khan, `A Novel Focal Tversky Loss Function with Improved Attention U-Net
        for Lesion Segmentation <https://arxiv.org/abs/1810.07842>`_, ISBI 2019.

    .. versionadded:: 0.3.0
    """
    loss, s, w = _tversky(logits, labels, alpha, beta, smooth_nr, smooth_dr, activation,
                          include_background, reduce_batch, class_weights, ignore_index, where)
    g = _inputs.hyper(gamma, "gamma", (), s.cdt, low=0.0, low_inclusive=False)
    # Double where: x^gamma has an infinite slope at 0 for gamma < 1.
    pos = loss > 0
    safe = jnp.where(pos, loss, jnp.ones((), s.cdt))
    loss = jnp.where(pos, jnp.power(safe, g), jnp.zeros((), s.cdt))
    if w is not None:
        loss = loss * jnp.broadcast_to(w, loss.shape)
    return _finish(loss, s, per_class=True)


def pixel_class_weights(pixel_counts: Num[" n c"], *, method: str = "median_frequency",
                        c: ArrayLike = 1.02, dtype: DTypeLike | None = None) -> Float[" c"]:
    r"""Per-class pixel weights for a weighted per-pixel cross-entropy.

    .. math::
      \text{median\_frequency:}\quad f_c = \frac{\sum_n m_{nc}}
          {\sum_{n:\, m_{nc} > 0} \sum_k m_{nk}}, \qquad w_c = \frac{\mathrm{median}_k f_k}{f_c}

      \text{enet:}\quad p_c = \frac{\sum_n m_{nc}}{\sum_{n,k} m_{nk}}, \qquad
          w_c = \frac{1}{\ln(c + p_c)}

    with :math:`m_{nc}` the pixels of class ``c`` in image ``n``. Median frequency
    balancing (Eigen and Fergus, used by SegNet) divides each class's pixels by the pixels of
    the images that contain it; ENet's rule bounds every weight by :math:`1/\ln c` (about 50
    for ``c = 1.02``).

    Zero-count classes: with ``median_frequency`` a class with no pixel has :math:`f_c = 0`;
    it gets weight 0 and does not enter the median (it never occurs, so no pixel carries its
    weight). With ``enet`` it gets the largest weight, :math:`1/\ln c`. If every count is 0,
    ``median_frequency`` gives zeros and ``enet`` gives :math:`1/\ln c` everywhere. Ignored
    pixels (VOC's 255) should not be counted.

    Args:
        pixel_counts: Pixels per image and class ``[N, C]``, finite and ``>= 0`` (integer or
            real).
        method: ``"median_frequency"`` or ``"enet"`` (static).
        c: ENet's constant, ``> 1`` (default 1.02). Traceable.
        dtype: Output dtype; default the counts' dtype when floating, else float32.

    Returns:
        Weights ``[C]``, finite and ``>= 0``.

    Raises:
        ValueError: ``pixel_counts`` not of rank 2, negative or non-finite (eagerly and
            under `jbalance.checks.checked`), a bad ``method``, ``c <= 1``.
        TypeError: ``pixel_counts`` not real; ``dtype`` not floating.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> counts = jnp.array([[90, 10, 0], [80, 0, 20]])
        >>> w = losses.pixel_class_weights(counts)
        >>> print(np.round(np.asarray(w, np.float64), 4))
        [0.2353 2.     1.    ]

    References:
        Eigen and Fergus, `Predicting Depth, Surface Normals and Semantic Labels with a
        Common Multi-Scale Convolutional Architecture <https://arxiv.org/abs/1411.4734>`_,
        ICCV 2015.

        Paszke et al., `ENet: A Deep Neural Network Architecture for Real-Time Semantic
        Segmentation <https://arxiv.org/abs/1606.02147>`_, 2016.

    .. versionadded:: 0.3.0
    """
    checks.check_one_of(method, PIXEL_METHODS, "method")
    m = jnp.asarray(checks.check_array(pixel_counts, "pixel_counts"))
    checks.check_real(m, "pixel_counts")
    checks.check_rank(m, 2, "pixel_counts", "[num_images, num_classes]")
    checks.check_nonnegative(m, "pixel_counts", "Counts are numbers of pixels.")
    out = _inputs.float_dtype(m, dtype)
    cdt = checks.compute_dtype(out)
    m = m.astype(cdt)
    zero = jnp.zeros((), cdt)
    per_class = jnp.sum(m, axis=0)
    if method == "enet":
        cc = _inputs.hyper(c, "c", (), cdt, low=1.0, low_inclusive=False)
        total = jnp.sum(per_class)
        p = per_class / jnp.where(total > 0, total, jnp.ones((), cdt))
        return (1 / jnp.log(cc + p)).astype(out)
    per_image = jnp.sum(m, axis=1, keepdims=True)  # [N, 1]
    seen = jnp.sum(jnp.where(m > 0, jnp.broadcast_to(per_image, m.shape), zero), axis=0)
    present = per_class > 0
    f = per_class / jnp.where(present, seen, jnp.ones((), cdt))
    med = jnp.nanmedian(jnp.where(present, f, jnp.asarray(jnp.nan, cdt)))
    med = jnp.where(jnp.any(present), med, zero)
    w = jnp.where(present, med / jnp.where(present, f, jnp.ones((), cdt)), zero)
    return w.astype(out)
