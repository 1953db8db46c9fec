"""Partners and draws (jbalance._src.augment.partners): permutations, weighted partners, and
the Beta lambdas of the batch functions, against their distributions (fixed seeds)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from augment_data import J, derive, images

from jbalance import augment


def test_partners_default_to_permutations_of_any_size():
    for b in (1, 7, 33):
        p = np.asarray(J(augment.partner_indices, batch_size=b, num_partners=3)(
                jax.random.key(b)))
        assert p.shape == (b, 3) and p.dtype == np.int32
        for col in p.T:
            np.testing.assert_array_equal(np.sort(col), np.arange(b))
        if b > 2:
            assert len({tuple(c) for c in p.T}) == 3  # independent columns


@pytest.mark.parametrize("traced", [False, True])
def test_partner_weights_set_the_partner_probabilities(traced):
    w = np.array([1.0, 0.0, 2.0, 3.0, 4.0], np.float32)
    draw = lambda w_: augment.partner_indices(jax.random.key(1), 5, num_partners=4000,  # noqa: E731
                                              partner_weights=w_)
    p = np.asarray(jax.jit(draw)(w) if traced else draw(w)).ravel()
    counts = np.bincount(p, minlength=5)
    assert counts[1] == 0
    assert scipy.stats.chisquare(counts[w > 0], counts.sum() * w[w > 0] / w.sum()).pvalue > 1e-3


def test_partner_weights_steer_mixup_partners(getkey):
    b = 6
    x, y = images(getkey(), b), jnp.eye(b)
    w = jnp.zeros(b).at[4].set(1.0)  # only example 4 may be a partner
    _, gy = J(augment.mixup)(getkey(), x, y, partner_weights=w)
    gy = np.asarray(gy)
    off = gy * (1 - np.eye(b))
    assert np.all(off[:, [0, 1, 2, 3, 5]] == 0) and np.all(off[np.arange(b) != 4, 4] > 0)


@jax.jit
def _lambda_samples(keys, alpha):
    one = jnp.ones((1, 1, 1))
    lab = jnp.array([1.0, 0.0])
    return jax.vmap(lambda k: augment.mixup_one(k, one, lab, one * 0, 1 - lab, alpha=alpha))(
            keys)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixup_lambda_is_beta_distributed(alpha):
    n = 4000
    keys = jax.random.split(jax.random.key(11), n)
    x, _ = _lambda_samples(keys, alpha)  # alpha traced: one compilation for all three
    lam = np.asarray(x).ravel()
    assert scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    se = np.sqrt(1 / (4 * (2 * alpha + 1)) / n)
    assert abs(lam.mean() - 0.5) < 4 * se


@pytest.mark.slow
def test_mixup_batch_lambdas_distinct_per_example_and_shared_in_batch_mode():
    b = 64
    x = jnp.zeros((b, 2, 2, 1))
    y = jnp.eye(b)
    key = jax.random.key(5)
    _, partners = derive(key, b)
    _, ye = J(augment.mixup)(key, x, y, alpha=1.0)
    own = np.diag(np.asarray(ye))[partners[:, 0] != np.arange(b)]
    assert len(np.unique(own)) == len(own) > 30
    _, yb = J(augment.mixup, mode="batch")(key, x, y, alpha=1.0)
    own_b = np.diag(np.asarray(yb))[partners[:, 0] != np.arange(b)]
    np.testing.assert_allclose(own_b, own_b[0])
    # The batch function's lambdas are Beta(alpha, alpha) as well (fixed key).
    lam = np.concatenate([
            np.diag(np.asarray(J(augment.mixup)(jax.random.key(s), x, y, alpha=1.0)[1]))
            for s in range(20)])
    assert scipy.stats.kstest(lam, "uniform").pvalue > 1e-3
