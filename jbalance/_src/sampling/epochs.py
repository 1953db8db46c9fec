r"""Host-side epoch index lists: repeat factors rounded per epoch, probabilities, shards.

Everything here is NumPy on the host (a data loader's index list never needs a device), and
deterministic: epoch ``e`` of seed ``s`` is drawn from a counter-based Philox generator keyed
by ``SeedSequence([s, e])``, so any epoch can be re-created in any process without replaying
the ones before (checkpoint restore, several hosts).
"""

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from jbalance._src.sampling import repeats as _repeats

_MODES = ("repeats", "probs")


def _digest(x: np.ndarray) -> str:
    """A short content hash: stable across processes, for `__repr__`-based checkpoints."""
    x = np.ascontiguousarray(x)
    h = hashlib.sha1(str((x.dtype.str, x.shape)).encode())
    h.update(x.tobytes())
    return h.hexdigest()[:16]


def _check_int(value: Any, name: str, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
    return int(value)


def check_weights(weights: Any, mode: str, name: str = "weights") -> np.ndarray:
    """Validates host weights: a non-negative vector ``[N]``, int64 or finite float64."""
    if isinstance(weights, (str, bytes)) or weights is None:
        raise TypeError(f"`{name}` must be an array of per-example weights, got "
                        f"{type(weights).__name__}.")
    try:
        w = np.asarray(weights)
    except Exception as e:  # e.g. a ragged list
        raise TypeError(f"`{name}` must be an array of per-example weights ({e}).") from None
    if w.dtype == np.bool_ or not (np.issubdtype(w.dtype, np.integer)
                                   or np.issubdtype(w.dtype, np.floating)):
        raise TypeError(f"`{name}` must have an integer or floating dtype, got {w.dtype}.")
    if w.ndim != 1:
        raise ValueError(f"`{name}` must have shape [num_examples] (one weight per example), "
                         f"got shape {w.shape}. For a class matrix, solve it first "
                         f"(`resample.solve(...).repeats`) or use `class_balanced_probs`.")
    if np.issubdtype(w.dtype, np.integer):
        # Whole repeat counts stay integers: no rounding draws are needed for them.
        if w.size and w.min() < 0:
            raise ValueError(f"`{name}` must be non-negative, got a minimum of {w.min()}.")
        if mode == "probs" and not w.sum() > 0:
            raise ValueError(f"`{name}` (probabilities) sums to 0; at least one example "
                             f"needs a positive probability.")
        return w.astype(np.int64, copy=False)
    w = w.astype(np.float64, copy=False)
    if not np.isfinite(w).all():
        raise ValueError(f"`{name}` must be finite, got {w[~np.isfinite(w)][0]}.")
    if w.size and w.min() < 0:
        raise ValueError(f"`{name}` must be non-negative, got a minimum of {w.min():g}.")
    if mode == "probs" and not w.sum() > 0:
        raise ValueError(f"`{name}` (probabilities) sums to 0; at least one example needs a "
                         f"positive probability.")
    if mode == "repeats" and np.array_equal(w, np.floor(w)):
        return w.astype(np.int64)  # whole repeat counts (as floats): nothing to round
    return w


def resolve_mode(weights: Any, mode: str | None) -> str:
    """The mode given, else the schedule's own (``weights.mode``), else ``"repeats"``."""
    if mode is None:
        mode = getattr(weights, "mode", "repeats") if callable(weights) else "repeats"
    if mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
    return mode


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """Philox keyed by ``(seed, epoch)``: epoch ``e`` never depends on the epochs before."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, epoch])))


def full_epoch(seed: int, weights: np.ndarray, epoch: int, *, shuffle: bool, mode: str,
               num_samples: int | None) -> np.ndarray:
    """The whole (unsharded) epoch as int64 indices; ``weights`` already validated."""
    rng = epoch_generator(seed, epoch)
    n = weights.shape[0]
    if mode == "probs":
        cdf = np.cumsum(weights, dtype=np.float64)
        size = n if num_samples is None else num_samples
        u = rng.random(size)
        u *= cdf[-1]
        idx = np.searchsorted(cdf, u, side="right")  # first i with cdf[i] > u: p_i > 0
        # u * total may round up to the total: fall back to the last positive entry.
        np.minimum(idx, int(np.flatnonzero(weights)[-1]), out=idx)
        idx = idx.astype(np.int64, copy=False)
        if not shuffle:
            idx.sort()
        return idx
    # Fractional factors: stochastic rounding afresh each epoch (as detectron2's
    # RepeatFactorTrainingSampler), the same rule as `resample.stochastic_round`.
    counts = weights if np.issubdtype(weights.dtype, np.integer) else \
        _repeats.round_host(rng, weights)
    idx = _repeats.expand(counts)
    if shuffle:
        rng.shuffle(idx)
    return idx


def pad_or_drop(idx: np.ndarray, shard_count: int, drop_remainder: bool) -> np.ndarray:
    """Makes the length a multiple of ``shard_count``: drop the tail, or wrap from the head."""
    rem = idx.shape[0] % shard_count
    if rem == 0 or idx.shape[0] == 0:
        return idx
    if drop_remainder:
        return idx[: idx.shape[0] - rem]
    return np.concatenate([idx, np.resize(idx, shard_count - rem)])


def epoch_indices(seed: int, weights: Any, *, epoch: int, shuffle: bool = True,
                  shard_index: int = 0, shard_count: int = 1, mode: str | None = None,
                  num_samples: int | None = None, drop_remainder: bool = False) -> np.ndarray:
    r"""The indices of one training epoch (NumPy, host side), optionally one shard of them.

    Two modes:

    * ``mode="repeats"`` (default): ``weights[i] = r_i >= 0`` is how many times example
      ``i`` appears in the epoch. Integer values (`resample.solve` ``.repeats``) are used as
      they are; fractional repeat factors (``.rates``, `resample.repeat_factor_sampling`)
      are stochastically rounded afresh every epoch, as detectron2's
      ``RepeatFactorTrainingSampler`` does:

      .. math::
        c_i = \lfloor r_i \rfloor + \mathrm{Bernoulli}(r_i - \lfloor r_i \rfloor),
        \qquad \mathbb{E}[c_i] = r_i,

      so the epoch length varies around :math:`\sum_i r_i` when the factors are fractional.
    * ``mode="probs"``: ``weights`` are per-example probabilities (`class_balanced_probs`,
      `progressive_probs`; normalised here) and the epoch is ``num_samples`` (default ``N``)
      draws with replacement.

    The epoch is a function of ``(seed, epoch)`` only (a Philox generator keyed by
    ``SeedSequence([seed, epoch])``), so every process computes the same list and takes its
    own shard, and any epoch can be re-created without the ones before.

    Sharding (several hosts or ranks): the epoch, shuffled, is made a multiple of
    ``shard_count`` long — by wrapping around and repeating its first entries (default, as
    ``torch.utils.data.DistributedSampler``) or, with ``drop_remainder=True``, by dropping
    the last ``len % shard_count`` — and shard ``k`` is ``epoch[k::shard_count]``. The shards
    are disjoint slices of equal length and together the whole (padded or trimmed) epoch.

    ``weights`` may also be a callable ``epoch -> weights`` (an epoch schedule such as
    `progressive_schedule` or `deferred_schedule`); a schedule's ``mode`` attribute is used
    when ``mode`` is not given.

    Args:
      seed: int ``>= 0``, shared by all processes.
      weights: ``[N]`` non-negative repeat factors or probabilities (NumPy, JAX or a list),
        or a callable ``epoch -> weights``.
      epoch: int ``>= 0``.
      shuffle: shuffle the epoch (``mode="repeats"``; without it the indices are in
        increasing order, each repeated ``c_i`` times). With ``mode="probs"`` the draws are
        already in random order; ``shuffle=False`` sorts them.
      shard_index: this process's shard, in ``[0, shard_count)``.
      shard_count: the number of shards (hosts x local ranks).
      mode: ``"repeats"`` or ``"probs"`` (``None``: the schedule's mode, else repeats).
      num_samples: the number of draws per epoch with ``mode="probs"`` (default ``N``).
      drop_remainder: trim the epoch to a multiple of ``shard_count`` instead of padding.

    Returns:
      int64 ``[M]`` indices into the data set for this shard of this epoch.

    Raises:
      TypeError: weights that are not a numeric vector.
      ValueError: negative, non-finite or wrongly shaped weights, probabilities summing to
        0, a bad ``seed``, ``epoch``, ``shard_index``, ``shard_count``, ``mode`` or
        ``num_samples``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import sampling
      >>> sampling.epoch_indices(0, np.array([2, 0, 1]), epoch=0, shuffle=False)
      array([0, 0, 2])
      >>> rates = np.array([0.5, 1.5, 1.0])
      >>> e = [sampling.epoch_indices(0, rates, epoch=k) for k in range(2000)]
      >>> print(np.round(np.bincount(np.concatenate(e)) / 2000, 1))
      [0.5 1.5 1. ]
      >>> a = sampling.epoch_indices(0, rates, epoch=3, shard_index=0, shard_count=2)
      >>> b = sampling.epoch_indices(0, rates, epoch=3, shard_index=1, shard_count=2)
      >>> len(a) == len(b)
      True

    References:
      Gupta et al., `LVIS: A Dataset for Large Vocabulary Instance Segmentation
      <https://arxiv.org/abs/1908.03195>`_, CVPR 2019 (repeat factor sampling); detectron2
      ``RepeatFactorTrainingSampler``; PyTorch ``DistributedSampler`` (padding rule).
    """
    seed = _check_int(seed, "seed")
    epoch = _check_int(epoch, "epoch")
    shard_count = _check_int(shard_count, "shard_count", low=1)
    shard_index = _check_int(shard_index, "shard_index")
    if shard_index >= shard_count:
        raise ValueError(f"`shard_index` must be in [0, shard_count={shard_count}), got "
                         f"{shard_index}.")
    mode = resolve_mode(weights, mode)
    if num_samples is not None:
        if mode != "probs":
            raise ValueError("`num_samples` is for mode='probs'; with repeat factors the "
                             "epoch length is their sum.")
        num_samples = _check_int(num_samples, "num_samples")
    w = check_weights(weights(epoch) if callable(weights) else weights, mode)
    idx = full_epoch(seed, w, epoch, shuffle=shuffle, mode=mode, num_samples=num_samples)
    if shard_count == 1:
        return idx
    return np.ascontiguousarray(pad_or_drop(idx, shard_count, drop_remainder)[shard_index::
                                                                              shard_count])


class _Schedule:
    """Base of the epoch schedules: callable ``epoch -> weights`` with a stable `__repr__`."""

    mode = "repeats"

    def __call__(self, epoch: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class ProgressiveSchedule(_Schedule):
    r"""Progressively-balanced probabilities per epoch (see `progressive_schedule`)."""

    mode = "probs"

    def __init__(self, labels: Any, *, num_classes: int, num_epochs: int):
        from jbalance._src.sampling.probs import class_balanced_probs

        self.num_epochs = _check_int(num_epochs, "num_epochs", low=1)
        labels = np.asarray(labels)
        self._instance = np.asarray(class_balanced_probs(labels, num_classes=num_classes,
                                                         q=1.0), np.float64)
        self._balanced = np.asarray(class_balanced_probs(labels, num_classes=num_classes,
                                                         q=0.0), np.float64)
        self._repr = (f"ProgressiveSchedule(labels=sha1:{_digest(labels)}[{labels.shape[0]}], "
                      f"num_classes={num_classes}, num_epochs={self.num_epochs})")

    def __call__(self, epoch: int) -> np.ndarray:
        t = min(_check_int(epoch, "epoch") / self.num_epochs, 1.0)
        return (1.0 - t) * self._instance + t * self._balanced

    def __repr__(self) -> str:
        return self._repr


class DeferredSchedule(_Schedule):
    r"""``before`` until ``start_epoch``, ``after`` from then on (see `deferred_schedule`)."""

    def __init__(self, after: Any, *, start_epoch: int, before: Any = None,
                 mode: str = "repeats"):
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
        self.mode = mode
        self.start_epoch = _check_int(start_epoch, "start_epoch")
        self._after = check_weights(after, mode, "after")
        if before is None:
            before = np.ones_like(self._after)
        self._before = check_weights(before, mode, "before")
        if self._before.shape != self._after.shape:
            raise ValueError(f"`before` has shape {self._before.shape} and `after` "
                             f"{self._after.shape}; they must match.")
        self._repr = (f"DeferredSchedule(after=sha1:{_digest(self._after)}, before=sha1:"
                      f"{_digest(self._before)}[{self._after.shape[0]}], "
                      f"start_epoch={self.start_epoch}, mode={mode!r})")

    def __call__(self, epoch: int) -> np.ndarray:
        return self._before if _check_int(epoch, "epoch") < self.start_epoch else self._after

    def __repr__(self) -> str:
        return self._repr


def progressive_schedule(labels: Any, *, num_classes: int,
                         num_epochs: int) -> Callable[[int], np.ndarray]:
    r"""An epoch schedule of progressively-balanced probabilities (Kang et al.).

    .. math::
      \pi(e) = \Bigl(1 - \frac{e}{E}\Bigr)\,\pi^{q=1} + \frac{e}{E}\,\pi^{q=0},
      \qquad e = 0, \dots, E \text{ (then class-balanced)}

    Pass it as ``weights`` to `epoch_indices`, `GrainSampler` or `TorchSampler` (it carries
    ``mode="probs"``; the epoch is ``num_samples``, default ``N``, draws).

    Args:
      labels: int class ids ``[N]`` (host or device array).
      num_classes: the number of classes.
      num_epochs: ``E``, the length of training in epochs.

    Returns:
      A callable ``epoch -> float64 [N]`` probabilities, with a stable ``repr``.

    Raises:
      ValueError: the errors of `class_balanced_probs`, a bad ``num_epochs``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import sampling
      >>> sched = sampling.progressive_schedule(np.array([0, 0, 0, 1]), num_classes=2,
      ...                                       num_epochs=4)
      >>> print(sched(0), sched(4))
      [0.25 0.25 0.25 0.25] [0.16666667 0.16666667 0.16666667 0.5       ]
      >>> idx = sampling.epoch_indices(0, sched, epoch=2)
      >>> idx.shape
      (4,)

    References:
      Kang et al., `Decoupling Representation and Classifier for Long-Tailed Recognition
      <https://arxiv.org/abs/1910.09217>`_, ICLR 2020 (sec. 3.1, progressively-balanced).
    """
    return ProgressiveSchedule(labels, num_classes=num_classes, num_epochs=num_epochs)


def deferred_schedule(after: Any, *, start_epoch: int, before: Any = None,
                      mode: str = "repeats") -> Callable[[int], np.ndarray]:
    r"""Deferred re-sampling (DRS): ``before`` for epochs ``< start_epoch``, ``after`` from then on.

    Cao et al. train with instance-balanced sampling first and switch to re-balanced
    sampling for the last epochs. ``before`` defaults to all ones: every example once
    (``mode="repeats"``) or uniform probabilities (``mode="probs"``).

    Args:
      after: ``[N]`` repeat factors (``mode="repeats"``) or probabilities (``"probs"``),
        e.g. ``resample.solve(...).rates`` or ``class_balanced_probs(...)``.
      start_epoch: the first epoch that uses ``after``.
      before: ``[N]`` weights of the earlier epochs (default ones).
      mode: ``"repeats"`` or ``"probs"``: how the samplers read the weights.

    Returns:
      A callable ``epoch -> float64 [N]`` with attribute ``mode`` and a stable ``repr``.

    Raises:
      ValueError: bad weights (as `epoch_indices`), shapes that differ, a bad ``start_epoch``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import sampling
      >>> sched = sampling.deferred_schedule(np.array([3.0, 1.0]), start_epoch=2)
      >>> [len(sampling.epoch_indices(0, sched, epoch=e)) for e in range(4)]
      [2, 2, 4, 4]

    References:
      Cao et al., `Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss
      <https://arxiv.org/abs/1906.07413>`_, NeurIPS 2019 (deferred re-balancing, DRS).
    """
    return DeferredSchedule(after, start_epoch=start_epoch, before=before, mode=mode)
