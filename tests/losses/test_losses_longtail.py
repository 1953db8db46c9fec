"""Logit adjustment, the balanced softmax and LDAM (jbalance/_src/losses/longtail.py) against
the authors' formulas in float64 NumPy (reference_losses.py), PyTorch ports of the authors'
code, and identities; LDAM with its hyper-parameters both concrete and traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_losses as ref
from losses_data import COUNTS, F32, long_tail_data

from jbalance import losses


def test_adjust_logits():
    z, *_ = long_tail_data(1)
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
    z, ids, probs, *_, w = long_tail_data(2)
    labels = probs if soft else ids
    cw = w if weighted else None
    lp = ref.log_prior(COUNTS)
    got = losses.logit_adjusted_cross_entropy(z, labels, log_prior=lp.astype(np.float32),
                                              tau=tau, class_weights=cw, label_smoothing=eps)
    want = ref.logit_adjusted_ce(z, labels, lp, tau, cw, eps)
    np.testing.assert_allclose(got, want, **F32)


def test_logit_adjusted_ce_matches_torch_and_balanced_softmax_identity():
    torch = pytest.importorskip("torch")
    z, ids, probs, *_, w = long_tail_data(3)
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
    z6, ids6, *_ = long_tail_data(4)
    np.testing.assert_allclose(
        losses.balanced_softmax_cross_entropy(z6, ids6, counts=COUNTS),
        losses.logit_adjusted_cross_entropy(z6, ids6, log_prior=losses.log_prior(COUNTS)), **F32)
    # tau = 0 is the plain weighted cross-entropy.
    np.testing.assert_allclose(
        losses.logit_adjusted_cross_entropy(z6, ids6, log_prior=losses.log_prior(COUNTS),
                                            tau=0.0),
        losses.weighted_softmax_cross_entropy(z6, ids6), **F32)


def test_logit_adjusted_ce_grad_wrt_tau():
    z, ids, *_ = long_tail_data(5)
    lp = losses.log_prior(COUNTS)

    def f(t):
        return jnp.sum(losses.logit_adjusted_cross_entropy(z, ids, log_prior=lp, tau=t))

    g = jax.grad(f)(1.0)
    num = (f(1.0 + 1e-2) - f(1.0 - 1e-2)) / 2e-2
    np.testing.assert_allclose(g, num, rtol=2e-3)


def test_logit_adjusted_extreme_logits_values():
    # Confidently wrong by 2e4: 2e4 plus the adjustment.
    z = jnp.array([[1e4, -1e4, 0.0]])
    lp = jnp.log(jnp.array([0.5, 0.25, 0.25]))
    la = losses.logit_adjusted_cross_entropy(z, jnp.array([1]), log_prior=lp)
    np.testing.assert_allclose(la, [2e4 + float(lp[0] - lp[1])], rtol=1e-6)


def test_ldam_margins():
    m = np.asarray(losses.ldam_margins(np.array([16, 1, 81]), max_margin=0.6))
    np.testing.assert_allclose(m, 0.6 * np.array([16, 1, 81]) ** -0.25, **F32)
    # A zero count gets the largest margin; nothing seen: all max_margin.
    np.testing.assert_allclose(losses.ldam_margins(np.array([16, 0, 1])), [0.25, 0.5, 0.5],
                               **F32)
    np.testing.assert_allclose(losses.ldam_margins(np.zeros(3)), [0.5] * 3, **F32)


@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_reference_and_torch(weighted):
    z, ids, *_, w = long_tail_data(6, scale=0.5)
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


# (max_margin, scale): the authors' defaults, a small scale, scale * margin well beyond the
# exponent range of float32 (100 and 128), and no margin.
@pytest.mark.parametrize("max_margin,scale", [(0.5, 30.0), (0.4, 20.0), (0.5, 200.0),
                                              (2.0, 64.0), (0.0, 1.0)])
@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_matches_reference_traced_and_concrete(max_margin, scale, weighted):
    z, ids, *_, w = long_tail_data(43, scale=0.5)
    counts = COUNTS[:5] + 1
    z, ids, w = z[:, :5], ids % 5, w[:5]
    cw = w if weighted else None
    want = ref.ldam_loss(z, ids, counts, max_margin, scale, cw)
    want_grad = ref.numeric_grad(
        lambda x: ref.ldam_loss(x, ids, counts, max_margin, scale, cw).sum(), z)

    def both(x, m, s):
        def f(a):
            return losses.ldam_loss(a, ids, counts=counts, max_margin=m, scale=s,
                                    class_weights=cw)
        return f(x), jax.grad(lambda a: jnp.sum(f(a)))(x)

    concrete = both(z, max_margin, scale)  # Python floats
    traced = jax.jit(both)(z, jnp.float32(max_margin), jnp.float32(scale))
    for out, grad in (concrete, traced):
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-4)
