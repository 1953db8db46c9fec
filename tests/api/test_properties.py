"""Property-based checks (hypothesis) of the documented invariants of the public functions.

Shapes are fixed per test so that each test compiles once; hypothesis varies the values.
Examples are derandomised, so CI runs the same cases every time.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jbalance import augment, losses, metrics, resample, sampling

_SETTINGS = dict(max_examples=15, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow,
                                        HealthCheck.function_scoped_fixture])
N, C = 12, 4


def _count_matrix(draw_values):
    y = np.asarray(draw_values, np.int32).reshape(N, C)
    y[np.arange(C), np.arange(C)] = np.maximum(y[np.arange(C), np.arange(C)], 1)  # no empty class
    return y


counts_strategy = st.lists(st.integers(0, 4), min_size=N * C, max_size=N * C).map(_count_matrix)


@pytest.mark.slow  # recompiles when identical rows merge (N changes): ~30 s
@settings(**_SETTINGS)
@given(counts=counts_strategy, lam=st.floats(1e-3, 1.0))
def test_solve_keeps_its_guard_and_bounds(counts, lam):
    sol = resample.solve(counts, lam=lam, max_repeat=3, num_steps=60)
    r = np.asarray(sol.repeats)
    assert r.shape == (N,) and r.dtype == np.int32
    assert (r >= 0).all() and (r <= 3).all()
    after = counts.T.astype(np.float64) @ r
    # The guarantee: no class ends below min(its original total, floor(target)).
    assert (after >= np.asarray(sol.guard) - 1e-6).all()
    # Determinism: the same input gives the same plan.
    np.testing.assert_array_equal(r, np.asarray(
            resample.solve(counts, lam=lam, max_repeat=3, num_steps=60).repeats))


@settings(**_SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1.0, 30.0, 1e4]))
def test_losses_are_finite_non_negative_and_masked_rows_are_zero(seed, scale):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(8, C)) * scale, jnp.float32)
    labels = jnp.asarray(rng.integers(0, C, 8), jnp.int32)
    where = jnp.asarray(rng.random(8) < 0.7)
    counts = jnp.asarray(rng.integers(1, 100, C), jnp.float32)
    for fn, extra in ((losses.weighted_softmax_cross_entropy, {}),
                      (losses.logit_adjusted_cross_entropy,
                       {"log_prior": losses.log_prior(counts)}),
                      (losses.ldam_loss, {"counts": counts}),
                      (losses.seesaw_loss, {"counts": counts})):
        value = np.asarray(fn(logits, labels, where=where, **extra))
        assert value.shape == (8,) and np.isfinite(value).all()
        assert (value >= -1e-5).all()
        assert (value[~np.asarray(where)] == 0).all()


@pytest.mark.slow
@settings(**_SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), alpha=st.floats(0.1, 8.0))
def test_mixup_mixes_two_examples_with_one_lambda(seed, alpha):
    """Each output is lam x_i + (1 - lam) x_j for some partner j, and its label row is the
    same mixture of the two label rows (lam recovered from the pixels, by least squares)."""
    key = jax.random.key(seed)
    images = jax.random.uniform(jax.random.key(1), (6, 8, 8, 3))
    labels = jax.nn.one_hot(jnp.array([0, 1, 2, 3, 0, 1]), C)
    out, mixed = augment.mixup(key, images, labels, alpha=alpha)
    x, y = np.asarray(images, np.float64), np.asarray(labels, np.float64)
    out, mixed = np.asarray(out, np.float64), np.asarray(mixed, np.float64)
    for i in range(len(x)):
        fits = []
        for j in range(len(x)):
            d = (x[i] - x[j]).ravel()
            lam = 1.0 if j == i else float(d @ (out[i] - x[j]).ravel() / (d @ d))
            err = np.abs(lam * x[i] + (1 - lam) * x[j] - out[i]).max()
            fits.append((err, lam, j))
        err, lam, j = min(fits)
        assert err < 1e-5 and -1e-6 <= lam <= 1 + 1e-6, (i, fits)
        np.testing.assert_allclose(mixed[i], lam * y[i] + (1 - lam) * y[j], atol=1e-5)
    other = augment.mixup(jax.random.fold_in(key, 1), images, labels, alpha=alpha)[0]
    assert not np.array_equal(np.asarray(other), out)  # another key, another draw


@settings(**_SETTINGS)
@given(labels=st.lists(st.integers(0, C - 1), min_size=16, max_size=16),
       q=st.floats(0.0, 1.0))
def test_class_balanced_probs_follow_their_definition(labels, q):
    y = np.asarray(labels, np.int32)
    p = np.asarray(sampling.class_balanced_probs(jnp.asarray(y), num_classes=C, q=q),
                   np.float64)
    n = np.bincount(y, minlength=C).astype(np.float64)
    share = np.where(n > 0, n, 0.0) ** q * (n > 0)
    share = share / share.sum()
    assert p.sum() == pytest.approx(1.0, rel=1e-5)
    for c in range(C):
        assert p[y == c].sum() == pytest.approx(share[c], rel=1e-4, abs=1e-6)


@settings(**_SETTINGS)
@given(labels=st.lists(st.integers(0, C - 1), min_size=16, max_size=16),
       predictions=st.lists(st.integers(0, C - 1), min_size=16, max_size=16))
def test_sharded_metrics_equal_one_device(labels, predictions):
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    shard = NamedSharding(mesh, PartitionSpec("data"))
    y = jnp.asarray(labels, jnp.int32)
    p = jnp.asarray(predictions, jnp.int32)
    one = metrics.confusion_matrix(y, p, num_classes=C)
    many = metrics.confusion_matrix(jax.device_put(y, shard), jax.device_put(p, shard),
                                    num_classes=C)
    np.testing.assert_array_equal(np.asarray(one), np.asarray(many))
