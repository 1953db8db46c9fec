"""Long-tailed digits: which remedy helps the rare classes? (Flax NNX + Optax).

scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download) are made long-tailed
on the training split -- class ``c`` keeps ``n_max * imbalance**(-c / 9)`` images, 100 down to
1 at the default imbalance of 100:1 -- while the held-out images give two **balanced** splits:
a validation split (25 per class) on which each method's own knob is chosen, and a test split
(50 per class) that is only scored. A small model (an MLP by default, or a CNN) is trained
with the same budget (steps x batch size) by each method, over several paired seeds, and
evaluated with `jbalance.metrics`: micro accuracy, macro F1 and the recall of the worst class.

The shape follows flax's ``examples/mnist``: this module holds all the logic and can be
imported from a notebook; ``main.py`` is a thin command line. `train_step` is a pure function
``(params, opt_state, key, batch) -> (params, opt_state, loss)``. A method is three choices --
a loss, a batch augmentation and a sampler -- plus its numeric knobs (``tau``, ``gamma``,
``alpha``, margins, DRW start, class weights). The whole run, every seed at once, is one
`jax.jit` of a `jax.lax.scan` over steps under `jax.vmap` over seeds; the loss and the
augmentation are *traced* indices into `jax.lax.switch` and the sampler is traced per-example
probabilities, so every method shares one compiled program (on a 2-core machine, compiling
once instead of once per method is most of the run time saved).
"""

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jbalance import augment, losses, metrics, resample, sampling

NUM_CLASSES = 10

# The three parts of a method. Each is an index into a `lax.switch` (see `_loss` / `_augment`),
# or a choice of per-example sampling probabilities (`_sampling_probs`).
LOSSES = ("ce", "weighted", "focal", "logit_adjusted", "balanced_softmax", "ldam_drw", "ce_drw")
AUGMENTS = ("none", "mixup_partners", "remix")
SAMPLERS = ("instance", "class_balanced", "sqrt", "progressive", "solver")


class Method(NamedTuple):
    """One row of the study: a loss, an augmentation, a sampler and a knob grid.

    ``grid`` pairs the name of each knob chosen on the validation split with its candidate
    values (empty: nothing to choose; several: every combination is tried). ``posthoc`` marks
    post-hoc logit adjustment (Menon et al., eq. 8): the model is plain cross-entropy's, and
    only ``tau`` is chosen.
    """

    label: str
    loss: str = "ce"
    augment: str = "none"
    sampler: str = "instance"
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    posthoc: bool = False


