"""Long-tailed detection scenes: which remedy helps a small detector's rare classes? (Flax NNX).

The scenes of `examples.scenes` (1-3 real handwritten digits per 24x24 canvas, class
frequencies 100:1 over the training *instances*; ``tail="scarce"``: the rarest classes keep
a couple of distinct digit images, ``tail="diverse"``: every training digit is kept) are
detected by a small one-stage, CenterNet-style detector trained from scratch on the CPU:
4x4 space-to-depth, three 3x3 convolutions on the 6x6 grid, and a dense 1x1 head giving
per-cell class logits (a heatmap: `losses.sigmoid_focal_loss` on the cell holding each box
centre), a centre offset and a log box size (L1). Boxes are decoded as the top-k
cell-class peaks (3x3 max-pool suppression) and scored by
`jbalance.metrics.detection_average_precision` at IoU 0.5 (macro over classes, and the worst
class).

The shape follows ``examples/multilabel``: a method is a loss, a batch augmentation and a
sampler (per-image probabilities, from the start or only in the last third of training),
each with a knob grid chosen on the balanced validation split; paired seeds; every method
shares one compiled training step (traced `jax.lax.switch` indices). ``main.py`` is the
command line. The step is jitted and called from a Python loop (`time_runners` measures it
against a `lax.scan` of the same step).
"""

import dataclasses
import functools
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from examples import _stats
from examples.scenes import make_scenes
from jbalance import augment, losses, metrics, resample, sampling
from jbalance import boxes as jboxes

NUM_CLASSES = 10
STRIDE = 4  # pixels per heatmap cell
PRIOR = -4.6  # class-logit bias at init, log(0.01 / 0.99) (RetinaNet's prior)
TOP_K = 20  # detections kept per image
SLOTS = 12  # box slots per training example after any augmentation (Mosaic: 4 x 3)

LOSSES = ("focal", "seesaw")
AUGMENTS = ("none", "mixup", "mosaic_aware", "copy_paste_aware")
SAMPLERS = ("uniform", "plan", "rfs", "class_aware")
SCHEDULES = ("start", "deferred")


class Method(NamedTuple):
    """One row of the study (as `examples.multilabel.train.Method`)."""

    label: str
    loss: str = "focal"
    augment: str = "none"
    sampler: str = "uniform"
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    sampler_args: tuple[tuple[str, Any], ...] = ()


def build_methods() -> dict[str, Method]:
    sched = ("schedule", SCHEDULES)
    rfs = tuple((("threshold", 0.1), ("aggregation", a)) for a in ("max", "mean"))
    return {
        "focal": Method("sigmoid focal loss (baseline)"),
        "seesaw": Method("seesaw loss on per-cell softmax (background + 10)", "seesaw"),
        "mixup": Method("detection MixUp (`augment.mixup_boxes`)", augment="mixup",
                        grid=(("alpha", (1.0, 8.0)),)),
        "mosaic_aware": Method("Mosaic, class-aware partners", augment="mosaic_aware"),
        "copy_paste_aware": Method("Copy-Paste, class-aware donors", augment="copy_paste_aware",
                                   grid=(("paste_prob", (0.5, 1.0)),)),
        "plan": Method("`resample.plan()` defaults (min_repeat=1), from the start",
                       sampler="plan", grid=(("schedule", ("start",)),)),
        "plan_deferred": Method("`resample.plan()` defaults (min_repeat=1), last third only",
                                sampler="plan", grid=(("schedule", ("deferred",)),)),
        # The general problem, drops allowed (plan's default before issue 19's studies).
        "plan_min0": Method("`resample.plan(min_repeat=0)` (drops images)", sampler="plan",
                            grid=(sched,), sampler_args=(("min_repeat", 0),)),
        "rfs": Method("repeat factors (t = 0.1, max / mean)", sampler="rfs",
                      grid=(("rfs", rfs), sched)),
        "class_aware": Method("class-aware sampling (`sampling.class_aware_probs`)",
                              sampler="class_aware", grid=(sched,)),
    }


