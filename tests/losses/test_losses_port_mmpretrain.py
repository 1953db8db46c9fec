"""mmpretrain's own loss test cases, run against jbalance's losses.

Ported from mmpretrain, ``tests/test_models/test_losses.py`` (Apache-2.0, Copyright
OpenMMLab): the inputs and hand-set expected values of ``test_asymmetric_loss`` (sigmoid
form), ``test_cross_entropy_loss`` (softmax, soft, sigmoid, class weights, sample weights,
``pos_weight``), ``test_focal_loss``, ``test_label_smooth_loss`` ("original" mode, timm's
value) and ``test_seesaw_loss`` (the p-only and q-only calculations) are written here as our
own cases. No mmpretrain code is copied.

mmpretrain's ``reduction="mean"`` averages the elementwise (sigmoid) or per-example (softmax)
losses, and its ``weight`` multiplies per example before that mean; our losses are unreduced,
so each case takes ``.mean()`` of the product. Its softmax ``AsymmetricLoss`` (single-label)
has no counterpart in jbalance and is not ported.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jbalance import losses

SCORE = np.array([[5, -5, 0], [5, -5, 0]], np.float32)
MULTI = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
SAMPLE_W = np.array([0.5, 0.5], np.float32)


def _close(a, b, tol=1e-4):
    np.testing.assert_allclose(float(a), float(b), rtol=tol, atol=tol)


def test_asymmetric_loss_with_and_without_clip():
    asl = losses.asymmetric_loss(SCORE, MULTI, gamma_pos=1.0, gamma_neg=4.0, clip=0.05)
    _close(asl.mean(), 3.80845 / 3)
    _close((asl * SAMPLE_W[:, None]).mean(), 3.80845 / 6)
    asl = losses.asymmetric_loss(SCORE, MULTI, gamma_pos=1.0, gamma_neg=4.0, clip=0.0)
    _close(asl.mean(), 5.1186 / 3)


def test_softmax_cross_entropy_class_and_sample_weights():
    score = np.array([[-1000, 1000], [100, -100]], np.float32)
    label = np.array([0, 1])
    w = np.array([0.6, 0.4], np.float32)
    ce = losses.weighted_softmax_cross_entropy(score, label)
    _close(ce.mean(), 1100.0)
    _close((ce * w).mean(), 640.0)
    cw = jnp.array([0.3, 0.7])
    ce = losses.weighted_softmax_cross_entropy(score, label, class_weights=cw)
    _close(ce.mean(), 370.0)
    _close((ce * w).mean(), 208.0)
    # use_soft: the same values from one-hot soft targets.
    soft = np.eye(2, dtype=np.float32)[label]
    _close(losses.weighted_softmax_cross_entropy(score, soft).mean(), 1100.0)
    _close(losses.weighted_softmax_cross_entropy(score, soft, class_weights=cw).mean(), 370.0)


def test_sigmoid_cross_entropy_class_sample_and_pos_weights():
    score = np.array([[-200, 100], [500, -1000], [300, -300]], np.float32)
    label = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    w = np.array([0.6, 0.4, 0.5], np.float32)[:, None]
    bce = losses.weighted_sigmoid_cross_entropy(score, label)
    _close(bce.mean(), 300.0)
    _close((bce * w).mean(), 130.0)
    cw = jnp.array([0.1, 0.9])
    bce = losses.weighted_sigmoid_cross_entropy(score, label, class_weights=cw)
    _close(bce.mean(), 176.667, tol=1e-3)
    _close((bce * w).mean(), 74.333, tol=1e-3)
    bce = losses.weighted_sigmoid_cross_entropy(score, label, pos_weight=jnp.array([0.1, 0.2]))
    _close(bce.mean(), 136.6667)


def test_sigmoid_focal_loss_multi_and_single_label():
    fl = losses.sigmoid_focal_loss(SCORE, MULTI, gamma=2.0, alpha=0.25)
    _close(fl.mean(), 0.8522)
    _close((fl * SAMPLE_W[:, None]).mean(), 0.8522 / 2)
    # mmpretrain turns single labels into one-hot rows for the sigmoid focal loss.
    one_hot = np.eye(3, dtype=np.float32)[[0, 1]]
    _close(losses.sigmoid_focal_loss(SCORE, one_hot, gamma=2.0, alpha=0.25).mean(), 0.86664125)


def test_label_smoothing_matches_timm_value():
    # "original" mode: the target is (1 - eps) one_hot + eps / C, timm's convention.
    ce = losses.weighted_softmax_cross_entropy(np.array([[1.0, -1.0]], np.float32),
                                               np.array([0]), label_smoothing=0.1)
    _close(ce[0], 0.2269)


def test_seesaw_mitigation_only():
    # p=1, q=0, class 0 seen e^20 times, class 1 never: the other logit drops by 20,
    # so CE([-100, 80], 0) = 180. mmdet clamps counts at 1, so 1 here stands for 0.
    counts = jnp.array([math.exp(20.0), 1.0])
    loss = losses.seesaw_loss(np.array([[-100.0, 100.0]], np.float32), np.array([0]),
                              counts=counts, p=1.0, q=0.0)
    _close(loss[0], 180.0, tol=1e-3)


def test_seesaw_compensation_only():
    # q=1, p=0: the wrongly-confident logit rises by log(sigma_1 / max(sigma_0, eps)) with
    # mmdet's eps = 1e-2: 200 + log(100).
    loss = losses.seesaw_loss(np.array([[-100.0, 100.0]], np.float32), np.array([0]),
                              counts=jnp.array([1.0, 1.0]), p=0.0, q=1.0, eps=1e-2)
    _close(loss[0], 200.0 + math.log(100.0), tol=1e-3)


def test_seesaw_without_p_and_q_is_cross_entropy():
    loss = losses.seesaw_loss(np.array([[-100.0, 100.0]], np.float32), np.array([1]),
                              counts=jnp.array([1.0, 1.0]), p=0.0, q=0.0)
    _close(loss[0], 0.0)


@pytest.mark.parametrize("smoothing", [0.1])
def test_multi_label_smoothing_is_bce_on_smoothed_targets(smoothing):
    # mmpretrain's "multi_label" mode: BCE against y (1 - eps) + (1 - y) eps.
    z = np.array([[1.0, -1.0, 1.0]], np.float32)
    y = np.array([[1.0, 0.0, 1.0]], np.float32)
    smooth = y * (1 - smoothing) + (1 - y) * smoothing
    ref = np.mean(np.logaddexp(0, z) - smooth * z)
    _close(losses.weighted_sigmoid_cross_entropy(z, smooth).mean(), ref, tol=1e-6)
