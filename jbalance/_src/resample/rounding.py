r"""Integer repeat counts from relaxed rates: group-preserving rounding and a greedy repair.

Pure JAX (``lax.while_loop`` over vectorised steps), so that the whole of `solve` runs
under ``jit`` and ``vmap`` without a host round trip.

1. Systematic rounding along the order (group key, rate): identical images get identical
   relaxed rates and sit in one contiguous run, whose total the rounding keeps to +-1. The
   running sum is kept in fixed point modulo 2^32 (exact for any number of images).
2. Repair: rounds of greedy +-1 moves, each of which lowers (guard violation, F)
   lexicographically. A round scores the best single move of every image against the
   current totals (vectorised), sorts the candidates, then walks the best ``per_round`` of
   them in order, re-scoring each against the totals updated by the moves accepted before
   it (a ``while_loop`` whose steps touch only one image's objects).
"""

from typing import Any

import jax
import jax.numpy as jnp

from jbalance._src.resample.problem import Full
from jbalance._src.resample.relax import class_loss
from jbalance._src.typing import Array

_FRAC_BITS = 24


def group_round(rates: Array, order: Array, max_repeat: int, min_repeat: int = 0) -> Array:
    """Systematic rounding along ``order``: every contiguous run keeps its total to +-1.

    ``order`` lists identical images next to each other (`problem.Full.order`), so every
    group of identical images keeps its total.
    """
    x = rates[order]
    base = jnp.floor(x)
    q_one = 1 << _FRAC_BITS
    q = jnp.clip(jnp.round((x - base) * q_one), 0, q_one).astype(jnp.uint32)
    half = jnp.uint32(q_one // 2)
    mask = jnp.uint32(q_one - 1)
    # (S_k + Q/2) mod Q with S_k the running sum; uint32 wraps modulo 2^32, a multiple of Q.
    rem = (jnp.cumsum(q, dtype=jnp.uint32) + half) & mask
    prev = jnp.concatenate([jnp.full((1,), half, jnp.uint32), rem[:-1]])
    inc = ((prev + q) >> jnp.uint32(_FRAC_BITS)).astype(jnp.int32)
    out = jnp.zeros(rates.shape, jnp.int32).at[order].set(base.astype(jnp.int32) + inc)
    return jnp.clip(out, min_repeat, max_repeat)


# Objects per block of the repair's scoring pass (see `repair`): a few MB of temporaries.
_BLOCK = 1 << 16


def object_block(length: int) -> int:
    """Static block size of the repair's pass over an object list of ``length`` entries:
    ``_BLOCK`` when it divides a long list (bucketed lengths above ``2**20`` are multiples
    of ``2**16``), else the whole list in one block."""
    return _BLOCK if length > 4 * _BLOCK and length % _BLOCK == 0 else length


def totals_of(full: Full, repeats: Array, num_classes: int) -> Array:
    """int32 ``[C]`` class totals ``s(r) = Y^T r`` over the full object list."""
    return jax.ops.segment_sum(full.vals * repeats[full.img], full.cls,
                               num_segments=num_classes)


def value(kind: str, s: Array, repeats: Array, target: Array, weight: Array, lam: Array,
          delta: Any) -> Array:
    """``F(r)`` from integer totals."""
    dtype = target.dtype
    per = class_loss(kind, s.astype(dtype), target, weight, jnp.asarray(delta, dtype))
    return jnp.sum(per) + lam * jnp.sum(jnp.abs(repeats.astype(dtype) - 1))


def repair(full: Full, r0: Array, target: Array, weight: Array, guard: Array, lam: Array, *,
           kind: str, delta: float, max_repeat: int, width: int, max_rounds: int = 200,
           per_round: int = 20000, min_repeat: int = 0) -> tuple[Array, Array]:
    """Greedy +-1 moves that lower (guard violation, F) lexicographically at every step.

    Returns the repaired repeats (int32 ``[N]``) and the number of rounds run.
    """
    dtype = target.dtype
    n = r0.shape[0]
    c_num = target.shape[0]
    k = min(per_round, n)
    lam = jnp.asarray(lam, dtype)
    d_arr = jnp.asarray(delta, dtype)
    eps = jnp.finfo(dtype).eps
    img, cls, vals = full.img, full.cls, full.vals
    rowlen = full.indptr[1:] - full.indptr[:-1]
    # Float noise of a move's score grows with the number of classes it touches.
    tol_img = 16 * eps * jnp.maximum(rowlen, 1).astype(dtype) * (1 + lam)

    def loss(c, s):
        return class_loss(kind, s.astype(dtype), target[c], weight[c], d_arr)

    def viol(c, s):
        return jnp.maximum(guard[c] - s.astype(dtype), 0)

    def img_term(r):
        return jnp.abs(r.astype(dtype) - 1)

    length = img.shape[0]
    block = object_block(length)

    def move_sums(s):
        """``[N, 4]`` per-image sums of (dF, dV) for +1 and for -1, block by block.

        Memory: the object list is walked in blocks of ``block`` objects, so that the
        per-object gathers and terms are ``[block]`` temporaries rather than ``[nnz]`` ones
        (which XLA would also hoist out of the repair loop and hold throughout).
        """
        def body(b, acc):
            lo = b * block
            c = jax.lax.dynamic_slice(cls, (lo,), (block,))
            v = jax.lax.dynamic_slice(vals, (lo,), (block,))
            i = jax.lax.dynamic_slice(img, (lo,), (block,))
            sc = s[c]
            base_f, base_v = loss(c, sc), viol(c, sc)
            sp, sm = sc + v, sc - v
            per = jnp.stack([loss(c, sp) - base_f, viol(c, sp) - base_v,
                             loss(c, sm) - base_f, viol(c, sm) - base_v], axis=1)
            return acc.at[i].add(per, indices_are_sorted=True)

        return jax.lax.fori_loop(0, length // block, body, jnp.zeros((n, 4), dtype))

    def one_round(carry):
        r, s, rounds, _ = carry
        sums = move_sums(s)
        scores = []
        for j, d in enumerate((1, -1)):
            df = sums[:, 2 * j] + lam * (img_term(r + d) - img_term(r))
            dv = sums[:, 2 * j + 1]
            bad = (r + d > max_repeat) | (r + d < min_repeat) | (rowlen == 0)
            scores.append((jnp.where(bad, jnp.inf, df), jnp.where(bad, jnp.inf, dv)))
        (fp, vp), (fm, vm) = scores
        pick_plus = (vp < vm) | ((vp == vm) & (fp <= fm))
        df = jnp.where(pick_plus, fp, fm)
        dv = jnp.where(pick_plus, vp, vm)
        good = (dv < -0.5) | ((dv <= 0.5) & (df < -tol_img))
        total = jnp.sum(good)
        ncand = jnp.minimum(total, k)
        key_f = jnp.where(good, df, jnp.inf)
        key_v = jnp.where(good, dv, jnp.inf)

        # Usually few images can improve: gather them (O(N), no sort of all N), then sort
        # only those. With more than `per_round` candidates, the first ones by index are
        # taken this round and the rest in the next rounds.
        few = jnp.nonzero(good, size=k, fill_value=0)[0]
        order = few[jnp.lexsort((key_f[few], key_v[few]))]
        step = jnp.where(pick_plus, 1, -1).astype(jnp.int32)
        lanes = jnp.arange(width)

        def walk_cond(st):
            pos, streak, accepted, _, _ = st
            return (pos < ncand) & (streak < 64 + accepted)

        def walk(st):
            # Each image appears once in `order`, so r[i] is still its value at the start
            # of the round: only the class totals and the accepted flags are carried.
            pos, streak, accepted, took, s = st
            i = order[pos]
            d = step[i]
            lo = full.indptr[i]
            on = lanes < rowlen[i]
            c = jax.lax.dynamic_slice(cls, (lo,), (width,))
            v = jnp.where(on, jax.lax.dynamic_slice(vals, (lo,), (width,)), 0)
            old = s[c]
            new = old + d * v
            ddv = jnp.sum(viol(c, new) - viol(c, old))
            ddf = jnp.sum(loss(c, new) - loss(c, old)) + lam * (img_term(r[i] + d)
                                                                - img_term(r[i]))
            ok = (ddv < -0.5) | ((ddv <= 0.5) & (ddf < -tol_img[i]))
            took = took.at[pos].set(ok)
            s = s.at[c].add(jnp.where(ok, d * v, 0))
            # Most later candidates were scored against totals that have moved since;
            # after a run of rejections it is cheaper to re-score everything.
            return (pos + 1, jnp.where(ok, 0, streak + 1), accepted + ok.astype(jnp.int32),
                    took, s)

        zero = jnp.zeros((), jnp.int32)
        took0 = jnp.zeros((k,), bool)
        _, _, accepted, took, s = jax.lax.while_loop(walk_cond, walk,
                                                     (zero, zero, zero, took0, s))
        r = r.at[order].add(jnp.where(took, step[order], 0))
        return r, s, rounds + 1, accepted > 0

    def cond(carry):
        _, _, rounds, going = carry
        return going & (rounds < max_rounds)

    s0 = totals_of(full, r0, c_num)
    r, _, rounds, _ = jax.lax.while_loop(cond, one_round,
                                         (r0, s0, jnp.zeros((), jnp.int32), jnp.asarray(True)))
    return r, rounds
