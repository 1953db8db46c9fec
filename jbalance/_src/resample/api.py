r"""`solve`, `relax`, `solve_path` and `objective_value`: the pure solver core.

``F(r) = sum_c |T_c - s_c(r)| / T_c + lam sum_i |r_i - 1|`` over integer repeat counts
``r_i in {min_repeat, ..., max_repeat}`` with the guard ``s_c(r) >= min(s_c(1), floor(T_c))``.
The host prepares a `problem.Problem` (validation, deduplication, layout) when the counts
are concrete; everything after that (the relaxed solve, rounding, repair) is one jitted
function, so `solve` also runs under ``jit``, ``vmap`` (over ``lam``) and ``grad`` (through
`relax`).
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jbalance._src import checks
from jbalance._src.resample import problem as _problem
from jbalance._src.resample import relax as _relax
from jbalance._src.resample import rounding as _rounding
from jbalance._src.resample.relax import Relaxed
from jbalance._src.typing import Array, ArrayLike, Float, Num


class Solution(NamedTuple):
    r"""Result of `solve` (or, with a leading ``[L]`` axis on every field, `solve_path`).

    Attributes:
      rates: float32 ``[N]``, the relaxed (continuous) repeat rates in
        ``[min_repeat, max_repeat]``.
      repeats: int32 ``[N]``, the integer repeat counts after rounding and repair.
      objective: float, ``F`` of ``repeats`` (the chosen objective, integer solution).
      history: float32 ``[num_steps]``, the relaxed objective after every solver step.
      relaxed_objective: float, the objective of ``rates`` (the guard is not counted).
      lower_bound: float, a certified lower bound on the relaxed optimum (from the dual
        iterate; ``objective="l1"`` only, NaN otherwise). ``objective - lower_bound`` bounds
        the integer solution's distance from the best possible relaxed value.
      target: float32 ``[C]``, the target totals ``T_c`` (0 for ignored empty classes).
      guard: float32 ``[C]``, the guaranteed minimum totals ``min(s_c(1), floor(T_c))``.
      lam: float, the trade-off weight used.
    """

    rates: Array
    repeats: Array
    objective: Array
    history: Array
    relaxed_objective: Array
    lower_bound: Array
    target: Array
    guard: Array
    lam: Array


class _Config(NamedTuple):
    """Static options of the jitted core (hashable)."""

    objective: str
    num_steps: int
    max_repeat: int
    min_repeat: int
    optimizer: Any
    delta: float
    mesh: Any
    axis: str | None
    progress: Any
    progress_every: int
    width: int


class _Setup(NamedTuple):
    problem: _problem.Problem
    lam: Any          # the lam to use (default filled in)
    config: _Config
    host: Any         # problem.Host when the counts were concrete, else None


def _setup(counts: Any, *, lam: Any, target: Any, tau: Any, max_repeat: Any, min_repeat: Any,
           num_steps: Any,
           objective: str, step_ratio: Any, optimizer: Any, delta: float, empty_classes: str,
           dtype: Any, progress: Any, progress_every: Any, mesh: Any, axis: str | None,
           dedupe: bool, num_classes: int | None) -> _Setup:
    _problem.check_options(target=target, tau=tau, max_repeat=max_repeat,
                           empty_classes=empty_classes, objective=objective,
                           num_steps=num_steps, step_ratio=step_ratio, dtype=dtype,
                           min_repeat=min_repeat)
    _problem.check_hyper(lam, "lam")
    _problem.check_hyper(delta, "delta", positive=True)
    if isinstance(progress_every, bool) or not isinstance(progress_every, (int, np.integer)) \
            or progress_every < 1:
        raise ValueError(f"`progress_every` must be a positive int, got {progress_every!r}.")
    if objective != "l1" and mesh is not None:
        raise ValueError("`mesh` is supported for objective='l1' only.")
    if _problem.is_sparse(counts) or checks.is_concrete(counts):
        host = _problem.build(counts, target=target, tau=tau, empty_classes=empty_classes,
                              dtype=dtype, mesh=mesh, axis=axis, dedupe_rows=bool(dedupe),
                              num_classes=num_classes)
        prob, width = host.problem, host.width
        lam_used = host.lam if lam is None else lam
    else:
        # Traced counts (the caller's jit/vmap/grad): dense only, every check a checkify one.
        if mesh is not None:
            raise ValueError("`mesh` needs concrete counts (not traced inside jit).")
        if jnp.ndim(counts) == 1:
            counts = _problem.class_ids_to_counts(counts, num_classes)
        checks.check_rank(counts, 2, "counts", "([num_images, num_classes])")
        checks.check_nonnegative(counts, "counts")
        prob = _problem.build_traced(counts, target=target, tau=tau, dtype=dtype)
        width = _problem.row_width(jnp.shape(counts)[1])
        med = jnp.nanmedian(jnp.where(prob.totals > 0, prob.totals, jnp.nan))
        lam_used = 0.5 / med if lam is None else lam
        host = None
    cfg = _Config(objective=objective, num_steps=int(num_steps), max_repeat=int(max_repeat),
                  min_repeat=int(min_repeat), optimizer=optimizer, delta=float(delta), mesh=mesh,
                  axis=_problem.mesh_axis(mesh, axis)[1], progress=progress,
                  progress_every=int(progress_every), width=width)
    return _Setup(prob, lam_used, cfg, host)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _relax_core(prob: _problem.Problem, lam: Array, step_ratio: Array, *, cfg: _Config
                ) -> Relaxed:
    data = prob.data
    dtype = data.vals.dtype
    lam = jnp.asarray(lam, dtype)
    rates, hist, lb = _relax.run(data, lam, objective=cfg.objective, num_steps=cfg.num_steps,
                                 max_repeat=cfg.max_repeat, min_repeat=cfg.min_repeat,
                                 step_ratio=step_ratio,
                                 optimizer=cfg.optimizer, delta=cfg.delta, mesh=cfg.mesh,
                                 axis=cfg.axis, progress=cfg.progress,
                                 progress_every=cfg.progress_every)
    full = prob.full
    # Padding images (beyond num_images) keep rate 1: no objects, no cost, never moved.
    valid = jnp.arange(full.inverse.shape[0]) < full.num_images
    return Relaxed(rates=jnp.where(valid, rates[full.inverse], 1), history=hist, objective=hist[-1],
                   lower_bound=lb, target=data.target, guard=data.guard, lam=lam)


def _round(full: _problem.Full, rel: Relaxed, cfg: _Config) -> Solution:
    """Rounding and repair of relaxed rates (``rel.rates`` on the full image list)."""
    r0 = _rounding.group_round(rel.rates, full.order, cfg.max_repeat, cfg.min_repeat)
    r, _ = _rounding.repair(full, r0, rel.target, _weight(rel.target), rel.guard, rel.lam,
                            kind=cfg.objective, delta=cfg.delta, max_repeat=cfg.max_repeat,
                            width=cfg.width, min_repeat=cfg.min_repeat)
    s = _rounding.totals_of(full, r, rel.target.shape[0])
    value = _rounding.value(cfg.objective, s, r, rel.target, _weight(rel.target), rel.lam,
                            cfg.delta)
    return Solution(rates=rel.rates, repeats=r, objective=value, history=rel.history,
                    relaxed_objective=rel.objective, lower_bound=rel.lower_bound,
                    target=rel.target, guard=rel.guard, lam=rel.lam)


def _weight(target: Array) -> Array:
    active = target > 0
    return jnp.where(active, 1 / jnp.where(active, target, 1), 0)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _solve_core(prob: _problem.Problem, lam: Array, step_ratio: Array, *, cfg: _Config
                ) -> Solution:
    return _round(prob.full, _relax_core(prob, lam, step_ratio, cfg=cfg), cfg)


def _solve_any(prob: _problem.Problem, lam: Any, step_ratio: Any, cfg: _Config) -> Solution:
    """One jitted program; with a mesh, the sharded relax, then rounding on one device."""
    if cfg.mesh is None:
        return _solve_core(prob, lam, step_ratio, cfg=cfg)
    # With a mesh: the relaxed loop runs sharded; rounding runs replicated (every device
    # holds the whole image list), so no array crosses to the host.
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    full = jax.device_put(prob.full, NamedSharding(cfg.mesh, P()))
    totals = jax.device_put(prob.totals, NamedSharding(cfg.mesh, P()))
    return _solve_core(prob._replace(full=full, totals=totals), lam, step_ratio, cfg=cfg)


def _unpad(sol: Solution, st: _Setup) -> Solution:
    """Drops the padding images of a host-prepared problem."""
    if st.host is None:
        return sol
    n = st.host.num_images
    return sol._replace(rates=sol.rates[..., :n], repeats=sol.repeats[..., :n])


def _check_guard(st: _Setup, sol: Solution) -> None:
    """On concrete results, the guard is verified on the host in float64 (every row of a
    path), from the device's object list (padding objects have value 0), in chunks so that
    the check adds little memory to a large solve."""
    if st.host is None or not checks.is_concrete(sol.repeats):
        return
    full = st.problem.full
    img, cls, vals = np.asarray(full.img), np.asarray(full.cls), np.asarray(full.vals)
    chunk = 1 << 20
    for row in np.asarray(sol.repeats).reshape(-1, st.host.num_images):
        ext = np.r_[row.astype(np.float64), 0.0]  # padding objects point past the images
        s = np.zeros(st.host.guard.size)
        for lo in range(0, img.size, chunk):
            sl = slice(lo, lo + chunk)
            s += np.bincount(cls[sl], weights=vals[sl] * ext[np.minimum(img[sl], row.size)],
                             minlength=s.size)
        if (s < st.host.guard - 1e-9).any():  # pragma: no cover - the repair prevents this.
            raise RuntimeError("resample: the repair could not restore the class guard.")


def solve(
        counts: Num[" n *c"],
        *,
        lam: ArrayLike | None = None,
        target: str | ArrayLike = "median",
        tau: float = 0.0,
        max_repeat: int = 4,
        min_repeat: int = _problem.DEFAULT_MIN_REPEAT,
        num_steps: int = 300,
        objective: str = "l1",
        step_ratio: float = 1.0,
        optimizer: optax.GradientTransformation | None = None,
        delta: float = 0.05,
        empty_classes: str = "error",
        dtype: Any = np.float32,
        progress: Callable[[int, Any], Any] | None = None,
        progress_every: int = 50,
        mesh: Any = None,
        axis: str | None = None,
        dedupe: bool = True,
        num_classes: int | None = None,
) -> Solution:
    r"""Per-image repeat counts that bring class totals close to a target.

    Use it to rebalance a multi-label or detection data set by duplicating images of rare
    classes and dropping images of common ones, while changing as few images as possible.
    The default objective is the exact L1 one,

    .. math::
      F(r) = \sum_c \frac{|T_c - s_c(r)|}{T_c} + \lambda \sum_i |r_i - 1|,\quad
      s_c(r) = \sum_i r_i Y_{ic},\quad r_i \in \{m, \dots, M\},

    (``m = min_repeat``, 0 or 1: with 1 images are only repeated, never dropped), with the
    guard
    :math:`s_c(r) \ge \min(s_c(1), \lfloor T_c \rfloor)` for every class
    (a free target would collapse to dropping everything, and plain L1 happily erases a
    class far below target; the guard prevents both). The relaxation over real ``r`` is
    solved by a primal-dual (Chambolle-Pock) iteration inside one ``lax.scan``; its dual
    iterate yields a certified lower bound. The rates are then rounded so that every group
    of identical images keeps its total, and a greedy +-1 repair (a ``lax.while_loop``)
    restores the guard and only lowers ``F``.

    Pure and jit-compatible: after the host-side preparation of concrete ``counts``
    (validation, merging identical rows, layout), everything runs in one jitted function
    with no host round trip. ``jax.vmap(lambda lam: solve(Y, lam=lam))`` and
    ``jax.jit(solve)`` work; under ``jit`` with traced ``counts`` (dense ``[N, C]`` only)
    rows are not merged, classes without examples are ignored, and value checks on
    ``counts`` run only under `jbalance.checks.checked`. Static options (everything but
    ``counts``, ``lam`` and ``step_ratio``) must be passed through ``static_argnames``
    when they are not the defaults.

    The smooth objectives (``"squared"``: :math:`((s_c - T_c)/T_c)^2`, ``"log"``:
    :math:`(\log(1+s_c) - \log(1+T_c))^2`, ``"huber"``: Huber of :math:`|s_c - T_c|/T_c`)
    run projected steps of any ``optax`` optimizer instead (default ``optax.adam(0.05)``);
    the guard is then restored by the repair.

    Args:
      counts: ``[N, C]`` non-negative integer counts (objects of class ``c`` in image
        ``i``, or 0/1 presence): a dense NumPy/JAX array, a
        ``jax.experimental.sparse.BCOO`` matrix, or any ``scipy.sparse`` matrix (duck-typed
        through ``.tocoo()``; scipy is never imported here); or ``[N]`` integer class ids
        of a single-label data set (see ``num_classes``).
      lam: trade-off weight :math:`\lambda >= 0` on images changed. ``None`` (default)
        means ``0.5 / median class total`` (the setting of the quality bar). Traceable:
        see `solve_path` for a whole trade-off curve in one vmapped call.
      target: ``"median"`` (default), ``"mean"``, ``"max"`` or ``"min"`` of the original
        class totals (over classes with examples), a scalar, or an explicit ``[C]`` vector.
      tau: tempering exponent for a statistic target: ``T_c = m (n_c / m)^tau`` with ``m``
        the statistic and ``n_c`` the original totals (0 = uniform, 1 = unchanged).
      max_repeat: static int ``M >= 1``, the most copies of one image.
      min_repeat: static int, the fewest copies of one image: 0 (images may be dropped)
        or 1 (oversampling only: no image is ever dropped; the guard then holds by itself
        and the repair only lowers ``F``). The default is
        ``jbalance._src.resample.problem.DEFAULT_MIN_REPEAT``, shared by `relax`,
        `solve_path`, `plan` and ``jbalance plan``; docs/resample.md says which study it
        rests on.
      num_steps: static number of solver steps (default 300; ``lower_bound`` tells how far
        a run can still be from the optimum; docs/resample.md has measured gaps).
      objective: ``"l1"`` (default, exact LP, primal-dual), or a smooth ``"squared"``,
        ``"log"`` or ``"huber"`` objective minimised with ``optimizer``.
      step_ratio: primal/dual step balance of the primal-dual method, in units of the
        median target: ``eta = step_ratio * median(T)``, ``tau_i = eta / sum_c Y_ic``,
        ``sigma_c = 1 / (eta n_c)``. Any value > 0 converges (default 1; docs/resample.md
        compares values).
      optimizer: an ``optax.GradientTransformation`` for the smooth objectives.
      delta: smoothing width of ``"huber"`` (and of ``|r - 1|`` in the smooth objectives).
      empty_classes: ``"error"`` (default) raises when a class has no example at all;
        ``"ignore"`` leaves such classes out of the objective (target 0).
      dtype: floating dtype of the device computation (float32 by default).
      progress: optional host callable ``progress(step, objective)``, called every
        ``progress_every`` steps from inside the jitted loop (``jax.debug.callback``).
      progress_every: static interval of ``progress`` calls.
      mesh: optional ``jax.sharding.Mesh``. The object list and the per-image arrays are
        then split into equal image blocks, placed with ``NamedSharding`` along ``axis``,
        and the relaxed loop runs under ``shard_map`` with class totals reduced by
        ``psum``; the result matches the single-device one (up to float summation order).
      axis: the mesh axis that splits images (default: the mesh's only axis).
      dedupe: run the relaxed solver on the distinct rows of ``counts`` with their
        multiplicities (default). Identical images have identical iterates, so this
        changes nothing but the speed (up to float summation order).
      num_classes: number of classes when ``counts`` are ``[N]`` class ids (default
        ``max(ids) + 1``; required under ``jit``).

    Returns:
      A `Solution`: ``rates`` (float ``[N]``), ``repeats`` (int32 ``[N]``), ``objective``
      (``F`` of ``repeats``), ``history`` (``[num_steps]``), ``relaxed_objective``,
      ``lower_bound`` (certified, L1 only), ``target``, ``guard``, ``lam``.

    Raises:
      ValueError: negative, NaN, infinite or non-integer counts, class totals above
        ``2**28``, rank other than 1 or 2, ``max_repeat < 1``, a ``min_repeat`` other
        than 0 or 1, empty classes (unless
        ignored), a non-positive target, an unknown ``target``/``objective`` name, or a
        negative, NaN or infinite ``lam``/``tau``/``step_ratio``.
      TypeError: non-numeric counts or a non-integer ``max_repeat``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import resample
      >>> counts = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [1, 1]])
      >>> sol = resample.solve(counts, lam=0.01, num_steps=300)
      >>> resample.summary(counts, sol.repeats).ratio_after <= 1.5
      True
      >>> int(resample.solve(np.array([0, 0, 0, 1]), lam=0.01).repeats.sum()) > 0
      True

    References:
      Chambolle & Pock, `A first-order primal-dual algorithm for convex problems with
      applications to imaging <https://doi.org/10.1007/s10851-010-0251-1>`_, 2011.
      Pock & Chambolle, `Diagonal preconditioning for first order primal-dual algorithms
      in convex optimization <https://doi.org/10.1109/ICCV.2011.6126441>`_, 2011.

    .. versionadded:: 0.1.0
    """
    st = _setup(counts, lam=lam, target=target, tau=tau, max_repeat=max_repeat,
                min_repeat=min_repeat, num_steps=num_steps, objective=objective,
                step_ratio=step_ratio, optimizer=optimizer, delta=delta,
                empty_classes=empty_classes, dtype=dtype, progress=progress,
                progress_every=progress_every, mesh=mesh, axis=axis, dedupe=dedupe,
                num_classes=num_classes)
    sol = _unpad(_solve_any(st.problem, st.lam, step_ratio, st.config), st)
    _check_guard(st, sol)
    return sol


def relax(
        counts: Num[" n *c"],
        *,
        lam: ArrayLike | None = None,
        target: str | ArrayLike = "median",
        tau: float = 0.0,
        max_repeat: int = 4,
        min_repeat: int = _problem.DEFAULT_MIN_REPEAT,
        num_steps: int = 300,
        objective: str = "l1",
        step_ratio: float = 1.0,
        optimizer: optax.GradientTransformation | None = None,
        delta: float = 0.05,
        empty_classes: str = "error",
        dtype: Any = np.float32,
        progress: Callable[[int, Any], Any] | None = None,
        progress_every: int = 50,
        mesh: Any = None,
        axis: str | None = None,
        dedupe: bool = True,
        num_classes: int | None = None,
) -> Relaxed:
    r"""The relaxed (continuous) part of `solve` alone: jitted, vmappable, differentiable.

    Gradients flow through the unrolled iteration to ``lam``, ``step_ratio`` and (traced,
    dense) ``counts``: e.g. the sensitivity of the relaxed objective to ``lam``.

    Args:
      counts: as in `solve`; so are every other argument (``lam``, ``target``, ``tau``,
        ``max_repeat``, ``min_repeat``, ``num_steps``, ``objective``, ``step_ratio``,
        ``optimizer``, ``delta``, ``empty_classes``, ``dtype``, ``progress``,
        ``progress_every``, ``mesh``, ``axis``, ``dedupe``, ``num_classes``).

    Returns:
      A `Relaxed`: ``rates`` (float ``[N]``), ``history`` (``[num_steps]``),
      ``objective`` (relaxed ``F``), ``lower_bound`` (certified, L1 only), ``target``,
      ``guard``, ``lam``.

    Raises:
      ValueError, TypeError: as `solve`.

    Examples:
      >>> import jax, numpy as np
      >>> from jbalance import resample
      >>> counts = np.array([[1, 0], [1, 0], [1, 0], [0, 1]])
      >>> g = jax.grad(lambda lam: resample.relax(counts, lam=lam, num_steps=50).objective)
      >>> bool(g(0.1) >= 0)
      True

    .. versionadded:: 0.2.0
    """
    st = _setup(counts, lam=lam, target=target, tau=tau, max_repeat=max_repeat,
                min_repeat=min_repeat, num_steps=num_steps, objective=objective,
                step_ratio=step_ratio, optimizer=optimizer, delta=delta,
                empty_classes=empty_classes, dtype=dtype, progress=progress,
                progress_every=progress_every, mesh=mesh, axis=axis, dedupe=dedupe,
                num_classes=num_classes)
    rel = _relax_core(st.problem, st.lam, step_ratio, cfg=st.config)
    return rel if st.host is None else rel._replace(
            rates=rel.rates[..., :st.host.num_images])


def solve_path(
        counts: Num[" n *c"],
        lams: Float[" k"],
        *,
        target: str | ArrayLike = "median",
        tau: float = 0.0,
        max_repeat: int = 4,
        min_repeat: int = _problem.DEFAULT_MIN_REPEAT,
        num_steps: int = 300,
        objective: str = "l1",
        step_ratio: float = 1.0,
        optimizer: optax.GradientTransformation | None = None,
        delta: float = 0.05,
        empty_classes: str = "error",
        dtype: Any = np.float32,
        progress: Callable[[int, Any], Any] | None = None,
        progress_every: int = 50,
        mesh: Any = None,
        axis: str | None = None,
        dedupe: bool = True,
        num_classes: int | None = None,
) -> Solution:
    r"""The whole trade-off curve: ``jax.vmap`` of `solve` over ``lams``.

    One compiled program and one pass over the object list per step for all values
    together; rounding and repair are vmapped too. Plotting ``summary(...).cv_after``
    against the number of images changed gives the Pareto front of balance versus edits.

    Args:
      counts: as in `solve`.
      lams: ``[L]`` values of ``lam`` (each finite and ``>= 0``).
      target: as in `solve`; so are the other keywords (``tau``, ``max_repeat``,
        ``min_repeat``, ``num_steps``, ``objective``, ``step_ratio``, ``optimizer``,
        ``delta``, ``empty_classes``, ``dtype``, ``progress_every``, ``mesh``, ``axis``,
        ``dedupe``, ``num_classes``) and ``progress``, which receives one call per ``lam``.

    Returns:
      A `Solution` whose every field has a leading ``[L]`` axis (``target`` and ``guard``
      are repeated).

    Examples:
      >>> import numpy as np
      >>> from jbalance import resample
      >>> counts = np.array([[2, 0], [1, 0], [1, 0], [0, 1], [1, 1]])
      >>> path = resample.solve_path(counts, np.array([0.0, 0.05, 1.0]), num_steps=200)
      >>> path.repeats.shape
      (3, 5)

    .. versionadded:: 0.1.0
    """
    if checks.is_concrete(lams):
        host = np.asarray(lams)
        if host.ndim != 1 or host.size == 0:
            raise ValueError(f"`lams` must be a non-empty 1-D array, got shape {host.shape}.")
        _problem.check_hyper(host, "lams")
    st = _setup(counts, lam=None, target=target, tau=tau, max_repeat=max_repeat,
                min_repeat=min_repeat, num_steps=num_steps, objective=objective,
                step_ratio=step_ratio, optimizer=optimizer, delta=delta,
                empty_classes=empty_classes, dtype=dtype, progress=progress,
                progress_every=progress_every, mesh=mesh, axis=axis, dedupe=dedupe,
                num_classes=num_classes)
    sol = jax.vmap(lambda lm: _solve_any(st.problem, lm, step_ratio, st.config))(
            jnp.asarray(lams, dtype))
    sol = _unpad(sol, st)
    _check_guard(st, sol)
    return sol


def objective_value(counts: Num[" n *c"], repeats: Num[" n"], *, lam: float | None = None,
                    target: str | ArrayLike = "median", tau: float = 0.0,
                    objective: str = "l1", delta: float = 0.05,
                    empty_classes: str = "error") -> float:
    r"""``F(r)`` of given repeat counts, with the same defaults as `solve` (host, float64).

    Args:
      counts: as in `solve`.
      repeats: ``[N]`` repeat counts (integers or rates).
      lam: as in `solve` (``None``: ``0.5 / median class total``).
      target: as in `solve`.
      tau: as in `solve`.
      objective: as in `solve`.
      delta: as in `solve`.
      empty_classes: as in `solve`.

    Returns:
      ``F(repeats)`` as a Python float.

    Examples:
      >>> from jbalance import resample
      >>> round(resample.objective_value([[1, 0], [0, 1], [0, 1]], [1, 1, 1], lam=0.1), 4)
      0.6667
    """
    _problem.check_options(target=target, tau=tau, max_repeat=1, empty_classes=empty_classes,
                           objective=objective, num_steps=1, step_ratio=1.0, dtype=np.float32)
    _problem.check_hyper(lam, "lam")
    obj = _problem.objects(counts)
    totals = _problem.class_totals(obj)
    tgt = _problem.host_target(totals, target, tau, empty_classes)
    lam = 0.5 / float(np.median(totals[totals > 0])) if lam is None else float(lam)
    r = np.asarray(repeats, np.float64)
    checks.check_shape(r, (obj.num_images,), "repeats", "([num_images])")
    _problem.check_hyper(r, "repeats")
    s = _problem.class_totals(obj, r)
    weight = np.where(tgt > 0, 1 / np.where(tgt > 0, tgt, 1), 0.0)
    # The same per-class formula as the solver, evaluated by NumPy in float64.
    per = _relax.class_loss(objective, s, tgt, weight, delta, xp=np)
    return float(per.sum() + lam * np.abs(r - 1).sum())
