"""Softmax losses (jbalance/_src/losses/softmax.py): the weighted cross-entropy and the
softmax focal loss, against float64 references, PyTorch, optax and hand-worked values, and
their numerics near certainty and at tied logits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_losses as ref
from losses_data import F32, SOFTMAX, call, data

from jbalance import losses


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_cross_entropy_reference(eps, weighted, soft):
    z, ids, probs, *_, w = data()
    labels = probs if soft else ids
    cw = w if weighted else None
    got = losses.weighted_softmax_cross_entropy(z, labels, class_weights=cw, label_smoothing=eps)
    np.testing.assert_allclose(got, ref.softmax_cross_entropy(z, labels, cw, eps), **F32)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.5])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_focal_reference(gamma, eps, soft):
    z, ids, probs, *_, w = data(1)
    labels = probs if soft else ids
    got = losses.softmax_focal_loss(z, labels, gamma=gamma, class_weights=w, label_smoothing=eps)
    np.testing.assert_allclose(got, ref.softmax_focal(z, labels, gamma, w, eps), **F32)


def test_softmax_hand_values():
    z = jnp.array([[2.0, 0.0, -1.0]])
    # log softmax = z - log(e^2 + 1 + e^-1) = z - 2.1698...
    lse = np.log(np.exp(2.0) + 1.0 + np.exp(-1.0))
    ce = losses.weighted_softmax_cross_entropy(z, jnp.array([1]),
                                               class_weights=jnp.array([1.0, 2.0, 1.0]))
    np.testing.assert_allclose(ce, [2.0 * lse], rtol=1e-6)  # 4.3396 = 2 * 2.1698
    p0 = np.exp(2.0 - lse)
    fl = losses.softmax_focal_loss(z, jnp.array([0]), gamma=2.0)
    np.testing.assert_allclose(fl, [(1 - p0) ** 2 * (lse - 2.0)], rtol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_softmax_focal_gamma_zero_is_cross_entropy(eps):
    z, ids, probs, *_, w = data(2)
    for labels in (ids, probs):
        fl = losses.softmax_focal_loss(z, labels, gamma=0.0, class_weights=w, label_smoothing=eps)
        ce = losses.weighted_softmax_cross_entropy(z, labels, class_weights=w,
                                                   label_smoothing=eps)
        np.testing.assert_array_equal(fl, ce)


@pytest.mark.slow
@pytest.mark.parametrize("name", SOFTMAX)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_softmax_integer_equals_one_hot(name, eps):
    # eps = 0 with class ids takes the gather fast path; one-hot floats take the full sum.
    z, ids, *_, w = data(3)
    z[0, ids[0]] = 40.0  # a near-certain example exercises the arg-max branch
    one_hot = np.eye(z.shape[-1], dtype=np.float32)[ids]
    kw = dict(class_weights=w, label_smoothing=eps)
    if name == "softmax_focal_loss":
        kw["gamma"] = 0.5
    a = call(name, z, ids, **kw)
    b = call(name, z, one_hot, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    ga = jax.grad(lambda x: jnp.sum(call(name, x, ids, **kw)))(z)
    gb = jax.grad(lambda x: jnp.sum(call(name, x, one_hot, **kw)))(z)
    np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_gradient_with_tied_logits(name):
    # Two classes share the largest logit: the arg-max split must not bias the gradient.
    with jax.enable_x64(True):
        z = jnp.array([[1.0, 1.0, -0.5], [0.3, 2.0, 2.0]])
        for labels in (jnp.array([0, 2]), jnp.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])):
            f = jax.jit(lambda x: jnp.sum(call(name, x, labels, label_smoothing=0.0)))
            eye = np.eye(6).reshape(6, 2, 3)
            num = np.array([(f(z + 1e-6 * e) - f(z - 1e-6 * e)) / 2e-6 for e in eye]).reshape(2, 3)
            np.testing.assert_allclose(jax.grad(f)(z), num, rtol=1e-6, atol=1e-8)


def test_softmax_cross_entropy_matches_optax_unweighted():
    z, ids, probs, *_ = data(4)
    np.testing.assert_allclose(losses.weighted_softmax_cross_entropy(z, ids),
                               optax.softmax_cross_entropy_with_integer_labels(z, ids), **F32)
    np.testing.assert_allclose(losses.weighted_softmax_cross_entropy(z, probs),
                               optax.softmax_cross_entropy(z, probs), **F32)


def test_softmax_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z, ids, probs, *_, w = data(5, shape=(7, 6))
    zt, wt = torch.tensor(z), torch.tensor(w)
    for eps in (0.0, 0.15):
        got = losses.weighted_softmax_cross_entropy(z, ids, class_weights=w, label_smoothing=eps)
        want = F.cross_entropy(zt, torch.tensor(ids), weight=wt, label_smoothing=eps,
                               reduction="none").numpy()
        np.testing.assert_allclose(got, want, **F32)
        # PyTorch's weighted "mean" = sum(loss) / sum(w[y]).
        mean = losses.reduce_loss(got, reduction="weighted_mean",
                                  weights=losses.example_weights(ids, w))
        want_mean = F.cross_entropy(zt, torch.tensor(ids), weight=wt, label_smoothing=eps).item()
        np.testing.assert_allclose(mean, want_mean, **F32)
        # Probability targets: weighted per class, plain mean over the batch.
        got = losses.weighted_softmax_cross_entropy(z, probs, class_weights=w,
                                                    label_smoothing=eps)
        want = F.cross_entropy(zt, torch.tensor(probs), weight=wt, label_smoothing=eps,
                               reduction="none").numpy()
        np.testing.assert_allclose(got, want, **F32)
        want_mean = F.cross_entropy(zt, torch.tensor(probs), weight=wt, label_smoothing=eps).item()
        np.testing.assert_allclose(losses.reduce_loss(got), want_mean, **F32)


def test_softmax_ignore_index_matches_torch():
    torch = pytest.importorskip("torch")
    z, ids, *_, w = data(6, shape=(8, 5))
    ids = ids.copy()
    ids[[1, 4]] = -100
    keep = ids != -100
    got = losses.weighted_softmax_cross_entropy(z, ids, class_weights=w, label_smoothing=0.1,
                                                where=keep)
    want = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(ids),
                                             weight=torch.tensor(w), label_smoothing=0.1,
                                             reduction="none").numpy()
    np.testing.assert_allclose(got, want, **F32)
    mean = losses.reduce_loss(got, reduction="weighted_mean",
                              weights=losses.example_weights(ids, w), where=keep)
    want_mean = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(ids),
                                                  weight=torch.tensor(w), label_smoothing=0.1)
    np.testing.assert_allclose(mean, want_mean.item(), **F32)


def test_softmax_ignore_index_argument_matches_torch():
    torch = pytest.importorskip("torch")
    z, ids, *_, w = data(31, shape=(8, 5))
    ids = np.where(np.isin(np.arange(8), [1, 4]), -100, ids)
    got = losses.weighted_softmax_cross_entropy(z, ids, class_weights=w, label_smoothing=0.1,
                                                ignore_index=-100)
    want = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(ids),
                                             weight=torch.tensor(w), label_smoothing=0.1,
                                             ignore_index=-100, reduction="none").numpy()
    np.testing.assert_allclose(got, want, **F32)


def test_softmax_focal_matches_torch_formula():
    torch = pytest.importorskip("torch")
    z, ids, *_, w = data(7, shape=(6, 5))
    zt = torch.tensor(z, dtype=torch.float64)
    log_p = torch.log_softmax(zt, -1)
    q = torch.nn.functional.one_hot(torch.tensor(ids), 5).double() * 0.9 + 0.1 / 5
    want = -(torch.tensor(w).double() * q * (1 - log_p.exp()) ** 1.5 * log_p).sum(-1)
    got = losses.softmax_focal_loss(z, ids, gamma=1.5, class_weights=w, label_smoothing=0.1)
    np.testing.assert_allclose(got, want.numpy(), **F32)


@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_out_of_range_class_ids_raise_and_ignore_index(name):
    z, ids, *_ = data(30)
    f = getattr(losses, name)
    for bad in (4, -1, -100):  # the previous code returned 0 (or the smoothing term)
        with pytest.raises(ValueError, match="labels"):
            f(z, np.where(np.arange(5) == 2, bad, ids))
    # Masked or ignored ids are fine; ignore_index is PyTorch's: 0 loss and 0 gradient.
    ids = np.where(np.arange(5) == 2, -100, ids)
    keep = ids != -100
    a = f(z, ids, where=keep)
    b = f(z, ids, ignore_index=-100)
    np.testing.assert_array_equal(a, b)
    assert b[2] == 0
    g = jax.grad(lambda x: jnp.sum(f(x, ids, ignore_index=-100)))(z)
    np.testing.assert_array_equal(np.asarray(g)[2], 0)
    with pytest.raises(TypeError, match="ignore_index"):
        f(z, ids, ignore_index=-100.0)


def test_softmax_extreme_logits_values():
    # Confidently wrong by 2e4: 2e4; confidently right: 0.
    ce = losses.weighted_softmax_cross_entropy(jnp.array([[1e4, -1e4, 0.0]]), jnp.array([1]))
    np.testing.assert_allclose(ce, [2e4], rtol=1e-6)
    fl = losses.softmax_focal_loss(jnp.array([[1e4, -1e4, 0.0]]), jnp.array([0]), gamma=0.5)
    np.testing.assert_allclose(fl, [0.0], atol=1e-30)


@pytest.mark.slow
def test_softmax_focal_factor_precise_near_certainty():
    # 1 - p of the arg-max class is computed from the other classes, not as 1 - p, so the
    # focal factor (1 - p)^gamma = focal / cross-entropy keeps its relative precision.
    z = np.array([[12.0, 0.0, -5.0], [0.0, 30.0, 1.0]])
    ids = np.array([0, 1])
    with jax.enable_x64(True):
        p = np.exp(ref.log_softmax(z))[np.arange(2), ids]
        one_minus_p = np.array([np.exp(0.0 - 12) + np.exp(-17.0), np.exp(-30.0) + np.exp(-29.0)])
        one_minus_p = one_minus_p / (1 + one_minus_p)
        assert np.allclose(1 - p[:1], one_minus_p[:1])
    zf = jnp.asarray(z, jnp.float32)
    for labels in (ids, np.eye(3, dtype=np.float32)[ids]):  # gather and full paths
        fl = losses.softmax_focal_loss(zf, labels, gamma=2.0)
        ce = losses.weighted_softmax_cross_entropy(zf, labels)
        np.testing.assert_allclose((fl / ce)[0], one_minus_p[0] ** 2, rtol=1e-4)
        assert np.isfinite(np.asarray(fl)).all() and (np.asarray(fl) >= 0).all()
        g = jax.grad(lambda x: jnp.sum(losses.softmax_focal_loss(x, labels, gamma=0.5)))(zf)
        assert np.isfinite(np.asarray(g)).all()
