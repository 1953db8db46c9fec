"""CutMix (jbalance._src.augment.cutmix) against the NumPy references.

`cutmix` has four copy kernels (a select; row bands; permutation cycles; one shared
window): each is pinned against `np_cutmix` with the hyper-parameters given eagerly,
concrete under `jit` and traced (`augment_data.call`). The box itself is rebuilt from the
documented draws (`cutmix_box_from_draws`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from augment_data import (
    J,
    call,
    cases,
    cutmix_draws,
    derive,
    expected_cutmix,
    images,
    soft_labels,
    weights_for,
)
from reference_augment import cutmix_box_from_draws, np_cutmix

from jbalance import augment

# (batch, dtype, mode, in_place, weighted, how) -> the kernel it takes:
CUTMIX_CASES = [
    (7, jnp.float32, "elem", False, False, "eager"),     # select
    (4, jnp.uint8, "elem", False, True, "traced"),       # select
    (5, jnp.uint8, "elem", True, False, "traced"),       # permutation cycles
    (1, jnp.int32, "elem", True, False, "concrete"),     # cycles: its own partner
    (6, jnp.float32, "elem", True, True, "concrete"),    # row bands (not a permutation)
    (6, jnp.uint8, "elem", True, True, "traced"),        # row bands
    (5, jnp.uint8, "batch", False, False, "concrete"),   # one shared window
    (3, jnp.bfloat16, "batch", True, True, "traced"),    # one shared window
]


@pytest.mark.parametrize("b,dtype,mode,in_place,weighted,how", cases(CUTMIX_CASES))
def test_cutmix_matches_reference(getkey, b, dtype, mode, in_place, weighted, how):
    x, y = images(getkey(), b, dtype=dtype), soft_labels(getkey(), b)
    key = getkey()
    w = weights_for(b) if weighted else None
    got = call(augment.cutmix, key, x, y, how=how, static={"mode": mode, "in_place": in_place},
               alpha=1.0, partner_weights=w)
    assert isinstance(got, augment.Mixed) and got.images.dtype == x.dtype
    want_x, want_y, _, _ = expected_cutmix(key, x, y, 1.0, mode=mode, partner_weights=w)
    np.testing.assert_array_equal(np.asarray(got.images), want_x)  # copies: exact
    np.testing.assert_allclose(got.labels, want_y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("how", ["concrete", "traced"])
def test_cutmix_one_and_cutmix_box_match_the_draws(getkey, how):
    x, y = images(getkey(), 2, h=9, w=13, dtype=jnp.uint8), soft_labels(getkey(), 2)
    for seed in range(3):
        key = jax.random.key(seed)
        lam, cy, cx = cutmix_draws(key, 0.6, 9, 13)
        want_box = cutmix_box_from_draws(lam, cy, cx, 9, 13)
        got_box = call(augment.cutmix_box, key, how=how, static={"height": 9, "width": 13},
                       alpha=0.6)
        assert isinstance(got_box, augment.CutMixBox)
        assert tuple(np.asarray(got_box.box).tolist()) == want_box
        # A constant alpha may be folded at compile time: lambda within an ulp or two.
        np.testing.assert_allclose(np.float32(got_box.lam), lam, rtol=1e-6)
        got = call(augment.cutmix_one, key, x[0], y[0], x[1], y[1], how=how, alpha=0.6)
        want_x, want_y = np_cutmix(np.asarray(x[0]), np.asarray(y[0]), np.asarray(x[1]),
                                   np.asarray(y[1]), want_box)
        np.testing.assert_array_equal(np.asarray(got.images), want_x)
        np.testing.assert_allclose(got.labels, want_y, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(16, 16), (9, 13), (1, 5)])
def test_cutmix_label_weight_is_exact_pasted_fraction(shape):
    b = 32
    h, w = shape
    x = jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.float32)[:, None, None, None],
                         (b, h, w, 2))
    y = jnp.eye(b)
    key = jax.random.key(7)
    gx, gy = J(augment.cutmix)(key, x, y, alpha=0.5)
    _, partners = derive(key, b)
    gx, gy = np.asarray(gx), np.asarray(gy)
    checked = 0
    for i in range(b):
        p = partners[i, 0]
        if p == i:
            continue
        pasted = gx[i, :, :, 0] == p + 1
        frac = np.float32(pasted.sum()) / np.float32(h * w)
        assert gy[i, p] == frac  # exact, not approximately
        assert gy[i, i] == np.float32(1) - frac
        assert np.isin(gx[i], [i + 1, p + 1]).all()
        if pasted.any():  # the pasted pixels form one rectangle
            rows, cols = np.nonzero(pasted)
            assert pasted.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        checked += 1
    assert checked > 20


def test_cutmix_box_lambda_and_clipping():
    keys = jax.random.split(jax.random.key(2), 3000)
    boxes, lam = jax.jit(jax.vmap(lambda k: augment.cutmix_box(k, 20, 30, alpha=1.0)))(keys)
    boxes, lam = np.asarray(boxes), np.asarray(lam)
    assert scipy.stats.kstest(lam, "uniform").pvalue > 1e-3
    assert (boxes[:, 0] <= boxes[:, 1]).all() and (boxes[:, 2] <= boxes[:, 3]).all()
    assert boxes.min() >= 0 and boxes[:, :2].max() <= 20 and boxes[:, 2:].max() <= 30
    # Unclipped boxes have floor(H sqrt(1-lam)) x floor(W sqrt(1-lam)) pixels.
    hs = boxes[:, 1] - boxes[:, 0]
    ws = boxes[:, 3] - boxes[:, 2]
    full = (boxes[:, 0] > 0) & (boxes[:, 1] < 20) & (boxes[:, 2] > 0) & (boxes[:, 3] < 30)
    r = np.sqrt(1 - lam.astype(np.float64))
    np.testing.assert_array_equal(hs[full], np.floor(20 * r[full] + 1e-9).astype(int))
    np.testing.assert_array_equal(ws[full], np.floor(30 * r[full] + 1e-9).astype(int))
