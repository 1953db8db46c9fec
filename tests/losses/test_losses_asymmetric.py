"""The asymmetric loss (jbalance/_src/losses/asymmetric.py) against timm's formula in
float64 NumPy (reference_losses.py), timm and PyTorch itself, identities, and every
evaluation path (bool, integer, float 0/1 and soft labels; hyper-parameters concrete and
traced) against the reference, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_losses as ref
from losses_data import F32, long_tail_data

from jbalance import losses


@pytest.mark.parametrize("gp,gn,clip,eps", [(0.0, 4.0, 0.05, 1e-8), (1.0, 2.5, 0.0, 1e-8),
                                            (0.5, 0.0, 0.2, 1e-3), (0.0, 0.0, 0.0, 1e-8)])
@pytest.mark.parametrize("soft", [False, True])
def test_asymmetric_reference(gp, gn, clip, eps, soft):
    z, _, _, binary, unit, _ = long_tail_data(10, scale=2.5)
    y = unit if soft else binary
    got = losses.asymmetric_loss(z, y, gamma_pos=gp, gamma_neg=gn, clip=clip, eps=eps)
    np.testing.assert_allclose(got, ref.asymmetric_timm(z, y, gn, gp, clip, eps), **F32)


def test_asymmetric_matches_timm_and_torch_gradients():
    torch = pytest.importorskip("torch")
    z, _, _, binary, unit, _ = long_tail_data(11, scale=2.5)

    def timm_forward(x, y, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8):
        # timm AsymmetricLossMultiLabel.forward (disable_torch_grad_focal_loss=False),
        # per element: the negated terms, before timm's final -sum.
        xs_pos = torch.sigmoid(x)
        xs_neg = 1 - xs_pos
        if clip is not None and clip > 0:
            xs_neg = (xs_neg + clip).clamp(max=1)
        loss = y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))
        if gamma_neg > 0 or gamma_pos > 0:
            pt = xs_pos * y + xs_neg * (1 - y)
            loss = loss * torch.pow(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
        return -loss

    for y in (binary, unit):
        zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        want = timm_forward(zt, torch.tensor(y, dtype=torch.float64))
        got = losses.asymmetric_loss(z, y, gamma_pos=1.0, gamma_neg=4.0)
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)
        want.sum().backward()
        g = jax.grad(lambda x: jnp.sum(losses.asymmetric_loss(x, y, gamma_pos=1.0)))(z)
        np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-4, atol=1e-6)
    try:
        from timm.loss import AsymmetricLossMultiLabel
    except Exception:  # timm is optional (benchmark env only)
        return
    import inspect

    if "reduction" in inspect.signature(AsymmetricLossMultiLabel).parameters:
        # timm >= 1.0.2x: per element, as the contract says.
        crit = AsymmetricLossMultiLabel(gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8,
                                        reduction="none")
        want = crit(torch.tensor(z), torch.tensor(binary)).numpy()
        got = np.asarray(losses.asymmetric_loss(z, binary, gamma_pos=1.0))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    else:  # older timm returns the original -sum
        crit = AsymmetricLossMultiLabel(gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8)
        want = crit(torch.tensor(z), torch.tensor(binary)).item()
        got = float(jnp.sum(losses.asymmetric_loss(z, binary, gamma_pos=1.0)))
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_asymmetric_identities():
    z, _, _, binary, unit, _ = long_tail_data(12)
    # No focusing, no clipping, eps = 0: the plain BCE.
    for y in (binary, unit):
        np.testing.assert_allclose(
            losses.asymmetric_loss(z, y, gamma_neg=0.0, clip=0.0, eps=0.0),
            losses.weighted_sigmoid_cross_entropy(z, y), rtol=1e-5, atol=1e-6)
    # Very easy negatives (p < clip) give exactly 0.
    out = losses.asymmetric_loss(jnp.array([-8.0, -1.0]), jnp.array([0.0, 0.0]))
    assert out[0] == 0 and out[1] > 0


def test_asymmetric_extreme_logits_values():
    asl = losses.asymmetric_loss(jnp.array([1e4, -1e4, 1e4]), jnp.array([1.0, 1.0, 0.0]))
    # Positive confidently wrong: -log(eps) = 18.42; negative confidently wrong: its
    # probability is shifted to clip, -log(clip) with focusing weight (1 - clip)^4.
    np.testing.assert_allclose(asl, [0.0, -np.log(1e-8), -np.log(0.05) * 0.95 ** 4], rtol=1e-5)


@pytest.mark.slow
def test_asymmetric_paths_agree_and_label_gradients():
    z, _, _, binary, unit, _ = long_tail_data(18)

    def total(x, y, g=1.0):
        return jnp.sum(losses.asymmetric_loss(x, y, gamma_pos=g))

    # Float 0/1 labels (binary path chosen at run time) == bool labels (static binary path)
    # == the general soft-label path (forced by a traced hyper-parameter).
    g_float = jax.jit(jax.grad(total))(z, binary)
    g_bool = jax.grad(total)(z, binary.astype(bool))
    g_gen = jax.jit(jax.grad(total))(z, binary, jnp.float32(1.0))
    np.testing.assert_allclose(g_float, g_bool, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_float, g_gen, rtol=1e-4, atol=1e-6)
    # Forward mode works too.
    out, tan = jax.jvp(lambda x: losses.asymmetric_loss(x, binary), (z,), (jnp.ones_like(z),))
    np.testing.assert_allclose(out, losses.asymmetric_loss(z, binary), rtol=1e-6)
    # Derivatives w.r.t. soft labels against central differences (float64).
    with jax.enable_x64(True):
        z64 = jnp.asarray(z, jnp.float64)
        y64 = jnp.asarray(0.1 + 0.8 * unit, jnp.float64)
        gy = jax.grad(total, argnums=1)(z64, y64)
        d = np.random.default_rng(1).standard_normal(z.shape)
        num = (total(z64, y64 + 1e-6 * d) - total(z64, y64 - 1e-6 * d)) / 2e-6
        np.testing.assert_allclose(jnp.sum(gy * d), num, rtol=1e-5)


# The hyper-parameter sets cover the default, no clipping, a large eps, and eps = 0 (where
# log max(p, eps) is log p itself); label kinds cover bool and integer targets, float 0/1
# targets and soft ones.
ASL_HYPERS = [(0.0, 4.0, 0.05, 1e-8), (1.0, 2.0, 0.0, 1e-8), (0.5, 1.5, 0.2, 1e-3),
              (0.0, 0.0, 0.0, 0.0), (2.0, 4.0, 0.05, 0.0)]


@pytest.mark.parametrize("gp,gn,clip,eps", ASL_HYPERS)
@pytest.mark.parametrize("kind", ["bool", "int", "float01", "soft"])
def test_asymmetric_every_path_matches_reference_traced_and_concrete(gp, gn, clip, eps, kind):
    z, _, _, binary, unit, _ = long_tail_data(41, scale=2.5)
    y = {"bool": binary.astype(bool), "int": binary.astype(np.int32), "float01": binary,
         "soft": unit}[kind]
    want = ref.asymmetric_timm(z, y, gn, gp, clip, eps)
    want_grad = ref.elementwise_grad(lambda x: ref.asymmetric_timm(x, y, gn, gp, clip, eps), z)

    def both(x, *h):
        def f(a):
            return losses.asymmetric_loss(a, y, gamma_pos=h[0], gamma_neg=h[1], clip=h[2],
                                          eps=h[3])
        return f(x), jax.grad(lambda a: jnp.sum(f(a)))(x)

    concrete = both(z, gp, gn, clip, eps)  # Python floats
    traced = jax.jit(both)(z, *(jnp.float32(v) for v in (gp, gn, clip, eps)))
    for out, grad in (concrete, traced):
        np.testing.assert_allclose(out, want, **F32)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Easy negatives and easy positives: every logit in [-100, 100], float32 against float64.
# ------------------------------------------------------------------------------------------

EXTREME_Z = np.unique(np.concatenate([np.linspace(-100, 100, 2001), [-17.0, -15.0, -12.0]])
                      ).astype(np.float32)
# Near float32's smallest normal number no relative precision is possible (XLA:CPU flushes
# subnormals to 0); every value and derivative above 1e-36 must be within 1e-6.


def assert_extreme_close(got, want, err_msg=""):
    """Within 1e-6 relative (above 1e-36), plus the rounding of a float32 exponent: a value
    v = exp(x) carries x's own rounding, |log v| * 2^-24 relative, which exceeds 1e-6 for
    |log v| > 17 whatever the implementation (a focal weight p^gamma with gamma log p < -17)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    tol = 1e-6 * np.abs(want) + 2.0 ** -24 * np.abs(np.log(np.abs(want) + 1e-300) * want) + 1e-36
    bad = np.abs(got - want) > tol
    assert not bad.any(), (err_msg, got[bad][:5], want[bad][:5],
                           ((got - want) / want)[bad][:5])


