"""Long-tailed multi-label scenes: which remedy helps the rare classes? (Flax NNX + Optax).

Canvases of 1-3 real handwritten digits (`examples.scenes`: class frequencies 100:1 over the
training *instances*, the rarest classes with a couple of distinct digit images) are
classified multi-label: which digits does the canvas hold? The same model (an MLP or a small
conv net, `examples.multilabel.models`) is trained with the same budget by each method --
a loss, a batch augmentation and a sampler (per-image probabilities, from the start of
training or only in its last third) -- over paired seeds; each method's knob is chosen on a
balanced validation split and the choice is scored on a balanced test split by per-class
average precision (macro mAP and the worst class).

The shape follows ``examples/long_tail``: this module holds the logic, ``main.py`` is the
command line. A method is three traced choices (`jax.lax.switch` indices for the loss and the
augmentation, per-image sampling probabilities), so every method shares one compiled training
program per model; the seeds run side by side under `jax.vmap`.
"""

import dataclasses
import functools
import inspect
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples import _stats
from examples.multilabel import models
from examples.scenes import make_scenes
from jbalance import augment, losses, metrics, resample, sampling

NUM_CLASSES = 10

LOSSES = ("bce", "pos_weight", "focal", "asl", "db")
AUGMENTS = ("none", "mixup", "mixup_aware", "copy_paste", "copy_paste_aware")
SAMPLERS = ("uniform", "plan", "solver", "rfs", "class_aware", "mlros", "dataeval")


def has_db() -> bool:
    """Whether `jbalance.losses` has the distribution-balanced loss yet."""
    return hasattr(losses, "distribution_balanced_loss")


def solver_has_min_repeat() -> bool:
    return "min_repeat" in inspect.signature(resample.solve).parameters


def rfs_has_aggregation() -> bool:
    return "aggregation" in inspect.signature(resample.repeat_factor_sampling).parameters


def has_dataeval() -> bool:
    try:
        import dataeval.data  # noqa: F401
    except Exception:  # not installed, or it fails to import on this Python
        return False
    return True


class Method(NamedTuple):
    """One row of the study: a loss, an augmentation, a sampler and a knob grid.

    ``grid`` pairs each knob's name with its candidate values (every combination is tried
    and the best mean validation mAP over seeds is kept). ``sampler_args`` are fixed
    arguments of the sampler; the knob ``schedule`` (``"start"`` / ``"deferred"``) says
    when the sampler is used (deferred: the last third of the steps, uniform before).
    ``available`` names a check that must pass for the method to run.
    """

    label: str
    loss: str = "bce"
    augment: str = "none"
    sampler: str = "uniform"
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    sampler_args: tuple[tuple[str, Any], ...] = ()
    available: str | None = None


SCHEDULES = ("start", "deferred")


def _solver_grid() -> tuple[Any, ...]:
    """Solver variants around the defaults, one setting changed at a time, with
    ``min_repeat`` 0 and (when `resample.solve` has it) 1.

    Each is a tuple of ``(name, value)`` arguments of `resample.solve`; ``lam`` is given as a
    multiple of the default ``0.5 / median class total``.
    """
    base: list[tuple[tuple[str, Any], ...]] = [
        (), (("target", "max"),), (("tau", 0.5),), (("lam_scale", 4.0),),
        (("lam_scale", 0.25),)]
    out = list(base)
    if solver_has_min_repeat():  # the same variants again, never dropping an image
        out += [(("min_repeat", 1),) + v for v in base]
    return tuple(out)


def _rfs_grid() -> tuple[Any, ...]:
    aggs = ("max", "mean")
    return tuple((("threshold", 0.1), ("aggregation", a)) for a in aggs)


