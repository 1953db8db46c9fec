"""Array pieces shared by the augmentations: the blend, exact fractions, partner gathers, and
the `jax.shard_map` varying-axes cast that every loop-carried buffer goes through."""

import jax
import jax.numpy as jnp
from jax import lax

from jbalance._src import checks
from jbalance._src.typing import Array


def _blend(x: Array, y: Array, lam: Array, partner_weight: Array | None = None) -> Array:
    """``lam * x + (1 - lam) * y`` in ``x.dtype``; integers are rounded and clipped.

    ``partner_weight`` replaces ``1 - lam`` when the caller knows it exactly (CutMix's
    pasted fraction), so a one-hot partner gets exactly that weight.
    """
    cdt = checks.compute_dtype(x.dtype)
    lam = lam.astype(cdt)
    other = jnp.ones((), cdt) - lam if partner_weight is None else partner_weight.astype(cdt)
    out = lam * x.astype(cdt) + other * y.astype(cdt)
    if jnp.issubdtype(x.dtype, jnp.integer):
        info = jnp.iinfo(x.dtype)
        out = jnp.clip(jnp.round(out), info.min, info.max)
    return out.astype(x.dtype)


def _exact_fraction(count: Array, total: int) -> Array:
    """``count / total`` in float32, correctly rounded.

    XLA rewrites a division by a (broadcast) constant into a multiplication by its
    reciprocal, which can be one ulp off. A denominator that depends on the data (the
    select never takes its first branch, as counts are non-negative) keeps a true IEEE
    division, so label weights equal pasted-pixel fractions exactly, also under `vmap`.
    """
    denom = jnp.where(count < 0, jnp.int32(1), jnp.int32(total)).astype(jnp.float32)
    return count.astype(jnp.float32) / lax.optimization_barrier(denom)


def _take(x: Array, idx: Array) -> Array:
    """Rows ``idx`` of ``x`` (partners, tile sources); indices are in range by construction."""
    return jnp.take(x, idx, axis=0, mode="clip")


def _mix_labels(labels: Array, weights: Array) -> Array:
    """``sum_t weights[..., t] * labels[..., t, :]`` in the labels' dtype."""
    cdt = checks.compute_dtype(labels.dtype)
    out = jnp.einsum("...t,...tk->...k", weights.astype(cdt), labels.astype(cdt))
    return out.astype(labels.dtype)


# --------------------------------------------------------------------------------------------
# shard_map: loop carries must vary over the mesh axes of what updates them.


def _vary_like(carry: Array, *operands: Array) -> Array:
    """``carry`` marked as varying over the `jax.shard_map` mesh axes ``operands`` vary over.

    A loop carry must keep its type, so a carry that starts unvarying (a fresh canvas, or a
    replicated batch) but is updated from varying values (a key folded by the device index)
    is cast first. Outside `shard_map` nothing varies and ``carry`` is returned as is.
    """
    axes = tuple(a for a in _varying_axes(*operands) if a not in _varying_axes(carry))
    return lax.pcast(carry, axes, to="varying") if axes else carry


def _varying_axes(*xs: Array) -> tuple[str, ...]:
    """Mesh axes any of ``xs`` varies over inside `shard_map` (empty outside)."""
    axes: set[str] = set()
    for x in xs:
        aval = jax.typeof(x)
        mat = getattr(aval, "mat", None)  # earlier jax releases spell it ``aval.vma``
        axes |= set(getattr(mat, "varying", None) or getattr(aval, "vma", None) or ())
    return tuple(sorted(axes))
