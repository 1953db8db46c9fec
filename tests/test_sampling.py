"""Tests for jbalance.sampling: probabilities, the jittable sampler, and host epochs.

References are written from the papers' formulas in NumPy (never from _src); statistical
checks use fixed seeds and bounds of several standard deviations, so they fail on a wrong
distribution and (with these seeds) never by chance.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jbalance import checks, sampling

# ------------------------------------------------------------------------------ references


def np_class_balanced(labels, num_classes, q):
    """Kang et al. eq. 1 in NumPy: p_j = n_j^q / sum_k n_k^q, uniform within the class."""
    labels = np.asarray(labels)
    n = np.bincount(labels, minlength=num_classes).astype(np.float64)
    mass = np.array([c ** q if c > 0 else 0.0 for c in n])
    mass /= mass.sum()
    return np.array([mass[y] / n[y] for y in labels])


def chi_square_ok(counts, expected):
    """Pearson's chi-square within dof + 6 sqrt(2 dof) (a ~4-sigma bound for large dof)."""
    keep = expected > 0
    dof = max(int(keep.sum()) - 1, 1)
    stat = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return stat < dof + 6 * np.sqrt(2 * dof) + 10, stat


LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 3, 0, 1, 3])  # class 2 is empty


# ------------------------------------------------------------------- class-balanced probs


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0, 0.3])
def test_class_balanced_matches_reference(q):
    got = sampling.class_balanced_probs(LABELS, num_classes=4, q=q)
    np.testing.assert_allclose(got, np_class_balanced(LABELS, 4, q), rtol=1e-6)
    assert got.dtype == jnp.float32 and got.shape == LABELS.shape


def test_class_balanced_hand_worked():
    # n = (3, 1): class-balanced 1/2 per class -> 1/6 each for class 0, 1/2 for class 1;
    # square root: sqrt(3) / (sqrt(3) + 1) for class 0.
    p = sampling.class_balanced_probs(jnp.array([0, 0, 0, 1]), num_classes=2)
    np.testing.assert_allclose(p, [1 / 6, 1 / 6, 1 / 6, 1 / 2], rtol=1e-6)
    p = sampling.class_balanced_probs(jnp.array([0, 0, 0, 1]), num_classes=2, q=0.5)
    s3 = np.sqrt(3.0)
    np.testing.assert_allclose(p, [1 / (s3 + 1) / s3] * 3 + [1 / (s3 + 1)], rtol=1e-6)


