"""Long-tailed digit scenes, segmented per pixel: which remedy helps the rare classes?

Canvases of 1-3 real handwritten digits (`examples.scenes`: 100:1 class frequencies over the
training *instances*, the rarest classes with a couple of distinct digit images, balanced
validation and test scenes drawn from disjoint digit pools) are labelled per pixel: 0 for
the background, which is most of the image, and ``c + 1`` on the strokes of a digit of class
``c``. The same small fully convolutional net (`FCN`, Flax NNX) is trained from scratch with
the same budget by each method -- a per-pixel loss, a region loss, a mask augmentation and a
per-image sampler -- over paired seeds; each method's knob is chosen on the balanced
validation split by mIoU and the choice is scored on the balanced test split with
`jbalance.metrics.segmentation_confusion` / `segmentation_report` (mIoU over the 11 classes,
background included, and the IoU of the worst class).

The shape follows ``examples/long_tail``: this module holds the logic, ``main.py`` is the
command line. `train_step` is a pure ``(params, opt_state, key, batch) -> (params, opt_state,
loss)``; a method enters it only as traced values (three `jax.lax.switch` indices and a
pytree of numeric knobs), so every method of a run shares one compiled step. Unlike the
long-tail study, the steps are a Python loop over that jitted step, not a `jax.lax.scan`:
XLA:CPU runs the convolutions of a scan body many times slower than the same step called
from Python (`time_loop_vs_scan` measures both; docs/study.md has the figures).

Methods are registered by name (`METHODS`); a method runs when the jbalance functions it
needs exist (`available`), so the study picks up losses and augmentations as they land.
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

NUM_DIGITS = 10
NUM_CLASSES = NUM_DIGITS + 1  # background + one class per digit
IGNORE = 255  # label of pixels no loss counts (Mosaic's fill)


# Methods ----------------------------------------------------------------------------------

class Method(NamedTuple):
    """One row of the study: a pixel loss + a region loss, an augmentation, a sampler.

    ``grid`` pairs the name of each knob chosen on the validation split with its candidate
    values (every combination is tried); ``fixed`` sets knobs without choosing them (the
    combinations reuse the single methods' chosen values).
    """

    label: str
    pixel: str = "ce"
    region: str = "none"
    augment: str = "none"
    sampler: str = "uniform"
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()


# Kind -> the jbalance names it needs ("module.name"). A kind whose names are missing is left
# out of the compiled step, and the methods using it are skipped (`available`).
PIXEL_NEEDS = {"none": (), "ce": (), "wce": (), "focal": ("losses.softmax_focal_loss",),
               "la": ("losses.logit_adjusted_cross_entropy", "losses.log_prior")}
REGION_NEEDS = {"none": (), "dice": ("losses.dice_loss",),
                "gdice": ("losses.generalized_dice_loss",),
                "tversky": ("losses.tversky_loss",),
                "ftversky": ("losses.focal_tversky_loss",),
                "lovasz": ("losses.lovasz_softmax_loss",)}
AUGMENT_NEEDS = {"none": (), "cutmix": ("augment.cutmix_masks",),
                 "cutmix_aware": ("augment.cutmix_masks",),
                 "mosaic": ("augment.mosaic_masks",),
                 "mosaic_aware": ("augment.mosaic_masks",),
                 "copy_paste": ("augment.copy_paste",),
                 "copy_paste_aware": ("augment.copy_paste",)}
SAMPLERS = ("uniform", "solver_pixels", "solver_instances", "plan_instances")

_MODULES = {"losses": losses, "augment": augment}


def _has(name: str) -> bool:
    module, attr = name.split(".")
    return hasattr(_MODULES[module], attr)


def needs(method: "Method") -> tuple[str, ...]:
    """The ``module.name`` functions of jbalance that ``method`` calls beyond the basics."""
    return (PIXEL_NEEDS[method.pixel] + REGION_NEEDS[method.region] +
            AUGMENT_NEEDS[method.augment])


def available(name: str) -> bool:
    """Whether every jbalance function method ``name`` needs exists in this checkout."""
    return all(_has(n) for n in needs(METHODS[name]))


# Tversky: beta (the false negatives' weight) 0.7, as Salehi et al. and Abraham & Khan chose
# for small structures; `alpha` weights the false positives in jbalance.
_TVERSKY = ("alpha,beta", (0.3, 0.7))
# The Dice family is computed over the whole batch (MONAI's `batch=True`, nnU-Net's batch
# Dice) with the background channel kept: per-image Dice and Dice without the background
# lost on the pilot's validation split (seed 0; docs/study.md).

# Method name -> its definition (the table's rows, in order).
METHODS: dict[str, Method] = {
    "ce": Method("cross-entropy (plain)"),
    "ce_lr_low": Method("cross-entropy, learning rate / 3 (stability check)",
                        fixed=(("lr_scale", 1 / 3),)),
    "weighted_ce": Method("weighted CE (pixel class weights)", "wce",
                          grid=(("weights", ("median_frequency", "enet")),)),
    "focal": Method("focal loss", "focal", grid=(("gamma", (1.0, 2.0)),)),
    "logit_adjusted": Method("logit-adjusted CE (pixel prior)", "la",
                             grid=(("tau", (0.5, 1.0, 2.0)),)),
    "dice": Method("Dice", "none", "dice"),
    "generalized_dice": Method("generalized Dice", "none", "gdice"),
    "tversky": Method("Tversky (alpha 0.3, beta 0.7)", "none", "tversky", fixed=(_TVERSKY,)),
    "focal_tversky": Method("focal Tversky (alpha 0.3, beta 0.7, gamma 0.75)", "none",
                            "ftversky", fixed=(_TVERSKY,)),
    "lovasz": Method("Lovász-softmax", "none", "lovasz"),
    "lovasz_ce": Method("Lovász + CE", "ce", "lovasz"),
    "dice_ce": Method("Dice + CE", "ce", "dice"),
    "cutmix": Method("CutMix (masks), random partners", augment="cutmix"),
    "cutmix_aware": Method("CutMix (masks), class-aware partners", augment="cutmix_aware"),
    "mosaic": Method("Mosaic (masks), random partners", augment="mosaic"),
    "mosaic_aware": Method("Mosaic (masks), class-aware partners", augment="mosaic_aware"),
    "copy_paste": Method("Copy-Paste, random donors", augment="copy_paste"),
    "copy_paste_aware": Method("Copy-Paste, class-aware donors", augment="copy_paste_aware",
                               grid=(("instances", ("all", "rare")),)),
    "resample_pixels": Method("resampling (solver on per-image pixel counts)",
                              sampler="solver_pixels"),
    "resample_instances": Method("resampling (solver on per-image instance counts)",
                                 sampler="solver_instances"),
    "plan_instances": Method("`resample.plan()` defaults on instance counts (min_repeat=1)",
                             sampler="plan_instances"),
    # Combinations of the best single remedies on the pilot's validation split (seed 0),
    # at the single methods' chosen knobs (tau = 1: tau = 0.5 lost in every pilot pairing).
    "la_lovasz": Method("logit-adjusted CE + Lovász", "la", "lovasz"),
    "wce_lovasz": Method("ENet-weighted CE + Lovász", "wce", "lovasz",
                         fixed=(("weights", "enet"),)),
    "la_resample": Method("logit-adjusted CE + resampling (instances)", "la",
                          sampler="solver_instances"),
    "la_copy_paste": Method("logit-adjusted CE + class-aware Copy-Paste", "la",
                            augment="copy_paste_aware", fixed=(("instances", "rare"),)),
    "la_resample_lovasz": Method("logit-adjusted CE + resampling (instances) + Lovász", "la",
                                 "lovasz", sampler="solver_instances"),
    # The same recipe with `resample.plan()`'s defaults (oversample only) as the sampler.
    "la_plan_lovasz": Method("logit-adjusted CE + `plan()` defaults (instances) + Lovász",
                             "la", "lovasz", sampler="plan_instances"),
}


# Configuration ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of a run (hashable: a static argument of `jit`).

    ``pixel_kinds``, ``region_kinds`` and ``augment_kinds`` are the branches compiled into
    the step (`for_methods` sets them from the methods of a run); a method is an index into
    each.
    """

    steps: int = 600
    batch_size: int = 16
    # Plain CE's best of 3e-3, 1e-2, 2e-2, 3e-2 on seed 0's validation split (docs/study.md).
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    width: int = 8
    # Data (`examples.scenes.make_scenes`).
    canvas: int = 24
    num_train: int = 3000
    num_val: int = 500
    num_test: int = 1000
    tail: str = "scarce"
    # Digits anywhere on the canvas: a convolutional net needs no grid of slots.
    layout: str = "free"
    imbalance: float = 100.0
    max_repeat: int = 4
    eval_chunk: int = 100
    pixel_kinds: tuple[str, ...] = ("ce",)
    region_kinds: tuple[str, ...] = ("none",)
    augment_kinds: tuple[str, ...] = ("none",)

    def for_methods(self, names: Sequence[str]) -> "Config":
        """This configuration with the branches that ``names`` need (sorted: stable ids)."""
        ms = [METHODS[n] for n in names]

        def kinds(attr: str, order: dict[str, Any], base: str) -> tuple[str, ...]:
            used = {getattr(m, attr) for m in ms} | {base}
            return tuple(k for k in order if k in used)

        return dataclasses.replace(
            self, pixel_kinds=kinds("pixel", PIXEL_NEEDS, "ce"),
            region_kinds=kinds("region", REGION_NEEDS, "none"),
            augment_kinds=kinds("augment", AUGMENT_NEEDS, "none"))


# The CI preset (`main --preset smoke`, the test): a few steps on a few scenes, one seed.
SMOKE = Config(steps=30, batch_size=8, num_train=200, num_val=100, num_test=100)


# Data -------------------------------------------------------------------------------------

def pixel_counts(semantic: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Per-image pixel counts ``[N, C]`` of integer label maps ``[N, H, W]`` (int64)."""
    flat = semantic.reshape(len(semantic), -1)
    return np.stack([np.bincount(row, minlength=num_classes)[:num_classes] for row in flat])


@functools.cache
def load_seed(seed: int, cfg: Config) -> dict[str, np.ndarray]:
    """The three splits of one seed (`examples.scenes.make_scenes`), as NumPy arrays.

    Training: ``train_images`` ``[N, H, W, 1]``, ``train_semantic`` ``[N, H, W]`` (0
    background, ``c + 1`` digit ``c``), ``train_instances`` ``[N, H, W]``, ``train_classes``
    / ``train_valid`` ``[N, M]``, ``train_counts`` ``[N, 10]`` (instances) and
    ``train_pixels`` ``[N, 11]`` (pixels). Validation and test: ``*_images``,
    ``*_semantic``.
    """
    s = make_scenes(seed, num_train=cfg.num_train, num_val=cfg.num_val,
                    num_test=cfg.num_test, canvas=cfg.canvas, imbalance=cfg.imbalance,
                    tail=cfg.tail, layout=cfg.layout)
    out = {"train_images": s.train.images, "train_semantic": s.train.semantic,
           "train_instances": s.train.instances, "train_classes": s.train.classes,
           "train_valid": s.train.valid, "train_counts": s.train.counts,
           "train_pixels": pixel_counts(s.train.semantic)}
    for split in ("val", "test"):
        out[f"{split}_images"] = getattr(s, split).images
        out[f"{split}_semantic"] = getattr(s, split).semantic
    return {k: np.asarray(v) for k, v in out.items()}


# Model ------------------------------------------------------------------------------------

class FCN(nnx.Module):
    """A small encoder-decoder: full-resolution stem, three convolutions at half resolution.

    ``x -> stem (3x3) -> down (3x3, stride 2) -> 3x3 -> 3x3 dilated 2 -> nearest x2 ->
    concat(stem) -> 1x1 -> logits [B, H, W, C]``: a receptive field of ~19 pixels (a digit is
    8), ~10k parameters at ``width=8``. Halving the resolution early is what keeps a step
    cheap on a CPU; the stem's skip connection keeps stroke edges sharp.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, *, width: int = 8, rngs: nnx.Rngs):
        w, w2 = width, 3 * width
        self.stem = nnx.Conv(1, w, (3, 3), rngs=rngs)
        self.down = nnx.Conv(w, w2, (3, 3), strides=(2, 2), rngs=rngs)
        self.mid1 = nnx.Conv(w2, w2, (3, 3), rngs=rngs)
        self.mid2 = nnx.Conv(w2, w2, (3, 3), kernel_dilation=(2, 2), rngs=rngs)
        self.head = nnx.Conv(w + w2, num_classes, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        s = nnx.relu(self.stem(x))
        d = nnx.relu(self.down(s))
        d = nnx.relu(self.mid1(d))
        d = nnx.relu(self.mid2(d))
        up = jnp.repeat(jnp.repeat(d, 2, axis=1), 2, axis=2)[:, :x.shape[1], :x.shape[2]]
        return self.head(jnp.concatenate([s, up], axis=-1))


@functools.cache
def _graphdef(width: int) -> Any:
    abstract = nnx.eval_shape(lambda: FCN(width=width, rngs=nnx.Rngs(0)))
    return nnx.split(abstract, nnx.Param)[0]


def apply_model(params: Any, images: jax.Array, *, width: int) -> jax.Array:
    """Logits ``[B, H, W, 11]`` of images ``[B, H, W, 1]``."""
    return nnx.merge(_graphdef(width), params)(images)


@functools.partial(jax.jit, static_argnames=("width",))
def init_params(key: jax.Array, *, width: int) -> Any:
    return nnx.split(FCN(width=width, rngs=nnx.Rngs(params=key)), nnx.Param)[1]


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
    return optax.adamw(schedule, weight_decay=cfg.weight_decay)


def init_state(key: jax.Array, cfg: Config) -> tuple[Any, Any]:
    """Fresh ``(params, opt_state)``."""
    params = init_params(key, width=cfg.width)
    with jax.numpy_dtype_promotion("standard"):
        return params, make_optimizer(cfg).init(params)


# Knobs ------------------------------------------------------------------------------------

def fallback_pixel_class_weights(counts: np.ndarray, *, method: str, c: float = 1.02
                                 ) -> np.ndarray:
    r"""Pixel class weights from per-image pixel counts ``[N, C]`` (used while
    `jbalance.losses.pixel_class_weights` does not exist).

    ``median_frequency`` (Eigen & Fergus): ``f_c`` = pixels of ``c`` over the pixels of the
    images that contain ``c``, ``w_c = median(f) / f_c``; ``enet`` (Paszke et al.):
    ``w_c = 1 / ln(c + p_c)`` with ``p_c`` the share of all pixels.
    """
    counts = np.asarray(counts, np.float64)
    if method == "median_frequency":
        per_image = counts.sum(1, keepdims=True)
        f = counts.sum(0) / np.maximum((per_image * (counts > 0)).sum(0), 1)
        return np.where(f > 0, np.median(f[f > 0]) / np.where(f > 0, f, 1), 0.0)
    if method == "enet":
        return 1.0 / np.log(c + counts.sum(0) / counts.sum())
    raise ValueError(f"unknown pixel weight method {method!r}")


def pixel_class_weights(counts: np.ndarray, method: str) -> np.ndarray:
    """`jbalance.losses.pixel_class_weights` when it exists, else the fallback above."""
    if hasattr(losses, "pixel_class_weights"):
        return np.asarray(losses.pixel_class_weights(jnp.asarray(counts), method=method),
                          np.float32)
    return fallback_pixel_class_weights(counts, method=method).astype(np.float32)


# Grid name -> knob names it sets (pairs and triples set several).
_GRID_KNOBS = {"alpha,beta": ("tv_alpha", "tv_beta")}


def knobs_for(data: dict[str, np.ndarray], probs: np.ndarray | None = None,
              **overrides: Any) -> dict[str, jax.Array]:
    """The numeric knobs of a run as a pytree of float32 arrays (all traced, none static).

    ``overrides`` maps a grid or ``fixed`` name of `Method` to one value (``instances``,
    a host-side choice, becomes a table of per-class instance weights). ``probs`` are the
    per-image sampling probabilities: the logit adjustment removes the pixel prior the
    model is trained on, i.e. the pixel counts weighted by how often each image is drawn.
    """
    o = dict(overrides)
    for name, parts in _GRID_KNOBS.items():
        if name in o:
            o.update(zip(parts, o.pop(name)))
    pixels = data["train_pixels"]
    seen = pixels if probs is None else pixels * (len(pixels) * np.asarray(probs))[:, None]
    totals = seen.sum(0)
    inst = data["train_counts"].sum(0).astype(np.float64)
    # Class-aware partners: an image weighs as its rarest digit (min count / count), so an
    # image holding the rarest class is drawn ~100x as often as one with only class 0.
    rare = (inst.min() / np.maximum(inst, 1)).astype(np.float32)
    inst_table = rare if o.get("instances", "all") == "rare" else np.ones(NUM_DIGITS, np.float32)
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    return {
        "class_weights": f32(pixel_class_weights(pixels, o.get("weights", "enet"))),
        "log_prior": losses.log_prior(f32(totals)),
        "tau": f32(o.get("tau", 1.0)), "gamma": f32(o.get("gamma", 2.0)),
        "region_batch": f32(float(o.get("batch", True))),
        "region_bg": f32(float(o.get("background", True))),
        "tv_alpha": f32(o.get("tv_alpha", 0.5)), "tv_beta": f32(o.get("tv_beta", 0.5)),
        "ft_gamma": f32(o.get("ft_gamma", 0.75)),
        "region_weight": f32(o.get("region_weight", 1.0)),
        "cut_alpha": f32(o.get("cut_alpha", 1.0)),
        "paste_prob": f32(o.get("paste_prob", 0.5)),
        "partner_table": f32(rare), "instance_table": f32(inst_table),
        "lr_scale": f32(o.get("lr_scale", 1.0)),
    }


@functools.cache
def _seed_probs(sampler: str, seed: int, data_cfg: "Config", max_repeat: int) -> np.ndarray:
    # One solve per (sampler, seed) for every method and knob that samples that way.
    return sampler_probs(sampler, load_seed(seed, data_cfg), max_repeat=max_repeat)


def sampler_probs(sampler: str, data: dict[str, np.ndarray], *, max_repeat: int
                  ) -> np.ndarray:
    """Per-image probabilities ``[N]`` batches are drawn with.

    The solver (`jbalance.resample.solve`, its defaults: images may be dropped) balances the
    digit classes' totals -- pixels or instances, background left out, since every image
    holds it -- with an integer repeat count per image; its plan becomes
    ``repeats / sum(repeats)``. ``"plan_instances"`` is `jbalance.resample.plan` with its
    defaults (``min_repeat=1``: oversample only) on the instance counts.
    """
    n = len(data["train_pixels"])
    if sampler == "uniform":
        return np.full(n, 1.0 / n, np.float32)
    counts = data["train_pixels"][:, 1:] if sampler == "solver_pixels" else data["train_counts"]
    if sampler == "plan_instances":
        repeats = np.asarray(resample.plan(np.asarray(counts), max_repeat=max_repeat).repeats,
                             np.float64)
    else:
        repeats = np.asarray(resample.solve(np.asarray(counts, np.float32),
                                            max_repeat=max_repeat).repeats, np.float64)
    return (repeats / repeats.sum()).astype(np.float32)


# The step ---------------------------------------------------------------------------------

def _mean_over_pixels(per_pixel: jax.Array, labels: jax.Array) -> jax.Array:
    counted = (labels != IGNORE).astype(per_pixel.dtype)
    return jnp.sum(per_pixel) / jnp.maximum(jnp.sum(counted), jnp.ones((), per_pixel.dtype))


def _pixel_branch(kind: str) -> Callable[..., jax.Array]:
    def fn(logits: jax.Array, labels: jax.Array, k: dict[str, jax.Array]) -> jax.Array:
        if kind == "none":
            return jnp.zeros((), logits.dtype)
        if kind == "ce":
            per = losses.weighted_softmax_cross_entropy(logits, labels, ignore_index=IGNORE)
        elif kind == "wce":
            per = losses.weighted_softmax_cross_entropy(
                logits, labels, class_weights=k["class_weights"], ignore_index=IGNORE)
        elif kind == "focal":
            per = losses.softmax_focal_loss(logits, labels, gamma=k["gamma"],
                                            ignore_index=IGNORE)
        elif kind == "la":
            per = losses.logit_adjusted_cross_entropy(
                logits, labels, log_prior=k["log_prior"], tau=k["tau"], ignore_index=IGNORE)
        else:
            raise ValueError(kind)
        return _mean_over_pixels(per, labels)
    return fn


def _region_branch(kind: str) -> Callable[..., jax.Array]:
    def fn(logits: jax.Array, labels: jax.Array, k: dict[str, jax.Array]) -> jax.Array:
        kw: dict[str, Any] = {"ignore_index": IGNORE}
        if kind == "none":
            return jnp.zeros((), logits.dtype)
        if kind == "lovasz":
            return jnp.mean(losses.lovasz_softmax_loss(logits, labels, **kw))
        if kind == "dice":
            f = losses.dice_loss
        elif kind == "gdice":
            f = losses.generalized_dice_loss
        elif kind == "tversky":
            f = functools.partial(losses.tversky_loss, alpha=k["tv_alpha"], beta=k["tv_beta"])
        elif kind == "ftversky":
            f = functools.partial(losses.focal_tversky_loss, alpha=k["tv_alpha"],
                                  beta=k["tv_beta"], gamma=k["ft_gamma"])
        else:
            raise ValueError(kind)
        # `reduce_batch` and `include_background` are static: compute the variants (sums
        # over the probability maps, cheap next to the convolutions) and pick by traced knob.
        val = {(rb, bg): jnp.mean(f(logits, labels, reduce_batch=rb, include_background=bg,
                                    **kw)) for rb in (False, True) for bg in (False, True)}
        batch = jnp.where(k["region_bg"] > 0, val[True, True], val[True, False])
        image = jnp.where(k["region_bg"] > 0, val[False, True], val[False, False])
        return jnp.where(k["region_batch"] > 0, batch, image)
    return fn


def _image_weights(counts: jax.Array, table: jax.Array) -> jax.Array:
    """``[B]``: each image weighs as its rarest digit (``table[c]``, largest for rare ``c``)."""
    return jnp.max(jnp.where(counts > 0, table, jnp.zeros_like(table)), axis=-1)


def _semantic_from_instances(ids: jax.Array, classes: jax.Array) -> jax.Array:
    """Label map ``[B, H, W]`` (0 background, ``c + 1``) from an id map and ``classes [B, M]``."""
    rows = jnp.clip(ids - 1, 0, classes.shape[1] - 1).reshape(ids.shape[0], -1)
    cls = jnp.take_along_axis(classes, rows, axis=1).reshape(ids.shape)
    return jnp.where(ids > 0, cls + 1, jnp.zeros_like(cls)).astype(jnp.int32)


def _augment_branch(kind: str) -> Callable[..., tuple[jax.Array, jax.Array]]:
    def fn(key: jax.Array, b: dict[str, jax.Array], k: dict[str, jax.Array]
           ) -> tuple[jax.Array, jax.Array]:
        images, semantic = b["images"], b["semantic"]
        aware = kind.endswith("_aware")
        pw = _image_weights(b["counts"], k["partner_table"]) if aware else None
        if kind == "none":
            return images, semantic
        if kind.startswith("cutmix"):
            out = augment.cutmix_masks(key, images, semantic, alpha=k["cut_alpha"],
                                       partner_weights=pw)
            return out[0], out[1].astype(jnp.int32)
        if kind.startswith("mosaic"):
            out = augment.mosaic_masks(key, images, semantic, fill_mask=IGNORE,
                                       partner_weights=pw)
            return out[0], out[1].astype(jnp.int32)
        if kind.startswith("copy_paste"):
            iw = None
            if aware:
                iw = k["instance_table"][b["classes"]] * b["valid"].astype(jnp.float32)
            out = augment.copy_paste(key, images, b["instances"], b["classes"], b["valid"],
                                     paste_prob=k["paste_prob"], partner_weights=pw,
                                     instance_weights=iw)
            return out[0], _semantic_from_instances(out[1], out[2])
        raise ValueError(kind)
    return fn


def _objective(params: Any, batch: dict[str, jax.Array], key: jax.Array, *, cfg: Config
               ) -> jax.Array:
    ids, knobs = batch["ids"], batch["knobs"]
    images, semantic = jax.lax.switch(
        ids[2], [_augment_branch(a) for a in cfg.augment_kinds], key, batch, knobs)
    logits = apply_model(params, images, width=cfg.width)
    pixel = jax.lax.switch(ids[0], [_pixel_branch(p) for p in cfg.pixel_kinds],
                           logits, semantic, knobs)
    region = jax.lax.switch(ids[1], [_region_branch(r) for r in cfg.region_kinds],
                            logits, semantic, knobs)
    return pixel + knobs["region_weight"] * region


def _step(params: Any, opt_state: Any, key: jax.Array, batch: dict[str, jax.Array], *,
          cfg: Config) -> tuple[Any, Any, jax.Array]:
    loss, grads = jax.value_and_grad(_objective)(params, batch, key, cfg=cfg)
    # optax mixes int32 step counts with floats; allow that under strict promotion too.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = make_optimizer(cfg).update(grads, opt_state, params)
    scale = batch["knobs"]["lr_scale"]
    updates = jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)
    return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnums=(0, 1))
def train_step(params: Any, opt_state: Any, key: jax.Array, batch: dict[str, jax.Array], *,
               cfg: Config) -> tuple[Any, Any, jax.Array]:
    """One optimisation step: augmentation, pixel + region loss, gradient, AdamW update.

    Args:
      params: The `FCN` parameters (an `nnx.State` pytree).
      opt_state: The optax state.
      key: PRNG key of the augmentation.
      batch: ``images`` float32 ``[B, H, W, 1]``, ``semantic`` int32 ``[B, H, W]``,
        ``instances`` int32 ``[B, H, W]``, ``classes`` int32 / ``valid`` bool ``[B, M]``,
        ``counts`` int32 ``[B, 10]``; ``ids`` int32 ``[3]`` (indices into ``cfg``'s pixel,
        region and augment kinds: `method_ids`) and ``knobs`` (`knobs_for`).
      cfg: The run's configuration (static).

    Returns:
      New ``(params, opt_state)`` and the training loss.
    """
    return _step(params, opt_state, key, batch, cfg=cfg)


_BATCH_KEYS = ("images", "semantic", "instances", "classes", "valid", "counts")


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnums=(0, 1))
def _sampled_step(params: Any, opt_state: Any, run_key: jax.Array, step: jax.Array,
                  train: dict[str, jax.Array], ids: jax.Array, knobs: dict[str, jax.Array],
                  *, cfg: Config) -> tuple[Any, Any, jax.Array]:
    # Draws the batch from the whole training split inside the same call: one dispatch a step.
    k_pick, k_aug = jax.random.split(jax.random.fold_in(run_key, step))
    pick = sampling.sample_indices(k_pick, train["probs"], cfg.batch_size)
    batch = {name: train[name][pick] for name in _BATCH_KEYS}
    batch.update(ids=ids, knobs=knobs)
    return _step(params, opt_state, k_aug, batch, cfg=cfg)


