r"""Ranking metrics: per-class average precision of multi-label scores.

Average precision (AP) summarises a precision-recall curve without a threshold, so it is the
standard multi-label metric (macro mAP) and the one that does not hide rare classes. The
definition is scikit-learn's step-wise AP: no interpolation, every distinct score a
threshold, tied scores entering together.

Two implementations share one contract:

* on the CPU backend the sort and scans run in NumPy through `jax.pure_callback` (inside `jit`
  like any other op): XLA:CPU's sort is many times slower than NumPy's vectorised one (see
  docs/metrics.md);
* on every other backend the computation is plain XLA (a key-value sort and cumulative sums).

Both give scikit-learn's value for each class; tests check both against it.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.metrics.classification import _check_where, _float_dtype
from jbalance._src.typing import Array, Bool, Float, Num

# The NumPy path handles classes in blocks of `_BLOCK` and transposes them in tiles of
# `_TILE` examples, so that each tile is read from memory once and stays in cache while it is
# turned into sort keys.
_BLOCK = 64
_TILE = 1024


def _descending_keys_np(block: np.ndarray, keys: np.ndarray, tmp: np.ndarray) -> None:
    """Writes into ``keys`` unsigned keys whose ascending order is ``block``'s descending order.

    Ties stay ties. Everything is in place in preallocated buffers: fresh pages cost more than
    the arithmetic on them.
    """
    fkeys = keys.view(block.dtype)
    np.copyto(fkeys, block)
    # -0.0 and +0.0 are the same score (scikit-learn's `np.diff` sees no step between them).
    np.add(fkeys, block.dtype.type(0), out=fkeys)
    signed = tmp.view(np.int32 if keys.itemsize == 4 else np.int64)
    # All ones for negative floats, zero otherwise (arithmetic shift of the sign bit).
    np.right_shift(keys.view(signed.dtype), 8 * keys.itemsize - 1, out=signed)
    np.invert(tmp, out=tmp)
    np.right_shift(tmp, keys.dtype.type(1), out=tmp)
    # Non-negative floats: flip every bit but the sign (larger float -> smaller key); negative
    # floats keep their bits, which already grow as the value falls and sit above the rest.
    np.bitwise_xor(keys, tmp, out=keys)


def _ap_rows_np(keys: np.ndarray, pos: np.ndarray, out: np.ndarray) -> None:
    """AP of each row of ``keys`` ``[R, N]`` (descending-score keys), ``pos`` its positives.

    With ``n(q)`` the number of counted examples whose key is ``<= q`` (score ``>=``) and
    ``tp(q)`` the number of positives among them, scikit-learn's step-wise AP equals the mean
    over the positives ``i`` of ``tp(q_i) / n(q_i)``: the positives tied at one threshold each
    contribute that threshold's precision, which adds up to ``(R_k - R_{k-1}) P_k``.
    Sorts ``keys`` in place.
    """
    qs = [np.sort(keys[r][pos[r]]) for r in range(keys.shape[0])]
    keys.sort(axis=-1)
    for r, q in enumerate(qs):
        if q.size == 0:
            out[r] = np.nan
            continue
        n = np.searchsorted(keys[r], q, side="right")
        tp = np.searchsorted(q, q, side="right")
        out[r] = np.sum(tp / n) / q.size


def _ap_host(labels: np.ndarray, scores: np.ndarray, counted: np.ndarray | None,
             dtype: Any) -> np.ndarray:
    """Per-class AP ``[..., C]`` of ``[..., N, C]`` inputs, in NumPy."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    batch, (n, c) = scores.shape[:-2], scores.shape[-2:]
    flat = scores.reshape((-1, n, c))
    labels = np.broadcast_to(labels, scores.shape).reshape((-1, n, c))
    if counted is not None:
        counted = np.broadcast_to(np.asarray(counted), scores.shape).reshape((-1, n, c))
    out = np.empty((flat.shape[0], c), np.float64)
    rows = min(c, _BLOCK)
    utype = np.uint32 if scores.dtype.itemsize == 4 else np.uint64
    # Buffers are allocated once per call and reused by every block.
    keys, tmp = np.empty((rows, n), utype), np.empty((rows, _TILE), utype)
    pos = np.empty((rows, n), bool)
    masked = np.empty((rows, _TILE), bool)
    zero = labels.dtype.type(0)
    for b in range(flat.shape[0]):
        for c0 in range(0, c, _BLOCK):
            cols = slice(c0, min(c, c0 + _BLOCK))
            k = cols.stop - cols.start
            for n0 in range(0, n, _TILE):
                span = slice(n0, min(n, n0 + _TILE))
                t = span.stop - span.start
                dst = keys[:k, span]
                _descending_keys_np(flat[b, span, cols].T, dst, tmp[:k, :t])
                np.not_equal(labels[b, span, cols].T, zero, out=pos[:k, span])
                if counted is not None:
                    here = counted[b, span, cols].T
                    np.logical_and(pos[:k, span], here, out=pos[:k, span])
                    np.logical_not(here, out=masked[:k, :t])
                    # Masked examples sort after every counted one and are never positives,
                    # so they fall out of `n` (only a NaN score could share this key).
                    np.copyto(dst, np.iinfo(utype).max, where=masked[:k, :t])
            _ap_rows_np(keys[:k], pos[:k], out[b, cols])
    return out.reshape(batch + (c,)).astype(dtype)