METHODS = build_methods()
AUGMENT_METHODS = ("mixup", "mosaic_aware", "copy_paste_aware")
SAMPLER_METHODS = ("plan", "plan_deferred", "plan_min0", "rfs", "class_aware")


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of one training run (hashable: a static argument of `jit`)."""

    width: int = 32
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    box_weight: float = 1.0
    canvas: int = 24
    num_train: int = 3000
    num_val: int = 500
    num_test: int = 500
    tail: str = "scarce"
    imbalance: float = 100.0


PRESETS = {
    "default": Config(),
    "smoke": Config(width=8, steps=8, batch_size=8, num_train=200, num_val=60, num_test=60),
}


# Model ------------------------------------------------------------------------------------

class Detector(nnx.Module):
    """4x4 space-to-depth, three 3x3 convs on the 6x6 grid, a 1x1 dense head.

    Output ``[B, H/4, W/4, C + 1 + 4]``: ``C`` class logits (sigmoid heatmap), one
    background logit (used by the softmax / seesaw head only), the centre offset inside the
    cell (2, through a sigmoid) and the log box size in cells (2).
    """

    def __init__(self, *, width: int, rngs: nnx.Rngs):
        p = STRIDE
        self.conv1 = nnx.Conv(p * p, width, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(width, width, (3, 3), rngs=rngs)
        self.conv3 = nnx.Conv(width, 2 * width, (3, 3), rngs=rngs)
        self.head = nnx.Conv(2 * width, NUM_CLASSES + 5, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        p = STRIDE
        x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, h // p, w // p, p * p * c)
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        x = nnx.relu(self.conv3(x))
        out = self.head(x)
        bias = jnp.zeros(NUM_CLASSES + 5, out.dtype).at[:NUM_CLASSES].set(PRIOR)
        return out + bias[None, None, None, :]


@functools.cache
def _graphdef(width: int) -> Any:
    abstract = nnx.eval_shape(lambda: Detector(width=width, rngs=nnx.Rngs(0)))
    return nnx.split(abstract, nnx.Param)[0]


def init_params(key: jax.Array, width: int) -> Any:
    return nnx.split(Detector(width=width, rngs=nnx.Rngs(params=key)), nnx.Param)[1]


def apply(params: Any, images: jax.Array, width: int) -> jax.Array:
    return nnx.merge(_graphdef(width), params)(images)


# Targets and decoding ---------------------------------------------------------------------

class Targets(NamedTuple):
    heat: jax.Array  # [B, G, G, C] in [0, 1] (the box weight at its centre cell)
    reg: jax.Array  # [B, G, G, 4]: offset x, y in [0, 1), log w, log h (cells)
    pos: jax.Array  # [B, G, G] weight of the cell's box (0: background)
    cls: jax.Array  # [B, G, G] int: class of the cell's box (NUM_CLASSES: background)


def encode(bx: jax.Array, classes: jax.Array, valid: jax.Array, weights: jax.Array,
           grid: int) -> Targets:
    """Dense targets of xyxy pixel boxes ``[B, K, 4]``: each box goes to the cell holding its
    centre (when two share a cell, the one with the larger weight)."""
    cx, cy = (bx[..., 0] + bx[..., 2]) / 2 / STRIDE, (bx[..., 1] + bx[..., 3]) / 2 / STRIDE
    fx, fy = jnp.clip(jnp.floor(cx), 0, grid - 1), jnp.clip(jnp.floor(cy), 0, grid - 1)
    gx, gy = fx.astype(jnp.int32), fy.astype(jnp.int32)
    w = jnp.where(valid, weights, 0.0)
    cell = jax.nn.one_hot(gy * grid + gx, grid * grid, dtype=w.dtype) * w[..., None]  # B K G2
    onehot = jax.nn.one_hot(classes, NUM_CLASSES, dtype=w.dtype)  # B K C
    heat = (cell[..., None] * onehot[:, :, None, :]).max(1)  # B G2 C
    owner = jnp.argmax(cell, axis=1)  # B G2: the box of each cell
    pos = cell.max(1)
    size = jnp.log(jnp.maximum(bx[..., 2:] - bx[..., :2], 1.0) / STRIDE)
    reg = jnp.concatenate([jnp.stack([cx - fx, cy - fy], -1), size], -1)  # B K 4
    reg = jnp.take_along_axis(reg, owner[..., None], axis=1)
    cls = jnp.where(pos > 0, jnp.take_along_axis(classes, owner, axis=1), NUM_CLASSES)
    b = bx.shape[0]
    return Targets(heat.reshape(b, grid, grid, NUM_CLASSES), reg.reshape(b, grid, grid, 4),
                   pos.reshape(b, grid, grid), cls.reshape(b, grid, grid))


class Detections(NamedTuple):
    boxes: jax.Array  # [B, K, 4] xyxy pixels
    scores: jax.Array  # [B, K]
    classes: jax.Array  # [B, K]
    valid: jax.Array  # [B, K]


def class_scores(out: jax.Array, head: jax.Array) -> jax.Array:
    """Per-cell class scores ``[B, G, G, C]``: sigmoid (focal head, ``head == 0``) or the
    foreground softmax probabilities (seesaw head)."""
    sig = jax.nn.sigmoid(out[..., :NUM_CLASSES])
    soft = jax.nn.softmax(out[..., :NUM_CLASSES + 1], axis=-1)[..., :NUM_CLASSES]
    return jnp.where(head == 0, sig, soft)


def decode(out: jax.Array, head: jax.Array, *, k: int = TOP_K) -> Detections:
    """Top-``k`` cell-class peaks (a peak is the maximum of its 3x3 neighbourhood)."""
    s = class_scores(out, head)
    b, g, _, c = s.shape
    pooled = jax.lax.reduce_window(s, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1),
                                   "SAME")
    s = jnp.where(s >= pooled, s, 0.0).reshape(b, g * g * c)
    scores, idx = jax.lax.top_k(s, k)
    cell, cls = idx // c, idx % c
    gy, gx = cell // g, cell % g
    reg = out[..., NUM_CLASSES + 1:].reshape(b, g * g, 4)
    reg = jnp.take_along_axis(reg, cell[..., None], axis=1)
    cx = (gx.astype(reg.dtype) + jax.nn.sigmoid(reg[..., 0])) * STRIDE
    cy = (gy.astype(reg.dtype) + jax.nn.sigmoid(reg[..., 1])) * STRIDE
    wh = jnp.exp(jnp.clip(reg[..., 2:], -3.0, 3.0)) * STRIDE
    bx = jnp.stack([cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2,
                    cy + wh[..., 1] / 2], -1)
    return Detections(bx, scores, cls.astype(jnp.int32), scores > 0)


# Data -------------------------------------------------------------------------------------

def _pad(a: np.ndarray, m: int, value: Any = 0) -> np.ndarray:
    pad = [(0, 0), (0, m - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, constant_values=value)


def load_seed(seed: int, cfg: Config) -> dict[str, np.ndarray]:
    s = make_scenes(seed, num_train=cfg.num_train, num_val=cfg.num_val,
                    num_test=cfg.num_test, tail=cfg.tail, imbalance=cfg.imbalance,
                    canvas=cfg.canvas)
    out = {}
    for name, sp in (("train", s.train), ("val", s.val), ("test", s.test)):
        out[f"{name}_images"] = sp.images
        out[f"{name}_boxes"] = sp.boxes
        out[f"{name}_classes"] = sp.classes
        out[f"{name}_valid"] = sp.valid
    out["train_counts"] = s.train.counts
    out["train_instances"] = s.train.instances
    return out


def stack_seeds(seeds: Sequence[int], cfg: Config) -> dict[str, np.ndarray]:
    per = [load_seed(s, cfg) for s in seeds]
    return {k: np.stack([d[k] for d in per]) for k in per[0]}


def seed_arrays(counts: np.ndarray, classes: np.ndarray, valid: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Per-seed statistics: class-aware partner / donor weights and seesaw counts."""
    n_inst = counts.sum(0).astype(np.float64)  # instances per class
    n_img = (counts > 0).sum(0).astype(np.float64)
    inv = 1.0 / np.maximum(n_img, 1)
    partner = np.where(counts > 0, inv[None], 0.0).max(1)  # rarest class of the image
    inst_w = np.where(valid, n_inst.min() / np.maximum(n_inst[classes], 1), 0.0)
    # Seesaw counts: the background counts as the most frequent class (see `_loss`).
    seesaw_counts = np.r_[n_inst, n_inst.max()]
    return {"partner": partner.astype(np.float32),
            "instance_weights": (inst_w / inst_w[valid].max()).astype(np.float32),
            "seesaw_counts": seesaw_counts.astype(np.float32)}


