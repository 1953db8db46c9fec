r"""Class weights; weighted, focal and long-tail (logit-adjusted, balanced softmax, LDAM-DRW,
seesaw, asymmetric) losses; and their reductions.

Every loss returns *unreduced* values (the optax convention): one value per example for the
softmax losses, one per element for the sigmoid losses. Reduce them with `reduce_loss`.

Numerics. All losses are computed in log space. Half-precision inputs (float16, bfloat16) are
computed in float32 and cast back, so the output dtype always follows ``logits``. The sigmoid
focal loss uses a handful of small `jax.custom_jvp` functions whose derivative rules are
written in bounded quantities (never ``1/(1-p_t)``), so values, gradients and Hessians stay
finite for logits of any magnitude and every ``gamma >= 0``, including ``gamma < 1`` where the
textbook formula (PyTorch, torchvision) gives NaN gradients. The same functions share a single
``exp(-|z|)`` and ``log1p`` so that XLA fuses the stable loss into one cheap loop.

Checks. Labels, counts, weights and hyper-parameters are validated with
`jbalance._src.checks` (eager `ValueError`; checkify checks under `jbalance.checks.checked`).
Masked entries (``where=``, ``ignore_index=``) have their inputs replaced by 0 before the
loss is computed, so NaN/inf there give 0 loss and 0 gradient.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jbalance._src import checks
from jbalance._src.typing import Array, ArrayLike, DTypeLike, Float, Num

_METHODS = ("inverse", "inverse_sqrt", "effective_number", "balanced")
_NORMALIZE = ("samples", "classes", "none")
_ZERO_COUNT = ("max", "zero")
_REDUCTIONS = ("mean", "sum", "weighted_mean")


# ----------------------------------------------------------------------------------------
# Argument handling.
# ----------------------------------------------------------------------------------------


def _logits(logits: Any, min_rank: int = 1) -> Array:
    logits = jnp.asarray(checks.check_array(logits, "logits"))
    checks.check_floating(logits, "logits")
    checks.check_min_rank(logits, min_rank, "logits", "[..., num_classes]")
    return logits


def _nonnegative(value: Any, name: str) -> None:
    """Finite and ``>= 0``: eager `ValueError`, or a checkify check under `checks.checked`."""
    checks.check_nonnegative(
        value, name, "Weights and counts scale a class; use 0 to switch a class off.")


def _hyper(value: Any, name: str, shape: tuple[int, ...], dtype: Any, *, low: float | None = None,
           high: float | None = None) -> Array:
    """A numeric hyper-parameter: range-checked when concrete, cast and broadcast to ``shape``."""
    checks.check_scalar_range(value, name, low=low, high=high)
    checks.check_finite(value, name)
    if low is not None or high is not None:
        arr = jnp.asarray(value)
        ok = jnp.ones(arr.shape, jnp.bool_)
        if low is not None:
            ok = ok & (arr >= low)
        if high is not None:
            ok = ok & (arr <= high)
        bounds = " and ".join(([f">= {low}"] if low is not None else [])
                              + ([f"<= {high}"] if high is not None else []))
        checks.require(ok, f"`{name}` must be {bounds}.")
    value = jnp.asarray(value)
    if not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)
            or value.dtype == jnp.bool_):
        raise TypeError(f"`{name}` must be a real number or array, got dtype {value.dtype}.")
    return checks.broadcast(value.astype(dtype), shape, name)


def _class_weight_vector(class_weights: Any, num_classes: int, shape: tuple[int, ...],
                         dtype: Any, name: str = "class_weights") -> Array | None:
    """Validates per-class weights and broadcasts them along the last axis of ``shape``."""
    w = _class_weights_1d(class_weights, num_classes, shape, name)
    return None if w is None else jnp.broadcast_to(w.astype(dtype), shape)


def _class_weights_1d(class_weights: Any, num_classes: int, shape: tuple[int, ...],
                      name: str = "class_weights") -> Array | None:
    if class_weights is None:
        return None
    if not shape:
        raise ValueError(f"`{name}` needs `logits` with a class axis, got a scalar `logits`.")
    w = jnp.asarray(checks.check_array(class_weights, name))
    if not (jnp.issubdtype(w.dtype, jnp.floating) or jnp.issubdtype(w.dtype, jnp.integer)):
        raise TypeError(f"`{name}` must be a real array, got dtype {w.dtype}.")
    if w.ndim > 1 or (w.ndim == 1 and w.shape[0] not in (1, num_classes)):
        raise ValueError(
            f"`{name}` must have shape ({num_classes},) (one weight per class, along the last "
            f"axis of `logits`), got {w.shape}.")
    _nonnegative(w, name)
    return jnp.broadcast_to(w, (num_classes,))


def _apply_mask(loss: Array, mask: Array | None) -> Array:
    if mask is None:
        return loss
    return jnp.where(mask, loss, jnp.zeros((), loss.dtype))


def _is_zero(t: Any) -> bool:
    return isinstance(t, SymbolicZero)


# ----------------------------------------------------------------------------------------
# Class weights.
# ----------------------------------------------------------------------------------------


def class_weights(counts: Num[" c"], *, method: str = "inverse", beta: ArrayLike = 0.999,
                  normalize: str = "samples", zero_count: str = "max",
                  dtype: DTypeLike | None = None) -> Float[" c"]:
    r"""Per-class loss weights from class counts.

    Re-weighting the loss by class is the cheapest remedy for class imbalance: a rare class's
    examples count more, so the classifier can no longer win by ignoring it. The weights plug
    into every loss of this module (``class_weights=...``).

    .. math::
      \tilde w_c = \begin{cases}
        1 / n_c & \text{inverse} \\
        1 / \sqrt{n_c} & \text{inverse\_sqrt} \\
        (1 - \beta) / (1 - \beta^{n_c}) & \text{effective\_number} \\
        N / (C\, n_c) & \text{balanced}
      \end{cases}
      \qquad
      w_c = \tilde w_c \cdot \frac{\sum_k n_k}{\sum_k n_k \tilde w_k}
      \quad (\text{normalize="samples"})

    With the default ``normalize="samples"`` the average weight *per training sample* is 1
    (:math:`\sum_c n_c w_c = \sum_c n_c`), so the overall scale of the loss, and hence the
    learning rate that suits it, is unchanged by re-weighting. ``"balanced"`` (scikit-learn's
    ``compute_class_weight("balanced")``) already has that property, so when every class occurs
    it is returned unchanged, and it equals ``"inverse"``: the two methods are two names for
    the same normalised weights. ``normalize="classes"`` instead makes the mean weight per
    *class* 1 (:math:`\sum_c w_c = C`, the convention of Cui et al.), and ``"none"`` returns
    the raw formula.

    Zero counts. A class that never occurs would get an infinite raw weight. With
    ``zero_count="max"`` (default) it gets the largest weight of the observed classes, i.e. it
    is treated as rare as the rarest observed class (it still matters for label smoothing, soft
    labels and the negative terms of sigmoid losses); with ``zero_count="zero"`` it gets weight
    0. Zero-count classes do not enter the ``"samples"`` normalisation (their
    :math:`n_c w_c` is 0) but do enter the ``"classes"`` one. If every count is 0 all weights
    are 1. No value is ever inf or NaN.

    Args:
        counts: Number of training examples (or positive labels) per class, shape
            ``[num_classes]``, non-negative; integer or real (fractional counts are fine).
        method: ``"inverse"``, ``"inverse_sqrt"``, ``"effective_number"`` or ``"balanced"``
            (static).
        beta: Hyper-parameter of ``"effective_number"``, in ``[0, 1)``; ``beta -> 1``
            approaches ``"inverse"``, ``beta = 0`` gives uniform weights. Traceable.
        normalize: ``"samples"`` (default), ``"classes"`` or ``"none"`` (static).
        zero_count: ``"max"`` (default) or ``"zero"``: the weight of a class with count 0
            (static).
        dtype: Output dtype; defaults to the dtype of ``counts`` if floating, else float32.

    Returns:
        Weights of shape ``[num_classes]``, non-negative and finite.

    Raises:
        TypeError: ``counts`` is not a real array.
        ValueError: ``counts`` is not 1-D, has negative entries (checked when concrete), an
            unknown ``method``/``normalize``/``zero_count``, or ``beta`` outside ``[0, 1)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> w = losses.class_weights(jnp.array([90, 9, 1]))
        >>> print(np.round(np.asarray(w, np.float64), 4))
        [ 0.3704  3.7037 33.3333]
        >>> print(float(jnp.sum(jnp.array([90, 9, 1]) * w)))
        100.0

    References:
        Cui et al., `Class-Balanced Loss Based on Effective Number of Samples
        <https://arxiv.org/abs/1901.05555>`_, CVPR 2019.

        King and Zeng, Logistic Regression in Rare Events Data, Political Analysis 2001
        (the ``"balanced"`` heuristic of scikit-learn).

    .. versionadded:: 0.1.0
    """
    checks.check_one_of(method, _METHODS, "method")
    checks.check_one_of(normalize, _NORMALIZE, "normalize")
    checks.check_one_of(zero_count, _ZERO_COUNT, "zero_count")
    counts = jnp.asarray(checks.check_array(counts, "counts"))
    if not (jnp.issubdtype(counts.dtype, jnp.integer)
            or jnp.issubdtype(counts.dtype, jnp.floating)):
        raise TypeError(f"`counts` must be an integer or real array, got dtype {counts.dtype}.")
    checks.check_rank(counts, 1, "counts", "[num_classes]")
    _nonnegative(counts, "counts")
    checks.check_scalar_range(beta, "beta", low=0.0, high=1.0, high_inclusive=False)
    dtype = _float_dtype(counts, dtype)
    cdt = checks.compute_dtype(dtype)
    n = counts.astype(cdt)
    num_classes = n.shape[0]
    seen = n > 0
    # Raw weights are evaluated at a safe count (1) for unseen classes, then replaced: this
    # double-`where` keeps both values and gradients (w.r.t. `beta` or `counts`) finite.
    n_safe = jnp.where(seen, n, jnp.ones((), cdt))
    if method in ("inverse", "balanced"):
        raw = 1 / n_safe
        if method == "balanced":
            raw = raw * (jnp.sum(n) / num_classes)
    elif method == "inverse_sqrt":
        raw = jax.lax.rsqrt(n_safe)
    else:
        b = jnp.asarray(beta).astype(cdt)
        # 1 - beta**n = -expm1(n log beta): exact for small n and beta near 1.
        raw = (1 - b) / -jnp.expm1(n_safe * jnp.log(b))
    if num_classes == 0:
        return raw.astype(dtype)
    any_seen = jnp.any(seen)
    fill = jnp.max(jnp.where(seen, raw, jnp.zeros((), cdt))) if zero_count == "max" else 0
    raw = jnp.where(seen, raw, jnp.asarray(fill, cdt))
    if normalize == "samples":
        total = jnp.sum(n * raw)
        scale = jnp.sum(n) / jnp.where(total > 0, total, jnp.ones((), cdt))
        w = raw * scale
    elif normalize == "classes":
        total = jnp.sum(raw)
        w = raw * (num_classes / jnp.where(total > 0, total, jnp.ones((), cdt)))
    else:
        w = raw
    w = jnp.where(any_seen, w, jnp.ones((), cdt))
    return w.astype(dtype)


# ----------------------------------------------------------------------------------------
# Stable sigmoid building blocks. Each shares t = exp(-|z|) and log1p(t), so after XLA's
# common-subexpression elimination the whole focal loss costs one exp, one log1p, one log and
# one exp per element. Derivative rules are written in bounded quantities (p, q, r <= 1) and
# call the same functions again, so derivatives of every order stay finite.
# ----------------------------------------------------------------------------------------


def _t(z: Array) -> tuple[Array, Array]:
    t = jnp.exp(-jnp.abs(z))
    return t, jnp.log1p(t)


@jax.custom_jvp
def _sigmoid_pair(z: Array) -> tuple[Array, Array]:
    """(sigmoid(z), sigmoid(-z)), both to full relative precision."""
    t, _ = _t(z)
    one = jnp.ones((), z.dtype)
    return jnp.where(z >= 0, one, t) / (1 + t), jnp.where(z >= 0, t, one) / (1 + t)


@_sigmoid_pair.defjvp
def _sigmoid_pair_jvp(primals, tangents):
    (z,), (zd,) = primals, tangents
    p, q = _sigmoid_pair(z)
    t, _ = _t(z)
    pq = t / jnp.square(1 + t)  # = p * q for either sign of z, no cancellation.
    return (p, q), (pq * zd, -pq * zd)


@jax.custom_jvp
def _log_sigmoid(z: Array) -> Array:
    """log sigmoid(z) = min(z, 0) - log1p(exp(-|z|))."""
    _, l1p = _t(z)
    return jnp.minimum(z, 0) - l1p


@_log_sigmoid.defjvp
def _log_sigmoid_jvp(primals, tangents):
    (z,), (zd,) = primals, tangents
    return _log_sigmoid(z), _sigmoid_pair(z)[1] * zd


def _focal_w(z: Array, y: Array, t: Array) -> Array:
    # 1 - p_t = (1 - y) p + y q = w / (1 + t), where w is a convex combination of 1 and t:
    # it is computed without cancellation and vanishes only when y is 0/1 and t underflows.
    a = 1 - y
    return jnp.where(z >= 0, a + y * t, y + a * t)


def _y_factor(z: Array, y: Array, t: Array, w: Array) -> Array:
    # d log(1 - p_t) / dy = (q - p) / m = s (t - 1) / w with s = sign(z). Clamping w at the
    # smallest normal number keeps this finite where 1 - p_t underflows (there the exact
    # derivative is infinite, and the focal factor it multiplies is 0).
    tiny = jnp.asarray(jnp.finfo(w.dtype).tiny, w.dtype)
    return jnp.where(z >= 0, t - 1, 1 - t) / jnp.maximum(w, tiny)


@jax.custom_jvp
def _log1m_pt(z: Array, y: Array) -> Array:
    """log(1 - p_t) with p_t = y p + (1 - y)(1 - p): finite for every finite z."""
    t, l1p = _t(z)
    w = _focal_w(z, y, t)
    pos = w > 0
    # Where w underflows (y is exactly 0 or 1) it equals t, and log t = -|z| exactly.
    log_w = jnp.where(pos, jnp.log(jnp.where(pos, w, jnp.ones((), w.dtype))), -jnp.abs(z))
    return log_w - l1p


def _log1m_pt_jvp(primals, tangents):
    (z, y), (zd, yd) = primals, tangents
    out = _log1m_pt(z, y)
    tangent = jnp.zeros_like(out)
    if not _is_zero(zd):
        # d log m / dz = (1 - 2y) p q / m = (1 - 2y) r, with 0 <= r <= 1.
        tangent = tangent + (1 - 2 * y) * _focal_ratio(z, y) * zd
    if not _is_zero(yd):
        t, _ = _t(z)
        tangent = tangent + _y_factor(z, y, t, _focal_w(z, y, t)) * yd
    return out, tangent


_log1m_pt.defjvp(_log1m_pt_jvp, symbolic_zeros=True)


@jax.custom_jvp
def _focal_ratio(z: Array, y: Array) -> Array:
    """r = p q / (1 - p_t), which lies in [0, 1] (1 - p_t is between p and q)."""
    t, _ = _t(z)
    w = _focal_w(z, y, t)
    pos = w > 0
    # r = t / ((1 + t) w); when w underflows it equals t, so t / w -> 1.
    ratio = jnp.where(pos, t / jnp.where(pos, w, jnp.ones((), w.dtype)), jnp.ones((), w.dtype))
    return ratio / (1 + t)


def _focal_ratio_jvp(primals, tangents):
    (z, y), (zd, yd) = primals, tangents
    r = _focal_ratio(z, y)
    p, q = _sigmoid_pair(z)
    tangent = jnp.zeros_like(r)
    if not _is_zero(zd):
        # dr/dz = r (q - p) - (1 - 2y) r^2: polynomial in bounded quantities.
        tangent = tangent + (r * (q - p) - (1 - 2 * y) * jnp.square(r)) * zd
    if not _is_zero(yd):
        t, _ = _t(z)
        tangent = tangent - r * _y_factor(z, y, t, _focal_w(z, y, t)) * yd
    return r, tangent


_focal_ratio.defjvp(_focal_ratio_jvp, symbolic_zeros=True)


def _sigmoid_bce(z: Array, y: Array, pos_weight: Array | None = None) -> Array:
    # -[pw y log p + (1 - y) log(1 - p)] = (1 - y) z - (1 + (pw - 1) y) log p,
    # PyTorch's BCEWithLogitsLoss formula; log(1 - p) = log p - z shares one log_sigmoid.
    log_p = _log_sigmoid(z)
    if pos_weight is None:
        return (1 - y) * z - log_p
    return (1 - y) * z - (1 + (pos_weight - 1) * y) * log_p


# ----------------------------------------------------------------------------------------
# Sigmoid losses.
# ----------------------------------------------------------------------------------------


def _sigmoid_inputs(logits: Any, labels: Any, where: Any
                    ) -> tuple[Array, Array, Array | None, Any, Any]:
    """Validated ``(z, y, mask, dtype, cdt)`` of an elementwise loss.

    Labels must be finite and in ``[0, 1]`` wherever the mask keeps them. Masked elements
    have their logits and labels replaced by 0 *before* the loss is computed (the
    double-``where`` trick), so a NaN/inf there gives 0 loss and 0 gradient.
    """
    # Elementwise losses: any rank, even a scalar (class weights need a last axis).
    logits = _logits(logits, min_rank=0)
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    if labels.shape != logits.shape:
        raise ValueError(
            f"`labels` must have the shape of `logits` {logits.shape} (one binary or soft "
            f"target in [0, 1] per element), got {labels.shape}.")
    if not (jnp.issubdtype(labels.dtype, jnp.floating) or jnp.issubdtype(labels.dtype, jnp.integer)
            or labels.dtype == jnp.bool_):
        raise TypeError(f"`labels` must be a real or boolean array, got dtype {labels.dtype}.")
    mask = checks.mask(where, logits.shape, "(`logits.shape`)")
    if labels.dtype != jnp.bool_:
        in_range = (labels >= 0) & (labels <= 1)
        checks.require(in_range if mask is None else in_range | ~mask,
                       "`labels` of a sigmoid loss must be finite targets in [0, 1] (binary or "
                       "soft); mask unknown targets with `where=`.")
    cdt = checks.compute_dtype(logits.dtype)
    z, y = logits.astype(cdt), labels.astype(cdt)
    if mask is not None:
        zero = jnp.zeros((), cdt)
        z, y = jnp.where(mask, z, zero), jnp.where(mask, y, zero)
    return z, y, mask, logits.dtype, cdt


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
    z, y, mask, dtype, cdt = _sigmoid_inputs(logits, labels, where)
    shape = z.shape
    w = _class_weight_vector(class_weights, shape[-1] if shape else 0, shape, cdt)
    pw = None
    if pos_weight is not None:
        _nonnegative(pos_weight, "pos_weight")
        pw = _hyper(pos_weight, "pos_weight", shape, cdt)
    loss = _sigmoid_bce(z, y, pw)
    if w is not None:
        loss = w * loss
    return _apply_mask(loss, mask).astype(dtype)


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
    ``p_t = 1`` and ``gamma < 1``). It is also several times (4-8x measured on CPU) cheaper
    than ``optax.sigmoid_focal_loss`` and costs about as much as a plain BCE;
    see ``docs/losses.md``. With ``gamma = 0`` and ``alpha=None`` it is
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
    z, y, mask, dtype, cdt = _sigmoid_inputs(logits, labels, where)
    shape = z.shape
    g = _hyper(gamma, "gamma", shape, cdt, low=0.0)
    a = None if alpha is None else _hyper(alpha, "alpha", shape, cdt, low=0.0, high=1.0)
    w = _class_weight_vector(class_weights, shape[-1] if shape else 0, shape, cdt)
    loss = jnp.exp(g * _log1m_pt(z, y)) * _sigmoid_bce(z, y)
    if a is not None:
        loss = (a * y + (1 - a) * (1 - y)) * loss
    if w is not None:
        loss = w * loss
    return _apply_mask(loss, mask).astype(dtype)


# ----------------------------------------------------------------------------------------
# Softmax losses.
# ----------------------------------------------------------------------------------------


def _first_max(z: Array) -> Array:
    """One-hot (bool) of the first arg-max along the last axis."""
    # Two plain reductions (max, then smallest index attaining it): several times faster on
    # XLA:CPU than jnp.argmax's variadic (value, index) reduction.
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


class _Targets(NamedTuple):
    """Validated softmax targets: class ids (``ids``, ``hit``) or probabilities (``probs``)."""
    ids: Array | None  # [...] int32, 0 where masked
    hit: Array | None  # [..., C] bool one-hot of ids
    probs: Array | None  # [..., C] in the compute dtype, 0 where masked
    valid: Array | None  # [...] ids in range (class ids only)
    mask: Array | None  # [...] the `where` mask combined with `ignore_index`


def _softmax_inputs(logits: Any, labels: Any, where: Any, ignore_index: Any, *,
                    ids_only: str = "") -> tuple[Array, _Targets, Any, Any]:
    """``(z, targets, dtype, cdt)`` of a softmax loss, validated and double-``where`` masked.

    Class ids must lie in ``[0, num_classes)`` unless masked by ``where`` or equal to
    ``ignore_index``; probabilities must be finite and ``>= 0`` unless masked (eager
    `ValueError`; a checkify check under `checks.checked`). Masked rows have their logits
    (and targets) replaced by 0 before anything is computed, so NaN/inf logits there give 0
    loss and 0 gradient.
    """
    logits = _logits(logits)
    dtype = logits.dtype
    cdt = checks.compute_dtype(dtype)
    shape = logits.shape
    num_classes = shape[-1]
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    mask = checks.mask(where, shape[:-1], "(`logits.shape[:-1]`)")
    z = logits.astype(cdt)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape != shape[:-1]:
            hint = (" Integer labels are class ids; one-hot or soft targets must be floating."
                    if labels.shape == shape else "")
            raise ValueError(
                f"Integer `labels` (class ids) must have shape `logits.shape[:-1]` = "
                f"{shape[:-1]}, got {labels.shape}.{hint}")
        if ignore_index is not None:
            if not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, bool):
                raise TypeError(f"`ignore_index` must be a Python int (e.g. -100) or None, got "
                                f"{ignore_index!r}.")
            keep = labels != ignore_index
            mask = keep if mask is None else mask & keep
        valid = (labels >= 0) & (labels < num_classes)
        checks.require(
            valid if mask is None else valid | ~mask,
            f"`labels` must be class ids in [0, {num_classes}) (num_classes = "
            f"logits.shape[-1]); ignore examples with `ignore_index=` or `where=`.")
        ids = labels.astype(jnp.int32)
        if mask is not None:
            ids = jnp.where(mask, ids, jnp.zeros((), jnp.int32))
            z = jnp.where(mask[..., None], z, jnp.zeros((), cdt))
        iota = jax.lax.broadcasted_iota(jnp.int32, shape, len(shape) - 1)
        hit = iota == ids[..., None]
        return z, _Targets(ids, hit, None, valid, mask), dtype, cdt
    if jnp.issubdtype(labels.dtype, jnp.floating) or labels.dtype == jnp.bool_:
        if ids_only:
            raise TypeError(f"`labels` of {ids_only} must be integer class ids of shape "
                            f"`logits.shape[:-1]`, got dtype {labels.dtype}.")
        if labels.shape != shape:
            hint = (" Class ids must have an integer dtype."
                    if labels.shape == shape[:-1] else "")
            raise ValueError(
                f"Floating `labels` (class probabilities) must have the shape of `logits` "
                f"{shape}, got {labels.shape}.{hint}")
        if ignore_index is not None:
            raise ValueError("`ignore_index` applies to integer class ids; mask probability "
                             "labels with `where=`.")
        if labels.dtype != jnp.bool_:
            ok = labels >= 0  # False for NaN.
            ok = ok & (labels < jnp.inf)
            checks.require(ok if mask is None else ok | ~mask[..., None],
                           "`labels` (class probabilities) must be finite and non-negative; "
                           "mask unknown rows with `where=`.")
        probs = labels.astype(cdt)
        if mask is not None:
            zero = jnp.zeros((), cdt)
            z = jnp.where(mask[..., None], z, zero)
            probs = jnp.where(mask[..., None], probs, zero)
        return z, _Targets(None, None, probs, None, mask), dtype, cdt
    raise TypeError(f"`labels` must be integer class ids or real probabilities, got dtype "
                    f"{labels.dtype}.")


def _finish(loss: Array, t: _Targets, dtype: Any) -> Array:
    """Out-of-range unmasked ids give NaN (only reachable under an unchecked `jit`)."""
    if t.valid is not None:
        ok = t.valid if t.mask is None else t.valid | ~t.mask
        loss = jnp.where(ok, loss, jnp.asarray(jnp.nan, loss.dtype))
    return _apply_mask(loss, t.mask).astype(dtype)


def _take(values: Array, ids: Array) -> Array:
    """``values[ids]`` for a per-class vector: a gather (much cheaper than a masked sum over
    the classes), whose output follows the sharding of ``ids``."""
    return values.at[ids].get(mode="clip", out_sharding=jax.typeof(ids).sharding)


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


def _softmax_core(z: Array, t: _Targets, *, gamma: Any = None, weights: Array | None = None,
                  label_smoothing: Any = 0.0, adjust: Any = None) -> Array:
    """Unreduced (weighted, smoothed, focal) softmax cross-entropy on ``adjust(z)``."""
    shape = z.shape
    cdt = z.dtype
    num_classes = shape[-1]
    checks.check_scalar_range(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    smoothing = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    g = None if gamma is None else _hyper(gamma, "gamma", shape[:-1], cdt, low=0.0)[..., None]
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
        coef = None if weights is None else _take(weights, t.ids)[..., None]
        if g is not None and num_classes > 1:
            factor = jnp.exp(g * _hard_focal_log1m(e, s, t.hit))
            coef = factor if coef is None else coef * factor
        loss = -log_p if coef is None else -(coef * log_p)
        return loss[..., 0]
    q = t.hit.astype(cdt) if t.ids is not None else t.probs
    if smoothing:
        eps = _hyper(label_smoothing, "label_smoothing", shape[:-1], cdt)[..., None]
        q = (1 - eps) * q + eps / num_classes
    if weights is not None:
        q = jnp.broadcast_to(weights, shape) * q
    log_p = jax.nn.log_softmax(z, axis=-1)
    if g is not None and num_classes > 1:  # With one class p = 1 and log p = 0: no factor.
        is_max = _first_max(z)
        z_max = jnp.sum(jnp.where(is_max, z, zero), axis=-1, keepdims=True)
        q = q * jnp.exp(g * _log1m_softmax(z, log_p, is_max, z_max))
    return -jnp.sum(q * log_p, axis=-1)


def _softmax_loss(logits: Any, labels: Any, gamma: Any, class_weights: Any,
                  label_smoothing: Any, where: Any, ignore_index: Any = None,
                  adjust: Any = None) -> Array:
    z, t, dtype, cdt = _softmax_inputs(logits, labels, where, ignore_index)
    w = _class_weights_1d(class_weights, z.shape[-1], z.shape)
    w = None if w is None else w.astype(cdt)
    loss = _softmax_core(z, t, gamma=gamma, weights=w, label_smoothing=label_smoothing,
                         adjust=None if adjust is None else functools.partial(adjust, t=t))
    return _finish(loss, t, dtype)


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
    return _softmax_loss(logits, labels, None, class_weights, label_smoothing, where,
                         ignore_index)


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
    return _softmax_loss(logits, labels, gamma, class_weights, label_smoothing, where,
                         ignore_index)


# ----------------------------------------------------------------------------------------
# Long-tail losses: logit adjustment, balanced softmax, LDAM(-DRW), seesaw.
# ----------------------------------------------------------------------------------------


def _counts(counts: Any, num_classes: int | None = None, name: str = "counts") -> Array:
    """Validated per-class counts ``[num_classes]`` (real, finite, non-negative)."""
    counts = jnp.asarray(checks.check_array(counts, name))
    if not (jnp.issubdtype(counts.dtype, jnp.integer)
            or jnp.issubdtype(counts.dtype, jnp.floating)):
        raise TypeError(f"`{name}` must be an integer or real array, got dtype {counts.dtype}.")
    checks.check_rank(counts, 1, name, "[num_classes]")
    if num_classes is not None and counts.shape[0] != num_classes:
        raise ValueError(f"`{name}` must have shape ({num_classes},) (one count per class, "
                         f"num_classes = logits.shape[-1]), got {counts.shape}.")
    checks.check_nonnegative(counts, name, "Counts are numbers of training examples.")
    return counts


def _log_prior(n: Array) -> Array:
    # n: counts in the compute dtype. Zero counts count as half the smallest positive count.
    seen = n > 0
    big = jnp.asarray(jnp.finfo(n.dtype).max, n.dtype)
    smallest = jnp.min(jnp.where(seen, n, big), initial=big)
    any_seen = jnp.any(seen)
    fill = jnp.where(any_seen, smallest / 2, jnp.ones((), n.dtype))
    total = jnp.sum(n)
    total = jnp.where(any_seen, total, jnp.asarray(n.shape[0], n.dtype))
    return jnp.log(jnp.where(seen, n, fill)) - jnp.log(total)


def log_prior(counts: Num[" c"], *, dtype: DTypeLike | None = None) -> Float[" c"]:
    r"""Log class prior :math:`\log \pi_c = \log(n_c / \sum_k n_k)` from class counts.

    The input of logit adjustment (`adjust_logits`, `logit_adjusted_cross_entropy`).

    Zero counts. :math:`\log 0` is :math:`-\infty`, which would make a never-seen class
    impossible after adjustment (or give NaN). A class with ``n_c = 0`` is given half the
    smallest positive count, :math:`\log(\min_{k: n_k > 0} n_k / (2 \sum_k n_k))`: rarer than
    every observed class, but finite. If every count is 0 the prior is uniform,
    :math:`-\log C`. The other classes keep the exact :math:`\log(n_c / \sum_k n_k)`.

    Args:
        counts: Training examples per class, shape ``[num_classes]``, finite and
            non-negative (integer or real; any scale: frequencies work too).
        dtype: Output dtype; defaults to the dtype of ``counts`` if floating, else float32.

    Returns:
        ``[num_classes]`` finite log-probabilities.

    Raises:
        TypeError: ``counts`` not a real array, or ``dtype`` not floating.
        ValueError: ``counts`` not 1-D, negative or non-finite.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> print(np.round(np.asarray(losses.log_prior(jnp.array([6, 3, 1, 0]))), 4))
        [-0.5108 -1.204  -2.3026 -2.9957]

    References:
        Menon et al., `Long-tail learning via logit adjustment
        <https://arxiv.org/abs/2007.07314>`_, ICLR 2021.

    .. versionadded:: 0.2.0
    """
    counts = _counts(counts)
    dtype = _float_dtype(counts, dtype)
    return _log_prior(counts.astype(checks.compute_dtype(dtype))).astype(dtype)


def _float_dtype(counts: Array, dtype: Any) -> Any:
    """The output dtype: ``dtype``, or the counts' own when floating (else float32)."""
    if dtype is None:
        dtype = counts.dtype if jnp.issubdtype(counts.dtype, jnp.floating) else jnp.float32
    return checks.floating_dtype(dtype)


