"""Softmax losses: `weighted_softmax_cross_entropy` and `softmax_focal_loss`, and the core
that the long-tail softmax losses (logit adjustment, balanced softmax, LDAM) reuse.

Targets are integer class ids ``[...]`` or class probabilities ``[..., C]``; every loss is
unreduced, one value per example. ``log p`` is the usual log-softmax, so the focal loss at
``gamma = 0`` is bit for bit the cross-entropy; ``log(1 - p)`` for the focal factor is
computed in log space (for the most likely class, from the other classes), so values and
derivatives are finite for any logits.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src.losses import _inputs
from jbalance._src.typing import Array, ArrayLike, Float, Num


def _first_max(z: Array) -> Array:
    """One-hot (bool) of the first arg-max along the last axis."""
    # Two plain reductions (max, then smallest index attaining it): cheaper on XLA:CPU than
    # jnp.argmax's variadic (value, index) reduction.
    m = jnp.max(z, axis=-1, keepdims=True)
    iota = jax.lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)
    first = jnp.min(jnp.where(z == m, iota, z.shape[-1]), axis=-1, keepdims=True)
    return iota == first


def _log1m_softmax(z: Array, log_p: Array, is_max: Array, z_max: Array) -> Array:
    """log(1 - p) for p = softmax(z), given log p, accurate and smooth for any logits."""
    # Every class but the arg-max has p <= 1/2, where log1p(-p) is accurate. For the arg-max,
    # 1 - p = sigmoid(d) with d = logsumexp(other logits) - max logit: an exact log-sigmoid
    # with smooth, finite derivatives even where 1 - p underflows (1 - exp(log p) would be 0
    # and its log -inf). `z_max` is z at the arg-max (not jnp.max, whose derivative is shared
    # between tied classes); `is_max` marks the arg-max within `log_p`'s last axis.
    all_max = _first_max(z)
    d = jax.nn.logsumexp(jnp.where(all_max, -jnp.inf, z), axis=-1, keepdims=True) - z_max
    p_rest = jnp.where(is_max, jnp.zeros((), z.dtype), jnp.exp(log_p))
    return jnp.where(is_max, jax.nn.log_sigmoid(d), jnp.log1p(-p_rest))


def _hard_focal_log1m(e: Array, s: Array, hit: Array) -> Array:
    """log(1 - p_y) from e = exp(z - max z) and s = sum(e), for every logit magnitude.

    1 - p_y = s_o / s with s_o the sum of e over the other classes: no cancellation. When y is
    not the arg-max s_o >= 1. When y is the arg-max and s_o drops below ``sqrt(tiny)`` (a gap
    of ~40 in float32) the value is clamped there, with a zero derivative: 1 - p_y is then
    below that bound and -log p_y rounds to 0, so values are exact and derivatives off by
    less than the bound; the clamp keeps Hessians finite (1/s_o^2 would overflow).
    """
    dt = e.dtype
    s_o = jnp.sum(jnp.where(hit, jnp.zeros((), dt), e), axis=-1, keepdims=True)
    thr = jnp.asarray(np.sqrt(jnp.finfo(dt).tiny) * 100, dt)
    ok = s_o > thr
    return jnp.where(ok, jnp.log(jnp.where(ok, s_o, thr)), jnp.log(thr)) - jnp.log(s)


def softmax_core(z: Array, t: _inputs.Targets, *, gamma: Any = None, weights: Array | None = None,
                  label_smoothing: Any = 0.0, adjust: Any = None) -> Array:
    """Unreduced (weighted, smoothed, focal) softmax cross-entropy on ``adjust(z)``.

    The one implementation behind every softmax loss of the package: with class ids and no
    smoothing only the label's class is gathered; otherwise the full target is summed.
    """
    shape = z.shape
    cdt = z.dtype
    num_classes = shape[-1]
    # A Python 0 (the default) needs no smoothing pass; anything else is checked and used.
    smoothing = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    eps = None
    if smoothing:
        eps = _inputs.hyper(label_smoothing, "label_smoothing", shape[:-1], cdt, low=0.0,
                            high=1.0)[..., None]
    g = (None if gamma is None
         else _inputs.hyper(gamma, "gamma", shape[:-1], cdt, low=0.0)[..., None])
    if adjust is not None:
        z = adjust(z)
    zero = jnp.zeros((), cdt)
    if t.ids is not None and not smoothing:
        # Class ids: only the label's class enters the sum. The cost of optax's integer-label
        # cross-entropy: one max, one exp-sum and one masked sum over the classes; with
        # weights one gather more; focal one more (fused) sum.
        m = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
        e = jnp.exp(z - m)
        s = jnp.sum(e, axis=-1, keepdims=True)
        # The label's logit by a gather (optax's choice: cheaper than a masked sum).
        z_y = jnp.take_along_axis(z, t.ids[..., None], axis=-1, mode="clip")
        log_p = (z_y - m) - jnp.log(s)
        coef = None if weights is None else _inputs.take(weights, t.ids)[..., None]
        if g is not None and num_classes > 1:
            factor = jnp.exp(g * _hard_focal_log1m(e, s, t.hit))
            coef = factor if coef is None else coef * factor
        loss = -log_p if coef is None else -(coef * log_p)
        return loss[..., 0]
    q = t.hit.astype(cdt) if t.ids is not None else t.probs
    if eps is not None:
        q = (1 - eps) * q + eps / num_classes
    if weights is not None:
        q = jnp.broadcast_to(weights, shape) * q
    log_p = jax.nn.log_softmax(z, axis=-1)
    if g is not None and num_classes > 1:  # With one class p = 1 and log p = 0: no factor.
        is_max = _first_max(z)
        z_max = jnp.sum(jnp.where(is_max, z, zero), axis=-1, keepdims=True)
        q = q * jnp.exp(g * _log1m_softmax(z, log_p, is_max, z_max))
    return -jnp.sum(q * log_p, axis=-1)


def softmax_loss(logits: Any, labels: Any, *, gamma: Any = None, class_weights: Any = None,
                 label_smoothing: Any = 0.0, where: Any = None, ignore_index: Any = None,
                 adjust: Callable[[Array], Array] | None = None) -> Array:
    """Validated inputs -> `softmax_core` on ``adjust(z)`` -> masked, in the logits' dtype."""
    z, t, dtype, cdt = _inputs.softmax_inputs(logits, labels, where, ignore_index)
    w = _inputs.class_weights_1d(class_weights, z.shape[-1], z.shape)
    w = None if w is None else w.astype(cdt)
    loss = softmax_core(z, t, gamma=gamma, weights=w, label_smoothing=label_smoothing,
                        adjust=adjust)
    return _inputs.finish(loss, t, dtype)


