"""Class weights and priors from class counts: `class_weights`, `log_prior`, and the
deferred re-weighting schedule of LDAM-DRW (`deferred_reweighting`)."""

from typing import Any

import jax
import jax.numpy as jnp

from jbalance._src import checks
from jbalance._src.losses import _inputs
from jbalance._src.typing import Array, ArrayLike, DTypeLike, Float, Num

METHODS = ("inverse", "inverse_sqrt", "effective_number", "balanced")
NORMALIZE = ("samples", "classes", "none")
ZERO_COUNT = ("max", "zero")


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
    checks.check_one_of(method, METHODS, "method")
    checks.check_one_of(normalize, NORMALIZE, "normalize")
    checks.check_one_of(zero_count, ZERO_COUNT, "zero_count")
    counts = jnp.asarray(checks.check_array(counts, "counts"))
    checks.check_real(counts, "counts")
    checks.check_rank(counts, 1, "counts", "[num_classes]")
    _inputs.nonnegative(counts, "counts")
    checks.check_real(beta, "beta")
    checks.check_hyper(beta, "beta", low=0.0, high=1.0, high_inclusive=False)
    dtype = _inputs.float_dtype(counts, dtype)
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


def log_prior_of(n: Array) -> Array:
    """`log_prior` of counts ``n`` already in the compute dtype (zero counts: half the
    smallest positive count)."""
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
    counts = _inputs.counts_vector(counts)
    dtype = _inputs.float_dtype(counts, dtype)
    return log_prior_of(counts.astype(checks.compute_dtype(dtype))).astype(dtype)


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
        TypeError, ValueError: as `class_weights` for ``counts`` and ``beta``; negative or
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
    counts = _inputs.counts_vector(counts)
    checks.check_real(start_step, "start_step")
    checks.check_hyper(start_step, "start_step", low=0.0)
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
