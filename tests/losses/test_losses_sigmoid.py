"""Elementwise sigmoid losses (jbalance/_src/losses/sigmoid.py): the weighted binary
cross-entropy and the sigmoid focal loss, against float64 references, PyTorch, torchvision,
optax, hand-worked values, and autodiff of the textbook formula for the custom derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_losses as ref
from jax.test_util import check_grads
from losses_data import F32, data

from jbalance import losses


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weight", [None, 3.0, "vector"])
def test_sigmoid_cross_entropy_reference(weighted, pos_weight):
    z, _, _, binary, unit, w = data(8)
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
    z, _, _, _, unit, _ = data(9)
    np.testing.assert_allclose(losses.weighted_sigmoid_cross_entropy(z, unit),
                               optax.sigmoid_binary_cross_entropy(z, unit), **F32)


def test_sigmoid_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    z, _, _, binary, unit, w = data(10, shape=(4, 3, 6))
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
    z, _, _, binary, unit, w = data(11)
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
    z, _, _, binary, unit, w = data(12, shape=(3, 4, 5))
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
    z, _, _, binary, unit, _ = data(13)
    for labels in (binary, unit):
        for gamma in (0.5, 2.0):
            np.testing.assert_allclose(
                losses.sigmoid_focal_loss(z, labels, gamma=gamma, alpha=0.3),
                optax.sigmoid_focal_loss(z, labels, gamma=gamma, alpha=0.3), **F32)


def test_sigmoid_focal_identities():
    z, _, _, binary, unit, w = data(14)
    for labels in (binary, unit):
        # gamma = 0 and no alpha: the (weighted) binary cross-entropy.
        focal = losses.sigmoid_focal_loss(z, labels, gamma=0.0, alpha=None, class_weights=w)
        np.testing.assert_allclose(
            focal, losses.weighted_sigmoid_cross_entropy(z, labels, class_weights=w), rtol=1e-6)
        np.testing.assert_allclose(focal, ref.sigmoid_cross_entropy(z, labels, w), **F32)
    # alpha = 1 keeps only positives, alpha = 0 only negatives.
    pos = losses.sigmoid_focal_loss(z, binary, alpha=1.0)
    neg = losses.sigmoid_focal_loss(z, binary, alpha=0.0)
    full = losses.sigmoid_focal_loss(z, binary, alpha=None)
    assert np.all(np.asarray(pos)[binary == 0] == 0)
    assert np.all(np.asarray(neg)[binary == 1] == 0)
    np.testing.assert_allclose(pos + neg, full, rtol=1e-6)


def test_sigmoid_focal_custom_jvp_gradients():
    """The custom_jvp rules against autodiff of the textbook formula (float64, moderate z)."""
    with jax.enable_x64(True):
        z, _, _, binary, unit, w = data(19, shape=(4, 5), scale=2.0, dtype=np.float64)

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


def test_sigmoid_focal_extreme_logits_values():
    # Confident right: ~0; confident wrong: alpha_t * |z|.
    z = jnp.array([1e4, -1e4, 1e4, -1e4])
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    for gamma in (0.0, 0.5, 2.0):
        got = losses.sigmoid_focal_loss(z, y, gamma=gamma)
        np.testing.assert_allclose(got, [0.0, 0.0, 0.75e4, 0.25e4], rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Easy negatives and easy positives: every logit in [-100, 100], float32 against float64.
# ------------------------------------------------------------------------------------------

# A dense grid, with the logits where the textbook (1 - y) z - log sigmoid(z) failed: its
# gradient was 0 from z <= -17 (true 4e-8), 17% off at -15, 0.9% off at -12.
EXTREME_Z = np.unique(np.concatenate([np.linspace(-100, 100, 2001), [-17.0, -15.0, -12.0]])
                      ).astype(np.float32)
# Near float32's smallest normal number (1.2e-38; exp(z) for z < -87.3) no relative
# precision is possible: XLA:CPU flushes subnormals to 0, also inside a product (exp(-|z|)
# times a weight). Every value and derivative above 1e-36 must be within 1e-6.


def assert_extreme_close(got, want, err_msg=""):
    """Within 1e-6 relative (above 1e-36), plus the rounding of a float32 exponent: a value
    v = exp(x) carries x's own rounding, |log v| * 2^-24 relative, which exceeds 1e-6 for
    |log v| > 17 whatever the implementation (a focal weight p^gamma with gamma log p < -17)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    tol = 1e-6 * np.abs(want) + 2.0 ** -24 * np.abs(np.log(np.abs(want) + 1e-300) * want) + 1e-36
    bad = np.abs(got - want) > tol
    assert not bad.any(), (err_msg, got[bad][:5], want[bad][:5],
                           ((got - want) / want)[bad][:5])


