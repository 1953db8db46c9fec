"""The grain and PyTorch samplers with the real libraries (both are in the `dev` extra).

No skips: CI installs grain and CPU torch, and these tests are the acceptance checks of the
adapters (a real `grain.DataLoader` with sharding and checkpoint restore; a real
`torch.utils.data.DataLoader` with two simulated ranks and `set_epoch`), and class-aware
probabilities driving both.
"""

import grain  # noqa: I001 - the real libraries, imported at the top on purpose
import numpy as np
import pytest
import torch
from reference_sampling import chi_square_ok, np_class_aware

from jbalance import sampling

RATES = np.array([0.5, 1.5, 2.0, 0.0, 1.0, 3.25, 0.75])
REPEATS = np.array([2, 0, 1, 3, 1])


def _stream(weights, seed, epochs, **kw):
    """The reference global stream: epochs one after the other (no sharding)."""
    return np.concatenate([sampling.epoch_indices(seed, weights, epoch=e, **kw)
                           for e in range(epochs)])


# ---------------------------------------------------------------------------------- grain


@pytest.mark.parametrize("weights", [REPEATS, RATES])
def test_grain_sampler_follows_epoch_indices(weights):
    sampler = sampling.GrainSampler(weights, seed=3, num_epochs=4)
    ref = _stream(weights, 3, 4)
    assert len(sampler) == len(ref)
    got = [sampler[g] for g in range(len(sampler))]
    np.testing.assert_array_equal([m.record_key for m in got], ref)
    assert [m.index for m in got] == list(range(len(ref)))
    assert isinstance(got[0], grain.RecordMetadata)
    # per-record rng as grain's IndexSampler: Philox keyed by seed + index
    a, b = got[2].rng.random(), sampling.GrainSampler(weights, seed=3)[2].rng.random()
    assert a == b == np.random.Generator(np.random.Philox(key=3 + 2)).random()
    with pytest.raises(IndexError):
        sampler[len(ref)]
    with pytest.raises(IndexError):
        sampler[-1]
    # random access in any order (restore jumps straight to an index)
    fresh = sampling.GrainSampler(weights, seed=3, num_epochs=4)
    assert fresh[len(ref) - 1].record_key == ref[-1]