def build_methods() -> dict[str, Method]:
    """The single methods of the study (the combinations are built from their results)."""
    sched = ("schedule", SCHEDULES)
    return {
        "bce": Method("BCE (plain)"),
        "pos_weight": Method("BCE with pos_weight = (negatives / positives)^p", "pos_weight",
                             grid=(("p", (0.5, 1.0)),)),
        "focal": Method("sigmoid focal loss", "focal", grid=(("gamma", (1.0, 2.0)),)),
        "asl": Method("asymmetric loss", "asl",
                      grid=(("gamma_neg,clip", ((2.0, 0.05), (4.0, 0.05), (4.0, 0.0))),)),
        "db": Method("distribution-balanced loss", "db", grid=(("db_gamma", (0.0, 2.0)),),
                     available="db"),
        "mixup": Method("MixUp, random partners", augment="mixup",
                        grid=(("alpha", (0.2, 1.0)),)),
        "mixup_aware": Method("MixUp, class-aware partners", augment="mixup_aware",
                              grid=(("alpha", (0.2, 1.0)),)),
        "copy_paste": Method("Copy-Paste of one instance into an empty slot, random donors",
                             augment="copy_paste", grid=(("paste_prob", (0.5, 1.0)),)),
        "copy_paste_aware": Method("Copy-Paste of one instance, class-aware donors",
                                   augment="copy_paste_aware",
                                   grid=(("paste_prob", (0.5, 1.0)),)),
        "plan": Method("`resample.plan()` defaults, from the start", sampler="plan",
                       grid=(("schedule", ("start",)),)),
        "plan_deferred": Method("`resample.plan()` defaults, last third only", sampler="plan",
                                grid=(("schedule", ("deferred",)),)),
        "solver": Method("`resample.solve` variants (chosen on validation)", sampler="solver",
                         grid=(("solve", _solver_grid()), sched)),
        "rfs": Method("repeat factors (LVIS)", sampler="rfs", grid=(("rfs", _rfs_grid()), sched)),
        "dataeval_rule": Method("DataEval's global rule, drawn per batch (RFS t=1, mean)",
                                sampler="rfs", grid=(sched,),
                                sampler_args=(("rfs", (("threshold", 1.0),
                                                       ("aggregation", "mean"))),)),
        "class_aware": Method("class-aware sampling (Shen et al.)", sampler="class_aware",
                              grid=(sched,)),
        "mlros": Method("ML-ROS (Charte et al.)", sampler="mlros",
                        grid=(("percent", (25, 100)), sched)),
        "dataeval_global": Method("DataEval `ClassBalance('global')` selection",
                                  sampler="dataeval", grid=(sched,),
                                  sampler_args=(("dataeval", "global"),), available="dataeval"),
        "dataeval_interclass": Method("DataEval `ClassBalance('interclass')` selection",
                                      sampler="dataeval", grid=(sched,),
                                      sampler_args=(("dataeval", "interclass"),),
                                      available="dataeval"),
    }


METHODS = build_methods()
LOSS_METHODS = ("bce", "pos_weight", "focal", "asl", "db")
AUGMENT_METHODS = ("mixup", "mixup_aware", "copy_paste", "copy_paste_aware")
SAMPLER_METHODS = ("plan", "plan_deferred", "solver", "rfs", "dataeval_rule", "class_aware",
                   "mlros", "dataeval_global", "dataeval_interclass")


