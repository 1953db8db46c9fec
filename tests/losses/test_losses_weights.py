"""Class weights and priors from counts (jbalance/_src/losses/weights.py): `class_weights`,
`log_prior` and the LDAM-DRW schedule `deferred_reweighting`, against the float64 references
of reference_losses.py, scikit-learn and hand-worked values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_losses as ref
from conftest import load_label_set
from losses_data import COUNTS, F32, long_tail_data

from jbalance import losses


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number", "balanced"])
@pytest.mark.parametrize("normalize", ["samples", "classes", "none"])
def test_class_weights_reference(method, normalize):
    counts = np.array([500, 120, 30, 7, 1, 2000])
    got = losses.class_weights(counts, method=method, beta=0.99, normalize=normalize)
    want = ref.class_weights(counts, method, 0.99, normalize)
    assert got.dtype == jnp.float32 and got.shape == (6,)
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_class_weights_hand_value_and_default_normalisation():
    counts = jnp.array([90, 9, 1])
    w = losses.class_weights(counts)
    # 1/n_c rescaled so that sum n_c w_c = 100: sum n_c / n_c = 3, so w_c = (100 / 3) / n_c.
    np.testing.assert_allclose(w, [10 / 27, 100 / 27, 100 / 3], rtol=1e-6)
    np.testing.assert_allclose(jnp.sum(counts.astype(jnp.float32) * w), 100.0, rtol=1e-6)


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number", "balanced"])
def test_class_weights_samples_normalisation_real_counts(method):
    counts = load_label_set("voc0712_trainval")["counts"].sum(0)
    w = losses.class_weights(counts, method=method)
    np.testing.assert_allclose(np.sum(counts * np.asarray(w, np.float64)), counts.sum(), rtol=1e-5)
    # Rarer classes never get smaller weights.
    order = np.argsort(counts)
    assert np.all(np.diff(np.asarray(w)[order]) <= 1e-6)


def test_class_weights_balanced_is_sklearn_and_inverse():
    utils = pytest.importorskip("sklearn.utils")
    y = np.repeat(np.arange(4), [50, 5, 20, 1])
    counts = np.bincount(y)
    want = utils.compute_class_weight("balanced", classes=np.arange(4), y=y)
    np.testing.assert_allclose(losses.class_weights(counts, method="balanced"), want, rtol=1e-6)
    np.testing.assert_allclose(losses.class_weights(counts, method="balanced", normalize="none"),
                               want, rtol=1e-6)
    np.testing.assert_allclose(losses.class_weights(counts, method="inverse"), want, rtol=1e-6)


def test_class_weights_effective_number_limits():
    counts = jnp.array([1000.0, 10.0, 1.0])
    np.testing.assert_allclose(losses.class_weights(counts, method="effective_number", beta=0.0),
                               [1.0, 1.0, 1.0], rtol=1e-6)
    near = losses.class_weights(counts, method="effective_number", beta=1 - 1e-7)
    with jax.enable_x64(True):
        near64 = losses.class_weights(counts.astype(jnp.float64), method="effective_number",
                                      beta=1 - 1e-9)
    np.testing.assert_allclose(near64, losses.class_weights(counts), rtol=1e-5)
    np.testing.assert_allclose(near, losses.class_weights(counts), rtol=2e-2)  # f32 beta rounding


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number", "balanced"])
@pytest.mark.parametrize("normalize", ["samples", "classes", "none"])
@pytest.mark.parametrize("zero_count", ["max", "zero"])
def test_class_weights_zero_counts(method, normalize, zero_count):
    counts = np.array([40, 0, 4, 0, 1])
    w = np.asarray(losses.class_weights(counts, method=method, normalize=normalize,
                                        zero_count=zero_count))
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w, ref.class_weights(counts, method, 0.999, normalize, zero_count),
                               rtol=2e-6)
    seen = counts > 0
    if zero_count == "max":
        np.testing.assert_allclose(w[~seen], w[seen].max(), rtol=1e-6)
    else:
        assert (w[~seen] == 0).all()
    if normalize == "samples":
        np.testing.assert_allclose((counts * w).sum(), counts.sum(), rtol=1e-6)


def test_class_weights_all_zero_and_gradients():
    np.testing.assert_array_equal(losses.class_weights(jnp.zeros(3, jnp.int32)), np.ones(3))
    # Traceable beta: finite derivative, also with a zero-count class.
    counts = jnp.array([10.0, 0.0, 3.0])
    g = jax.grad(lambda b: losses.class_weights(counts, method="effective_number", beta=b)[2])(0.9)
    assert np.isfinite(g) and g != 0
    jitted = jax.jit(lambda c: losses.class_weights(c, method="inverse_sqrt"))
    np.testing.assert_allclose(jitted(counts), losses.class_weights(counts, method="inverse_sqrt"),
                               rtol=1e-6)


def test_class_weights_errors():
    with pytest.raises(ValueError, match="counts"):
        losses.class_weights(jnp.array([3, -1, 2]))
    with pytest.raises(ValueError, match="counts"):
        losses.class_weights(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="method"):
        losses.class_weights(jnp.ones(3), method="focal")
    with pytest.raises(ValueError, match="normalize"):
        losses.class_weights(jnp.ones(3), normalize="sum")
    with pytest.raises(ValueError, match="beta"):
        losses.class_weights(jnp.ones(3), method="effective_number", beta=1.0)
    with pytest.raises(TypeError, match="counts"):
        losses.class_weights(jnp.array([True, False]))


def test_class_weights_non_finite_counts_raise():
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="counts"):
            losses.class_weights(np.array([3.0, bad, 1.0]))


def test_class_weights_dtypes():
    assert losses.class_weights(jnp.array([3, 1]), dtype=jnp.bfloat16).dtype == jnp.bfloat16
    assert losses.class_weights(jnp.array([3.0, 1.0], jnp.float16)).dtype == jnp.float16
    with jax.enable_x64(True):
        w = losses.class_weights(np.array([3.0, 1.0]))
        assert w.dtype == jnp.float64


def test_log_prior_reference_and_zero_rule():
    np.testing.assert_allclose(losses.log_prior(COUNTS), ref.log_prior(COUNTS), **F32)
    lp = np.asarray(losses.log_prior(jnp.array([3.0, 1.0])))
    np.testing.assert_allclose(lp, np.log([0.75, 0.25]), **F32)
    # A zero count: half the smallest positive count (finite, rarer than every seen class).
    lp = np.asarray(losses.log_prior(np.array([4, 0, 2])))
    np.testing.assert_allclose(lp, np.log([4 / 6, 1 / 6, 2 / 6]), **F32)
    np.testing.assert_allclose(losses.log_prior(np.zeros(4)), np.full(4, -np.log(4)), **F32)
    # Scale invariant: frequencies give the same prior as counts.
    np.testing.assert_allclose(losses.log_prior(COUNTS / COUNTS.sum()), losses.log_prior(COUNTS),
                               **F32)
    assert losses.log_prior(COUNTS).dtype == jnp.float32


def test_deferred_reweighting():
    drw = losses.deferred_reweighting(COUNTS, start_step=10, beta=0.999)
    np.testing.assert_array_equal(drw(0), np.ones(6))
    np.testing.assert_array_equal(drw(9), np.ones(6))
    want = losses.class_weights(COUNTS, method="effective_number", beta=0.999)
    np.testing.assert_allclose(drw(10), want, **F32)
    np.testing.assert_allclose(drw(10_000), want, **F32)
    # Reference: Cui et al.'s effective number, samples-normalised (class_weights' default).
    np.testing.assert_allclose(drw(10)[:5], ref.effective_number_weights(COUNTS, 0.999)[:5],
                               rtol=1e-5)
    # Traceable step (jit, vmap), like an optax schedule.
    steps = jnp.array([0, 9, 10, 11])
    got = jax.jit(jax.vmap(drw))(steps)
    np.testing.assert_allclose(got, np.stack([drw(int(s)) for s in steps]), **F32)
    # LDAM-DRW: weights multiply the per-example loss.
    z, ids, *_ = long_tail_data(7)
    a = losses.ldam_loss(z, ids, counts=COUNTS, class_weights=drw(20))
    b = losses.ldam_loss(z, ids, counts=COUNTS) * np.asarray(drw(20))[ids]
    np.testing.assert_allclose(a, b, **F32)
    with pytest.raises(ValueError, match="start_step"):
        losses.deferred_reweighting(COUNTS, start_step=-1)
    with pytest.raises(ValueError, match="beta"):
        losses.deferred_reweighting(COUNTS, start_step=1, beta=1.0)


def test_deferred_reweighting_mixes_int_and_float_steps():
    # Under the suite's strict promotion an int step against a float start must work.
    counts = jnp.array([100.0, 10.0, 1.0])
    for start, step in ((5.0, jnp.int32(7)), (5, jnp.float32(7.0)), (jnp.int32(5), 7)):
        drw = losses.deferred_reweighting(counts, start_step=start)
        np.testing.assert_allclose(np.asarray(drw(step)), np.asarray(
            losses.class_weights(counts, method="effective_number", beta=0.9999)))
        np.testing.assert_array_equal(np.asarray(drw(jnp.int32(2))), np.ones(3))
