"""Long-tailed digits: does balancing help the rare classes? (Flax NNX + Optax).

scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download) are made long-tailed
on the training split -- class ``c`` keeps ``n_max * imbalance**(-c / 9)`` images, 100 down to
1 at the default imbalance of 100:1 -- while the test split stays balanced (50 per class), so
the test metrics weigh every class the same. A small CNN is trained with the same budget
(steps x batch size) by each method, over several seeds, and evaluated with
`jbalance.metrics`: micro accuracy, macro F1 and the recall of the worst class.

The shape follows flax's ``examples/mnist``: this module holds all the logic and can be
imported from a notebook; ``main.py`` is a thin command line. `train_step` is a pure function
``(params, opt_state, key, batch) -> (params, opt_state, loss)`` under `jax.jit`; the method
(static, in `Config`) decides the loss and the batch augmentation, and the sampler decides
which training examples the batches are drawn from.
"""

import dataclasses
import functools
import importlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jbalance import metrics

NUM_CLASSES = 10

# Method name -> one-line description (the table's row labels).
METHODS: dict[str, str] = {
    "ce": "cross-entropy (plain)",
    "weighted_ce": "class-weighted cross-entropy",
    "focal": "focal loss (gamma=2)",
    "mixup": "MixUp",
    "cutmix": "CutMix",
    "mosaic": "Mosaic (4 tiles, crops kept in place)",
    "mosaic_corner": "Mosaic (4 tiles, YOLO corner placement)",
    "mixup_partners": "MixUp, class-aware partners",
    "resample": "resampling (solver)",
    "resample_weighted": "resampling (solver) + class weights",
}

