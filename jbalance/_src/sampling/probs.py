r"""Per-example sampling probabilities (decoupled sampling) and a jittable sampler.

`class_balanced_probs` and `progressive_probs` are the sampling distributions of Kang et
al. (ICLR 2020) for one label per example; `class_aware_probs` is class-aware sampling (Shen
et al., 2016) for multi-label and multi-object counts; `sample_indices` draws from any such
distribution with replacement, under `jit`, in :math:`O(N + S \log N)` for :math:`N`
examples and :math:`S` draws.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.sampling import repeats as _repeats
from jbalance._src.typing import ArrayLike, Bool, Float, Int, Num, PRNGKey

# Fan-out of the tree searched by `sample_indices`: a row of 16 float32 cumulative sums is
# one 64-byte cache line, so each level costs one memory access per draw (a flat binary
# search costs ~log2 N cache misses), and a float32 cumsum over 16 entries resolves each of
# them to ~16 eps of the row's total, where one flat float32 cumsum over 10^7 entries would
# misplace them by ~50%.
_FANOUT = 16


def _check_labels(labels: Any, num_classes: Any) -> jax.Array:
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    checks.check_integer(labels, "labels")
    checks.check_rank(labels, 1, "labels", "[num_examples] (one class id per example)")
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1):
        raise ValueError(
                f"`num_classes` must be a positive Python int (it sets the shape of the class "
                f"counts), got {num_classes!r}.")
    checks.require((labels >= 0) & (labels < num_classes),
                   f"`labels` must be class ids in [0, num_classes={num_classes}); some are "
                   f"outside. Remap them, or pass a larger `num_classes`.")
    return labels


def _check_inputs(labels: Any, num_classes: Any, value: Any, name: str, dtype: Any,
                  meaning: str = "") -> tuple[jax.Array, jax.Array]:
    """The checks both probability functions make: labels, ``dtype``, a scalar in [0, 1]."""
    labels = _check_labels(labels, num_classes)
    v = jnp.asarray(value, checks.floating_dtype(dtype))
    checks.check_rank(v, 0, name, "(a scalar)")
    checks.require((v >= 0) & (v <= 1), f"`{name}` must be in [0, 1]{meaning}; got {v}.")
    return labels, v


def _class_counts(labels: jax.Array, num_classes: int, valid: jax.Array) -> jax.Array:
    # int32 counts: float32 would stop counting at 2^24 examples of one class.
    safe = jnp.where(valid, labels, num_classes).astype(jnp.int32)
    return jnp.zeros((num_classes,), jnp.int32).at[safe].add(1, mode="drop")


def _probs_from_counts(labels: jax.Array, counts: jax.Array, valid: jax.Array, q: jax.Array,
                       dtype: Any) -> jax.Array:
    num_classes = counts.shape[0]
    present = counts > 0
    n = jnp.where(present, counts, 1).astype(dtype)
    # Class mass n_j^q / sum_k n_k^q over the classes that have examples (an empty class
    # gets none: 0^0 would otherwise give it mass it can never spend).
    mass = jnp.where(present, n ** q, jnp.zeros((), dtype))
    mass = mass / jnp.sum(mass)
    per_example = jnp.where(present, mass / n, jnp.zeros((), dtype))
    gathered = per_example[jnp.clip(labels, 0, num_classes - 1)]
    return jnp.where(valid, gathered, jnp.zeros((), dtype))


def _valid(labels: jax.Array, num_classes: int, where: Any) -> jax.Array:
    valid = (labels >= 0) & (labels < num_classes)
    return valid if where is None else valid & where


def class_balanced_probs(labels: Int[" n"], *, num_classes: int, q: ArrayLike = 0.0,
                         where: Bool[" n"] | None = None, dtype: Any = jnp.float32
                         ) -> Float[" n"]:
    r"""Per-example probabilities from class-balanced (``q=0``) to instance-balanced (``q=1``).

    Decoupled training (Kang et al.) re-trains the classifier of a long-tailed model on
    batches drawn so that every class is equally likely. With :math:`n_j` examples of class
    :math:`j`, class :math:`j` is drawn with probability :math:`p_j` and an example uniformly
    within its class:

    .. math::
      p_j = \frac{n_j^q}{\sum_{k:\,n_k>0} n_k^q}, \qquad
      \pi_i = \frac{p_{y_i}}{n_{y_i}} = \frac{n_{y_i}^{q-1}}{\sum_{k:\,n_k>0} n_k^q}.

    ``q=1`` is instance-balanced (every example ``1/N``: plain shuffling), ``q=0``
    class-balanced, ``q=1/2`` square-root sampling (Mahajan et al.). Classes with no examples
    get no mass (``0^0`` is not counted); the probabilities of the present classes still
    sum to one.

    Args:
      labels: int class ids, shape ``[N]``. Out of ``[0, num_classes)`` raises eagerly (a
        checkify check under `jbalance.checks.checked`); under a plain `jit` such examples
        are not counted and get probability 0.
      num_classes: static int, the number of classes ``C``.
      q: exponent in ``[0, 1]`` (traceable: `vmap` or `grad` through it). Outside raises
        eagerly.
      where: optional boolean mask ``[N]``; masked-out examples are not counted and get
        probability 0.
      dtype: the floating output dtype (default float32).

    Returns:
      ``[N]`` probabilities of ``dtype`` summing to 1 (0 where masked out).

    Raises:
      TypeError: non-integer labels.
      ValueError: wrong rank, labels out of range, ``q`` outside ``[0, 1]``, a
        non-positive ``num_classes``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import sampling
      >>> labels = jnp.array([0, 0, 0, 1])
      >>> print(sampling.class_balanced_probs(labels, num_classes=3))
      [0.16666667 0.16666667 0.16666667 0.5       ]
      >>> print(sampling.class_balanced_probs(labels, num_classes=3, q=1.0))
      [0.25 0.25 0.25 0.25]

    References:
      Kang et al., `Decoupling Representation and Classifier for Long-Tailed Recognition
      <https://arxiv.org/abs/1910.09217>`_, ICLR 2020 (eq. 1).
    """
    labels, q = _check_inputs(labels, num_classes, q, "q", dtype,
                              " (1 instance-balanced, 0 class-balanced, 0.5 square-root)")
    return _class_balanced(labels, checks.mask(where, labels.shape, "[num_examples]"), q,
                           num_classes=int(num_classes))


# Jitted cores: eager calls then run one compiled program instead of many small dispatches.
@functools.partial(jax.jit, static_argnames="num_classes")
def _class_balanced(labels, where, q, *, num_classes):
    valid = _valid(labels, num_classes, where)
    counts = _class_counts(labels, num_classes, valid)
    return _probs_from_counts(labels, counts, valid, q, q.dtype)


@functools.partial(jax.jit, static_argnames="num_classes")
def _progressive(labels, where, t, *, num_classes):
    dtype = t.dtype
    valid = _valid(labels, num_classes, where)
    counts = _class_counts(labels, num_classes, valid)
    instance = _probs_from_counts(labels, counts, valid, jnp.ones((), dtype), dtype)
    balanced = _probs_from_counts(labels, counts, valid, jnp.zeros((), dtype), dtype)
    return (1 - t) * instance + t * balanced


def progressive_probs(labels: Int[" n"], *, num_classes: int, progress: ArrayLike,
                      where: Bool[" n"] | None = None, dtype: Any = jnp.float32
                      ) -> Float[" n"]:
    r"""Progressively-balanced sampling: instance-balanced at ``progress=0``, class-balanced at 1.

    .. math::
      \pi_i(t) = (1 - t)\,\pi_i^{q=1} + t\,\pi_i^{q=0}, \qquad t \in [0, 1]

    Kang et al. use ``t = epoch / num_epochs``; `progressive_schedule` packages that for the
    epoch samplers.

    Args:
      labels: int class ids, shape ``[N]`` (as in `class_balanced_probs`).
      num_classes: static int, the number of classes.
      progress: ``t`` in ``[0, 1]``, traceable (a scalar). Outside raises eagerly.
      where: optional boolean mask ``[N]`` (as in `class_balanced_probs`).
      dtype: the floating output dtype (default float32).

    Returns:
      ``[N]`` probabilities of ``dtype`` summing to 1.

    Raises:
      ValueError: ``progress`` outside ``[0, 1]``, and the errors of `class_balanced_probs`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jbalance import sampling
      >>> labels = jnp.array([0, 0, 0, 1])
      >>> print(sampling.progressive_probs(labels, num_classes=2, progress=0.5))
      [0.2083... 0.2083... 0.2083... 0.375...]

    References:
      Kang et al., `Decoupling Representation and Classifier for Long-Tailed Recognition
      <https://arxiv.org/abs/1910.09217>`_, ICLR 2020 (sec. 3.1).
    """
    labels, t = _check_inputs(labels, num_classes, progress, "progress", dtype)
    return _progressive(labels, checks.mask(where, labels.shape, "[num_examples]"), t,
                        num_classes=int(num_classes))


def class_aware_probs(counts: Num[" n *c"], *, dtype: Any = jnp.float32) -> Float[" n"]:
    r"""Class-aware sampling: pick a class uniformly, then an image that holds it uniformly.

    The per-image probabilities of Shen et al.'s class-aware sampling (relay
    backpropagation) for multi-label or multi-object data: every class present in the data
    is drawn equally often, whatever its frequency, and an image holding several classes
    can be reached through each of them. With :math:`n_c` the number of images that hold
    class :math:`c` and :math:`C'` the number of classes with :math:`n_c > 0`,

    .. math::
      p_i = \frac{1}{C'} \sum_{c:\, Y_{ic} > 0} \frac{1}{n_c},

    which sums to one over the images; images with no class get 0. With one label per image
    it equals ``class_balanced_probs(labels, q=0)``.

    Draw from it with `sample_indices` (under ``jit``), or pass it to `epoch_indices`,
    `GrainSampler` or `TorchSampler` with ``mode="probs"``.

    Args:
      counts: ``[N, C]`` counts or 0/1 presence (only ``> 0`` matters): dense NumPy/JAX
        (works under ``jit``: entries ``<= 0`` count as absent), BCOO or ``scipy.sparse``.
      dtype: the floating output dtype (default float32).

    Returns:
      ``[N]`` probabilities of ``dtype`` summing to 1.

    Raises:
      ValueError: negative, NaN or non-integer counts, rank other than 2, or no class
        present at all (concrete counts).
      TypeError: a non-floating ``dtype``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import sampling
      >>> counts = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0]])
      >>> print(sampling.class_aware_probs(counts))
      [0.125 0.125 0.125 0.625 0.   ]

    References:
      Shen, Lin & Huang, `Relay Backpropagation for Effective Learning of Deep
      Convolutional Neural Networks <https://arxiv.org/abs/1512.05830>`_, ECCV 2016
      (class-aware sampling).

    .. versionadded:: 0.3.0
    """
    dtype = checks.floating_dtype(dtype)
    img, cls, present, n, c = _repeats._presence(counts)
    if checks.is_concrete(present) and not bool(np.asarray(present).any()):
        raise ValueError("`counts` has no non-zero entries: no class to sample from.")
    return _class_aware(img, cls, present, num_images=n, num_classes=c, dtype=dtype)


@functools.partial(jax.jit, static_argnames=("num_images", "num_classes", "dtype"))
def _class_aware(img, cls, present, *, num_images, num_classes, dtype):
    out_dtype, dtype = dtype, checks.compute_dtype(dtype)  # 16-bit output: sums in float32
    on = present.astype(dtype)
    # int32 image counts: float32 would stop counting at 2^24 images of one class.
    n_c = jax.ops.segment_sum(present.astype(jnp.int32), cls, num_segments=num_classes)
    held = n_c > 0
    inv = jnp.where(held, 1 / jnp.where(held, n_c, 1).astype(dtype), jnp.zeros((), dtype))
    classes = jnp.maximum(jnp.sum(held), 1).astype(dtype)
    per = jax.ops.segment_sum(on * inv[cls], img, num_segments=num_images,
                              indices_are_sorted=True)
    return (per / classes).astype(out_dtype)


def sample_indices(key: PRNGKey, probs: Float[" n"], num_samples: int) -> Int[" num_samples"]:
    r"""Draws ``num_samples`` indices with replacement, index ``i`` with probability ``probs[i]``.

    The inverse-CDF method, organised as a 16-ary tree so that float32 stays accurate and
    memory access cheap for any ``N``: level by level (rows of 16 entries, padded with
    zeros), each row keeps the cumulative sums of its entries, and a row's total is the mass
    of its parent entry one level up. A draw descends the :math:`L = \lceil \log_{16} N
    \rceil` levels, each time picking an entry of the current row with probability
    proportional to its mass (one fresh uniform compared with the row's cumulative sums):

    .. math::
      P(\text{index } i) = \prod_{l=1}^{L}
        \frac{m(\text{node}_l(i))}{m(\text{node}_{l-1}(i))} = \frac{p_i}{\sum_k p_k}.

    Cost :math:`O(N)` to build and :math:`O(S \log N)` for :math:`S` draws (one 64-byte row
    per level and draw), with no cap on ``N`` (torch's ``multinomial`` stops at
    :math:`2^{24}` categories) beyond int32 indices. Each probability is resolved to about
    :math:`16\,\epsilon` of its row's total (:math:`\epsilon` of the dtype), so about
    :math:`2 \times 10^{-6}` relative in float32 for rows of similar entries; pass float64
    ``probs`` with ``jax_enable_x64`` for float64 accuracy. An entry with probability 0 is
    never drawn.

    Args:
      key: a PRNG key (`jax.random.key`).
      probs: non-negative weights ``[N]`` (need not sum to 1: they are normalised), with a
        positive sum. Negative, non-finite or all-zero weights raise eagerly (a checkify
        check under `jbalance.checks.checked`; garbage indices under a plain `jit`).
      num_samples: static int ``S >= 0``, the number of draws.

    Returns:
      int32 ``[num_samples]`` indices into ``probs``.

    Raises:
      ValueError: wrong rank, empty or too large ``probs``, bad values (see above), a
        negative ``num_samples``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import sampling
      >>> idx = sampling.sample_indices(jax.random.key(0), jnp.array([0.0, 0.25, 0.75]), 10000)
      >>> print(idx.dtype, int((idx == 0).sum()), abs(float((idx == 2).mean()) - 0.75) < 0.02)
      int32 0 True

    References:
      Devroye, `Non-Uniform Random Variate Generation
      <https://luc.devroye.org/rnbookindex.html>`_, 1986, ch. III.2 (inversion by search).
    """
    probs = jnp.asarray(checks.check_array(probs, "probs"))
    checks.check_rank(probs, 1, "probs", "[num_examples]")
    if (isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer))
            or num_samples < 0):
        raise ValueError(f"`num_samples` must be a non-negative Python int (it sets the output "
                         f"shape), got {num_samples!r}.")
    num_samples = int(num_samples)
    n = probs.shape[0]
    if n == 0:
        raise ValueError("`probs` is empty; there is nothing to draw from.")
    dtype = jnp.float64 if probs.dtype == jnp.float64 else jnp.float32
    probs = probs.astype(dtype)
    checks.check_nonnegative(probs, "probs", "Pass per-example sampling weights >= 0.")
    checks.require(jnp.sum(probs) > 0, "`probs` sums to 0: at least one example needs a "
                                       "positive probability.")
    if n >= 2 ** 31 - _FANOUT:
        raise ValueError(f"`probs` has {n} entries; int32 indices allow fewer than 2^31.")
    return _sample(key, probs, num_samples=num_samples)


@functools.partial(jax.jit, static_argnames="num_samples")
def _sample(key, probs, *, num_samples):
    dtype = probs.dtype
    # cdfs[l]: the cumulative sums within the rows of level l (top first), shape [rows, 16];
    # the masses of level l are the row totals of level l + 1. Zero padding has no mass.
    cdfs, mass = [], probs
    while True:
        rows = -(-mass.shape[0] // _FANOUT)
        mass = jnp.pad(mass, (0, rows * _FANOUT - mass.shape[0]))
        cdf = jnp.cumsum(mass.reshape(rows, _FANOUT), axis=1)
        cdfs.append(cdf)
        if rows == 1:
            break
        mass = cdf[:, -1]
    cdfs.reverse()
    u = jax.random.uniform(key, (len(cdfs), num_samples), dtype)
    node = jnp.zeros((num_samples,), jnp.int32)
    for level, cdf in enumerate(cdfs):
        row = cdf.at[node].get(mode="promise_in_bounds")  # [S, 16]: one cache line per draw
        total = row[:, -1]
        # v < total strictly, so the entry found has positive mass (u * total can round up).
        v = jnp.minimum(u[level] * total, jnp.nextafter(total, jnp.zeros((), dtype)))
        node = node * _FANOUT + jnp.sum(row <= v[:, None], axis=1, dtype=jnp.int32)
    return node
