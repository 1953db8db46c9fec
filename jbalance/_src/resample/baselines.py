r"""Baselines and helpers around a plan: LVIS repeat-factor sampling, stochastic rounding,
the index list, and before/after statistics."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks, tables
from jbalance._src.resample.problem import class_totals as _class_totals
from jbalance._src.resample.problem import objects as _objects
from jbalance._src.typing import ArrayLike, Float, Int, Num, PRNGKey


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


def repeat_factor_sampling(counts: Num[" n *c"], *, threshold: ArrayLike = 0.001,
                           sqrt: bool = True) -> Float[" n"]:
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


def stochastic_round(key: PRNGKey, rates: Float[" n"]) -> Int[" n"]:
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


def indices(repeats: Num[" n"], *, total_size: int | None = None) -> Int[" m"]:
    r"""The resampled index list: image ``i`` appears ``repeats[i]`` times, in order.

    Feed it to any data loader (a grain/tf.data index source, a PyTorch ``Sampler`` such
    as ``SubsetRandomSampler(idx)``); shuffle it there.

    Concrete ``repeats`` give a NumPy ``int64`` array on the host (``len()`` works and no
    device memory is used). Traced ``repeats`` (inside ``jit``) need a static
    ``total_size`` and give a ``jax.Array`` of int32.

    Args:
      repeats: ``[N]`` non-negative integer repeat counts.
      total_size: static output length. ``None`` (default) uses ``sum(repeats)``; with a
        larger value the extra slots repeat the last index (as ``jnp.repeat`` does), with
        a smaller one the list is cut.

    Returns:
      ``[sum(repeats)]`` (or ``[total_size]``) image indices: NumPy int64 for concrete
      ``repeats``, a JAX int32 array under ``jit``.

    Raises:
      ValueError: negative, non-finite or non-integer repeats, rank other than 1, or a
        negative ``total_size``.

    Examples:
      >>> from jbalance import resample
      >>> idx = resample.indices([0, 2, 1])
      >>> idx.tolist(), idx.dtype, len(idx)
      ([1, 1, 2], dtype('int64'), 3)

    .. versionadded:: 0.1.0
    """
    repeats = checks.check_array(repeats, "repeats")
    checks.check_rank(repeats, 1, "repeats", "([num_images])")
    if total_size is not None and (isinstance(total_size, bool) or total_size < 0):
        raise ValueError(f"`total_size` must be a non-negative int, got {total_size!r}.")
    if checks.is_concrete(repeats):
        host = np.asarray(repeats)
        if host.size and (not np.isfinite(host).all() or (host != np.floor(host)).any()
                          or (host < 0).any()):
            raise ValueError("`repeats` must be finite non-negative integers (e.g. "
                             "`solve(...).repeats` or `stochastic_round(key, rates)`).")
        out = np.repeat(np.arange(host.size, dtype=np.int64), host.astype(np.int64))
        if total_size is None or total_size == out.size:
            return out
        if total_size < out.size:
            return out[:total_size]
        fill = out[-1] if out.size else 0
        return np.concatenate([out, np.full(total_size - out.size, fill, np.int64)])
    if total_size is None:
        raise ValueError("`indices` under jit needs a static `total_size`.")
    checks.require(jnp.asarray(repeats) >= 0, "`repeats` must be non-negative.")
    reps = jnp.asarray(repeats).astype(jnp.int32)
    return jnp.repeat(jnp.arange(reps.shape[0], dtype=jnp.int32), reps,
                      total_repeat_length=total_size)


def summary(counts: Num[" n *c"], repeats: Num[" n"]) -> Summary:
    r"""Class totals and balance statistics before and after applying ``repeats``.

    Args:
      counts: ``[N, C]`` counts (dense, BCOO or scipy.sparse).
      repeats: ``[N]`` non-negative repeat counts (e.g. ``solve(...).repeats``).

    Returns:
      A `Summary`: ``totals_before``/``totals_after`` (float64 ``[C]``),
      ``ratio_before``/``ratio_after`` (max/min class total; ``inf`` when a class total is
      0 and another is not, 1 when all are 0), ``cv_before``/``cv_after`` (population
      standard deviation / mean of the class totals, 0 when all are 0; the same rule as
      `jbalance.report`),
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
    if not np.issubdtype(r.dtype, np.number) or not np.isfinite(r).all() or (r < 0).any():
        raise ValueError("`repeats` must be finite and non-negative (e.g. "
                         "`solve(...).repeats`).")
    before = _class_totals(obj)
    after = _class_totals(obj, r)
    rb, cb = tables.balance_stats(before)
    ra, ca = tables.balance_stats(after)
    erased = tuple(int(c) for c in np.flatnonzero((before > 0) & (after <= 0)))
    return Summary(totals_before=before, totals_after=after, ratio_before=rb, ratio_after=ra,
                   cv_before=cb, cv_after=ca, dropped=int((r == 0).sum()),
                   duplicated=int((r > 1).sum()), size_before=int(obj.num_images),
                   size_after=int(np.asarray(r, np.int64).sum()), erased=erased)