def sampler_probs(m: Method, counts: np.ndarray, seed: int, over: dict[str, Any]
                  ) -> np.ndarray:
    """Per-image probabilities ``[N]`` of ``m``'s sampler (a repeat list: ``r / sum r``)."""
    args = dict(m.sampler_args)
    y = np.asarray(counts, np.int32)
    if m.sampler == "uniform":
        w = np.ones(len(y))
    elif m.sampler == "plan":
        w = np.asarray(resample.plan(y, seed=seed, **args).repeats)
    elif m.sampler == "rfs":
        w = np.asarray(resample.repeat_factor_sampling(y, **dict(over["rfs"])))
    elif m.sampler == "class_aware":
        w = np.asarray(sampling.class_aware_probs(y), np.float64)
    else:
        raise ValueError(f"unknown sampler {m.sampler!r}")
    w = np.asarray(w, np.float64)
    return (w / w.sum()).astype(np.float32)


_PROBS: dict[Any, np.ndarray] = {}


def _cached_probs(m: Method, counts: np.ndarray, seed: int, over: dict[str, Any]
                  ) -> np.ndarray:
    key = (m.sampler, m.sampler_args, str(over.get("rfs")), seed, counts.tobytes())
    if key not in _PROBS:
        _PROBS[key] = sampler_probs(m, counts, seed, over)
    return _PROBS[key]


