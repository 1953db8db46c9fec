"""Long-tail softmax losses that shift or scale the logits by class: logit adjustment
(`adjust_logits`, `logit_adjusted_cross_entropy`), the balanced softmax
(`balanced_softmax_cross_entropy`) and LDAM (`ldam_margins`, `ldam_loss`)."""

from typing import Any

import jax
import jax.numpy as jnp

from jbalance._src import checks
from jbalance._src.losses import _inputs
from jbalance._src.losses.softmax import softmax_core
from jbalance._src.losses.weights import log_prior_of
from jbalance._src.typing import Array, ArrayLike, DTypeLike, Float, Num


def _prior_vector(log_prior: Any, num_classes: int, cdt: Any) -> Array:
    lp = jnp.asarray(checks.check_array(log_prior, "log_prior"))
    checks.check_real(lp, "log_prior")
    if lp.shape != (num_classes,):
        raise ValueError(f"`log_prior` must have shape ({num_classes},) (one value per class, "
                         f"e.g. `log_prior(counts)`), got {lp.shape}.")
    checks.check_finite(lp, "log_prior", "Build it with `losses.log_prior(counts)`, which "
                        "gives zero counts a finite value.")
    return lp.astype(cdt)


def _tau(tau: Any, batch_shape: tuple[int, ...], cdt: Any) -> Array:
    return _inputs.hyper(tau, "tau", batch_shape, cdt)[..., None]


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
    logits = _inputs.logits_array(logits)
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
    z, t, dtype, cdt = _inputs.softmax_inputs(logits, labels, where, ignore_index)
    lp = _prior_vector(log_prior, z.shape[-1], cdt)
    tt = _tau(tau, z.shape[:-1], cdt)
    w = _inputs.class_weights_1d(class_weights, z.shape[-1], z.shape)
    loss = softmax_core(z, t, weights=None if w is None else w.astype(cdt),
                        label_smoothing=label_smoothing,
                        adjust=lambda x: x + tt * jnp.broadcast_to(lp, x.shape))
    return _inputs.finish(loss, t, dtype)


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
    z, t, dtype, cdt = _inputs.softmax_inputs(logits, labels, where, ignore_index)
    lp = log_prior_of(_inputs.counts_vector(counts, z.shape[-1]).astype(cdt))
    w = _inputs.class_weights_1d(class_weights, z.shape[-1], z.shape)
    loss = softmax_core(z, t, weights=None if w is None else w.astype(cdt),
                        label_smoothing=label_smoothing,
                        adjust=lambda x: x + jnp.broadcast_to(lp, x.shape))
    return _inputs.finish(loss, t, dtype)


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
    counts = _inputs.counts_vector(counts)
    dtype = _inputs.float_dtype(counts, dtype)
    cdt = checks.compute_dtype(dtype)
    margin = _inputs.hyper(max_margin, "max_margin", (), cdt, low=0.0)
    return _ldam_margins(counts.astype(cdt), margin).astype(dtype)


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
    z, t, dtype, cdt = _inputs.softmax_inputs(logits, labels, where, ignore_index,
                                              ids_only="`ldam_loss`")
    margins = _ldam_margins(_inputs.counts_vector(counts, z.shape[-1]).astype(cdt),
                            _inputs.hyper(max_margin, "max_margin", (), cdt, low=0.0))
    s = _inputs.hyper(scale, "scale", z.shape[:-1], cdt, low=0.0, low_inclusive=False)[..., None]
    w = _inputs.class_weights_1d(class_weights, z.shape[-1], z.shape)
    zero = jnp.zeros((), cdt)
    # s (z - m_y e_y) differs from s z only at the label: the loss is
    # log(sum_{j != y} e_j + e_y') - log e_y' with e = exp(s (z - c)) and the label's term
    # e_y' = exp(s (z_y - m_y - c)), a per-example factor, never a second pass over the
    # classes. The shift c is the largest *adjusted* logit (the label's margin included), so
    # every exponent is <= 0 and one of them is 0: exact for any scale and margin.
    m_y = _inputs.take(margins, t.ids)[..., None]
    z_y = jnp.take_along_axis(z, t.ids[..., None], axis=-1, mode="clip")
    a_y = z_y - m_y
    others = jnp.max(jnp.where(t.hit, jnp.asarray(-jnp.inf, cdt), z), axis=-1, keepdims=True)
    c = jax.lax.stop_gradient(jnp.maximum(others, a_y))
    e = jnp.exp(s * (z - c))
    sum_o = jnp.sum(jnp.where(t.hit, zero, e), axis=-1, keepdims=True)
    d_y = s * (a_y - c)
    nll = jnp.log(sum_o + jnp.exp(d_y)) - d_y
    if w is not None:
        nll = _inputs.take(w.astype(cdt), t.ids)[..., None] * nll
    return _inputs.finish(nll[..., 0], t, dtype)