def _prior_vector(log_prior: Any, num_classes: int, cdt: Any) -> Array:
    lp = jnp.asarray(checks.check_array(log_prior, "log_prior"))
    if not (jnp.issubdtype(lp.dtype, jnp.floating) or jnp.issubdtype(lp.dtype, jnp.integer)):
        raise TypeError(f"`log_prior` must be a real array, got dtype {lp.dtype}.")
    if lp.shape != (num_classes,):
        raise ValueError(f"`log_prior` must have shape ({num_classes},) (one value per class, "
                         f"e.g. `log_prior(counts)`), got {lp.shape}.")
    checks.check_finite(lp, "log_prior", "Build it with `losses.log_prior(counts)`, which "
                        "gives zero counts a finite value.")
    return lp.astype(cdt)


def _tau(tau: Any, batch_shape: tuple[int, ...], cdt: Any) -> Array:
    return _hyper(tau, "tau", batch_shape, cdt)[..., None]


def adjust_logits(logits: Float[" *batch c"], log_prior: Float[" c"], *,
                  tau: ArrayLike = 1.0) -> Float[" *batch c"]:
    r"""Post-hoc logit adjustment: :math:`z_c - \tau \log \pi_c`.

    Train with a plain cross-entropy, then predict with ``argmax(adjust_logits(z, log_prior))``:
    the arg-max of the adjusted logits is the Bayes-optimal prediction for the *balanced* error
    (Menon et al., eq. 8; :math:`\tau = 1` in theory, tune it on a balanced validation split).

    Args:
        logits: Scores ``[..., num_classes]``, floating.
        log_prior: ``[num_classes]`` log class prior, e.g. `log_prior` ``(counts)``; finite.
        tau: Adjustment strength, a finite scalar or broadcastable to ``logits.shape[:-1]``;
            0 gives ``logits`` unchanged. Traceable.

    Returns:
        Adjusted logits, shape and dtype of ``logits``.

    Raises:
        TypeError: ``logits`` not floating.
        ValueError: ``log_prior`` of the wrong shape or non-finite; ``tau`` non-finite.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jbalance import losses
        >>> lp = losses.log_prior(jnp.array([90, 10]))
        >>> print(losses.adjust_logits(jnp.array([1.0, 0.0]), lp).argmax())
        1

    References:
        Menon et al., `Long-tail learning via logit adjustment
        <https://arxiv.org/abs/2007.07314>`_, ICLR 2021.

    .. versionadded:: 0.2.0
    """
    logits = _logits(logits)
    cdt = checks.compute_dtype(logits.dtype)
    lp = _prior_vector(log_prior, logits.shape[-1], cdt)
    t = _tau(tau, logits.shape[:-1], cdt)
    shift = t * jnp.broadcast_to(lp, logits.shape)
    return (logits.astype(cdt) - shift).astype(logits.dtype)


