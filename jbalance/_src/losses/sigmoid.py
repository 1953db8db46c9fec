"""Elementwise (multi-label) sigmoid losses: `weighted_sigmoid_cross_entropy` and
`sigmoid_focal_loss`, one value per element, built from the stable blocks of `_numerics`.
"""

import jax.numpy as jnp

from jbalance._src.losses import _inputs, _numerics
from jbalance._src.typing import Array, ArrayLike, Float, Num


def sigmoid_bce(z: Array, y: Array, pos_weight: Array | None = None) -> Array:
    """-[pw y log p + (1 - y) log(1 - p)] = pw y softplus(-z) + (1 - y) softplus(z).

    A weighted sum of two non-negative terms, so no cancellation: easy negatives and easy
    positives keep their (tiny) losses and gradients to full relative precision.
    """
    sp, sn = _numerics.softplus_pair(z)  # -log(1 - p), -log p
    if pos_weight is None:
        return (1 - y) * sp + y * sn
    return (1 - y) * sp + (pos_weight * y) * sn


def weighted_sigmoid_cross_entropy(logits: Float[" *batch c"], labels: Num[" *batch c"], *,
                                   class_weights: Num[" c"] | None = None,
                                   pos_weight: ArrayLike | None = None,
                                   where: ArrayLike | None = None) -> Float[" *batch c"]:
    r"""Multi-label (elementwise) binary cross-entropy with class and positive weights.

    Use it for multi-label problems, where each class is an independent yes/no decision.
    ``pos_weight`` counters the positive/negative imbalance *within* a class (e.g.
    ``n_negative / n_positive``); ``class_weights`` scales whole classes.

    .. math::
      \ell_{\dots c} = -w_c \left[\, \rho_c\, y \log \sigma(z) + (1 - y) \log(1 - \sigma(z)) \right]

    Equals PyTorch's ``BCEWithLogitsLoss(weight=w, pos_weight=rho, reduction="none")`` with
    ``w`` and ``rho`` along the last axis.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Targets of the same shape, in ``[0, 1]`` (binary or soft; checked eagerly and
            under `jbalance.checks.checked`); any real or bool dtype, cast to the dtype of
            ``logits``.
        class_weights: Optional non-negative per-class weights ``w``, shape ``[num_classes]``.
            ``None`` means 1.
        pos_weight: Optional non-negative weight ``rho`` of the positive term, a scalar or shape
            ``[num_classes]``. ``None`` means 1. Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape``; masked elements give 0
            loss and 0 gradient (even with NaN/inf logits or labels there).

    Returns:
        Losses of shape ``logits.shape`` and dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating, or ``where`` not boolean.
        ValueError: shape mismatches, or negative ``class_weights``/``pos_weight`` (checked when
            concrete).

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.weighted_sigmoid_cross_entropy(
        ...     jnp.array([[2.0, -1.0]]), jnp.array([[1.0, 1.0]]),
        ...     class_weights=jnp.array([1.0, 3.0]), pos_weight=2.0)
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [[0.2539 7.8796]]

    References:
        PyTorch, `BCEWithLogitsLoss
        <https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html>`_.

    .. versionadded:: 0.1.0
    """
    z, y, mask, dtype, cdt = _inputs.sigmoid_inputs(logits, labels, where)
    shape = z.shape
    w = _inputs.class_weight_vector(class_weights, shape[-1] if shape else 0, shape, cdt)
    pw = None
    if pos_weight is not None:
        pw = _inputs.hyper(pos_weight, "pos_weight", shape, cdt, low=0.0)
    loss = sigmoid_bce(z, y, pw)
    if w is not None:
        loss = w * loss
    return _inputs.apply_mask(loss, mask).astype(dtype)


