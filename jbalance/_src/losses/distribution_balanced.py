"""The distribution-balanced loss (`distribution_balanced_loss`) of Wu et al. for long-tailed
multi-label classification: re-balancing weights plus negative-tolerant regularisation,
elementwise, written from the paper's equations and built from stable
log-sigmoids."""

import jax
import jax.numpy as jnp

from jbalance._src import checks
from jbalance._src.losses import _inputs, _numerics
from jbalance._src.typing import ArrayLike, Float, Num


def distribution_balanced_loss(logits: Float[" *batch c"], labels: Num[" *batch c"], *,
                               counts: Num[" c"], num_examples: ArrayLike,
                               alpha: ArrayLike = 0.1, beta: ArrayLike = 10.0,
                               mu: ArrayLike = 0.3, kappa: ArrayLike = 0.05,
                               lam: ArrayLike = 5.0, gamma: ArrayLike = 2.0,
                               where: ArrayLike | None = None) -> Float[" *batch c"]:
    r"""Distribution-balanced loss (Wu et al., ECCV 2020) for long-tailed multi-label data.

    Two corrections to a sigmoid loss. *Re-balanced weighting*: class-aware resampling draws
    an example once per positive label, over-sampling the head classes that co-occur with
    rare ones; the weight :math:`\hat r` is the ratio of the class's intended sampling
    probability to the example's actual one, smoothed. *Negative-tolerant regularisation*:
    a class-specific bias :math:`\nu_c` (from the prior) and a scale :math:`\lambda` on the
    negative logits stop the many negatives of a rare class from over-suppressing it.

    .. math::
      r_{\dots c} = \frac{1/n_c}{\sum_{j:\, y_j = 1} 1/n_j}, \quad
      \hat r = \alpha + \sigma(\beta (r - \mu)), \quad
      \nu_c = -\kappa \log\left(\frac{1}{p_c} - 1\right),\; p_c = \frac{n_c}{N}

    .. math::
      \ell = \hat r \left[ y\, (1 - q^+)^\gamma (-\log q^+)
          + (1 - y)\, \frac{1}{\lambda} (q^-)^\gamma (-\log(1 - q^-)) \right], \quad
      q^+ = \sigma(z - \nu),\; q^- = \sigma(\lambda (z - \nu))

    for each element, with the sum in :math:`r` over the example's positive classes (the
    last axis; soft labels weight each class by :math:`y_j`). :math:`\hat r` multiplies the
    negative terms too, as in the paper. Everything is computed in log space
    (:math:`\log q^\pm`, :math:`\log(1 - q^\pm)` as log-sigmoids), so values and gradients are
    finite for any logits and every ``gamma >= 0``.

    Conventions. An example without positives (no class with :math:`y > 0` on its last axis)
    is never drawn by class-aware sampling; its ratio is the limit :math:`r \to \infty` of
    the formula, :math:`\hat r = \alpha + 1`. Zero counts and counts equal to
    ``num_examples`` would make :math:`\nu_c` infinite: :math:`n_c` is clipped to
    ``[1/2, num_examples - 1/2]`` (half an example, the rule of `log_prior`) in both
    :math:`p_c` and :math:`r`. :math:`r` is a statistic of the labels (no gradient flows
    to ``labels`` through it). Masked elements (``where=``) are not positives.

    Args:
        logits: Unnormalised scores ``[..., num_classes]``, floating (rank >= 1).
        labels: Targets of the same shape in ``[0, 1]`` (binary or soft).
        counts: Positive training examples per class ``[num_classes]``, finite, ``>= 0``.
        num_examples: Number of training examples :math:`N`, finite, ``>= 1`` and ``>=`` every
            count.
            Traceable.
        alpha: Offset of :math:`\hat r` (default 0.1), finite. Traceable.
        beta: Slope of :math:`\hat r` (default 10), finite. Traceable.
        mu: Centre of :math:`\hat r` (default 0.3), finite. Traceable.
        kappa: Scale of the class bias :math:`\nu`, ``>= 0`` (default 0.05). Traceable.
        lam: Scale of the negative logits, ``> 0`` (default 5). Traceable.
        gamma: Focusing exponent, ``>= 0`` (default 2; 0 gives plain re-weighted BCE terms).
            Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape``; masked elements give
            0 loss and 0 gradient.

    Returns:
        Losses of shape ``logits.shape`` and dtype ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating, ``where`` not boolean.
        ValueError: shape mismatches; labels outside ``[0, 1]``; negative or non-finite
            ``counts``; ``num_examples`` below a count (or not finite, or ``< 1``); a
            hyper-parameter out of range. Values are checked eagerly and under
            `jbalance.checks.checked`.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.distribution_balanced_loss(
        ...     jnp.array([[2.0, -1.0, 0.5]]), jnp.array([[1.0, 0.0, 1.0]]),
        ...     counts=jnp.array([80, 15, 5]), num_examples=100)
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [[0.0004 0.     0.0546]]

    References:
        Wu et al., `Distribution-Balanced Loss for Multi-Label Classification in
        Long-Tailed Datasets <https://arxiv.org/abs/2007.09654>`_, ECCV 2020.

    .. versionadded:: 0.3.0
    """
    logits = _inputs.logits_array(logits, min_rank=1)
    z, y, mask, dtype, cdt = _inputs.sigmoid_inputs(logits, labels, where)
    shape = z.shape
    num_classes = shape[-1]
    n = _inputs.counts_vector(counts, num_classes)
    checks.check_real(num_examples, "num_examples")
    checks.check_hyper(num_examples, "num_examples", low=1.0)
    big_n = jnp.asarray(num_examples).astype(cdt)
    checks.require(big_n >= n.astype(cdt),
                   "`num_examples` must be >= every entry of `counts` (a class cannot have "
                   "more positive examples than there are examples).")
    h = {name: _inputs.hyper(v, name, shape, cdt, low=low, low_inclusive=inc)
         for name, v, low, inc in (("alpha", alpha, None, True), ("beta", beta, None, True),
                                   ("mu", mu, None, True), ("kappa", kappa, 0.0, True),
                                   ("lam", lam, 0.0, False), ("gamma", gamma, 0.0, True))}
    half = jnp.asarray(0.5, cdt)
    nc = jnp.clip(n.astype(cdt), half, jnp.maximum(big_n - half, half))
    # Re-balancing weight: a statistic of the labels.
    inv = jnp.broadcast_to(1 / nc, shape)
    total = jnp.sum(jnp.where(y > 0, y, jnp.zeros((), cdt)) * inv, axis=-1, keepdims=True)
    has_pos = total > 0
    r = inv / jnp.where(has_pos, total, jnp.ones((), cdt))
    r_hat = h["alpha"] + jnp.where(
        has_pos, _numerics.sigmoid_pair(h["beta"] * (r - h["mu"]))[0], jnp.ones((), cdt))
    r_hat = jax.lax.stop_gradient(r_hat)
    # nu_c = -kappa log(1/p - 1) = kappa (log n_c - log(N - n_c)).
    nu = h["kappa"] * jnp.broadcast_to(jnp.log(nc) - jnp.log(big_n - nc), shape)
    u = z - nu
    v = h["lam"] * u
    g = h["gamma"]
    # -log q+ = softplus(-u), -log(1 - q+) = softplus(u) (and likewise for q- at v): sums of
    # non-negative terms, so the focal factors exp(-g softplus) and their derivatives stay
    # finite and exact for any logits.
    pos = jnp.exp(-g * jax.nn.softplus(u)) * jax.nn.softplus(-u)
    neg = jnp.exp(-g * jax.nn.softplus(-v)) * jax.nn.softplus(v) / h["lam"]
    loss = r_hat * (y * pos + (1 - y) * neg)
    return _inputs.apply_mask(loss, mask).astype(dtype)
