"""The asymmetric loss (`asymmetric_loss`, Ridnik et al.) for multi-label classification.

One formula, timm's, evaluated in log space. Its derivative with respect to the logits is
written out (a `jax.custom_jvp`) and computed beside the value, so XLA keeps no intermediate
terms for the backward pass; derivatives with respect to the labels or the hyper-parameters
come from autodiff of the same formula. It has two evaluations: for binary targets each
element needs the probability of its own side only (one ``log1p``; the focusing weight an
integer power when the gammas are Python whole numbers), while soft targets need both sides.
Float labels take the binary evaluation when all of them are 0 or 1, decided at run time.
The tests pin every evaluation to a float64 transcription of timm's formula, with the
hyper-parameters concrete and traced.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jbalance._src.losses import _inputs, _numerics
from jbalance._src.typing import Array, ArrayLike, Float, Num


def _sigmoid(z: Array) -> tuple[Array, Array, Array]:
    """``(t, p, q)``: t = exp(-|z|), p = sigmoid(z), q = sigmoid(-z), both to full precision."""
    one = jnp.ones((), z.dtype)
    t = jnp.exp(-jnp.abs(z))
    r = one / (1 + t)
    pos = z >= 0
    return t, jnp.where(pos, one, t) * r, jnp.where(pos, t, one) * r


def _soft(z: Array, y: Array, gp: Array, gn: Array, m: Array, eps: Array,
          derivative: bool = True) -> tuple[Array, Array | None]:
    """The loss (and d loss / dz) for any targets in [0, 1]."""
    cdt = z.dtype
    one, zero = jnp.ones((), cdt), jnp.zeros((), cdt)
    tiny = jnp.asarray(jnp.finfo(cdt).tiny, cdt)
    t, p, q = _sigmoid(z)
    l1p = jnp.log1p(t)
    log_p, log_q = jnp.minimum(z, zero) - l1p, jnp.minimum(-z, zero) - l1p
    log_eps = jnp.log(eps)
    pos_term = jnp.maximum(log_p, log_eps)  # log max(p, eps)
    # log max(min(q + m, 1), eps); with m = 0 it is log q, exact even where q underflows.
    mpos = m > 0
    clipped = mpos & (q + m < one)
    qm = jnp.where(clipped, q + m, one)
    neg_raw = jnp.where(mpos, jnp.log(qm), log_q)
    neg_term = jnp.maximum(neg_raw, log_eps)
    # Focusing weight (1 - p_t)^gamma, 1 - p_t = y q + (1 - y) max(p - m, 0), in log space
    # (0^0 = 1; a base below the smallest normal number counts as 0).
    pm = jnp.maximum(p - m, zero)
    base = y * q + (1 - y) * pm
    g = gn + (gp - gn) * y
    ok = base > tiny
    bs = jnp.where(ok, base, one)
    # Binary targets among soft ones: the exact log q (y = 1) and log p (y = 0, m = 0).
    log_base = jnp.where(y == 1, log_q, jnp.where((y == 0) & ~mpos, log_p, jnp.log(bs)))
    w = jnp.where(ok, jnp.exp(g * log_base), jnp.where(g == 0, one, zero))
    terms = y * pos_term + (1 - y) * neg_term
    out = -w * terms
    if not derivative:
        return out, None
    pq = p * q
    d_pos = jnp.where(log_p > log_eps, q, zero)
    # d neg_term / dz = -p q / (q + m) (clipped), -p (m = 0); times (q + m) here.
    d_neg = jnp.where(neg_raw > log_eps, jnp.where(mpos, jnp.where(clipped, -pq, zero), -p), zero)
    g_dbase = jnp.where(ok, g * pq * (jnp.where(p > m, 1 - y, zero) - y), zero)
    # dz = -(w g dbase / base * terms + w (y d_pos + (1 - y) d_neg / qm)); two divisions, so
    # that no product of two small numbers underflows.
    dz = -w * (g_dbase * terms / bs + (1 - y) * d_neg / qm + y * d_pos)
    return out, dz


def _binary(z: Array, y: Array, gp: Array, gn: Array, m: Array, eps: Array,
            powers: tuple[int | None, int | None]) -> tuple[Array, Array]:
    """The loss and d loss / dz for targets that are exactly 0 or 1."""
    cdt = z.dtype
    one, zero = jnp.ones((), cdt), jnp.zeros((), cdt)
    tiny = jnp.asarray(jnp.finfo(cdt).tiny, cdt)
    t, p, q = _sigmoid(z)
    pq = p * q
    pos = y > 0.5
    mpos = m > 0
    shifted = mpos & ~pos  # negatives whose probability is shifted by m
    inv_qm = one / jnp.where(shifted, q + m, one)
    pm = jnp.maximum(p - m, zero)
    # The log probability of each element's own side, from one log1p and without a 1 - x:
    # log p = min(z, 0) - log1p(t), log q = min(-z, 0) - log1p(t) (m = 0), and
    # log min(q + m, 1) = -log1p(max(p - m, 0) / (q + m)) (m > 0).
    l1 = jnp.log1p(jnp.where(shifted, pm * inv_qm, t))
    own = jnp.where(pos, jnp.minimum(z, zero), jnp.where(mpos, zero, jnp.minimum(-z, zero))) - l1
    log_eps = jnp.log(eps)
    term = jnp.maximum(own, log_eps)
    d_own = jnp.where(pos, q, jnp.where(mpos, jnp.where(p > m, -pq * inv_qm, zero), -p))
    d_term = jnp.where(own > log_eps, d_own, zero)
    # Focusing weights q^gp (positives) and max(p - m, 0)^gn (negatives), and their
    # derivatives, -gp p q^gp and gn pm^(gn - 1) p q [p > m].
    gp_int, gn_int = powers
    if gp_int is None:
        w_pos = jnp.exp(gp * (jnp.minimum(-z, zero) - l1))  # log q = min(-z, 0) - log1p(t)
    else:
        w_pos = jnp.ones_like(q) if gp_int == 0 else jax.lax.integer_pow(q, gp_int)
    dw_pos = -gp * p * w_pos
    if gn_int is None:
        ok = (pm > tiny) | ~mpos
        pm_safe = jnp.where(pm > tiny, pm, one)
        log_pm = jnp.where(mpos, jnp.log(pm_safe), jnp.minimum(z, zero) - l1)
        w_neg = jnp.where(ok, jnp.exp(gn * log_pm), jnp.where(gn == 0, one, zero))
        # pm^(gn - 1) p q = w pq / pm, and pq / p = q when m = 0.
        dw_neg = gn * w_neg * jnp.where(mpos, jnp.where((p > m) & ok, pq / pm_safe, zero), q)
    elif gn_int == 0:
        w_neg, dw_neg = jnp.ones_like(p), jnp.zeros_like(p)
    else:
        w_neg = jax.lax.integer_pow(pm, gn_int)
        dw_neg = (gn_int * jax.lax.integer_pow(pm, gn_int - 1)
                  * jnp.where(p > m, pq, zero))
    w = jnp.where(pos, w_pos, w_neg)
    dw = jnp.where(pos, dw_pos, dw_neg)
    return -w * term, -(dw * term + w * d_term)


def _parts(z: Array, y: Array, gp: Array, gn: Array, m: Array, eps: Array,
           powers: tuple[int | None, int | None], labels: str) -> tuple[Array, Array]:
    if labels == "binary":
        return _binary(z, y, gp, gn, m, eps, powers)
    # Float labels: the binary evaluation if every label is 0 or 1 (under vmap both run).
    return jax.lax.cond(jnp.all((y == 0) | (y == 1)),
                        functools.partial(_binary, powers=powers), _soft,
                        z, y, gp, gn, m, eps)


def _value(z: Array, y: Array, gp: Array, gn: Array, m: Array, eps: Array) -> Array:
    return _soft(z, y, gp, gn, m, eps, derivative=False)[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(6, 7))
def _asl(z: Array, y: Array, gp: Array, gn: Array, m: Array, eps: Array,
         powers: tuple[int | None, int | None], labels: str) -> Array:
    return _parts(z, y, gp, gn, m, eps, powers, labels)[0]


def _asl_jvp(powers: Any, labels: str, primals: Any, tangents: Any) -> Any:
    if any(not _numerics.is_zero(t) for t in tangents[1:]):
        # Label or hyper-parameter derivatives: autodiff of the formula itself.
        tangents = tuple(jnp.zeros_like(x) if _numerics.is_zero(t) else t
                         for x, t in zip(primals, tangents))
        return jax.jvp(_value, primals, tangents)
    out, dz = _parts(*primals, powers, labels)
    zd = tangents[0]
    return out, (jnp.zeros_like(out) if _numerics.is_zero(zd) else dz * zd)


_asl.defjvp(_asl_jvp, symbolic_zeros=True)


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
    :math:`p_t = y\,p + (1 - y)(1 - p_m)`. Per element this is timm's
    ``AsymmetricLossMultiLabel(gamma_neg, gamma_pos, clip, eps, reduction="none")``; timm's
    default ``reduction="batchmean"`` is ``asymmetric_loss(...).sum() / batch_size`` and its
    ``"sum"`` (the original ASL reduction) is ``asymmetric_loss(...).sum()``. Probabilities come
    from an exact two-sided sigmoid and the focusing weight from bounded quantities, so
    values and gradients are finite for any logits (timm's ``1 - sigmoid`` rounds to 0 from
    ``z ~ 17`` in float32), and log probabilities come from ``log1p`` (no ``1 - x``
    cancellation), so easy negatives and easy positives keep their small losses and gradients
    to full relative precision. Gradients flow through the focusing weight (timm's default
    ``disable_torch_grad_focal_loss=False``). Binary targets (bool or integer labels, or
    float labels that are all 0 or 1) take a cheaper evaluation of the same formula; see
    ``docs/losses.md``.

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
    z, y, mask, dtype, cdt = _inputs.sigmoid_inputs(logits, labels, where)
    gp = _inputs.hyper(gamma_pos, "gamma_pos", (), cdt, low=0.0)
    gn = _inputs.hyper(gamma_neg, "gamma_neg", (), cdt, low=0.0)
    m = _inputs.hyper(clip, "clip", (), cdt, low=0.0, high=1.0)
    e = _inputs.hyper(eps, "eps", (), cdt, low=0.0, high=1.0, high_inclusive=False)
    powers = (_inputs.static_int(gamma_pos), _inputs.static_int(gamma_neg))
    label_dtype = jnp.result_type(labels)
    binary = label_dtype == jnp.bool_ or jnp.issubdtype(label_dtype, jnp.integer)
    loss = _asl(z, y, gp, gn, m, e, powers, "binary" if binary else "float")
    return _inputs.apply_mask(loss, mask).astype(dtype)
