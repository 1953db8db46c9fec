"""Loss benchmarks: jbalance vs optax, a naive JAX formula and PyTorch (CPU), same run.

Each case times the forward pass and ``value_and_grad`` (of the summed loss, w.r.t. logits)
on ``[256, 1000]`` float32 logits (``--quick``: ``[64, 100]``). Everything JAX is jitted;
times are medians after warm-up, so compilation is excluded. The acceptance targets for the
stable sigmoid focal loss are: at least 2.5x faster than ``optax.sigmoid_focal_loss`` and
within 1.3x of ``optax.sigmoid_binary_cross_entropy``, which the table's ratio column shows
(ratio = peer time / jbalance time; a BCE ratio >= 0.77 means "within 1.3x").
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness
from benchmarks._harness import Row
from jbalance import losses


def _jax_pair(fn, z, y):
    """Jitted forward and value_and_grad (w.r.t. logits) of ``sum(fn(z, y))``."""
    fwd = jax.jit(fn)
    vg = jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(fn(a, b))))
    return (lambda: fwd(z, y)), (lambda: vg(z, y))


def _naive_sigmoid_focal(z, y, gamma=2.0, alpha=0.25):
    # torchvision's formula written in JAX: the "naive" cost the stable version is compared to.
    p = jax.nn.sigmoid(z)
    ce = jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    return (alpha * y + (1 - alpha) * (1 - y)) * loss


def _naive_softmax_focal(z, y, gamma=2.0):
    log_p = jax.nn.log_softmax(z, axis=-1)
    log_pt = jnp.take_along_axis(log_p, y[:, None], axis=-1)[:, 0]
    return -((1 - jnp.exp(log_pt)) ** gamma) * log_pt


def _torch_pair(torch, fn, z, y):
    zt = torch.tensor(np.asarray(z))
    y = np.asarray(y)
    yt = torch.tensor(y.astype(np.int64) if y.dtype.kind in "iu" else y)

    def fwd():
        with torch.no_grad():
            return fn(zt, yt)

    def vg():
        zz = zt.detach().requires_grad_(True)
        out = fn(zz, yt).sum()
        out.backward()
        return out.item(), zz.grad

    return fwd, vg


def _add(rows, case, impl, fns, *, baseline=False, repeats=30, note=""):
    fwd, vg = fns
    rows.append(Row(f"{case} fwd", impl, _harness.time_fn(fwd, repeats=repeats),
                    baseline=baseline, note=note))
    rows.append(Row(f"{case} value_and_grad", impl, _harness.time_fn(vg, repeats=repeats),
                    baseline=baseline, note=note))


def _skip(rows, case, impl, note):
    rows.append(Row(f"{case} fwd", impl, None, note=note))
    rows.append(Row(f"{case} value_and_grad", impl, None, note=note))


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    n, c = (64, 100) if quick else (256, 1000)
    repeats = 10 if quick else 50
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    z = 3.0 * jax.random.normal(k1, (n, c), jnp.float32)
    y = jax.random.bernoulli(k2, 0.05, (n, c)).astype(jnp.float32)
    optax, why_optax = _harness.try_import("optax")
    torch, why_torch = _harness.try_import("torch")
    tv_ops, why_tv = _harness.try_import("torchvision.ops")
    if torch is not None:
        torch.set_num_threads(1)  # Same footing as XLA's single-stream CPU loops.

    # --- Sigmoid focal loss (gamma=2, alpha=0.25), binary multi-label targets.
    case = f"sigmoid_focal [{n},{c}] f32"
    _add(rows, case, "jbalance.sigmoid_focal_loss",
         _jax_pair(functools.partial(losses.sigmoid_focal_loss, gamma=2.0, alpha=0.25), z, y),
         baseline=True, repeats=repeats)
    if optax is not None:
        _add(rows, case, "optax.sigmoid_focal_loss",
             _jax_pair(functools.partial(optax.sigmoid_focal_loss, gamma=2.0, alpha=0.25), z, y),
             repeats=repeats)
        _add(rows, case, "optax.sigmoid_binary_cross_entropy (plain BCE)",
             _jax_pair(optax.sigmoid_binary_cross_entropy, z, y), repeats=repeats)
    else:
        _skip(rows, case, "optax", why_optax)
    _add(rows, case, "naive JAX focal (torchvision formula, NaN grads gamma<1)",
         _jax_pair(_naive_sigmoid_focal, z, y), repeats=repeats)
    _add(rows, case, "jbalance.weighted_sigmoid_cross_entropy (plain BCE)",
         _jax_pair(losses.weighted_sigmoid_cross_entropy, z, y), repeats=repeats)
    if tv_ops is not None:
        _add(rows, case, "torchvision.ops.sigmoid_focal_loss (CPU, 1 thread)",
             _torch_pair(torch, lambda a, b: tv_ops.sigmoid_focal_loss(
                 a, b, alpha=0.25, gamma=2.0, reduction="none"), z, y), repeats=repeats)
    else:
        _skip(rows, case, "torchvision.ops.sigmoid_focal_loss", why_tv)

    # --- Sigmoid focal loss with gamma < 1 and soft labels (the NaN-gradient regime).
    ys = jax.random.uniform(k3, (n, c), jnp.float32)
    case = f"sigmoid_focal gamma=0.5 soft [{n},{c}] f32"
    _add(rows, case, "jbalance.sigmoid_focal_loss",
         _jax_pair(functools.partial(losses.sigmoid_focal_loss, gamma=0.5), z, ys),
         baseline=True, repeats=repeats)
    if optax is not None:
        _add(rows, case, "optax.sigmoid_focal_loss",
             _jax_pair(functools.partial(optax.sigmoid_focal_loss, gamma=0.5, alpha=0.25), z, ys),
             repeats=repeats)

    # --- Weighted BCE with pos_weight vs PyTorch.
    w = jnp.linspace(0.5, 2.0, c, dtype=jnp.float32)
    case = f"weighted_sigmoid_ce [{n},{c}] f32"
    _add(rows, case, "jbalance.weighted_sigmoid_cross_entropy",
         _jax_pair(functools.partial(losses.weighted_sigmoid_cross_entropy, class_weights=w,
                                     pos_weight=w), z, y), baseline=True, repeats=repeats)
    if torch is not None:
        wt = torch.tensor(np.asarray(w))
        bce = torch.nn.BCEWithLogitsLoss(weight=wt, pos_weight=wt, reduction="none")
        _add(rows, case, "torch BCEWithLogitsLoss (CPU, 1 thread)", _torch_pair(torch, bce, z, y),
             repeats=repeats)
    else:
        _skip(rows, case, "torch", why_torch)

    # --- Softmax losses with integer labels.
    labels = jax.random.randint(k3, (n,), 0, c)
    case = f"weighted_softmax_ce [{n},{c}] f32"
    _add(rows, case, "jbalance.weighted_softmax_cross_entropy",
         _jax_pair(functools.partial(losses.weighted_softmax_cross_entropy, class_weights=w,
                                     label_smoothing=0.1), z, labels),
         baseline=True, repeats=repeats)
    if optax is not None:
        _add(rows, case, "optax.softmax_cross_entropy_with_integer_labels (unweighted)",
             _jax_pair(optax.softmax_cross_entropy_with_integer_labels, z, labels),
             repeats=repeats)
    if torch is not None:
        wt = torch.tensor(np.asarray(w))
        _add(rows, case, "torch F.cross_entropy (CPU, 1 thread)",
             _torch_pair(torch, lambda a, b: torch.nn.functional.cross_entropy(
                 a, b, weight=wt, label_smoothing=0.1, reduction="none"), z, labels),
             repeats=repeats)
    case = f"softmax_focal [{n},{c}] f32"
    _add(rows, case, "jbalance.softmax_focal_loss",
         _jax_pair(functools.partial(losses.softmax_focal_loss, gamma=2.0), z, labels),
         baseline=True, repeats=repeats)
    _add(rows, case, "naive JAX softmax focal (label term only)",
         _jax_pair(_naive_softmax_focal, z, labels), repeats=repeats)
    return rows


if __name__ == "__main__":
    _harness.main(run)
