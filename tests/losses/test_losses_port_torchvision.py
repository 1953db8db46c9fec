"""torchvision's own ``TestFocalLoss`` cases, run against `losses.sigmoid_focal_loss`.

Ported from torchvision 0.2x, ``test/test_ops.py::TestFocalLoss`` (BSD-3-Clause, Copyright
the PyTorch/torchvision contributors): its diverse input/target generator (logits of
probabilities that are small, big or random, against targets that are all 0, all 1 or random
binary), ``test_correct_ratio`` (focal / CE equals ``alpha_t (1 - p_t)^gamma``, and focal <= CE)
and ``test_equal_ce_loss`` (gamma=0 without alpha equals CE, values and gradients) are
written here as our own cases. The CE reference is PyTorch's own
``binary_cross_entropy_with_logits``. torchvision's ``alpha=-1`` (no alpha) is our
``alpha=None``. No torchvision code is copied.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jbalance import losses

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _diverse_pair(seed, shape=(5, 2)):
    rng = np.random.default_rng(seed)
    ranges = {"small": (0.0, 0.2), "big": (0.8, 1.0), "random": (0.0, 1.0)}
    targets = {"zeros": lambda: np.zeros(shape), "ones": lambda: np.ones(shape),
               "random_binary": lambda: rng.integers(0, 2, shape).astype(np.float64)}
    xs, ys = [], []
    for r in ("small", "big", "random"):
        for t in ("zeros", "ones", "random_binary"):
            lo, hi = ranges[r]
            # Keep p strictly inside (0, 1) so that the logit is finite, as make_tensor does.
            p = rng.uniform(max(lo, 1e-4), min(hi, 1 - 1e-4), shape)
            xs.append(np.log(p / (1 - p)))
            ys.append(targets[t]())
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def _torch_ce(x, y):
    # PyTorch's float32 BCE loses the easy negatives (the cancellation jbalance avoids), so
    # the reference runs in float64.
    return F.binary_cross_entropy_with_logits(
        torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64)),
        reduction="none").numpy()


@pytest.mark.parametrize("alpha", [None, 0.0, 0.58, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_correct_ratio(alpha, gamma, seed):
    x, y = _diverse_pair(seed)
    fl = np.asarray(losses.sigmoid_focal_loss(x, y, gamma=gamma, alpha=alpha), np.float64)
    ce = _torch_ce(x, y).astype(np.float64)
    assert np.all(fl <= ce + 1e-6), "focal loss must not exceed the cross-entropy"
    p = 1 / (1 + np.exp(-x.astype(np.float64)))
    p_t = p * y + (1 - p) * (1 - y)
    ratio = (1 - p_t) ** gamma
    if alpha is not None:
        ratio = ratio * (alpha * y + (1 - alpha) * (1 - y))
    np.testing.assert_allclose(fl / ce, ratio, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", [2, 3])
def test_equal_ce_loss_values_and_gradients(reduction, seed):
    x, y = _diverse_pair(seed)
    red = jnp.mean if reduction == "mean" else jnp.sum

    def ours(z):
        return red(losses.sigmoid_focal_loss(z, y, gamma=0.0, alpha=None))

    xt = torch.from_numpy(x).requires_grad_()
    ce = F.binary_cross_entropy_with_logits(xt, torch.from_numpy(y), reduction=reduction)
    ce.backward()
    value, grad = jax.value_and_grad(ours)(jnp.asarray(x))
    np.testing.assert_allclose(value, ce.item(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha", [None, 0.0, 0.58, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_jit_equals_eager(alpha, gamma):
    # torchvision's test_jit scripts the op; ours compares jax.jit with the eager call, and
    # both with the float64 formula above (through test_correct_ratio's reference).
    x, y = _diverse_pair(4)
    eager = losses.sigmoid_focal_loss(x, y, gamma=gamma, alpha=alpha)
    jitted = jax.jit(lambda a, b: losses.sigmoid_focal_loss(a, b, gamma=gamma, alpha=alpha))(x, y)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