def method_ids(name: str, cfg: Config) -> jax.Array:
    """``[pixel, region, augment]`` indices of method ``name`` into ``cfg``'s kinds."""
    m = METHODS[name]
    return jnp.asarray([cfg.pixel_kinds.index(m.pixel), cfg.region_kinds.index(m.region),
                        cfg.augment_kinds.index(m.augment)], jnp.int32)


def device_train(data: dict[str, np.ndarray], probs: np.ndarray) -> dict[str, jax.Array]:
    """The training split as device arrays, with the sampling probabilities."""
    out = {name: jnp.asarray(data[f"train_{name}"]) for name in _BATCH_KEYS}
    out["semantic"] = out["semantic"].astype(jnp.int32)
    out["probs"] = jnp.asarray(probs, jnp.float32)
    return out


def train(key: jax.Array, train_data: dict[str, jax.Array], ids: jax.Array,
          knobs: dict[str, jax.Array], cfg: Config) -> Any:
    """``cfg.steps`` steps of the jitted step from a Python loop; returns the parameters."""
    k_init, k_run = jax.random.split(key)
    params, opt_state = init_state(k_init, cfg)
    for step in range(cfg.steps):
        params, opt_state, _ = _sampled_step(params, opt_state, k_run, np.int32(step),
                                             train_data, ids, knobs, cfg=cfg)
    return params