def weighted_softmax_cross_entropy(logits: Float[" *batch c"], labels: Num[" *labels"], *,
                                   class_weights: Num[" c"] | None = None,
                                   label_smoothing: ArrayLike = 0.0,
                                   where: ArrayLike | None = None,
                                   ignore_index: int | None = None) -> Float[" *batch"]:
    r"""Softmax cross-entropy with per-class weights and label smoothing.

    The standard remedy for a long-tailed single-label classifier: weight each class's term
    by ``class_weights`` (e.g. from `class_weights`).

    .. math::
      \ell = -\sum_c w_c\, q_c \log \mathrm{softmax}(z)_c, \qquad
      q = (1 - \varepsilon)\, y + \varepsilon / C

    where :math:`y` is the one-hot (integer labels) or given (probability labels) target. For
    integer labels this equals PyTorch's
    ``F.cross_entropy(z, y, weight=w, label_smoothing=eps, reduction="none")``: like PyTorch,
    the smoothing term is weighted class by class, so a sample's loss is
    :math:`(1-\varepsilon) w_y (-\log p_y) + \tfrac{\varepsilon}{C}\sum_c w_c (-\log p_c)`.
    For probability labels it equals PyTorch with probability targets. PyTorch's weighted
    ``reduction="mean"`` is ``reduce_loss(loss, reduction="weighted_mean",
    weights=example_weights(labels, w))``.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Integer class ids of shape ``logits.shape[:-1]``, each in
            ``[0, num_classes)`` unless ignored (``ignore_index``) or masked (``where``); or
            floating class probabilities of shape ``logits.shape``, finite and ``>= 0``.
        class_weights: Optional finite, non-negative per-class weights, ``[num_classes]``.
        label_smoothing: ``eps`` in ``[0, 1]`` (default 0). Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0 loss and 0 gradient, even when their logits or labels are NaN/inf.
        ignore_index: Optional class id (PyTorch's ``ignore_index``, e.g. -100) whose
            examples give 0 loss and 0 gradient.

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating, or ``labels``/``where`` of the wrong dtype.
        ValueError: ``labels`` of the wrong shape, a class id out of range, negative or
            non-finite probabilities, ``label_smoothing`` outside ``[0, 1]``, negative or
            non-finite ``class_weights``. Values are checked eagerly; under `jax.jit` wrap
            the function with `jbalance.checks.checked` to keep the checks (an unchecked
            `jit` gives NaN for an out-of-range id).

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.weighted_softmax_cross_entropy(
        ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([1]),
        ...     class_weights=jnp.array([1.0, 2.0, 1.0]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [4.3397]

    References:
        King and Zeng, Logistic Regression in Rare Events Data, Political Analysis 2001.

        Szegedy et al., `Rethinking the Inception Architecture for Computer Vision
        <https://arxiv.org/abs/1512.00567>`_, CVPR 2016 (label smoothing).

    .. versionadded:: 0.1.0
    """
    return softmax_loss(logits, labels, class_weights=class_weights,
                        label_smoothing=label_smoothing, where=where, ignore_index=ignore_index)


