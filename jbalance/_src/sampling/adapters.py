r"""Samplers for grain and PyTorch over `epoch_indices` (both libraries imported lazily).

`GrainSampler` implements grain's ``Sampler`` protocol (random access by a global record
index); `TorchSampler` is a ``torch.utils.data.Sampler`` with ``set_epoch`` in the manner of
``DistributedSampler``. Both read the same deterministic epochs as `epoch_indices`, so a
plain loop, grain and PyTorch see the same data for the same ``(seed, epoch)``.
"""

import bisect
import sys
from typing import Any

import numpy as np

from jbalance._src.sampling import epochs as _epochs


class _EpochSource:
    """Shared state of both samplers: validated weights or a schedule, and one cached epoch."""

    def __init__(self, weights: Any, *, seed: Any, shuffle: bool, mode: str | None,
                 num_samples: int | None, shard_count: int, drop_remainder: bool):
        self.seed = _epochs._check_int(seed, "seed")
        if self.seed >= 2 ** 32:
            raise ValueError(f"`seed` must be a 32-bit non-negative int, got {seed}.")
        self.shuffle = bool(shuffle)
        self.mode = _epochs.resolve_mode(weights, mode)
        if num_samples is not None:
            if self.mode != "probs":
                raise ValueError("`num_samples` is for mode='probs'; with repeat factors the "
                                 "epoch length is their sum.")
            num_samples = _epochs._check_int(num_samples, "num_samples", low=1)
        self.num_samples = num_samples
        self.shard_count = shard_count
        self.drop_remainder = bool(drop_remainder)
        if callable(weights):
            self._schedule, self._weights = weights, None
            self.weights_repr = repr(weights)
        else:
            self._schedule = None
            self._weights = _epochs.check_weights(weights, self.mode)
            self._weights.setflags(write=False)
            self.weights_repr = (f"sha1:{_epochs._digest(self._weights)}"
                                 f"[{self._weights.shape[0]}]")
        # Epoch length known without drawing it: probabilities, or whole repeat counts.
        self.fixed_length = None
        if self._weights is not None:
            if self.mode == "probs":
                n = self._weights.shape[0] if num_samples is None else num_samples
                self.fixed_length = self._padded(n)
            elif np.issubdtype(self._weights.dtype, np.integer):
                self.fixed_length = self._padded(int(self._weights.sum()))
        self._cached_epoch, self._cached = -1, np.zeros((0,), np.int64)

    def _padded(self, n: int) -> int:
        k = self.shard_count
        return (n // k) * k if self.drop_remainder else -(-n // k) * k

    def weights_at(self, epoch: int) -> np.ndarray:
        if self._schedule is None:
            return self._weights
        return _epochs.check_weights(self._schedule(epoch), self.mode)

    def epoch(self, epoch: int) -> np.ndarray:
        """The whole epoch (all shards), padded or trimmed to a multiple of shard_count."""
        if epoch != self._cached_epoch:
            idx = _epochs.full_epoch(self.seed, self.weights_at(epoch), epoch,
                                     shuffle=self.shuffle, mode=self.mode,
                                     num_samples=self.num_samples)
            self._cached = _epochs.pad_or_drop(idx, self.shard_count, self.drop_remainder)
            self._cached_epoch = epoch
        return self._cached


class GrainSampler:
    r"""A grain ``Sampler`` drawing balanced epochs: repeat factors or probabilities.

    Record ``g`` of the global stream is entry ``g - start(e)`` of epoch ``e`` (`epoch_indices`
    with the same seed, before sharding), epochs following each other. grain's
    ``DataLoader`` reads the global indices ``g = shard_index + k * shard_count``, so with the
    same ``shard_options`` a process reads exactly
    ``epoch_indices(seed, weights, epoch=e, shard_index=..., shard_count=...)`` in every
    epoch: each epoch is padded (or, with ``drop_remainder=True`` in the shard options,
    trimmed) to a multiple of ``shard_count`` so that the shards stay aligned.

    Random access is what grain's checkpoints need: ``DataLoader`` iterators restore from
    ``get_state()`` by index, and ``repr(sampler)`` (which names the weights by a content
    hash) must match. Record ``g`` carries ``rng = Generator(Philox(key=seed + g))``, as
    grain's ``IndexSampler`` does, for random transformations; it is built on first access
    of ``.rng`` only.

    Epoch lengths vary with fractional repeat factors (stochastic rounding); the sampler
    then learns epoch ``e``'s start by drawing epochs ``0..e-1`` once (cached), and
    ``len()`` with ``num_epochs`` draws them all (O(N) each).

    Args:
      weights: ``[N]`` repeat factors or probabilities, or a schedule ``epoch -> weights``
        (as `epoch_indices`; a custom callable needs a stable ``repr`` for checkpoints).
      seed: int in ``[0, 2^32)``, the same in every process.
      shuffle: shuffle every epoch.
      shard_options: ``grain.sharding.ShardOptions`` (default no sharding); give the
        ``DataLoader`` the same ones, or none (it then takes the sampler's).
      num_epochs: the number of epochs, or None to repeat for ever.
      mode: ``"repeats"`` or ``"probs"`` (default: the schedule's, else repeats).
      num_samples: draws per epoch with ``mode="probs"`` (default ``N``).
      record_rng: attach the per-record NumPy generator (built lazily; needed by grain's
        random transforms). ``False`` gives ``rng=None``.

    Returns:
      ``sampler[g]`` is a ``grain.RecordMetadata(index=g, record_key=..., rng=...)``.

    Examples:
      >>> import numpy as np, grain
      >>> from jbalance import sampling
      >>> sampler = sampling.GrainSampler(np.array([2, 0, 1]), seed=0, shuffle=False,
      ...                                 num_epochs=2)
      >>> len(sampler), [sampler[g].record_key for g in range(len(sampler))]
      (6, [0, 0, 2, 0, 0, 2])
      >>> loader = grain.DataLoader(data_source=["a", "b", "c"], sampler=sampler)
      >>> list(loader)
      ['a', 'a', 'c', 'a', 'a', 'c']
    """

    def __init__(self, weights: Any, *, seed: int, shuffle: bool = True,
                 shard_options: Any = None, num_epochs: int | None = None,
                 mode: str | None = None, num_samples: int | None = None,
                 record_rng: bool = True):
        import grain  # Lazily: grain is an optional dependency.

        if shard_options is None:
            shard_options = grain.sharding.NoSharding()
        if not isinstance(shard_options, grain.sharding.ShardOptions):
            raise TypeError(f"`shard_options` must be a grain.sharding.ShardOptions, got "
                            f"{type(shard_options).__name__}.")
        self._shard_options = shard_options  # grain's DataLoader looks for this attribute.
        if num_epochs is not None:
            num_epochs = _epochs._check_int(num_epochs, "num_epochs", low=1)
        self._num_epochs = num_epochs
        self._record_rng = bool(record_rng)
        from jbalance._src.sampling.grain_metadata import LazyRngMetadata

        self._metadata = LazyRngMetadata
        self._source = _EpochSource(weights, seed=seed, shuffle=shuffle, mode=mode,
                                    num_samples=num_samples,
                                    shard_count=shard_options.shard_count,
                                    drop_remainder=shard_options.drop_remainder)
        self._rng_base = self._source.seed
        self._starts = [0]  # start of epochs 0..len-1 in the global stream (variable lengths)
        # The epoch read last: global indices [lo, hi) are its entries (the fast path).
        self._lo, self._hi, self._current = 0, 0, np.zeros((0,), np.int64)
        self._repr = (f"GrainSampler(weights={self._source.weights_repr}, "
                      f"seed={self._source.seed}, shuffle={self._source.shuffle}, "
                      f"shard_options={shard_options!r}, num_epochs={num_epochs}, "
                      f"mode={self._source.mode!r}, num_samples={self._source.num_samples})")
        if self._source.fixed_length == 0:
            raise ValueError("Every epoch is empty (the weights sum to less than one record "
                             "per shard).")

    def _epoch_length(self, epoch: int) -> int:
        if self._source.fixed_length is not None:
            return self._source.fixed_length
        length = self._source.epoch(epoch).shape[0]
        if length == 0:
            raise ValueError(f"Epoch {epoch} is empty: the weights give no record (per "
                             f"shard) in it.")
        return length

    def _locate(self, index: int) -> tuple[int, int]:
        """(epoch, position in the padded epoch) of a global index."""
        fixed = self._source.fixed_length
        if fixed is not None:
            return divmod(index, fixed)
        while self._starts[-1] <= index:
            self._starts.append(self._starts[-1] + self._epoch_length(len(self._starts) - 1))
        epoch = bisect.bisect_right(self._starts, index) - 1
        return epoch, index - self._starts[epoch]

    def __len__(self) -> int:
        if self._num_epochs is None:
            return sys.maxsize
        if self._source.fixed_length is not None:
            return self._num_epochs * self._source.fixed_length
        while len(self._starts) <= self._num_epochs:
            self._starts.append(self._starts[-1] + self._epoch_length(len(self._starts) - 1))
        return self._starts[self._num_epochs]

    def __repr__(self) -> str:
        return self._repr

    def __getitem__(self, index: int) -> Any:
        lo = self._lo
        if not lo <= index < self._hi:
            self._load_epoch_of(index)
            lo = self._lo
        return self._metadata(index, int(self._current[index - lo]), None,
                              self._rng_base + index if self._record_rng else None)

    def _load_epoch_of(self, index: int) -> None:
        if index < 0 or (self._num_epochs is not None and index >= len(self)):
            raise IndexError(f"Record index {index} is out of bounds [0, {len(self)}).")
        epoch, pos = self._locate(index)
        self._current = self._source.epoch(epoch)
        self._lo = index - pos
        self._hi = self._lo + self._current.shape[0]


def _distributed_default(rank: Any, world_size: Any) -> tuple[int, int]:
    import torch.distributed as dist

    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    world_size = _epochs._check_int(world_size, "world_size", low=1)
    rank = _epochs._check_int(rank, "rank")
    if rank >= world_size:
        raise ValueError(f"`rank` must be in [0, world_size={world_size}), got {rank}.")
    return rank, world_size


_TORCH_SAMPLER = None

_TORCH_DOC = r"""A ``torch.utils.data.Sampler`` over balanced epochs, correct under DDP ranks.

    Epoch ``e`` of rank ``r`` is ``epoch_indices(seed, weights, epoch=e, shard_index=r,
    shard_count=world_size)``: every rank draws the same epoch from the shared ``seed`` and
    takes its own disjoint slice (equal lengths: padded by wrapping around, as
    ``DistributedSampler``, or trimmed with ``drop_last=True``). Call ``set_epoch(e)``
    before each epoch (as with ``DistributedSampler``) to get a fresh shuffle and fresh
    stochastic rounding; ``len()`` is the current epoch's length for this rank (it varies
    with fractional repeat factors).

    Args:
      weights: ``[N]`` repeat factors or probabilities, or a schedule ``epoch -> weights``
        (as `epoch_indices`).
      seed: int ``>= 0``, the same on every rank.
      shuffle: shuffle every epoch.
      rank: this process's rank (default ``torch.distributed.get_rank()`` when initialised,
        else 0).
      world_size: the number of ranks (default ``torch.distributed.get_world_size()`` when
        initialised, else 1).
      mode: ``"repeats"`` or ``"probs"`` (default: the schedule's, else repeats).
      num_samples: draws per epoch with ``mode="probs"`` (default ``N``).
      drop_last: trim each epoch to a multiple of ``world_size`` instead of padding.

    Returns:
      An iterable of Python ints (indices into the data set) for the current epoch.

    Examples:
      >>> import numpy as np, torch
      >>> from jbalance import sampling
      >>> s = sampling.TorchSampler(np.array([2, 0, 1]), seed=0, shuffle=False)
      >>> len(s), list(s)
      (3, [0, 0, 2])
      >>> loader = torch.utils.data.DataLoader(torch.arange(3) * 10, sampler=s, batch_size=3)
      >>> next(iter(loader)).tolist()
      [0, 0, 20]
    """


def torch_sampler_class() -> type:
    """Builds (once) `TorchSampler`, a subclass of ``torch.utils.data.Sampler``."""
    global _TORCH_SAMPLER
    if _TORCH_SAMPLER is not None:
        return _TORCH_SAMPLER
    import torch.utils.data  # Lazily: torch is an optional dependency.

    class TorchSampler(torch.utils.data.Sampler):
        def __init__(self, weights: Any, *, seed: int, shuffle: bool = True,
                     rank: int | None = None, world_size: int | None = None,
                     mode: str | None = None, num_samples: int | None = None,
                     drop_last: bool = False):
            self.rank, self.world_size = _distributed_default(rank, world_size)
            self._source = _EpochSource(weights, seed=seed, shuffle=shuffle, mode=mode,
                                        num_samples=num_samples, shard_count=self.world_size,
                                        drop_remainder=drop_last)
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            """Sets the epoch of the next iteration (a fresh shuffle and rounding)."""
            self.epoch = _epochs._check_int(epoch, "epoch")

        def _indices(self) -> np.ndarray:
            return self._source.epoch(self.epoch)[self.rank::self.world_size]

        def __iter__(self):
            return iter(self._indices().tolist())

        def __len__(self) -> int:
            fixed = self._source.fixed_length
            if fixed is not None:
                return fixed // self.world_size
            return self._indices().shape[0]

        def __repr__(self) -> str:
            return (f"TorchSampler(weights={self._source.weights_repr}, "
                    f"seed={self._source.seed}, shuffle={self._source.shuffle}, "
                    f"rank={self.rank}, world_size={self.world_size}, "
                    f"mode={self._source.mode!r}, epoch={self.epoch})")

    TorchSampler.__doc__ = _TORCH_DOC
    TorchSampler.__module__ = "jbalance.sampling"
    TorchSampler.__qualname__ = "TorchSampler"
    _TORCH_SAMPLER = TorchSampler
    return TorchSampler