# The jbalance modules each method needs (plain cross-entropy needs none: it is the baseline,
# written with optax alone).
REQUIRES: dict[str, tuple[str, ...]] = {
    "ce": (),
    "weighted_ce": ("losses",),
    "focal": ("losses",),
    "mixup": ("augment",),
    "cutmix": ("augment",),
    "mosaic": ("augment",),
    "mosaic_corner": ("augment",),
    "mixup_partners": ("augment",),
    "resample": ("resample",),
    "resample_weighted": ("resample", "losses"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of one training run (hashable: it is a static argument of `jit`)."""

    method: str = "ce"
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    # Data.
    imbalance: float = 100.0
    n_max: int = 100
    test_per_class: int = 50
    # Method options.
    weight_method: str = "inverse"
    focal_gamma: float = 2.0
    mix_alpha: float = 1.0
    mosaic_tiles: int = 4
    max_repeat: int = 4
    solver_lam: float | None = None


# The smoke configuration (tests, `main --smoke`): long enough to beat chance clearly, short
# enough that compiling one `train_step` per method dominates the run time.
SMOKE = Config(steps=60, batch_size=16)


# Data -------------------------------------------------------------------------------------

def long_tail_counts(*, n_max: int, imbalance: float, num_classes: int = NUM_CLASSES
                     ) -> np.ndarray:
    r"""Exponential profile ``n_c = round(n_max * imbalance ** (-c / (C - 1)))``, at least 1."""
    c = np.arange(num_classes)
    return np.maximum(1, np.round(n_max * imbalance ** (-c / (num_classes - 1)))).astype(int)


def load_digits_long_tail(seed: int, *, n_max: int = 100, imbalance: float = 100.0,
                          test_per_class: int = 50) -> dict[str, np.ndarray]:
    """The long-tailed train split and the balanced test split of sklearn's digits.

    Args:
      seed: Chooses which images of each class go to the test and training splits.
      n_max: Training images of the most frequent class (class 0).
      imbalance: Ratio between the most and the least frequent training class.
      test_per_class: Test images per class (balanced).

    Returns:
      ``train_images`` float32 ``[N, 8, 8, 1]`` in ``[0, 1]``, ``train_labels`` int32 ``[N]``,
      ``test_images``, ``test_labels`` and the training ``counts`` per class.
    """
    from sklearn.datasets import load_digits  # example extra, bundled data: no download

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int32)
    counts = long_tail_counts(n_max=n_max, imbalance=imbalance)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < test_per_class + counts[c]:
            raise ValueError(f"class {c} has {len(idx)} images; need {test_per_class} + "
                             f"{counts[c]}: lower `n_max` or `test_per_class`.")
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:test_per_class + counts[c]])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    return {
        "train_images": images[train_idx], "train_labels": labels[train_idx],
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


@functools.lru_cache(maxsize=None)
def _graphdef(width: int) -> Any:
    # The module's structure (static); parameters travel separately as a pytree.
    abstract = nnx.eval_shape(lambda: CNN(width=width, rngs=nnx.Rngs(0)))
    return nnx.split(abstract, nnx.Param)[0]


def apply_model(params: Any, images: jax.Array, *, width: int) -> jax.Array:
    """Logits ``[B, 10]`` of the CNN with ``params`` on ``images`` ``[B, 8, 8, 1]``."""
    return nnx.merge(_graphdef(width), params)(images)


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
    return optax.adamw(schedule, weight_decay=cfg.weight_decay)


@functools.partial(jax.jit, static_argnames=("width",))
def init_params(key: jax.Array, *, width: int) -> Any:
    """Fresh CNN parameters (jitted once per width: one compiled call, not many eager ops)."""
    return nnx.split(CNN(width=width, rngs=nnx.Rngs(params=key)), nnx.Param)[1]


def init_state(key: jax.Array, cfg: Config) -> tuple[Any, Any]:
    """Fresh ``(params, opt_state)``."""
    params = init_params(key, width=cfg.width)
    with jax.numpy_dtype_promotion("standard"):
        return params, make_optimizer(cfg).init(params)


# Methods ----------------------------------------------------------------------------------

def pending_methods() -> dict[str, str]:
    """Methods whose jbalance module does not import yet -> the reason."""
    out = {}
    for method, modules in REQUIRES.items():
        for name in modules:
            try:
                importlib.import_module(f"jbalance.{name}")
            except ImportError as e:
                out[method] = f"jbalance.{name} not available ({e})"
                break
    return out


def class_weights_for(counts: np.ndarray, cfg: Config) -> np.ndarray:
    """Per-class loss weights from training class totals (`jbalance.losses.class_weights`)."""
    from jbalance import losses

    w = losses.class_weights(jnp.asarray(counts, jnp.float32), method=cfg.weight_method)
    return np.asarray(w, np.float32)


def sampling_pool(data: dict[str, np.ndarray], cfg: Config) -> np.ndarray:
    """The index list batches are drawn from, uniformly: the training set or its resampling.

    For the resampling methods the solver picks a repeat count per image (0 drops it, k keeps
    k copies) and `jbalance.resample.indices` expands it into the index list a data loader
    would iterate over.
    """
    n = len(data["train_labels"])
    if not cfg.method.startswith("resample"):
        return np.arange(n, dtype=np.int32)
    from jbalance import resample

    onehot = np.eye(NUM_CLASSES, dtype=np.int32)[data["train_labels"]]
    kwargs = {} if cfg.solver_lam is None else {"lam": cfg.solver_lam}
    sol = resample.solve(onehot, max_repeat=cfg.max_repeat, **kwargs)
    return np.asarray(resample.indices(sol.repeats), np.int32)


def _soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy(logits, targets.astype(logits.dtype))


def augment_and_loss(cfg: Config, key: jax.Array, batch: dict[str, jax.Array]
                     ) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """Augments the batch for ``cfg.method``; returns images and the per-example loss."""
    images, labels = batch["image"], batch["label"]
    targets = jax.nn.one_hot(labels, NUM_CLASSES, dtype=images.dtype)
    method = cfg.method
    if method in ("mixup", "cutmix", "mosaic", "mosaic_corner", "mixup_partners"):
        from jbalance import augment

        if method == "mixup":
            images, targets = augment.mixup(key, images, targets, alpha=cfg.mix_alpha)
        elif method == "cutmix":
            images, targets = augment.cutmix(key, images, targets, alpha=cfg.mix_alpha)
        elif method == "mosaic":
            # Each tile shows the part of its source that lies under it, so a digit's strokes
            # stay where a test digit has them.
            images, targets = augment.mosaic(key, images, targets, tiles=cfg.mosaic_tiles,
                                             placement="same")
        elif method == "mosaic_corner":
            # The detection default (YOLOv4, ultralytics): each tile is the crop of its source
            # nearest the mosaic centre, i.e. strokes move to another part of the image.
            images, targets = augment.mosaic(key, images, targets, tiles=cfg.mosaic_tiles,
                                             placement="corner")
        else:
            # Class-aware partners: an example of class c is drawn as a partner with
            # probability proportional to its class weight, so rare classes are mixed in
            # far more often than their frequency.
            partner = batch["class_weights"][labels]
            images, targets = augment.mixup(key, images, targets, alpha=cfg.mix_alpha,
                                            partner_weights=partner)

    if method in ("weighted_ce", "resample_weighted"):
        from jbalance import losses

        w = batch["class_weights"]

        def loss_fn(logits: jax.Array) -> jax.Array:
            return losses.weighted_softmax_cross_entropy(logits, labels, class_weights=w)
    elif method == "focal":
        from jbalance import losses

        def loss_fn(logits: jax.Array) -> jax.Array:
            return losses.softmax_focal_loss(logits, labels, gamma=cfg.focal_gamma)
    else:
        def loss_fn(logits: jax.Array) -> jax.Array:
            return _soft_cross_entropy(logits, targets)
    return images, loss_fn


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnums=(0, 1))
def train_step(params: Any, opt_state: Any, key: jax.Array, batch: dict[str, jax.Array], *,
               cfg: Config) -> tuple[Any, Any, jax.Array]:
    """One optimisation step: augment (per ``cfg.method``), loss, gradient, AdamW update.

    Args:
      params: The CNN parameters (an `nnx.State` pytree).
      opt_state: The optax state.
      key: PRNG key for the batch augmentation.
      batch: ``image`` float32 ``[B, 8, 8, 1]``, ``label`` int32 ``[B]`` and
        ``class_weights`` float32 ``[10]`` (used by the weighted methods and class-aware
        partners; ignored otherwise).
      cfg: The run's configuration (static).

    Returns:
      New ``(params, opt_state)`` and the mean training loss.
    """
    images, loss_fn = augment_and_loss(cfg, key, batch)

    def objective(p: Any) -> jax.Array:
        logits = apply_model(p, images, width=cfg.width)
        return jnp.mean(loss_fn(logits))

    loss, grads = jax.value_and_grad(objective)(params)
    # optax mixes int32 step counts with floats; allow that even when the caller (our test
    # suite) turns on strict promotion, which still applies to jbalance's own code above.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = make_optimizer(cfg).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnames=("batch_size",))
def sample_batch(key: jax.Array, pool: jax.Array, images: jax.Array, labels: jax.Array, *,
                 batch_size: int) -> dict[str, jax.Array]:
    """Draws ``batch_size`` examples uniformly (with replacement) from the index ``pool``."""
    pick = pool[jax.random.randint(key, (batch_size,), 0, pool.shape[0])]
    return {"image": images[pick], "label": labels[pick]}


@functools.partial(jax.jit, static_argnames=("width",))
def _test_report(params: Any, images: jax.Array, labels: jax.Array, *, width: int
                 ) -> dict[str, jax.Array]:
    logits = apply_model(params, images, width=width)
    return metrics.classification_report(labels, logits, num_classes=NUM_CLASSES)


def evaluate(params: Any, images: np.ndarray, labels: np.ndarray, cfg: Config
             ) -> dict[str, float]:
    """Micro accuracy, macro F1, balanced accuracy and worst-class recall on a test split."""
    r = _test_report(params, jnp.asarray(images), jnp.asarray(labels), width=cfg.width)
    keys = ("accuracy", "macro_f1", "balanced_accuracy", "worst_class_recall")
    out = {k: float(r[k]) for k in keys}
    out["per_class_recall"] = np.asarray(r["per_class_recall"]).tolist()
    return out


def train_and_evaluate(cfg: Config, seed: int,
                       data: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Trains one model with ``cfg`` and seed ``seed``; returns test metrics and timings.

    The seed fixes the data split, the initialisation, the batches and the augmentation.
    """
    if cfg.method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}; got {cfg.method!r}.")
    pending = pending_methods()
    if cfg.method in pending:
        raise RuntimeError(f"method {cfg.method!r} is pending: {pending[cfg.method]}")
    if data is None:
        data = load_digits_long_tail(seed, n_max=cfg.n_max, imbalance=cfg.imbalance,
                                     test_per_class=cfg.test_per_class)
    t0 = time.perf_counter()
    pool = sampling_pool(data, cfg)
    sampled_counts = np.bincount(data["train_labels"][pool], minlength=NUM_CLASSES)
    needs_weights = cfg.method in ("weighted_ce", "resample_weighted", "mixup_partners")
    # Weights follow the class totals the model actually sees (after resampling).
    weights = (class_weights_for(sampled_counts, cfg) if needs_weights
               else np.ones(NUM_CLASSES, np.float32))
    images = jnp.asarray(data["train_images"])
    labels = jnp.asarray(data["train_labels"])
    pool_j, weights_j = jnp.asarray(pool), jnp.asarray(weights)

    key = jax.random.key(seed)
    key, init_key = jax.random.split(key)
    params, opt_state = init_state(init_key, cfg)
    loss = jnp.zeros(())
    # All step keys at once: one dispatch instead of one split per step.
    step_keys = jax.random.split(key, (cfg.steps, 2))
    for k_batch, k_aug in step_keys:
        batch = sample_batch(k_batch, pool_j, images, labels, batch_size=cfg.batch_size)
        batch["class_weights"] = weights_j
        params, opt_state, loss = train_step(params, opt_state, k_aug, batch, cfg=cfg)
    result = evaluate(params, data["test_images"], data["test_labels"], cfg)
    result.update(method=cfg.method, seed=seed, final_loss=float(loss),
                  seconds=time.perf_counter() - t0, sampled_counts=sampled_counts.tolist(),
                  pool_size=int(len(pool)))
    return result


# The study --------------------------------------------------------------------------------

def run_study(methods: Sequence[str], seeds: Sequence[int], base: Config = Config(),
              log: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Trains every (method, seed) pair with the same budget; returns one result per run.

    A method whose jbalance module is not available yet gets a row ``{"pending": reason}``
    instead of numbers.
    """
    pending = pending_methods()
    results = []
    for seed in seeds:
        data = load_digits_long_tail(seed, n_max=base.n_max, imbalance=base.imbalance,
                                     test_per_class=base.test_per_class)
        for method in methods:
            if method in pending:
                results.append({"method": method, "seed": seed, "pending": pending[method]})
                continue
            r = train_and_evaluate(dataclasses.replace(base, method=method), seed, data)
            results.append(r)
            if log is not None:
                log(f"seed {seed} {method:18s} acc {r['accuracy']:.3f} "
                    f"macroF1 {r['macro_f1']:.3f} worst {r['worst_class_recall']:.3f} "
                    f"({r['seconds']:.1f}s)")
    return results


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation over seeds for each method."""
    out: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(r["method"] for r in results):
        rows = [r for r in results if r["method"] == method]
        if any("pending" in r for r in rows):
            out[method] = {"pending": rows[0]["pending"]}
            continue
        s: dict[str, Any] = {"seeds": len(rows)}
        for k in ("accuracy", "macro_f1", "worst_class_recall", "balanced_accuracy"):
            v = np.array([r[k] for r in rows])
            s[k] = (float(v.mean()), float(v.std()))
        out[method] = s
    return out


def paired_deltas(results: Sequence[dict[str, Any]], key: str = "macro_f1",
                  baseline: str = "ce") -> dict[str, tuple[float, float, int]]:
    """Per method: mean and std over seeds of ``key`` minus the baseline's on the same seed,
    and on how many seeds the method beat the baseline.

    Seeds share the data split, so the paired difference removes the split-to-split variance
    that dominates the unpaired standard deviations.
    """
    base = {r["seed"]: r[key] for r in results if r["method"] == baseline and key in r}
    out = {}
    for method in dict.fromkeys(r["method"] for r in results):
        d = np.array([r[key] - base[r["seed"]] for r in results
                      if r["method"] == method and key in r and r["seed"] in base])
        if len(d):
            out[method] = (float(d.mean()), float(d.std()), int((d > 0).sum()))
    return out


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """The results as a markdown table (mean +- std over seeds, paired gain over plain CE)."""
    summary = summarize(results)
    deltas = paired_deltas(results)
    lines = ["| method | micro accuracy | macro F1 | worst-class recall "
             "| macro F1 - plain CE (paired) | seeds |",
             "|---|---|---|---|---|---|"]
    for method, s in summary.items():
        name = METHODS.get(method, method)
        if "pending" in s:
            lines.append(f"| {name} | pending | pending | pending | pending | -- |")
            continue
        cells = [f"{s[k][0]:.3f} ± {s[k][1]:.3f}"
                 for k in ("accuracy", "macro_f1", "worst_class_recall")]
        if method in deltas and method != "ce":
            mean, std, wins = deltas[method]
            cells.append(f"{mean:+.3f} ± {std:.3f} (better on {wins}/{s['seeds']})")
        else:
            cells.append("--")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['seeds']} |")
    return "\n".join(lines)
