r"""Per-image repeat counts that balance class totals: the relaxed solver and baselines.

An image in a detection or multi-label data set carries several classes, so duplicating or
dropping it moves several class totals at once. `solve` finds integer repeat counts
``r_i in {0, ..., max_repeat}`` minimising

.. math::
  F(r) = \sum_c \frac{|T_c - s_c(r)|}{T_c} + \lambda \sum_i |r_i - 1|,
  \qquad s_c(r) = \sum_i r_i Y_{ic},

subject to the guard :math:`s_c(r) \ge g_c = \min(s_c(1), \lfloor T_c \rfloor)` (no class
ends below the smaller of its original total and its target, so none is erased).

Pipeline (each stage is its own function so that the jitted part stays pure):

1. host: the counts (dense, BCOO or any ``scipy.sparse`` matrix) become a validated object
   list ``(image_index, class_index, count)`` sorted by image (`_objects`);
2. device: a primal-dual (Chambolle-Pock) iteration on the exact L1 linear programme runs
   inside one jitted ``lax.scan`` (`_pdhg_chunk`); class totals are ``segment_sum`` over the
   object list, so they reduce across devices with one ``psum`` when the list is sharded;
3. host: rounding that keeps the total of every group of identical images, then a greedy
   +-1 repair that restores the guard and only ever lowers ``F`` (`_round_and_repair`).
"""

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jbalance._src import checks
from jbalance._src.typing import Array, ArrayLike, PRNGKey

_STATS = ("median", "mean", "max", "min")
_OBJECTIVES = ("l1", "squared", "log", "huber")


