"""The asymmetric loss (`asymmetric_loss`, Ridnik et al.) for multi-label classification."""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.losses import _inputs, _numerics
from jbalance._src.typing import Array, ArrayLike, Float, Num


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
    p, q = _numerics.sigmoid_pair(z)
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
        if not _numerics.is_zero(yd):  # Label derivatives: the general (soft-label) formula.
            cdt = zz.dtype
            args = [jnp.asarray(h, cdt) for h in hyper]
            return jax.jvp(lambda a, b: _asl_general(a, b, *args), (zz, yy),
                           (jnp.zeros_like(zz) if _numerics.is_zero(zd) else zd, yd))
        out, dz = _asl_cond(zz, yy, hyper, derivatives=True, binary=binary)
        return out, (jnp.zeros_like(out) if _numerics.is_zero(zd) else dz * zd)

    loss.defjvp(loss_jvp, symbolic_zeros=True)
    return loss(z, y)


def _asl_general(z: Array, y: Array, gp: Any, gn: Any, m: Any, eps: Any) -> Array:
    """ASL for soft labels and traced hyper-parameters, in log space.

    The hyper-parameters are arrays (traced) or Python floats (static, then a clip > 0 and an
    eps > 0 drop the branches that only guard the limits clip -> 0 and eps -> 0)."""
    cdt = z.dtype
    zero, one = jnp.zeros((), cdt), jnp.ones((), cdt)
    tiny = jnp.asarray(jnp.finfo(cdt).tiny, cdt)
    p, q = _numerics.sigmoid_pair(z)  # sigma(z), 1 - sigma(z), each to full relative precision
    # log max(p, eps); log max(min(q + m, 1), eps) with q + m > 0 (else log q itself).
    qm = jnp.minimum(q + m, one)
    if isinstance(eps, float) and isinstance(m, float) and eps > 0 and m > 0:
        log_pos = jnp.log(jnp.maximum(p, eps))
        log_neg = jnp.log(jnp.maximum(qm, eps))
    else:
        log_eps = jnp.log(jnp.asarray(eps, cdt))
        log_pos = jnp.maximum(_numerics.log_sigmoid(z), log_eps)
        pos_qm = qm > tiny
        log_neg = jnp.where(pos_qm, jnp.log(jnp.where(pos_qm, qm, one)), _numerics.log_sigmoid(-z))
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
    :math:`p_t = y\,p + (1 - y)(1 - p_m)`. Per element this is timm's
    ``AsymmetricLossMultiLabel(gamma_neg, gamma_pos, clip, eps, reduction="none")``; timm's
    default ``reduction="batchmean"`` is ``asymmetric_loss(...).sum() / batch_size`` and its
    ``"sum"`` (the original ASL reduction) is ``asymmetric_loss(...).sum()``. Probabilities come
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
    z, y, mask, dtype, cdt = _inputs.sigmoid_inputs(logits, labels, where)
    gp = _inputs.hyper(gamma_pos, "gamma_pos", (), cdt, low=0.0)
    gn = _inputs.hyper(gamma_neg, "gamma_neg", (), cdt, low=0.0)
    m = _inputs.hyper(clip, "clip", (), cdt, low=0.0, high=1.0)
    e = _inputs.hyper(eps, "eps", (), cdt, low=0.0, high=1.0, high_inclusive=False)
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
    return _inputs.apply_mask(loss, mask).astype(dtype)