@pytest.mark.parametrize("gp,gn,clip,eps", [(0.0, 4.0, 0.05, 1e-8), (1.0, 2.0, 0.0, 1e-8),
                                            (0.0, 0.0, 0.0, 0.0), (2.0, 1.0, 0.2, 0.0)])
@pytest.mark.parametrize("label", [0.0, 1.0])
@pytest.mark.parametrize("kind", ["float01", "bool", "soft"])
def test_asymmetric_exact_for_every_logit(gp, gn, clip, eps, label, kind):
    y = np.full(EXTREME_Z.shape, label, np.float32)
    # The reference gets the float32 values of the hyper-parameters the loss computes with.
    gp, gn, clip, eps = (float(np.float32(v)) for v in (gp, gn, clip, eps))
    value, grad = ref.asymmetric_stable(EXTREME_Z, y, gn, gp, clip, eps)
    keep = np.ones(EXTREME_Z.shape, bool)
    # Near the clip, max(p - clip, 0) cancels: float32's p has 1e-7 relative error, so the
    # negatives' loss is ill-conditioned within ~1 of logit(clip) (in timm's formula
    # itself, not only here); there the check is to 1e-4 below.
    near_clip = np.zeros(EXTREME_Z.shape, bool)
    if clip > 0 and label == 0.0:
        near_clip = np.abs(EXTREME_Z - np.log(clip / (1 - clip))) < 1.0
    if kind == "bool":
        labels = y.astype(bool)
    elif kind == "soft":
        # One soft target sends the whole array through the soft-label evaluation.
        labels = y.copy()
        labels[0] = 0.5
        keep[0] = False
    else:
        labels = y

    def both(x, *h):
        def f(a):
            return losses.asymmetric_loss(a, labels, gamma_pos=h[0], gamma_neg=h[1],
                                          clip=h[2], eps=h[3])
        return f(x), jax.grad(lambda a: jnp.sum(f(a)))(x)

    hyper = (gp, gn, clip, eps)
    runs = {"eager, concrete": both(EXTREME_Z, *hyper),
            "jit, concrete": jax.jit(lambda x: both(x, *hyper))(EXTREME_Z),
            "jit, traced": jax.jit(both)(EXTREME_Z, *(jnp.float32(h) for h in hyper))}
    far, near = keep & ~near_clip, keep & near_clip
    for how, (out, g) in runs.items():
        out, g = np.asarray(out), np.asarray(g)
        assert_extreme_close(out[far], value[far], how)
        assert_extreme_close(g[far], grad[far], how)
        np.testing.assert_allclose(out[near], value[near], rtol=1e-4, err_msg=how)
        np.testing.assert_allclose(g[near], grad[near], rtol=1e-4, err_msg=how)


def test_asymmetric_bfloat16_finite_at_1e4():
    z = jnp.array([-1e4, -100.0, -17.0, 0.0, 17.0, 100.0, 1e4], jnp.bfloat16)
    for labels in (jnp.zeros(7, jnp.bfloat16), jnp.ones(7, jnp.bfloat16),
                   jnp.full(7, 0.3, jnp.bfloat16)):
        out = losses.asymmetric_loss(z, labels)
        g = jax.grad(lambda x: jnp.sum(losses.asymmetric_loss(x, labels).astype(jnp.float32)))(z)
        assert out.dtype == jnp.bfloat16
        assert np.isfinite(np.asarray(out, np.float32)).all()
        assert np.isfinite(np.asarray(g, np.float32)).all()