# Augmentations and losses (traced) --------------------------------------------------------

def _pad_slots(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    out = []
    for a in arrays:
        pad = [(0, 0), (0, SLOTS - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
        out.append(jnp.pad(a, pad))
    return tuple(out)


def _augment(kind: jax.Array, key: jax.Array, images: jax.Array, bx: jax.Array,
             classes: jax.Array, valid: jax.Array, inst: jax.Array, partner: jax.Array,
             inst_w: jax.Array, knobs: dict[str, jax.Array]) -> tuple[jax.Array, ...]:
    """``(images, boxes [B, SLOTS, 4], classes, valid, box_weights)`` by ``kind``."""
    ones = valid.astype(jnp.float32)

    def none():
        return (images,) + _pad_slots(bx, classes, valid, ones)

    def mixup():
        r = augment.mixup_boxes(key, images, bx, classes, valid, alpha=knobs["alpha"])
        return (r.images,) + _pad_slots(r.boxes, r.classes, r.valid, r.box_weights)

    def mosaic():
        r = augment.mosaic_boxes(key, images, bx, classes, valid, partner_weights=partner)
        return (r.images,) + _pad_slots(r.boxes, r.classes, r.valid,
                                        r.valid.astype(jnp.float32))

    def paste():
        r = augment.copy_paste(key, images, inst, classes, valid, partner_weights=partner,
                               instance_weights=inst_w, paste_prob=knobs["paste_prob"])
        b, v = jboxes.from_instance_ids(r.instance_ids, r.classes.shape[1])
        v = v & r.valid
        return (r.images,) + _pad_slots(b, r.classes, v, v.astype(jnp.float32))

    return jax.lax.switch(kind, (none, mixup, mosaic, paste))


def _loss(kind: jax.Array, out: jax.Array, t: Targets, seesaw_counts: jax.Array,
          cfg: Config) -> jax.Array:
    """Mean over images of (class loss summed over cells and classes) / max(1, boxes) plus
    the box L1 at the positive cells."""
    n_pos = jnp.maximum(t.pos.reshape(t.pos.shape[0], -1).sum(-1), 1.0)

    def focal():
        return losses.sigmoid_focal_loss(out[..., :NUM_CLASSES], t.heat, gamma=2.0,
                                         alpha=0.25).sum((1, 2, 3))

    def seesaw():
        # Softmax over background + 10 classes per cell; the background counts as the
        # most frequent class, so background cells mitigate their penalty on rare classes
        # like a head class's examples do. Counts are the training totals (fixed: the
        # sampler is stationary within a phase), not mmdet's running counts.
        return losses.seesaw_loss(out[..., :NUM_CLASSES + 1], t.cls,
                                  counts=seesaw_counts).sum((1, 2))

    cls_loss = jax.lax.switch(kind, (focal, seesaw))
    pred = jnp.concatenate([jax.nn.sigmoid(out[..., NUM_CLASSES + 1:NUM_CLASSES + 3]),
                            out[..., NUM_CLASSES + 3:]], -1)
    box = (jnp.abs(pred - t.reg).sum(-1) * t.pos).sum((1, 2))
    return jnp.mean((cls_loss + cfg.box_weight * box) / n_pos)


def knobs_for(over: dict[str, Any]) -> dict[str, jax.Array]:
    values = {"alpha": over.get("alpha", 8.0), "paste_prob": over.get("paste_prob", 0.5)}
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


# Training ---------------------------------------------------------------------------------

def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.adamw(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps),
                       weight_decay=cfg.weight_decay)


def train_step(params: Any, opt_state: Any, key: jax.Array, step: jax.Array,
               d: dict[str, jax.Array], ids: jax.Array, knobs: dict[str, jax.Array], *,
               cfg: Config) -> tuple[Any, Any, jax.Array]:
    """Draw a batch, augment, encode, loss, AdamW. Pure: ``(params, opt_state, loss)``."""
    k_batch, k_aug = jax.random.split(key)
    probs = jnp.where(step >= d["switch"], d["probs"], d["probs_before"])
    pick = sampling.sample_indices(k_batch, probs, cfg.batch_size)
    images, bx, cl, v, w = _augment(
        ids[1], k_aug, d["train_images"][pick], d["train_boxes"][pick],
        d["train_classes"][pick], d["train_valid"][pick], d["train_instances"][pick],
        d["partner"][pick], d["instance_weights"][pick], knobs)
    t = encode(bx, cl, v, w, cfg.canvas // STRIDE)

    def objective(p):
        return _loss(ids[0], apply(p, images, cfg.width), t, d["seesaw_counts"], cfg)

    loss, grads = jax.value_and_grad(objective)(params)
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = make_optimizer(cfg).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _init(key: jax.Array, cfg: Config) -> tuple[Any, Any]:
    params = init_params(key, cfg.width)
    with jax.numpy_dtype_promotion("standard"):
        return params, make_optimizer(cfg).init(params)


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnums=(0, 1))
def _jit_step(params, opt_state, key, step, d, ids, knobs, *, cfg):
    return train_step(params, opt_state, key, step, d, ids, knobs, cfg=cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _jit_scan(carry, keys, d, ids, knobs, *, cfg):
    def body(c, xs):
        step, k = xs
        p, o, loss = train_step(*c, k, step, d, ids, knobs, cfg=cfg)
        return (p, o), loss

    steps = jnp.arange(keys.shape[0], dtype=jnp.int32)
    return jax.lax.scan(body, carry, (steps, keys))


@functools.partial(jax.jit, static_argnames=("cfg",))
def _jit_init(key, *, cfg):
    return _init(key, cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _jit_detect(params, images, head, *, cfg):
    return decode(apply(params, images, cfg.width), head)


def train_one(key: jax.Array, d: dict[str, jax.Array], ids: jax.Array,
              knobs: dict[str, jax.Array], cfg: Config) -> tuple[Any, jax.Array]:
    """One model: a Python loop of the jitted step (faster than a scan on XLA:CPU)."""
    k_init, k_run = jax.random.split(key)
    params, opt_state = _jit_init(k_init, cfg=cfg)
    keys = jax.random.split(k_run, cfg.steps)
    loss = jnp.float32(0)
    for t in range(cfg.steps):
        params, opt_state, loss = _jit_step(params, opt_state, keys[t], jnp.int32(t), d, ids,
                                            knobs, cfg=cfg)
    return params, loss


def time_runners(cfg: Config, *, steps: int = 20, repeats: int = 2, seed: int = 0
                 ) -> dict[str, float]:
    """Milliseconds per training step: the jitted step from a Python loop vs the same steps
    inside one `lax.scan` (compile excluded; best of ``repeats``)."""
    data = stack_seeds([seed], cfg)
    d = _device_arrays(METHODS["focal"], [seed], cfg, data, {})
    d = jax.tree.map(lambda a: a[0], d)
    ids, knobs = method_ids(METHODS["focal"]), knobs_for({})
    keys = jax.random.split(jax.random.key(0), steps)
    out = {}

    def loop():
        p, o = _jit_init(jax.random.key(1), cfg=cfg)
        for t in range(steps):
            p, o, _ = _jit_step(p, o, keys[t], jnp.int32(t), d, ids, knobs, cfg=cfg)
        return jax.block_until_ready(p)

    def scan():
        c = _jit_init(jax.random.key(1), cfg=cfg)
        return jax.block_until_ready(_jit_scan(c, keys, d, ids, knobs, cfg=cfg))

    for name, fn in (("loop", loop), ("scan", scan)):
        fn()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = 1e3 * best / steps
    return out


# Metrics ----------------------------------------------------------------------------------

def score_split(params: Any, d: dict[str, jax.Array], split: str, head: jax.Array,
                cfg: Config) -> dict[str, Any]:
    det = _jit_detect(params, d[f"{split}_images"], head, cfg=cfg)
    ap = np.asarray(metrics.detection_average_precision(
        *(np.asarray(a) for a in det), np.asarray(d[f"{split}_boxes"]),
        np.asarray(d[f"{split}_classes"]), np.asarray(d[f"{split}_valid"]),
        num_classes=NUM_CLASSES, iou_threshold=0.5), np.float64)
    return {"map": float(np.nanmean(ap)), "worst_ap": float(np.nanmin(ap)),
            "per_class_ap": ap.tolist()}


# The study --------------------------------------------------------------------------------

def method_ids(m: Method) -> jax.Array:
    return jnp.asarray([LOSSES.index(m.loss), AUGMENTS.index(m.augment)], jnp.int32)


def grid(m: Method) -> list[tuple[str, dict[str, Any]]]:
    if not m.grid:
        return [("--", {})]
    names = [n for n, _ in m.grid]
    out = []
    for values in itertools.product(*(v for _, v in m.grid)):
        over = dict(zip(names, values))
        out.append((", ".join(f"{k}={_fmt(v)}" for k, v in over.items()), over))
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, tuple) and all(isinstance(x, tuple) and len(x) == 2 for x in v):
        return "(" + ", ".join(f"{a}={b}" for a, b in v) + ")"
    return str(v)


def _device_arrays(m: Method, seeds: Sequence[int], cfg: Config, data: dict[str, np.ndarray],
                   over: dict[str, Any]) -> dict[str, jax.Array]:
    per = [seed_arrays(c, cl, v) for c, cl, v in
           zip(data["train_counts"], data["train_classes"], data["train_valid"])]
    probs = np.stack([_cached_probs(m, c, s, over) for c, s in zip(data["train_counts"], seeds)])
    deferred = over.get("schedule", "start") == "deferred"
    d = {k: v for k, v in data.items() if k != "train_counts"}
    d.update({k: np.stack([p[k] for p in per]) for k in per[0]})
    d.update(probs=probs, probs_before=np.full_like(probs, 1.0 / probs.shape[1]),
             switch=np.full(len(seeds), (2 * cfg.steps) // 3 if deferred else 0, np.int32))
    return jax.tree.map(jnp.asarray, d)


def run_candidates(m: Method, seeds: Sequence[int], cfg: Config, data: dict[str, np.ndarray],
                   candidates: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    ids = method_ids(m)
    head = ids[0]
    for label, over in candidates:
        t0 = time.perf_counter()
        d_all = _device_arrays(m, seeds, cfg, data, over)
        val, test, last = [], [], []
        for i, s in enumerate(seeds):
            d = jax.tree.map(lambda a: a[i], d_all)
            params, loss = train_one(jax.random.key(s), d, ids, knobs_for(over), cfg)
            val.append(score_split(params, d, "val", head, cfg))
            test.append(score_split(params, d, "test", head, cfg))
            last.append(float(loss))
        kept = (np.asarray(d_all["probs"]) > 0).sum(1)
        out.append({"label": label, "over": over, "val": val, "test": test,
                    "final_loss": last, "images_kept": kept.tolist(),
                    "seconds": time.perf_counter() - t0})
    return out


def run_method(name: str, m: Method, seeds: Sequence[int], cfg: Config,
               data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every candidate; the best mean validation macro AP is scored on test (as
    `examples.multilabel.train.run_method`)."""
    t0 = time.perf_counter()
    cands = run_candidates(m, seeds, cfg, data, grid(m))
    val = {c["label"]: float(np.mean([r["map"] for r in c["val"]])) for c in cands}
    best = max(cands, key=lambda c: val[c["label"]])
    runs = [dict(r, seed=int(s), method=name) for r, s in zip(best["test"], seeds)]
    return {"method": name, "label": m.label, "chosen": best["label"], "validation": val,
            "runs": runs, "candidates": cands, "seconds": time.perf_counter() - t0}


def _chosen_over(rec: dict[str, Any]) -> dict[str, Any]:
    for c in rec["candidates"]:
        if c["label"] == rec["chosen"]:
            return dict(c["over"])
    raise KeyError(rec["chosen"])


def combinations(results: dict[str, dict[str, Any]]) -> dict[str, Method]:
    """The augmentation with the best validation AP, with the sampler with the best
    validation AP, and the seesaw loss with that sampler (each with its chosen knobs: one
    candidate)."""
    augs = [n for n in AUGMENT_METHODS if n in results]
    samps = [n for n in SAMPLER_METHODS if n in results]
    if not samps:
        return {}
    v = lambda n: results[n]["validation"][results[n]["chosen"]]  # noqa: E731
    s = max(samps, key=v)
    sm = METHODS[s]
    out = {}
    for a in [max(augs, key=v)] if augs else []:
        am = METHODS[a]
        fixed = {**_chosen_over(results[a]), **_chosen_over(results[s])}
        out[f"{a}+{s}"] = Method(f"{am.label} + {sm.label}", am.loss, am.augment, sm.sampler,
                                 grid=tuple((k, (x,)) for k, x in fixed.items()),
                                 sampler_args=sm.sampler_args)
    if "seesaw" in results:
        fixed = _chosen_over(results[s])
        out[f"seesaw+{s}"] = Method(f"{METHODS['seesaw'].label} + {sm.label}", "seesaw",
                                    "none", sm.sampler,
                                    grid=tuple((k, (x,)) for k, x in fixed.items()),
                                    sampler_args=sm.sampler_args)
    return out


def run_study(methods: Sequence[str], seeds: Sequence[int], cfg: Config, *,
              combine: bool = True, log: Callable[[str], None] | None = print
              ) -> list[dict[str, Any]]:
    data = stack_seeds(seeds, cfg)
    results: dict[str, dict[str, Any]] = {}

    def run(name: str, m: Method) -> None:
        rec = run_method(name, m, seeds, cfg, data)
        results[name] = rec
        if log is not None:
            s = summarize([rec])[name]
            log(f"{name:24s} {rec['chosen'][:50]:50s} AP {s['map'][0]:.3f} "
                f"worst {s['worst_ap'][0]:.3f} ({rec['seconds']:.1f}s)")

    for name in methods:
        run(name, METHODS[name])
    if combine and "focal" in results:
        for name, m in combinations(results).items():
            run(name, m)
    return list(results.values())


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return _stats.summarize(results, ("map", "worst_ap"))


def paired_deltas(results: Sequence[dict[str, Any]], key: str = "map",
                  baseline: str = "focal") -> dict[str, dict[str, Any]]:
    return _stats.paired_deltas(results, key, baseline)


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """Macro AP50, worst-class AP50, paired deltas vs focal with per-seed deltas (points)."""
    summ = summarize(results)
    dm, dw = paired_deltas(results, "map"), paired_deltas(results, "worst_ap")
    lines = ["| method | knob (chosen on validation) | macro AP50 | worst-class AP50 "
             "| AP - focal (paired, points) | per-seed deltas | worst AP - focal | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for rec in results:
        name, s = rec["method"], summ[rec["method"]]
        cells = [rec["label"], s["chosen"], f"{s['map'][0]:.3f} ± {s['map'][1]:.3f}",
                 f"{s['worst_ap'][0]:.3f} ± {s['worst_ap'][1]:.3f}"]
        if name != "focal" and name in dm:
            d = dm[name]
            cells += [f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f} "
                      f"(better on {d['wins']}/{len(d['per_seed'])})",
                      " ".join(f"{100 * x:+.1f}" for x in d["per_seed"]),
                      f"{100 * dw[name]['mean']:+.1f}"]
        else:
            cells += ["--", "--", "--"]
        lines.append("| " + " | ".join(cells) + f" | {s['seeds']} |")
    return "\n".join(lines)


def validation_table(results: Sequence[dict[str, Any]]) -> str:
    lines = ["| method | candidates: mean validation macro AP50 |", "|---|---|"]
    for rec in results:
        if len(rec["validation"]) < 2:
            continue
        cells = [(f"**{k}: {v:.3f}**" if k == rec["chosen"] else f"{k}: {v:.3f}")
                 for k, v in rec["validation"].items()]
        lines.append(f"| {rec['label']} | " + ", ".join(cells) + " |")
    return "\n".join(lines)


def plan_table(results: Sequence[dict[str, Any]]) -> str:
    """Every sampler candidate against focal on the same seed (test; diagnostic)."""
    recs = {r["method"]: r for r in results}
    if "focal" not in recs:
        return ""
    base = recs["focal"]["candidates"][0]["test"]
    lines = ["| sampler | candidate | images kept | test AP - focal (seeds >= 0) "
             "| per-seed |", "|---|---|---|---|---|"]
    for name in SAMPLER_METHODS:
        if name not in recs:
            continue
        for c in recs[name]["candidates"]:
            d = np.array([a["map"] - b["map"] for a, b in zip(c["test"], base)])
            lines.append(f"| {recs[name]['label']} | {c['label']} | "
                         f"{np.mean(c['images_kept']):.0f} | {100 * d.mean():+.1f} "
                         f"({int((d >= 0).sum())}/{len(d)}) | "
                         + " ".join(f"{100 * x:+.1f}" for x in d) + " |")
    return "\n".join(lines)