def logit_adjusted_cross_entropy(logits: Float[" *batch c"], labels: Num[" *labels"], *,
                                 log_prior: Float[" c"],
                                 tau: ArrayLike = 1.0, class_weights: Num[" c"] | None = None,
                                 label_smoothing: ArrayLike = 0.0,
                                 where: ArrayLike | None = None,
                                 ignore_index: int | None = None) -> Float[" *batch"]:
    r"""Logit-adjusted softmax cross-entropy (Menon et al., eq. 10).

    Trains the raw logits so that they estimate the *balanced* posterior: the loss adds the
    scaled log prior to the logits, so the frequent classes must win by a larger margin.

    .. math::
      \ell = -\sum_c w_c\, q_c \log \mathrm{softmax}(z + \tau \log \pi)_c

    Otherwise exactly `weighted_softmax_cross_entropy` (class ids or probabilities, weights,
    label smoothing, masks). At test time use the raw logits (or `adjust_logits` with
    ``tau=0``). PyTorch: ``F.cross_entropy(z + tau * log_prior, y, weight=w,
    label_smoothing=eps, reduction="none")``.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Integer class ids ``logits.shape[:-1]`` or probabilities ``logits.shape``.
        log_prior: ``[num_classes]`` log class prior, e.g. `log_prior` ``(counts)``; finite.
        tau: Adjustment strength (default 1), finite; a scalar or broadcastable to
            ``logits.shape[:-1]``. Traceable and differentiable.
        class_weights: Optional non-negative per-class weights ``[num_classes]``.
        label_smoothing: ``eps`` in ``[0, 1]``. Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0 loss and 0 gradient (even with NaN/inf logits).
        ignore_index: Optional class id (e.g. -100, PyTorch's default) whose examples give 0.

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: wrong dtypes.
        ValueError: wrong shapes, class ids out of range, bad ``log_prior``/``tau``/weights.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> lp = losses.log_prior(jnp.array([90, 10]))
        >>> loss = losses.logit_adjusted_cross_entropy(
        ...     jnp.array([[2.0, 0.0]]), jnp.array([0]), log_prior=lp)
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [0.0149]

    References:
        Menon et al., `Long-tail learning via logit adjustment
        <https://arxiv.org/abs/2007.07314>`_, ICLR 2021.

    .. versionadded:: 0.2.0
    """
    z, t, dtype, cdt = _softmax_inputs(logits, labels, where, ignore_index)
    lp = _prior_vector(log_prior, z.shape[-1], cdt)
    tt = _tau(tau, z.shape[:-1], cdt)
    w = _class_weights_1d(class_weights, z.shape[-1], z.shape)
    loss = _softmax_core(z, t, weights=None if w is None else w.astype(cdt),
                         label_smoothing=label_smoothing,
                         adjust=lambda x: x + tt * jnp.broadcast_to(lp, x.shape))
    return _finish(loss, t, dtype)