def available(method: Method) -> bool:
    return {None: True, "db": has_db(), "dataeval": has_dataeval()}[method.available]


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of one training run (hashable: a static argument of `jit`)."""

    model: str = "mlp"  # or "conv"
    width: int = 128
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    # Data (`examples.scenes.make_scenes`).
    canvas: int = 24
    num_train: int = 3000
    num_val: int = 1000
    num_test: int = 1000
    tail: str = "scarce"
    imbalance: float = 100.0
    # "scan": all steps in one `lax.scan` (the MLP); "loop": one jitted step per Python
    # iteration (the conv net: XLA:CPU ran its convolutions ~75x slower inside a scan).
    runner: str = "scan"
    # Initialise the read-out bias to the classes' prior log-odds (instead of 0).
    prior_bias: bool = False


PRESETS = {
    "default": Config(),
    # Prior-initialised read-out: without it BCE reached test mAP 0.77 at lr 3e-3 and 0.65
    # at 1e-3 in 600 steps (5 seeds), an unstable baseline; with it 0.85 (docs/study.md).
    "conv": Config(model="conv", width=32, steps=600, runner="loop", prior_bias=True),
    "smoke": Config(steps=30, batch_size=16, num_train=300, num_val=100, num_test=100,
                    width=32),
    "smoke_conv": Config(model="conv", width=8, steps=10, batch_size=8, num_train=300,
                         num_val=100, num_test=100, runner="loop", prior_bias=True),
}


# Data -------------------------------------------------------------------------------------

def load_seed(seed: int, cfg: Config) -> dict[str, np.ndarray]:
    """The scenes of one seed as flat arrays (images and 0/1 presence per split)."""
    s = make_scenes(seed, num_train=cfg.num_train, num_val=cfg.num_val,
                    num_test=cfg.num_test, tail=cfg.tail, imbalance=cfg.imbalance,
                    canvas=cfg.canvas)
    # Copy-Paste: which slots of each training canvas are empty, and the bank of training
    # instances (one 8x8 crop per training digit, so classes are as rare as in the scenes).
    g = cfg.canvas // 8
    cy = ((s.train.boxes[..., 1] + s.train.boxes[..., 3]) / 2 // 8).astype(int)
    cx = ((s.train.boxes[..., 0] + s.train.boxes[..., 2]) / 2 // 8).astype(int)
    empty = np.ones((len(cy), g * g), bool)
    rows = np.nonzero(s.train.valid)
    empty[rows[0], (cy * g + cx)[rows]] = False
    crops = np.zeros((len(rows[0]), 8, 8, 1), np.float32)
    for j, (i, k) in enumerate(zip(*rows)):
        y0, x0 = 8 * cy[i, k], 8 * cx[i, k]
        crops[j] = s.train.images[i, y0:y0 + 8, x0:x0 + 8]
    return {"train_images": s.train.images, "train_labels": s.train.presence,
            "val_images": s.val.images, "val_labels": s.val.presence,
            "test_images": s.test.images, "test_labels": s.test.presence,
            "train_empty": empty, "bank_images": crops,
            "bank_classes": s.train.classes[rows].astype(np.int32)}


def stack_seeds(seeds: Sequence[int], cfg: Config) -> dict[str, np.ndarray]:
    per_seed = [load_seed(s, cfg) for s in seeds]
    # Seeds hold slightly different numbers of training digits: pad the instance bank (the
    # padding gets zero donor weight, see `seed_arrays`).
    k = max(len(d["bank_classes"]) for d in per_seed)
    for d in per_seed:
        pad = k - len(d["bank_classes"])
        d["bank_valid"] = np.r_[np.ones(len(d["bank_classes"]), bool), np.zeros(pad, bool)]
        d["bank_images"] = np.concatenate([d["bank_images"],
                                           np.zeros((pad, 8, 8, 1), np.float32)])
        d["bank_classes"] = np.r_[d["bank_classes"], np.zeros(pad, np.int32)]
    return {k: np.stack([d[k] for d in per_seed]) for k in per_seed[0]}


# Samplers (host side: per-image probabilities) --------------------------------------------

def class_aware_probs(presence: np.ndarray) -> np.ndarray:
    """Pick a class uniformly, then an image holding it uniformly (Shen et al. 2016).

    ``p_i = (1 / C') sum_{c in i} 1 / |I_c|`` over the ``C'`` classes with images. Uses
    `jbalance.sampling.class_aware_probs` when the library has it.
    """
    if hasattr(sampling, "class_aware_probs"):
        return np.asarray(sampling.class_aware_probs(presence), np.float64)
    y = (np.asarray(presence) > 0).astype(np.float64)
    n_c = y.sum(0)
    inv = np.where(n_c > 0, 1.0 / np.maximum(n_c, 1), 0.0)
    p = y @ inv / (n_c > 0).sum()
    return p / p.sum()


def mlros_repeats(rng: np.random.Generator, presence: np.ndarray, *, percent: float
                  ) -> np.ndarray:
    """ML-ROS (Charte et al., 2015): clone random images of minority labels.

    Written from the paper's Algorithm 1. With ``IRLbl(y) = max_y' n_y' / n_y`` (``n_y`` the
    images holding label ``y``, clones included) and ``MeanIR`` its mean over labels (fixed
    at the start), the labels with ``IRLbl > MeanIR`` form minority bags; round-robin over
    the bags, a random image of the bag is cloned, and a bag leaves once its label's
    ``IRLbl <= MeanIR``, until ``percent`` % of the data set has been cloned.

    Returns:
      int64 ``[N]``: ``1 +`` the clones of each image.
    """
    y = (np.asarray(presence) > 0).astype(np.int64)
    n = y.sum(0).astype(np.float64)
    has = n > 0
    irlbl = np.where(has, n[has].max() / np.maximum(n, 1), 0.0)
    mean_ir = irlbl[has].mean()
    bags = [c for c in range(y.shape[1]) if has[c] and irlbl[c] > mean_ir]
    members = {c: np.flatnonzero(y[:, c]) for c in bags}
    repeats = np.ones(len(y), np.int64)
    to_clone = int(len(y) * percent / 100)
    while to_clone > 0 and bags:
        for c in list(bags):
            i = rng.choice(members[c])
            repeats[i] += 1
            n += y[i]
            to_clone -= 1
            if n.max() / n[c] <= mean_ir:
                bags.remove(c)
            if to_clone <= 0:
                break
    return repeats


def repeat_factors(presence: np.ndarray, *, threshold: float, aggregation: str
                   ) -> np.ndarray:
    """LVIS repeat factors ``r_c = max(1, sqrt(t / f_c))`` aggregated per image by ``max``
    or ``mean`` over its classes (images without a class: 1). The study's own copy, used
    only while `resample.repeat_factor_sampling` has no ``aggregation``."""
    y = np.asarray(presence) > 0
    f = y.mean(0)
    r_c = np.maximum(1.0, np.sqrt(threshold / np.maximum(f, 1e-12)))
    k = y.sum(1)
    if aggregation == "max":
        agg = np.where(y, r_c[None], 0.0).max(1)
    else:
        agg = (y * r_c[None]).sum(1) / np.maximum(k, 1)
    return np.where(k > 0, agg, 1.0)


class _Target(NamedTuple):
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


class _DataEvalScenes:
    """A MAITE-style object-detection dataset of the training scenes, for DataEval."""

    def __init__(self, presence: np.ndarray):
        self.presence = presence
        self.metadata = {"id": "scenes", "index2label": {c: str(c) for c in range(NUM_CLASSES)}}

    def __len__(self) -> int:
        return len(self.presence)

    def __getitem__(self, i: int) -> tuple[np.ndarray, _Target, dict[str, Any]]:
        labels = np.flatnonzero(self.presence[i])
        boxes = np.tile(np.array([[0.0, 0.0, 1.0, 1.0]], np.float32), (len(labels), 1))
        return (np.zeros((1, 1, 1), np.float32),
                _Target(boxes, labels, np.ones(len(labels), np.float32)), {"id": i})


def dataeval_repeats(presence: np.ndarray, method: str, seed: int) -> np.ndarray:
    """How often DataEval's `ClassBalance(method)` selects each image (its fixed list)."""
    from dataeval.config import set_seed
    from dataeval.data import ClassBalance, View

    set_seed(seed)
    view = View(_DataEvalScenes(presence), [ClassBalance(method)])
    return np.bincount(np.asarray(view.selection), minlength=len(presence))