def _three_ways(fn, hyper):
    """(value, gradient) eagerly with Python floats, under jit with them closed over, and
    under jit with them traced."""
    def both(x, *h):
        return fn(x, *h), jax.grad(lambda a: jnp.sum(fn(a, *h)))(x)

    yield "eager, concrete", both(EXTREME_Z, *hyper)
    yield "jit, concrete", jax.jit(lambda x: both(x, *hyper))(EXTREME_Z)
    yield "jit, traced", jax.jit(both)(EXTREME_Z, *(jnp.float32(h) for h in hyper))


@pytest.mark.parametrize("label", [0.0, 1.0])
@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_sigmoid_cross_entropy_exact_for_every_logit(label, pos_weight):
    y = np.full(EXTREME_Z.shape, label, np.float32)
    value, grad = ref.bce_stable(EXTREME_Z, y)
    if pos_weight is not None:
        value, grad = (np.where(y > 0.5, pos_weight, 1.0) * v for v in (value, grad))
        fn = lambda x, pw: losses.weighted_sigmoid_cross_entropy(x, y, pos_weight=pw)  # noqa: E731
        hyper = (pos_weight,)
    else:
        fn = lambda x: losses.weighted_sigmoid_cross_entropy(x, y)  # noqa: E731
        hyper = ()
    for how, (out, g) in _three_ways(fn, hyper):
        assert_extreme_close(out, value, how)
        assert_extreme_close(g, grad, how)
    # optax's value at z = -15, label 0 (issue 19): 3.06e-7, not 0.
    i = int(np.argmin(np.abs(EXTREME_Z + 15)))
    if label == 0.0:
        np.testing.assert_allclose(losses.weighted_sigmoid_cross_entropy(EXTREME_Z, y)[i],
                                   3.059022e-7, rtol=1e-6)


@pytest.mark.parametrize("label", [0.0, 1.0])
@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.25), (0.5, None), (0.0, 0.75)])
def test_sigmoid_focal_exact_for_every_logit(label, gamma, alpha):
    y = np.full(EXTREME_Z.shape, label, np.float32)
    value, grad = ref.sigmoid_focal_stable(EXTREME_Z, y, gamma, alpha)
    if alpha is None:
        fn = lambda x, g: losses.sigmoid_focal_loss(x, y, gamma=g, alpha=None)  # noqa: E731
        hyper = (gamma,)
    else:
        fn = lambda x, g, a: losses.sigmoid_focal_loss(x, y, gamma=g, alpha=a)  # noqa: E731
        hyper = (gamma, alpha)
    for how, (out, g) in _three_ways(fn, hyper):
        assert_extreme_close(out, value, how)
        assert_extreme_close(g, grad, how)


@pytest.mark.parametrize("name", ["weighted_sigmoid_cross_entropy", "sigmoid_focal_loss"])
def test_sigmoid_losses_bfloat16_finite_at_1e4(name):
    z = jnp.array([-1e4, -100.0, -17.0, 0.0, 17.0, 100.0, 1e4], jnp.bfloat16)
    for label in (0.0, 1.0):
        y = jnp.full(z.shape, label, jnp.bfloat16)
        fn = getattr(losses, name)
        out = fn(z, y)
        g = jax.grad(lambda x: jnp.sum(fn(x, y).astype(jnp.float32)))(z)
        assert out.dtype == jnp.bfloat16 and g.dtype == jnp.bfloat16
        assert np.isfinite(np.asarray(out, np.float32)).all()
        assert np.isfinite(np.asarray(g, np.float32)).all()
        want = fn(z.astype(jnp.float32), y.astype(jnp.float32))
        np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=1e-2, atol=1e-30)
