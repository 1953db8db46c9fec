"""Segmentation losses of the Dice family and pixel class weights
(jbalance/_src/losses/segmentation.py), against float64 transcriptions of MONAI's code
(tests/losses/reference_segmentation.py; MONAI is Apache-2.0), MONAI itself where it is
installed, optax's `dice_loss` where the semantics overlap, and hand-worked values. Also: the
per-pixel softmax losses on ``[N, H, W, C]`` logits with ``ignore_index=255``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_segmentation as ref

from jbalance import losses
from jbalance._src import checks

# float32 sums over a few hundred pixels against float64.
TOL = dict(rtol=2e-5, atol=2e-6)
N, H, W, C = 3, 6, 5, 4


def _data(seed, *, ignore=False, absent=False):
    r = np.random.default_rng(seed)
    z = (2 * r.standard_normal((N, H, W, C))).astype(np.float32)
    y = r.integers(0, C, (N, H, W)).astype(np.int32)
    if absent:  # class 3 absent from image 0; image 1 is class 0 only.
        y[0][y[0] == 3] = 2
        y[1] = 0
    if ignore:
        y[r.random((N, H, W)) < 0.2] = 255
        y[2] = 255  # an all-ignored image
    keep = y != 255
    return z, y, keep


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("reduce_batch", [False, True])
def test_dice_matches_monai_transcription(activation, include_background, squared,
                                          reduce_batch):
    z, y, keep = _data(0, ignore=True, absent=True)
    w = np.array([0.5, 1.0, 2.0, 3.0], np.float32)
    got = losses.dice_loss(z, y, activation=activation, include_background=include_background,
                           squared=squared, reduce_batch=reduce_batch, class_weights=w,
                           ignore_index=255)
    want = ref.monai_dice(z, y, activation=activation, include_background=include_background,
                          squared=squared, batch=reduce_batch,
                          weight=w if include_background else w[1:], keep=keep)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)


def test_dice_soft_labels_and_smoothing_traced():
    z, y, _ = _data(1)
    r = np.random.default_rng(1)
    soft = ref.softmax(r.standard_normal((N, H, W, C))).astype(np.float32)
    f = jax.jit(lambda z, s, nr, dr: losses.dice_loss(z, s, smooth_nr=nr, smooth_dr=dr))
    got = f(z, soft, 1e-3, 2e-3)
    np.testing.assert_allclose(got, ref.monai_dice(z, soft, smooth_nr=1e-3, smooth_dr=2e-3),
                               **TOL)
    # One-hot floats equal integer labels.
    onehot = np.eye(C, dtype=np.float32)[y]
    np.testing.assert_allclose(losses.dice_loss(z, onehot), losses.dice_loss(z, y), **TOL)


def test_dice_hand_value():
    # Pixel probabilities s = softmax([2, 0]) = (0.8808, 0.1192). Labels 0, 1, 1.
    s = 1 / (1 + np.exp(-2.0))
    p0 = np.array([s, 1 - s, s])
    g0 = np.array([1.0, 0, 0])
    d0 = 1 - (2 * (p0 * g0).sum() + 1e-5) / (p0.sum() + g0.sum() + 1e-5)
    d1 = 1 - (2 * ((1 - p0) * (1 - g0)).sum() + 1e-5) / ((1 - p0).sum() + 2 + 1e-5)
    got = losses.dice_loss(jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]]),
                           jnp.array([[0, 1, 1]]))
    np.testing.assert_allclose(got, [[d0, d1]], rtol=1e-6)


@pytest.mark.parametrize("weight_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("reduce_batch", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_generalized_dice_matches_monai_transcription(weight_type, reduce_batch,
                                                      include_background):
    z, y, keep = _data(2, ignore=True, absent=True)
    got = losses.generalized_dice_loss(z, y, weight_type=weight_type, reduce_batch=reduce_batch,
                                       include_background=include_background, ignore_index=255)
    want = ref.monai_generalized_dice(z, y, w_type=weight_type, batch=reduce_batch,
                                      include_background=include_background, keep=keep)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 0.7), (0.9, 0.1)])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("reduce_batch", [False, True])
def test_tversky_matches_monai_transcription(alpha, beta, activation, reduce_batch):
    z, y, keep = _data(3, ignore=True, absent=True)
    got = losses.tversky_loss(z, y, alpha=alpha, beta=beta, activation=activation,
                              reduce_batch=reduce_batch, ignore_index=255)
    want = ref.monai_tversky(z, y, alpha=alpha, beta=beta, activation=activation,
                             batch=reduce_batch, keep=keep)
    np.testing.assert_allclose(got, want, **TOL)
    if alpha == beta == 0.5:
        np.testing.assert_allclose(got, losses.dice_loss(z, y, activation=activation,
                                                         reduce_batch=reduce_batch,
                                                         ignore_index=255), **TOL)


@pytest.mark.parametrize("gamma", [0.75, 1.0, 2.0])
def test_focal_tversky_each_class_to_gamma(gamma):
    z, y, keep = _data(4, ignore=True, absent=True)
    got = losses.focal_tversky_loss(z, y, gamma=gamma, ignore_index=255)
    want = ref.focal_tversky(z, y, gamma=gamma, alpha=0.7, beta=0.3, keep=keep)
    np.testing.assert_allclose(got, want, **TOL)
    # Not the mean's power (segmentation_models_pytorch #734).
    if gamma != 1.0:
        assert not np.allclose(np.mean(got[:2], -1), np.mean(ref.monai_tversky(
            z, y, alpha=0.7, beta=0.3, keep=keep)[:2], -1) ** gamma)
    # Traced gamma/alpha/beta under jit.
    f = jax.jit(lambda z, g, a, b: losses.focal_tversky_loss(z, y, gamma=g, alpha=a, beta=b,
                                                             ignore_index=255))
    np.testing.assert_allclose(f(z, gamma, 0.7, 0.3), want, **TOL)


def test_matches_monai_itself():
    torch = pytest.importorskip("torch")
    monai = pytest.importorskip("monai.losses")
    z, y, _ = _data(5, absent=True)
    x = torch.tensor(np.moveaxis(z, -1, 1).astype(np.float64))
    t = torch.tensor(y.astype(np.int64))[:, None]
    for inc in (True, False):
        m = monai.DiceLoss(to_onehot_y=True, softmax=True, include_background=inc,
                           squared_pred=True, reduction="none")(x, t)
        np.testing.assert_allclose(losses.dice_loss(z, y, include_background=inc, squared=True),
                                   m.numpy().reshape(N, -1), **TOL)
    m = monai.DiceLoss(to_onehot_y=True, softmax=True, batch=True, reduction="none")(x, t)
    np.testing.assert_allclose(losses.dice_loss(z, y, reduce_batch=True),
                               m.numpy().reshape(-1), **TOL)
    m = monai.DiceLoss(to_onehot_y=True, sigmoid=True, reduction="none")(x, t)
    np.testing.assert_allclose(losses.dice_loss(z, y, activation="sigmoid"),
                               m.numpy().reshape(N, -1), **TOL)
    m = monai.GeneralizedDiceLoss(to_onehot_y=True, softmax=True, reduction="none")(x, t)
    np.testing.assert_allclose(losses.generalized_dice_loss(z, y), m.numpy().reshape(-1), **TOL)
    m = monai.TverskyLoss(to_onehot_y=True, softmax=True, alpha=0.3, beta=0.7,
                          reduction="none")(x, t)
    np.testing.assert_allclose(losses.tversky_loss(z, y, alpha=0.3, beta=0.7),
                               m.numpy().reshape(N, -1), **TOL)


def test_tversky_matches_optax_dice_loss():
    optax = pytest.importorskip("optax")
    z, y, _ = _data(6)
    onehot = jax.nn.one_hot(y, C)
    # optax: smooth in numerator and denominator, tp + alpha FP + beta FN, per class.
    want = optax.losses.dice_loss(z, onehot, smooth=1.0, alpha=0.3, beta=0.7, reduction="none")
    got = losses.tversky_loss(z, y, alpha=0.3, beta=0.7, smooth_nr=1.0, smooth_dr=1.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # optax's Dice, (I + s) / ((P + T) / 2 + s), is ours with smooth_nr = smooth_dr = 2 s.
    want = optax.losses.dice_loss(z, onehot, smooth=1.0, reduction="none")
    np.testing.assert_allclose(losses.dice_loss(z, y, smooth_nr=2.0, smooth_dr=2.0), want,
                               rtol=1e-5, atol=1e-6)


_FNS = {
    "dice": lambda z, y, **k: losses.dice_loss(z, y, **k),
    "dice_squared": lambda z, y, **k: losses.dice_loss(z, y, squared=True, **k),
    "generalized_dice": lambda z, y, **k: losses.generalized_dice_loss(z, y, **k),
    "tversky": lambda z, y, **k: losses.tversky_loss(z, y, alpha=0.3, beta=0.7, **k),
    "focal_tversky": lambda z, y, **k: losses.focal_tversky_loss(z, y, **k),
}


@pytest.mark.parametrize("name", list(_FNS))
def test_absent_empty_ignored_finite_gradients(name):
    z, y, _ = _data(7, ignore=True, absent=True)
    z[2, 0, 0, 0] = np.nan  # in the all-ignored image: no effect
    fn = _FNS[name]
    out = fn(z, y, ignore_index=255)
    assert np.isfinite(np.asarray(out)).all()
    g = jax.grad(lambda z: jnp.sum(fn(z, y, ignore_index=255)))(z)
    assert np.isfinite(np.asarray(g)).all()
    np.testing.assert_array_equal(g[2], 0.0)  # all-ignored image: no gradient
    # Its value: 1 - smooth_nr / smooth_dr = 0.
    np.testing.assert_allclose(out[2], 0.0, atol=1e-6)
    # where= masks like ignore_index.
    yy = np.where(y == 255, 0, y).astype(np.int32)
    np.testing.assert_allclose(fn(z, yy, where=y != 255), out, **TOL)
    # Extreme logits.
    big = np.where(np.isnan(z), 0, z) * 60
    g = jax.grad(lambda z: jnp.sum(fn(z, y, ignore_index=255)))(big)
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("name", list(_FNS))
def test_dtypes_bf16_float64(name):
    z, y, _ = _data(8)
    fn = _FNS[name]
    out = fn(jnp.asarray(z, jnp.bfloat16), y)
    assert out.dtype == jnp.bfloat16 and np.isfinite(np.asarray(out, np.float32)).all()
    np.testing.assert_allclose(np.asarray(out, np.float32), fn(z, y), rtol=2e-2, atol=2e-2)
    with jax.enable_x64(True):
        out64 = fn(jnp.asarray(z, jnp.float64), y)
        assert out64.dtype == jnp.float64


def test_errors_name_the_argument():
    z, y, _ = _data(9)
    with pytest.raises(ValueError, match="labels"):
        losses.dice_loss(z, np.where(y == 0, 7, y).astype(np.int32))
    with pytest.raises(ValueError, match="labels"):  # 255 without ignore_index=255
        losses.dice_loss(z, np.where(y == 0, 255, y).astype(np.int32))
    with pytest.raises(ValueError, match="labels"):
        losses.dice_loss(z, np.eye(C + 1, dtype=np.float32)[y])  # one-hot with C + 1 channels
    with pytest.raises(ValueError, match="class_weights"):
        losses.dice_loss(z, y, class_weights=np.array([1.0, np.inf, 1.0, 1.0], np.float32))
    with pytest.raises(ValueError, match="class_weights"):
        losses.tversky_loss(z, y, class_weights=np.array([1.0, -1.0, 1.0, 1.0], np.float32))
    with pytest.raises(ValueError, match="activation"):
        losses.dice_loss(z, y, activation="relu")
    with pytest.raises(ValueError, match="weight_type"):
        losses.generalized_dice_loss(z, y, weight_type="cube")
    with pytest.raises(ValueError, match="alpha"):
        losses.tversky_loss(z, y, alpha=-0.1)
    with pytest.raises(ValueError, match="gamma"):
        losses.focal_tversky_loss(z, y, gamma=0.0)
    with pytest.raises(TypeError, match="logits"):
        losses.dice_loss(y, y)
    # Under checked(jit) the same message; an unchecked jit gives NaN for the image.
    bad = np.where(y == 0, 7, y).astype(np.int32)
    err, _ = jax.jit(checks.checked(losses.dice_loss))(z, bad)
    with pytest.raises(Exception, match="labels"):
        err.throw()
    out = jax.jit(losses.dice_loss)(z, bad)
    assert np.isnan(np.asarray(out)).all()


def test_vmap_and_jit_match():
    z, y, _ = _data(10, ignore=True)
    for fn in _FNS.values():
        want = fn(z, y, ignore_index=255)
        np.testing.assert_allclose(jax.jit(lambda z, y: fn(z, y, ignore_index=255))(z, y),
                                   want, **TOL)
        # One image at a time ([1, H, W, C]) equals the batch rows.
        one = jax.vmap(lambda z, y: fn(z[None], y[None], ignore_index=255)[0])(z, y)
        np.testing.assert_allclose(one, want, **TOL)


# ----------------------------------------------------------------------------------------
# Pixel class weights.
# ----------------------------------------------------------------------------------------


def test_pixel_class_weights_hand_values():
    counts = np.array([[90, 10, 0], [80, 0, 20]])
    # f = (170/200, 10/100, 20/100); median 0.2.
    np.testing.assert_allclose(losses.pixel_class_weights(counts),
                               [0.2 / 0.85, 2.0, 1.0], rtol=1e-6)
    p = np.array([170, 10, 20]) / 200
    np.testing.assert_allclose(losses.pixel_class_weights(counts, method="enet"),
                               1 / np.log(1.02 + p), rtol=1e-6)


@pytest.mark.parametrize("method", ["median_frequency", "enet"])
def test_pixel_class_weights_reference_and_zero_counts(method):
    r = np.random.default_rng(11)
    counts = r.integers(0, 50, (7, 6)) * (r.random((7, 6)) < 0.6)
    counts[:, 4] = 0  # a class never seen
    got = losses.pixel_class_weights(counts, method=method, c=1.1)
    np.testing.assert_allclose(got, ref.pixel_class_weights(counts, method, 1.1), rtol=1e-5)
    assert np.isfinite(np.asarray(got)).all()
    if method == "median_frequency":
        assert got[4] == 0
    else:
        np.testing.assert_allclose(got[4], 1 / np.log(1.1), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda m: losses.pixel_class_weights(
        m, method=method, c=1.1))(counts), got, rtol=1e-6)
    zeros = losses.pixel_class_weights(np.zeros((2, 3)), method=method)
    assert np.isfinite(np.asarray(zeros)).all()


def test_pixel_class_weights_errors():
    with pytest.raises(ValueError, match="pixel_counts"):
        losses.pixel_class_weights(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="pixel_counts"):
        losses.pixel_class_weights(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="pixel_counts"):
        losses.pixel_class_weights(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="`c`"):
        losses.pixel_class_weights(np.array([[1.0, 2.0]]), method="enet", c=1.0)
    with pytest.raises(ValueError, match="method"):
        losses.pixel_class_weights(np.array([[1.0, 2.0]]), method="inverse")


# ----------------------------------------------------------------------------------------
# The per-pixel softmax losses on [N, H, W, C] with ignore_index=255.
# ----------------------------------------------------------------------------------------


def _pixel_ce(z, y, weights=None, gamma=0.0, shift=None):
    z = np.asarray(z, np.float64)
    if shift is not None:
        z = z + shift
    logp = np.log(ref.softmax(z))
    keep = y != 255
    ids = np.where(keep, y, 0)
    lp = np.take_along_axis(logp, ids[..., None], -1)[..., 0]
    w = 1.0 if weights is None else np.asarray(weights, np.float64)[ids]
    loss = -w * (1 - np.exp(lp)) ** gamma * lp
    return np.where(keep, loss, 0.0)


def test_per_pixel_softmax_losses_with_ignore_index():
    z, y, _ = _data(12, ignore=True)
    w = np.array([0.5, 1.0, 2.0, 3.0], np.float32)
    counts = np.array([100.0, 20.0, 5.0, 1.0], np.float32)
    lp = np.log(counts / counts.sum()).astype(np.float32)
    cases = [
        (losses.weighted_softmax_cross_entropy(z, y, class_weights=w, ignore_index=255),
         _pixel_ce(z, y, w)),
        (losses.softmax_focal_loss(z, y, gamma=2.0, ignore_index=255),
         _pixel_ce(z, y, gamma=2.0)),
        (losses.logit_adjusted_cross_entropy(z, y, log_prior=lp, ignore_index=255),
         _pixel_ce(z, y, shift=lp.astype(np.float64))),
        (losses.balanced_softmax_cross_entropy(z, y, counts=counts, ignore_index=255),
         _pixel_ce(z, y, shift=np.log(counts.astype(np.float64)))),
    ]
    for got, want in cases:
        assert got.shape == (N, H, W)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    g = jax.grad(lambda z: jnp.sum(losses.weighted_softmax_cross_entropy(
        z, y, class_weights=w, ignore_index=255)))(z)
    np.testing.assert_array_equal(np.asarray(g)[y == 255], 0.0)
