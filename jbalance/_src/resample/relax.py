r"""The relaxed problem: a primal-dual (Chambolle-Pock) iteration, or projected optax steps.

Everything here is pure JAX: one ``lax.scan`` over the steps, class totals as a
``segment_sum`` over the object list (one ``psum`` when the list is sharded under
``shard_map``), the certified lower bound from the dual iterate. It works under ``jit``,
``vmap`` (over ``lam``) and ``grad``.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jbalance._src.resample.problem import _SHARDED, Data
from jbalance._src.typing import Array

# Immutable default: one optimizer object, so repeated solves reuse one compiled program.
DEFAULT_OPTIMIZER = optax.adam(0.05)


class Relaxed(NamedTuple):
    r"""Result of the relaxed solver (`jbalance.resample.relax`).

    Attributes:
      rates: float ``[N]``, relaxed repeat rates in ``[min_repeat, max_repeat]``.
      history: float ``[num_steps]``, the relaxed objective after every step.
      objective: float, the relaxed objective of ``rates`` (the guard is not counted).
      lower_bound: float, a certified lower bound on the relaxed optimum (``"l1"`` only,
        NaN otherwise).
      target: float ``[C]``, target totals ``T_c`` (0 for ignored classes).
      guard: float ``[C]``, guaranteed minimum totals ``min(s_c(1), floor(T_c))``.
      lam: float, the trade-off weight used.
    """

    rates: Array
    history: Array
    objective: Array
    lower_bound: Array
    target: Array
    guard: Array
    lam: Array


class _State(NamedTuple):
    rates: Array     # [G]
    dual: Array      # [C]
    totals: Array    # [C], s(rates)
    best_lb: Array   # []


def _psum(x: Array, axis_name: str | None) -> Array:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _soft(x: Array, t: Array) -> Array:
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0)


def _totals(rates: Array, data: Data, axis_name: str | None) -> Array:
    # s = Y^T r as a gather + segment_sum over the object list (rather than a dense Y @ r:
    # the list is what is stored); under sharding each device sums its own images, then
    # one psum.
    local = jax.ops.segment_sum((rates * data.mult)[data.img] * data.vals, data.cls,
                                num_segments=data.target.shape[0])
    return _psum(local, axis_name)


def _l1_value(rates: Array, totals: Array, data: Data, lam: Array,
              axis_name: str | None) -> Array:
    img_term = _psum(jnp.sum(data.mult * jnp.abs(rates - 1)), axis_name)
    return jnp.sum(data.weight * jnp.abs(data.target - totals)) + lam * img_term


def _report(progress: Callable[[int, Any], Any] | None, every: int, num_steps: int,
            i: Array, value: Array) -> None:
    """Calls ``progress(step, value)`` on the host every ``every`` steps (and at the end)."""
    if progress is None:
        return
    step = i + 1
    hit = (step % every == 0) | (step == num_steps)

    def call(v):
        jax.debug.callback(lambda s, x: progress(int(s), x), step, v)

    jax.lax.cond(hit, call, lambda v: None, value)


def pdhg(data: Data, lam: Array, max_repeat: int, step_ratio: Array, *, num_steps: int,
         axis_name: str | None, progress: Any = None, progress_every: int = 50,
         min_repeat: int = 0) -> tuple[_State, Array]:
    r"""``num_steps`` Chambolle-Pock steps on the exact L1 LP with diagonal preconditioning.

    Primal: ``r <- clip(1 + soft(r - tau K^T y - 1, tau lam), m, M)`` (the prox of
    ``lam |r - 1|`` plus the box ``[m, M]``, ``m = min_repeat``). Dual: the prox of
    ``sigma G*`` where ``G`` is the weighted L1 distance to ``T`` plus the guard ``s >= g``;
    in closed form
    ``a = v - sigma T``, ``b = v - sigma g``, ``y = min(w, a if a >= -w else min(b, -w))``.
    Steps ``tau_i = eta / sum_c Y_ic`` and ``sigma_c = 1 / (eta n_c)`` (Pock & Chambolle
    2011, alpha = 1) need no norm estimate. The dual iterate certifies a lower bound.
    """
    dtype = data.vals.dtype
    lam = jnp.asarray(lam, dtype)
    m = jnp.asarray(max_repeat, dtype)
    m0 = jnp.asarray(min_repeat, dtype)
    eta = jnp.asarray(step_ratio, dtype)
    tau = eta * data.inv_row
    sigma = data.inv_col / eta
    n = data.inv_row.shape[0]
    c = data.target.shape[0]
    # Built from a per-image array so that, under shard_map, it is device-varying like the
    # iterates (a constant would be replicated and the scan carry types would differ).
    rates0 = data.inv_row * 0 + 1
    state = _State(rates=rates0, dual=jnp.zeros((c,), dtype),
                   totals=_totals(rates0, data, axis_name),
                   best_lb=jnp.asarray(-jnp.inf, dtype))

    def step(st: _State, i):
        kty = jax.ops.segment_sum(st.dual[data.cls] * data.vals, data.img, num_segments=n,
                                  indices_are_sorted=True)
        # Certified bound from the current dual point: -f*(-K^T y) - G*(y), where f* of
        # lam|r-1| + box[m0, M] is the max over the vertices r in {m0, 1, M}.
        z = -kty
        low = m0 * z - lam * (1 - m0)
        fstar = _psum(jnp.sum(data.mult * jnp.maximum(jnp.maximum(low, z),
                                                      m * z - lam * (m - 1))), axis_name)
        gstar = jnp.sum(st.dual * data.target
                        + (data.target - data.guard) * jnp.maximum(-st.dual - data.weight, 0))
        lb = -fstar - gstar
        x = st.rates - tau * kty
        rates = jnp.clip(1 + _soft(x - 1, tau * lam), m0, m)
        totals = _totals(rates, data, axis_name)
        v = st.dual + sigma * (2 * totals - st.totals)
        a = v - sigma * data.target
        b = v - sigma * data.guard
        dual = jnp.minimum(data.weight, jnp.where(a >= -data.weight, a,
                                                  jnp.minimum(b, -data.weight)))
        value = _l1_value(rates, totals, data, lam, axis_name)
        _report(progress, progress_every, num_steps, i, value)
        return _State(rates, dual, totals, jnp.maximum(st.best_lb, lb)), value

    return jax.lax.scan(step, state, jnp.arange(num_steps))


def class_loss(kind: str, s: Array, target: Array, weight: Array, delta: Any,
               xp: Any = jnp) -> Array:
    """Per-class terms of the objective (zero for ignored classes), elementwise.

    ``xp`` is ``jax.numpy`` (the solver) or ``numpy`` (`objective_value`, float64).
    """
    active = weight > 0
    if kind == "l1":
        return weight * xp.abs(target - s)
    if kind == "squared":
        x = (s - target) * weight
        per = x * x
    elif kind == "log":
        x = xp.log1p(s) - xp.log1p(target)
        per = x * x
    else:  # huber: a smooth stand-in for |x| that is exact away from 0
        x = xp.abs(s - target) * weight
        per = xp.where(x < delta, 0.5 * x * x / delta, x - 0.5 * delta)
    return xp.where(active, per, 0)


def smooth(data: Data, lam: Array, max_repeat: int, *, optimizer: optax.GradientTransformation,
           kind: str, delta: float, num_steps: int, progress: Any = None,
           progress_every: int = 50, min_repeat: int = 0) -> tuple[Array, Array]:
    """Projected optax steps on a smooth objective (box by projection after each update)."""
    dtype = data.vals.dtype
    lam = jnp.asarray(lam, dtype)
    m = jnp.asarray(max_repeat, dtype)
    d = jnp.asarray(delta, dtype)

    def loss(rates):
        s = _totals(rates, data, None)
        dev = rates - 1
        img = jnp.where(jnp.abs(dev) < d, 0.5 * dev * dev / d, jnp.abs(dev) - 0.5 * d)
        return (jnp.sum(class_loss(kind, s, data.target, data.weight, d))
                + lam * jnp.sum(data.mult * img))

    def step(c, i):
        rates, opt_state = c
        value, grad = jax.value_and_grad(loss)(rates)
        updates, opt_state = optimizer.update(grad, opt_state, rates)
        rates = jnp.clip(optax.apply_updates(rates, updates), min_repeat, m)
        _report(progress, progress_every, num_steps, i, value)
        return (rates, opt_state), value

    rates0 = jnp.ones((data.inv_row.shape[0],), dtype)
    # optax's own code (e.g. adam's bias correction) relies on standard promotion; keep it
    # working when the user runs with "strict".
    with jax.numpy_dtype_promotion("standard"):
        (rates, _), hist = jax.lax.scan(step, (rates0, optimizer.init(rates0)),
                                        jnp.arange(num_steps))
    return rates, hist


def run(data: Data, lam: Array, *, objective: str, num_steps: int, max_repeat: int,
        step_ratio: Any, optimizer: Any, delta: float, mesh: Any, axis: str | None,
        progress: Any, progress_every: int, min_repeat: int = 0
        ) -> tuple[Array, Array, Array]:
    """The relaxed solve on ``data``: ``(rates [G], history [num_steps], lower_bound)``."""
    dtype = data.vals.dtype
    # Dual prices live on the scale 1 / T; scaling the step ratio by the typical target
    # makes the default work across data sets of any size.
    med = jnp.nanmedian(jnp.where(data.target > 0, data.target, jnp.nan))
    eta = jnp.asarray(step_ratio, dtype) * med
    if objective != "l1":
        if mesh is not None:
            raise ValueError("`mesh` is supported for objective='l1' only.")
        opt = DEFAULT_OPTIMIZER if optimizer is None else optimizer
        rates, hist = smooth(data, lam, max_repeat, optimizer=opt, kind=objective, delta=delta,
                             num_steps=num_steps, progress=progress,
                             progress_every=progress_every, min_repeat=min_repeat)
        return rates, hist, jnp.asarray(jnp.nan, dtype)
    if mesh is None:
        st, hist = pdhg(data, lam, max_repeat, eta, num_steps=num_steps, axis_name=None,
                        progress=progress, progress_every=progress_every,
                        min_repeat=min_repeat)
        return st.rates, hist, st.best_lb
    from jax.sharding import PartitionSpec as P

    def inner(dt, lm, et):
        st, h = pdhg(dt, lm, max_repeat, et, num_steps=num_steps, axis_name=axis,
                     progress=progress, progress_every=progress_every,
                     min_repeat=min_repeat)
        # Rounding works on the whole image list: gather the rates once, device to device.
        # (a psum of the blocks placed in a zero vector: the result is replicated.)
        b = st.rates.shape[0]
        whole = jnp.zeros((b * mesh.shape[axis],), st.rates.dtype)
        whole = jax.lax.dynamic_update_slice(whole, st.rates, (jax.lax.axis_index(axis) * b,))
        return jax.lax.psum(whole, axis), h, st.best_lb

    dt_spec = Data(**{k: (P(axis) if k in _SHARDED else P()) for k in Data._fields})
    return jax.shard_map(inner, mesh=mesh, in_specs=(dt_spec, P(), P()),
                         out_specs=(P(), P(), P()))(data, jnp.asarray(lam, dtype), eta)