def sampler_probs(method: Method, presence: np.ndarray, seed: int,
                  over: dict[str, Any]) -> np.ndarray:
    """Per-image probabilities ``[N]`` of ``method``'s sampler on one seed's training set.

    A repeat list (a plan, ML-ROS clones, DataEval's selection) becomes the probabilities of
    drawing uniformly from it, ``repeats / sum(repeats)``; an image the list drops is never
    drawn while the sampler is on.
    """
    args = dict(method.sampler_args)
    args.update({k: v for k, v in over.items() if k in ("solve", "rfs", "percent")})
    y = (np.asarray(presence) > 0).astype(np.int32)
    kind = method.sampler
    if kind == "uniform":
        w = np.ones(len(y))
    elif kind == "plan":
        w = resample.plan(y, seed=seed).repeats
    elif kind == "solver":
        kw = dict(args["solve"])
        scale = kw.pop("lam_scale", None)
        if scale is not None:
            kw["lam"] = scale * 0.5 / float(np.median(y.sum(0)))
        w = np.asarray(resample.solve(y, **kw).repeats)
    elif kind == "rfs":
        kw = dict(args["rfs"])
        agg = kw.get("aggregation", "max")
        if not rfs_has_aggregation():
            kw.pop("aggregation", None)
        if rfs_has_aggregation() or agg == "max":
            w = np.asarray(resample.repeat_factor_sampling(y, **kw))
        else:
            w = repeat_factors(y, threshold=kw["threshold"], aggregation=agg)
    elif kind == "class_aware":
        w = class_aware_probs(y)
    elif kind == "mlros":
        w = mlros_repeats(np.random.default_rng(seed), y, percent=args["percent"])
    elif kind == "dataeval":
        w = dataeval_repeats(y, args["dataeval"], seed)
    else:
        raise ValueError(f"unknown sampler {kind!r}")
    w = np.asarray(w, np.float64)
    return (w / w.sum()).astype(np.float32)


_PROBS_CACHE: dict[Any, np.ndarray] = {}


def _cached_probs(m: Method, presence: np.ndarray, seed: int, over: dict[str, Any]
                  ) -> np.ndarray:
    # The schedule does not change the probabilities: solve each plan once per seed.
    knob = tuple(sorted((k, v) for k, v in over.items() if k in ("solve", "rfs", "percent")))
    key = (m.sampler, m.sampler_args, knob, seed, presence.shape, presence.tobytes())
    if key not in _PROBS_CACHE:
        _PROBS_CACHE[key] = sampler_probs(m, presence, seed, over)
    return _PROBS_CACHE[key]


# Losses and augmentations (traced) --------------------------------------------------------

def _loss(kind: jax.Array, logits: jax.Array, targets: jax.Array, d: dict[str, jax.Array],
          knobs: dict[str, jax.Array]) -> jax.Array:
    """Elementwise loss ``[B, C]`` by the traced index ``kind`` into `LOSSES`."""

    def db() -> jax.Array:
        if not has_db():
            return jnp.zeros_like(logits)
        return losses.distribution_balanced_loss(
            logits, targets, counts=d["class_totals"], num_examples=d["num_images"],
            gamma=knobs["db_gamma"])

    branches: tuple[Callable[[], jax.Array], ...] = (
        lambda: losses.weighted_sigmoid_cross_entropy(logits, targets),
        lambda: losses.weighted_sigmoid_cross_entropy(
            logits, targets, pos_weight=d["neg_over_pos"] ** knobs["p"]),
        lambda: losses.sigmoid_focal_loss(logits, targets, gamma=knobs["gamma"], alpha=None),
        lambda: losses.asymmetric_loss(logits, targets, gamma_neg=knobs["gamma_neg"],
                                       clip=knobs["clip"]),
        db,
    )
    return jax.lax.switch(kind, branches)