def softmax_focal_loss(logits: Float[" *batch c"], labels: Num[" *labels"], *,
                       gamma: ArrayLike = 2.0,
                       class_weights: Num[" c"] | None = None, label_smoothing: ArrayLike = 0.0,
                       where: ArrayLike | None = None,
                       ignore_index: int | None = None) -> Float[" *batch"]:
    r"""Multi-class (softmax) focal loss with per-class weights and label smoothing.

    The focal term :math:`(1 - p_c)^\gamma` shrinks the loss of well-classified examples, so
    the rare, hard ones drive training; ``class_weights`` re-balances classes on top.

    .. math::
      \ell = -\sum_c w_c\, q_c\, (1 - p_c)^\gamma \log p_c, \qquad
      p = \mathrm{softmax}(z),\; q = (1 - \varepsilon)\, y + \varepsilon / C

    With ``gamma = 0`` it is exactly `weighted_softmax_cross_entropy`. :math:`\log(1 - p_c)`
    is computed in log space (for the most likely class as a log-sum-exp over the others), so
    values, gradients and second derivatives are finite for any logits and every
    ``gamma >= 0``.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Integer class ids of shape ``logits.shape[:-1]``, or floating class
            probabilities of shape ``logits.shape`` (checked as in
            `weighted_softmax_cross_entropy`).
        gamma: Focusing exponent, finite and ``>= 0`` (default 2). Traceable; a scalar or
            broadcastable to ``logits.shape[:-1]``.
        class_weights: Optional finite, non-negative per-class weights, ``[num_classes]``.
        label_smoothing: ``eps`` in ``[0, 1]`` (default 0). Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0 loss and 0 gradient.
        ignore_index: Optional class id (e.g. -100) whose examples give 0.

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating, or ``labels``/``where`` of the wrong dtype.
        ValueError: ``labels`` of the wrong shape, ``gamma < 0``, ``label_smoothing`` outside
            ``[0, 1]`` or negative ``class_weights`` (values checked when concrete).

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.softmax_focal_loss(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([0]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [0.0041]

    References:
        Lin et al., `Focal Loss for Dense Object Detection
        <https://arxiv.org/abs/1708.02002>`_, ICCV 2017.

    .. versionadded:: 0.1.0
    """
    return softmax_loss(logits, labels, gamma=gamma, class_weights=class_weights,
                        label_smoothing=label_smoothing, where=where, ignore_index=ignore_index)
