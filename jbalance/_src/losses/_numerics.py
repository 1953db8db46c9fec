"""Stable sigmoid building blocks, with derivative rules (`jax.custom_jvp`) written in
bounded quantities.

Each block shares ``t = exp(-|z|)`` and ``log1p(t)``, so after XLA's common-subexpression
elimination a loss made of them costs a handful of transcendental functions per element.
Derivative rules use only quantities in ``[0, 1]`` (``p``, ``q``, ``r``; never
``1 / (1 - p_t)``) and call the same blocks again, so derivatives of every order stay finite
for logits of any magnitude. Every rule is tested against autodiff of the textbook formula.
"""

from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jbalance._src.typing import Array


def is_zero(t: Any) -> bool:
    """True for a symbolic-zero tangent (`custom_jvp` with ``symbolic_zeros=True``)."""
    return isinstance(t, SymbolicZero)


def exp_abs(z: Array) -> tuple[Array, Array]:
    """``(t, log1p(t))`` with ``t = exp(-|z|)`` in ``(0, 1]``."""
    t = jnp.exp(-jnp.abs(z))
    return t, jnp.log1p(t)


@jax.custom_jvp
def sigmoid_pair(z: Array) -> tuple[Array, Array]:
    """(sigmoid(z), sigmoid(-z)), both to full relative precision."""
    t, _ = exp_abs(z)
    one = jnp.ones((), z.dtype)
    return jnp.where(z >= 0, one, t) / (1 + t), jnp.where(z >= 0, t, one) / (1 + t)


@sigmoid_pair.defjvp
def _sigmoid_pair_jvp(primals, tangents):
    (z,), (zd,) = primals, tangents
    p, q = sigmoid_pair(z)
    t, _ = exp_abs(z)
    pq = t / jnp.square(1 + t)  # = p * q for either sign of z, no cancellation.
    return (p, q), (pq * zd, -pq * zd)


@jax.custom_jvp
def softplus_pair(z: Array) -> tuple[Array, Array]:
    """(softplus(z), softplus(-z)) = (-log(1 - p), -log p), each a sum of non-negative terms.

    ``max(+-z, 0) + log1p(exp(-|z|))``: no cancellation for any z, so an easy negative
    (z << 0, label 0) keeps its loss ``~exp(z)`` to full relative precision; the textbook
    ``(1 - y) z - log_sigmoid(z)`` rounds it to 0 below z ~ -17 in float32. The derivatives
    are ``(p, -q)``, both exact (also at z = 0, where ``|z|`` has a kink).
    """
    _, l1p = exp_abs(z)
    zero = jnp.zeros((), z.dtype)
    return jnp.maximum(z, zero) + l1p, jnp.maximum(-z, zero) + l1p


@softplus_pair.defjvp
def _softplus_pair_jvp(primals, tangents):
    (z,), (zd,) = primals, tangents
    p, q = sigmoid_pair(z)
    return softplus_pair(z), (p * zd, -q * zd)


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
def log1m_pt(z: Array, y: Array) -> Array:
    """log(1 - p_t) with p_t = y p + (1 - y)(1 - p): finite for every finite z."""
    t, l1p = exp_abs(z)
    w = _focal_w(z, y, t)
    pos = w > 0
    # Where w underflows (y is exactly 0 or 1) it equals t, and log t = -|z| exactly.
    log_w = jnp.where(pos, jnp.log(jnp.where(pos, w, jnp.ones((), w.dtype))), -jnp.abs(z))
    return log_w - l1p


def _log1m_pt_jvp(primals, tangents):
    (z, y), (zd, yd) = primals, tangents
    out = log1m_pt(z, y)
    tangent = jnp.zeros_like(out)
    if not is_zero(zd):
        # d log m / dz = (1 - 2y) p q / m = (1 - 2y) r, with 0 <= r <= 1.
        tangent = tangent + (1 - 2 * y) * focal_ratio(z, y) * zd
    if not is_zero(yd):
        t, _ = exp_abs(z)
        tangent = tangent + _y_factor(z, y, t, _focal_w(z, y, t)) * yd
    return out, tangent


log1m_pt.defjvp(_log1m_pt_jvp, symbolic_zeros=True)


@jax.custom_jvp
def focal_ratio(z: Array, y: Array) -> Array:
    """r = p q / (1 - p_t), which lies in [0, 1] (1 - p_t is between p and q)."""
    t, _ = exp_abs(z)
    w = _focal_w(z, y, t)
    pos = w > 0
    # r = t / ((1 + t) w); when w underflows it equals t, so t / w -> 1.
    ratio = jnp.where(pos, t / jnp.where(pos, w, jnp.ones((), w.dtype)), jnp.ones((), w.dtype))
    return ratio / (1 + t)


def _focal_ratio_jvp(primals, tangents):
    (z, y), (zd, yd) = primals, tangents
    r = focal_ratio(z, y)
    p, q = sigmoid_pair(z)
    tangent = jnp.zeros_like(r)
    if not is_zero(zd):
        # dr/dz = r (q - p) - (1 - 2y) r^2: polynomial in bounded quantities.
        tangent = tangent + (r * (q - p) - (1 - 2 * y) * jnp.square(r)) * zd
    if not is_zero(yd):
        t, _ = exp_abs(z)
        tangent = tangent - r * _y_factor(z, y, t, _focal_w(z, y, t)) * yd
    return r, tangent


focal_ratio.defjvp(_focal_ratio_jvp, symbolic_zeros=True)
