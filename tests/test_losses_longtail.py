"""Tests for the long-tail losses of jbalance.losses (issue 10): logit adjustment, balanced
softmax, LDAM-DRW, seesaw and the asymmetric loss, against the authors' formulas rewritten in
NumPy (tests/reference_losses.py), PyTorch ports of the authors' code, and identities."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_losses as ref

from jbalance import checks, losses

F32 = dict(rtol=2e-5, atol=2e-6)
SOFTMAX_NEW = ("logit_adjusted_cross_entropy", "balanced_softmax_cross_entropy", "ldam_loss",
               "seesaw_loss")
ALL_NEW = SOFTMAX_NEW + ("asymmetric_loss",)
COUNTS = np.array([500, 120, 40, 9, 1, 0], np.int32)


def _data(seed=0, shape=(5, 6), scale=3.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    z = (scale * rng.standard_normal(shape)).astype(dtype)
    ids = rng.integers(0, shape[-1], shape[:-1]).astype(np.int32)
    soft = rng.dirichlet(np.ones(shape[-1]), shape[:-1]).astype(dtype)
    binary = (rng.random(shape) < 0.4).astype(dtype)
    unit = rng.random(shape).astype(dtype)
    w = rng.uniform(0.2, 3.0, shape[-1]).astype(dtype)
    return z, ids, soft, binary, unit, w


def _kw(name, counts=COUNTS):
    """The counts-like keyword each new loss needs."""
    if name == "logit_adjusted_cross_entropy":
        return dict(log_prior=losses.log_prior(counts))
    if name == "asymmetric_loss":
        return {}
    return dict(counts=counts)


def _labels(name, ids, binary):
    return binary if name == "asymmetric_loss" else ids


# ------------------------------------------------------------------------------------------
# log_prior, adjust_logits, logit-adjusted CE, balanced softmax
# ------------------------------------------------------------------------------------------


def test_log_prior_reference_and_zero_rule():
    np.testing.assert_allclose(losses.log_prior(COUNTS), ref.log_prior(COUNTS), **F32)
    lp = np.asarray(losses.log_prior(jnp.array([3.0, 1.0])))
    np.testing.assert_allclose(lp, np.log([0.75, 0.25]), **F32)
    # A zero count: half the smallest positive count (finite, rarer than every seen class).
    lp = np.asarray(losses.log_prior(np.array([4, 0, 2])))
    np.testing.assert_allclose(lp, np.log([4 / 6, 1 / 6, 2 / 6]), **F32)
    np.testing.assert_allclose(losses.log_prior(np.zeros(4)), np.full(4, -np.log(4)), **F32)
    # Scale invariant: frequencies give the same prior as counts.
    np.testing.assert_allclose(losses.log_prior(COUNTS / COUNTS.sum()), losses.log_prior(COUNTS),
                               **F32)
    assert losses.log_prior(COUNTS).dtype == jnp.float32


def test_adjust_logits():
    z, *_ = _data(1)
    lp = losses.log_prior(COUNTS)
    np.testing.assert_array_equal(losses.adjust_logits(z, lp, tau=0.0), z)  # identity
    np.testing.assert_allclose(losses.adjust_logits(z, lp, tau=1.5),
                               z - 1.5 * np.asarray(ref.log_prior(COUNTS))[None], **F32)
    out = losses.adjust_logits(jnp.asarray(z, jnp.bfloat16), lp)
    assert out.dtype == jnp.bfloat16
    # tau traceable: vmap over tau equals a loop.
    taus = jnp.array([0.0, 0.5, 2.0])
    got = jax.jit(jax.vmap(lambda t: losses.adjust_logits(z, lp, tau=t)))(taus)
    for i, t in enumerate([0.0, 0.5, 2.0]):
        np.testing.assert_allclose(got[i], losses.adjust_logits(z, lp, tau=t), **F32)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("weighted,eps,tau", [(False, 0.0, 1.0), (True, 0.1, 0.7)])
def test_logit_adjusted_ce_reference(soft, weighted, eps, tau):
    z, ids, probs, *_, w = _data(2)
    labels = probs if soft else ids
    cw = w if weighted else None
    lp = ref.log_prior(COUNTS)
    got = losses.logit_adjusted_cross_entropy(z, labels, log_prior=lp.astype(np.float32),
                                              tau=tau, class_weights=cw, label_smoothing=eps)
    want = ref.logit_adjusted_ce(z, labels, lp, tau, cw, eps)
    np.testing.assert_allclose(got, want, **F32)


def test_logit_adjusted_ce_matches_torch_and_balanced_softmax_identity():
    torch = pytest.importorskip("torch")
    z, ids, probs, *_, w = _data(3)
    counts = COUNTS[:5].astype(np.float32)  # all positive: torch's log n is finite
    z, probs, w = z[:, :5], probs[:, :5] / probs[:, :5].sum(-1, keepdims=True), w[:5]
    ids = ids % 5
    zt = torch.tensor(z)
    for labels, lt in ((ids, torch.tensor(ids, dtype=torch.long)), (probs, torch.tensor(probs))):
        # Ren et al.: CE on z + log n.
        want = torch.nn.functional.cross_entropy(zt + torch.tensor(counts).log(), lt,
                                                 weight=torch.tensor(w), reduction="none")
        got = losses.balanced_softmax_cross_entropy(z, labels, counts=counts, class_weights=w)
        np.testing.assert_allclose(got, want.numpy(), **F32)
        # == logit adjustment with tau = 1 (log n and log pi differ by the constant log N).
        la = losses.logit_adjusted_cross_entropy(z, labels, log_prior=losses.log_prior(counts),
                                                 class_weights=w)
        np.testing.assert_allclose(got, la, **F32)
    # With zero counts too (both follow log_prior's rule).
    z6, ids6, *_ = _data(4)
    np.testing.assert_allclose(
        losses.balanced_softmax_cross_entropy(z6, ids6, counts=COUNTS),
        losses.logit_adjusted_cross_entropy(z6, ids6, log_prior=losses.log_prior(COUNTS)), **F32)
    # tau = 0 is the plain weighted cross-entropy.
    np.testing.assert_allclose(
        losses.logit_adjusted_cross_entropy(z6, ids6, log_prior=losses.log_prior(COUNTS),
                                            tau=0.0),
        losses.weighted_softmax_cross_entropy(z6, ids6), **F32)


def test_logit_adjusted_ce_grad_wrt_tau():
    z, ids, *_ = _data(5)
    lp = losses.log_prior(COUNTS)

    def f(t):
        return jnp.sum(losses.logit_adjusted_cross_entropy(z, ids, log_prior=lp, tau=t))

    g = jax.grad(f)(1.0)
    num = (f(1.0 + 1e-2) - f(1.0 - 1e-2)) / 2e-2
    np.testing.assert_allclose(g, num, rtol=2e-3)


# ------------------------------------------------------------------------------------------
# LDAM and DRW
# ------------------------------------------------------------------------------------------


def test_ldam_margins():
    m = np.asarray(losses.ldam_margins(np.array([16, 1, 81]), max_margin=0.6))
    np.testing.assert_allclose(m, 0.6 * np.array([16, 1, 81]) ** -0.25, **F32)
    # A zero count gets the largest margin; nothing seen: all max_margin.
    np.testing.assert_allclose(losses.ldam_margins(np.array([16, 0, 1])), [0.25, 0.5, 0.5],
                               **F32)
    np.testing.assert_allclose(losses.ldam_margins(np.zeros(3)), [0.5] * 3, **F32)


@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_reference_and_torch(weighted):
    z, ids, *_, w = _data(6, scale=0.5)
    counts = COUNTS[:5] + 1
    z, ids, w = z[:, :5], ids % 5, w[:5]
    cw = w if weighted else None
    got = losses.ldam_loss(z, ids, counts=counts, max_margin=0.4, scale=20.0, class_weights=cw)
    np.testing.assert_allclose(got, ref.ldam_loss(z, ids, counts, 0.4, 20.0, cw), rtol=1e-5,
                               atol=1e-5)
    torch = pytest.importorskip("torch")

    class LDAMLoss(torch.nn.Module):  # kaidic/LDAM-DRW losses.py, on CPU, reduction="none"
        def __init__(self, cls_num_list, max_m=0.5, weight=None, s=30):
            super().__init__()
            m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
            m_list = m_list * (max_m / np.max(m_list))
            self.m_list = torch.FloatTensor(m_list)
            self.s, self.weight = s, weight

        def forward(self, x, target):
            index = torch.zeros_like(x, dtype=torch.uint8)
            index.scatter_(1, target.data.view(-1, 1), 1)
            batch_m = torch.matmul(self.m_list[None, :], index.float().transpose(0, 1))
            x_m = x - batch_m.view((-1, 1))
            output = torch.where(index.bool(), x_m, x)
            return torch.nn.functional.cross_entropy(self.s * output, target,
                                                     weight=self.weight, reduction="none")

    crit = LDAMLoss(counts, max_m=0.4, s=20.0, weight=None if cw is None else torch.tensor(cw))
    zt = torch.tensor(z, requires_grad=True)
    want = crit(zt, torch.tensor(ids, dtype=torch.long))
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-5)
    want.sum().backward()
    g = jax.grad(lambda x: jnp.sum(losses.ldam_loss(x, ids, counts=counts, max_margin=0.4,
                                                    scale=20.0, class_weights=cw)))(z)
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_deferred_reweighting():
    drw = losses.deferred_reweighting(COUNTS, start_step=10, beta=0.999)
    np.testing.assert_array_equal(drw(0), np.ones(6))
    np.testing.assert_array_equal(drw(9), np.ones(6))
    want = losses.class_weights(COUNTS, method="effective_number", beta=0.999)
    np.testing.assert_allclose(drw(10), want, **F32)
    np.testing.assert_allclose(drw(10_000), want, **F32)
    # Reference: Cui et al.'s effective number, samples-normalised (class_weights' default).
    np.testing.assert_allclose(drw(10)[:5], ref.effective_number_weights(COUNTS, 0.999)[:5],
                               rtol=1e-5)
    # Traceable step (jit, vmap), like an optax schedule.
    steps = jnp.array([0, 9, 10, 11])
    got = jax.jit(jax.vmap(drw))(steps)
    np.testing.assert_allclose(got, np.stack([drw(int(s)) for s in steps]), **F32)
    # LDAM-DRW: weights multiply the per-example loss.
    z, ids, *_ = _data(7)
    a = losses.ldam_loss(z, ids, counts=COUNTS, class_weights=drw(20))
    b = losses.ldam_loss(z, ids, counts=COUNTS) * np.asarray(drw(20))[ids]
    np.testing.assert_allclose(a, b, **F32)
    with pytest.raises(ValueError, match="start_step"):
        losses.deferred_reweighting(COUNTS, start_step=-1)
    with pytest.raises(ValueError, match="beta"):
        losses.deferred_reweighting(COUNTS, start_step=1, beta=1.0)


# ------------------------------------------------------------------------------------------
# Seesaw and update_counts
# ------------------------------------------------------------------------------------------


def _torch_seesaw(torch, cls_score, labels, cum_samples, p, q, eps):
    # mmdetection mmdet/models/losses/seesaw_loss.py seesaw_ce_loss, reduction="none".
    F = torch.nn.functional
    num_classes = cls_score.size(-1)
    onehot_labels = F.one_hot(labels, num_classes)
    seesaw_weights = cls_score.new_ones(onehot_labels.size())
    if p > 0:
        sample_ratio_matrix = cum_samples[None, :].clamp(min=1) / cum_samples[:, None].clamp(min=1)
        index = (sample_ratio_matrix < 1.0).float()
        sample_weights = sample_ratio_matrix.pow(p) * index + (1 - index)
        seesaw_weights = seesaw_weights * sample_weights[labels.long(), :]
    if q > 0:
        scores = F.softmax(cls_score.detach(), dim=1)
        self_scores = scores[torch.arange(0, len(scores)).long(), labels.long()]
        score_matrix = scores / self_scores[:, None].clamp(min=eps)
        index = (score_matrix > 1.0).float()
        seesaw_weights = seesaw_weights * (score_matrix.pow(q) * index + (1 - index))
    cls_score = cls_score + (seesaw_weights.log() * (1 - onehot_labels))
    return F.cross_entropy(cls_score, labels, weight=None, reduction="none")


@pytest.mark.parametrize("p,q,eps", [(0.8, 2.0, 1e-2), (0.0, 2.0, 0.3), (1.5, 0.0, 1e-2)])
def test_seesaw_reference_and_torch(p, q, eps):
    z, ids, *_ = _data(8, shape=(12, 6))
    counts = COUNTS.astype(np.float32)
    got = losses.seesaw_loss(z, ids, counts=counts, p=p, q=q, eps=eps)
    np.testing.assert_allclose(got, ref.seesaw_ce(z, ids, counts, p, q, eps), **F32)
    torch = pytest.importorskip("torch")
    zt = torch.tensor(z, requires_grad=True)
    want = _torch_seesaw(torch, zt, torch.tensor(ids, dtype=torch.long), torch.tensor(counts),
                         p, q, eps)
    np.testing.assert_allclose(got, want.detach().numpy(), **F32)
    want.sum().backward()  # the factors are constants (detached scores): same gradients
    g = jax.grad(lambda x: jnp.sum(losses.seesaw_loss(x, ids, counts=counts, p=p, q=q,
                                                      eps=eps)))(z)
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_seesaw_identities():
    z, ids, *_ = _data(9)
    # p = q = 0: plain cross-entropy; equal counts and q = 0: too.
    ce = losses.weighted_softmax_cross_entropy(z, ids)
    np.testing.assert_allclose(losses.seesaw_loss(z, ids, counts=COUNTS, p=0.0, q=0.0), ce, **F32)
    np.testing.assert_allclose(losses.seesaw_loss(z, ids, counts=np.full(6, 7), q=0.0), ce,
                               **F32)
    # Seesaw never increases the penalty of rarer negatives when q = 0.
    assert np.all(np.asarray(losses.seesaw_loss(z, ids, counts=COUNTS, q=0.0)) <= ce + 1e-6)


def test_update_counts():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, (4, 7))
    got = losses.update_counts(COUNTS, ids)
    np.testing.assert_array_equal(got, COUNTS + np.bincount(ids.ravel(), minlength=6))
    assert got.dtype == COUNTS.dtype
    keep = rng.random((4, 7)) < 0.5
    np.testing.assert_array_equal(losses.update_counts(COUNTS, ids, where=keep),
                                  COUNTS + np.bincount(ids[keep], minlength=6))
    probs = rng.dirichlet(np.ones(6), 5).astype(np.float32)
    np.testing.assert_allclose(losses.update_counts(COUNTS.astype(np.float32), probs),
                               COUNTS + probs.sum(0), **F32)
    # Jittable: the train-state update.
    step = jax.jit(losses.update_counts)
    np.testing.assert_array_equal(step(jnp.asarray(COUNTS), jnp.asarray(ids)), got)
    with pytest.raises(ValueError, match="labels"):
        losses.update_counts(COUNTS, np.array([0, 6]))
    with pytest.raises(TypeError, match="counts"):
        losses.update_counts(COUNTS, probs)  # fractional counts need floating counts
    with pytest.raises(ValueError, match="counts"):
        losses.update_counts(-COUNTS, ids)


# ------------------------------------------------------------------------------------------
# Asymmetric loss
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gp,gn,clip,eps", [(0.0, 4.0, 0.05, 1e-8), (1.0, 2.5, 0.0, 1e-8),
                                            (0.5, 0.0, 0.2, 1e-3), (0.0, 0.0, 0.0, 1e-8)])
@pytest.mark.parametrize("soft", [False, True])
def test_asymmetric_reference(gp, gn, clip, eps, soft):
    z, _, _, binary, unit, _ = _data(10, scale=2.5)
    y = unit if soft else binary
    got = losses.asymmetric_loss(z, y, gamma_pos=gp, gamma_neg=gn, clip=clip, eps=eps)
    np.testing.assert_allclose(got, ref.asymmetric_timm(z, y, gn, gp, clip, eps), **F32)


def test_asymmetric_matches_timm_and_torch_gradients():
    torch = pytest.importorskip("torch")
    z, _, _, binary, unit, _ = _data(11, scale=2.5)

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
    z, _, _, binary, unit, _ = _data(12)
    # No focusing, no clipping, eps = 0: the plain BCE.
    for y in (binary, unit):
        np.testing.assert_allclose(
            losses.asymmetric_loss(z, y, gamma_neg=0.0, clip=0.0, eps=0.0),
            losses.weighted_sigmoid_cross_entropy(z, y), rtol=1e-5, atol=1e-6)
    # Very easy negatives (p < clip) give exactly 0.
    out = losses.asymmetric_loss(jnp.array([-8.0, -1.0]), jnp.array([0.0, 0.0]))
    assert out[0] == 0 and out[1] > 0


# ------------------------------------------------------------------------------------------
# Every new loss: jit, vmap, grad, dtypes, extreme logits, masks, bad inputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NEW)
def test_jit_vmap_grad(name):
    z, ids, _, binary, *_ = _data(13, shape=(3, 5, 6))
    labels = _labels(name, ids, binary)
    fn = functools.partial(getattr(losses, name), **_kw(name))
    eager = fn(z, labels)
    np.testing.assert_allclose(jax.jit(fn)(z, labels), eager, rtol=1e-6, atol=1e-6)
    batched = jax.vmap(fn)(z, labels)
    loop = jnp.stack([fn(z[i], labels[i]) for i in range(3)])
    np.testing.assert_allclose(batched, loop, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(fn(z, labels), eager)  # deterministic
    # Gradients against central differences (float64). Seesaw's factors use the stopped-
    # gradient softmax (so its gradient is not that of its value; checked against torch).
    if name == "seesaw_loss":
        return
    with jax.enable_x64(True):
        z64 = jnp.asarray(z[0], jnp.float64)
        lab = labels[0]
        f = jax.jit(lambda x: jnp.sum(getattr(losses, name)(x, lab, **_kw(name))))
        g = jax.grad(f)(z64)
        d = np.random.default_rng(0).standard_normal(z64.shape)
        h = 1e-6
        num = (f(z64 + h * d) - f(z64 - h * d)) / (2 * h)
        np.testing.assert_allclose(jnp.sum(g * d), num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ALL_NEW)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_logits_finite(name, dtype):
    z = jnp.array([[1e4, -1e4, 0.0, 50.0, -3e3, 3e3], [-1e4, 1e4, 1e4, -100.0, 0.0, 1.0],
                   [3e3, -3e3, 30.0, -30.0, 1e4, -1e4]], dtype)
    ids = jnp.array([0, 0, 5], jnp.int32)
    binary = jnp.array([[1, 0, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1]], dtype)
    labels = _labels(name, ids, binary)
    kw = _kw(name)
    out = getattr(losses, name)(z, labels, **kw)
    assert out.dtype == dtype
    g = jax.grad(lambda x: jnp.sum(getattr(losses, name)(x, labels, **kw).astype(jnp.float32)))(z)
    assert np.isfinite(np.asarray(out, np.float32)).all()
    assert np.isfinite(np.asarray(g, np.float32)).all()
    # bf16 values follow float32 to bf16 rounding.
    if dtype == jnp.bfloat16:
        want = getattr(losses, name)(z.astype(jnp.float32), labels, **kw)
        np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=1e-2, atol=1e-2)


def test_extreme_logits_values():
    # Confidently right: 0; confidently wrong by 2e4: 2e4 (plus the adjustment).
    z = jnp.array([[1e4, -1e4, 0.0]])
    lp = jnp.log(jnp.array([0.5, 0.25, 0.25]))
    la = losses.logit_adjusted_cross_entropy(z, jnp.array([1]), log_prior=lp)
    np.testing.assert_allclose(la, [2e4 + float(lp[0] - lp[1])], rtol=1e-6)
    ss = losses.seesaw_loss(z, jnp.array([0]), counts=jnp.array([1, 10, 100]))
    np.testing.assert_allclose(ss, [0.0], atol=1e-6)
    asl = losses.asymmetric_loss(jnp.array([1e4, -1e4, 1e4]), jnp.array([1.0, 1.0, 0.0]))
    # Positive confidently wrong: -log(eps) = 18.42; negative confidently wrong: its
    # probability is shifted to clip, -log(clip) with focusing weight (1 - clip)^4.
    np.testing.assert_allclose(asl, [0.0, -np.log(1e-8), -np.log(0.05) * 0.95 ** 4], rtol=1e-5)


@pytest.mark.parametrize("name", ALL_NEW)
def test_masked_nan_logits_give_zero_loss_and_gradient(name):
    z, ids, _, binary, *_ = _data(14)
    z = z.copy()
    z[1, 2], z[3, 0] = np.nan, np.inf
    labels = _labels(name, ids, binary)
    keep = np.ones(z.shape[:-1] if name != "asymmetric_loss" else z.shape, bool)
    if name == "asymmetric_loss":
        keep[1, 2] = keep[3, 0] = False
    else:
        keep[[1, 3]] = False
    fn = getattr(losses, name)
    out = fn(z, labels, where=keep, **_kw(name))
    np.testing.assert_array_equal(np.asarray(out)[~keep], 0)
    assert np.isfinite(np.asarray(out)).all()
    g = jax.grad(lambda x: jnp.sum(fn(x, labels, where=keep, **_kw(name))))(z)
    assert np.isfinite(np.asarray(g)).all()
    if name == "asymmetric_loss":
        np.testing.assert_array_equal(np.asarray(g)[~keep], 0)
    else:
        np.testing.assert_array_equal(np.asarray(g)[[1, 3]], 0)


@pytest.mark.parametrize("name", SOFTMAX_NEW)
def test_ignore_index_and_out_of_range(name):
    z, ids, *_ = _data(15)
    ids = ids.copy()
    ids[2] = -100
    fn = getattr(losses, name)
    with pytest.raises(ValueError, match="labels"):
        fn(z, ids, **_kw(name))
    out = fn(z, ids, ignore_index=-100, **_kw(name))
    assert out[2] == 0
    keep = ids != -100
    np.testing.assert_allclose(out, fn(z, np.where(keep, ids, 0), where=keep, **_kw(name)),
                               **F32)
    g = jax.grad(lambda x: jnp.sum(fn(x, ids, ignore_index=-100, **_kw(name))))(z)
    np.testing.assert_array_equal(np.asarray(g)[2], 0)


@pytest.mark.parametrize("name", ALL_NEW)
def test_bad_inputs(name):
    z, ids, _, binary, *_ = _data(16)
    labels = _labels(name, ids, binary)
    fn = getattr(losses, name)
    kw = _kw(name)
    with pytest.raises(TypeError, match="logits"):
        fn(z.astype(np.int32), labels, **kw)
    with pytest.raises(ValueError, match="labels"):
        fn(z, labels[:-1], **kw)
    if name == "asymmetric_loss":
        with pytest.raises(ValueError, match="labels"):
            fn(z, 2 * binary - 1)
        for key in ("gamma_pos", "gamma_neg", "clip", "eps"):
            with pytest.raises(ValueError, match=key):
                fn(z, labels, **{key: -1.0})
            with pytest.raises(ValueError, match=key):
                fn(z, labels, **{key: np.inf})
        return
    if name == "logit_adjusted_cross_entropy":
        lp = np.asarray(kw["log_prior"])
        with pytest.raises(ValueError, match="log_prior"):
            fn(z, labels, log_prior=lp[:-1])
        with pytest.raises(ValueError, match="log_prior"):
            fn(z, labels, log_prior=np.where(COUNTS > 0, 0.0, -np.inf))  # log 0
        with pytest.raises(ValueError, match="tau"):
            fn(z, labels, log_prior=lp, tau=np.nan)
    else:
        for bad in (-COUNTS, COUNTS[:-1], np.where(COUNTS > 100, np.inf, COUNTS)):
            with pytest.raises(ValueError, match="counts"):
                fn(z, labels, counts=bad)
    if name in ("ldam_loss", "seesaw_loss"):
        with pytest.raises(TypeError, match="labels"):
            fn(z, np.eye(6, dtype=np.float32)[ids], **kw)
    if name == "ldam_loss":
        with pytest.raises(ValueError, match="scale"):
            fn(z, labels, scale=0.0, **kw)
        with pytest.raises(ValueError, match="max_margin"):
            fn(z, labels, max_margin=-0.1, **kw)
    if name == "seesaw_loss":
        for key in ("p", "q"):
            with pytest.raises(ValueError, match=f"`{key}`"):
                fn(z, labels, **{key: -1.0}, **kw)
        with pytest.raises(ValueError, match="eps"):
            fn(z, labels, eps=0.0, **kw)
    with pytest.raises(ValueError, match="counts"):
        losses.log_prior(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="counts"):
        losses.log_prior(np.ones((2, 2)))


def test_checked_under_jit_reports_bad_labels_and_counts():
    z, ids, *_ = _data(17)
    f = jax.jit(checks.checked(
        lambda x, y, n: losses.balanced_softmax_cross_entropy(x, y, counts=n)))
    err, _ = f(z, ids, COUNTS)
    assert err.get() is None
    err, _ = f(z, np.where(np.arange(5) == 0, 6, ids), COUNTS)
    assert err.get() is not None and "labels" in err.get()
    err, _ = f(z, ids, -COUNTS)
    assert err.get() is not None and "counts" in err.get()
    g = jax.jit(checks.checked(lambda x, y: losses.asymmetric_loss(x, y)))
    _, _, _, binary, *_ = _data(17)
    assert g(z, binary)[0].get() is None
    assert "labels" in g(z, binary + 1)[0].get()


def test_asymmetric_paths_agree_and_label_gradients():
    z, _, _, binary, unit, _ = _data(18)

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


def test_deferred_reweighting_mixes_int_and_float_steps():
    # Under the suite's strict promotion an int step against a float start must work.
    counts = jnp.array([100.0, 10.0, 1.0])
    for start, step in ((5.0, jnp.int32(7)), (5, jnp.float32(7.0)), (jnp.int32(5), 7)):
        drw = losses.deferred_reweighting(counts, start_step=start)
        np.testing.assert_allclose(np.asarray(drw(step)), np.asarray(
            losses.class_weights(counts, method="effective_number", beta=0.9999)))
        np.testing.assert_array_equal(np.asarray(drw(jnp.int32(2))), np.ones(3))
