r"""The resampling problem: validated inputs, targets, guard, and the device layout.

Host side (concrete inputs): dense, BCOO, ``scipy.sparse`` counts or ``[N]`` class ids
become a sorted object list ``(image, class, count)`` (`objects`), identical images are
merged with a multiplicity (`dedupe`), and everything is laid out as device arrays
(`build`). Traced side (under ``jit``/``vmap``/``grad`` with the counts themselves traced):
a dense ``[N, C]`` matrix becomes the same `Problem` with every entry as an object
(`build_traced`), so that one jitted core serves both.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.typing import Array

STATS = ("median", "mean", "max", "min")
OBJECTIVES = ("l1", "squared", "log", "huber")
# The repair keeps class totals in int32 (times up to max_repeat): bound the inputs.
MAX_TOTAL = float(2**28)
# The fewest copies of an image a plan may keep: 0 lets the solver drop images, 1 makes it
# oversample only. The solver's entry points (solve, relax, solve_path) default to the
# general problem (0); `plan` and the command line, which make the list a model trains on,
# default to oversampling only (1): plans that drop images cost the classifiers of the
# training studies points (docs/study.md, "Plan settings for the library's defaults").
DEFAULT_MIN_REPEAT = 0
PLAN_MIN_REPEAT = 1
MIN_REPEATS = (0, 1)


class Objects(NamedTuple):
    """Validated object list, sorted by image, in int32 (half the host memory of int64: the
    list of a large set is its largest host array)."""

    img: np.ndarray   # int32 [nnz]
    cls: np.ndarray   # int32 [nnz]
    vals: np.ndarray  # int32 [nnz], > 0
    num_images: int
    num_classes: int


def _is_bcoo(x: Any) -> bool:
    from jax.experimental import sparse as jsparse

    return isinstance(x, jsparse.BCOO)


def is_sparse(x: Any) -> bool:
    """BCOO or any ``scipy.sparse`` matrix (duck-typed through ``.tocoo()``)."""
    return _is_bcoo(x) or (hasattr(x, "tocoo") and not isinstance(x, (np.ndarray, jax.Array)))


def class_ids_to_counts(ids: Any, num_classes: int | None, name: str = "counts") -> Any:
    """``[N]`` integer class ids to a dense ``[N, C]`` 0/1 matrix (traced or concrete)."""
    checks.check_integer(ids, name)
    if checks.is_concrete(ids):
        host = np.asarray(ids)
        if host.size == 0:
            raise ValueError(f"`{name}` as class ids must hold at least one image.")
        if host.min() < 0:
            raise ValueError(f"`{name}` as class ids must be >= 0, got {host.min()}.")
        c = int(host.max()) + 1 if num_classes is None else int(num_classes)
        if host.max() >= c:
            raise ValueError(f"`{name}` holds class id {host.max()} but `num_classes` is {c}; "
                             "ids must lie in [0, num_classes).")
        if host.size * c > 2**31:
            raise ValueError(f"`{name}`: {host.size} images x {c} classes is too large for a "
                             "dense matrix; pass a scipy.sparse matrix instead.")
        out = np.zeros((host.size, c), np.int32)
        out[np.arange(host.size), host] = 1
        return out
    if num_classes is None:
        raise ValueError(f"`{name}` as traced class ids needs a static `num_classes=`.")
    return jax.nn.one_hot(ids, num_classes, dtype=jnp.int32)


def objects(counts: Any, name: str = "counts", num_classes: int | None = None) -> Objects:
    """Converts dense / class ids / BCOO / scipy.sparse counts to a validated object list."""
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
    elif is_sparse(counts):
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
            raise TypeError(f"`{name}` must be a [num_images, num_classes] array, [N] class "
                            "ids, a jax.experimental.sparse.BCOO or a scipy.sparse matrix; "
                            f"got {type(counts).__name__}.")
        if np.ndim(counts) == 1 and np.issubdtype(np.asarray(counts).dtype, np.integer):
            counts = class_ids_to_counts(counts, num_classes, name)
        checks.check_rank(counts, 2, name, "([num_images, num_classes], or [N] class ids)")
        dense = np.asarray(counts)
        if not (np.issubdtype(dense.dtype, np.number) or dense.dtype == np.bool_):
            raise TypeError(f"`{name}` must be numeric or boolean, got dtype {dense.dtype}.")
        rows, cols = np.nonzero(dense)
        vals = dense[rows, cols]
        n_img, n_cls = dense.shape
    bad = checks.count_problem(vals)
    if bad is not None:
        raise ValueError(f"`{name}`: {bad[1]} (pass object counts or 0/1 presence).")
    if n_img < 1 or n_cls < 1:
        raise ValueError(f"`{name}` must have at least one image and one class, got shape "
                         f"{(n_img, n_cls)}.")
    if max(n_img, n_cls) >= 2**31:
        raise ValueError(f"`{name}` has shape {(n_img, n_cls)}; at most 2**31 - 1 images "
                         "and classes are supported (int32 indices).")
    # Memory: int32 throughout, and boolean tests rather than int64 differences, so that the
    # temporaries of a large list stay small (freed host memory is not always returned).
    keep = np.asarray(vals) > 0
    rows, cols, vals = (np.asarray(rows)[keep].astype(np.int32, copy=False),
                        np.asarray(cols)[keep].astype(np.int32, copy=False),
                        np.asarray(vals)[keep].astype(np.int32, copy=False))
    if rows.size > 1 and (rows[1:] < rows[:-1]).any():
        order = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
    if rows.size > 1 and ((rows[1:] == rows[:-1]) & (cols[1:] <= cols[:-1])).any():
        # A non-canonical sparse matrix may repeat an (image, class) entry: add them up, so
        # that every image lists each class once (the repair relies on it).
        key = rows.astype(np.int64) * n_cls + cols
        order = np.argsort(key, kind="stable")
        key = key[order]
        uniq, start = np.unique(key, return_index=True)
        sums = np.add.reduceat(vals[order].astype(np.int64), start)
        if sums.max() > MAX_TOTAL:
            raise ValueError(f"`{name}`: a count of {sums.max()} is too large for 32-bit "
                             f"arithmetic (limit {MAX_TOTAL:.3g}); pass presence instead.")
        rows, cols = (uniq // n_cls).astype(np.int32), (uniq % n_cls).astype(np.int32)
        vals = sums.astype(np.int32)
    totals = np.bincount(cols, weights=vals, minlength=int(n_cls))
    if totals.size and totals.max() > MAX_TOTAL:
        raise ValueError(f"`{name}`: a class total of {totals.max():.3g} is too large for "
                         f"32-bit arithmetic (limit {MAX_TOTAL:.3g}); pass presence "
                         "(counts > 0) instead of object counts.")
    return Objects(rows, cols, vals, int(n_img), int(n_cls))


def class_totals(obj: Objects, repeats: np.ndarray | None = None) -> np.ndarray:
    weights = obj.vals if repeats is None else obj.vals * np.asarray(repeats, np.float64)[obj.img]
    return np.bincount(obj.cls, weights=weights, minlength=obj.num_classes)


def host_target(totals: np.ndarray, target: Any, tau: float, empty_classes: str) -> np.ndarray:
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
        stat = float(getattr(np, target)(totals[active]))
        return np.where(active, stat * (np.maximum(totals, 1e-300) / stat) ** float(tau), 0.0)
    arr = np.asarray(target, np.float64)
    if arr.ndim == 0:
        arr = np.full(totals.shape, float(arr))
    checks.check_shape(arr, (totals.size,), "target", "([num_classes])")
    if not np.isfinite(arr).all() or (arr[active] <= 0).any():
        raise ValueError("`target` must be finite and > 0 for every class with examples.")
    if arr.max() > MAX_TOTAL:
        raise ValueError(f"`target` must be at most {MAX_TOTAL:.3g} (32-bit totals).")
    return np.where(active, arr, 0.0)


def traced_target(totals: Array, target: Any, tau: Any) -> Array:
    """`host_target` in JAX (empty classes are ignored: no error can be raised here)."""
    active = totals > 0
    if isinstance(target, str):
        if target == "median":
            stat = jnp.nanmedian(jnp.where(active, totals, jnp.nan))
        elif target == "mean":
            stat = jnp.sum(jnp.where(active, totals, 0)) / jnp.maximum(jnp.sum(active), 1)
        elif target == "max":
            stat = jnp.max(jnp.where(active, totals, -jnp.inf))
        else:
            stat = jnp.min(jnp.where(active, totals, jnp.inf))
        safe = jnp.where(active, totals, stat)
        return jnp.where(active, stat * (safe / stat) ** jnp.asarray(tau, totals.dtype), 0)
    arr = jnp.broadcast_to(jnp.asarray(target, totals.dtype), totals.shape)
    return jnp.where(active, arr, 0)


def check_min_repeat(min_repeat: Any) -> int:
    """``min_repeat`` must be the int 0 or 1 (a `ValueError` naming it otherwise)."""
    if isinstance(min_repeat, bool) or not isinstance(min_repeat, (int, np.integer)) or \
            int(min_repeat) not in MIN_REPEATS:
        raise ValueError(f"`min_repeat` must be 0 (images may be dropped) or 1 (every image "
                         f"kept at least once), got {min_repeat!r}.")
    return int(min_repeat)


def check_options(*, target: Any, tau: Any, max_repeat: Any, empty_classes: str,
                  objective: str, num_steps: Any, step_ratio: Any, dtype: Any,
                  min_repeat: Any = DEFAULT_MIN_REPEAT) -> None:
    """Static-option checks shared by every entry point."""
    checks.check_one_of(empty_classes, ("error", "ignore"), "empty_classes")
    checks.check_one_of(objective, OBJECTIVES, "objective")
    if isinstance(target, str):
        checks.check_one_of(target, STATS, "target")
    if isinstance(max_repeat, bool) or not isinstance(max_repeat, (int, np.integer)):
        raise TypeError(f"`max_repeat` must be a Python int >= 1, got {max_repeat!r}.")
    if max_repeat < 1:
        raise ValueError(f"`max_repeat` must be >= 1 (1 means 'never duplicate'), got "
                         f"{max_repeat}.")
    check_min_repeat(min_repeat)
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or \
            num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive int, got {num_steps!r}.")
    check_hyper(tau, "tau", positive=False)
    check_hyper(step_ratio, "step_ratio", positive=True)
    checks.floating_dtype(dtype)


def check_hyper(value: Any, name: str, *, positive: bool = False) -> None:
    """A concrete hyper-parameter must be finite and ``>= 0`` (``> 0`` if ``positive``)."""
    if value is None or not checks.is_concrete(value):
        return
    arr = np.asarray(value, np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    if (arr <= 0).any() if positive else (arr < 0).any():
        raise ValueError(f"`{name}` must be {'>' if positive else '>='} 0, got {value!r}.")


# ---------------------------------------------------------------------------------------
# Deduplication of identical images.
# ---------------------------------------------------------------------------------------


_HASH_KEYS = ((0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9),
              (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB))


def _row_hash(obj: Objects, seed: int = 0) -> np.ndarray:
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


def dedupe(obj: Objects) -> tuple[Objects, np.ndarray, np.ndarray]:
    """Collapses identical images into one row with a multiplicity.

    The primal-dual iteration gives identical images identical iterates (same row, same
    step size), so it runs on the distinct rows only: ``s = sum_g m_g r_g Y_g`` and the
    image term ``lam sum_g m_g |r_g - 1|``. Rows are grouped by a 64-bit content hash and
    confirmed with a second, independent one; on any disagreement nothing is merged.

    Returns:
      The reduced object list, the multiplicity ``[G]`` of each row and, for every image,
      the index of its row (``[N]``).
    """
    h1 = _row_hash(obj)
    _, first, inverse, mult = np.unique(h1, return_index=True, return_inverse=True,
                                        return_counts=True)
    h2 = _row_hash(obj, seed=1)
    if (h2 != h2[first][inverse]).any():  # pragma: no cover - a 64-bit collision.
        return obj, np.ones(obj.num_images), np.arange(obj.num_images)
    group_of_rep = np.full(obj.num_images, -1, np.int64)
    group_of_rep[first] = np.arange(first.size)
    g = group_of_rep[obj.img]
    keep = g >= 0
    order = np.argsort(g[keep], kind="stable")
    red = Objects(g[keep][order].astype(np.int32), obj.cls[keep][order],
                  obj.vals[keep][order], int(first.size), obj.num_classes)
    return red, mult.astype(np.float64), inverse.reshape(-1)


# ---------------------------------------------------------------------------------------
# Device layout.
# ---------------------------------------------------------------------------------------


class Data(NamedTuple):
    """Device arrays of the relaxed problem. Per-object and per-image arrays may be sharded."""

    img: Array      # int32 [nnz] (local image index when sharded), sorted
    cls: Array      # int32 [nnz]
    vals: Array     # float [nnz]
    inv_row: Array  # float [G], 1 / sum_c Y_ic (0 for images without objects or padding)
    mult: Array     # float [G], copies of this (deduplicated) image; 0 for padding
    inv_col: Array  # float [C], 1 / n_c (0 for ignored classes)
    target: Array   # float [C]
    weight: Array   # float [C], 1 / T_c (0 for ignored classes)
    guard: Array    # float [C]


class Full(NamedTuple):
    """The full (not deduplicated) object list, for rounding and repair. Never sharded."""

    img: Array      # int32 [nnz + W], sorted; W padding entries (value 0) at the end
    cls: Array      # int32 [nnz + W]
    vals: Array     # int32 [nnz + W]
    indptr: Array   # int32 [N + 1], objects of image i are [indptr[i], indptr[i + 1])
    order: Array    # int32 [N], a permutation listing identical images next to each other
    inverse: Array  # int32 [N], the row of `Data` that image i uses
    num_images: Array  # int32 [], images before padding (the rest have no objects)


class Problem(NamedTuple):
    """Everything the jitted core needs (a pytree of arrays)."""

    data: Data
    full: Full
    totals: Array   # float [C], original class totals


_SHARDED = ("img", "cls", "vals", "inv_row", "mult")


def bucket(x: int) -> int:
    """Smallest ``m * 2^e >= x`` with ``8 <= m < 16`` (at most 12.5% padding)."""
    if x <= 16:
        return max(x, 1)
    e = max(int(x).bit_length() - 4, 0)
    return -(-x // (1 << e)) * (1 << e)


def layout(obj: Objects, target: np.ndarray, guard: np.ndarray, dtype: Any,
           num_shards: int, mult: np.ndarray | None = None) -> tuple[Data, int]:
    """Splits the object list into ``num_shards`` equal image blocks (padded), on the host.

    Padding entries have value 0 and point at the block's last image, so the per-block
    image indices stay sorted and contribute nothing. Sizes are rounded up to a few buckets
    per octave, so that problems of similar size reuse one compiled program.
    """
    n, c = obj.num_images, obj.num_classes
    b = bucket(-(-n // num_shards))
    rowsum = np.bincount(obj.img, weights=obj.vals, minlength=b * num_shards)
    inv_row = np.where(rowsum > 0, 1.0 / np.maximum(rowsum, 1e-300), 0.0)
    mult_pad = np.zeros(b * num_shards)
    mult_pad[:n] = 1.0 if mult is None else mult
    totals = np.bincount(obj.cls, weights=obj.vals * mult_pad[obj.img], minlength=c)
    active = target > 0
    inv_col = np.where(active, 1.0 / np.maximum(totals, 1e-300), 0.0)
    weight = np.where(active, 1.0 / np.where(active, target, 1.0), 0.0)
    starts = np.searchsorted(obj.img, np.arange(num_shards + 1) * b)
    length = bucket(max(int(np.diff(starts).max()), 1))
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
    data = Data(img=img, cls=cls, vals=vals, inv_row=inv_row.astype(dtype),
                mult=mult_pad.astype(dtype), inv_col=inv_col.astype(dtype),
                target=target.astype(dtype), weight=weight.astype(dtype),
                guard=guard.astype(dtype))
    return data, b


def put(data: Data, mesh: Any, axis: str | None) -> Data:
    if mesh is None:
        return jax.tree.map(jnp.asarray, data)
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    return Data(**{k: jax.device_put(v, NamedSharding(mesh, P(axis) if k in _SHARDED else P()))
                   for k, v in data._asdict().items()})


def mesh_axis(mesh: Any, axis: str | None) -> tuple[Any, str | None, int]:
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


def row_width(n: int) -> int:
    """Static width of the per-image slices of the repair (a power of two >= n)."""
    return 1 << max(int(n) - 1, 0).bit_length()


class Host(NamedTuple):
    """A problem prepared on the host, plus what only the host knows (static).

    The object list itself is not kept: once laid out on the device it would only double
    the host memory of a large solve (the guard check reads the device copy).
    """

    problem: Problem
    num_images: int
    target: np.ndarray
    guard: np.ndarray
    lam: float       # default lam = 0.5 / median class total
    width: int       # static slice width of the repair


def build(counts: Any, *, target: Any, tau: Any, empty_classes: str, dtype: Any,
          mesh: Any = None, axis: str | None = None, dedupe_rows: bool = True,
          num_classes: int | None = None) -> Host:
    """Validates concrete ``counts`` and lays the problem out on the device(s)."""
    mesh, axis, shards = mesh_axis(mesh, axis)
    obj = objects(counts, num_classes=num_classes)
    totals = class_totals(obj)
    tgt = host_target(totals, target, tau, empty_classes)
    guard = np.minimum(totals, np.floor(tgt))
    lam = 0.5 / float(np.median(totals[totals > 0]))
    if dedupe_rows:
        red, mult, inverse = dedupe(obj)
    else:
        red, mult, inverse = obj, None, np.arange(obj.num_images)
    data = put(layout(red, tgt, guard, dtype, shards, mult)[0], mesh, axis)
    del red, mult  # host copies: only the device layout is needed from here on
    full, width = _full(obj, inverse, dedupe_rows)
    prob = Problem(data=data, full=full, totals=jnp.asarray(totals, dtype))
    return Host(prob, obj.num_images, tgt, guard, lam, width)


def _device_int32(length: int, head: np.ndarray, fill: int) -> Array:
    """``[length]`` int32 device array: ``head`` then ``fill`` (one host buffer at a time)."""
    out = np.full(length, fill, np.int32)
    out[:head.size] = head
    return jnp.asarray(out)


def _full(obj: Objects, inverse: np.ndarray, dedupe_rows: bool) -> tuple[Full, int]:
    """The full object list for rounding and repair, built in int32 straight away."""
    n = obj.num_images
    # Image and object counts are bucketed like the relaxed layout, so that problems of
    # similar size share one compiled program; padding images have no objects and rate 1.
    n_pad = bucket(n)
    nnz = obj.img.size
    indptr = np.zeros(n_pad + 1, np.int32)
    np.cumsum(np.bincount(obj.img, minlength=n_pad), out=indptr[1:])
    width = row_width(int(np.diff(indptr).max()) if n else 1)
    length = bucket(nnz + width)
    # Rounding order: by content hash (the dedupe groups are numbered in hash order).
    group = inverse if dedupe_rows else np.argsort(np.argsort(_row_hash(obj), kind="stable"))
    order = np.arange(n_pad, dtype=np.int32)
    order[:n] = np.argsort(group, kind="stable")
    return Full(img=_device_int32(length, obj.img, n_pad - 1),
                cls=_device_int32(length, obj.cls, 0),
                vals=_device_int32(length, obj.vals, 0),
                indptr=jnp.asarray(indptr), order=jnp.asarray(order),
                inverse=_device_int32(n_pad, inverse, 0),
                num_images=jnp.asarray(n, jnp.int32)), width


def build_traced(counts: Array, *, target: Any, tau: Any, dtype: Any) -> Problem:
    """A dense ``[N, C]`` (possibly traced) count matrix as a `Problem`, all in JAX.

    Every entry is an object (zeros contribute nothing), no rows are merged, and classes
    without examples are ignored (a traced value cannot raise).
    """
    y = jnp.asarray(counts)
    n, c = y.shape
    yf = y.astype(dtype)
    totals = jnp.sum(yf, axis=0)
    tgt = traced_target(totals, target, tau)
    active = totals > 0
    guard = jnp.minimum(totals, jnp.floor(tgt))
    rowsum = jnp.sum(yf, axis=1)
    inv_row = jnp.where(rowsum > 0, 1 / jnp.where(rowsum > 0, rowsum, 1), 0)
    img = jnp.repeat(jnp.arange(n, dtype=jnp.int32), c)
    cls = jnp.tile(jnp.arange(c, dtype=jnp.int32), n)
    data = Data(img=img, cls=cls, vals=yf.reshape(-1), inv_row=inv_row,
                mult=jnp.ones((n,), dtype),
                inv_col=jnp.where(active, 1 / jnp.where(active, totals, 1), 0),
                target=tgt, weight=jnp.where(active, 1 / jnp.where(active, tgt, 1), 0),
                guard=guard)
    w = row_width(c)
    pad = jnp.zeros((w,), jnp.int32)
    # Identical rows get the same key (a fixed random projection of the row).
    proj = jax.random.uniform(jax.random.key(0), (c,), dtype, 1, 2)
    full = Full(img=jnp.concatenate([img, pad + (n - 1)]),
                cls=jnp.concatenate([cls, pad]),
                vals=jnp.concatenate([jnp.rint(yf).astype(jnp.int32).reshape(-1), pad]),
                indptr=jnp.arange(n + 1, dtype=jnp.int32) * c,
                order=jnp.argsort(yf @ proj, stable=True).astype(jnp.int32),
                inverse=jnp.arange(n, dtype=jnp.int32), num_images=jnp.asarray(n, jnp.int32))
    return Problem(data=data, full=full, totals=totals)