# Evaluation -------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("width",))
def _confusion(params: Any, images: jax.Array, labels: jax.Array, *, width: int) -> jax.Array:
    logits = apply_model(params, images, width=width)
    return metrics.segmentation_confusion(labels, jnp.argmax(logits, -1).astype(jnp.int32),
                                          num_classes=NUM_CLASSES)


def confusion(params: Any, images: np.ndarray, labels: np.ndarray, cfg: Config) -> np.ndarray:
    """Pixel confusion ``[11, 11]`` (int64), accumulated over chunks of the split."""
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for i in range(0, len(images), cfg.eval_chunk):
        total += np.asarray(_confusion(params, jnp.asarray(images[i:i + cfg.eval_chunk]),
                                       jnp.asarray(labels[i:i + cfg.eval_chunk], jnp.int32),
                                       width=cfg.width), np.int64)
    return total


def report(cm: np.ndarray) -> dict[str, Any]:
    """mIoU, worst-class IoU, per-class IoU, fwIoU and pixel accuracy of a confusion."""
    r = metrics.segmentation_report(jnp.asarray(cm, jnp.float32))
    out = {k: float(r[k]) for k in ("miou", "worst_class_iou", "fwiou", "pixel_accuracy")}
    out["iou"] = [float(v) for v in np.asarray(r["iou"])]
    return out