def copy_paste(key: jax.Array, images: jax.Array, targets: jax.Array, empty: jax.Array,
               bank_images: jax.Array, bank_classes: jax.Array, donor_weights: jax.Array, *,
               paste_prob: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pastes one training instance into an empty 8x8 slot of each canvas (prob. ``paste_prob``).

    The donor is drawn from the instance bank with ``donor_weights`` (uniform over instances:
    random donors; ``1 / n_class``: every class equally often), the slot uniformly among the
    canvas's empty ones; the donor's class is added to the targets. The slot was empty, so
    no pixel of the scene is covered (the study's own version for the slot layout of
    `examples.scenes`; `jbalance.augment.copy_paste` is the general one).
    """
    b = images.shape[0]
    g = empty.shape[-1]
    side = int(round(g ** 0.5))
    k_do, k_donor, k_slot = jax.random.split(key, 3)
    # Inverse-CDF draws: a categorical over the whole bank per image cost more than the step.
    donor = sampling.sample_indices(k_donor, donor_weights, b)
    slot = jax.random.categorical(k_slot, jnp.where(empty, 0.0, -jnp.inf))
    do = (jax.random.uniform(k_do, (b,)) < paste_prob) & empty.any(-1)

    # Elementwise, no scatter: the crop tiled over the grid, times the chosen slot's mask.
    where = jax.nn.one_hot(slot, g, dtype=images.dtype) * do[:, None].astype(images.dtype)
    mask = jnp.repeat(jnp.repeat(where.reshape(b, side, side), 8, axis=1), 8, axis=2)
    pasted = images + jnp.tile(bank_images[donor], (1, side, side, 1)) * mask[..., None]
    onehot = jax.nn.one_hot(bank_classes[donor], targets.shape[-1], dtype=targets.dtype)
    return pasted, jnp.where(do[:, None], jnp.maximum(targets, onehot), targets)


def _augment(kind: jax.Array, key: jax.Array, images: jax.Array, targets: jax.Array,
             partner: jax.Array, empty: jax.Array, d: dict[str, jax.Array],
             knobs: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Images and (soft) targets by the traced index ``kind`` into `AUGMENTS`.

    ``partner`` ``[B]``: the class-aware partner weight of each image of the batch (the
    inverse image frequency of its rarest class); ``empty`` ``[B, slots]``: its empty slots.
    """

    def paste(weights: jax.Array) -> tuple[jax.Array, jax.Array]:
        return copy_paste(key, images, targets, empty, d["bank_images"], d["bank_classes"],
                          weights, paste_prob=knobs["paste_prob"])

    branches = (
        lambda: (images, targets),
        lambda: tuple(augment.mixup(key, images, targets, alpha=knobs["alpha"])),
        lambda: tuple(augment.mixup(key, images, targets, alpha=knobs["alpha"],
                                    partner_weights=partner)),
        lambda: paste(d["bank_random"]),
        lambda: paste(d["bank_aware"]),
    )
    return jax.lax.switch(kind, branches)


def seed_arrays(train_labels: np.ndarray, bank_classes: np.ndarray, bank_valid: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Per-seed statistics of the training labels that losses and augmentations use."""
    n_inst = np.bincount(bank_classes[bank_valid], minlength=NUM_CLASSES).astype(np.float64)
    aware = np.where(bank_valid, 1.0 / np.maximum(n_inst[bank_classes], 1), 0.0)
    y = (np.asarray(train_labels) > 0).astype(np.float64)
    n = y.sum(0)
    safe = np.maximum(n, 1)
    inv = 1.0 / safe
    # Each image's rarest class decides how often it is drawn as a MixUp partner.
    partner = np.where(y > 0, inv[None], 0.0).max(1)
    return {"class_totals": n.astype(np.float32),
            "num_images": np.float32(len(y)),
            "neg_over_pos": ((len(y) - n) / safe).astype(np.float32),
            "partner": partner.astype(np.float32),
            "bank_random": (bank_valid / bank_valid.sum()).astype(np.float32),
            "bank_aware": (aware / aware.sum()).astype(np.float32)}


def knobs_for(over: dict[str, Any]) -> dict[str, jax.Array]:
    """The traced numeric knobs of a run (defaults, overridden by one grid candidate)."""
    gneg, clip = over.get("gamma_neg,clip", (4.0, 0.05))
    values = {"p": over.get("p", 1.0), "gamma": over.get("gamma", 2.0), "gamma_neg": gneg,
              "clip": clip, "db_gamma": over.get("db_gamma", 2.0),
              "alpha": over.get("alpha", 1.0), "paste_prob": over.get("paste_prob", 0.5)}
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


# Training ---------------------------------------------------------------------------------

def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.adamw(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps),
                       weight_decay=cfg.weight_decay)


def _objective(params: Any, images: jax.Array, targets: jax.Array, partner: jax.Array,
               empty: jax.Array, key: jax.Array, ids: jax.Array, d: dict[str, jax.Array],
               knobs: dict[str, jax.Array], cfg: Config) -> jax.Array:
    images, targets = _augment(ids[1], key, images, targets, partner, empty, d, knobs)
    logits = models.apply(params, images, cfg.model, cfg.width)
    return jnp.mean(jnp.sum(_loss(ids[0], logits, targets, d, knobs), axis=-1))


def train_step(params: Any, opt_state: Any, key: jax.Array, step: jax.Array,
               d: dict[str, jax.Array], ids: jax.Array, knobs: dict[str, jax.Array], *,
               cfg: Config) -> tuple[Any, Any, jax.Array]:
    """One step: draw a batch (the sampler's probabilities, or uniform before the switch),
    augment, loss, gradient, AdamW update. Pure: ``(params, opt_state, loss)``."""
    k_batch, k_aug = jax.random.split(key)
    probs = jnp.where(step >= d["switch"], d["probs"], d["probs_before"])
    pick = sampling.sample_indices(k_batch, probs, cfg.batch_size)
    targets = d["train_labels"][pick].astype(jnp.float32)
    loss, grads = jax.value_and_grad(_objective)(
        params, d["train_images"][pick], targets, d["partner"][pick], d["train_empty"][pick],
        k_aug, ids, d, knobs, cfg)
    # optax mixes int32 step counts with floats: allow it even under strict promotion.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = make_optimizer(cfg).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _init(key: jax.Array, cfg: Config, d: dict[str, jax.Array]) -> tuple[Any, Any]:
    bias = None
    if cfg.prior_bias:  # log-odds of each class's image frequency in the training set
        p = jnp.clip(d["class_totals"] / d["num_images"], 1e-4, 1 - 1e-4)
        bias = jnp.log(p) - jnp.log1p(-p)
    params = models.init_params(key, cfg.model, cfg.width, cfg.canvas, bias)
    with jax.numpy_dtype_promotion("standard"):
        return params, make_optimizer(cfg).init(params)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _train_seeds(keys: jax.Array, d: dict[str, jax.Array], ids: jax.Array,
                 knobs: dict[str, jax.Array], *, cfg: Config
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Trains one model per seed (leading axis of ``keys`` and ``d``), all steps in one
    `lax.scan`; returns validation and test logits ``[S, N, C]`` and the last losses."""

    def one_seed(key: jax.Array, d: dict[str, jax.Array]):
        k_init, k_run = jax.random.split(key)
        carry = _init(k_init, cfg, d)

        def body(carry, xs):
            step, k = xs
            params, opt_state, loss = train_step(*carry, k, step, d, ids, knobs, cfg=cfg)
            return (params, opt_state), loss

        steps = jnp.arange(cfg.steps, dtype=jnp.int32)
        (params, _), loss = jax.lax.scan(body, carry, (steps, jax.random.split(k_run,
                                                                              cfg.steps)))
        return (models.apply(params, d["val_images"], cfg.model, cfg.width),
                models.apply(params, d["test_images"], cfg.model, cfg.width), loss[-1])

    # Seeds one after the other inside the program: on XLA:CPU a vmap over seeds made each
    # seed's step slower than running it alone (examples/multilabel/timing.py).
    return jax.lax.map(lambda a: one_seed(*a), (keys, d))


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnums=(0, 1))
def _jit_step(params, opt_state, key, step, d, ids, knobs, *, cfg):
    return train_step(params, opt_state, key, step, d, ids, knobs, cfg=cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _jit_init(key, d, *, cfg):
    return _init(key, cfg, d)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _jit_apply(params, images, *, cfg):
    return models.apply(params, images, cfg.model, cfg.width)


def _train_loop(keys: jax.Array, d: dict[str, jax.Array], ids: jax.Array,
                knobs: dict[str, jax.Array], *, cfg: Config
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The same training as `_train_seeds`, one jitted step per Python iteration and one
    seed after the other (faster than a scan for convolutions on XLA:CPU)."""
    vals, tests, last = [], [], []
    for s in range(keys.shape[0]):
        ds = jax.tree.map(lambda a: a[s], d)
        k_init, k_run = jax.random.split(keys[s])
        params, opt_state = _jit_init(k_init, ds, cfg=cfg)
        step_keys = jax.random.split(k_run, cfg.steps)
        for t in range(cfg.steps):
            params, opt_state, loss = _jit_step(params, opt_state, step_keys[t],
                                                jnp.int32(t), ds, ids, knobs, cfg=cfg)
        vals.append(_jit_apply(params, ds["val_images"], cfg=cfg))
        tests.append(_jit_apply(params, ds["test_images"], cfg=cfg))
        last.append(loss)
    return jnp.stack(vals), jnp.stack(tests), jnp.stack(last)


# Metrics ----------------------------------------------------------------------------------

def average_precision(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class AP ``[C]`` (`jbalance.metrics.average_precision` once it exists; until
    then scikit-learn's ``average_precision_score`` per class)."""
    if hasattr(metrics, "average_precision"):
        return np.asarray(metrics.average_precision(jnp.asarray(labels),
                                                    jnp.asarray(scores, jnp.float32)))
    from sklearn.metrics import average_precision_score

    return np.array([average_precision_score(labels[:, c], scores[:, c])
                     for c in range(labels.shape[1])])


def scores(labels: np.ndarray, logits: jax.Array) -> list[dict[str, Any]]:
    """Macro mAP, worst-class AP and per-class AP per seed (``labels`` ``[S, N, C]``)."""
    out = []
    logits = np.asarray(logits, np.float64)
    for s in range(logits.shape[0]):
        ap = average_precision(np.asarray(labels[s]), logits[s])
        out.append({"map": float(ap.mean()), "worst_ap": float(ap.min()),
                    "per_class_ap": ap.tolist()})
    return out


# The study --------------------------------------------------------------------------------

def method_ids(m: Method) -> jax.Array:
    return jnp.asarray([LOSSES.index(m.loss), AUGMENTS.index(m.augment)], jnp.int32)


def grid(m: Method) -> list[tuple[str, dict[str, Any]]]:
    """``(label, overrides)`` for each knob candidate of ``m`` (one if no grid)."""
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
        return "(" + ", ".join(f"{a}={b}" for a, b in v) + ")" if v else "defaults"
    return str(v)


def run_candidates(m: Method, seeds: Sequence[int], cfg: Config, data: dict[str, np.ndarray],
                   candidates: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Trains ``m`` with each candidate on every seed; validation and test scores of each."""
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    per_seed = [seed_arrays(y, c, v) for y, c, v in
                zip(data["train_labels"], data["bank_classes"], data["bank_valid"])]
    base = {k: np.stack([p[k] for p in per_seed]) for k in per_seed[0]}
    out = []
    for label, over in candidates:
        t0 = time.perf_counter()
        probs = np.stack([_cached_probs(m, y, s, over)
                          for y, s in zip(data["train_labels"], seeds)])
        deferred = over.get("schedule", "start") == "deferred"
        switch = (2 * cfg.steps) // 3 if deferred else 0
        uniform = np.full_like(probs, 1.0 / probs.shape[1])
        d = {k: data[k] for k in ("train_images", "train_labels", "val_images",
                                  "test_images", "train_empty", "bank_images",
                                  "bank_classes")}
        d.update({
             "probs": probs, "probs_before": uniform,
             "switch": np.full(len(seeds), switch, np.int32), **base})
        d = jax.tree.map(jnp.asarray, d)
        fn = _train_loop if cfg.runner == "loop" else _train_seeds
        val, test, loss = fn(keys, d, method_ids(m), knobs_for(over), cfg=cfg)
        kept = (probs > 0).sum(1)
        out.append({"label": label, "over": over,
                    "val": scores(data["val_labels"], val),
                    "test": scores(data["test_labels"], test),
                    "final_loss": np.asarray(loss).tolist(),
                    "images_kept": kept.tolist(),
                    "seconds": time.perf_counter() - t0})
    return out


def run_method(name: str, m: Method, seeds: Sequence[int], cfg: Config,
               data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every candidate of ``m``; the knob with the best mean validation mAP is scored on test.

    Returns ``{"method", "label", "chosen", "validation": {knob: mean val mAP},
    "runs": per-seed test scores of the chosen knob, "candidates": every candidate's
    per-seed validation and test scores, "seconds"}``.
    """
    t0 = time.perf_counter()
    cands = run_candidates(m, seeds, cfg, data, grid(m))
    val = {c["label"]: float(np.mean([r["map"] for r in c["val"]])) for c in cands}
    best = max(cands, key=lambda c: val[c["label"]])
    runs = [dict(r, seed=int(s), method=name) for r, s in zip(best["test"], seeds)]
    return {"method": name, "label": m.label, "chosen": best["label"], "validation": val,
            "runs": runs, "candidates": cands, "seconds": time.perf_counter() - t0}


def _best(results: dict[str, dict[str, Any]], names: Sequence[str]) -> str:
    """The method among ``names`` with the best chosen validation mAP."""
    names = [n for n in names if n in results]
    return max(names, key=lambda n: results[n]["validation"][results[n]["chosen"]])


def combinations(results: dict[str, dict[str, Any]]) -> dict[str, Method]:
    """The best loss and the best augmentation together (each with its chosen knob, both
    picked on validation), alone and with each resampler.

    Every knob (the loss's, the augmentation's, the sampler's variant and schedule) is
    inherited from the single methods' validation choices: one candidate per combination.
    """
    loss_name = _best(results, LOSS_METHODS)
    aug_name = _best(results, AUGMENT_METHODS)
    lm, am = METHODS[loss_name], METHODS[aug_name]
    fixed = {**_chosen_over(results[loss_name]), **_chosen_over(results[aug_name])}
    fixed_grid = tuple((k, (v,)) for k, v in fixed.items())
    base_label = f"{lm.label} + {am.label}"
    out = {"recipe": Method(f"recipe: {base_label}", lm.loss, am.augment, grid=fixed_grid)}
    for s in SAMPLER_METHODS:
        if s not in results:
            continue
        sm = METHODS[s]
        grid_ = fixed_grid + tuple((k, (v,)) for k, v in _chosen_over(results[s]).items())
        out[f"recipe+{s}"] = Method(f"recipe + {sm.label}", lm.loss, am.augment, sm.sampler,
                                    grid=grid_, sampler_args=sm.sampler_args)
    return out


def _chosen_over(rec: dict[str, Any]) -> dict[str, Any]:
    for c in rec["candidates"]:
        if c["label"] == rec["chosen"]:
            return dict(c["over"])
    raise KeyError(rec["chosen"])


def run_study(methods: Sequence[str], seeds: Sequence[int], cfg: Config, *,
              combine: bool = True, log: Callable[[str], None] | None = print
              ) -> list[dict[str, Any]]:
    """Every single method, then (``combine``) the combinations built from their results."""
    data = stack_seeds(seeds, cfg)
    results: dict[str, dict[str, Any]] = {}

    def run(name: str, m: Method) -> None:
        rec = run_method(name, m, seeds, cfg, data)
        results[name] = rec
        if log is not None:
            s = summarize([rec])[name]
            log(f"{name:28s} {rec['chosen'][:60]:60s} mAP {s['map'][0]:.3f} "
                f"worst {s['worst_ap'][0]:.3f} ({rec['seconds']:.1f}s)")

    for name in methods:
        m = METHODS[name]
        if not available(m):
            if log is not None:
                log(f"{name:28s} skipped: {m.available} not available")
            continue
        run(name, m)
    if combine and "bce" in results:
        for name, m in combinations(results).items():
            run(name, m)
    return list(results.values())


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return _stats.summarize(results, ("map", "worst_ap"))


def paired_deltas(results: Sequence[dict[str, Any]], key: str = "map",
                  baseline: str = "bce") -> dict[str, dict[str, Any]]:
    """Per method: per-seed ``key`` minus the baseline's on the same seed, mean, std, wins."""
    return _stats.paired_deltas(results, key, baseline)


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """mAP, worst-class AP, paired deltas vs BCE with per-seed deltas, in points."""
    summ = summarize(results)
    dm, dw = paired_deltas(results, "map"), paired_deltas(results, "worst_ap")
    lines = ["| method | knob (chosen on validation) | macro mAP | worst-class AP "
             "| mAP - BCE (paired, points) | per-seed mAP deltas | worst AP - BCE | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for rec in results:
        name, s = rec["method"], summ[rec["method"]]
        cells = [rec["label"], s["chosen"], f"{s['map'][0]:.3f} ± {s['map'][1]:.3f}",
                 f"{s['worst_ap'][0]:.3f} ± {s['worst_ap'][1]:.3f}"]
        if name != "bce" and name in dm:
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
    """Mean validation mAP of every knob candidate (the chosen one in bold)."""
    lines = ["| method | candidates: mean validation mAP |", "|---|---|"]
    for rec in results:
        if len(rec["validation"]) < 2:
            continue
        cells = [(f"**{k}: {v:.3f}**" if k == rec["chosen"] else f"{k}: {v:.3f}")
                 for k, v in rec["validation"].items()]
        lines.append(f"| {rec['label']} | " + ", ".join(cells) + " |")
    return "\n".join(lines)


def candidate_deltas(results: Sequence[dict[str, Any]], method: str, split: str = "val",
                     baseline: str = "bce") -> list[dict[str, Any]]:
    """Per candidate of ``method``: per-seed mAP minus BCE's on ``split`` (diagnostic: which
    sampler settings never hurt). BCE's own candidate is its only one."""
    recs = {r["method"]: r for r in results}
    base = recs[baseline]["candidates"][0][split]
    out = []
    for c in recs[method]["candidates"]:
        d = np.array([a["map"] - b["map"] for a, b in zip(c[split], base)])
        out.append({"label": c["label"], "mean": float(d.mean()),
                    "nonneg": int((d >= 0).sum()), "per_seed": d.tolist(),
                    "images_kept": c["images_kept"]})
    return out


def plan_table(results: Sequence[dict[str, Any]]) -> str:
    """Every resampling candidate against BCE on the same seed, on validation and on test.

    Diagnostic (the chosen rows above are picked on validation only): which plan settings
    never hurt. ``kept``: images the sampler can still draw (mean over seeds).
    """
    names = [r["method"] for r in results if r["method"] in SAMPLER_METHODS]
    if "bce" not in {r["method"] for r in results} or not names:
        return ""
    lines = ["| sampler | candidate | images kept | val mAP - BCE (seeds >= 0) "
             "| test mAP - BCE (seeds >= 0) | test per-seed deltas |",
             "|---|---|---|---|---|---|"]
    label = {r["method"]: r["label"] for r in results}
    for name in names:
        val = candidate_deltas(results, name, "val")
        test = candidate_deltas(results, name, "test")
        for v, t in zip(val, test):
            lines.append(
                f"| {label[name]} | {v['label']} | {np.mean(v['images_kept']):.0f} | "
                f"{100 * v['mean']:+.1f} ({v['nonneg']}/{len(v['per_seed'])}) | "
                f"{100 * t['mean']:+.1f} ({t['nonneg']}/{len(t['per_seed'])}) | "
                + " ".join(f"{100 * x:+.1f}" for x in t["per_seed"]) + " |")
    return "\n".join(lines)


def recipe_table(results: Sequence[dict[str, Any]]) -> str:
    """What each sampler adds to the recipe (paired against the recipe alone, in points)."""
    names = [r["method"] for r in results if r["method"].startswith("recipe+")]
    if "recipe" not in {r["method"] for r in results} or not names:
        return ""
    dm = paired_deltas(results, "map", baseline="recipe")
    dw = paired_deltas(results, "worst_ap", baseline="recipe")
    label = {r["method"]: r["label"] for r in results}
    lines = ["| added to the recipe | mAP - recipe (seeds better) | per-seed "
             "| worst AP - recipe |", "|---|---|---|---|"]
    for n in names:
        d = dm[n]
        lines.append(f"| {label[n]} | {100 * d['mean']:+.1f} ({d['wins']}/{len(d['per_seed'])})"
                     f" | " + " ".join(f"{100 * x:+.1f}" for x in d["per_seed"])
                     + f" | {100 * dw[n]['mean']:+.1f} |")
    return "\n".join(lines)