class Solution(NamedTuple):
    r"""Result of `solve` (or, with a leading ``[L]`` axis on every field, `solve_path`).

    Attributes:
      rates: float32 ``[N]``, the relaxed (continuous) repeat rates in ``[0, max_repeat]``.
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


class Summary(NamedTuple):
    r"""Class balance before and after resampling (see `summary`); ``._asdict()`` is JSON-ready."""

    totals_before: np.ndarray
    totals_after: np.ndarray
    ratio_before: float
    ratio_after: float
    cv_before: float
    cv_after: float
    dropped: int
    duplicated: int
    size_before: int
    size_after: int
    erased: tuple[int, ...]


# ---------------------------------------------------------------------------------------
# Host side: input conversion and validation.
# ---------------------------------------------------------------------------------------


class _Objects(NamedTuple):
    """Validated object list, sorted by image. ``vals`` are float64 on the host."""

    img: np.ndarray   # int64 [nnz]
    cls: np.ndarray   # int64 [nnz]
    vals: np.ndarray  # float64 [nnz], > 0
    num_images: int
    num_classes: int


def _is_bcoo(x: Any) -> bool:
    from jax.experimental import sparse as jsparse

    return isinstance(x, jsparse.BCOO)


def _objects(counts: Any, name: str = "counts") -> _Objects:
    """Converts dense / BCOO / scipy.sparse counts to a validated object list."""
    if _is_bcoo(counts):
        if counts.n_batch or counts.n_dense or counts.ndim != 2:
            raise ValueError(f"`{name}` as a BCOO matrix must be a plain 2-D sparse matrix "
                             f"(n_batch=0, n_dense=0), got shape {counts.shape} with "
                             f"n_batch={counts.n_batch}, n_dense={counts.n_dense}.")
        idx = np.asarray(counts.indices)
        vals = np.asarray(counts.data)
        n_img, n_cls = counts.shape
        # BCOO pads with out-of-range indices; those entries are not part of the matrix.
        ok = (idx[:, 0] < n_img) & (idx[:, 1] < n_cls)
        rows, cols, vals = idx[ok, 0], idx[ok, 1], vals[ok]
    elif hasattr(counts, "tocoo") and not isinstance(counts, (np.ndarray, jax.Array)):
        shape = getattr(counts, "shape", ())
        if len(shape) != 2:
            raise ValueError(f"`{name}` must have rank 2 ([num_images, num_classes]), "
                             f"got shape {tuple(shape)}.")
        coo = counts.tocoo()
        rows, cols, vals = np.asarray(coo.row), np.asarray(coo.col), np.asarray(coo.data)
        n_img, n_cls = shape
    else:
        if isinstance(counts, (list, tuple)):
            counts = np.asarray(counts)
        if not isinstance(counts, (np.ndarray, jax.Array)):
            raise TypeError(f"`{name}` must be a [num_images, num_classes] array, a "
                            f"jax.experimental.sparse.BCOO or a scipy.sparse matrix; got "
                            f"{type(counts).__name__}.")
        checks.check_rank(counts, 2, name, "([num_images, num_classes])")
        dense = np.asarray(counts)
        if not (np.issubdtype(dense.dtype, np.number) or dense.dtype == np.bool_):
            raise TypeError(f"`{name}` must be numeric or boolean, got dtype {dense.dtype}.")
        rows, cols = np.nonzero(dense)
        vals = dense[rows, cols]
        n_img, n_cls = dense.shape
    vals = np.asarray(vals, np.float64)
    if vals.size and not np.isfinite(vals).all():
        raise ValueError(f"`{name}` contains NaN or infinite values; counts must be finite "
                         "non-negative integers.")
    if vals.size and (vals < 0).any():
        raise ValueError(f"`{name}` contains negative values (min {vals.min():g}); counts "
                         "must be non-negative integers (object counts or 0/1 presence).")
    if vals.size and (vals != np.floor(vals)).any():
        raise ValueError(f"`{name}` contains non-integer values; pass object counts or 0/1 "
                         "presence (e.g. `np.rint(counts)` if they are integral floats).")
    if n_img < 1 or n_cls < 1:
        raise ValueError(f"`{name}` must have at least one image and one class, got shape "
                         f"{(n_img, n_cls)}.")
    keep = vals > 0
    rows, cols, vals = (np.asarray(rows, np.int64)[keep], np.asarray(cols, np.int64)[keep],
                        vals[keep])
    if rows.size > 1 and (np.diff(rows) < 0).any():
        order = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
    return _Objects(rows, cols, vals, int(n_img), int(n_cls))


def _class_totals(obj: _Objects, repeats: np.ndarray | None = None) -> np.ndarray:
    weights = obj.vals if repeats is None else obj.vals * np.asarray(repeats, np.float64)[obj.img]
    return np.bincount(obj.cls, weights=weights, minlength=obj.num_classes)


def _target(totals: np.ndarray, target: Any, tau: float, empty_classes: str) -> np.ndarray:
    """Host-side target totals ``T_c`` (float64, 0 for ignored classes)."""
    active = totals > 0
    if not active.all() and empty_classes == "error":
        empty = np.flatnonzero(~active)
        raise ValueError(
                f"`counts` has {empty.size} class(es) with no examples at all (indices "
                f"{empty[:10].tolist()}{'...' if empty.size > 10 else ''}); they cannot be "
                "balanced. Remove those columns or pass `empty_classes=\"ignore\"`.")
    if not active.any():
        raise ValueError("`counts` has no non-zero entries; there is nothing to balance.")
    if isinstance(target, str):
        checks.check_one_of(target, _STATS, "target")
        stat = float(getattr(np, target)(totals[active]))
        out = np.where(active, stat * (np.maximum(totals, 1e-300) / stat) ** float(tau), 0.0)
    else:
        arr = np.asarray(target, np.float64)
        if arr.ndim == 0:
            arr = np.full(totals.shape, float(arr))
        checks.check_shape(arr, (totals.size,), "target", "([num_classes])")
        if not np.isfinite(arr).all() or (arr[active] <= 0).any():
            raise ValueError("`target` must be finite and > 0 for every class with examples.")
        out = np.where(active, arr, 0.0)
    return out


# ---------------------------------------------------------------------------------------
# Device side: the jitted primal-dual iteration.
# ---------------------------------------------------------------------------------------


class _Data(NamedTuple):
    """Device arrays of one problem. Per-object and per-image arrays may be sharded."""

    img: Array      # int32 [nnz] (local image index when sharded), sorted
    cls: Array      # int32 [nnz]
    vals: Array     # float [nnz]
    inv_row: Array  # float [N], 1 / sum_c Y_ic (0 for images without objects or padding)
    mult: Array     # float [N], copies of this (deduplicated) image; 0 for padding
    inv_col: Array  # float [C], 1 / n_c (0 for ignored classes)
    target: Array   # float [C]
    weight: Array   # float [C], 1 / T_c (0 for ignored classes)
    guard: Array    # float [C]


class _State(NamedTuple):
    rates: Array     # [N]
    dual: Array      # [C]
    totals: Array    # [C], s(rates)
    best_lb: Array   # []


def _psum(x: Array, axis_name: str | None) -> Array:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _soft(x: Array, t: Array) -> Array:
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0)


def _totals(rates: Array, data: _Data, axis_name: str | None) -> Array:
    # s = Y^T r as a gather + segment_sum over the object list (dense Y @ r is ~6x slower
    # on XLA:CPU); under sharding each device sums its own images, then one psum.
    local = jax.ops.segment_sum((rates * data.mult)[data.img] * data.vals, data.cls,
                                num_segments=data.target.shape[0])
    return _psum(local, axis_name)


def _l1_value(rates: Array, totals: Array, data: _Data, lam: Array,
              axis_name: str | None) -> Array:
    img_term = _psum(jnp.sum(data.mult * jnp.abs(rates - 1)), axis_name)
    return jnp.sum(data.weight * jnp.abs(data.target - totals)) + lam * img_term


def _pdhg_init(data: _Data) -> _State:
    dtype = data.vals.dtype
    n = data.inv_row.shape[0]
    c = data.target.shape[0]
    return _State(rates=jnp.ones((n,), dtype), dual=jnp.zeros((c,), dtype),
                  totals=jnp.zeros((c,), dtype), best_lb=jnp.asarray(-jnp.inf, dtype))


def _pdhg_chunk(state: _State, data: _Data, lam: Array, max_repeat: Array, step_ratio: Array,
                *, num_steps: int, axis_name: str | None) -> tuple[_State, Array]:
    r"""``num_steps`` Chambolle-Pock steps on the exact L1 LP with diagonal preconditioning.

    Primal: ``r <- clip(1 + soft(r - tau K^T y - 1, tau lam), 0, M)`` (the prox of
    ``lam |r - 1|`` plus the box). Dual: the prox of ``sigma G*`` where ``G`` is the
    weighted L1 distance to ``T`` plus the guard ``s >= g``; in closed form
    ``a = v - sigma T``, ``b = v - sigma g``, ``y = min(w, a if a >= -w else min(b, -w))``.
    Steps ``tau_i = eta / sum_c Y_ic`` and ``sigma_c = 1 / (eta n_c)`` (Pock & Chambolle
    2011, alpha = 1) need no norm estimate. The dual iterate certifies a lower bound.
    """
    dtype = data.vals.dtype
    lam = jnp.asarray(lam, dtype)
    m = jnp.asarray(max_repeat, dtype)
    eta = jnp.asarray(step_ratio, dtype)
    tau = eta * data.inv_row
    sigma = data.inv_col / eta
    n = data.inv_row.shape[0]

    def step(st: _State, _):
        kty = jax.ops.segment_sum(st.dual[data.cls] * data.vals, data.img, num_segments=n,
                                  indices_are_sorted=True)
        # Certified bound from the current dual point: -f*(-K^T y) - G*(y), where f* of
        # lam|r-1| + box[0, M] is the max over the vertices r in {0, 1, M}.
        z = -kty
        fstar = _psum(jnp.sum(data.mult * jnp.maximum(jnp.maximum(-lam, z),
                                                      m * z - lam * (m - 1))), axis_name)
        gstar = jnp.sum(st.dual * data.target
                        + (data.target - data.guard) * jnp.maximum(-st.dual - data.weight, 0))
        lb = -fstar - gstar
        x = st.rates - tau * kty
        rates = jnp.clip(1 + _soft(x - 1, tau * lam), 0, m)
        totals = _totals(rates, data, axis_name)
        v = st.dual + sigma * (2 * totals - st.totals)
        a = v - sigma * data.target
        b = v - sigma * data.guard
        dual = jnp.minimum(data.weight, jnp.where(a >= -data.weight, a,
                                                  jnp.minimum(b, -data.weight)))
        value = _l1_value(rates, totals, data, lam, axis_name)
        return _State(rates, dual, totals, jnp.maximum(st.best_lb, lb)), value

    # The first step needs s(r0); recompute it so chunks can be chained freely.
    state = state._replace(totals=_totals(state.rates, data, axis_name))
    return jax.lax.scan(step, state, None, length=num_steps)


def _class_loss(kind: str, s: Array, data: _Data, delta: float) -> Array:
    """Smooth per-class terms for the optax variants (zero for ignored classes)."""
    active = data.weight > 0
    t_safe = jnp.where(active, data.target, 1)
    if kind == "squared":
        x = (s - data.target) / t_safe
        per = x * x
    elif kind == "log":
        x = jnp.log1p(s) - jnp.log1p(data.target)
        per = x * x
    else:  # huber: a smooth stand-in for |x| that is exact away from 0
        x = jnp.abs(s - data.target) / t_safe
        per = jnp.where(x < delta, 0.5 * x * x / delta, x - 0.5 * delta)
    return jnp.sum(jnp.where(active, per, 0))


def _smooth_chunk(carry: tuple[Array, Any], data: _Data, lam: Array, max_repeat: Array,
                  *, optimizer: optax.GradientTransformation, kind: str, delta: float,
                  num_steps: int, axis_name: str | None) -> tuple[tuple[Array, Any], Array]:
    """Projected optax steps on a smooth objective (box by projection after each update)."""
    dtype = data.vals.dtype
    lam = jnp.asarray(lam, dtype)
    m = jnp.asarray(max_repeat, dtype)
    d = jnp.asarray(delta, dtype)

    def loss(rates):
        s = _totals(rates, data, axis_name)
        dev = rates - 1
        img = jnp.where(jnp.abs(dev) < d, 0.5 * dev * dev / d, jnp.abs(dev) - 0.5 * d)
        return _class_loss(kind, s, data, delta) + lam * _psum(jnp.sum(data.mult * img),
                                                               axis_name)

    def step(c, _):
        rates, opt_state = c
        value, grad = jax.value_and_grad(loss)(rates)
        updates, opt_state = optimizer.update(grad, opt_state, rates)
        rates = jnp.clip(optax.apply_updates(rates, updates), 0, m)
        return (rates, opt_state), value

    return jax.lax.scan(step, carry, None, length=num_steps)


# ---------------------------------------------------------------------------------------
# Host side: layout (optionally sharded) and the driver.
# ---------------------------------------------------------------------------------------


def _bucket(x: int) -> int:
    """Smallest ``m * 2^e >= x`` with ``8 <= m < 16`` (at most 12.5% padding)."""
    if x <= 16:
        return max(x, 1)
    e = max(int(x).bit_length() - 4, 0)
    return -(-x // (1 << e)) * (1 << e)


def _layout(obj: _Objects, target: np.ndarray, guard: np.ndarray, dtype: Any,
            num_shards: int, mult: np.ndarray | None = None) -> tuple[_Data, int]:
    """Splits the object list into ``num_shards`` equal image blocks (padded).

    Returns host arrays (NumPy) shaped ``[num_shards * L]`` / ``[num_shards * B]`` and the
    block size ``B``. Padding entries have value 0 and point at the block's last image, so
    the per-block image indices stay sorted and contribute nothing.
    """
    n, c = obj.num_images, obj.num_classes
    # Sizes rounded up to a few buckets per octave, so that problems of similar size (a
    # lam sweep, the same data set re-solved, the tests) reuse one compiled program.
    b = _bucket(-(-n // num_shards))
    rowsum = np.bincount(obj.img, weights=obj.vals, minlength=b * num_shards)
    inv_row = np.where(rowsum > 0, 1.0 / np.maximum(rowsum, 1e-300), 0.0)
    mult_pad = np.zeros(b * num_shards)
    mult_pad[:n] = 1.0 if mult is None else mult
    totals = np.bincount(obj.cls, weights=obj.vals * mult_pad[obj.img], minlength=c)
    active = target > 0
    inv_col = np.where(active, 1.0 / np.maximum(totals, 1e-300), 0.0)
    weight = np.where(active, 1.0 / np.where(active, target, 1.0), 0.0)
    starts = np.searchsorted(obj.img, np.arange(num_shards + 1) * b)
    length = _bucket(max(int(np.diff(starts).max()), 1))
    img = np.empty((num_shards, length), np.int32)
    cls = np.zeros((num_shards, length), np.int32)
    vals = np.zeros((num_shards, length), dtype)
    for d in range(num_shards):
        lo, hi = starts[d], starts[d + 1]
        k = hi - lo
        img[d, :k] = obj.img[lo:hi] - d * b
        img[d, k:] = b - 1
        cls[d, :k] = obj.cls[lo:hi]
        vals[d, :k] = obj.vals[lo:hi]
    img, cls, vals = img.reshape(-1), cls.reshape(-1), vals.reshape(-1)
    data = _Data(img=img, cls=cls, vals=vals,
                 inv_row=inv_row.astype(dtype), mult=mult_pad.astype(dtype),
                 inv_col=inv_col.astype(dtype),
                 target=target.astype(dtype), weight=weight.astype(dtype),
                 guard=guard.astype(dtype))
    return data, b


_SHARDED = ("img", "cls", "vals", "inv_row", "mult")


def _put(data: _Data, mesh: Any, axis: str | None) -> _Data:
    if mesh is None:
        return jax.tree.map(jnp.asarray, data)
    from jax.sharding import NamedSharding, PartitionSpec as P

    return _Data(**{k: jax.device_put(v, NamedSharding(mesh, P(axis) if k in _SHARDED else P()))
                    for k, v in data._asdict().items()})


@functools.partial(jax.jit, static_argnames=("num_steps", "mesh", "axis", "batched"))
def _run_l1(state, data, lam, max_repeat, step_ratio, *, num_steps, mesh, axis, batched):
    def one(st, lm):
        return _pdhg_chunk(st, data, lm, max_repeat, step_ratio, num_steps=num_steps,
                           axis_name=axis if mesh is not None else None)

    fn = jax.vmap(one) if batched else one
    if mesh is None:
        return fn(state, lam)
    from jax.sharding import PartitionSpec as P

    lead = (None,) if batched else ()
    st_spec = _State(rates=P(*lead, axis), dual=P(), totals=P(), best_lb=P())

    def inner(st, dt, lm):
        def one_s(s, l):
            return _pdhg_chunk(s, dt, l, max_repeat, step_ratio, num_steps=num_steps,
                               axis_name=axis)
        return (jax.vmap(one_s) if batched else one_s)(st, lm)

    dt_spec = _Data(**{k: (P(axis) if k in _SHARDED else P()) for k in _Data._fields})
    return jax.shard_map(inner, mesh=mesh, in_specs=(st_spec, dt_spec, P()),
                         out_specs=(st_spec, P()))(state, data, lam)


def _mesh_axis(mesh: Any, axis: str | None) -> tuple[Any, str | None, int]:
    if mesh is None:
        return None, None, 1
    names = tuple(mesh.axis_names)
    if axis is None:
        if len(names) != 1:
            raise ValueError(f"`mesh` has axes {names}; pass `axis=` to pick the image axis.")
        axis = names[0]
    if axis not in names:
        raise ValueError(f"`axis` must be one of the mesh axes {names}, got {axis!r}.")
    return mesh, axis, int(mesh.shape[axis])


class _Prepared(NamedTuple):
    obj: _Objects
    target: np.ndarray
    guard: np.ndarray
    lam: float


def _prepare(counts, lam, target, tau, max_repeat, empty_classes) -> _Prepared:
    checks.check_one_of(empty_classes, ("error", "ignore"), "empty_classes")
    if isinstance(max_repeat, bool) or not isinstance(max_repeat, (int, np.integer)):
        raise TypeError(f"`max_repeat` must be a Python int >= 1, got {max_repeat!r}.")
    if max_repeat < 1:
        raise ValueError(f"`max_repeat` must be >= 1 (1 means 'never duplicate'), got "
                         f"{max_repeat}.")
    checks.check_scalar_range(tau, "tau", low=0.0)
    obj = _objects(counts)
    totals = _class_totals(obj)
    tgt = _target(totals, target, tau, empty_classes)
    guard = np.minimum(totals, np.floor(tgt))
    if lam is None:
        lam = 0.5 / float(np.median(totals[totals > 0]))
    else:
        checks.check_scalar_range(lam, "lam", low=0.0)
    return _Prepared(obj, tgt, guard, lam)


def _expand(rates: np.ndarray, inverse: np.ndarray | None) -> np.ndarray:
    return rates if inverse is None else rates[..., inverse]


def _dedupe(obj: _Objects) -> tuple[_Objects, np.ndarray, np.ndarray]:
    """Collapses identical images into one row with a multiplicity.

    The primal-dual iteration gives identical images identical iterates (same row, same
    step size), so it runs on the distinct rows only: ``s = sum_g m_g r_g Y_g`` and the
    image term ``lam sum_g m_g |r_g - 1|``; with ``tau_g = eta / sum_c Y_gc`` the updates
    are exactly the per-image ones. Detection sets shrink several-fold (VOC: 16,551 images,
    far fewer distinct rows). Rows are grouped by a 64-bit content hash and confirmed with
    a second, independent one; on any disagreement nothing is merged.

    Returns:
      The reduced object list, the multiplicity ``[G]`` of each row and, for every image,
      the index of its row (``[N]``).
    """
    h1 = _row_hash(obj)
    uniq, first, inverse, mult = np.unique(h1, return_index=True, return_inverse=True,
                                           return_counts=True)
    h2 = _row_hash(obj, seed=1)
    if (h2 != h2[first][inverse]).any():  # pragma: no cover - a 64-bit collision.
        return obj, np.ones(obj.num_images), np.arange(obj.num_images)
    group_of_rep = np.full(obj.num_images, -1, np.int64)
    group_of_rep[first] = np.arange(first.size)
    g = group_of_rep[obj.img]
    keep = g >= 0
    order = np.argsort(g[keep], kind="stable")
    red = _Objects(g[keep][order], obj.cls[keep][order], obj.vals[keep][order], int(first.size),
                   obj.num_classes)
    return red, mult.astype(np.float64), inverse.reshape(-1)


def _relax(prep: _Prepared, lam: Any, *, batched: bool, objective: str, num_steps: int,
           max_repeat: int, step_ratio: float, optimizer: Any, delta: float, dtype: Any,
           progress: Callable[[int, Any], Any] | None, progress_every: int, mesh: Any,
           axis: str | None, dedupe: bool = True
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs the device solver; returns host (rates [.., N], history [.., K], lb, relaxed)."""
    mesh, axis, shards = _mesh_axis(mesh, axis)
    if dedupe:
        obj, mult, inverse = _dedupe(prep.obj)
    else:
        obj, mult, inverse = prep.obj, None, None
    host, _ = _layout(obj, prep.target, prep.guard, dtype, shards, mult)
    data = _put(host, mesh, axis)
    lam_arr = jnp.asarray(lam, dtype)
    n = obj.num_images
    # Dual prices live on the scale 1 / T; scaling the step ratio by the typical target
    # makes the default work across data sets of any size.
    step_ratio = float(step_ratio) * float(np.median(prep.target[prep.target > 0]))
    chunk = num_steps if progress is None else max(1, min(progress_every, num_steps))
    hist = []
    if objective == "l1":
        state = _pdhg_init(data)
        if batched:
            state = jax.tree.map(lambda x: jnp.broadcast_to(x, (lam_arr.shape[0], *x.shape)),
                                 state)
        if mesh is not None:
            from jax.sharding import NamedSharding, PartitionSpec as P

            lead = (None,) if batched else ()
            state = state._replace(rates=jax.device_put(
                    state.rates, NamedSharding(mesh, P(*lead, axis))))
        done = 0
        while done < num_steps:
            k = min(chunk, num_steps - done)
            state, h = _run_l1(state, data, lam_arr, max_repeat, step_ratio, num_steps=k,
                               mesh=mesh, axis=axis, batched=batched)
            hist.append(h)
            done += k
            if progress is not None:
                progress(done, np.asarray(h[..., -1]))
        rates = _expand(np.asarray(state.rates)[..., :n], inverse)
        lb = np.asarray(state.best_lb, np.float64)
    else:
        if mesh is not None:
            raise ValueError("`mesh` is supported for objective='l1' only.")
        opt = optimizer if optimizer is not None else optax.adam(0.05)
        run = jax.jit(functools.partial(_smooth_chunk, optimizer=opt, kind=objective,
                                        delta=delta, num_steps=chunk, axis_name=None))
        last = jax.jit(functools.partial(_smooth_chunk, optimizer=opt, kind=objective,
                                         delta=delta, num_steps=num_steps % chunk or chunk,
                                         axis_name=None))

        def one(lm):
            rates0 = jnp.ones((data.inv_row.shape[0],), data.vals.dtype)
            carry = (rates0, opt.init(rates0))
            hs = []
            done = 0
            while done < num_steps:
                k = min(chunk, num_steps - done)
                # optax's own code (e.g. adam's bias correction) relies on standard
                # promotion; keep it working when the user runs with "strict".
                with jax.numpy_dtype_promotion("standard"):
                    carry, h = (run if k == chunk else last)(carry, data, lm, max_repeat)
                hs.append(h)
                done += k
                if progress is not None:
                    progress(done, np.asarray(h[-1]))
            return _expand(np.asarray(carry[0])[:n], inverse), np.concatenate(
                    [np.asarray(x) for x in hs])

        if batched:
            outs = [one(lam_arr[j]) for j in range(lam_arr.shape[0])]
            rates = np.stack([o[0] for o in outs])
            history = np.stack([o[1] for o in outs])
        else:
            rates, history = one(lam_arr)
        lb = np.full(np.shape(lam_arr), np.nan)
        return rates, history, lb, history[..., -1]
    history = np.concatenate([np.asarray(h) for h in hist], axis=-1)
    return rates, history, lb, history[..., -1]


