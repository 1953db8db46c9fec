"""jbalance.sampling's host epochs: `epoch_indices`, the schedules, sharding.

Statistical checks use fixed seeds and bounds of several standard deviations.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from reference_sampling import chi_square_ok, np_class_balanced

from jbalance import sampling

LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 3, 0, 1, 3])  # class 2 is empty


# -------------------------------------------------------------------------- epoch_indices


def test_integer_repeats_exact():
    r = np.array([2, 0, 1, 3])
    plain = sampling.epoch_indices(0, r, epoch=0, shuffle=False)
    np.testing.assert_array_equal(plain, np.repeat(np.arange(4), r))
    assert plain.dtype == np.int64
    shuffled = sampling.epoch_indices(0, r, epoch=0)
    np.testing.assert_array_equal(np.sort(shuffled), plain)
    # jax arrays and lists are accepted
    np.testing.assert_array_equal(
            sampling.epoch_indices(0, jnp.asarray(r), epoch=0), shuffled)
    np.testing.assert_array_equal(sampling.epoch_indices(0, list(r), epoch=0), shuffled)


def test_epochs_deterministic_and_distinct():
    r = np.full(200, 1.5)
    a = sampling.epoch_indices(3, r, epoch=5)
    np.testing.assert_array_equal(a, sampling.epoch_indices(3, r, epoch=5))
    assert not np.array_equal(a, sampling.epoch_indices(3, r, epoch=6))
    assert not np.array_equal(a, sampling.epoch_indices(4, r, epoch=5))


def test_fractional_rates_mean_counts_and_class_totals():
    rng = np.random.default_rng(0)
    n, epochs = 300, 3000
    rates = rng.uniform(0.0, 3.0, n)
    rates[:5] = [0.0, 1.0, 2.0, 0.01, 0.99]
    counts = np.zeros((epochs, n))
    for e in range(epochs):
        c = np.bincount(sampling.epoch_indices(11, rates, epoch=e), minlength=n)
        counts[e] = c
    # every epoch: floor or ceil of the rate (stochastic rounding)
    assert (counts >= np.floor(rates)).all() and (counts <= np.ceil(rates)).all()
    frac = rates - np.floor(rates)
    bound = 5 * np.sqrt(frac * (1 - frac) / epochs) + 1e-12
    assert (np.abs(counts.mean(0) - rates) <= bound).all()
    # class totals of a multi-label matrix follow sum_i r_i Y_ic
    y = rng.random((n, 6)) < 0.3
    totals = counts @ y
    expect = rates @ y
    sd = np.sqrt((frac * (1 - frac)) @ y / epochs)
    assert (np.abs(totals.mean(0) - expect) <= 5 * sd + 1e-9).all()
    # independent per image, as detectron2: per-epoch totals vary like sum of Bernoullis
    lengths = counts.sum(1)
    np.testing.assert_allclose(lengths.var(), (frac * (1 - frac)).sum(), rtol=0.15)


def test_probs_mode_frequencies():
    p = np.array([0.5, 0.0, 0.2, 0.3])
    draws = np.concatenate([sampling.epoch_indices(0, p, epoch=e, mode="probs",
                                                   num_samples=1000) for e in range(100)])
    assert draws.shape == (100_000,)
    ok, stat = chi_square_ok(np.bincount(draws, minlength=4), 1e5 * p)
    assert ok, stat
    sorted_ = sampling.epoch_indices(0, p, epoch=0, mode="probs", shuffle=False)
    assert sorted_.shape == (4,) and (np.diff(sorted_) >= 0).all()


@pytest.mark.parametrize("length_weights", [np.array([2, 1, 1, 3]), np.full(5, 1.3)])
@pytest.mark.parametrize("shard_count", [1, 2, 3, 8, 13])
@pytest.mark.parametrize("drop", [False, True])
def test_shards_disjoint_equal_and_cover(length_weights, shard_count, drop):
    full = sampling.epoch_indices(5, length_weights, epoch=2)
    shards = [sampling.epoch_indices(5, length_weights, epoch=2, shard_index=k,
                                     shard_count=shard_count, drop_remainder=drop)
              for k in range(shard_count)]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1
    per = lengths.pop()
    if drop:
        assert per == len(full) // shard_count
        expect = full[: per * shard_count]
    else:
        assert per == -(-len(full) // shard_count)
        expect = np.resize(full, per * shard_count)  # padded by wrapping around
    # shard k holds positions k, k + K, ... of the (padded) epoch: disjoint, union = all
    interleaved = np.empty(per * shard_count, np.int64)
    for k, s in enumerate(shards):
        interleaved[k::shard_count] = s
    np.testing.assert_array_equal(interleaved, expect)


def test_callable_weights_and_schedules():
    labels = np.array([0, 0, 0, 0, 1])
    sched = sampling.progressive_schedule(labels, num_classes=2, num_epochs=10)
    np.testing.assert_allclose(sched(0), np.full(5, 0.2))
    np.testing.assert_allclose(sched(10), np_class_balanced(labels, 2, 0.0), rtol=1e-6)
    np.testing.assert_allclose(sched(20), sched(10))
    np.testing.assert_allclose(sched(4), 0.6 * sched(0) + 0.4 * sched(10), rtol=1e-6)
    assert sched.mode == "probs" and repr(sched) == repr(
            sampling.progressive_schedule(labels, num_classes=2, num_epochs=10))
    draws = np.concatenate([sampling.epoch_indices(0, sched, epoch=10, num_samples=1000)])
    ok, stat = chi_square_ok(np.bincount(labels[draws], minlength=2), np.array([500, 500.0]))
    assert ok, stat

    drs = sampling.deferred_schedule(np.array([0.0, 0.0, 0.0, 0.0, 4.0]), start_epoch=3)
    assert [len(sampling.epoch_indices(0, drs, epoch=e)) for e in range(5)] == [5, 5, 5, 4, 4]
    assert set(sampling.epoch_indices(0, drs, epoch=3)) == {4}
    drs_p = sampling.deferred_schedule(np.asarray(sched(10)), start_epoch=1, mode="probs")
    assert len(sampling.epoch_indices(0, drs_p, epoch=2, num_samples=7)) == 7

    # any callable works
    fn = lambda e: np.full(3, e)  # noqa: E731
    assert len(sampling.epoch_indices(0, fn, epoch=2)) == 6


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(weights=np.array([1.0, -1.0])), ValueError, "non-negative"),
    (dict(weights=np.array([1.0, np.inf])), ValueError, "finite"),
    (dict(weights=np.ones((2, 2))), ValueError, "shape"),
    (dict(weights="abc"), TypeError, "weights"),
    (dict(weights=np.array([True, False])), TypeError, "dtype"),
    (dict(weights=np.zeros(3), mode="probs"), ValueError, "sums to 0"),
    (dict(weights=np.ones(3), mode="nope"), ValueError, "mode"),
    (dict(weights=np.ones(3), num_samples=3), ValueError, "num_samples"),
    (dict(weights=np.ones(3), mode="probs", num_samples=-2), ValueError, "num_samples"),
    (dict(weights=np.ones(3), epoch=-1), ValueError, "epoch"),
    (dict(weights=np.ones(3), seed=-1), ValueError, "seed"),
    (dict(weights=np.ones(3), seed=1.5), ValueError, "seed"),
    (dict(weights=np.ones(3), shard_index=2, shard_count=2), ValueError, "shard_index"),
    (dict(weights=np.ones(3), shard_count=0), ValueError, "shard_count"),
])
def test_epoch_indices_bad_input(kwargs, err, match):
    kwargs = {"seed": 0, "epoch": 0, **kwargs}
    seed, weights = kwargs.pop("seed"), kwargs.pop("weights")
    with pytest.raises(err, match=match):
        sampling.epoch_indices(seed, weights, **kwargs)


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="num_epochs"):
        sampling.progressive_schedule(LABELS, num_classes=4, num_epochs=0)
    with pytest.raises(ValueError, match="labels"):
        sampling.progressive_schedule(LABELS, num_classes=2, num_epochs=3)
    with pytest.raises(ValueError, match="shapes|must match"):
        sampling.deferred_schedule(np.ones(3), before=np.ones(2), start_epoch=1)
    with pytest.raises(ValueError, match="start_epoch"):
        sampling.deferred_schedule(np.ones(3), start_epoch=-1)


def test_import_does_not_pull_torch_or_grain():
    import subprocess
    import sys

    code = ("import sys, jbalance.sampling as s; "
            "print(sorted(m for m in ('torch', 'grain') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