# Method name -> its definition (the table's rows, in order).
METHODS: dict[str, Method] = {
    "ce": Method("cross-entropy (plain)"),
    "weighted_ce": Method("class-weighted CE", "weighted",
                          grid=(("weights", ("inverse_sqrt", "inverse")),)),
    "focal": Method("focal loss", "focal", grid=(("gamma", (1.0, 2.0)),)),
    "logit_adjusted": Method("logit-adjusted CE", "logit_adjusted",
                             grid=(("tau", (0.5, 1.0, 2.0, 3.0)),)),
    "posthoc": Method("post-hoc logit adjustment of plain CE", posthoc=True,
                      grid=(("tau", (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)),)),
    "balanced_softmax": Method("balanced softmax CE", "balanced_softmax"),
    # Our head is a plain linear layer: `scale=1` puts the margin in logit units; (0.5, 30)
    # is the authors' setting, made for a normalised (cosine) head.
    "ldam_drw": Method("LDAM-DRW", "ldam_drw",
                       grid=(("margin,scale", ((0.5, 1.0), (1.0, 1.0), (2.0, 1.0), (4.0, 1.0),
                                               (8.0, 1.0), (0.5, 30.0))),)),
    "ce_drw": Method("CE-DRW (deferred re-weighting)", "ce_drw",
                     grid=(("drw_start", (0.3, 0.5, 0.8)),)),
    "cb_sampling": Method("class-balanced sampling (q=0)", sampler="class_balanced"),
    "sqrt_sampling": Method("square-root sampling (q=0.5)", sampler="sqrt"),
    "progressive": Method("progressive sampling (q=1 -> 0)", sampler="progressive"),
    "remix": Method("Remix", augment="remix", grid=(("alpha", (0.2, 1.0, 2.0)),)),
    "mixup_partners": Method("MixUp, class-aware partners", augment="mixup_partners",
                             grid=(("alpha", (0.2, 1.0)),)),
    "resample": Method("resampling (solver)", sampler="solver"),
    # Combinations of the best single remedies (both knobs chosen together).
    "la_mixup": Method("logit-adjusted CE + class-aware MixUp", "logit_adjusted",
                       "mixup_partners", grid=(("tau", (0.5, 1.0, 2.0)), ("alpha", (0.2, 1.0)))),
    "la_remix": Method("logit-adjusted CE + Remix", "logit_adjusted", "remix",
                       grid=(("tau", (0.5, 1.0, 2.0)), ("alpha", (0.2, 1.0)))),
    "ldam_drw_mixup": Method("LDAM-DRW + class-aware MixUp", "ldam_drw", "mixup_partners",
                             grid=(("margin,scale", ((1.0, 1.0), (2.0, 1.0), (4.0, 1.0))),
                                   ("alpha", (0.2, 1.0)))),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of one training run (hashable: it is a static argument of `jit`).

    The method's knobs below are the defaults; the study overrides the one in the method's
    grid with each candidate value and keeps the best on the validation split.
    """

    method: str = "ce"
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    model: str = "mlp"  # or "cnn"
    # Data.
    imbalance: float = 100.0
    n_max: int = 100
    test_per_class: int = 50
    val_per_class: int = 25
    # Method knobs (defaults).
    weight_method: str = "inverse"
    focal_gamma: float = 2.0
    tau: float = 1.0
    mix_alpha: float = 1.0
    ldam_margin: float = 0.5
    ldam_scale: float = 1.0
    drw_start: float = 0.8  # fraction of `steps`
    max_repeat: int = 4
    solver_lam: float | None = None


# The smoke configuration (tests, `main --smoke`): long enough to beat chance clearly, short
# enough that compiling the one training program dominates the run time.
SMOKE = Config(steps=60, batch_size=16)


# Data -------------------------------------------------------------------------------------

def long_tail_counts(*, n_max: int, imbalance: float, num_classes: int = NUM_CLASSES
                     ) -> np.ndarray:
    r"""Exponential profile ``n_c = round(n_max * imbalance ** (-c / (C - 1)))``, at least 1."""
    c = np.arange(num_classes)
    return np.maximum(1, np.round(n_max * imbalance ** (-c / (num_classes - 1)))).astype(int)


def load_digits_long_tail(seed: int, *, n_max: int = 100, imbalance: float = 100.0,
                          test_per_class: int = 50, val_per_class: int = 25
                          ) -> dict[str, np.ndarray]:
    """The long-tailed train split and the balanced validation and test splits of digits.

    Per class, a seeded permutation gives the first ``test_per_class`` images to the test
    split, the next ``n_c`` to training and the next ``val_per_class`` to validation, so the
    three splits are disjoint and the train and test splits do not depend on
    ``val_per_class``.

    Args:
      seed: Chooses which images of each class go to which split.
      n_max: Training images of the most frequent class (class 0).
      imbalance: Ratio between the most and the least frequent training class.
      test_per_class: Test images per class (balanced).
      val_per_class: Validation images per class (balanced), for choosing knobs.

    Returns:
      ``train_images`` float32 ``[N, 8, 8, 1]`` in ``[0, 1]``, ``train_labels`` int32 ``[N]``,
      ``val_images``, ``val_labels``, ``test_images``, ``test_labels`` and the training
      ``counts`` per class.
    """
    from sklearn.datasets import load_digits  # example extra, bundled data: no download

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int32)
    counts = long_tail_counts(n_max=n_max, imbalance=imbalance)
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        need = test_per_class + counts[c] + val_per_class
        if len(idx) < need:
            raise ValueError(f"class {c} has {len(idx)} images; need {test_per_class} + "
                             f"{counts[c]} + {val_per_class}: lower `n_max`, "
                             f"`test_per_class` or `val_per_class`.")
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:test_per_class + counts[c]])
        val.append(idx[test_per_class + counts[c]:need])
    train_idx, val_idx, test_idx = map(np.concatenate, (train, val, test))
    return {
        "train_images": images[train_idx], "train_labels": labels[train_idx],
        "val_images": images[val_idx], "val_labels": labels[val_idx],
        "test_images": images[test_idx], "test_labels": labels[test_idx],
        "counts": np.bincount(labels[train_idx], minlength=NUM_CLASSES),
    }


# Model ------------------------------------------------------------------------------------

class CNN(nnx.Module):
    """Two 3x3 convolutions and a linear read-out: ~10k parameters at width 16."""

    def __init__(self, num_classes: int = NUM_CLASSES, *, width: int = 16, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, width, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, (3, 3), strides=(2, 2), rngs=rngs)
        self.head = nnx.Linear(4 * 4 * 2 * width, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        return self.head(x.reshape(x.shape[0], -1))


class MLP(nnx.Module):
    """Two hidden ReLU layers on the 64 flattened pixels: ~26k parameters at width 16.

    The study's default model: on a CPU, XLA runs these matmuls tens of times faster than
    the CNN's small convolutions, which is what makes 5 seeds x every method x a knob grid
    affordable on a 2-core machine.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, *, width: int = 16, rngs: nnx.Rngs):
        self.hidden1 = nnx.Linear(64, 8 * width, rngs=rngs)
        self.hidden2 = nnx.Linear(8 * width, 8 * width, rngs=rngs)
        self.head = nnx.Linear(8 * width, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.hidden1(x.reshape(x.shape[0], -1)))
        x = nnx.relu(self.hidden2(x))
        return self.head(x)