# ---------------------------------------------------------------------------------------
# Host side: rounding and repair.
# ---------------------------------------------------------------------------------------


_HASH_KEYS = ((0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9),
              (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB))


def _row_hash(obj: _Objects, seed: int = 0) -> np.ndarray:
    """A 64-bit content hash per image (order-free sum over its entries)."""
    k1, k2, k3 = (np.uint64(k) for k in _HASH_KEYS[seed])
    with np.errstate(over="ignore"):
        x = ((obj.cls.astype(np.uint64) + np.uint64(1)) * k1) ^ (obj.vals.astype(np.uint64) * k2)
        # A multiply-xorshift finaliser, so that the per-image sum mixes well.
        x ^= x >> np.uint64(31)
        h = x * k3
        h ^= h >> np.uint64(29)
        out = np.zeros(obj.num_images, np.uint64)
        if h.size:
            starts = np.flatnonzero(np.r_[True, obj.img[1:] != obj.img[:-1]])
            out[obj.img[starts]] = np.add.reduceat(h, starts)
    return out


def _group_round(rates: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Systematic rounding along ``order``: every contiguous run keeps its total to +-1."""
    x = rates[order]
    base = np.floor(x)
    cum = np.floor(np.cumsum(x - base) + 0.5)
    inc = np.diff(np.r_[0.0, cum])
    out = np.empty(rates.shape, np.int64)
    out[order] = (base + inc).astype(np.int64)
    return out


class _Loss:
    """Per-class loss of integer totals, vectorised, plus the guard's violation."""

    def __init__(self, kind: str, target: np.ndarray, guard: np.ndarray, delta: float):
        self.kind, self.delta = kind, delta
        self.target, self.guard = target, guard
        self.active = target > 0
        self.t_safe = np.where(self.active, target, 1.0)

    def __call__(self, c: np.ndarray, s: np.ndarray) -> np.ndarray:
        t = self.target[c]
        if self.kind == "l1":
            per = np.abs(t - s) / self.t_safe[c]
        elif self.kind == "squared":
            per = ((s - t) / self.t_safe[c]) ** 2
        elif self.kind == "log":
            per = (np.log1p(s) - np.log1p(t)) ** 2
        else:
            x = np.abs(s - t) / self.t_safe[c]
            per = np.where(x < self.delta, 0.5 * x * x / self.delta, x - 0.5 * self.delta)
        return np.where(self.active[c], per, 0.0)

    def violation(self, c: np.ndarray, s: np.ndarray) -> np.ndarray:
        return np.maximum(self.guard[c] - s, 0.0)

    def value(self, s: np.ndarray, repeats: np.ndarray, lam: float) -> float:
        c = np.arange(s.size)
        return float(self(c, s).sum() + lam * np.abs(repeats - 1.0).sum())


_REPAIR_STATS: dict[str, int] = {}  # diagnostics of the last repair (for benchmarks)


def _repair(obj: _Objects, repeats: np.ndarray, loss: _Loss, lam: float, max_repeat: int,
            *, max_rounds: int = 200, per_round: int = 20000) -> np.ndarray:
    """Greedy +-1 moves: lexicographically lower (guard violation, F) at every accepted move.

    Every round scores the best single move of every image with the current totals
    (vectorised), then walks the most promising candidates in order and re-scores each one
    against the totals updated by the moves accepted before it.
    """
    r = repeats.astype(np.int64).copy()
    s = _class_totals(obj, r)
    n = obj.num_images
    indptr = np.searchsorted(obj.img, np.arange(n + 1))
    tol = 1e-12 * max(1.0, loss.value(s, r, lam))
    cls, vals, img = obj.cls, obj.vals, obj.img
    stats = _REPAIR_STATS
    stats.update(rounds=0, accepted=0)
    for _ in range(max_rounds):
        sc = s[cls]
        base_f, base_v = loss(cls, sc), loss.violation(cls, sc)
        scores = []
        for d in (1, -1):
            sn = sc + d * vals
            df = np.bincount(img, weights=loss(cls, sn) - base_f, minlength=n)
            dv = np.bincount(img, weights=loss.violation(cls, sn) - base_v, minlength=n)
            df += lam * (np.abs(r + d - 1.0) - np.abs(r - 1.0))
            bad = (r + d > max_repeat) | (r + d < 0) | (indptr[1:] == indptr[:-1])
            df[bad], dv[bad] = np.inf, np.inf
            scores.append((df, dv))
        (fp, vp), (fm, vm) = scores
        pick_plus = (vp < vm) | ((vp == vm) & (fp <= fm))
        df = np.where(pick_plus, fp, fm)
        dv = np.where(pick_plus, vp, vm)
        good = (dv < -0.5) | ((dv <= 0.5) & (df < -tol))
        cand = np.flatnonzero(good)
        if cand.size == 0:
            break
        order = np.lexsort((df[cand], dv[cand]))[:per_round]
        step = np.where(pick_plus, 1, -1)
        accepted = streak = 0
        for i in cand[order]:
            d = int(step[i])
            lo, hi = indptr[i], indptr[i + 1]
            c, v = cls[lo:hi], vals[lo:hi]
            old, new = s[c], s[c] + d * v
            ddv = float((loss.violation(c, new) - loss.violation(c, old)).sum())
            ddf = float((loss(c, new) - loss(c, old)).sum()
                        + lam * (abs(r[i] + d - 1) - abs(r[i] - 1)))
            if ddv < -0.5 or (ddv <= 0.5 and ddf < -tol):
                r[i] += d
                np.add.at(s, c, d * v)
                accepted += 1
                streak = 0
            else:
                # Most later candidates were scored against totals that have moved since;
                # after a run of rejections it is cheaper to re-score everything.
                streak += 1
                if streak >= 64 + accepted:
                    break
        stats["rounds"] += 1
        stats["accepted"] += accepted
        if accepted == 0:
            break
    return r


def _round_and_repair(obj: _Objects, rates: np.ndarray, target: np.ndarray, guard: np.ndarray,
                      lam: float, max_repeat: int, kind: str, delta: float,
                      hashes: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    rates = np.clip(np.asarray(rates, np.float64), 0, max_repeat)
    if hashes is None:
        hashes = _row_hash(obj)
    # Identical images get identical relaxed values: sorting by content (then rate) puts
    # each group in one contiguous run, whose total the systematic rounding keeps.
    order = np.lexsort((rates, hashes))
    r0 = np.clip(_group_round(rates, order), 0, max_repeat)
    loss = _Loss(kind, target, guard, delta)
    r = _repair(obj, r0, loss, lam, max_repeat)
    s = _class_totals(obj, r)
    if (s < guard - 1e-9).any():  # pragma: no cover - the repair provably prevents this.
        raise RuntimeError("resample: the repair could not restore the class guard.")
    return r.astype(np.int32), loss.value(s, r, lam)


# ---------------------------------------------------------------------------------------
# Public functions.
# ---------------------------------------------------------------------------------------


def solve(
        counts: Any,
        *,
        lam: ArrayLike | None = None,
        target: str | ArrayLike = "median",
        tau: float = 0.0,
        max_repeat: int = 4,
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
) -> Solution:
    r"""Per-image repeat counts that bring class totals close to a target.

    Use it to rebalance a multi-label or detection data set by duplicating images of rare
    classes and dropping images of common ones, while changing as few images as possible.
    The default objective is the exact L1 one,

    .. math::
      F(r) = \sum_c \frac{|T_c - s_c(r)|}{T_c} + \lambda \sum_i |r_i - 1|,\quad
      s_c(r) = \sum_i r_i Y_{ic},\quad r_i \in \{0, \dots, M\},

    with the guard :math:`s_c(r) \ge \min(s_c(1), \lfloor T_c \rfloor)` for every class
    (a free target would collapse to dropping everything, and plain L1 happily erases a
    class far below target; the guard prevents both). The relaxation over real ``r`` is
    solved by a primal-dual (Chambolle-Pock) iteration inside one jitted ``lax.scan``;
    its dual iterate yields a certified lower bound. The rates are then rounded so that
    every group of identical images keeps its total, and a greedy +-1 repair restores the
    guard and only lowers ``F``.

    The smooth objectives (``"squared"``: :math:`((s_c - T_c)/T_c)^2`, ``"log"``:
    :math:`(\log(1+s_c) - \log(1+T_c))^2`, ``"huber"``: Huber of :math:`|s_c - T_c|/T_c`)
    run projected steps of any ``optax`` optimizer instead (default ``optax.adam(0.05)``);
    the guard is then restored by the repair.

    Args:
      counts: ``[N, C]`` non-negative integer counts (objects of class ``c`` in image
        ``i``, or 0/1 presence): a dense NumPy/JAX array, a
        ``jax.experimental.sparse.BCOO`` matrix, or any ``scipy.sparse`` matrix (duck-typed
        through ``.tocoo()``; scipy is never imported here).
      lam: trade-off weight :math:`\lambda >= 0` on images changed. ``None`` (default)
        means ``0.5 / median class total`` (the setting of the quality bar). Traceable:
        see `solve_path` for a whole trade-off curve in one vmapped call.
      target: ``"median"`` (default), ``"mean"``, ``"max"`` or ``"min"`` of the original
        class totals (over classes with examples), a scalar, or an explicit ``[C]`` vector.
      tau: tempering exponent for a statistic target: ``T_c = m (n_c / m)^tau`` with ``m``
        the statistic and ``n_c`` the original totals (0 = uniform, 1 = unchanged).
      max_repeat: static int ``M >= 1``, the most copies of one image.
      num_steps: static number of solver steps (300 by default: within 0.1% of the LP
        optimum on VOC 2007+2012; ``lower_bound`` tells how far a run can still be).
      objective: ``"l1"`` (default, exact LP, primal-dual), or a smooth ``"squared"``,
        ``"log"`` or ``"huber"`` objective minimised with ``optimizer``.
      step_ratio: primal/dual step balance of the primal-dual method, in units of the
        median target: ``eta = step_ratio * median(T)``, ``tau_i = eta / sum_c Y_ic``,
        ``sigma_c = 1 / (eta n_c)``. Any value > 0 converges; 1 (default) was best on
        VOC and Enron among 0.1, 0.3, 1.
      optimizer: an ``optax.GradientTransformation`` for the smooth objectives.
      delta: smoothing width of ``"huber"`` (and of ``|r - 1|`` in the smooth objectives).
      empty_classes: ``"error"`` (default) raises when a class has no example at all;
        ``"ignore"`` leaves such classes out of the objective (target 0).
      dtype: floating dtype of the device computation (float32 by default).
      progress: optional host callable ``progress(step, objective)``, called every
        ``progress_every`` steps while the solver runs (the jitted loop runs in chunks).
      progress_every: static chunk length for ``progress``.
      mesh: optional ``jax.sharding.Mesh``. The object list and the per-image arrays are
        then split into equal image blocks, placed with ``NamedSharding`` along ``axis``,
        and the loop runs under ``shard_map`` with class totals reduced by ``psum``;
        the result matches the single-device one (up to float summation order).
      axis: the mesh axis that splits images (default: the mesh's only axis).
      dedupe: run the relaxed solver on the distinct rows of ``counts`` with their
        multiplicities (default). Identical images have identical iterates, so this
        changes nothing but the speed (up to float summation order).

    Returns:
      A `Solution`: ``rates`` (float ``[N]``), ``repeats`` (int32 ``[N]``), ``objective``
      (``F`` of ``repeats``), ``history`` (``[num_steps]``), ``relaxed_objective``,
      ``lower_bound`` (certified, L1 only), ``target``, ``guard``, ``lam``.

    Raises:
      ValueError: negative, NaN, infinite or non-integer counts, rank other than 2,
        ``max_repeat < 1``, empty classes (unless ignored), a non-positive target, an
        unknown ``target``/``objective`` name or a negative ``lam``.
      TypeError: non-numeric counts or a non-integer ``max_repeat``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import resample
      >>> counts = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [1, 1]])
      >>> sol = resample.solve(counts, lam=0.01, num_steps=300)
      >>> resample.summary(counts, sol.repeats).ratio_after <= 1.5
      True

    References:
      Chambolle & Pock, `A first-order primal-dual algorithm for convex problems with
      applications to imaging <https://doi.org/10.1007/s10851-010-0251-1>`_, 2011.
      Pock & Chambolle, `Diagonal preconditioning for first order primal-dual algorithms
      in convex optimization <https://doi.org/10.1109/ICCV.2011.6126441>`_, 2011.

    .. versionadded:: 0.1.0
    """
    return _solve(counts, lam=lam, target=target, tau=tau, max_repeat=max_repeat,
                  num_steps=num_steps, objective=objective, step_ratio=step_ratio,
                  optimizer=optimizer, delta=delta, empty_classes=empty_classes, dtype=dtype,
                  progress=progress, progress_every=progress_every, mesh=mesh, axis=axis,
                  dedupe=dedupe, batched=False)


def solve_path(
        counts: Any,
        lams: ArrayLike,
        *,
        target: str | ArrayLike = "median",
        tau: float = 0.0,
        max_repeat: int = 4,
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
) -> Solution:
    r"""The whole trade-off curve: `solve` for every ``lam`` in one ``jax.vmap``-ed call.

    The relaxed solver is vmapped over ``lams`` (one compiled program, one pass over the
    object list per step for all values together); each relaxed solution is then rounded
    and repaired on the host. Plotting ``summary(...).cv_after`` against the number of
    images changed gives the Pareto front of balance versus edits.

    Args:
      counts: as in `solve`.
      lams: ``[L]`` values of ``lam`` (each ``>= 0``).
      target: as in `solve`.
      tau: as in `solve`.
      max_repeat: as in `solve`.
      num_steps: as in `solve`.
      objective: as in `solve` (the smooth objectives loop over ``lams`` instead).
      step_ratio: as in `solve`.
      optimizer: as in `solve`.
      delta: as in `solve`.
      empty_classes: as in `solve`.
      dtype: as in `solve`.
      progress: as in `solve`; ``objective`` is then an ``[L]`` array.
      progress_every: as in `solve`.
      mesh: as in `solve`.
      axis: as in `solve`.
      dedupe: as in `solve`.

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
    lams = np.asarray(lams)
    if lams.ndim != 1 or lams.size == 0:
        raise ValueError(f"`lams` must be a non-empty 1-D array, got shape {lams.shape}.")
    return _solve(counts, lam=lams, target=target, tau=tau, max_repeat=max_repeat,
                  num_steps=num_steps, objective=objective, step_ratio=step_ratio,
                  optimizer=optimizer, delta=delta, empty_classes=empty_classes, dtype=dtype,
                  progress=progress, progress_every=progress_every, mesh=mesh, axis=axis,
                  dedupe=dedupe, batched=True)


def _solve(counts, *, lam, target, tau, max_repeat, num_steps, objective, step_ratio,
           optimizer, delta, empty_classes, dtype, progress, progress_every, mesh, axis,
           dedupe, batched) -> Solution:
    checks.check_one_of(objective, _OBJECTIVES, "objective")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or \
            num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive int, got {num_steps!r}.")
    checks.check_scalar_range(step_ratio, "step_ratio", low=0.0, low_inclusive=False)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype}.")
    prep = _prepare(counts, None if lam is None else lam, target, tau, max_repeat,
                    empty_classes)
    lam_val = prep.lam
    rates, history, lb, relaxed = _relax(
            prep, lam_val, batched=batched, objective=objective, num_steps=int(num_steps),
            max_repeat=max_repeat, step_ratio=step_ratio, optimizer=optimizer, delta=delta,
            dtype=dtype, progress=progress, progress_every=int(progress_every), mesh=mesh,
            axis=axis, dedupe=bool(dedupe))
    hashes = _row_hash(prep.obj)
    lam_np = np.asarray(lam_val, np.float64)
    if batched:
        outs = [_round_and_repair(prep.obj, rates[j], prep.target, prep.guard,
                                  float(lam_np[j]), max_repeat, objective, delta, hashes)
                for j in range(rates.shape[0])]
        repeats = np.stack([o[0] for o in outs])
        value = np.asarray([o[1] for o in outs])
        tgt = np.broadcast_to(prep.target, (rates.shape[0], prep.target.size))
        grd = np.broadcast_to(prep.guard, tgt.shape)
    else:
        repeats, value = _round_and_repair(prep.obj, rates, prep.target, prep.guard,
                                           float(lam_np), max_repeat, objective, delta,
                                           hashes)
        tgt, grd = prep.target, prep.guard
    return Solution(rates=jnp.asarray(rates, dtype), repeats=jnp.asarray(repeats, jnp.int32),
                    objective=jnp.asarray(value, dtype), history=jnp.asarray(history, dtype),
                    relaxed_objective=jnp.asarray(relaxed, dtype),
                    lower_bound=jnp.asarray(lb, dtype), target=jnp.asarray(tgt, dtype),
                    guard=jnp.asarray(grd, dtype), lam=jnp.asarray(lam_np, dtype))


def objective_value(counts: Any, repeats: ArrayLike, *, lam: float | None = None,
                    target: str | ArrayLike = "median", tau: float = 0.0,
                    objective: str = "l1", delta: float = 0.05,
                    empty_classes: str = "error") -> float:
    r"""``F(r)`` of given repeat counts, with the same defaults as `solve`.

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
    """
    checks.check_one_of(objective, _OBJECTIVES, "objective")
    prep = _prepare(counts, lam, target, tau, 1, empty_classes)
    r = np.asarray(repeats, np.float64)
    checks.check_shape(r, (prep.obj.num_images,), "repeats", "([num_images])")
    loss = _Loss(objective, prep.target, prep.guard, delta)
    return loss.value(_class_totals(prep.obj, r), r, float(prep.lam))


def repeat_factor_sampling(counts: Any, *, threshold: ArrayLike = 0.001,
                           sqrt: bool = True) -> Array:
    r"""Expected repeat factors of LVIS repeat-factor sampling (a baseline).

    As in LVIS and detectron2's ``RepeatFactorTrainingSampler``: with :math:`f_c` the
    fraction of images that contain class ``c``,

    .. math::
      r_c = \max\Big(1, \sqrt{t / f_c}\Big), \qquad r_i = \max_{c \in i} r_c,

    and images without any class get ``r_i = 1``. It never drops an image, so it cannot
    lower frequent classes; compare with `solve`.

    Args:
      counts: ``[N, C]`` counts or presence (only ``> 0`` matters): dense, BCOO or scipy.
        A dense JAX array works under ``jit`` (and ``threshold`` is traceable).
      threshold: frequency threshold ``t`` (LVIS and detectron2 use 0.001; on the 20
        classes of Pascal VOC, 0.1 is the value in the benchmarks). Must be > 0.
      sqrt: static; ``True`` uses :math:`\sqrt{t/f_c}` (LVIS), ``False`` uses ``t/f_c``.

    Returns:
      float32 ``[N]`` expected repeat factors (round them with `stochastic_round`).

    Raises:
      ValueError: bad ``counts`` (see `solve`) or ``threshold <= 0``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import resample
      >>> counts = np.array([[1, 0], [1, 0], [1, 0], [1, 1]])
      >>> print(np.round(np.asarray(resample.repeat_factor_sampling(counts, threshold=0.5)), 4))
      [1.     1.     1.     1.4142]

    References:
      Gupta, Dollar & Girshick, `LVIS: A Dataset for Large Vocabulary Instance Segmentation
      <https://arxiv.org/abs/1908.03195>`_, 2019.

    .. versionadded:: 0.1.0
    """
    checks.check_scalar_range(threshold, "threshold", low=0.0, low_inclusive=False)
    if isinstance(counts, (jax.Array, np.ndarray)):
        # Dense input: a pure jnp formula (works under jit); value checks when concrete.
        if checks.is_concrete(counts):
            _objects(counts)
        checks.check_rank(counts, 2, "counts", "([num_images, num_classes])")
        present = jnp.asarray(counts) > 0
        dtype = jnp.float32
        freq = jnp.mean(present.astype(dtype), axis=0)
        t = jnp.asarray(threshold, dtype)
        ratio = t / jnp.maximum(freq, jnp.finfo(dtype).tiny)
        rc = jnp.maximum(1, jnp.sqrt(ratio) if sqrt else ratio)
        return jnp.max(jnp.where(present, rc[None, :], jnp.ones((), dtype)), axis=1)
    obj = _objects(counts)
    # Duplicate (image, class) entries of a sparse matrix count once for the frequency.
    pairs = np.unique(obj.img * obj.num_classes + obj.cls)
    img_u, cls_u = pairs // obj.num_classes, pairs % obj.num_classes
    present_cls = np.bincount(cls_u, minlength=obj.num_classes)
    freq = jnp.asarray(present_cls / obj.num_images, jnp.float32)
    t = jnp.asarray(threshold, jnp.float32)
    ratio = t / jnp.maximum(freq, jnp.finfo(jnp.float32).tiny)
    rc = jnp.maximum(1, jnp.sqrt(ratio) if sqrt else ratio)
    per = rc[jnp.asarray(cls_u, jnp.int32)]
    out = jax.ops.segment_max(per, jnp.asarray(img_u, jnp.int32), num_segments=obj.num_images,
                              indices_are_sorted=True)
    return jnp.maximum(out, 1)


def stochastic_round(key: PRNGKey, rates: ArrayLike) -> Array:
    r"""Unbiased integer rounding: ``floor(x) + Bernoulli(x - floor(x))`` per entry.

    Args:
      key: a ``jax.random.key``.
      rates: ``[...]`` non-negative floating rates (e.g. `repeat_factor_sampling`).

    Returns:
      int32 array of the same shape with :math:`E[\text{out}] = \text{rates}`.

    Raises:
      TypeError: non-floating ``rates``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import resample
      >>> r = resample.stochastic_round(jax.random.key(0), jnp.array([0.0, 1.0, 2.5]))
      >>> r.dtype, int(r[0]), int(r[1]), int(r[2]) in (2, 3)
      (dtype('int32'), 0, 1, True)

    .. versionadded:: 0.1.0
    """
    rates = checks.check_array(rates, "rates")
    checks.check_floating(rates, "rates")
    rates = jnp.asarray(rates)
    base = jnp.floor(rates)
    u = jax.random.uniform(key, rates.shape, rates.dtype)
    return (base + (u < rates - base).astype(rates.dtype)).astype(jnp.int32)


def indices(repeats: ArrayLike, *, total_size: int | None = None) -> Array:
    r"""The resampled index list: image ``i`` appears ``repeats[i]`` times, in order.

    Feed it to any data loader (a grain/tf.data index source, a PyTorch ``Sampler``);
    shuffle it there.

    Args:
      repeats: ``[N]`` non-negative integer repeat counts.
      total_size: static output length. ``None`` (default) uses ``sum(repeats)`` and needs
        concrete ``repeats``; pass it to use the function under ``jit`` (extra slots are
        filled with the last index, as ``jnp.repeat`` does).

    Returns:
      int32 ``[sum(repeats)]`` (or ``[total_size]``) image indices.

    Raises:
      ValueError: negative or non-integer repeats, or rank other than 1.

    Examples:
      >>> from jbalance import resample
      >>> resample.indices([0, 2, 1]).tolist()
      [1, 1, 2]

    .. versionadded:: 0.1.0
    """
    repeats = checks.check_array(repeats, "repeats")
    checks.check_rank(repeats, 1, "repeats", "([num_images])")
    if total_size is None:
        if not checks.is_concrete(repeats):
            raise ValueError("`indices` under jit needs a static `total_size`.")
        host = np.asarray(repeats)
        if (host != np.floor(host)).any() or (host < 0).any():
            raise ValueError("`repeats` must be non-negative integers.")
        total_size = int(host.sum())
    reps = jnp.asarray(repeats).astype(jnp.int32)
    return jnp.repeat(jnp.arange(reps.shape[0], dtype=jnp.int32), reps,
                      total_repeat_length=total_size)


def _ratio_cv(totals: np.ndarray) -> tuple[float, float]:
    pos = totals[totals > 0]
    ratio = float(totals.max() / totals.min()) if totals.min() > 0 else math.inf
    if pos.size == 0:
        return math.inf, math.nan
    mean = float(totals.mean())
    cv = float(totals.std() / mean) if mean > 0 else math.nan
    return ratio, cv


def summary(counts: Any, repeats: ArrayLike) -> Summary:
    r"""Class totals and balance statistics before and after applying ``repeats``.

    Args:
      counts: ``[N, C]`` counts (dense, BCOO or scipy.sparse).
      repeats: ``[N]`` non-negative repeat counts (e.g. ``solve(...).repeats``).

    Returns:
      A `Summary`: ``totals_before``/``totals_after`` (float64 ``[C]``),
      ``ratio_before``/``ratio_after`` (max/min class total; ``inf`` when a class total is
      0), ``cv_before``/``cv_after`` (standard deviation / mean of the class totals),
      ``dropped`` (images with ``r = 0``), ``duplicated`` (``r > 1``),
      ``size_before``/``size_after`` (number of images), ``erased`` (classes whose total
      went from > 0 to 0). Plain Python/NumPy values: ``._asdict()`` is JSON-ready after
      ``.tolist()`` of the two arrays.

    Raises:
      ValueError: bad ``counts``, or ``repeats`` of the wrong shape or negative.

    Examples:
      >>> from jbalance import resample
      >>> s = resample.summary([[1, 0], [1, 0], [0, 1]], [1, 0, 2])
      >>> s.totals_after.tolist(), s.ratio_before, s.ratio_after
      ([1.0, 2.0], 2.0, 2.0)

    .. versionadded:: 0.1.0
    """
    obj = _objects(counts)
    r = np.asarray(repeats)
    checks.check_shape(r, (obj.num_images,), "repeats", "([num_images])")
    if (r < 0).any():
        raise ValueError("`repeats` must be non-negative.")
    before = _class_totals(obj)
    after = _class_totals(obj, r)
    rb, cb = _ratio_cv(before)
    ra, ca = _ratio_cv(after)
    erased = tuple(int(c) for c in np.flatnonzero((before > 0) & (after <= 0)))
    return Summary(totals_before=before, totals_after=after, ratio_before=rb, ratio_after=ra,
                   cv_before=cb, cv_after=ca, dropped=int((r == 0).sum()),
                   duplicated=int((r > 1).sum()), size_before=int(obj.num_images),
                   size_after=int(np.asarray(r, np.int64).sum()), erased=erased)