def balanced_softmax_cross_entropy(logits: Float[" *batch c"], labels: Num[" *labels"], *,
                                   counts: Num[" c"],
                                   class_weights: Num[" c"] | None = None,
                                   label_smoothing: ArrayLike = 0.0,
                                   where: ArrayLike | None = None,
                                   ignore_index: int | None = None) -> Float[" *batch"]:
    r"""Balanced softmax cross-entropy (Ren et al., NeurIPS 2020).

    .. math::
      \ell = -\sum_c w_c\, q_c \log \frac{n_c e^{z_c}}{\sum_k n_k e^{z_k}}
           = -\sum_c w_c\, q_c \log \mathrm{softmax}(z + \log n)_c

    Since the softmax is shift-invariant this is `logit_adjusted_cross_entropy` with
    ``tau=1`` and ``log_prior=log_prior(counts)`` (:math:`\log n_c` and
    :math:`\log \pi_c` differ by the constant :math:`\log \sum_k n_k`); zero counts follow
    `log_prior`'s rule (half the smallest positive count), not :math:`\log 0`. PyTorch:
    ``F.cross_entropy(z + counts.log(), y, reduction="none")``.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Integer class ids ``logits.shape[:-1]`` or probabilities ``logits.shape``.
        counts: Training examples per class ``[num_classes]``, finite, non-negative.
        class_weights, label_smoothing, where, ignore_index: as in
            `weighted_softmax_cross_entropy`.

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: wrong dtypes.
        ValueError: wrong shapes, class ids out of range, negative or non-finite ``counts``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.balanced_softmax_cross_entropy(
        ...     jnp.array([[2.0, 0.0]]), jnp.array([0]), counts=jnp.array([90, 10]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [0.0149]

    References:
        Ren et al., `Balanced Meta-Softmax for Long-Tailed Visual Recognition
        <https://arxiv.org/abs/2007.10740>`_, NeurIPS 2020.

    .. versionadded:: 0.2.0
    """
    z, t, dtype, cdt = _softmax_inputs(logits, labels, where, ignore_index)
    lp = _log_prior(_counts(counts, z.shape[-1]).astype(cdt))
    w = _class_weights_1d(class_weights, z.shape[-1], z.shape)
    loss = _softmax_core(z, t, weights=None if w is None else w.astype(cdt),
                         label_smoothing=label_smoothing,
                         adjust=lambda x: x + jnp.broadcast_to(lp, x.shape))
    return _finish(loss, t, dtype)


