r"""Class weights, weighted and focal cross-entropies, and their reductions.

Every loss returns *unreduced* values (the optax convention): one value per example for the
softmax losses, one per element for the sigmoid losses. Reduce them with `reduce_loss`.

Numerics. All losses are computed in log space. Half-precision inputs (float16, bfloat16) are
computed in float32 and cast back, so the output dtype always follows ``logits``. The sigmoid
focal loss uses a handful of small `jax.custom_jvp` functions whose derivative rules are
written in bounded quantities (never ``1/(1-p_t)``), so values, gradients and Hessians stay
finite for logits of any magnitude and every ``gamma >= 0``, including ``gamma < 1`` where the
textbook formula (PyTorch, torchvision) gives NaN gradients. The same functions share a single
``exp(-|z|)`` and ``log1p`` so that XLA fuses the stable loss into one cheap loop.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jbalance._src import checks
from jbalance._src.typing import Array, ArrayLike, DTypeLike

_METHODS = ("inverse", "inverse_sqrt", "effective_number", "balanced")
_NORMALIZE = ("samples", "classes", "none")
_ZERO_COUNT = ("max", "zero")
_REDUCTIONS = ("mean", "sum", "weighted_mean")


# ----------------------------------------------------------------------------------------
# Argument handling.
# ----------------------------------------------------------------------------------------


def _compute_dtype(dtype: Any) -> Any:
    # exp/log1p in 16 bits lose ~3 significant digits and overflow early (float16 at 65504);
    # computing in float32 and casting back is both more accurate and no slower on CPU.
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype


def _logits(logits: Any, min_rank: int = 1) -> Array:
    logits = jnp.asarray(checks.check_array(logits, "logits"))
    checks.check_floating(logits, "logits")
    checks.check_min_rank(logits, min_rank, "logits", "[..., num_classes]")
    return logits


def _nonnegative(value: Any, name: str) -> None:
    """Raises a `ValueError` when a concrete array has negative or NaN entries."""
    if value is None or not checks.is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` must not contain NaN.")
    if (arr < 0).any():
        raise ValueError(
            f"`{name}` must be non-negative, got a minimum of {arr.min():g}. Weights scale "
            f"the loss of a class; use 0 to switch a class off.")


def _hyper(value: Any, name: str, shape: tuple[int, ...], dtype: Any, *, low: float | None = None,
           high: float | None = None) -> Array:
    """A numeric hyper-parameter: range-checked when concrete, cast and broadcast to ``shape``."""
    checks.check_scalar_range(value, name, low=low, high=high)
    value = jnp.asarray(value)
    if not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)
            or value.dtype == jnp.bool_):
        raise TypeError(f"`{name}` must be a real number or array, got dtype {value.dtype}.")
    return _broadcast(value.astype(dtype), shape, name)


def _broadcast(x: Array, shape: tuple[int, ...], name: str, shape_doc: str = "") -> Array:
    # The library runs under jax_numpy_rank_promotion="raise": broadcast explicitly.
    try:
        out = np.broadcast_shapes(x.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        doc = f" {shape_doc}" if shape_doc else ""
        raise ValueError(
            f"`{name}` has shape {x.shape}, which does not broadcast to {tuple(shape)}{doc}.")
    return jnp.broadcast_to(x, shape)


def _class_weight_vector(class_weights: Any, num_classes: int, shape: tuple[int, ...],
                         dtype: Any, name: str = "class_weights") -> Array | None:
    """Validates per-class weights and broadcasts them along the last axis of ``shape``."""
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
    return jnp.broadcast_to(w.astype(dtype), shape)


def _mask(where: Any, shape: tuple[int, ...], shape_doc: str) -> Array | None:
    if where is None:
        return None
    where = jnp.asarray(checks.check_array(where, "where"))
    if not (where.dtype == jnp.bool_ or jnp.issubdtype(where.dtype, jnp.integer)):
        raise TypeError(
            f"`where` must be a boolean mask, got dtype {where.dtype}. For real-valued "
            f"per-example weights multiply the loss, or pass them to `reduce_loss(weights=...)`.")
    if where.dtype != jnp.bool_:
        where = where != 0
    return _broadcast(where, shape, "where", shape_doc)


def _apply_mask(loss: Array, mask: Array | None) -> Array:
    if mask is None:
        return loss
    return jnp.where(mask, loss, jnp.zeros((), loss.dtype))


def _is_zero(t: Any) -> bool:
    return isinstance(t, SymbolicZero)


# ----------------------------------------------------------------------------------------
# Class weights.
# ----------------------------------------------------------------------------------------


def class_weights(counts: ArrayLike, *, method: str = "inverse", beta: ArrayLike = 0.999,
                  normalize: str = "samples", zero_count: str = "max",
                  dtype: DTypeLike | None = None) -> Array:
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
    if dtype is None:
        dtype = counts.dtype if jnp.issubdtype(counts.dtype, jnp.floating) else jnp.float32
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype}.")
    cdt = _compute_dtype(dtype)
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


def _sigmoid_inputs(logits: Any, labels: Any) -> tuple[Array, Array, Any, Any]:
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
    cdt = _compute_dtype(logits.dtype)
    return logits.astype(cdt), labels.astype(cdt), logits.dtype, cdt


def weighted_sigmoid_cross_entropy(logits: ArrayLike, labels: ArrayLike, *,
                                   class_weights: ArrayLike | None = None,
                                   pos_weight: ArrayLike | None = None,
                                   where: ArrayLike | None = None) -> Array:
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
        labels: Targets of the same shape, in ``[0, 1]`` (binary or soft); any real or bool
            dtype, cast to the dtype of ``logits``. Values are not checked inside ``jit``.
        class_weights: Optional non-negative per-class weights ``w``, shape ``[num_classes]``.
            ``None`` means 1.
        pos_weight: Optional non-negative weight ``rho`` of the positive term, a scalar or shape
            ``[num_classes]``. ``None`` means 1. Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape``; masked elements give 0.

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
    z, y, dtype, cdt = _sigmoid_inputs(logits, labels)
    shape = z.shape
    w = _class_weight_vector(class_weights, shape[-1] if shape else 0, shape, cdt)
    pw = None
    if pos_weight is not None:
        _nonnegative(pos_weight, "pos_weight")
        pw = _hyper(pos_weight, "pos_weight", shape, cdt)
    mask = _mask(where, shape, "(`logits.shape`)")
    loss = _sigmoid_bce(z, y, pw)
    if w is not None:
        loss = w * loss
    return _apply_mask(loss, mask).astype(dtype)


def sigmoid_focal_loss(logits: ArrayLike, labels: ArrayLike, *, gamma: ArrayLike = 2.0,
                       alpha: ArrayLike | None = 0.25, class_weights: ArrayLike | None = None,
                       where: ArrayLike | None = None) -> Array:
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
        labels: Targets of the same shape in ``[0, 1]`` (binary or soft); any real or bool dtype.
            Values are not checked inside ``jit``.
        gamma: Focusing exponent, ``>= 0`` (default 2; 0 gives the cross-entropy). Traceable
            and differentiable; a scalar or broadcastable to ``logits``.
        alpha: Weight of the positive term in ``[0, 1]`` (default 0.25, RetinaNet's value);
            ``None`` disables it (equivalent to torchvision's ``alpha=-1``). Traceable.
        class_weights: Optional non-negative per-class weights, shape ``[num_classes]``.
        where: Optional boolean mask broadcastable to ``logits.shape``; masked elements give 0.

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
    z, y, dtype, cdt = _sigmoid_inputs(logits, labels)
    shape = z.shape
    g = _hyper(gamma, "gamma", shape, cdt, low=0.0)
    a = None if alpha is None else _hyper(alpha, "alpha", shape, cdt, low=0.0, high=1.0)
    w = _class_weight_vector(class_weights, shape[-1] if shape else 0, shape, cdt)
    mask = _mask(where, shape, "(`logits.shape`)")
    loss = jnp.exp(g * _log1m_pt(z, y)) * _sigmoid_bce(z, y)
    if a is not None:
        loss = (a * y + (1 - a) * (1 - y)) * loss
    if w is not None:
        loss = w * loss
    return _apply_mask(loss, mask).astype(dtype)


# ----------------------------------------------------------------------------------------
# Softmax losses.
# ----------------------------------------------------------------------------------------


def _softmax_targets(labels: Any, logits_shape: tuple[int, ...], cdt: Any) -> Array:
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    num_classes = logits_shape[-1]
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape != logits_shape[:-1]:
            hint = (" Integer labels are class ids; one-hot or soft targets must be floating."
                    if labels.shape == logits_shape else "")
            raise ValueError(
                f"Integer `labels` (class ids) must have shape `logits.shape[:-1]` = "
                f"{logits_shape[:-1]}, got {labels.shape}.{hint}")
        # Out-of-range ids (e.g. an ignore label of -100) select no class: mask them with
        # `where` to get 0.
        return jax.nn.one_hot(labels, num_classes, dtype=cdt)
    if jnp.issubdtype(labels.dtype, jnp.floating) or labels.dtype == jnp.bool_:
        if labels.shape != logits_shape:
            hint = (" Class ids must have an integer dtype."
                    if labels.shape == logits_shape[:-1] else "")
            raise ValueError(
                f"Floating `labels` (class probabilities) must have the shape of `logits` "
                f"{logits_shape}, got {labels.shape}.{hint}")
        return labels.astype(cdt)
    raise TypeError(f"`labels` must be integer class ids or real probabilities, got dtype "
                    f"{labels.dtype}.")


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


def _softmax_loss(logits: Any, labels: Any, gamma: Any, class_weights: Any,
                  label_smoothing: Any, where: Any) -> Array:
    logits = _logits(logits)
    dtype = logits.dtype
    cdt = _compute_dtype(dtype)
    z = logits.astype(cdt)
    shape = z.shape
    num_classes = shape[-1]
    q = _softmax_targets(labels, shape, cdt)
    hard = q > 0  # The label's class (used only for class ids without smoothing).
    class_ids = jnp.issubdtype(jnp.result_type(labels), jnp.integer)
    checks.check_scalar_range(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    smoothing = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    if smoothing:
        eps = _hyper(label_smoothing, "label_smoothing", shape[:-1], cdt)[..., None]
        q = (1 - eps) * q + eps / num_classes
    w = _class_weight_vector(class_weights, num_classes, shape, cdt)
    if w is not None:
        q = w * q
    mask = _mask(where, shape[:-1], "(`logits.shape[:-1]`)")
    g = None if gamma is None else _hyper(gamma, "gamma", shape[:-1], cdt, low=0.0)[..., None]
    zero = jnp.zeros((), cdt)
    if class_ids and not smoothing:
        # Hard labels: only the label's class enters the sum, so gather it (no per-class
        # exp/log1p; the cost of a plain cross-entropy). q here is w_y * onehot.
        coef = jnp.sum(q, axis=-1, keepdims=True)
        z_y = jnp.sum(jnp.where(hard, z, zero), axis=-1, keepdims=True)
        log_p = z_y - jax.nn.logsumexp(z, axis=-1, keepdims=True)
        if g is not None and num_classes > 1:
            is_max = _first_max(z)
            y_max = jnp.any(hard & is_max, axis=-1, keepdims=True)
            z_max = jnp.sum(jnp.where(is_max, z, zero), axis=-1, keepdims=True)
            coef = coef * jnp.exp(g * _log1m_softmax(z, log_p, y_max, z_max))
        loss = -(coef * log_p)[..., 0]
        return _apply_mask(loss, mask).astype(dtype)
    log_p = jax.nn.log_softmax(z, axis=-1)
    if g is not None and num_classes > 1:  # With one class p = 1 and log p = 0: no factor.
        is_max = _first_max(z)
        z_max = jnp.sum(jnp.where(is_max, z, zero), axis=-1, keepdims=True)
        q = q * jnp.exp(g * _log1m_softmax(z, log_p, is_max, z_max))
    loss = -jnp.sum(q * log_p, axis=-1)
    return _apply_mask(loss, mask).astype(dtype)


def weighted_softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *,
                                   class_weights: ArrayLike | None = None,
                                   label_smoothing: ArrayLike = 0.0,
                                   where: ArrayLike | None = None) -> Array:
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
        labels: Integer class ids of shape ``logits.shape[:-1]``, or floating class
            probabilities of shape ``logits.shape``. An out-of-range id selects no class (its
            loss is then only the smoothing term): mask ignored examples with ``where``.
        class_weights: Optional non-negative per-class weights, shape ``[num_classes]``.
        label_smoothing: ``eps`` in ``[0, 1]`` (default 0). Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0 (PyTorch's ``ignore_index``).

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating, or ``labels``/``where`` of the wrong dtype.
        ValueError: ``labels`` of the wrong shape, ``label_smoothing`` outside ``[0, 1]`` or
            negative ``class_weights`` (values checked when concrete).

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
    return _softmax_loss(logits, labels, None, class_weights, label_smoothing, where)


def softmax_focal_loss(logits: ArrayLike, labels: ArrayLike, *, gamma: ArrayLike = 2.0,
                       class_weights: ArrayLike | None = None, label_smoothing: ArrayLike = 0.0,
                       where: ArrayLike | None = None) -> Array:
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
            probabilities of shape ``logits.shape``.
        gamma: Focusing exponent ``>= 0`` (default 2). Traceable; a scalar or broadcastable to
            ``logits.shape[:-1]``.
        class_weights: Optional non-negative per-class weights, shape ``[num_classes]``.
        label_smoothing: ``eps`` in ``[0, 1]`` (default 0). Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0.

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
    return _softmax_loss(logits, labels, gamma, class_weights, label_smoothing, where)


# ----------------------------------------------------------------------------------------
# Reductions.
# ----------------------------------------------------------------------------------------


def example_weights(labels: ArrayLike, class_weights: ArrayLike, *,
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
    return _apply_mask(out, _mask(where, out.shape, "(the per-example shape)"))


def reduce_loss(losses: ArrayLike, *, reduction: str = "mean", weights: ArrayLike | None = None,
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
    cdt = _compute_dtype(dtype)
    x = losses.astype(cdt)
    mask = _mask(where, x.shape, "(`losses.shape`)")
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
        v = _broadcast(v.astype(cdt), x.shape, "weights", "(`losses.shape`)")
        den = jnp.sum(_apply_mask(v, mask))
    safe = jnp.where(den > 0, den, jnp.ones((), cdt))
    return jnp.where(den > 0, num / safe, zero).astype(dtype)
