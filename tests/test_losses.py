"""Tests for jbalance.losses: references, identities, transforms, numerics, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_losses as ref
from conftest import load_label_set
from jax.test_util import check_grads

from jbalance import losses

# float32 on CPU: elementwise transcendental ops agree with float64 to a few ulps.
F32 = dict(rtol=2e-5, atol=2e-6)
F64 = dict(rtol=1e-10, atol=1e-12)

LOSS_NAMES = ("weighted_softmax_cross_entropy", "softmax_focal_loss",
              "weighted_sigmoid_cross_entropy", "sigmoid_focal_loss")
SOFTMAX = LOSS_NAMES[:2]


def _data(seed=0, shape=(5, 4), scale=3.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    z = (scale * rng.standard_normal(shape)).astype(dtype)
    ids = rng.integers(0, shape[-1], shape[:-1])
    soft = rng.dirichlet(np.ones(shape[-1]), shape[:-1]).astype(dtype)
    binary = (rng.random(shape) < 0.4).astype(dtype)
    unit = rng.random(shape).astype(dtype)
    w = rng.uniform(0.2, 3.0, shape[-1]).astype(dtype)
    return z, ids, soft, binary, unit, w


def _labels_for(name, ids, soft, binary):
    """Integer ids for the softmax losses, binary targets for the sigmoid ones."""
    return ids if name in SOFTMAX else binary


def _call(name, z, labels, **kw):
    return getattr(losses, name)(z, labels, **kw)


# ------------------------------------------------------------------------------------------
# class_weights
# ------------------------------------------------------------------------------------------


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


def test_class_weights_dtypes():
    assert losses.class_weights(jnp.array([3, 1]), dtype=jnp.bfloat16).dtype == jnp.bfloat16
    assert losses.class_weights(jnp.array([3.0, 1.0], jnp.float16)).dtype == jnp.float16
    with jax.enable_x64(True):
        w = losses.class_weights(np.array([3.0, 1.0]))
        assert w.dtype == jnp.float64


# ------------------------------------------------------------------------------------------
# Softmax losses
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_cross_entropy_reference(eps, weighted, soft):
    z, ids, probs, *_, w = _data()
    labels = probs if soft else ids
    cw = w if weighted else None
    got = losses.weighted_softmax_cross_entropy(z, labels, class_weights=cw, label_smoothing=eps)
    np.testing.assert_allclose(got, ref.softmax_cross_entropy(z, labels, cw, eps), **F32)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.5])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_focal_reference(gamma, eps, soft):
    z, ids, probs, *_, w = _data(1)
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
    z, ids, probs, *_, w = _data(2)
    for labels in (ids, probs):
        fl = losses.softmax_focal_loss(z, labels, gamma=0.0, class_weights=w, label_smoothing=eps)
        ce = losses.weighted_softmax_cross_entropy(z, labels, class_weights=w,
                                                   label_smoothing=eps)
        np.testing.assert_array_equal(fl, ce)


@pytest.mark.parametrize("name", SOFTMAX)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_softmax_integer_equals_one_hot(name, eps):
    # eps = 0 with class ids takes the gather fast path; one-hot floats take the full sum.
    z, ids, *_, w = _data(3)
    z[0, ids[0]] = 40.0  # a near-certain example exercises the arg-max branch
    one_hot = np.eye(z.shape[-1], dtype=np.float32)[ids]
    kw = dict(class_weights=w, label_smoothing=eps)
    if name == "softmax_focal_loss":
        kw["gamma"] = 0.5
    a = _call(name, z, ids, **kw)
    b = _call(name, z, one_hot, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    ga = jax.grad(lambda x: jnp.sum(_call(name, x, ids, **kw)))(z)
    gb = jax.grad(lambda x: jnp.sum(_call(name, x, one_hot, **kw)))(z)
    np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_gradient_with_tied_logits(name):
    # Two classes share the largest logit: the arg-max split must not bias the gradient.
    with jax.enable_x64(True):
        z = jnp.array([[1.0, 1.0, -0.5], [0.3, 2.0, 2.0]])
        for labels in (jnp.array([0, 2]), jnp.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])):
            f = jax.jit(lambda x: jnp.sum(_call(name, x, labels, label_smoothing=0.0)))
            eye = np.eye(6).reshape(6, 2, 3)
            num = np.array([(f(z + 1e-6 * e) - f(z - 1e-6 * e)) / 2e-6 for e in eye]).reshape(2, 3)
            np.testing.assert_allclose(jax.grad(f)(z), num, rtol=1e-6, atol=1e-8)


def test_softmax_cross_entropy_matches_optax_unweighted():
    z, ids, probs, *_ = _data(4)
    np.testing.assert_allclose(losses.weighted_softmax_cross_entropy(z, ids),
                               optax.softmax_cross_entropy_with_integer_labels(z, ids), **F32)
    np.testing.assert_allclose(losses.weighted_softmax_cross_entropy(z, probs),
                               optax.softmax_cross_entropy(z, probs), **F32)


def test_softmax_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z, ids, probs, *_, w = _data(5, shape=(7, 6))
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
    z, ids, *_, w = _data(6, shape=(8, 5))
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


def test_softmax_focal_matches_torch_formula():
    torch = pytest.importorskip("torch")
    z, ids, *_, w = _data(7, shape=(6, 5))
    zt = torch.tensor(z, dtype=torch.float64)
    log_p = torch.log_softmax(zt, -1)
    q = torch.nn.functional.one_hot(torch.tensor(ids), 5).double() * 0.9 + 0.1 / 5
    want = -(torch.tensor(w).double() * q * (1 - log_p.exp()) ** 1.5 * log_p).sum(-1)
    got = losses.softmax_focal_loss(z, ids, gamma=1.5, class_weights=w, label_smoothing=0.1)
    np.testing.assert_allclose(got, want.numpy(), **F32)


# ------------------------------------------------------------------------------------------
# Sigmoid losses
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weight", [None, 3.0, "vector"])
def test_sigmoid_cross_entropy_reference(weighted, pos_weight):
    z, _, _, binary, unit, w = _data(8)
    pw = w[::-1].copy() if pos_weight == "vector" else pos_weight
    cw = w if weighted else None
    for labels in (binary, unit):
        got = losses.weighted_sigmoid_cross_entropy(z, labels, class_weights=cw, pos_weight=pw)
        np.testing.assert_allclose(got, ref.sigmoid_cross_entropy(z, labels, cw, pw), **F32)


def test_sigmoid_cross_entropy_hand_value_and_optax():
    # -[2 * log s(2)] = 2 log(1 + e^-2) = 0.2539; class 2: 3 * 2 * log(1 + e) = 7.8789.
    got = losses.weighted_sigmoid_cross_entropy(jnp.array([[2.0, -1.0]]), jnp.array([[1.0, 1.0]]),
                                                class_weights=jnp.array([1.0, 3.0]),
                                                pos_weight=2.0)
    np.testing.assert_allclose(got, [[2 * np.log1p(np.exp(-2.0)), 6 * np.log1p(np.e)]],
                               rtol=1e-6)
    z, _, _, _, unit, _ = _data(9)
    np.testing.assert_allclose(losses.weighted_sigmoid_cross_entropy(z, unit),
                               optax.sigmoid_binary_cross_entropy(z, unit), **F32)


def test_sigmoid_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    z, _, _, binary, unit, w = _data(10, shape=(4, 3, 6))
    pw = w[::-1].copy()
    for labels in (binary, unit):
        fn = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(pw),
                                        reduction="none")
        want = fn(torch.tensor(z), torch.tensor(labels)).numpy()
        got = losses.weighted_sigmoid_cross_entropy(z, labels, class_weights=w, pos_weight=pw)
        np.testing.assert_allclose(got, want, **F32)
        # PyTorch's "mean" for BCE is the plain mean over elements.
        want_mean = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w),
                                               pos_weight=torch.tensor(pw))(
            torch.tensor(z), torch.tensor(labels)).item()
        np.testing.assert_allclose(losses.reduce_loss(got), want_mean, **F32)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
def test_sigmoid_focal_reference(gamma, alpha):
    z, _, _, binary, unit, w = _data(11)
    for labels in (binary, unit):
        got = losses.sigmoid_focal_loss(z, labels, gamma=gamma, alpha=alpha, class_weights=w)
        np.testing.assert_allclose(got, ref.sigmoid_focal(z, labels, gamma, alpha, w), **F32)


def test_sigmoid_focal_hand_value():
    # z=-1, y=1: p = s(-1) = 0.26894, (1 - p)^2 = 0.53445, -log p = 1.31326, x 0.25 = 0.17547
    got = losses.sigmoid_focal_loss(jnp.array([-1.0]), jnp.array([1.0]))
    p = 1 / (1 + np.e)
    np.testing.assert_allclose(got, [0.25 * (1 - p) ** 2 * -np.log(p)], rtol=1e-6)
    np.testing.assert_allclose(got, [0.17547], rtol=1e-4)


def test_sigmoid_focal_matches_torchvision():
    torch = pytest.importorskip("torch")
    z, _, _, binary, unit, w = _data(12, shape=(3, 4, 5))
    try:
        from torchvision.ops import sigmoid_focal_loss as tv_focal
    except Exception:  # torchvision missing: its formula, written with torch.
        def tv_focal(inputs, targets, alpha, gamma, reduction):
            p = torch.sigmoid(inputs)
            ce = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets,
                                                                      reduction="none")
            p_t = p * targets + (1 - p) * (1 - targets)
            loss = ce * ((1 - p_t) ** gamma)
            if alpha >= 0:
                loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
            return loss
    for labels in (binary, unit):
        for gamma, alpha in ((2.0, 0.25), (0.5, -1.0), (0.0, 0.7)):
            want = tv_focal(torch.tensor(z), torch.tensor(labels), alpha=alpha, gamma=gamma,
                            reduction="none").numpy() * w
            got = losses.sigmoid_focal_loss(z, labels, gamma=gamma,
                                            alpha=None if alpha < 0 else alpha, class_weights=w)
            np.testing.assert_allclose(got, want, **F32)


def test_sigmoid_focal_matches_optax():
    z, _, _, binary, unit, _ = _data(13)
    for labels in (binary, unit):
        for gamma in (0.5, 2.0):
            np.testing.assert_allclose(
                losses.sigmoid_focal_loss(z, labels, gamma=gamma, alpha=0.3),
                optax.sigmoid_focal_loss(z, labels, gamma=gamma, alpha=0.3), **F32)


def test_sigmoid_focal_identities():
    z, _, _, binary, unit, w = _data(14)
    for labels in (binary, unit):
        # gamma = 0 and no alpha: the (weighted) binary cross-entropy.
        np.testing.assert_allclose(
            losses.sigmoid_focal_loss(z, labels, gamma=0.0, alpha=None, class_weights=w),
            losses.weighted_sigmoid_cross_entropy(z, labels, class_weights=w), rtol=1e-6)
    # alpha = 1 keeps only positives, alpha = 0 only negatives.
    pos = losses.sigmoid_focal_loss(z, binary, alpha=1.0)
    neg = losses.sigmoid_focal_loss(z, binary, alpha=0.0)
    full = losses.sigmoid_focal_loss(z, binary, alpha=None)
    assert np.all(np.asarray(pos)[binary == 0] == 0)
    assert np.all(np.asarray(neg)[binary == 1] == 0)
    np.testing.assert_allclose(pos + neg, full, rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Reductions
# ------------------------------------------------------------------------------------------


def test_reduce_loss():
    l = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    v = jnp.array([[1.0, 0.5, 2.0], [1.0, 1.0, 0.5]])
    mask = jnp.array([[True, False, True], [True, True, False]])
    np.testing.assert_allclose(losses.reduce_loss(l), 3.5)
    np.testing.assert_allclose(losses.reduce_loss(l, reduction="sum"), 21.0)
    np.testing.assert_allclose(losses.reduce_loss(l, where=mask), 13.0 / 4)
    np.testing.assert_allclose(losses.reduce_loss(l, reduction="sum", where=mask), 13.0)
    np.testing.assert_allclose(losses.reduce_loss(l, reduction="weighted_mean", weights=v),
                               21.0 / 6.0)
    np.testing.assert_allclose(
        losses.reduce_loss(l, reduction="weighted_mean", weights=v, where=mask), 13.0 / 5.0)
    # Broadcast weights and an empty selection.
    np.testing.assert_allclose(
        losses.reduce_loss(l, reduction="weighted_mean", weights=jnp.array([2.0, 1.0, 1.0])),
        21.0 / 8.0)
    assert losses.reduce_loss(l, where=jnp.zeros((2, 3), bool)) == 0
    assert losses.reduce_loss(l, reduction="weighted_mean", weights=jnp.zeros_like(l)) == 0
    assert losses.reduce_loss(l.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="weights"):
        losses.reduce_loss(l, reduction="weighted_mean")
    with pytest.raises(ValueError, match="reduction"):
        losses.reduce_loss(l, reduction="none")
    with pytest.raises(ValueError, match="where"):
        losses.reduce_loss(l, where=jnp.ones(2, bool))


def test_example_weights():
    w = jnp.array([1.0, 2.0, 5.0])
    np.testing.assert_array_equal(losses.example_weights(jnp.array([[0, 2], [1, -100]]), w),
                                  [[1.0, 5.0], [2.0, 0.0]])
    probs = jnp.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    np.testing.assert_allclose(losses.example_weights(probs, w), [1.5, 4.4], rtol=1e-6)
    np.testing.assert_array_equal(
        losses.example_weights(jnp.array([0, 2]), w, where=jnp.array([True, False])), [1.0, 0.0])
    with pytest.raises(ValueError, match="class_weights"):
        losses.example_weights(jnp.array([0]), jnp.array([1.0, -1.0]))


# ------------------------------------------------------------------------------------------
# Masks, shapes, dtypes, transforms (every loss)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_where_masks_values_and_gradients(name):
    z, ids, soft, binary, unit, w = _data(15)
    labels = _labels_for(name, ids, soft, binary)
    mshape = z.shape[:-1] if name in SOFTMAX else z.shape
    mask = np.random.default_rng(0).random(mshape) < 0.5
    full = _call(name, z, labels, class_weights=w)
    got = _call(name, z, labels, class_weights=w, where=mask)
    np.testing.assert_array_equal(np.asarray(got)[~mask], 0)
    np.testing.assert_array_equal(np.asarray(got)[mask], np.asarray(full)[mask])
    g = jax.grad(lambda x: jnp.sum(_call(name, x, labels, class_weights=w, where=mask)))(z)
    dead = ~mask if name not in SOFTMAX else np.broadcast_to(~mask[..., None], z.shape)
    np.testing.assert_array_equal(np.asarray(g)[dead], 0)
    # A mask with fewer dimensions broadcasts (here: mask whole examples of a sigmoid loss).
    row = np.array([True, False, True, True, False])
    row_mask = row if name in SOFTMAX else row[:, None]
    got = _call(name, z, labels, where=row_mask)
    assert np.all(np.asarray(got)[~row] == 0)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_jit_equals_eager_and_vmap_equals_loop(name):
    # Inner shape (5, 4) as elsewhere: eager op-by-op compilations are shared with other tests.
    z, ids, soft, binary, unit, w = _data(16, shape=(3, 5, 4))
    labels = _labels_for(name, ids, soft, binary)
    kw = dict(class_weights=w)
    if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
        kw["gamma"] = 1.5
    fn = functools.partial(getattr(losses, name), **kw)
    eager = fn(z, labels)
    np.testing.assert_allclose(jax.jit(fn)(z, labels), eager, rtol=1e-6, atol=1e-7)
    batched = jax.vmap(fn)(z, labels)
    loop = jnp.stack([fn(z[i], labels[i]) for i in range(z.shape[0])])
    np.testing.assert_allclose(batched, loop, rtol=1e-6, atol=1e-7)
    # Extra batch axes: the same as flattening them.
    flat = fn(z.reshape(15, 4), labels.reshape((15,) + labels.shape[2:]))
    np.testing.assert_allclose(eager.reshape(flat.shape), flat, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["softmax_focal_loss", "sigmoid_focal_loss"])
def test_vmap_over_gamma(name):
    z, ids, soft, binary, *_ = _data(17)
    labels = _labels_for(name, ids, soft, binary)
    gammas = jnp.array([0.0, 0.5, 2.0])
    got = jax.vmap(lambda g: _call(name, z, labels, gamma=g))(gammas)
    for i, g in enumerate([0.0, 0.5, 2.0]):
        np.testing.assert_allclose(got[i], _call(name, z, labels, gamma=g), rtol=1e-6, atol=1e-7)


# Second-order check_grads is the slowest test here (every transform compiles), so it runs
# once per code path: the softmax losses share one implementation (the cross-entropy is the
# focal loss without its factor) with a gather path for class ids without smoothing and a full
# path otherwise; binary-label sigmoid focal derivatives (and Hessians) are compared with
# autodiff of the textbook formula in test_sigmoid_focal_custom_jvp_gradients.
@pytest.mark.parametrize("name,soft,eps", [
    ("softmax_focal_loss", False, 0.0),
    ("softmax_focal_loss", True, 0.1),
    ("weighted_sigmoid_cross_entropy", True, None),
    ("sigmoid_focal_loss", True, None),
])
def test_check_grads_order_two(name, soft, eps):
    with jax.enable_x64(True):
        z, ids, probs, binary, unit, w = _data(18, shape=(3, 4), scale=2.0, dtype=np.float64)
        labels = (probs if soft else ids) if name in SOFTMAX else (unit if soft else binary)
        kw = dict(class_weights=w)
        if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
            kw["gamma"] = 0.7
        if eps is not None:
            kw["label_smoothing"] = eps
        # jit: op-by-op dispatch of second-order transforms is slow on a shared CPU.
        check_grads(jax.jit(lambda x: _call(name, x, labels, **kw)), (z,), order=2,
                    modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_sigmoid_focal_custom_jvp_gradients():
    """The custom_jvp rules against autodiff of the textbook formula (float64, moderate z)."""
    with jax.enable_x64(True):
        z, _, _, binary, unit, w = _data(19, shape=(4, 5), scale=2.0, dtype=np.float64)

        def naive(x, y, g, a=0.25):
            p = jax.nn.sigmoid(x)
            ce = -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))
            return (a * y + (1 - a) * (1 - y)) * ce * (1 - (p * y + (1 - p) * (1 - y))) ** g

        def ours(x, yy, g):
            return losses.sigmoid_focal_loss(x, yy, gamma=g)

        def derivatives(f):
            def total(*a):
                return jnp.sum(f(*a))
            return jax.jit(lambda *a: (jax.grad(total, argnums=(0, 1, 2))(*a),
                                       jax.hessian(total)(*a)))

        d_ours, d_naive = derivatives(ours), derivatives(naive)
        for gamma in (0.3, 1.0, 2.0):  # traced: one compilation for all of them
            for y in (binary, unit):
                got = d_ours(z, y, jnp.float64(gamma))
                want = d_naive(z, y, jnp.float64(gamma))
                for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        # Label and gamma derivatives pass check_grads too (soft labels away from 0/1).
        check_grads(jax.jit(lambda y, g: losses.sigmoid_focal_loss(z, y, gamma=g)),
                    (0.1 + 0.8 * unit, jnp.float64(0.3)), order=1, modes=("fwd", "rev"))


def test_sigmoid_focal_gradient_at_zero_logit():
    # The kink of exp(-|z|) at 0 must not leak into the derivatives.
    with jax.enable_x64(True):
        z = jnp.zeros(3, jnp.float64)
        y = jnp.array([0.0, 1.0, 0.3])
        f = jax.jit(lambda x: jnp.sum(losses.sigmoid_focal_loss(x, y, gamma=1.7, alpha=None)))
        num = jnp.array([(f(z.at[i].add(1e-5)) - f(z.at[i].add(-1e-5))) / 2e-5 for i in range(3)])
        np.testing.assert_allclose(jax.grad(f)(z), num, rtol=1e-6)
        hd = jnp.diag(jax.hessian(f)(z))
        g = jax.jit(jax.grad(f))
        num2 = jnp.array([(g(z.at[i].add(1e-5))[i] - g(z.at[i].add(-1e-5))[i]) / 2e-5
                          for i in range(3)])
        np.testing.assert_allclose(hd, num2, rtol=1e-5)


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_logits_finite(name, dtype):
    focal = name in ("softmax_focal_loss", "sigmoid_focal_loss")
    z = jnp.array([[1e4, -1e4, 0.0, 50.0], [-1e4, 1e4, 1e4, -100.0],
                   [3e3, -3e3, 30.0, -30.0]], dtype)
    if name in SOFTMAX:
        label_sets = [jnp.array([0, 0, 3]), jnp.array([[0.2, 0.0, 0.8, 0.0]] * 3, dtype)]
    else:
        label_sets = [jnp.array([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], dtype),
                      jnp.array([[0.3, 1.0, 0.0, 0.9]] * 3, dtype)]
    cw = jnp.array([1.0, 2.0, 0.5, 1.0], dtype)

    def loss(x, labels, gamma):
        kw = dict(gamma=gamma) if focal else {}
        return _call(name, x, labels, class_weights=cw, **kw)

    def total(x, labels, gamma):
        return jnp.sum(loss(x, labels, gamma).astype(jnp.float32))

    # gamma is traced, so one compilation serves every gamma (0 and < 1 included).
    run = jax.jit(lambda x, labels, gamma: (loss(x, labels, gamma),
                                            jax.grad(total)(x, labels, gamma),
                                            jax.hessian(total)(x, labels, gamma)))
    for labels in label_sets:
        for gamma in (0.0, 0.5, 2.0):
            for out in run(z, labels, jnp.asarray(gamma, dtype)):
                assert np.isfinite(np.asarray(out, np.float32)).all(), (labels, gamma)


def test_extreme_logits_values():
    # Confident right: ~0; confident wrong: alpha_t * |z|.
    z = jnp.array([1e4, -1e4, 1e4, -1e4])
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    for gamma in (0.0, 0.5, 2.0):
        got = losses.sigmoid_focal_loss(z, y, gamma=gamma)
        np.testing.assert_allclose(got, [0.0, 0.0, 0.75e4, 0.25e4], rtol=1e-6)
    ce = losses.weighted_softmax_cross_entropy(jnp.array([[1e4, -1e4, 0.0]]), jnp.array([1]))
    np.testing.assert_allclose(ce, [2e4], rtol=1e-6)
    fl = losses.softmax_focal_loss(jnp.array([[1e4, -1e4, 0.0]]), jnp.array([0]), gamma=0.5)
    np.testing.assert_allclose(fl, [0.0], atol=1e-30)


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


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_dtypes(name, dtype):
    z, ids, soft, binary, unit, w = _data(20)
    labels = _labels_for(name, ids, soft, binary)
    zz = jnp.asarray(z).astype(dtype)
    out = _call(name, zz, labels, class_weights=w)
    assert out.dtype == dtype
    want = _call(name, zz.astype(jnp.float32), labels, class_weights=w)
    tol = 1e-2 if dtype != jnp.float32 else 1e-6  # half-precision output rounding
    np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=tol, atol=tol)
    g = jax.grad(lambda x: jnp.sum(_call(name, x, labels, class_weights=w)))(zz)
    assert g.dtype == dtype


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_float64(name):
    with jax.enable_x64(True):
        z, ids, soft, binary, unit, w = _data(21, dtype=np.float64)
        labels = _labels_for(name, ids, soft, binary)
        out = _call(name, jnp.asarray(z), labels, class_weights=w)
        assert out.dtype == jnp.float64
        refs = {"weighted_softmax_cross_entropy": lambda: ref.softmax_cross_entropy(z, ids, w),
                "softmax_focal_loss": lambda: ref.softmax_focal(z, ids, 2.0, w),
                "weighted_sigmoid_cross_entropy": lambda: ref.sigmoid_cross_entropy(z, binary, w),
                "sigmoid_focal_loss": lambda: ref.sigmoid_focal(z, binary, 2.0, 0.25, w)}
        np.testing.assert_allclose(out, refs[name](), **F64)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_eval_shape_extra_batch_axes(name):
    z = jax.ShapeDtypeStruct((2, 3, 4, 7), jnp.bfloat16)
    if name in SOFTMAX:
        labels = jax.ShapeDtypeStruct((2, 3, 4), jnp.int32)
        want = (2, 3, 4)
    else:
        labels = jax.ShapeDtypeStruct((2, 3, 4, 7), jnp.float32)
        want = (2, 3, 4, 7)
    out = jax.eval_shape(getattr(losses, name), z, labels)
    assert out.shape == want and out.dtype == jnp.bfloat16


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_traces_once(name):
    z, ids, soft, binary, unit, w = _data(22)
    labels = _labels_for(name, ids, soft, binary)
    traces = []

    @jax.jit
    def f(x, y, cw):
        traces.append(1)
        return _call(name, x, y, class_weights=cw)

    f(z, labels, w)
    f(z + 1, labels, w * 2)
    assert len(traces) == 1


def test_sharded_batch_matches_unsharded():
    mesh = jax.make_mesh((8,), ("batch",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    z, _, _, binary, _, w = _data(23, shape=(16, 6))
    zs, ys = jax.device_put(z, sharding), jax.device_put(binary, sharding)
    fn = jax.jit(lambda a, b: losses.sigmoid_focal_loss(a, b, gamma=0.5, class_weights=w))
    np.testing.assert_allclose(fn(zs, ys), losses.sigmoid_focal_loss(z, binary, gamma=0.5,
                                                                     class_weights=w), rtol=1e-6)
    ids = np.arange(16) % 6
    ce = jax.jit(lambda a, b: losses.softmax_focal_loss(a, b, class_weights=w))
    np.testing.assert_allclose(ce(zs, jax.device_put(ids, sharding)),
                               losses.softmax_focal_loss(z, ids, class_weights=w), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Bad inputs: clear errors at trace time, naming the argument.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_bad_inputs(name):
    z, ids, soft, binary, unit, w = _data(24)
    labels = _labels_for(name, ids, soft, binary)
    f = getattr(losses, name)
    with pytest.raises(TypeError, match="logits"):
        f(jnp.ones(z.shape, jnp.int32), labels)
    with pytest.raises(ValueError, match="labels"):
        f(z, labels[:-1])
    with pytest.raises(ValueError, match="class_weights"):
        f(z, labels, class_weights=-w)
    with pytest.raises(ValueError, match="class_weights"):
        f(z, labels, class_weights=w[:-1])
    with pytest.raises(TypeError, match="where"):
        f(z, labels, where=np.ones(z.shape[:-1] if name in SOFTMAX else z.shape, np.float32))
    if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
        with pytest.raises(ValueError, match="gamma"):
            f(z, labels, gamma=-0.5)
    if name in SOFTMAX:
        for eps in (-0.1, 1.5):
            with pytest.raises(ValueError, match="label_smoothing"):
                f(z, labels, label_smoothing=eps)
        with pytest.raises(ValueError, match="labels"):  # one-hot given as integers
            f(z, np.eye(z.shape[-1], dtype=np.int32)[ids])
        with pytest.raises(ValueError, match="labels"):  # class ids given as floats
            f(z, ids.astype(np.float32))
    if name == "sigmoid_focal_loss":
        with pytest.raises(ValueError, match="alpha"):
            f(z, labels, alpha=1.5)
    if name == "weighted_sigmoid_cross_entropy":
        with pytest.raises(ValueError, match="pos_weight"):
            f(z, labels, pos_weight=-1.0)
    # Raised while tracing, before anything runs.
    with pytest.raises(ValueError, match="labels"):
        jax.jit(lambda x: f(x, labels[:-1]))(z)
    with pytest.raises(TypeError, match="logits"):
        jax.jit(lambda x: f(x.astype(jnp.int32), labels))(z)
    negative = jnp.asarray(-w)
    with pytest.raises(ValueError, match="class_weights"):
        jax.jit(lambda x: f(x, labels, class_weights=negative))(z)


# ------------------------------------------------------------------------------------------
# Issue 12: nothing silent. Each case failed on the previous code.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOFTMAX)
def test_out_of_range_class_ids_raise_eagerly(name):
    z, ids, *_ = _data(30)
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


def test_ignore_index_matches_torch():
    torch = pytest.importorskip("torch")
    z, ids, *_, w = _data(31, shape=(8, 5))
    ids = np.where(np.isin(np.arange(8), [1, 4]), -100, ids)
    got = losses.weighted_softmax_cross_entropy(z, ids, class_weights=w, label_smoothing=0.1,
                                                ignore_index=-100)
    want = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(ids),
                                             weight=torch.tensor(w), label_smoothing=0.1,
                                             ignore_index=-100, reduction="none").numpy()
    np.testing.assert_allclose(got, want, **F32)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_bad_label_values_raise(name):
    z, ids, soft, binary, unit, w = _data(32)
    f = getattr(losses, name)
    if name in SOFTMAX:
        neg = soft.copy()
        neg[0] = [1.5, -0.5, 0.0, 0.0]  # sums to 1, negative: the loss went negative before
        bad_sets = [neg, np.where(np.arange(4) == 1, np.nan, soft).astype(np.float32),
                    np.where(np.arange(4) == 1, np.inf, soft).astype(np.float32)]
    else:
        bad_sets = [binary * 2, binary - 0.5, np.where(binary > 0, np.nan, 0).astype(np.float32)]
    for bad in bad_sets:
        with pytest.raises(ValueError, match="labels"):
            f(z, bad)
    # Masked rows may hold anything (e.g. NaN for "unknown").
    keep = np.ones(z.shape[:-1] if name in SOFTMAX else z.shape, bool)
    keep[0] = False
    nan_row = (soft if name in SOFTMAX else binary).copy()
    nan_row[0] = np.nan
    out = f(z, nan_row, where=keep)
    assert np.isfinite(np.asarray(out)).all() and np.all(np.asarray(out)[0] == 0)
    g = jax.grad(lambda x: jnp.sum(f(x, nan_row, where=keep)))(z)
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_non_finite_weights_and_hyper_parameters_raise(name):
    z, ids, soft, binary, unit, w = _data(33)
    labels = _labels_for(name, ids, soft, binary)
    f = getattr(losses, name)
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="class_weights"):  # inf gave NaN losses before
            f(z, labels, class_weights=np.where(np.arange(4) == 0, bad, w))
    if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
        with pytest.raises(ValueError, match="gamma"):
            f(z, labels, gamma=np.inf)
    if name == "weighted_sigmoid_cross_entropy":
        with pytest.raises(ValueError, match="pos_weight"):
            f(z, labels, pos_weight=np.inf)


def test_class_weights_non_finite_counts_raise():
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="counts"):
            losses.class_weights(np.array([3.0, bad, 1.0]))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_masked_nan_logits_give_zero_gradient(name):
    z, ids, soft, binary, unit, w = _data(34)
    labels = _labels_for(name, ids, soft, binary)
    z = z.copy()
    z[1, 1], z[3, 2] = np.nan, -np.inf
    keep = np.ones(z.shape[:-1], bool)
    keep[[1, 3]] = False
    where = keep if name in SOFTMAX else keep[:, None]
    f = getattr(losses, name)
    out = f(z, labels, class_weights=w, where=where)
    assert np.isfinite(np.asarray(out)).all() and np.all(np.asarray(out)[~keep] == 0)
    g = jax.grad(lambda x: jnp.sum(f(x, labels, class_weights=w, where=where)))(z)
    assert np.isfinite(np.asarray(g)).all()  # the NaN leaked into every row's update before
    np.testing.assert_array_equal(np.asarray(g)[~keep], 0)


def test_checked_jit_reports_bad_labels_and_counts():
    from jbalance import checks

    z, ids, soft, binary, *_ = _data(35)
    ce = jax.jit(checks.checked(losses.weighted_softmax_cross_entropy))
    err, _ = ce(z, ids)
    assert err.get() is None
    err, _ = ce(z, jnp.asarray(ids).at[0].set(4))
    assert "labels" in err.get()
    with pytest.raises(Exception, match="labels"):
        err.throw()
    # Ignored ids pass; a plain (unchecked) jit gives NaN for an out-of-range id, never 0.
    ig = jax.jit(checks.checked(functools.partial(losses.weighted_softmax_cross_entropy,
                                                  ignore_index=-100)))
    err, out = ig(z, jnp.asarray(ids).at[0].set(-100))
    assert err.get() is None and out[0] == 0
    plain = jax.jit(losses.weighted_softmax_cross_entropy)(z, jnp.asarray(ids).at[0].set(4))
    assert np.isnan(plain[0]) and np.isfinite(plain[1:]).all()
    cw = jax.jit(checks.checked(lambda n: losses.class_weights(n)))
    assert cw(jnp.array([3, 1]))[0].get() is None
    assert "counts" in cw(jnp.array([3, -1]))[0].get()
    sg = jax.jit(checks.checked(losses.sigmoid_focal_loss))
    assert sg(z, binary)[0].get() is None
    assert "labels" in sg(z, binary + 0.5)[0].get()
    wl = jax.jit(checks.checked(
        lambda x, y, w: losses.weighted_softmax_cross_entropy(x, y, class_weights=w)))
    assert "class_weights" in wl(z, ids, -jnp.ones(4))[0].get()