# The study --------------------------------------------------------------------------------

def _grid(m: Method) -> list[tuple[str, dict[str, Any]]]:
    """``(label, overrides)`` for each candidate of ``m`` (one if no grid)."""
    if not m.grid:
        return [("--", dict(m.fixed))]
    names = [n for n, _ in m.grid]
    out = []
    for values in itertools.product(*(v for _, v in m.grid)):
        over = dict(zip(names, values))
        out.append((", ".join(f"{k}={v}" for k, v in over.items()), {**dict(m.fixed), **over}))
    return out


def evaluate(name: str, over: dict[str, Any], seed: int, cfg: Config
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trains one candidate of method ``name`` on one seed: ``(validation, test)`` reports."""
    m = METHODS[name]
    data = load_seed(seed, _data_cfg(cfg))
    probs = _seed_probs(m.sampler, seed, _data_cfg(cfg), cfg.max_repeat)
    params = train(jax.random.key(seed), device_train(data, probs), method_ids(name, cfg),
                   knobs_for(data, probs, **over), cfg)
    return (report(confusion(params, data["val_images"], data["val_semantic"], cfg)),
            report(confusion(params, data["test_images"], data["test_semantic"], cfg)))


def choose(name: str, seeds: Sequence[int], outcomes: dict[tuple[str, int], Any],
           seconds: float | None) -> dict[str, Any]:
    """The record of method ``name``: the knob with the best mean validation mIoU over
    ``seeds``, and the test metrics of that knob only.

    ``outcomes`` maps ``(knob label, seed)`` to `evaluate`'s ``(validation, test)``.
    """
    labels = [label for label, _ in _grid(METHODS[name])]
    val = {label: float(np.mean([outcomes[label, s][0]["miou"] for s in seeds]))
           for label in labels}
    label = max(labels, key=val.get)
    runs = [{**outcomes[label, s][1], "seed": int(s), "method": name,
             "val_miou": outcomes[label, s][0]["miou"]} for s in seeds]
    return {"method": name, "chosen": label, "validation": val, "runs": runs,
            "seconds": seconds}


def run_method(name: str, seeds: Sequence[int], cfg: Config,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Trains method ``name`` for every seed and knob candidate; chooses the knob on the
    balanced validation split (mean mIoU over seeds); scores only that choice on the test
    split.

    Returns ``{"method", "chosen", "validation": {knob: mean val mIoU}, "runs": [per-seed
    test metrics], "seconds"}``.
    """
    t0 = time.perf_counter()
    outcomes = {}
    for label, over in _grid(METHODS[name]):
        for seed in seeds:
            outcomes[label, seed] = evaluate(name, over, seed, cfg)
        if log is not None:
            log(f"  {name} [{label}] val mIoU "
                f"{np.mean([outcomes[label, s][0]['miou'] for s in seeds]):.3f}")
    return choose(name, seeds, outcomes, time.perf_counter() - t0)


def _seeds_worker(args: tuple[Sequence[str], Sequence[int], Config]
                  ) -> dict[tuple[str, str, int], Any]:
    # One process's share of a parallel study: every method and knob on some seeds.
    names, seeds, cfg = args
    out = {}
    for name in names:
        t0 = time.perf_counter()
        for label, over in _grid(METHODS[name]):
            for seed in seeds:
                out[name, label, seed] = evaluate(name, over, seed, cfg)
        print(f"  seeds {list(seeds)}: {name} ({time.perf_counter() - t0:.1f}s)", flush=True)
    return out


def _data_cfg(cfg: Config) -> Config:
    # The data depend on these fields only: one cached copy per seed whatever the method.
    return Config(canvas=cfg.canvas, num_train=cfg.num_train, num_val=cfg.num_val,
                  num_test=cfg.num_test, tail=cfg.tail, layout=cfg.layout,
                  imbalance=cfg.imbalance)


def run_study(methods: Sequence[str], seeds: Sequence[int], base: Config = Config(),
              log: Callable[[str], None] | None = print, workers: int = 1
              ) -> list[dict[str, Any]]:
    """Runs every available method on every seed with the same budget (one record each).

    Methods whose jbalance functions are missing are skipped (logged). ``workers > 1``
    splits the seeds over that many processes (spawned: each compiles the step once); the
    results are those of ``workers=1``, as every run is a function of its seed alone.
    """
    todo = [n for n in methods if available(n)]
    if log is not None:
        for n in methods:
            if n not in todo:
                log(f"skipping {n}: jbalance lacks "
                    f"{', '.join(x for x in needs(METHODS[n]) if not _has(x))}")
    cfg = base.for_methods(todo)
    if workers > 1:
        import concurrent.futures
        import multiprocessing

        t0 = time.perf_counter()
        shares = [(todo, list(seeds[i::workers]), cfg) for i in range(workers)]
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            merged: dict[tuple[str, str, int], Any] = {}
            for part in pool.map(_seeds_worker, [sh for sh in shares if sh[1]]):
                merged.update(part)
        if log is not None:
            log(f"{len(merged)} trainings in {time.perf_counter() - t0:.0f}s")
        # Per-method times do not exist when methods run interleaved in several processes.
        return [choose(n, seeds, {(lab, s): v for (m, lab, s), v in merged.items() if m == n},
                       None) for n in todo]
    results = []
    for name in todo:
        rec = run_method(name, seeds, cfg, log)
        results.append(rec)
        if log is not None:
            s = summarize(results)[name]
            log(f"{name:20s} {rec['chosen']:28s} mIoU {s['miou'][0]:.3f} "
                f"worst {s['worst_class_iou'][0]:.3f} ({rec['seconds']:.1f}s)")
    return results


# Tables -----------------------------------------------------------------------------------

def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation over seeds for each method."""
    out: dict[str, dict[str, Any]] = {}
    for rec in results:
        s: dict[str, Any] = {"seeds": len(rec["runs"]), "chosen": rec["chosen"]}
        for k in ("miou", "worst_class_iou", "pixel_accuracy", "fwiou"):
            v = np.array([r[k] for r in rec["runs"]])
            s[k] = (float(v.mean()), float(v.std()))
        s["iou"] = np.mean([r["iou"] for r in rec["runs"]], axis=0).tolist()
        out[rec["method"]] = s
    return out


def paired_deltas(results: Sequence[dict[str, Any]], key: str = "miou",
                  baseline: str = "ce") -> dict[str, dict[str, Any]]:
    """Per method: ``key`` minus the baseline's on the same seed (`examples._stats`)."""
    return _stats.paired_deltas(results, key, baseline)


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """mean +- std over seeds, and paired gains over plain CE in mIoU *points* (x100)."""
    summary = summarize(results)
    dm, dw = paired_deltas(results, "miou"), paired_deltas(results, "worst_class_iou")
    lines = ["| method | knob (chosen on validation) | mIoU | worst-class IoU "
             "| mIoU - CE, points (paired) | per-seed mIoU - CE | worst IoU - CE | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for method, s in summary.items():
        name = METHODS[method].label if method in METHODS else method
        cells = [s["chosen"], f"{s['miou'][0]:.3f} ± {s['miou'][1]:.3f}",
                 f"{s['worst_class_iou'][0]:.3f} ± {s['worst_class_iou'][1]:.3f}"]
        if method != "ce" and method in dm:
            d = dm[method]
            cells += [f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f} "
                      f"(better on {d['wins']}/{s['seeds']})",
                      " ".join(f"{100 * x:+.1f}" for x in d["per_seed"]),
                      f"{dw[method]['mean']:+.3f}"]
        else:
            cells += ["--", "--", "--"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['seeds']} |")
    return "\n".join(lines)


def validation_table(results: Sequence[dict[str, Any]]) -> str:
    """Mean validation mIoU of every knob candidate (the chosen one in bold)."""
    lines = ["| method | candidates: mean validation mIoU |", "|---|---|"]
    for rec in results:
        if len(rec["validation"]) < 2:
            continue
        cells = [(f"**{k}: {v:.3f}**" if k == rec["chosen"] else f"{k}: {v:.3f}")
                 for k, v in rec["validation"].items()]
        name = METHODS[rec["method"]].label if rec["method"] in METHODS else rec["method"]
        lines.append(f"| {name} | " + ", ".join(cells) + " |")
    return "\n".join(lines)


def iou_table(results: Sequence[dict[str, Any]]) -> str:
    """Mean test IoU per class (background, digits 0-9) of each method."""
    summary = summarize(results)
    head = "| method | bg | " + " | ".join(str(c) for c in range(NUM_DIGITS)) + " |"
    lines = [head, "|---|" + "---|" * NUM_CLASSES]
    for method, s in summary.items():
        name = METHODS[method].label if method in METHODS else method
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in s["iou"]) + " |")
    return "\n".join(lines)


