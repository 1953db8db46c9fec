"""jbalance.sampling's probabilities and the jittable sampler `sample_indices`.

References (`reference_sampling`) are written from the papers' formulas in NumPy (never from
_src); statistical checks use fixed seeds and bounds of several standard deviations, so they
fail on a wrong distribution and (with these seeds) never by chance.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_sampling import chi_square_ok, np_class_aware, np_class_balanced

from jbalance import checks, sampling

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


# ----------------------------------------------------------------- class-aware sampling

MULTI = np.array([[3, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [2, 0, 0, 1], [0, 0, 0, 0],
                  [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]])  # class 2 empty, image 4 empty


def test_class_aware_matches_reference_dense_sparse_traced():
    import scipy.sparse as sp

    ref = np_class_aware(MULTI)
    np.testing.assert_allclose(ref.sum(), 1.0)
    for got in (sampling.class_aware_probs(MULTI),
                sampling.class_aware_probs(MULTI > 0),
                sampling.class_aware_probs(sp.csr_matrix(MULTI)),
                jax.jit(sampling.class_aware_probs)(jnp.asarray(MULTI))):
        assert got.dtype == jnp.float32 and got.shape == (8,)
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert float(sampling.class_aware_probs(MULTI)[4]) == 0.0  # no class, never drawn


def test_class_aware_hand_worked_and_single_label():
    # n = (4, 1) over 5 images, C' = 2: 1/8 for the class-0-only images, (1/4 + 1) / 2.
    counts = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0]])
    np.testing.assert_allclose(sampling.class_aware_probs(counts),
                               [0.125, 0.125, 0.125, 0.625, 0.0], rtol=1e-6)
    # One label per image: class-balanced sampling (q = 0).
    onehot = np.eye(4, dtype=np.int32)[LABELS]
    np.testing.assert_allclose(sampling.class_aware_probs(onehot),
                               np_class_balanced(LABELS, 4, 0.0), rtol=1e-6)
    half = sampling.class_aware_probs(counts, dtype=jnp.bfloat16)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(half, np.float32), [0.125] * 3 + [0.625, 0],
                               rtol=1e-2)


@pytest.mark.parametrize("bad,err,match", [
    (np.zeros((3, 2)), ValueError, "no non-zero"),
    (np.array([[1, -1], [0, 1]]), ValueError, "negative"),
    (np.array([[1.5, 0], [0, 1]]), ValueError, "whole number"),
    (np.array([1, 0, 1]), ValueError, "rank"),
])
def test_class_aware_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        sampling.class_aware_probs(bad)
    with pytest.raises(TypeError, match="dtype"):
        sampling.class_aware_probs(MULTI, dtype=jnp.int32)


def test_class_aware_with_sample_indices_draws_classes_uniformly():
    rng = np.random.default_rng(0)
    counts = (rng.random((400, 6)) < np.array([0.9, 0.3, 0.1, 0.03, 0.02, 0.01])).astype(int)
    counts[:6, :] = np.eye(6, dtype=int)  # every class present
    p = sampling.class_aware_probs(counts)
    s = 200_000
    idx = np.asarray(_sample(jax.random.key(2), p, s))
    ref = np_class_aware(counts)
    ok, stat = chi_square_ok(np.bincount(idx, minlength=400), s * ref)
    assert ok, stat
    # Two-stage view: the class of a draw, chosen uniformly among the drawn image's
    # classes weighted by 1/n_c, is uniform over the classes.
    present = counts > 0
    n_c = present.sum(0)
    w = present[idx] / n_c
    cls = (w.cumsum(1) > rng.random(s)[:, None] * w.sum(1, keepdims=True)).argmax(1)
    ok, stat = chi_square_ok(np.bincount(cls, minlength=6), np.full(6, s / 6))
    assert ok, stat


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