MODELS = {"mlp": MLP, "cnn": CNN}


def make_model(cfg_or_model: Any, *, width: int, rngs: nnx.Rngs) -> nnx.Module:
    name = getattr(cfg_or_model, "model", cfg_or_model)
    return MODELS[name](width=width, rngs=rngs)


@functools.cache
def _graphdef(width: int, model: str = "mlp") -> Any:
    # The module's structure (static); parameters travel separately as a pytree.
    abstract = nnx.eval_shape(lambda: make_model(model, width=width, rngs=nnx.Rngs(0)))
    return nnx.split(abstract, nnx.Param)[0]


def apply_model(params: Any, images: jax.Array, *, width: int, model: str = "mlp"
                ) -> jax.Array:
    """Logits ``[B, 10]`` of the model with ``params`` on ``images`` ``[B, 8, 8, 1]``."""
    return nnx.merge(_graphdef(width, model), params)(images)


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
    return optax.adamw(schedule, weight_decay=cfg.weight_decay)


@functools.partial(jax.jit, static_argnames=("width", "model"))
def init_params(key: jax.Array, *, width: int, model: str = "mlp") -> Any:
    """Fresh parameters (jitted once per model and width: one compiled call)."""
    return nnx.split(make_model(model, width=width, rngs=nnx.Rngs(params=key)), nnx.Param)[1]


def init_state(key: jax.Array, cfg: Config) -> tuple[Any, Any]:
    """Fresh ``(params, opt_state)``."""
    params = init_params(key, width=cfg.width, model=cfg.model)
    with jax.numpy_dtype_promotion("standard"):
        return params, make_optimizer(cfg).init(params)


# Methods ----------------------------------------------------------------------------------

def knobs_for(cfg: Config, counts: np.ndarray, **overrides: Any) -> dict[str, jax.Array]:
    """The numeric knobs of a run as a pytree of arrays (all traced, none static).

    ``overrides`` maps a grid name of `Method` (``"tau"``, ``"alpha"``, ``"gamma"``,
    ``"weights"``, ``"margin,scale"``, ``"drw_start"``) to one candidate value.
    """
    cfg = dataclasses.replace(cfg, **{
        {"tau": "tau", "alpha": "mix_alpha", "gamma": "focal_gamma",
         "weights": "weight_method", "drw_start": "drw_start"}[k]: v
        for k, v in overrides.items() if k != "margin,scale"})
    margin, scale = overrides.get("margin,scale", (cfg.ldam_margin, cfg.ldam_scale))
    c = jnp.asarray(counts, jnp.float32)
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    return {
        "class_weights": losses.class_weights(c, method=cfg.weight_method),
        # Class-aware partners: a class is drawn as a partner in proportion to its inverse
        # frequency, i.e. every class equally often.
        "partner_weights": losses.class_weights(c, method="inverse"),
        "counts": c,
        "log_prior": losses.log_prior(c),
        "tau": f32(cfg.tau), "gamma": f32(cfg.focal_gamma), "alpha": f32(cfg.mix_alpha),
        "margin": f32(margin), "scale": f32(scale),
        # An int32 step count, like the step it is compared with.
        "drw_start": jnp.asarray(math.floor(cfg.drw_start * cfg.steps), jnp.int32),
    }