# Timing: the jitted step from a Python loop vs the same step inside `lax.scan` -------------

def time_loop_vs_scan(cfg: Config, *, batch_size: int = 32, steps: int = 20,
                      repeats: int = 3) -> dict[str, float]:
    """Milliseconds per plain-CE step: the jitted step called from Python vs a `lax.scan`.

    Both run the same `_step` on the same fixed batch (``[batch_size, canvas, canvas, 1]``
    random images and labels); compilation is excluded and the best of ``repeats`` timings
    of ``steps`` steps is kept.
    """
    cfg = dataclasses.replace(cfg, pixel_kinds=("ce",), region_kinds=("none",),
                              augment_kinds=("none",))
    k = jax.random.key(0)
    h = cfg.canvas
    batch = {"images": jax.random.uniform(k, (batch_size, h, h, 1)),
             "semantic": jax.random.randint(k, (batch_size, h, h), 0, NUM_CLASSES),
             "instances": jnp.zeros((batch_size, h, h), jnp.int32),
             "classes": jnp.zeros((batch_size, 3), jnp.int32),
             "valid": jnp.zeros((batch_size, 3), bool),
             "counts": jnp.zeros((batch_size, NUM_DIGITS), jnp.int32),
             "ids": jnp.zeros(3, jnp.int32),
             "knobs": knobs_for({"train_pixels": np.ones((1, NUM_CLASSES)),
                                 "train_counts": np.ones((1, NUM_DIGITS))})}
    step = jax.jit(functools.partial(_step, cfg=cfg))

    @jax.jit
    def scanned(params: Any, opt_state: Any) -> Any:
        def body(carry: Any, key: jax.Array) -> Any:
            p, o = carry
            p, o, loss = _step(p, o, key, batch, cfg=cfg)
            return (p, o), loss
        return jax.lax.scan(body, (params, opt_state), jax.random.split(k, steps))

    def best(run: Callable[[], Any]) -> float:
        jax.block_until_ready(run())  # compile
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(run())
            times.append((time.perf_counter() - t) / steps * 1e3)
        return min(times)

    params, opt_state = init_state(k, cfg)

    def loop() -> Any:
        p, o = params, opt_state
        for i in range(steps):
            p, o, loss = step(p, o, jax.random.fold_in(k, i), batch)
        return loss

    return {"loop_ms": best(loop), "scan_ms": best(lambda: scanned(params, opt_state)),
            "batch_size": batch_size, "canvas": h, "width": cfg.width}
