"""MixUp and Remix (jbalance._src.augment.mixup) against the NumPy references.

Every branch of `mixup` and `remix` (``mode``, ``in_place``, ``partner_weights``) is pinned
against `np_mixup` / `np_remix_label_weight` with the hyper-parameters given eagerly,
concrete under `jit` and traced under `jit` (`augment_data.call`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import J, call, cases, derive, images, lambda_of, soft_labels, weights_for
from reference_augment import np_mixup, np_remix_label_weight

from jbalance import augment


def _assert_pixels(got, want, dtype):
    got = np.asarray(got)
    if jnp.issubdtype(dtype, jnp.integer):
        # A halfway case may round the other way after float32 re-association (or the
        # in-place kernel's fused multiply-add): allow one level.
        assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1
    elif dtype == jnp.bfloat16:
        # The blend runs in float32 and is rounded once to bfloat16: one bfloat16 ulp.
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                                   rtol=2**-7, atol=2**-8)
    else:  # float32: the reference's arithmetic, up to one rounding (FMA in place)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# (batch, dtype, mode, in_place, weighted partners, how the hyper-parameters arrive): each
# value of mode, in_place and weighted meets both concrete (eager/concrete) and traced ones.
MIXUP_CASES = [
    (5, jnp.float32, "elem", False, False, "eager"),
    (5, jnp.uint8, "elem", True, True, "traced"),
    (3, jnp.float32, "batch", True, False, "traced"),
    (4, jnp.uint8, "batch", False, True, "concrete"),
    (4, jnp.bfloat16, "elem", True, False, "concrete"),
    (1, jnp.uint8, "batch", False, False, "traced"),
]


@pytest.mark.parametrize("b,dtype,mode,in_place,weighted,how", cases(MIXUP_CASES))
def test_mixup_matches_reference(getkey, b, dtype, mode, in_place, weighted, how):
    x, y = images(getkey(), b, dtype=dtype), soft_labels(getkey(), b)
    key, alpha = getkey(), 0.7
    w = weights_for(b) if weighted else None
    got = call(augment.mixup, key, x, y, how=how, static={"mode": mode, "in_place": in_place},
               alpha=alpha, partner_weights=w)
    assert isinstance(got, augment.Mixed)
    assert got.images.dtype == x.dtype and got.labels.dtype == y.dtype
    keys, partners = derive(key, b, mode=mode, partner_weights=w)
    if weighted and b > 2:
        assert 1 not in partners  # a zero weight is never a partner
    xn, yn = np.asarray(x), np.asarray(y)
    for i in range(b):
        p = partners[i, 0]
        want_x, want_y = np_mixup(xn[i], yn[i], xn[p], yn[p], lambda_of(keys[i], alpha))
        _assert_pixels(got.images[i], want_x, dtype)
        np.testing.assert_allclose(got.labels[i], want_y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("how", ["concrete", "traced"])
def test_mixup_one_matches_reference(getkey, how):
    x, y = images(getkey(), 2, dtype=jnp.uint8), soft_labels(getkey(), 2)
    key = getkey()
    got = call(augment.mixup_one, key, x[0], y[0], x[1], y[1], how=how, alpha=0.4)
    want_x, want_y = np_mixup(np.asarray(x[0]), np.asarray(y[0]), np.asarray(x[1]),
                              np.asarray(y[1]), lambda_of(key, 0.4))
    _assert_pixels(got.images, want_x, jnp.uint8)
    np.testing.assert_allclose(got.labels, want_y, rtol=1e-6, atol=1e-6)


def test_mixup_hand_computed_value():
    # lam*1 + (1-lam)*0 = lam, and the labels [1, 0], [0, 1] mix to [lam, 1 - lam].
    key = jax.random.key(3)
    x, y = J(augment.mixup_one)(key, jnp.ones((2, 2, 1)), jnp.array([1.0, 0.0]),
                                jnp.zeros((2, 2, 1)), jnp.array([0.0, 1.0]), alpha=2.0)
    lam = float(jax.random.beta(key, 2.0, 2.0))
    np.testing.assert_allclose(x, np.full((2, 2, 1), lam), rtol=1e-6)
    np.testing.assert_allclose(y, [lam, 1 - lam], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Remix.

REMIX_CASES = [  # (mode, in_place, weighted partners, how): every branch both ways
    ("elem", False, False, "eager"),
    ("elem", True, True, "traced"),
    ("batch", True, False, "concrete"),
    ("batch", False, True, "traced"),
    ("elem", False, True, "concrete"),
    ("batch", True, False, "traced"),
]


@pytest.mark.parametrize("mode,in_place,weighted,how", cases(REMIX_CASES))
def test_remix_matches_reference(getkey, mode, in_place, weighted, how):
    b, k = 16, 3
    x = images(getkey(), b, dtype=jnp.uint8)
    classes = np.asarray(jax.random.randint(getkey(), (b,), 0, k))
    y = jax.nn.one_hot(classes, k, dtype=jnp.float32)
    counts = np.array([500.0, 60.0, 10.0], np.float32)  # ratios 8.3, 50, 6: the rule fires
    key = getkey()
    w = weights_for(b) if weighted else None
    rx, ry = call(augment.remix, key, x, y, how=how, static={"mode": mode, "in_place": in_place},
                  counts=counts, alpha=1.0, kappa=3.0, tau=0.5, partner_weights=w)
    keys, partners = derive(key, b, mode=mode, partner_weights=w)
    xn, yn = np.asarray(x), np.asarray(y)
    fired = 0
    for i in range(b):
        lam = lambda_of(keys[i], 1.0)
        j = partners[i, 0]
        want_x, _ = np_mixup(xn[i], yn[i], xn[j], yn[j], lam)  # the images of MixUp
        _assert_pixels(rx[i], want_x, jnp.uint8)
        ly = np_remix_label_weight(lam, counts[classes[i]], counts[classes[j]], 3.0, 0.5)
        fired += ly != lam
        want = np.float32(ly) * yn[i] + (np.float32(1) - np.float32(ly)) * yn[j]
        np.testing.assert_allclose(np.asarray(ry[i]), want, rtol=1e-6, atol=1e-6)
    if mode == "elem":
        assert fired > 0  # the test data exercises the rule, not only the lambda branch


def test_remix_hand_worked_case():
    # Two examples, partners swap (b=2 permutation or self). Majority 0 (n=90), minority 1
    # (n=10): a pair image that is mostly the majority example gets the minority label.
    y = jnp.eye(2)
    x = jnp.zeros((2, 4, 4, 1))
    counts = jnp.array([90.0, 10.0])
    for seed in range(6):
        key = jax.random.key(seed)
        _, ry = J(augment.remix, counts=counts, kappa=3.0, tau=0.5)(key, x, y)
        keys, p = derive(key, 2)
        for i in range(2):
            lam = float(jax.random.beta(keys[i], 1.0, 1.0))
            if p[i, 0] == i:
                np.testing.assert_allclose(ry[i], y[i])
            elif i == 0 and lam < 0.5:  # n_0/n_1 = 9 >= 3: all of it is class 1
                np.testing.assert_array_equal(ry[i], [0.0, 1.0])
            elif i == 1 and 1 - lam < 0.5:  # n_1/n_0 = 1/9: keep the minority label
                np.testing.assert_array_equal(ry[i], [0.0, 1.0])
            else:  # plain MixUp labels
                np.testing.assert_allclose(ry[i], lam * y[i] + (1 - lam) * y[1 - i],
                                           rtol=1e-6)


@pytest.mark.slow
def test_remix_vmap_over_traced_tau_matches_reference(getkey):
    x, y = images(getkey(), 4), jnp.eye(4)
    counts = np.array([100.0, 30.0, 10.0, 1.0], np.float32)
    key = getkey()
    taus = np.array([0.0, 0.4, 1.0], np.float32)
    out = jax.jit(jax.vmap(lambda t: augment.remix(key, x, y, counts=counts, kappa=2.0,
                                                   tau=t)[1]))(taus)
    assert out.shape == (3, 4, 4)
    keys, p = derive(key, 4)
    for t, tau in enumerate(taus):
        for i in range(4):
            lam = lambda_of(keys[i], 1.0)
            j = p[i, 0]
            ly = np_remix_label_weight(lam, counts[i], counts[j], 2.0, tau)
            want = np.float32(ly) * np.eye(4)[i] + (np.float32(1) - np.float32(ly)) * np.eye(4)[j]
            np.testing.assert_allclose(out[t, i], want, rtol=1e-6, atol=1e-7)