def ldam_margins(counts: Num[" c"], *, max_margin: ArrayLike = 0.5,
                 dtype: DTypeLike | None = None) -> Float[" c"]:
    r"""LDAM's per-class margins :math:`m_c = m_{\max}\, n_c^{-1/4} / \max_k n_k^{-1/4}`.

    The rarest class gets ``max_margin``. A class with ``n_c = 0`` also gets ``max_margin``
    (it is at least as rare as the rarest observed class); with no observed class every
    margin is ``max_margin``.

    Args:
        counts: Training examples per class ``[num_classes]``, finite, non-negative.
        max_margin: The largest margin, finite and ``>= 0`` (default 0.5). Traceable.
        dtype: Output dtype; defaults to the dtype of ``counts`` if floating, else float32.

    Returns:
        ``[num_classes]`` margins in ``[0, max_margin]``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> print(np.round(np.asarray(losses.ldam_margins(jnp.array([16, 1]))), 4))
        [0.25 0.5 ]

    References:
        Cao et al., `Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss
        <https://arxiv.org/abs/1906.07413>`_, NeurIPS 2019.

    .. versionadded:: 0.2.0
    """
    counts = _counts(counts)
    dtype = _float_dtype(counts, dtype)
    cdt = checks.compute_dtype(dtype)
    return _ldam_margins(counts.astype(cdt), _hyper(max_margin, "max_margin", (), cdt, low=0.0)
                         ).astype(dtype)


def _ldam_margins(n: Array, max_margin: Array) -> Array:
    seen = n > 0
    # n^(-1/4) / max_k n_k^(-1/4) = (min_k n_k / n)^(1/4) over the observed classes.
    big = jnp.asarray(jnp.finfo(n.dtype).max, n.dtype)
    n_min = jnp.min(jnp.where(seen, n, big), initial=big)
    ratio = jnp.where(seen, n_min / jnp.where(seen, n, jnp.ones((), n.dtype)),
                      jnp.ones((), n.dtype))
    return max_margin * jnp.sqrt(jnp.sqrt(ratio))


def ldam_loss(logits: Float[" *batch c"], labels: Num[" *labels"], *, counts: Num[" c"],
              max_margin: ArrayLike = 0.5, scale: ArrayLike = 30.0,
              class_weights: Num[" c"] | None = None, where: ArrayLike | None = None,
              ignore_index: int | None = None) -> Float[" *batch"]:
    r"""Label-distribution-aware margin (LDAM) loss (Cao et al., NeurIPS 2019).

    A cross-entropy in which the label's logit must beat the others by a class-dependent
    margin, larger for rarer classes:

    .. math::
      \ell = w_y\, \mathrm{CE}\big(s\,(z - m_y e_y),\, y\big), \qquad
      m_c = m_{\max}\, \frac{n_c^{-1/4}}{\max_k n_k^{-1/4}}

    (`ldam_margins`). Equal to the authors' ``LDAMLoss(cls_num_list=counts,
    max_m=max_margin, s=scale, weight=class_weights)`` with ``reduction="none"`` (PyTorch's
    weighted ``cross_entropy`` returns :math:`w_y \cdot \mathrm{CE}`). For LDAM-DRW pass
    ``class_weights=deferred_reweighting(counts, start_step=...)(step)``.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating (the authors
            feed normalised features times normalised weights, i.e. cosines in [-1, 1]).
        labels: Integer class ids, shape ``logits.shape[:-1]``.
        counts: Training examples per class ``[num_classes]``, finite, non-negative.
        max_margin: Margin of the rarest class (default 0.5), finite, ``>= 0``. Traceable.
        scale: Logit scale ``s`` (default 30), finite, ``> 0``. Traceable.
        class_weights: Optional non-negative per-class weights ``[num_classes]``.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0 loss and 0 gradient.
        ignore_index: Optional class id (e.g. -100) whose examples give 0.

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: wrong dtypes (probability labels are not supported).
        ValueError: wrong shapes, class ids out of range, bad ``counts``/weights/
            ``max_margin``/``scale``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.ldam_loss(jnp.array([[0.5, 0.2], [0.5, 0.2]]), jnp.array([0, 1]),
        ...                         counts=jnp.array([16, 1]), scale=10.0)
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [0.4741 8.0003]

    References:
        Cao et al., `Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss
        <https://arxiv.org/abs/1906.07413>`_, NeurIPS 2019; code:
        https://github.com/kaidic/LDAM-DRW (``losses.py``).

    .. versionadded:: 0.2.0
    """
    z, t, dtype, cdt = _softmax_inputs(logits, labels, where, ignore_index,
                                       ids_only="`ldam_loss`")
    margins = _ldam_margins(_counts(counts, z.shape[-1]).astype(cdt),
                            _hyper(max_margin, "max_margin", (), cdt, low=0.0))
    checks.check_scalar_range(scale, "scale", low=0.0, low_inclusive=False)
    s = _hyper(scale, "scale", z.shape[:-1], cdt, low=0.0)[..., None]
    w = _class_weights_1d(class_weights, z.shape[-1], z.shape)
    zero = jnp.zeros((), cdt)

    m_y = _take(margins, t.ids)[..., None]
    w = None if w is None else w.astype(cdt)
    if (checks.is_concrete(scale) and checks.is_concrete(max_margin)
            and float(np.max(scale)) * float(max_margin) < 60.0):
        # s (z - m_y e_y) differs from s z only at the label: with e = exp(s (z - max z)),
        # sum_j exp(z'_j - s max z) = sum_{j != y} e_j + e_y exp(-s m_y); the label's margin
        # is a per-example factor (at least exp(-60)), never a second pass over the classes.
        mz = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
        e = jnp.exp(s * (z - mz))
        z_y = jnp.take_along_axis(z, t.ids[..., None], axis=-1, mode="clip")
        d_y = s * (z_y - mz)
        sum_o = jnp.sum(jnp.where(t.hit, zero, e), axis=-1, keepdims=True)
        nll = jnp.log(sum_o + jnp.exp(d_y - s * m_y)) - (d_y - s * m_y)
        if w is not None:
            nll = _take(w, t.ids)[..., None] * nll
        return _finish(nll[..., 0], t, dtype)

    def adjust(x):
        return s * (x - jnp.where(t.hit, m_y, zero))

    loss = _softmax_core(z, t, weights=w, adjust=adjust)
    return _finish(loss, t, dtype)