def test_class_totals_and_empty_class():
    p = np.asarray(sampling.class_balanced_probs(LABELS, num_classes=4), np.float64)
    totals = np.bincount(LABELS, weights=p, minlength=4)
    np.testing.assert_allclose(totals, [1 / 3, 1 / 3, 0, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)


def test_where_mask_excludes_examples():
    where = np.ones(LABELS.shape, bool)
    where[[0, 8]] = False
    got = sampling.class_balanced_probs(LABELS, num_classes=4, q=0.0, where=where)
    ref = np.zeros(LABELS.shape)
    ref[where] = np_class_balanced(LABELS[where], 4, 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_q_traceable_jit_vmap_grad():
    f = jax.jit(lambda q: sampling.class_balanced_probs(LABELS, num_classes=4, q=q))
    for q in (0.0, 0.5, 1.0):
        np.testing.assert_allclose(f(q), np_class_balanced(LABELS, 4, q), rtol=1e-6)
    qs = jnp.array([0.0, 0.25, 1.0])
    batched = jax.vmap(f)(qs)
    for row, q in zip(batched, qs):
        np.testing.assert_allclose(row, np_class_balanced(LABELS, 4, float(q)), rtol=1e-6)

    # d/dq of the mass of class 0 against a central finite difference of the reference.
    def mass0(q):
        return jnp.sum(jnp.where(jnp.asarray(LABELS) == 0,
                                 sampling.class_balanced_probs(LABELS, num_classes=4, q=q), 0.0))

    g = jax.grad(mass0)(0.5)
    h = 1e-4
    fd = (np_class_balanced(LABELS, 4, 0.5 + h)[LABELS == 0].sum()
          - np_class_balanced(LABELS, 4, 0.5 - h)[LABELS == 0].sum()) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-3)


def test_vmap_over_labels():
    labels = np.stack([LABELS, LABELS[::-1]])
    got = jax.vmap(lambda y: sampling.class_balanced_probs(y, num_classes=4))(labels)
    for row, y in zip(got, labels):
        np.testing.assert_allclose(row, np_class_balanced(y, 4, 0.0), rtol=1e-6)


def test_progressive_endpoints_and_linearity():
    t0 = sampling.progressive_probs(LABELS, num_classes=4, progress=0.0)
    t1 = sampling.progressive_probs(LABELS, num_classes=4, progress=1.0)
    np.testing.assert_allclose(t0, np.full(LABELS.shape, 1 / LABELS.size), rtol=1e-6)
    np.testing.assert_allclose(t1, np_class_balanced(LABELS, 4, 0.0), rtol=1e-6)
    f = jax.jit(lambda t: sampling.progressive_probs(LABELS, num_classes=4, progress=t))
    ts = jnp.array([0.0, 0.3, 0.9])
    for row, t in zip(jax.vmap(f)(ts), np.asarray(ts, np.float64)):
        ref = (1 - t) * np_class_balanced(LABELS, 4, 1.0) + t * np_class_balanced(LABELS, 4, 0.0)
        np.testing.assert_allclose(row, ref, rtol=1e-5)
        np.testing.assert_allclose(f(t), ref, rtol=1e-5)


@pytest.mark.parametrize("call,err,match", [
    (lambda: sampling.class_balanced_probs(LABELS, num_classes=4, q=1.5), ValueError, "`q`"),
    (lambda: sampling.class_balanced_probs(LABELS, num_classes=4, q=-0.1), ValueError, "`q`"),
    (lambda: sampling.class_balanced_probs(LABELS, num_classes=3), ValueError, "labels"),
    (lambda: sampling.class_balanced_probs(-LABELS, num_classes=4), ValueError, "labels"),
    (lambda: sampling.class_balanced_probs(LABELS * 1.0, num_classes=4), TypeError, "labels"),
    (lambda: sampling.class_balanced_probs(LABELS[None], num_classes=4), ValueError, "rank"),
    (lambda: sampling.class_balanced_probs(LABELS, num_classes=0), ValueError, "num_classes"),
    (lambda: sampling.progressive_probs(LABELS, num_classes=4, progress=1.2), ValueError,
     "progress"),
    (lambda: sampling.progressive_probs(LABELS, num_classes=4, progress=-1), ValueError,
     "progress"),
])
def test_probs_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_probs_checks_under_jit():
    f = jax.jit(checks.checked(lambda y: sampling.class_balanced_probs(y, num_classes=4)))
    err, _ = f(jnp.asarray(LABELS))
    assert err.get() is None
    err, _ = f(jnp.asarray(LABELS).at[0].set(9))
    assert "labels" in err.get()
    # Plain jit cannot raise: the out-of-range example is not counted and gets 0.
    bad = jnp.asarray(LABELS).at[0].set(9)
    got = jax.jit(lambda y: sampling.class_balanced_probs(y, num_classes=4))(bad)
    assert float(got[0]) == 0.0
    np.testing.assert_allclose(got[1:], np_class_balanced(LABELS[1:], 4, 0.0), rtol=1e-6)


# -------------------------------------------------------------------------- sample_indices

_sample = jax.jit(sampling.sample_indices, static_argnums=2)


@pytest.mark.parametrize("n", [1, 3, 17, 300, 5000])
def test_sample_indices_frequencies(n):
    rng = np.random.default_rng(n)
    p = rng.random(n).astype(np.float32) ** 3  # skewed
    p[::7] = 0.0
    if not p.any():
        p[0] = 1.0
    s = 400_000
    idx = np.asarray(_sample(jax.random.key(n), jnp.asarray(p), s))
    assert idx.dtype == np.int32 and idx.shape == (s,)
    counts = np.bincount(idx, minlength=n)
    assert counts.shape == (n,)  # nothing out of range
    assert counts[p == 0].sum() == 0
    ok, stat = chi_square_ok(counts, s * p.astype(np.float64) / p.sum())
    assert ok, stat


def test_sample_indices_skewed_rows_are_accurate():
    # Tiny probabilities after a huge one in the same rows: float32 cumsum precision.
    n = 4096
    p = np.ones(n, np.float32)
    p[::16] = 1000.0
    s = 2_000_000
    idx = np.asarray(_sample(jax.random.key(3), jnp.asarray(p), s))
    tiny = float((p[idx] == 1.0).mean())
    expect = (n - n // 16) / (n - n // 16 + 1000.0 * (n // 16))
    assert abs(tiny - expect) < 5 * np.sqrt(expect * (1 - expect) / s), (tiny, expect)


def test_sample_indices_unnormalised_and_eager_equals_jit():
    p = jnp.array([1.0, 2.0, 3.0, 0.0, 4.0])
    key = jax.random.key(7)
    eager = sampling.sample_indices(key, p, 1000)
    np.testing.assert_array_equal(eager, _sample(key, p, 1000))
    np.testing.assert_array_equal(eager, sampling.sample_indices(key, p, 1000))  # determinism
    assert not np.array_equal(eager, sampling.sample_indices(jax.random.key(8), p, 1000))
    idx = np.asarray(_sample(key, p * 1e-30, 100_000))  # tiny scale, same distribution
    ok, stat = chi_square_ok(np.bincount(idx, minlength=5), 1e5 * np.asarray(p) / 10.0)
    assert ok, stat


def test_sample_indices_vmap():
    p = jnp.array([0.1, 0.2, 0.3, 0.4])
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(lambda k: sampling.sample_indices(k, p, 50))(keys)
    for row, k in zip(batched, keys):
        np.testing.assert_array_equal(row, sampling.sample_indices(k, p, 50))
    ps = jnp.stack([p, p[::-1]])
    batched = jax.vmap(lambda q: sampling.sample_indices(keys[0], q, 50))(ps)
    np.testing.assert_array_equal(batched[1], sampling.sample_indices(keys[0], ps[1], 50))
    assert sampling.sample_indices(keys[0], p, 0).shape == (0,)


def test_sample_indices_compiles_once_per_shape():
    from jbalance._src.sampling import probs as impl

    before = impl._sample._cache_size()
    for seed in range(3):
        sampling.sample_indices(jax.random.key(seed), jnp.ones(37) * (seed + 1), 11)
    assert impl._sample._cache_size() == before + 1


def test_sample_indices_with_class_balanced_probs_balances_classes():
    labels = np.repeat(np.arange(4), [1000, 100, 10, 1])
    p = sampling.class_balanced_probs(labels, num_classes=4)
    s = 200_000
    idx = np.asarray(_sample(jax.random.key(1), p, s))
    ok, stat = chi_square_ok(np.bincount(labels[idx], minlength=4), np.full(4, s / 4))
    assert ok, stat


@pytest.mark.parametrize("probs,n,match", [
    ([0.5, -0.1], 3, "non-negative"),
    ([0.5, np.nan], 3, "finite"),
    ([0.0, 0.0], 3, "sums to 0"),
    ([[0.5, 0.5]], 3, "rank"),
    ([], 3, "empty"),
    ([0.5, 0.5], -1, "num_samples"),
    ([0.5, 0.5], 2.0, "num_samples"),
])
def test_sample_indices_bad_input(probs, n, match):
    with pytest.raises(ValueError, match=match):
        sampling.sample_indices(jax.random.key(0), jnp.asarray(probs, jnp.float32), n)


def test_sample_indices_checks_under_jit():
    f = jax.jit(checks.checked(lambda p: sampling.sample_indices(jax.random.key(0), p, 4)))
    err, _ = f(jnp.array([0.5, 0.5]))
    assert err.get() is None
    err, _ = f(jnp.array([0.5, -0.5]))
    assert "non-negative" in err.get()


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