def _augment(kind: jax.Array, key: jax.Array, images: jax.Array, labels: jax.Array,
             knobs: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Images and soft targets ``[B, 10]``, by the traced index ``kind`` into `AUGMENTS`."""
    targets = jax.nn.one_hot(labels, NUM_CLASSES, dtype=images.dtype)

    def none() -> tuple[jax.Array, jax.Array]:
        # The same pytree as the augmentations' `Mixed` results, as lax.switch requires.
        return augment.Mixed(images, targets)

    def mixup_partners() -> tuple[jax.Array, jax.Array]:
        # Rare classes are mixed in as partners far more often than their frequency.
        return augment.mixup(key, images, targets, alpha=knobs["alpha"],
                             partner_weights=knobs["partner_weights"][labels])

    def remix() -> tuple[jax.Array, jax.Array]:
        # Random partners (Chou et al.); the label leans to the rarer class of the pair.
        return augment.remix(key, images, targets, counts=knobs["counts"],
                             alpha=knobs["alpha"])

    return jax.lax.switch(kind, (none, mixup_partners, remix))


def _loss(kind: jax.Array, logits: jax.Array, labels: jax.Array, targets: jax.Array,
          step: jax.Array, knobs: dict[str, jax.Array]) -> jax.Array:
    """Per-example loss ``[B]`` by the traced index ``kind`` into `LOSSES`.

    ``labels`` are the int classes of the (unmixed) batch, ``targets`` the possibly mixed
    soft labels; the losses that take probability labels get ``targets``.
    """
    counts = knobs["counts"]

    def drw() -> jax.Array:
        # DRW (Cao et al.): ones until `drw_start`, effective-number weights from then on.
        sched = losses.deferred_reweighting(counts, start_step=knobs["drw_start"])
        return sched(step)

    branches: tuple[Callable[[], jax.Array], ...] = (
        lambda: optax.softmax_cross_entropy(logits, targets),
        lambda: losses.weighted_softmax_cross_entropy(
            logits, targets, class_weights=knobs["class_weights"]),
        lambda: losses.softmax_focal_loss(logits, labels, gamma=knobs["gamma"]),
        lambda: losses.logit_adjusted_cross_entropy(
            logits, targets, log_prior=knobs["log_prior"], tau=knobs["tau"]),
        lambda: losses.balanced_softmax_cross_entropy(logits, targets, counts=counts),
        # LDAM takes the int class: with a mixing augmentation, the larger share's class.
        lambda: losses.ldam_loss(logits, jnp.argmax(targets, -1), counts=counts,
                                 max_margin=knobs["margin"], scale=knobs["scale"],
                                 class_weights=drw()),
        lambda: losses.weighted_softmax_cross_entropy(logits, targets, class_weights=drw()),
    )
    return jax.lax.switch(kind, branches)


def _objective(params: Any, images: jax.Array, labels: jax.Array, key: jax.Array,
               step: jax.Array, ids: jax.Array, knobs: dict[str, jax.Array], *, width: int,
               model: str) -> jax.Array:
    images, targets = _augment(ids[1], key, images, labels, knobs)
    logits = apply_model(params, images, width=width, model=model)
    return jnp.mean(_loss(ids[0], logits, labels, targets, step, knobs))


def method_ids(method: str) -> jax.Array:
    """``[loss, augment]`` indices of ``method`` into `LOSSES` and `AUGMENTS` (int32)."""
    m = METHODS[method]
    return jnp.asarray([LOSSES.index(m.loss), AUGMENTS.index(m.augment)], jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnums=(0, 1))
def train_step(params: Any, opt_state: Any, key: jax.Array, batch: dict[str, jax.Array], *,
               cfg: Config) -> tuple[Any, Any, jax.Array]:
    """One optimisation step: augment and loss (per ``cfg.method``), gradient, AdamW update.

    Args:
      params: The CNN parameters (an `nnx.State` pytree).
      opt_state: The optax state.
      key: PRNG key for the batch augmentation.
      batch: ``image`` float32 ``[B, 8, 8, 1]`` and ``label`` int32 ``[B]``; optional
        ``knobs`` (`knobs_for`; default: ``cfg``'s knobs at the digits' class totals) and
        ``step`` (for the DRW schedules; default 0).
      cfg: The run's configuration (static).

    Returns:
      New ``(params, opt_state)`` and the mean training loss.
    """
    knobs = batch.get("knobs")
    if knobs is None:
        knobs = knobs_for(cfg, long_tail_counts(n_max=cfg.n_max, imbalance=cfg.imbalance))
    step = batch.get("step", jnp.zeros((), jnp.int32))
    loss, grads = jax.value_and_grad(_objective)(
        params, batch["image"], batch["label"], key, step, method_ids(cfg.method), knobs,
        width=cfg.width, model=cfg.model)
    # optax mixes int32 step counts with floats; allow that even when the caller (our test
    # suite) turns on strict promotion, which still applies to jbalance's own code above.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = make_optimizer(cfg).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _sampling_probs(method: str, labels: np.ndarray, cfg: Config) -> np.ndarray:
    """Per-example probabilities ``[N]`` that batches are drawn with (`jbalance.sampling`).

    The solver's plan (`jbalance.resample.solve`: a repeat count per image) becomes the
    probabilities of drawing uniformly from its index list, ``repeats / sum(repeats)``.
    ``progressive`` starts from instance-balanced sampling (it changes with the step).
    """
    sampler = METHODS[method].sampler
    y = jnp.asarray(labels)
    if sampler == "solver":
        onehot = np.eye(NUM_CLASSES, dtype=np.int32)[labels]
        kwargs = {} if cfg.solver_lam is None else {"lam": cfg.solver_lam}
        repeats = np.asarray(resample.solve(onehot, max_repeat=cfg.max_repeat,
                                            **kwargs).repeats, np.float32)
        return repeats / repeats.sum()
    q = {"instance": 1.0, "progressive": 1.0, "class_balanced": 0.0, "sqrt": 0.5}[sampler]
    return np.asarray(sampling.class_balanced_probs(y, num_classes=NUM_CLASSES, q=q),
                      np.float32)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _train_seeds(keys: jax.Array, data: dict[str, jax.Array], ids: jax.Array,
                 progressive: jax.Array, knobs: dict[str, jax.Array], *, cfg: Config
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Trains one model per seed (leading axis of ``keys`` and ``data``) and scores it.

    The method enters only through traced values (``ids``, ``progressive``, ``knobs``), so
    this compiles once per ``(cfg, number of seeds)`` for every method.

    Returns:
      Validation logits ``[S, Nv, 10]``, test logits ``[S, Nt, 10]`` and final losses ``[S]``.
    """
    opt = make_optimizer(cfg)

    def one_seed(key: jax.Array, d: dict[str, jax.Array]
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        k_init, k_run = jax.random.split(key)
        params = nnx.split(make_model(cfg, width=cfg.width, rngs=nnx.Rngs(params=k_init)),
                           nnx.Param)[1]
        with jax.numpy_dtype_promotion("standard"):
            opt_state = opt.init(params)

        def body(carry: tuple[Any, Any], xs: tuple[jax.Array, jax.Array]
                 ) -> tuple[tuple[Any, Any], jax.Array]:
            params, opt_state = carry
            step, k = xs
            k_batch, k_aug = jax.random.split(k)
            progress = step.astype(jnp.float32) / cfg.steps
            probs = jax.lax.cond(
                progressive,
                lambda: sampling.progressive_probs(d["train_labels"],
                                                   num_classes=NUM_CLASSES,
                                                   progress=progress),
                lambda: d["probs"])
            pick = sampling.sample_indices(k_batch, probs, cfg.batch_size)
            loss, grads = jax.value_and_grad(_objective)(
                params, d["train_images"][pick], d["train_labels"][pick], k_aug, step, ids,
                knobs, width=cfg.width, model=cfg.model)
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        steps = jnp.arange(cfg.steps, dtype=jnp.int32)
        (params, _), loss = jax.lax.scan(body, (params, opt_state),
                                         (steps, jax.random.split(k_run, cfg.steps)))
        return (apply_model(params, d["val_images"], width=cfg.width, model=cfg.model),
                apply_model(params, d["test_images"], width=cfg.width, model=cfg.model),
                loss[-1])

    return jax.vmap(one_seed)(keys, data)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _reports(labels: jax.Array, logits: jax.Array, *, num_classes: int
             ) -> dict[str, jax.Array]:
    return jax.vmap(functools.partial(metrics.classification_report,
                                      num_classes=num_classes))(labels, logits)


def scores(labels: np.ndarray | jax.Array, logits: jax.Array) -> list[dict[str, Any]]:
    """Micro accuracy, macro F1, balanced accuracy, worst-class and per-class recall, per seed.

    ``labels`` ``[S, N]`` and ``logits`` ``[S, N, 10]`` (`jbalance.metrics`).
    """
    r = _reports(jnp.asarray(labels), logits, num_classes=NUM_CLASSES)
    keys = ("accuracy", "macro_f1", "balanced_accuracy", "worst_class_recall")
    out = []
    for s in range(logits.shape[0]):
        row = {k: float(r[k][s]) for k in keys}
        row["per_class_recall"] = np.asarray(r["per_class_recall"][s]).tolist()
        out.append(row)
    return out


def evaluate(params: Any, images: np.ndarray, labels: np.ndarray, cfg: Config
             ) -> dict[str, float]:
    """Micro accuracy, macro F1, balanced accuracy and worst-class recall on one split."""
    logits = apply_model(params, jnp.asarray(images), width=cfg.width, model=cfg.model)
    return scores(np.asarray(labels)[None], logits[None])[0]


def stack_seeds(seeds: Sequence[int], cfg: Config) -> dict[str, np.ndarray]:
    """Every seed's splits, stacked on a leading seed axis (all seeds have the same sizes)."""
    per_seed = [load_digits_long_tail(s, n_max=cfg.n_max, imbalance=cfg.imbalance,
                                      test_per_class=cfg.test_per_class,
                                      val_per_class=cfg.val_per_class) for s in seeds]
    return {k: np.stack([d[k] for d in per_seed]) for k in per_seed[0]}


def _grid(method: str) -> list[tuple[str, dict[str, Any]]]:
    """``(label, overrides)`` for each candidate knob value of ``method`` (one if no grid)."""
    m = METHODS[method]
    if not m.grid:
        return [("--", {})]
    names = [name for name, _ in m.grid]
    out = []
    for values in itertools.product(*(v for _, v in m.grid)):
        over = dict(zip(names, values))
        out.append((", ".join(f"{k}={v}" for k, v in over.items()), over))
    return out


def run_method(method: str, seeds: Sequence[int], cfg: Config,
               data: dict[str, np.ndarray] | None = None,
               cache: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains ``method`` for every seed and every knob candidate; chooses the knob on the
    balanced validation split (mean macro F1 over seeds); scores the choice on the test split.

    Returns ``{"method", "chosen", "validation": {knob: mean val macro F1}, "runs": [per-seed
    test metrics], "seconds"}``. ``cache`` (optional) keeps plain CE's logits for post-hoc
    adjustment.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}; got {method!r}.")
    m = METHODS[method]
    cfg = dataclasses.replace(cfg, method=method)
    if data is None:
        data = stack_seeds(seeds, cfg)
    cache = {} if cache is None else cache
    counts = data["counts"][0]
    t0 = time.perf_counter()
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    candidates = []  # (label, val logits, test logits, final loss)
    if m.posthoc:
        if "ce" not in cache:
            cache["ce"] = run_method("ce", seeds, cfg, data, cache)["_logits"]
        val_ce, test_ce, loss = cache["ce"]
        prior = losses.log_prior(jnp.asarray(counts, jnp.float32))
        for label, over in _grid(method):
            tau = jnp.float32(over["tau"])
            candidates.append((label, losses.adjust_logits(val_ce, prior, tau=tau),
                               losses.adjust_logits(test_ce, prior, tau=tau), loss))
    else:
        probs = np.stack([_sampling_probs(method, y, cfg) for y in data["train_labels"]])
        jdata = {"train_images": data["train_images"], "train_labels": data["train_labels"],
                 "probs": probs, "val_images": data["val_images"],
                 "test_images": data["test_images"]}
        jdata = jax.tree.map(jnp.asarray, jdata)
        for label, over in _grid(method):
            out = _train_seeds(keys, jdata, method_ids(method),
                               jnp.asarray(m.sampler == "progressive"),
                               knobs_for(cfg, counts, **over), cfg=dataclasses.replace(
                                   cfg, method="ce"))  # one compile for every method
            candidates.append((label, *out))
    val = {label: float(np.mean([r["macro_f1"] for r in scores(data["val_labels"], v)]))
           for label, v, _, _ in candidates}
    best = max(range(len(candidates)), key=lambda i: val[candidates[i][0]])
    label, v, t, loss = candidates[best]
    runs = scores(data["test_labels"], t)
    for s, r in zip(seeds, runs):
        r.update(method=method, seed=int(s))
    for r, lo in zip(runs, np.asarray(loss)):
        r["final_loss"] = float(lo)
    out = {"method": method, "chosen": label, "validation": val, "runs": runs,
           "seconds": time.perf_counter() - t0}
    if method == "ce":
        cache["ce"] = (v, t, loss)
        out["_logits"] = cache["ce"]
    return out


# The study --------------------------------------------------------------------------------

def run_study(methods: Sequence[str], seeds: Sequence[int], base: Config = Config(),
              log: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Runs every method on every seed with the same budget; returns one record per method.

    Each record: ``method``, ``chosen`` (the knob value that won on validation),
    ``validation`` (mean validation macro F1 of every candidate), ``runs`` (per-seed test
    metrics of the chosen value) and ``seconds``.
    """
    data = stack_seeds(seeds, base)
    cache: dict[str, Any] = {}
    results = []
    for method in methods:
        rec = run_method(method, seeds, base, data, cache)
        rec.pop("_logits", None)
        results.append(rec)
        if log is not None:
            s = summarize(results)[method]
            log(f"{method:16s} {rec['chosen']:22s} acc {s['accuracy'][0]:.3f} "
                f"macroF1 {s['macro_f1'][0]:.3f} worst {s['worst_class_recall'][0]:.3f} "
                f"({rec['seconds']:.1f}s)")
    return results


def _runs(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for rec in results for r in rec["runs"]]


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation over seeds for each method."""
    out: dict[str, dict[str, Any]] = {}
    for rec in results:
        s: dict[str, Any] = {"seeds": len(rec["runs"]), "chosen": rec["chosen"]}
        for k in ("accuracy", "macro_f1", "worst_class_recall", "balanced_accuracy"):
            v = np.array([r[k] for r in rec["runs"]])
            s[k] = (float(v.mean()), float(v.std()))
        out[rec["method"]] = s
    return out


def paired_deltas(results: Sequence[dict[str, Any]], key: str = "macro_f1",
                  baseline: str = "ce") -> dict[str, tuple[float, float, int]]:
    """Per method: mean and std over seeds of ``key`` minus the baseline's on the same seed,
    and on how many seeds the method beat the baseline.

    Seeds share the data split, so the paired difference removes the split-to-split variance
    that dominates the unpaired standard deviations.
    """
    runs = _runs(results)
    base = {r["seed"]: r[key] for r in runs if r["method"] == baseline}
    out = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        d = np.array([r[key] - base[r["seed"]] for r in runs
                      if r["method"] == method and r["seed"] in base])
        if len(d):
            out[method] = (float(d.mean()), float(d.std()), int((d > 0).sum()))
    return out


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """The results as a markdown table (mean +- std over seeds, paired gains over plain CE)."""
    summary = summarize(results)
    deltas = {k: paired_deltas(results, k)
              for k in ("accuracy", "macro_f1", "worst_class_recall")}
    lines = ["| method | knob (chosen on validation) | micro accuracy | macro F1 "
             "| worst-class recall | macro F1 - plain CE (paired) | accuracy - plain CE "
             "| worst recall - plain CE | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, s in summary.items():
        name = METHODS[method].label if method in METHODS else method
        cells = [s["chosen"]] + [f"{s[k][0]:.3f} ± {s[k][1]:.3f}"
                                 for k in ("accuracy", "macro_f1", "worst_class_recall")]
        if method != "ce" and method in deltas["macro_f1"]:
            mean, std, wins = deltas["macro_f1"][method]
            cells.append(f"{mean:+.3f} ± {std:.3f} (better on {wins}/{s['seeds']})")
            cells += [f"{deltas[k][method][0]:+.3f}"
                      for k in ("accuracy", "worst_class_recall")]
        else:
            cells += ["--", "--", "--"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['seeds']} |")
    return "\n".join(lines)


def validation_table(results: Sequence[dict[str, Any]]) -> str:
    """Mean validation macro F1 of every knob candidate (the chosen one in bold)."""
    lines = ["| method | candidates: mean validation macro F1 |", "|---|---|"]
    for rec in results:
        if len(rec["validation"]) < 2:
            continue
        cells = [(f"**{k}: {v:.3f}**" if k == rec["chosen"] else f"{k}: {v:.3f}")
                 for k, v in rec["validation"].items()]
        name = METHODS[rec["method"]].label if rec["method"] in METHODS else rec["method"]
        lines.append(f"| {name} | " + ", ".join(cells) + " |")
    return "\n".join(lines)
