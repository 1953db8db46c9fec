"""Inputs and loss lists shared by the tests in tests/losses/ (imported by basename)."""

import numpy as np

from jbalance import losses

# float32 on CPU: elementwise transcendental ops agree with float64 to a few ulps.
F32 = dict(rtol=2e-5, atol=2e-6)
F64 = dict(rtol=1e-10, atol=1e-12)

# The cross-entropies and focal losses (softmax and sigmoid), which share their options.
CE_AND_FOCAL = ("weighted_softmax_cross_entropy", "softmax_focal_loss",
                "weighted_sigmoid_cross_entropy", "sigmoid_focal_loss")
SOFTMAX = CE_AND_FOCAL[:2]
FOCAL = ("softmax_focal_loss", "sigmoid_focal_loss")
# The losses that take class counts (or a prior), and the asymmetric loss.
LONG_TAIL = ("logit_adjusted_cross_entropy", "balanced_softmax_cross_entropy", "ldam_loss",
             "seesaw_loss")
LONG_TAIL_AND_ASL = LONG_TAIL + ("asymmetric_loss",)
COUNTS = np.array([500, 120, 40, 9, 1, 0], np.int32)


def data(seed=0, shape=(5, 4), scale=3.0, dtype=np.float32):
    """Logits, class ids, soft targets, binary and uniform targets, per-class weights."""
    rng = np.random.default_rng(seed)
    z = (scale * rng.standard_normal(shape)).astype(dtype)
    ids = rng.integers(0, shape[-1], shape[:-1])
    soft = rng.dirichlet(np.ones(shape[-1]), shape[:-1]).astype(dtype)
    binary = (rng.random(shape) < 0.4).astype(dtype)
    unit = rng.random(shape).astype(dtype)
    w = rng.uniform(0.2, 3.0, shape[-1]).astype(dtype)
    return z, ids, soft, binary, unit, w


def long_tail_data(seed=0, shape=(5, 6), scale=3.0, dtype=np.float32):
    """`data` with int32 class ids over six classes (the length of `COUNTS`)."""
    z, ids, soft, binary, unit, w = data(seed, shape, scale, dtype)
    return z, ids.astype(np.int32), soft, binary, unit, w


def labels_for(name, ids, binary):
    """Integer ids for the softmax losses, binary targets for the elementwise ones."""
    elementwise = ("weighted_sigmoid_cross_entropy", "sigmoid_focal_loss", "asymmetric_loss")
    return binary if name in elementwise else ids


def call(name, z, labels, **kw):
    return getattr(losses, name)(z, labels, **kw)


def counts_kw(name, counts=COUNTS):
    """The counts-like keyword a long-tail loss needs (none for the others)."""
    if name == "logit_adjusted_cross_entropy":
        return dict(log_prior=losses.log_prior(counts))
    if name in LONG_TAIL:
        return dict(counts=counts)
    return {}
