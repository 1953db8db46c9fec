"""optax's own classification-loss test cases, run against jbalance's losses.

Ported from optax 0.2.8, ``optax/losses/_classification_test.py`` (Apache-2.0, Copyright
2019 DeepMind Technologies Limited): the inputs and expected values of
``SoftmaxCrossEntropyTest``, ``SoftmaxCrossEntropyWithIntegerLabelsTest``,
``SigmoidCrossEntropyTest`` and ``SigmoidFocalLossTest`` are written here as our own cases;
no optax code is copied. Where optax itself is the reference it is called directly (it is a
core dependency). Deliberate differences are stated as strict xfails.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jbalance import losses

# optax's own tolerance for the log-space focal loss on CPU (SigmoidFocalLossTest._rtol).
RTOL = 2e-5

YS = np.array([[10.0, 1.0, -2.0], [1.0, 4.0, 0.2]], np.float32)
TS_SOFT = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
TS_INT = np.array([1, 0], np.int32)
EXPECTED_CE = np.array([9.00013, 3.0696733], np.float32)  # optax's hand-set values


# --- SoftmaxCrossEntropyTest / SoftmaxCrossEntropyWithIntegerLabelsTest -------------------

def test_softmax_ce_scalar_and_batched_match_optax_expected_values():
    f = jax.jit(losses.weighted_softmax_cross_entropy)
    np.testing.assert_allclose(f(YS[0], TS_SOFT[0]), EXPECTED_CE[0], atol=1e-4)
    np.testing.assert_allclose(f(YS, TS_SOFT), EXPECTED_CE, atol=1e-4)
    np.testing.assert_allclose(f(YS, TS_INT), EXPECTED_CE, atol=1e-4)


def test_softmax_ce_integer_consistent_with_one_hot():
    a = losses.weighted_softmax_cross_entropy(YS, TS_INT)
    b = losses.weighted_softmax_cross_entropy(YS, jax.nn.one_hot(TS_INT, 3))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(
        a, optax.softmax_cross_entropy_with_integer_labels(YS, TS_INT), rtol=1e-6)


def test_softmax_ce_example_mask_gives_zero_loss_and_finite_gradient():
    mask = np.array([True, False])
    out = losses.weighted_softmax_cross_entropy(YS, TS_INT, where=mask)
    assert float(out[1]) == 0.0
    np.testing.assert_allclose(out[0], EXPECTED_CE[0], atol=1e-4)
    g = jax.grad(lambda z: losses.weighted_softmax_cross_entropy(z, TS_INT, where=mask).sum())(
        jnp.asarray(YS))
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g[1]) == 0)


@pytest.mark.parametrize("size", [5, 10])
def test_softmax_ce_soft_targets_match_optax_random(size):
    rng = np.random.default_rng(size)
    preds = rng.normal(size=(4, size)).astype(np.float32)
    targets = rng.dirichlet(np.ones(size), size=4).astype(np.float32)
    np.testing.assert_allclose(losses.weighted_softmax_cross_entropy(preds, targets),
                               optax.softmax_cross_entropy(preds, targets), atol=1e-5)


def test_softmax_ce_gradient_matches_optax():
    g = jax.grad(lambda z: losses.weighted_softmax_cross_entropy(z, TS_INT).sum())(
        jnp.asarray(YS))
    g_ref = jax.grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(z, TS_INT).sum())(
        jnp.asarray(YS))
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-7)


# --- SigmoidCrossEntropyTest: optax's ten hand-set cases --------------------------------

_SIGMOID_CASES = [
    ([-1e09, -1e-09], [1.0, 0.0], 5e08),
    ([-1e09, -1e-09], [0.0, 1.0], 0.3465736),
    ([1e09, 1e-09], [1.0, 0.0], 0.3465736),
    ([1e09, 1e-09], [0.0, 1.0], 5e08),
    ([-1e09, 1e-09], [1.0, 0.0], 5e08),
    ([-1e09, 1e-09], [0.0, 1.0], 0.3465736),
    ([1e09, -1e-09], [1.0, 0.0], 0.3465736),
    ([1e09, -1e-09], [0.0, 1.0], 5e08),
    ([0.0, 0.0], [1.0, 0.0], 0.6931472),
    ([0.0, 0.0], [0.0, 1.0], 0.6931472),
]


@pytest.mark.parametrize("preds,labels,expected", _SIGMOID_CASES)
def test_sigmoid_ce_optax_cases(preds, labels, expected):
    out = losses.weighted_sigmoid_cross_entropy(np.array(preds, np.float32),
                                                np.array(labels, np.float32))
    np.testing.assert_allclose(jnp.mean(out), expected, rtol=1e-6, atol=1e-6)


# --- SigmoidFocalLossTest ---------------------------------------------------------------

FYS = np.array([[2.0, 0.1, -2.0], [0.3, -0.1, 1.2]], np.float32)
FTS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], np.float32)


def _logit(p):
    p = np.asarray(p, np.float64)
    return np.log(p / (1 - p)).astype(np.float32)


LARGE = _logit([0.9, 0.98, 0.3, 0.99])
SMALL = _logit([0.1, 0.02, 0.09, 0.15])
ONES = np.ones(4, np.float32)


def _bce(z, y):
    return optax.sigmoid_binary_cross_entropy(z, y)


def test_focal_gamma_zero_no_alpha_equals_ce():
    # optax's default alpha is None (no class balancing); ours is 0.25, so pass None.
    f = jax.jit(lambda z, y: losses.sigmoid_focal_loss(z, y, gamma=0.0, alpha=None))
    np.testing.assert_allclose(f(FYS, FTS), _bce(FYS, FTS), rtol=RTOL)
    z = np.array([[-1.0, 0.0, 1.0], [2.0, -2.0, 0.5]], np.float32)
    y = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(f(z, y), _bce(z, y), rtol=RTOL)


def test_focal_scale_is_one_minus_pt_to_gamma():
    fl = losses.sigmoid_focal_loss(FYS, FTS, gamma=2.0, alpha=None)
    p = 1 / (1 + np.exp(-FYS.astype(np.float64)))
    p_t = p * FTS + (1 - p) * (1 - FTS)
    np.testing.assert_allclose(fl / _bce(FYS, FTS), (1 - p_t) ** 2, rtol=RTOL)


def test_focal_large_logits_reduced():
    fl = losses.sigmoid_focal_loss(LARGE, ONES, gamma=2.0, alpha=0.5)
    ratio = _bce(LARGE, ONES) / fl
    expected = 2.0 / (1.0 - 1 / (1 + np.exp(-LARGE.astype(np.float64)))) ** 2
    np.testing.assert_allclose(ratio, expected, rtol=RTOL)


def test_focal_small_logits_keep_weight():
    fl = losses.sigmoid_focal_loss(SMALL, ONES, gamma=2.0, alpha=None)
    ratio = _bce(SMALL, ONES) / fl
    expected = 1.0 / (1.0 - 1 / (1 + np.exp(-SMALL.astype(np.float64)))) ** 2
    np.testing.assert_allclose(ratio, expected, rtol=RTOL)


def test_focal_alpha_one_keeps_positives_only():
    out = losses.sigmoid_focal_loss(FYS, FTS, gamma=0.0, alpha=1.0)
    np.testing.assert_allclose(out, _bce(FYS, FTS) * FTS, rtol=RTOL)


def test_focal_alpha_zero_ignores_positives_and_one_ignores_negatives():
    ce = np.asarray(_bce(FYS, FTS))
    pos = FTS == 1
    out0 = np.asarray(losses.sigmoid_focal_loss(FYS, FTS, alpha=0.0))
    out1 = np.asarray(losses.sigmoid_focal_loss(FYS, FTS, alpha=1.0))
    assert np.all(ce[pos] > 0) and np.all(out0[pos] == 0)
    assert np.all(ce[~pos] > 0) and np.all(out1[~pos] == 0)


def test_focal_extreme_soft_labels_finite_gradients_and_hessian():
    z = jnp.array([100.0, -100.0, 75.0, -75.0, 50.0, -50.0])
    y = jnp.array([0.9, 0.1, 0.8, 0.2, 1.0, 0.0])

    def loss(z):
        return jnp.sum(jax.jit(lambda a: losses.sigmoid_focal_loss(a, y, gamma=0.5))(z))

    assert np.isfinite(float(loss(z)))
    assert np.all(np.isfinite(jax.grad(loss)(z)))
    assert np.all(np.isfinite(jax.hessian(loss)(z)))


def test_focal_matches_optax_on_a_grid():
    # optax.sigmoid_focal_loss is the peer: same formula, alpha-balanced.
    z = np.linspace(-12, 12, 97, dtype=np.float32)
    for y in (0.0, 1.0, 0.3):
        lab = np.full_like(z, y)
        for alpha in (None, 0.25):
            np.testing.assert_allclose(
                losses.sigmoid_focal_loss(z, lab, gamma=2.0, alpha=alpha),
                optax.sigmoid_focal_loss(z, lab, gamma=2.0, alpha=alpha), rtol=1e-4, atol=1e-7)