def deferred_reweighting(counts: Num[" c"], *, start_step: int | ArrayLike,
                         beta: ArrayLike = 0.9999) -> Any:
    r"""The deferred re-weighting (DRW) schedule of LDAM-DRW: class weights as a step function.

    .. math::
      w(t) = \begin{cases} \mathbf 1 & t < t_0 \\
        \texttt{class\_weights(counts, method="effective\_number", beta=beta)} & t \ge t_0
      \end{cases}

    Train with plain (unweighted) losses first, so that features are learnt from the natural
    distribution, then re-weight from ``start_step`` on (Cao et al. use the second learning
    rate decay: epoch 160 of 200). Like an optax schedule, the result is a pure function of a
    (traceable) ``step``; pass its output as ``class_weights=`` of any loss.

    Args:
        counts: Training examples per class ``[num_classes]``, finite, non-negative.
        start_step: First step of re-weighting (``t_0``), an integer ``>= 0``; traceable.
        beta: Effective-number ``beta`` in ``[0, 1)`` (default 0.9999, the authors' value).

    Returns:
        ``schedule(step) -> [num_classes]`` float32 weights.

    Raises:
        TypeError/ValueError: as `class_weights` for ``counts`` and ``beta``; negative or
            non-finite ``start_step``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> drw = losses.deferred_reweighting(jnp.array([90, 9, 1]), start_step=100)
        >>> print(drw(0))
        [1. 1. 1.]
        >>> print(np.round(np.asarray(drw(100), np.float64), 3))
        [ 0.371  3.699 33.279]

    References:
        Cao et al., `Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss
        <https://arxiv.org/abs/1906.07413>`_, NeurIPS 2019.

    .. versionadded:: 0.2.0
    """
    counts = _counts(counts)
    checks.check_scalar_range(start_step, "start_step", low=0.0)
    checks.check_finite(start_step, "start_step")
    weights = class_weights(counts, method="effective_number", beta=beta)
    ones = jnp.ones_like(weights)

    def schedule(step: ArrayLike) -> Array:
        step = jnp.asarray(step)
        if step.ndim:
            raise ValueError(f"`step` must be a scalar, got shape {step.shape}.")
        # Compare in float32: an int step and a float start (or the reverse) must not need
        # implicit promotion (the library runs under strict promotion).
        started = step.astype(jnp.float32) >= jnp.asarray(start_step).astype(jnp.float32)
        return jnp.where(started, weights, ones)

    return schedule


def update_counts(counts: Num[" c"], labels: Num[" *labels"], *,
                  where: ArrayLike | None = None) -> Num[" c"]:
    r"""Adds a batch's labels to running per-class counts: :math:`n_c + \sum_i [y_i = c]`.

    The state of `seesaw_loss` (mmdetection's ``cum_samples``); carry it in the train state.

    Args:
        counts: Current counts ``[num_classes]``, finite, non-negative.
        labels: Integer class ids (any shape; every id must be in ``[0, num_classes)`` unless
            masked), or probabilities ``[..., num_classes]`` (summed per class; needs floating
            ``counts``).
        where: Optional boolean mask broadcastable to the ids' shape (probabilities: to
            ``labels.shape[:-1]``); masked labels are not counted.

    Returns:
        Updated counts, shape and dtype of ``counts``.

    Raises:
        TypeError: wrong dtypes.
        ValueError: class ids out of range, bad ``counts``, shape mismatches.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jbalance import losses
        >>> print(losses.update_counts(jnp.array([5, 0, 1]), jnp.array([1, 1, 2])))
        [5 2 2]

    References:
        Wang et al., `Seesaw Loss for Long-Tailed Instance Segmentation
        <https://arxiv.org/abs/2008.10032>`_, CVPR 2021 (mmdetection's ``cum_samples``).

    .. versionadded:: 0.2.0
    """
    counts = _counts(counts)
    num_classes = counts.shape[0]
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    if jnp.issubdtype(labels.dtype, jnp.integer):
        mask = checks.mask(where, labels.shape, "(`labels.shape`)")
        valid = (labels >= 0) & (labels < num_classes)
        checks.require(valid if mask is None else valid | ~mask,
                       f"`labels` must be class ids in [0, {num_classes}) (the length of "
                       f"`counts`); exclude others with `where=`.")
        keep = valid if mask is None else valid & mask
        add = jnp.zeros((num_classes,), counts.dtype).at[labels.ravel()].add(
            keep.ravel().astype(counts.dtype), mode="drop")
        return counts + add
    if jnp.issubdtype(labels.dtype, jnp.floating):
        if not jnp.issubdtype(counts.dtype, jnp.floating):
            raise TypeError("Probability `labels` need floating `counts` (fractional counts).")
        checks.check_min_rank(labels, 1, "labels", "[..., num_classes]")
        if labels.shape[-1] != num_classes:
            raise ValueError(f"Probability `labels` must have last axis {num_classes} (the "
                             f"length of `counts`), got shape {labels.shape}.")
        checks.check_nonnegative(labels, "labels")
        y = labels.astype(counts.dtype)
        mask = checks.mask(where, labels.shape[:-1], "(`labels.shape[:-1]`)")
        if mask is not None:
            y = jnp.where(mask[..., None], y, jnp.zeros((), y.dtype))
        return counts + jnp.sum(y.reshape(-1, num_classes), axis=0)
    raise TypeError(f"`labels` must be integer class ids or real probabilities, got dtype "
                    f"{labels.dtype}.")


def seesaw_loss(logits: Float[" *batch c"], labels: Num[" *labels"], *, counts: Num[" c"],
                p: ArrayLike = 0.8,
                q: ArrayLike = 2.0, eps: ArrayLike = 1e-2, where: ArrayLike | None = None,
                ignore_index: int | None = None) -> Float[" *batch"]:
    r"""Seesaw loss (Wang et al., CVPR 2021): a cross-entropy that rebalances negative gradients.

    For an example of class :math:`i` the non-target logits are shifted by the log of the
    seesaw factor :math:`S_{ij} = M_{ij} C_{ij}`:

    .. math::
      \ell = -\log \frac{e^{z_i}}{e^{z_i} + \sum_{j \ne i} S_{ij} e^{z_j}}, \quad
      M_{ij} = \begin{cases} (N_j / N_i)^p & N_j < N_i \\ 1 & \text{else} \end{cases}, \quad
      C_{ij} = \begin{cases} (\sigma_j / \sigma_i)^q & \sigma_j > \sigma_i \\ 1 & \text{else}
      \end{cases}

    with :math:`N` the cumulative counts (clamped at 1), :math:`\sigma` the softmax of the
    *stopped-gradient* logits and :math:`\sigma_i` clamped at ``eps``. The mitigation factor
    :math:`M` shrinks the penalty a frequent class :math:`i` puts on rarer classes; the
    compensation factor :math:`C` restores it for classes that are wrongly scored higher.
    Equal to mmdetection's / mmpretrain's ``seesaw_ce_loss(z, y, None, counts, C, p, q, eps,
    reduction="none")``. The factors are computed in log space, so the loss is finite for any
    logits. Update ``counts`` every step with `update_counts` *before* the loss, as mmdet does.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Integer class ids, shape ``logits.shape[:-1]``.
        counts: Cumulative examples per class ``[num_classes]``, finite, non-negative.
        p: Mitigation exponent ``>= 0`` (default 0.8; 0 disables it). Traceable.
        q: Compensation exponent ``>= 0`` (default 2; 0 disables it). Traceable.
        eps: Lower clamp of :math:`\sigma_i`, ``> 0`` (default 0.01). Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0 loss and 0 gradient.
        ignore_index: Optional class id (e.g. -100) whose examples give 0.

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: wrong dtypes (probability labels are not supported).
        ValueError: wrong shapes, class ids out of range, bad ``counts``/``p``/``q``/``eps``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.seesaw_loss(jnp.array([[1.0, 2.0, 0.0]]), jnp.array([0]),
        ...                           counts=jnp.array([100, 10, 1]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [1.4333]

    References:
        Wang et al., `Seesaw Loss for Long-Tailed Instance Segmentation
        <https://arxiv.org/abs/2008.10032>`_, CVPR 2021; mmdetection
        ``mmdet/models/losses/seesaw_loss.py``.

    .. versionadded:: 0.2.0
    """
    z, t, dtype, cdt = _softmax_inputs(logits, labels, where, ignore_index,
                                       ids_only="`seesaw_loss`")
    n = _counts(counts, z.shape[-1]).astype(cdt)
    pp = _hyper(p, "p", (), cdt, low=0.0)
    qq = _hyper(q, "q", (), cdt, low=0.0)
    checks.check_scalar_range(eps, "eps", low=0.0, low_inclusive=False)
    eps_ = _hyper(eps, "eps", (), cdt, low=0.0)
    log_eps = jnp.log(eps_)
    log_n = jnp.log(jnp.maximum(n, jnp.ones((), cdt)))
    zero = jnp.zeros((), cdt)
    # The seesaw factors are at most (1/eps)^q: where that cannot overflow, the loss is
    # computed in the scale of e = exp(z - max z), with one exp per element as in a plain
    # cross-entropy (the factors are products and an integer power); else in log space.
    if (checks.is_concrete(q) and checks.is_concrete(eps)
            and float(q) * -np.log(float(eps)) < 60.0):
        loss = _seesaw_scaled(z, t, log_n, pp, q, eps_)
        return _finish(loss, t, dtype)

    def adjust(x):
        zs = jax.lax.stop_gradient(x)
        ln = jnp.broadcast_to(log_n, x.shape)
        m = jnp.max(zs, axis=-1, keepdims=True)
        lse = m + jnp.log(jnp.sum(jnp.exp(zs - m), axis=-1, keepdims=True))
        z_i = jnp.sum(jnp.where(t.hit, zs, zero), axis=-1, keepdims=True)
        log_n_i = jnp.sum(jnp.where(t.hit, ln, zero), axis=-1, keepdims=True)
        # log(sigma_j / max(sigma_i, eps)) = z_j - max(z_i, lse + log eps).
        log_c = qq * jnp.maximum(zs - jnp.maximum(z_i, lse + log_eps), zero)
        log_m = pp * jnp.minimum(ln - log_n_i, zero)
        return x + jnp.where(t.hit, zero, log_m + log_c)

    loss = _softmax_core(z, t, adjust=adjust)
    return _finish(loss, t, dtype)


