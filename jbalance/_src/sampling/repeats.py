r"""From weights to indices, in one place: repeat factors, stochastic rounding, index lists.

* `repeat_factor_sampling`: per-image repeat factors from class frequencies (LVIS: the max
  over an image's classes; DataEval's "global" rule: the mean).
* `stochastic_round` (a JAX ``key``) and `round_host` (a NumPy generator): the one rounding
  rule ``floor(r) + [u < r - floor(r)]``, written once (`_round`).
* `indices` and `expand`: repeat counts to the index list.

`jbalance.resample` (the LVIS baseline, the solver's index list) and `jbalance.sampling`
(per-epoch rounding of repeat factors) both import from here.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.resample.problem import objects as _objects
from jbalance._src.typing import ArrayLike, Float, Int, Num, PRNGKey

AGGREGATIONS = ("max", "mean")

# ---------------------------------------------------------------------------------------
# Repeat factors.
# ---------------------------------------------------------------------------------------


def _presence(counts: Any) -> tuple[Any, Any, Any, int, int]:
    """``counts`` as a presence object list ``(img, cls, present, N, C)``, sorted by image.

    Dense input (NumPy or JAX, traced or concrete) lists every entry, with ``present``
    the mask ``counts > 0``; sparse input lists each (image, class) pair once.
    """
    if isinstance(counts, (jax.Array, np.ndarray)):
        if checks.is_concrete(counts):
            _objects(counts)  # value checks (negative, NaN, non-integer counts)
        checks.check_rank(counts, 2, "counts", "([num_images, num_classes])")
        n, c = counts.shape
        img = jnp.repeat(jnp.arange(n, dtype=jnp.int32), c)
        cls = jnp.tile(jnp.arange(c, dtype=jnp.int32), n)
        y = jnp.asarray(counts)
        present = y if y.dtype == jnp.bool_ else y > 0  # (no bool > int under strict rules)
        return img, cls, present.reshape(-1), n, c
    obj = _objects(counts)
    # Duplicate (image, class) entries of a sparse matrix count once.
    pairs = np.unique(obj.img.astype(np.int64) * obj.num_classes + obj.cls)
    img = jnp.asarray(pairs // obj.num_classes, jnp.int32)
    cls = jnp.asarray(pairs % obj.num_classes, jnp.int32)
    return img, cls, jnp.ones(pairs.shape, bool), obj.num_images, obj.num_classes


def repeat_factor_sampling(counts: Num[" n *c"], *, threshold: ArrayLike = 0.001,
                           sqrt: bool = True, aggregation: str = "max") -> Float[" n"]:
    r"""Expected per-image repeat factors from class frequencies (LVIS; a baseline).

    As in LVIS and detectron2's ``RepeatFactorTrainingSampler``: with :math:`f_c` the
    fraction of images that contain class ``c``,

    .. math::
      r_c = \max\Big(1, \sqrt{t / f_c}\Big), \qquad
      r_i = \max_{c \in i} r_c \;\; (\texttt{"max"}) \quad\text{or}\quad
      r_i = \frac{1}{|i|} \sum_{c \in i} r_c \;\; (\texttt{"mean"}),

    over the distinct classes :math:`c \in i` of image ``i``; images without any class get
    ``r_i = 1``.
    It never drops an image, so it cannot lower frequent classes; compare with
    `jbalance.resample.solve`.

    DataEval's ``ClassBalance("global")`` rule is ``threshold=1, aggregation="mean"``
    (its ``oversample_factor`` is ``threshold``, its ``aggregation_func`` is
    ``aggregation``): it draws ``N`` images with probabilities proportional to these
    factors. Pass them to `jbalance.sampling.epoch_indices` with ``mode="probs"`` for that,
    or as repeat factors (DataEval gives images without any class probability 0 when it
    handles empty images; here they keep factor 1).

    Args:
      counts: ``[N, C]`` counts or presence (only ``> 0`` matters): dense, BCOO or scipy.
        A dense JAX array works under ``jit`` (and ``threshold`` is traceable).
      threshold: frequency threshold ``t`` (LVIS and detectron2 use 0.001). Must be > 0.
      sqrt: static; ``True`` uses :math:`\sqrt{t/f_c}` (LVIS), ``False`` uses ``t/f_c``.
      aggregation: static; ``"max"`` (LVIS and detectron2, default) or ``"mean"``
        (DataEval) over the classes of an image.

    Returns:
      float32 ``[N]`` expected repeat factors (round them with `stochastic_round`, or let
      `jbalance.sampling.epoch_indices` round them afresh every epoch).

    Raises:
      ValueError: bad ``counts`` (see `jbalance.resample.solve`), ``threshold <= 0`` or an
        unknown ``aggregation``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import resample
      >>> counts = np.array([[1, 0], [1, 0], [1, 0], [1, 1]])
      >>> print(np.round(np.asarray(resample.repeat_factor_sampling(counts, threshold=0.5)), 4))
      [1.     1.     1.     1.4142]
      >>> print(np.round(np.asarray(resample.repeat_factor_sampling(
      ...     counts, threshold=1.0, aggregation="mean")), 4))
      [1.  1.  1.  1.5]

    References:
      Gupta, Dollar & Girshick, `LVIS: A Dataset for Large Vocabulary Instance Segmentation
      <https://arxiv.org/abs/1908.03195>`_, 2019. DataEval,
      ``dataeval.selection.ClassBalance`` (``method="global"``).

    .. versionadded:: 0.1.0

    .. versionchanged:: 0.3.0
      ``aggregation``.
    """
    checks.check_scalar_range(threshold, "threshold", low=0.0, low_inclusive=False)
    checks.check_one_of(aggregation, AGGREGATIONS, "aggregation")
    img, cls, present, n, c = _presence(counts)
    return _factors(img, cls, present, jnp.asarray(threshold, jnp.float32), num_images=n,
                    num_classes=c, sqrt=bool(sqrt), aggregation=aggregation)


@functools.partial(jax.jit, static_argnames=("num_images", "num_classes", "sqrt",
                                             "aggregation"))
def _factors(img: Any, cls: Any, present: Any, threshold: Any, *, num_images: int,
             num_classes: int, sqrt: bool, aggregation: str) -> Any:
    """`repeat_factor_sampling` on a presence object list (dense and sparse alike)."""
    dtype = jnp.float32
    on = present.astype(dtype)
    freq = jax.ops.segment_sum(on, cls, num_segments=num_classes) / num_images
    ratio = threshold / jnp.maximum(freq, jnp.finfo(dtype).tiny)
    rc = jnp.maximum(1, jnp.sqrt(ratio) if sqrt else ratio)
    per = rc[cls]
    if aggregation == "max":
        # Absent entries count as 1, which every factor is at least: images without any
        # class get 1 too.
        out = jax.ops.segment_max(jnp.where(present, per, jnp.ones((), dtype)), img,
                                  num_segments=num_images, indices_are_sorted=True)
        return jnp.maximum(out, 1)
    total = jax.ops.segment_sum(jnp.where(present, per, jnp.zeros((), dtype)), img,
                                num_segments=num_images, indices_are_sorted=True)
    k = jax.ops.segment_sum(on, img, num_segments=num_images, indices_are_sorted=True)
    return jnp.where(k > 0, total / jnp.maximum(k, 1), jnp.ones((), dtype))


# ---------------------------------------------------------------------------------------
# Stochastic rounding: one rule, a JAX key or a NumPy generator.
# ---------------------------------------------------------------------------------------


def _round(rates: Any, u: Any, xp: Any) -> Any:
    """``floor(r) + [u < r - floor(r)]`` for ``u ~ U[0, 1)``: ``E[out] = r``, exactly.

    (``floor(r + u)`` has the same law, but ``r + u`` can round up to the next integer in
    float32.) ``xp`` is ``jax.numpy`` (`stochastic_round`) or ``numpy`` (`round_host`).
    """
    base = xp.floor(rates)
    return base + (u < rates - base).astype(rates.dtype)


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
    u = jax.random.uniform(key, rates.shape, rates.dtype)
    return _round(rates, u, jnp).astype(jnp.int32)


def round_host(rng: np.random.Generator, rates: np.ndarray) -> np.ndarray:
    """`stochastic_round`'s rule on the host: int64 counts from float64 ``rates``.

    The uniforms are float32 draws (on a 2^-24 grid).
    """
    return _round(rates, rng.random(rates.shape[0], dtype=np.float32), np).astype(np.int64)


# ---------------------------------------------------------------------------------------
# Index lists.
# ---------------------------------------------------------------------------------------


def expand(counts: np.ndarray) -> np.ndarray:
    """Host int64 index list: ``i`` repeated ``counts[i]`` times, in order."""
    return np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)


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
        out = expand(host.astype(np.int64))
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
