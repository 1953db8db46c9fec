"""Seesaw loss and its running counts (jbalance/_src/losses/seesaw.py) against
mmdetection's formula in float64 NumPy (reference_losses.py), a PyTorch port of mmdet's
`seesaw_ce_loss`, and identities; hyper-parameters both concrete and traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_losses as ref
from losses_data import COUNTS, F32, long_tail_data

from jbalance import losses


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
    z, ids, *_ = long_tail_data(8, shape=(12, 6))
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
    z, ids, *_ = long_tail_data(9)
    # p = q = 0: plain cross-entropy; equal counts and q = 0: too.
    ce = losses.weighted_softmax_cross_entropy(z, ids)
    np.testing.assert_allclose(losses.seesaw_loss(z, ids, counts=COUNTS, p=0.0, q=0.0), ce, **F32)
    np.testing.assert_allclose(losses.seesaw_loss(z, ids, counts=np.full(6, 7), q=0.0), ce,
                               **F32)
    # Seesaw never increases the penalty of rarer negatives when q = 0.
    assert np.all(np.asarray(losses.seesaw_loss(z, ids, counts=COUNTS, q=0.0)) <= ce + 1e-6)


def test_seesaw_extreme_logits_values():
    # Confidently right: 0.
    z = jnp.array([[1e4, -1e4, 0.0]])
    ss = losses.seesaw_loss(z, jnp.array([0]), counts=jnp.array([1, 10, 100]))
    np.testing.assert_allclose(ss, [0.0], atol=1e-6)


# (p, q, eps): mmdet's default; q not a whole number; no compensation; (1/eps)^q = 1e32,
# beyond float32's exp range; eps above 1/sum(e), so no class is compensated.
SEESAW_HYPERS = [(0.8, 2.0, 1e-2), (0.0, 2.5, 0.3), (1.5, 0.0, 1e-2), (0.8, 8.0, 1e-4),
                 (2.0, 3.0, 5.0)]


@pytest.mark.parametrize("p,q,eps", SEESAW_HYPERS)
def test_seesaw_matches_reference_traced_and_concrete(p, q, eps):
    z, ids, *_ = long_tail_data(42, shape=(12, 6))
    counts = COUNTS.astype(np.float32)
    want = ref.seesaw_ce(z, ids, counts, p, q, eps)
    want_grad = ref.seesaw_grad(z, ids, counts, p, q, eps)

    def both(x, *h):
        def f(a):
            return losses.seesaw_loss(a, ids, counts=counts, p=h[0], q=h[1], eps=h[2])
        return f(x), jax.grad(lambda a: jnp.sum(f(a)))(x)

    concrete = both(z, p, q, eps)  # Python floats
    traced = jax.jit(both)(z, *(jnp.float32(v) for v in (p, q, eps)))
    for out, grad in (concrete, traced):
        np.testing.assert_allclose(out, want, **F32)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)


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