def _seesaw_scaled(z: Array, t: _Targets, log_n: Array, p: Array, q: Any, eps: Array) -> Array:
    """Seesaw loss with e = exp(z - max z): one exp per element.

    With s = sum(e), sigma_j / max(sigma_i, eps) = e_j / max(e_i, eps s) (at most 1/eps), and
    the mitigation factor min(1, (N_j / N_i)^p) = min(1, a_j / a_i) with a = (N / max N)^p
    in (0, 1]. The loss is log(sum_j S_ij e_j) - (z_i - max z) with S_ii = 1 and the factors
    S held constant (mmdet's detached scores), so the gradient is softmax(z + log S) - onehot:
    a `custom_jvp` returns exactly that, from the forward pass's own products.
    """
    a = jax.lax.stop_gradient(jnp.exp(p * (log_n - jnp.max(log_n))))  # [C], in (0, 1]
    return _seesaw_ce(z, t.ids, a, jax.lax.stop_gradient(eps), float(q))


def _seesaw_parts(z: Array, ids: Array, a: Array, eps: Array, q: float) -> tuple[Array, Array]:
    cdt = z.dtype
    one = jnp.ones((), cdt)
    m = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    e = jnp.exp(z - m)
    s = jnp.sum(e, axis=-1, keepdims=True)
    z_i = jnp.take_along_axis(z, ids[..., None], axis=-1, mode="clip")
    e_i = jnp.exp(z_i - m)
    # Per-example reciprocals: a multiply per element instead of a divide.
    ratio = jnp.maximum(e * (one / jnp.maximum(e_i, eps * s)), one)
    if q == int(q):
        comp = jax.lax.integer_pow(ratio, int(q))
    else:
        comp = jnp.exp(q * jnp.log(ratio))
    a_i = _take(a, ids)[..., None]
    inv_a_i = one / jnp.maximum(a_i, jnp.finfo(cdt).tiny)
    mit = jnp.minimum(jnp.broadcast_to(a, z.shape) * inv_a_i, one)
    iota = jax.lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)
    fe = jnp.where(iota == ids[..., None], e, mit * comp * e)
    s2 = jnp.sum(fe, axis=-1, keepdims=True)
    return (jnp.log(s2) - (z_i - m))[..., 0], fe * (one / s2)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _seesaw_ce(z: Array, ids: Array, a: Array, eps: Array, q: float) -> Array:
    return _seesaw_parts(z, ids, a, eps, q)[0]


@_seesaw_ce.defjvp
def _seesaw_ce_jvp(q, primals, tangents):
    z, ids, a, eps = primals
    zd = tangents[0]
    loss, prob = _seesaw_parts(z, ids, a, eps, q)
    zd_i = jnp.take_along_axis(zd, ids[..., None], axis=-1, mode="clip")[..., 0]
    return loss, jnp.sum(prob * zd, axis=-1) - zd_i


# ----------------------------------------------------------------------------------------
# Asymmetric loss (multi-label).
# ----------------------------------------------------------------------------------------


def _int_or_float_pow(x: Array, gamma: float) -> Array:
    """x^gamma for x >= 0 and a static gamma >= 0 (0^0 = 1), finite derivative for gamma >= 1."""
    if gamma == 0:
        return jnp.ones_like(x)
    if gamma == int(gamma) and gamma <= 16:
        return jax.lax.integer_pow(x, int(gamma))
    tiny = jnp.asarray(jnp.finfo(x.dtype).tiny, x.dtype)
    pos = x > tiny
    return jnp.where(pos, jnp.exp(gamma * jnp.log(jnp.where(pos, x, jnp.ones((), x.dtype)))),
                     jnp.zeros((), x.dtype))


def _asl_binary(z: Array, y: Array, gp: float, gn: float, clip: float, eps: float) -> Array:
    """ASL for labels in {0, 1}: one exp (sigmoid pair) and one log per element."""
    cdt = z.dtype
    one, zero = jnp.ones((), cdt), jnp.zeros((), cdt)
    p, q = _sigmoid_pair(z)
    pos = y > 0.5
    # log max(p, eps) or log max(min(q + clip, 1), eps): one log of the selected argument.
    log_t = jnp.log(jnp.maximum(jnp.where(pos, p, jnp.minimum(q + clip, one)), eps))
    w = jnp.where(pos, _int_or_float_pow(q, gp), _int_or_float_pow(jnp.maximum(p - clip, zero),
                                                                   gn))
    return -w * log_t


def _asl_cond(z: Array, y: Array, hyper: tuple[float, ...], derivatives: bool,
              binary: bool) -> Any:
    """The binary path if every label is 0 or 1, else the general one (a `lax.cond`).

    With ``derivatives`` each branch also returns d loss / d z: the loss is elementwise, so
    a VJP with a cotangent of ones is its diagonal. Differentiating *through* a `cond` would
    make XLA materialise every residual of both branches; this way the only residual is the
    derivative itself, computed inside the branch where XLA fuses it with the loss.
    """
    general = functools.partial(_asl_general, gp=hyper[0], gn=hyper[1], m=hyper[2],
                                eps=hyper[3])

    def branch(fn):
        def run(zz, yy):
            if not derivatives:
                return fn(zz, yy)
            out, vjp = jax.vjp(lambda x: fn(x, yy), zz)
            return out, vjp(jnp.ones_like(out))[0]
        return run

    fast = branch(lambda a, b: _asl_binary(a, b, *hyper))
    if binary:
        return fast(z, y)
    return jax.lax.cond(jnp.all((y == 0) | (y == 1)), fast, branch(general), z, y)


def _asl_fast(z: Array, y: Array, hyper: tuple[float, ...], binary: bool) -> Array:
    @jax.custom_jvp
    def loss(zz, yy):
        return _asl_cond(zz, yy, hyper, derivatives=False, binary=binary)

    def loss_jvp(primals, tangents):
        zz, yy = primals
        zd, yd = tangents
        if not _is_zero(yd):  # Label derivatives: the general (soft-label) formula.
            cdt = zz.dtype
            args = [jnp.asarray(h, cdt) for h in hyper]
            return jax.jvp(lambda a, b: _asl_general(a, b, *args), (zz, yy),
                           (jnp.zeros_like(zz) if _is_zero(zd) else zd, yd))
        out, dz = _asl_cond(zz, yy, hyper, derivatives=True, binary=binary)
        return out, (jnp.zeros_like(out) if _is_zero(zd) else dz * zd)

    loss.defjvp(loss_jvp, symbolic_zeros=True)
    return loss(z, y)


def _asl_general(z: Array, y: Array, gp: Any, gn: Any, m: Any, eps: Any) -> Array:
    """ASL for soft labels and traced hyper-parameters, in log space.

    The hyper-parameters are arrays (traced) or Python floats (static, then a clip > 0 and an
    eps > 0 drop the branches that only guard the limits clip -> 0 and eps -> 0)."""
    cdt = z.dtype
    zero, one = jnp.zeros((), cdt), jnp.ones((), cdt)
    tiny = jnp.asarray(jnp.finfo(cdt).tiny, cdt)
    p, q = _sigmoid_pair(z)  # sigma(z), 1 - sigma(z), each to full relative precision
    # log max(p, eps); log max(min(q + m, 1), eps) with q + m > 0 (else log q itself).
    qm = jnp.minimum(q + m, one)
    if isinstance(eps, float) and isinstance(m, float) and eps > 0 and m > 0:
        log_pos = jnp.log(jnp.maximum(p, eps))
        log_neg = jnp.log(jnp.maximum(qm, eps))
    else:
        log_eps = jnp.log(jnp.asarray(eps, cdt))
        log_pos = jnp.maximum(_log_sigmoid(z), log_eps)
        pos_qm = qm > tiny
        log_neg = jnp.where(pos_qm, jnp.log(jnp.where(pos_qm, qm, one)), _log_sigmoid(-z))
        log_neg = jnp.maximum(log_neg, log_eps)
    # 1 - p_t = y q + (1 - y) max(p - m, 0), without cancellation; base^gamma in log space,
    # with the base flushed to 0 below `tiny` (0^gamma = 1 if gamma = 0 else 0).
    gamma = gp * y + gn * (1 - y)
    base = y * q + (1 - y) * jnp.maximum(p - m, zero)
    pos_b = base > tiny
    w = jnp.where(pos_b, jnp.exp(gamma * jnp.log(jnp.where(pos_b, base, one))),
                  jnp.where(gamma == 0, one, zero))
    return -w * (y * log_pos + (1 - y) * log_neg)