def sigmoid_focal_loss(logits: Float[" *batch c"], labels: Num[" *batch c"], *,
                       gamma: ArrayLike = 2.0,
                       alpha: ArrayLike | None = 0.25, class_weights: Num[" c"] | None = None,
                       where: ArrayLike | None = None) -> Float[" *batch c"]:
    r"""RetinaNet's sigmoid focal loss, elementwise, stable for any logits and ``gamma >= 0``.

    The focal term :math:`(1 - p_t)^\gamma` down-weights the many easy, well-classified
    elements (in detection: background anchors) so that the rare hard ones dominate the
    gradient; ``alpha`` re-balances positives against negatives.

    .. math::
      \ell = -w_c\, \alpha_t\, (1 - p_t)^\gamma \left[ y \log p + (1 - y) \log(1 - p) \right],
      \quad p = \sigma(z),\; p_t = y p + (1 - y)(1 - p),\; \alpha_t = \alpha y + (1-\alpha)(1-y)

    This is exactly ``torchvision.ops.sigmoid_focal_loss(z, y, alpha, gamma, reduction="none")``
    (times ``class_weights`` along the last axis), for binary and soft labels alike. Unlike that
    formula, :math:`\log(1 - p_t)` is computed in log space and the derivatives come from
    bounded closed forms, so values, gradients and second derivatives are finite for logits up
    to the dtype's range and every ``gamma >= 0`` (torchvision's gradient is NaN where
    ``p_t = 1`` and ``gamma < 1``). Its cost against optax's focal loss and a plain BCE is
    measured in ``docs/losses.md``. With ``gamma = 0`` and ``alpha=None`` it is
    `weighted_sigmoid_cross_entropy`.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Targets of the same shape in ``[0, 1]`` (binary or soft; checked eagerly and
            under `jbalance.checks.checked`); any real or bool dtype.
        gamma: Focusing exponent, ``>= 0`` (default 2; 0 gives the cross-entropy). Traceable
            and differentiable; a scalar or broadcastable to ``logits``.
        alpha: Weight of the positive term in ``[0, 1]`` (default 0.25, RetinaNet's value);
            ``None`` disables it (equivalent to torchvision's ``alpha=-1``). Traceable.
        class_weights: Optional non-negative per-class weights, shape ``[num_classes]``.
        where: Optional boolean mask broadcastable to ``logits.shape``; masked elements give 0
            loss and 0 gradient (even with NaN/inf logits or labels there).

    Returns:
        Losses of shape ``logits.shape`` and dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating, or ``where`` not boolean.
        ValueError: shape mismatches, ``gamma < 0``, ``alpha`` outside ``[0, 1]`` or negative
            ``class_weights`` (values checked when concrete; inside ``jit`` a negative traced
            ``gamma`` gives unbounded values).

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.sigmoid_focal_loss(jnp.array([3.0, -1.0]), jnp.array([1.0, 1.0]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [0.     0.1755]

    References:
        Lin et al., `Focal Loss for Dense Object Detection
        <https://arxiv.org/abs/1708.02002>`_, ICCV 2017.

        optax issue `#1267 <https://github.com/google-deepmind/optax/issues/1267>`_ (NaN
        gradients of the textbook formula for ``gamma < 1``).

    .. versionadded:: 0.1.0
    """
    z, y, mask, dtype, cdt = _inputs.sigmoid_inputs(logits, labels, where)
    shape = z.shape
    g = _inputs.hyper(gamma, "gamma", shape, cdt, low=0.0)
    a = None if alpha is None else _inputs.hyper(alpha, "alpha", shape, cdt, low=0.0, high=1.0)
    w = _inputs.class_weight_vector(class_weights, shape[-1] if shape else 0, shape, cdt)
    loss = jnp.exp(g * _numerics.log1m_pt(z, y)) * sigmoid_bce(z, y)
    if a is not None:
        loss = (a * y + (1 - a) * (1 - y)) * loss
    if w is not None:
        loss = w * loss
    return _inputs.apply_mask(loss, mask).astype(dtype)