def _descending_keys(scores: Array) -> Array:
    """`_descending_keys_np` in jnp (float32 keys as uint32, float64 as uint64)."""
    # -0.0 -> +0.0 with a select: XLA folds `s + 0.0` into `s`, which would keep -0.0.
    zero = jnp.zeros((), scores.dtype)
    s = jnp.where(scores == zero, zero, scores)
    utype = jnp.uint32 if s.dtype.itemsize == 4 else jnp.uint64
    itype = jnp.int32 if s.dtype.itemsize == 4 else jnp.int64
    bits = jax.lax.bitcast_convert_type(s, utype)
    sign = jax.lax.bitcast_convert_type(
        jax.lax.bitcast_convert_type(bits, itype) >> (8 * s.dtype.itemsize - 1), utype)
    return bits ^ (~sign >> jnp.ones((), utype))


def _ap_sorted(labels: Array, scores: Array, counted: Array | None, dtype: Any) -> Array:
    """Per-class AP ``[C]`` of ``[N, C]`` inputs in plain XLA (the accelerator path)."""
    keys = _descending_keys(scores)
    pos = labels != jnp.zeros((), labels.dtype)
    if counted is not None:
        pos = pos & counted
    cnt = jnp.ones(pos.shape, jnp.int32) if counted is None else counted.astype(jnp.int32)
    # One key-value sort per class (axis 0): ascending keys are descending scores.
    keys, p, cnt = jax.lax.sort((keys, pos.astype(jnp.int32), cnt), dimension=0, num_keys=1)
    tp = jnp.cumsum(p, axis=0)
    n = jnp.cumsum(cnt, axis=0)
    # The last row of each run of tied scores is the threshold; its counts include the ties.
    last = jnp.concatenate([keys[1:] != keys[:-1], jnp.ones((1,) + keys.shape[1:], bool)])
    tp_last = jnp.where(last, tp, jnp.zeros_like(tp))
    # tp at the previous threshold: tp never decreases, so a running max carries it forward.
    prev = jnp.concatenate([jnp.zeros((1,) + tp.shape[1:], tp.dtype),
                            jax.lax.cummax(tp_last, axis=0)[:-1]])
    step = (tp - prev).astype(dtype)
    ok = last & (n > 0)
    precision = tp.astype(dtype) / jnp.where(ok, n, jnp.ones_like(n)).astype(dtype)
    total = jnp.sum(jnp.where(ok, step * precision, jnp.zeros_like(precision)), axis=0)
    npos = tp[-1].astype(dtype)
    nan = jnp.full_like(total, jnp.nan)
    return jnp.where(npos > 0, total / jnp.where(npos > 0, npos, jnp.ones_like(npos)), nan)


def _varying_axes(*xs: Any) -> tuple[str, ...]:
    """The `shard_map` axes along which any of ``xs`` varies (empty outside `shard_map`)."""
    axes: set[str] = set()
    for x in xs:
        if x is not None:
            mat = getattr(jax.typeof(x), "manual_axis_type", None)
            axes |= set(getattr(mat, "varying", ()))
    return tuple(sorted(axes))


def _ap_callback(labels: Array, scores: Array, counted: Array | None, dtype: Any) -> Array:
    shape = jax.ShapeDtypeStruct(scores.shape[:-2] + scores.shape[-1:], dtype)
    fn = functools.partial(_ap_host, dtype=np.dtype(dtype))
    if counted is None:
        out = jax.pure_callback(lambda y, s: fn(y, s, None), shape, labels, scores,
                                vmap_method="broadcast_all")
    else:
        out = jax.pure_callback(fn, shape, labels, scores, counted,
                                vmap_method="broadcast_all")
    # Inside `shard_map` the result varies with the inputs, as the XLA branch's does.
    axes = _varying_axes(labels, scores, counted)
    return jax.lax.pcast(out, axes, to="varying") if axes else out


