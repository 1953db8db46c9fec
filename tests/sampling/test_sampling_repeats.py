"""From weights to indices (``_src/sampling/repeats.py``): LVIS repeat factors, the one
stochastic-rounding rule (a JAX key for `resample.stochastic_round`, a NumPy generator for
`sampling.epoch_indices`), and the index list, each against a NumPy reference, with inputs
concrete and traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_label_set
from reference_sampling import np_dataeval_global, np_rfs

from jbalance import resample, sampling

scipy_sparse = pytest.importorskip("scipy.sparse")


# ------------------------------------------------------------------------ repeat factors


@pytest.mark.parametrize("sqrt", [True, False])
def test_repeat_factor_sampling_matches_formula(sqrt):
    counts = load_label_set("voc07_test")["counts"][:300]
    ref = np_rfs(counts, 0.1, sqrt)
    got = resample.repeat_factor_sampling(counts, threshold=0.1, sqrt=sqrt)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-6)
    sparse = resample.repeat_factor_sampling(scipy_sparse.csr_matrix(counts), threshold=0.1,
                                             sqrt=sqrt)
    np.testing.assert_allclose(np.asarray(sparse), ref, rtol=1e-6)
    jitted = jax.jit(lambda c, t: resample.repeat_factor_sampling(c, threshold=t, sqrt=sqrt))
    np.testing.assert_allclose(np.asarray(jitted(jnp.asarray(counts), 0.1)), ref, rtol=1e-6)


def test_repeat_factor_sampling_hand_value():
    # Class 1 is in 1 of 4 images: f = 0.25, t = 0.5 -> sqrt(2).
    got = resample.repeat_factor_sampling(np.array([[1, 0], [1, 0], [1, 0], [1, 1]]),
                                          threshold=0.5)
    np.testing.assert_allclose(np.asarray(got), [1, 1, 1, np.sqrt(2)], rtol=1e-6)
    with pytest.raises(ValueError, match="threshold"):
        resample.repeat_factor_sampling(np.eye(2), threshold=0.0)




@pytest.mark.parametrize("threshold", [1.0, 0.3])
def test_mean_aggregation_is_dataeval_global_rule(threshold):
    # DataEval's "global" rule is threshold=1, aggregation="mean"; images holding a class
    # twice count it once; images without a class keep factor 1 here.
    counts = load_label_set("voc07_test")["counts"][:300].copy()
    counts[:5] = 0
    ref = np_dataeval_global(counts, threshold)
    has = ~np.isnan(ref)
    for got in (resample.repeat_factor_sampling(counts, threshold=threshold,
                                                aggregation="mean"),
                resample.repeat_factor_sampling(scipy_sparse.csr_matrix(counts),
                                                threshold=threshold, aggregation="mean"),
                jax.jit(lambda c, t: resample.repeat_factor_sampling(
                        c, threshold=t, aggregation="mean"))(jnp.asarray(counts), threshold)):
        got = np.asarray(got, np.float64)
        np.testing.assert_allclose(got[has], ref[has], rtol=1e-6)
        np.testing.assert_array_equal(got[~has], 1.0)
        # DataEval draws images with probabilities proportional to these weights.
        np.testing.assert_allclose(got[has] / got[has].sum(), ref[has] / ref[has].sum(),
                                   rtol=1e-6)


def test_mean_aggregation_hand_value_and_bad_name():
    # f = (1, 1/4): factors 1 and 2 at t = 1; the image with both classes gets 1.5 (max: 2).
    counts = np.array([[1, 0], [1, 0], [1, 0], [3, 1]])
    np.testing.assert_allclose(resample.repeat_factor_sampling(
            counts, threshold=1.0, aggregation="mean"), [1, 1, 1, 1.5], rtol=1e-6)
    np.testing.assert_allclose(resample.repeat_factor_sampling(
            counts, threshold=1.0, aggregation="max"), [1, 1, 1, 2], rtol=1e-6)
    with pytest.raises(ValueError, match="`aggregation`"):
        resample.repeat_factor_sampling(counts, aggregation="median")


# ------------------------------------------------------------------- stochastic rounding


def test_stochastic_round(getkey):
    rates = jnp.asarray(np.linspace(0, 4, 4001), jnp.float32)
    key = getkey()
    a, b = resample.stochastic_round(key, rates), resample.stochastic_round(key, rates)
    assert a.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = resample.stochastic_round(getkey(), rates)
    assert (np.asarray(a) != np.asarray(c)).any()
    diff = np.asarray(a) - np.floor(np.asarray(rates))
    assert set(np.unique(diff).tolist()) <= {0, 1}
    # Unbiased: mean over many draws matches the rates (fixed seed, 4 sigma).
    keys = jax.random.split(getkey(), 400)
    draws = jax.vmap(resample.stochastic_round, in_axes=(0, None))(keys, rates[:9])
    np.testing.assert_allclose(np.asarray(draws).mean(0), np.asarray(rates[:9]), atol=0.1)
    np.testing.assert_array_equal(np.asarray(resample.stochastic_round(key, jnp.arange(
            4.0))), [0, 1, 2, 3])
    with pytest.raises(TypeError, match="rates"):
        resample.stochastic_round(key, jnp.arange(3))




def test_stochastic_round_is_the_rule_on_its_uniforms(getkey):
    # floor(r) + [u < r - floor(r)] with u = jax.random.uniform(key, ...), written out here.
    rates = jnp.asarray(np.random.default_rng(0).uniform(0, 4, 1000), jnp.float32)
    key = getkey()
    u = np.asarray(jax.random.uniform(key, rates.shape, rates.dtype), np.float64)
    r = np.asarray(rates, np.float64)
    np.testing.assert_array_equal(np.asarray(resample.stochastic_round(key, rates)),
                                  np.floor(r) + (u < r - np.floor(r)))
    jitted = jax.jit(resample.stochastic_round)(key, rates)
    np.testing.assert_array_equal(np.asarray(jitted), np.floor(r) + (u < r - np.floor(r)))


def test_epochs_round_with_the_same_rule():
    # Epoch e of seed s draws u ~ U[0, 1) (float32) from Philox(SeedSequence([s, e])) and
    # keeps image i floor(r_i) + [u_i < r_i - floor(r_i)] times.
    from jbalance._src.sampling.epochs import epoch_generator

    rates = np.random.default_rng(1).uniform(0, 3, 500)
    rates[:3] = [0.0, 1.0, 2.0]
    for seed, epoch in ((0, 0), (3, 7)):
        u = epoch_generator(seed, epoch).random(rates.size, dtype=np.float32)
        expect = (np.floor(rates) + (u < rates - np.floor(rates))).astype(np.int64)
        got = sampling.epoch_indices(seed, rates, epoch=epoch, shuffle=False)
        np.testing.assert_array_equal(np.bincount(got, minlength=rates.size), expect)


# ---------------------------------------------------------------------------- index list


def test_indices():
    idx = resample.indices([0, 2, 1, 3])
    assert idx.tolist() == [1, 1, 2, 3, 3, 3]
    # Issue 11: a host NumPy int64 array, so len() works (PyTorch samplers need it).
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64 and len(idx) == 6
    out = jax.jit(lambda r: resample.indices(r, total_size=6))(jnp.asarray([0, 2, 1, 3]))
    assert out.tolist() == [1, 1, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="repeats"):
        resample.indices([1, -1])
    with pytest.raises(ValueError, match="repeats"):
        resample.indices([[1, 2]])


def test_indices_is_host_numpy_int64():
    idx = resample.indices(np.array([2, 0, 1], np.int32))
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64 and len(idx) == 3
    assert idx.tolist() == [0, 0, 2]
    assert resample.indices([2, 0, 1], total_size=5).tolist() == [0, 0, 2, 2, 2]
    out = jax.jit(lambda r: resample.indices(r, total_size=3))(jnp.asarray([2, 0, 1]))
    assert isinstance(out, jax.Array) and out.tolist() == [0, 0, 2]


@pytest.mark.parametrize("repeats", [[-1, 2], [1.5, 1], [np.nan, 1]])
def test_indices_rejects_bad_repeats_with_total_size(repeats):
    with pytest.raises(ValueError, match="repeats"):
        resample.indices(repeats, total_size=2)


@pytest.mark.parametrize("total_size", [None, 9, 12, 4, 0])
def test_indices_concrete_and_traced_match_numpy_repeat(total_size):
    rng = np.random.default_rng(2)
    repeats = rng.integers(0, 4, 6)
    repeats[-1] = 2
    ref = np.repeat(np.arange(6), repeats)
    size = ref.size if total_size is None else total_size
    ref = np.concatenate([ref, np.full(max(size - ref.size, 0), ref[-1])])[:size]
    host = resample.indices(repeats, total_size=total_size)
    assert isinstance(host, np.ndarray) and host.dtype == np.int64
    np.testing.assert_array_equal(host, ref)
    traced = jax.jit(lambda r: resample.indices(r, total_size=size))(jnp.asarray(repeats))
    assert isinstance(traced, jax.Array) and traced.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(traced), ref)
