"""Loss benchmarks: jbalance vs optax, a naive JAX formula and PyTorch (CPU), same run.

Each case times the forward pass and ``value_and_grad`` (of the summed loss, w.r.t. logits)
on ``[256, 1000]`` float32 logits (``--quick``: ``[64, 100]``). Everything JAX is jitted;
times are medians after warm-up, so compilation is excluded. The acceptance targets for the
stable sigmoid focal loss are: at least 2.5x faster than ``optax.sigmoid_focal_loss`` and
within 1.3x of ``optax.sigmoid_binary_cross_entropy``, which the table's ratio column shows
(ratio = peer time / jbalance time; a BCE ratio >= 0.77 means "within 1.3x").

The last table (``targets ...``) holds the issue 10/14 targets, ``value_and_grad`` only, with
the implementations interleaved call by call (robust to a loaded machine) and the load
average recorded: jbalance's cross-entropy against optax's integer-label one (<= 1.1x
unweighted, <= 1.25x weighted), the softmax focal loss (<= 1.5x) and every long-tail loss
(<= 1.3x) against the weighted cross-entropy, the asymmetric loss against the weighted
sigmoid cross-entropy.
"""

import functools
import os
import statistics
import time

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
    rows += _ratio_rows(n, c, z, y, labels, w, optax, quick)
    return rows


def _interleaved(fns: dict, rounds: int) -> dict:
    """Per implementation, (median, min) seconds over ``rounds`` rounds that each call every
    implementation once: on a loaded machine the ratios of interleaved calls are far more
    stable than those of back-to-back blocks."""
    for fn in fns.values():
        for _ in range(3):
            _harness.block(fn())
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            _harness.block(fn())
            times[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def _ratio_rows(n, c, z, y, labels, w, optax, quick):
    """Issue 10/14 targets, value_and_grad, interleaved in one run (ratio column = time over
    the case's baseline; the note gives the ratio of the minima, less sensitive to load)."""
    counts = jnp.round(jnp.geomspace(5000.0, 5.0, c)).astype(jnp.int32)
    lp = losses.log_prior(counts)
    vg = {}

    def add(name, fn, lab):
        vg[name] = _jax_pair(fn, z, lab)[1]

    if optax is not None:
        add("optax.softmax_cross_entropy_with_integer_labels",
            optax.softmax_cross_entropy_with_integer_labels, labels)
    add("weighted_softmax_cross_entropy (unweighted)", losses.weighted_softmax_cross_entropy,
        labels)
    add("weighted_softmax_cross_entropy (class_weights)",
        functools.partial(losses.weighted_softmax_cross_entropy, class_weights=w), labels)
    add("softmax_focal_loss (gamma=2)",
        functools.partial(losses.softmax_focal_loss, gamma=2.0), labels)
    add("logit_adjusted_cross_entropy",
        functools.partial(losses.logit_adjusted_cross_entropy, log_prior=lp), labels)
    add("balanced_softmax_cross_entropy",
        functools.partial(losses.balanced_softmax_cross_entropy, counts=counts), labels)
    add("ldam_loss", functools.partial(losses.ldam_loss, counts=counts), labels)
    add("ldam_loss + DRW weights", functools.partial(
        losses.ldam_loss, counts=counts,
        class_weights=losses.deferred_reweighting(counts, start_step=0)(1)), labels)
    add("seesaw_loss", functools.partial(losses.seesaw_loss, counts=counts), labels)
    add("weighted_sigmoid_cross_entropy", losses.weighted_sigmoid_cross_entropy, y)
    add("asymmetric_loss (float 0/1 labels)", losses.asymmetric_loss, y)
    add("asymmetric_loss (bool labels)", losses.asymmetric_loss, y.astype(bool))
    add("asymmetric_loss (soft labels)", losses.asymmetric_loss, 0.5 * y + 0.25)
    # Issue 19's target: soft labels within 1.3x of the sigmoid CE; here with the gammas
    # traced too (one formula: only the power's evaluation may use Python numbers).
    asl_traced = jax.jit(jax.value_and_grad(lambda a, b, gp, gn: jnp.sum(
        losses.asymmetric_loss(a, b, gamma_pos=gp, gamma_neg=gn))))
    soft, gammas = 0.5 * y + 0.25, (jnp.float32(0.0), jnp.float32(4.0))
    vg["asymmetric_loss (soft labels, traced gammas)"] = lambda: asl_traced(z, soft, *gammas)
    t = _interleaved(vg, 10 if quick else 60)
    base_of = {"optax.softmax_cross_entropy_with_integer_labels": None,
               "weighted_softmax_cross_entropy (unweighted)":
                   "optax.softmax_cross_entropy_with_integer_labels",
               "weighted_softmax_cross_entropy (class_weights)":
                   "optax.softmax_cross_entropy_with_integer_labels",
               "softmax_focal_loss (gamma=2)": "weighted_softmax_cross_entropy (class_weights)",
               "weighted_sigmoid_cross_entropy": None}
    rows = []
    load = "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    groups: dict = {}
    for name in t:
        base = base_of.get(name, "weighted_sigmoid_cross_entropy" if "asymmetric" in name
                           else "weighted_softmax_cross_entropy (class_weights)")
        if base is not None and base in t:
            groups.setdefault(base, []).append(name)
    for base, names in groups.items():
        case = f"targets [{n},{c}] f32 value_and_grad vs {base}"
        rows.append(Row(case, base, t[base][0], baseline=True, note=f"interleaved; {load}"))
        for name in names:
            ratio = t[name][1] / t[base][1]
            rows.append(Row(case, name, t[name][0], note=f"ratio of minima {ratio:.2f}x"))
    return rows


if __name__ == "__main__":
    _harness.main(run)