def asymmetric_loss(logits: Float[" *batch c"], labels: Num[" *batch c"], *,
                    gamma_pos: ArrayLike = 0.0,
                    gamma_neg: ArrayLike = 4.0, clip: ArrayLike = 0.05, eps: ArrayLike = 1e-8,
                    where: ArrayLike | None = None) -> Float[" *batch c"]:
    r"""Asymmetric loss (ASL) for multi-label classification (Ridnik et al., ICCV 2021).

    Many easy negatives dominate a multi-label BCE. ASL focuses the negatives harder than the
    positives and shifts their probability by ``clip`` (very easy negatives give exactly 0):

    .. math::
      \ell = -\big[\, y\, (1 - p)^{\gamma_+} \log \max(p, \epsilon)
             + (1 - y)\, p_m^{\gamma_-} \log \max(1 - p_m, \epsilon) \big],
      \qquad p = \sigma(z),\; p_m = \max(p - m, 0)

    for binary ``y``; for soft ``y`` the focusing weight is timm's
    :math:`(1 - p_t)^{\gamma_+ y + \gamma_- (1 - y)}` with
    :math:`p_t = y\,p + (1 - y)(1 - p_m)`. Per element this is the negated term of timm's
    ``AsymmetricLossMultiLabel(gamma_neg, gamma_pos, clip, eps)`` (which returns
    ``-loss.sum()``): ``asymmetric_loss(...).sum()`` equals timm's output. Probabilities come
    from an exact two-sided sigmoid and the focusing weight from bounded quantities, so
    values and gradients are finite for any logits (timm's ``1 - sigmoid`` rounds to 0 from
    ``z ~ 17`` in float32). Gradients flow through the focusing weight (timm's default
    ``disable_torch_grad_focal_loss=False``).

    Args:
        logits: Scores, any shape (usually ``[..., num_classes]``), floating.
        labels: Targets of the same shape in ``[0, 1]`` (binary or soft).
        gamma_pos: Focusing exponent of positives, finite, ``>= 0`` (default 0). Traceable.
        gamma_neg: Focusing exponent of negatives, finite, ``>= 0`` (default 4). Traceable.
        clip: Probability margin ``m`` of negatives in ``[0, 1]`` (default 0.05; 0 disables
            it). Traceable.
        eps: Lower clamp of the probabilities inside the logs, in ``[0, 1)`` (default 1e-8).
        where: Optional boolean mask broadcastable to ``logits.shape``; masked elements give 0
            loss and 0 gradient.

    Returns:
        Losses of shape and dtype of ``logits``.

    Raises:
        TypeError: wrong dtypes.
        ValueError: shape mismatches, labels outside ``[0, 1]``, bad hyper-parameters.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.asymmetric_loss(jnp.array([[2.0, -1.0, 1.0]]),
        ...                               jnp.array([[1.0, 0.0, 0.0]]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [[0.1269 0.0006 0.2459]]

    References:
        Ridnik et al., `Asymmetric Loss For Multi-Label Classification
        <https://arxiv.org/abs/2009.14119>`_, ICCV 2021; timm ``timm/loss/asymmetric_loss.py``.

    .. versionadded:: 0.2.0
    """
    z, y, mask, dtype, cdt = _sigmoid_inputs(logits, labels, where)
    gp = _hyper(gamma_pos, "gamma_pos", (), cdt, low=0.0)
    gn = _hyper(gamma_neg, "gamma_neg", (), cdt, low=0.0)
    m = _hyper(clip, "clip", (), cdt, low=0.0, high=1.0)
    checks.check_scalar_range(eps, "eps", low=0.0, high=1.0, high_inclusive=False)
    e = _hyper(eps, "eps", (), cdt, low=0.0, high=1.0)
    static = all(checks.is_concrete(v) and np.ndim(v) == 0
                 for v in (gamma_pos, gamma_neg, clip, eps))
    if static and float(eps) > 0:
        # Binary labels (the usual case) take a path with one exp and one log per element,
        # the cost of a BCE; soft labels need timm's mixed exponent (the general path).
        hyper = (float(gamma_pos), float(gamma_neg), float(clip), float(eps))
        label_dtype = jnp.result_type(labels)
        binary = label_dtype == jnp.bool_ or jnp.issubdtype(label_dtype, jnp.integer)
        # Float labels: decided at run time (under vmap both paths run, a select picks).
        loss = _asl_fast(z, y, hyper, binary)
    else:
        loss = _asl_general(z, y, gp, gn, m, e)
    return _apply_mask(loss, mask).astype(dtype)


# ----------------------------------------------------------------------------------------
# Reductions.
# ----------------------------------------------------------------------------------------


def example_weights(labels: Num[" *labels"], class_weights: Num[" c"], *,
                    where: ArrayLike | None = None) -> Array:
    r"""Per-example weight :math:`w_{y}` of each label: the normaliser of PyTorch's weighted mean.

    .. math::
      v_i = w_{y_i} \;\text{(class ids)}, \qquad v_i = \sum_c w_c\, y_{ic} \;\text{(probabilities)}

    Args:
        labels: Integer class ids ``[...]`` or class probabilities ``[..., num_classes]``
            (floating).
        class_weights: Per-class weights, shape ``[num_classes]``, non-negative.
        where: Optional boolean mask broadcastable to the output; masked examples get 0.
            Out-of-range class ids (e.g. an ignore label) also get 0.

    Returns:
        Weights of shape ``labels.shape`` (ids) or ``labels.shape[:-1]`` (probabilities), in
        the dtype of ``class_weights`` (float32 if it is an integer array).

    Raises:
        TypeError: ``labels`` or ``class_weights`` of the wrong dtype.
        ValueError: shapes that do not match, or negative ``class_weights`` (when concrete).

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> print(losses.example_weights(jnp.array([0, 2, 2]), jnp.array([1.0, 2.0, 5.0])))
        [1. 5. 5.]

    References:
        PyTorch, `CrossEntropyLoss
        <https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html>`_
        (``reduction="mean"`` with ``weight``).

    .. versionadded:: 0.1.0
    """
    cw = jnp.asarray(checks.check_array(class_weights, "class_weights"))
    checks.check_rank(cw, 1, "class_weights", "[num_classes]")
    if not (jnp.issubdtype(cw.dtype, jnp.floating) or jnp.issubdtype(cw.dtype, jnp.integer)):
        raise TypeError(f"`class_weights` must be a real array, got dtype {cw.dtype}.")
    _nonnegative(cw, "class_weights")
    dtype = cw.dtype if jnp.issubdtype(cw.dtype, jnp.floating) else jnp.dtype(jnp.float32)
    cw = cw.astype(dtype)
    num_classes = cw.shape[0]
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    if jnp.issubdtype(labels.dtype, jnp.integer):
        onehot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
    elif jnp.issubdtype(labels.dtype, jnp.floating):
        checks.check_min_rank(labels, 1, "labels", "[..., num_classes]")
        if labels.shape[-1] != num_classes:
            raise ValueError(
                f"Probability `labels` must have last axis num_classes = {num_classes} (the "
                f"length of `class_weights`), got shape {labels.shape}.")
        onehot = labels.astype(dtype)
    else:
        raise TypeError(f"`labels` must be integer class ids or real probabilities, got dtype "
                        f"{labels.dtype}.")
    out = jnp.sum(onehot * jnp.broadcast_to(cw, onehot.shape), axis=-1)
    return _apply_mask(out, checks.mask(where, out.shape, "(the per-example shape)"))


def reduce_loss(losses: Float[" *shape"], *, reduction: str = "mean",
                weights: ArrayLike | None = None,
                where: ArrayLike | None = None) -> Array:
    r"""Reduces unreduced losses to a scalar: plain mean, sum, or PyTorch's weighted mean.

    .. math::
      \text{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i}, \qquad
      \text{sum} = \sum_i m_i \ell_i, \qquad
      \text{weighted\_mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i v_i}

    with :math:`m` the ``where`` mask. ``"weighted_mean"`` with ``weights`` =
    `example_weights` ``(labels, class_weights)`` is PyTorch's ``reduction="mean"`` for a
    class-weighted ``cross_entropy``/``nll_loss`` (the losses already contain :math:`w_y`; the
    mean divides by the total weight, not the count). PyTorch's mean for probability targets and
    for ``BCEWithLogitsLoss`` is the plain ``"mean"`` (over elements for the sigmoid losses).
    An empty selection (all masked, or zero total weight) gives 0, where PyTorch gives NaN.

    Args:
        losses: Unreduced losses, any shape.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"weighted_mean"`` (static).
        weights: Per-example normalising weights broadcastable to ``losses.shape``; required
            by (and only used by) ``"weighted_mean"``.
        where: Optional boolean mask broadcastable to ``losses.shape``; masked entries are
            left out of numerator and denominator.

    Returns:
        A scalar of the dtype of ``losses``.

    Raises:
        TypeError: ``losses`` not floating, or ``where`` not boolean.
        ValueError: unknown ``reduction``, ``"weighted_mean"`` without ``weights``, or shapes
            that do not broadcast.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> l = jnp.array([1.0, 10.0, 5.0])
        >>> print(losses.reduce_loss(l, reduction="weighted_mean", weights=jnp.array([1., 5., 5.])))
        1.4545455

    References:
        PyTorch, `CrossEntropyLoss
        <https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html>`_.

    .. versionadded:: 0.1.0
    """
    checks.check_one_of(reduction, _REDUCTIONS, "reduction")
    losses = jnp.asarray(checks.check_array(losses, "losses"))
    checks.check_floating(losses, "losses")
    dtype = losses.dtype
    cdt = checks.compute_dtype(dtype)
    x = losses.astype(cdt)
    mask = checks.mask(where, x.shape, "(`losses.shape`)")
    zero = jnp.zeros((), cdt)
    num = jnp.sum(_apply_mask(x, mask))
    if reduction == "sum":
        return num.astype(dtype)
    if reduction == "mean":
        den = (jnp.sum(mask.astype(cdt)) if mask is not None
               else jnp.asarray(x.size, cdt))
    else:
        if weights is None:
            raise ValueError("`reduction=\"weighted_mean\"` needs `weights` (e.g. "
                             "`example_weights(labels, class_weights)`).")
        v = jnp.asarray(checks.check_array(weights, "weights"))
        if not (jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)):
            raise TypeError(f"`weights` must be a real array, got dtype {v.dtype}.")
        v = checks.broadcast(v.astype(cdt), x.shape, "weights", "(`losses.shape`)")
        den = jnp.sum(_apply_mask(v, mask))
    safe = jnp.where(den > 0, den, jnp.ones((), cdt))
    return jnp.where(den > 0, num / safe, zero).astype(dtype)
