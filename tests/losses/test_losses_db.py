"""Distribution-balanced loss (jbalance/_src/losses/distribution_balanced.py) against a float64
NumPy transcription of the paper's equations (Wu et al., ECCV 2020; reference_segmentation.py,
written from the paper, not from the authors' non-commercial code): values and gradients,
jit, vmap, traced and concrete hyper-parameters, conventions, extreme logits, bf16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_segmentation as ref

from jbalance import losses
from jbalance._src import checks

TOL = dict(rtol=2e-5, atol=2e-6)
COUNTS = np.array([80.0, 15.0, 5.0, 1.0, 40.0], np.float32)
NUM = 100


def _data(seed, n=12, soft=False):
    r = np.random.default_rng(seed)
    z = (2 * r.standard_normal((n, 5))).astype(np.float32)
    y = (r.random((n, 5)) < 0.35).astype(np.float32)
    y[0] = 0  # an example without positives
    if soft:
        y = (y * r.random((n, 5))).astype(np.float32)
    return z, y


HYPER = [{}, {"alpha": 0.2, "beta": 5.0, "mu": 0.2, "kappa": 0.1, "lam": 2.0, "gamma": 0.5},
         {"gamma": 0.0, "kappa": 0.0, "lam": 1.0}]


@pytest.mark.parametrize("hyper", HYPER)
@pytest.mark.parametrize("soft", [False, True])
def test_matches_paper_reference(hyper, soft):
    z, y = _data(0, soft=soft)
    got = losses.distribution_balanced_loss(z, y, counts=COUNTS, num_examples=NUM, **hyper)
    np.testing.assert_allclose(got, ref.distribution_balanced(z, y, COUNTS, NUM, **hyper), **TOL)
    # Traced hyper-parameters and num_examples under jit.
    names = sorted(hyper)
    f = jax.jit(lambda z, y, n, *v: losses.distribution_balanced_loss(
        z, y, counts=COUNTS, num_examples=n, **dict(zip(names, v))))
    np.testing.assert_allclose(f(z, y, NUM, *[hyper[k] for k in names]), got, **TOL)


def test_hand_value_and_conventions():
    # One example, 2 classes, n = (10, 90), N = 100, labels (1, 0), defaults.
    z = np.array([[0.5, -1.0]], np.float32)
    y = np.array([[1.0, 0.0]], np.float32)
    n = np.array([10.0, 90.0], np.float32)
    r = np.array([1.0, (1 / 90) / (1 / 10)])
    r_hat = 0.1 + 1 / (1 + np.exp(-10 * (r - 0.3)))
    nu = -0.05 * np.log(1 / (n / 100) - 1)
    qp = 1 / (1 + np.exp(-(z[0] - nu)))
    qm = 1 / (1 + np.exp(-5 * (z[0] - nu)))
    want = r_hat * np.array([(1 - qp[0]) ** 2 * -np.log(qp[0]),
                             0.2 * qm[1] ** 2 * -np.log(1 - qm[1])])
    got = losses.distribution_balanced_loss(z, y, counts=n, num_examples=100)
    np.testing.assert_allclose(got[0], want, rtol=1e-5)
    # No positives: r_hat = alpha + 1 on every class.
    zero = np.zeros_like(y)
    got = losses.distribution_balanced_loss(z, zero, counts=n, num_examples=100, alpha=0.3)
    plain = losses.distribution_balanced_loss(z, zero, counts=n, num_examples=100, alpha=0.0)
    np.testing.assert_allclose(got, plain * 1.3 / 1.0, rtol=1e-6)
    # Zero counts and counts equal to num_examples: finite (clipped to [1/2, N - 1/2]).
    edge = np.array([0.0, 100.0], np.float32)
    out = losses.distribution_balanced_loss(z, y, counts=edge, num_examples=100)
    assert np.isfinite(np.asarray(out)).all()
    np.testing.assert_allclose(out, ref.distribution_balanced(z, y, edge, 100), rtol=1e-5)


def test_gradients_extreme_logits_and_mask():
    z, y = _data(1)
    with jax.enable_x64(True):
        z64 = jnp.asarray(z, jnp.float64)
        g = jax.grad(lambda z: jnp.sum(losses.distribution_balanced_loss(
            z, y, counts=COUNTS, num_examples=NUM)))(z64)
        d = np.random.default_rng(2).standard_normal(z.shape)
        eps = 1e-6
        fd = (ref.distribution_balanced(np.asarray(z64) + eps * d, y, COUNTS, NUM).sum()
              - ref.distribution_balanced(np.asarray(z64) - eps * d, y, COUNTS, NUM).sum()) / (
                  2 * eps)
        np.testing.assert_allclose(np.sum(np.asarray(g) * d), fd, rtol=1e-6)
    for scale in (100.0, -100.0):
        big = np.full_like(z, scale)
        for gamma in (2.0, 0.5, 0.0):
            f = lambda z: jnp.sum(losses.distribution_balanced_loss(  # noqa: E731
                z, y, counts=COUNTS, num_examples=NUM, gamma=gamma))
            assert np.isfinite(float(f(big)))
            assert np.isfinite(np.asarray(jax.grad(f)(big))).all()
            # Second derivative along the logits' direction.
            assert np.isfinite(float(jax.hessian(lambda v: f(jnp.asarray(big) * v))(1.0)))
    mask = np.random.default_rng(3).random(z.shape) < 0.7
    zn = np.where(mask, z, np.nan).astype(np.float32)
    out = losses.distribution_balanced_loss(zn, y, counts=COUNTS, num_examples=NUM, where=mask)
    assert np.isfinite(np.asarray(out)).all() and (np.asarray(out)[~mask] == 0).all()
    g = jax.grad(lambda z: jnp.sum(losses.distribution_balanced_loss(
        z, y, counts=COUNTS, num_examples=NUM, where=mask)))(zn)
    assert np.isfinite(np.asarray(g)).all()
    # Masked elements are not positives: the same as their labels being 0.
    np.testing.assert_allclose(out, np.where(mask, ref.distribution_balanced(
        z, np.where(mask, y, 0), COUNTS, NUM), 0), **TOL)


def test_vmap_and_dtypes():
    z, y = _data(4)
    want = losses.distribution_balanced_loss(z, y, counts=COUNTS, num_examples=NUM)
    one = jax.vmap(lambda z, y: losses.distribution_balanced_loss(
        z, y, counts=COUNTS, num_examples=NUM))(z, y)
    np.testing.assert_allclose(one, want, **TOL)
    out = losses.distribution_balanced_loss(jnp.asarray(z, jnp.bfloat16), y, counts=COUNTS,
                                            num_examples=NUM)
    assert out.dtype == jnp.bfloat16 and np.isfinite(np.asarray(out, np.float32)).all()
    np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=2e-2, atol=2e-3)
    big = losses.distribution_balanced_loss(jnp.full(z.shape, 100, jnp.bfloat16), y,
                                            counts=COUNTS, num_examples=NUM)
    assert np.isfinite(np.asarray(big, np.float32)).all()


def test_errors_name_the_argument():
    z, y = _data(5)
    with pytest.raises(ValueError, match="num_examples"):
        losses.distribution_balanced_loss(z, y, counts=COUNTS, num_examples=50)
    with pytest.raises(ValueError, match="counts"):
        losses.distribution_balanced_loss(z, y, counts=-COUNTS, num_examples=NUM)
    with pytest.raises(ValueError, match="counts"):
        losses.distribution_balanced_loss(z, y, counts=COUNTS[:3], num_examples=NUM)
    with pytest.raises(ValueError, match="lam"):
        losses.distribution_balanced_loss(z, y, counts=COUNTS, num_examples=NUM, lam=0.0)
    with pytest.raises(ValueError, match="gamma"):
        losses.distribution_balanced_loss(z, y, counts=COUNTS, num_examples=NUM, gamma=-1.0)
    with pytest.raises(ValueError, match="labels"):
        losses.distribution_balanced_loss(z, 2 * y, counts=COUNTS, num_examples=NUM)
    f = jax.jit(checks.checked(lambda n: losses.distribution_balanced_loss(
        z, y, counts=COUNTS, num_examples=n)))
    err, _ = f(50.0)
    with pytest.raises(Exception, match="num_examples"):
        err.throw()