def average_precision(labels: Num[" n c"], scores: Float[" n c"], *,
                      where: Bool[" n *_"] | None = None) -> Float[" c"]:
    r"""Per-class average precision of multi-label scores (scikit-learn's definition).

    Use it to evaluate multi-label classifiers: the mean over classes (macro mAP) weighs a rare
    class as much as a frequent one, and needs no decision threshold.

    For class ``c``, sort the examples by ``scores[:, c]`` from high to low; every distinct
    score ``s_k`` is a threshold with precision ``P_k`` and recall ``R_k`` over the examples
    scoring ``>= s_k`` (tied scores enter together). Then

    .. math::
      \mathrm{AP}_c = \sum_k (R_k - R_{k-1})\, P_k
        = \frac{1}{|\mathcal P_c|} \sum_{i \in \mathcal P_c}
          \frac{|\{j \in \mathcal P_c : s_j \ge s_i\}|}{|\{j : s_j \ge s_i\}|}

    with :math:`\mathcal P_c` the positives of class ``c`` and :math:`R_0 = 0`: exactly
    ``sklearn.metrics.average_precision_score(labels[:, c], scores[:, c])``, ties included
    (no interpolation, unlike the VOC and COCO detection APs).

    A class with **no positive** among the counted examples has no defined AP: it is **NaN**
    here (scikit-learn returns 0 with a warning). So ``jnp.nanmean(ap)`` is the macro mAP over
    the classes that have positives, and ``jnp.nan_to_num(ap)`` is scikit-learn's per-class
    value.

    Runs under `jit`, `vmap` and `shard_map`. On the CPU backend the sorting runs in NumPy
    through `jax.pure_callback` (XLA:CPU's sort is slow); elsewhere in XLA. Not differentiable
    (the scores are wrapped in `jax.lax.stop_gradient`).

    Args:
      labels: 0/1 targets ``[N, C]``: bool, integer or floating. Entries masked out by
        ``where`` may hold anything (e.g. ``-1`` for "unknown").
      scores: Floating scores ``[N, C]`` (logits or probabilities: only the order matters).
        ``+-inf`` are valid scores; NaN is not.
      where: Optional boolean (or integer, non-zero = counted) mask, ``[N]`` (examples) or
        ``[N, C]`` (single labels). Masked entries are left out, as if the example were not
        there.

    Returns:
      Per-class AP ``[C]`` in ``[0, 1]``, in the default float dtype (float32, or float64 with
      ``jax_enable_x64``); NaN for a class without positives.

    Raises:
      TypeError: ``scores`` not floating; ``labels`` not bool, integer or floating; a
        real-valued mask.
      ValueError: shapes other than ``[N, C]`` or different between ``labels`` and
        ``scores``; (eagerly, or under `jbalance.checks.checked`) a counted label other than
        0 or 1, or a counted score that is NaN. Under a plain `jit` those values cannot be
        checked: a nonzero label counts as positive and a NaN score ranks above ``+inf``
        (``-NaN`` below ``-inf``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import metrics
      >>> labels = jnp.array([[1, 0], [0, 0], [1, 1], [0, 1]])
      >>> scores = jnp.array([[0.9, 0.2], [0.8, 0.4], [0.3, 0.4], [0.1, 0.1]])
      >>> ap = metrics.average_precision(labels, scores)
      >>> print(f"{float(ap[0]):.4f} {float(ap[1]):.4f}")
      0.8333 0.5000

    References:
      Pedregosa et al., `Scikit-learn: Machine Learning in Python
      <https://jmlr.org/papers/v12/pedregosa11a.html>`_, JMLR 2011
      (``sklearn.metrics.average_precision_score``, the definition followed).
      Zhu, `Recall, precision and average precision
      <https://citeseerx.ist.psu.edu/document?doi=10.1.1.77.6436>`_, 2004.

    .. versionadded:: 0.2.0
    """
    labels = checks.check_array(labels, "labels")
    scores = checks.check_array(scores, "scores")
    checks.check_floating(scores, "scores")
    try:
        ldtype = jnp.result_type(labels)
    except TypeError:  # strings, objects: not a JAX type at all
        ldtype = np.asarray(labels).dtype
    if not (jnp.issubdtype(ldtype, jnp.integer) or jnp.issubdtype(ldtype, jnp.floating)
            or ldtype == jnp.bool_):
        raise TypeError(f"`labels` must be a 0/1 matrix of bool, integer or floating dtype, "
                        f"got {ldtype}.")
    checks.check_rank(scores, 2, "scores", "[num_examples, num_classes]")
    checks.check_shape(labels, np.shape(scores), "labels",
                       "[num_examples, num_classes], the shape of `scores`")
    n, c = np.shape(scores)
    if where is not None and np.ndim(where) == 2:
        counted = _check_where(where, (n, c))
    else:
        counted = _check_where(where, (n,))
        if counted is not None:
            counted = jnp.broadcast_to(counted[:, None], (n, c))
    labels, scores = jnp.asarray(labels), jax.lax.stop_gradient(jnp.asarray(scores))
    zero = jnp.zeros((), labels.dtype)
    binary = (labels == zero) | (labels == jnp.ones((), labels.dtype))
    free = jnp.zeros((), bool) if counted is None else ~counted
    checks.require(binary | free,
                   "`labels` must hold 0/1 targets; mask unknown labels out with `where=`.")
    checks.require(~jnp.isnan(scores) | free,
                   "`scores` must not contain NaN (NaN has no rank); mask such entries out "
                   "with `where=` or fix the model output.")
    if scores.dtype.itemsize < 4:
        # float16 / bfloat16 widen exactly: same order, same ties.
        scores = scores.astype(jnp.float32)
    dtype = _float_dtype()
    if counted is None:
        return jax.lax.platform_dependent(
            labels, scores, cpu=lambda p, s: _ap_callback(p, s, None, dtype),
            default=lambda p, s: _ap_sorted(p, s, None, dtype))
    return jax.lax.platform_dependent(
        labels, scores, counted, cpu=lambda p, s, w: _ap_callback(p, s, w, dtype),
        default=lambda p, s, w: _ap_sorted(p, s, w, dtype))