def test_grain_dataloader_sharded_two_processes():
    data = [f"img{i}" for i in range(len(RATES))]
    epochs, count = 3, 2
    outs = []
    for k in range(count):
        opts = grain.sharding.ShardOptions(shard_index=k, shard_count=count)
        sampler = sampling.GrainSampler(RATES, seed=1, shard_options=opts, num_epochs=epochs)
        loader = grain.DataLoader(data_source=grain.MapDataset.source(data), sampler=sampler,
                                  shard_options=opts, worker_count=0)
        outs.append([int(x[3:]) for x in loader])
    ref = [np.concatenate([sampling.epoch_indices(1, RATES, epoch=e, shard_index=k,
                                                  shard_count=count) for e in range(epochs)])
           for k in range(count)]
    for k in range(count):
        np.testing.assert_array_equal(outs[k], ref[k])
    assert len(outs[0]) == len(outs[1])
    # together: every epoch's (padded) list exactly once
    merged = np.empty(2 * len(outs[0]), np.int64)
    merged[0::2], merged[1::2] = outs[0], outs[1]
    full = np.concatenate([np.resize(e, -(-len(e) // 2) * 2)
                           for e in (sampling.epoch_indices(1, RATES, epoch=e)
                                     for e in range(epochs))])
    np.testing.assert_array_equal(merged, full)


def test_grain_dataloader_batches_and_drop_remainder():
    opts = grain.sharding.ShardOptions(shard_index=1, shard_count=3, drop_remainder=True)
    sampler = sampling.GrainSampler(REPEATS, seed=0, shard_options=opts, num_epochs=2)
    loader = grain.DataLoader(data_source=np.arange(5) * 10, sampler=sampler,
                              operations=[grain.transforms.Batch(batch_size=2)])
    got = np.concatenate([np.asarray(b) for b in loader]) // 10
    ref = np.concatenate([sampling.epoch_indices(0, REPEATS, epoch=e, shard_index=1,
                                                 shard_count=3, drop_remainder=True)
                          for e in range(2)])
    np.testing.assert_array_equal(got, ref)


def test_grain_checkpoint_restore():
    data = np.arange(len(RATES))
    opts = grain.sharding.ShardOptions(shard_index=0, shard_count=2)

    def loader():
        return grain.DataLoader(
                data_source=data, shard_options=opts, worker_count=0,
                sampler=sampling.GrainSampler(RATES, seed=9, shard_options=opts, num_epochs=5))

    full = [int(x) for x in loader()]
    it = iter(loader())
    head = [int(next(it)) for _ in range(7)]
    state = it.get_state()
    restored = iter(loader())
    restored.set_state(state)
    tail = [int(x) for x in restored]
    assert head + tail == full
    # a sampler with other weights is refused by grain (repr mismatch)
    other = grain.DataLoader(
            data_source=data, shard_options=opts, worker_count=0,
            sampler=sampling.GrainSampler(RATES * 2, seed=9, shard_options=opts, num_epochs=5))
    with pytest.raises(ValueError, match="[Ss]ampler"):
        iter(other).set_state(state)


def test_grain_schedule_and_probs():
    labels = np.array([0, 0, 0, 0, 0, 0, 1])
    sched = sampling.progressive_schedule(labels, num_classes=2, num_epochs=2)
    sampler = sampling.GrainSampler(sched, seed=0, num_epochs=3)
    assert len(sampler) == 21
    ref = _stream(sched, 0, 3)
    np.testing.assert_array_equal([sampler[g].record_key for g in range(21)], ref)
    assert repr(sampler) == repr(sampling.GrainSampler(
            sampling.progressive_schedule(labels, num_classes=2, num_epochs=2), seed=0,
            num_epochs=3))
    probs = sampling.GrainSampler(np.array([0.0, 1.0]), seed=0, mode="probs",
                                  num_samples=5, record_rng=False)
    assert {probs[g].record_key for g in range(20)} == {1} and probs[0].rng is None


def test_grain_sampler_bad_input():
    with pytest.raises(TypeError, match="shard_options"):
        sampling.GrainSampler(REPEATS, seed=0, shard_options=(0, 2))
    with pytest.raises(ValueError, match="seed"):
        sampling.GrainSampler(REPEATS, seed=2 ** 33)
    with pytest.raises(ValueError, match="num_epochs"):
        sampling.GrainSampler(REPEATS, seed=0, num_epochs=0)
    with pytest.raises(ValueError, match="empty"):
        sampling.GrainSampler(np.zeros(3), seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        sampling.GrainSampler(-REPEATS, seed=0)


# ---------------------------------------------------------------------------------- torch


def test_torch_sampler_is_a_torch_sampler():
    assert issubclass(sampling.TorchSampler, torch.utils.data.Sampler)
    s = sampling.TorchSampler(REPEATS, seed=0)
    assert isinstance(s, torch.utils.data.Sampler)
    assert (s.rank, s.world_size) == (0, 1)
    assert len(s) == REPEATS.sum()


def test_torch_two_ranks_and_set_epoch():
    dataset = torch.arange(len(RATES)) * 10
    per_epoch = []
    for epoch in range(3):
        ranks = []
        for rank in range(2):
            s = sampling.TorchSampler(RATES, seed=4, rank=rank, world_size=2)
            s.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(dataset, sampler=s, batch_size=3)
            got = torch.cat(list(loader)).numpy() // 10
            assert len(got) == len(s)
            np.testing.assert_array_equal(got, sampling.epoch_indices(
                    4, RATES, epoch=epoch, shard_index=rank, shard_count=2))
            ranks.append(got)
        assert len(ranks[0]) == len(ranks[1])
        merged = np.empty(2 * len(ranks[0]), np.int64)
        merged[0::2], merged[1::2] = ranks
        full = sampling.epoch_indices(4, RATES, epoch=epoch)
        np.testing.assert_array_equal(merged, np.resize(full, len(merged)))
        per_epoch.append(merged)
    assert not np.array_equal(per_epoch[0][:8], per_epoch[1][:8])  # set_epoch changes order
    s = sampling.TorchSampler(RATES, seed=4, rank=0, world_size=2)
    s.set_epoch(1)
    assert list(s) == list(s)  # same epoch, same order


def test_torch_statistics_over_epochs():
    s = sampling.TorchSampler(RATES, seed=0)
    epochs = 3000
    counts = np.zeros(len(RATES))
    for e in range(epochs):
        s.set_epoch(e)
        counts += np.bincount(list(s), minlength=len(RATES))
    frac = RATES - np.floor(RATES)
    assert (np.abs(counts / epochs - RATES)
            <= 5 * np.sqrt(frac * (1 - frac) / epochs) + 1e-12).all()


def test_torch_distributed_defaults(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0,
                            world_size=1)
    try:
        s = sampling.TorchSampler(REPEATS, seed=0)
        assert (s.rank, s.world_size) == (0, 1)
    finally:
        dist.destroy_process_group()


def test_torch_sampler_bad_input():
    with pytest.raises(ValueError, match="rank"):
        sampling.TorchSampler(REPEATS, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size"):
        sampling.TorchSampler(REPEATS, seed=0, rank=0, world_size=0)
    with pytest.raises(ValueError, match="epoch"):
        sampling.TorchSampler(REPEATS, seed=0).set_epoch(-1)
    with pytest.raises(ValueError, match="finite"):
        sampling.TorchSampler(np.array([np.nan]), seed=0)


@pytest.mark.slow
def test_grain_worker_processes_and_restore():
    # Two worker processes per shard: grain pickles the sampler into each worker.
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; pytest parses none
        flags.FLAGS.mark_as_parsed()
    data = np.arange(len(RATES))
    opts = grain.sharding.ShardOptions(shard_index=1, shard_count=2)

    def loader():
        return grain.DataLoader(
                data_source=data, shard_options=opts, worker_count=2,
                sampler=sampling.GrainSampler(RATES, seed=2, shard_options=opts, num_epochs=4))

    full = [int(x) for x in loader()]
    ref = np.concatenate([sampling.epoch_indices(2, RATES, epoch=e, shard_index=1,
                                                 shard_count=2) for e in range(4)])
    np.testing.assert_array_equal(full, ref)
    it = iter(loader())
    head = [int(next(it)) for _ in range(5)]
    state = it.get_state()
    restored = iter(loader())
    restored.set_state(state)
    assert head + [int(x) for x in restored] == full


def test_grain_random_map_gets_the_index_sampler_rng():
    class AddNoise(grain.transforms.RandomMap):
        def random_map(self, x, rng):
            return (int(x), rng.integers(0, 2**31))

    sampler = sampling.GrainSampler(REPEATS, seed=5, num_epochs=1)
    loader = grain.DataLoader(data_source=np.arange(5), sampler=sampler,
                              operations=[AddNoise()], worker_count=0)
    got = list(loader)
    ref = sampling.epoch_indices(5, REPEATS, epoch=0)
    assert [x for x, _ in got] == list(ref)
    expect = [np.random.Generator(np.random.Philox(key=5 + g)).integers(0, 2**31)
              for g in range(len(ref))]
    assert [r for _, r in got] == expect


# ------------------------------------------------------------------ class-aware sampling


def test_class_aware_probs_drive_grain_and_torch():
    # Multi-label presence: class-aware probabilities (a JAX array) as mode="probs" weights.
    rng = np.random.default_rng(0)
    counts = (rng.random((40, 5)) < np.array([0.8, 0.4, 0.2, 0.1, 0.05])).astype(np.int32)
    counts[:5] = np.eye(5, dtype=np.int32)
    p = sampling.class_aware_probs(counts)
    ref = np_class_aware(counts)
    kw = dict(mode="probs", num_samples=500)
    stream = _stream(p, 7, 20, **kw)
    grain_sampler = sampling.GrainSampler(p, seed=7, num_epochs=20, record_rng=False, **kw)
    assert [grain_sampler[g].record_key for g in range(len(grain_sampler))] == list(stream)
    loader = grain.DataLoader(data_source=np.arange(40), sampler=grain_sampler,
                              worker_count=0)
    np.testing.assert_array_equal([int(x) for x in loader], stream)
    ok, stat = chi_square_ok(np.bincount(stream, minlength=40), stream.size * ref)
    assert ok, stat
    torch_sampler = sampling.TorchSampler(p, seed=7, **kw)
    drawn = []
    for e in range(20):
        torch_sampler.set_epoch(e)
        batches = torch.utils.data.DataLoader(torch.arange(40), sampler=torch_sampler,
                                              batch_size=50)
        drawn.append(torch.cat(list(batches)).numpy())
        assert len(torch_sampler) == 500
    np.testing.assert_array_equal(np.concatenate(drawn), stream)
