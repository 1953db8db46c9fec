"""Segmentation benchmarks (issue 20), same run: the Dice family and Lovász against the
per-pixel softmax CE and ``optax.losses.dice_loss`` (``value_and_grad``, interleaved call by
call), `cutmix_masks` / `mosaic_masks` against the image-only calls, and `copy_paste` against
ultralytics' ``CopyPaste`` where it imports (albumentations ships no Copy-Paste).
"""

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness
from benchmarks._harness import Row
from benchmarks.bench_losses import _interleaved
from jbalance import losses


def _segmentation_rows(optax, quick):
    """Issue 20's targets, value_and_grad on ``[8, 256, 256, 21]`` (``--quick``:
    ``[2, 64, 64, 21]``), interleaved: `dice_loss` within 1.5x of the per-pixel softmax CE and
    faster than ``optax.losses.dice_loss``; `lovasz_softmax_loss` within 3x of the CE."""
    shape = (2, 64, 64, 21) if quick else (8, 256, 256, 21)
    r = np.random.default_rng(0)
    z = jnp.asarray(r.standard_normal(shape), jnp.float32)
    ids = jnp.asarray(r.integers(0, shape[-1], shape[:-1]), jnp.int32)
    onehot = jax.nn.one_hot(ids, shape[-1], dtype=jnp.float32)

    def vg(fn, lab):
        f = jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(fn(a, b))))
        return lambda: f(z, lab)

    fns = {"per-pixel weighted_softmax_cross_entropy": vg(
               losses.weighted_softmax_cross_entropy, ids),
           "dice_loss (label map)": vg(losses.dice_loss, ids),
           "dice_loss (one-hot)": vg(losses.dice_loss, onehot),
           "generalized_dice_loss": vg(losses.generalized_dice_loss, ids),
           "focal_tversky_loss": vg(losses.focal_tversky_loss, ids),
           "lovasz_softmax_loss (per_image=False)": vg(losses.lovasz_softmax_loss, ids),
           "lovasz_softmax_loss (per_image=True)": vg(
               functools.partial(losses.lovasz_softmax_loss, per_image=True), ids)}
    if optax is not None and hasattr(optax.losses, "dice_loss"):
        fns["optax.losses.dice_loss (one-hot)"] = vg(
            functools.partial(optax.losses.dice_loss, reduction="none"), onehot)
    t = _interleaved(fns, 3 if quick else 10)
    base = "per-pixel weighted_softmax_cross_entropy"
    case = f"targets {list(shape)} f32 value_and_grad vs {base}"
    load = "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    rows = [Row(case, base, t[base][0], baseline=True, note=f"interleaved; {load}")]
    for name in fns:
        if name != base:
            rows.append(Row(case, name, t[name][0],
                            note=f"ratio of minima {t[name][1] / t[base][1]:.2f}x"))
    return rows


def _instance_scene(b, h, w, m, rng):
    """``[b, h, w]`` id maps of ``m`` rectangles each (drawn in slot order) and classes."""
    ids = np.zeros((b, h, w), np.int32)
    for i in range(b):
        for k in range(m):
            y, x = rng.integers(0, h - 16), rng.integers(0, w - 16)
            dy, dx = rng.integers(8, h // 4), rng.integers(8, w // 4)
            ids[i, y:y + dy, x:x + dx] = k + 1
    return ids, rng.integers(0, 80, (b, m)).astype(np.int32)


def _ultralytics_copy_paste_row(case, images, ids, classes, repeats):
    """ultralytics ``CopyPaste`` (its default ``mode="flip"``, ``p=0.5``), one image at a time
    as its data loader calls it, on the same scenes: each instance becomes the rectangle
    polygon of its pixels (the bench's instances are rectangles). Flip mode pastes mirrored
    copies of the image's own objects (jbalance pastes a partner's): the same work per image
    -- rasterise the chosen polygons, copy their pixels -- with no occlusion bookkeeping."""
    mod, why = _harness.try_import("ultralytics.data.augment")
    inst_mod, why2 = _harness.try_import("ultralytics.utils.instance")
    if mod is None or inst_mod is None or not hasattr(mod, "CopyPaste"):
        return Row(case, "ultralytics CopyPaste", None, note=why or why2 or "no CopyPaste")
    per_image = []
    for i in range(len(images)):
        boxes, cls = [], []
        for k in range(classes.shape[1]):
            ys, xs = np.nonzero(ids[i] == k + 1)
            if len(ys):
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                cls.append(classes[i, k])
        b = np.asarray(boxes, np.float32)
        segs = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)
        per_image.append((b, segs, np.asarray(cls, np.float32)[:, None]))
    transform = mod.CopyPaste(p=0.5, mode="flip")

    def run():
        out = []
        for img, (b, segs, cls) in zip(images, per_image):
            labels = {"img": img, "cls": cls, "instances": inst_mod.Instances(
                b, segs, bbox_format="xyxy", normalized=False)}
            out.append(transform(labels)["img"])
        return out

    sec = _harness.time_fn(run, repeats=repeats)
    return Row(case, "ultralytics CopyPaste (flip mode, per image)", sec,
               note=f"{len(images)} images in a Python loop; mirrored own objects")


def _mask_cases(quick: bool) -> list[Row]:
    """Issue 20: cutmix_masks / mosaic_masks against the image-only calls (same run), and
    copy_paste on [16, 512, 512, 3] with 32 instances against its peers where they import."""
    import jax
    import jax.numpy as jnp

    from jbalance import augment

    b, h, w = (8, 64, 64) if quick else (64, 224, 224)
    repeats = 5 if quick else 12
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8))
    masks = jnp.asarray(rng.integers(0, 21, (b, h, w), dtype=np.uint8))
    y = jnp.eye(b, dtype=jnp.float32)
    keys = iter(jax.random.split(jax.random.key(7), 100_000))
    rows = []
    pairs = [
        ("cutmix elem", jax.jit(augment.cutmix), jax.jit(augment.cutmix_masks)),
        ("cutmix batch", jax.jit(functools.partial(augment.cutmix, mode="batch")),
         jax.jit(functools.partial(augment.cutmix_masks, mode="batch"))),
        ("mosaic", jax.jit(augment.mosaic), jax.jit(augment.mosaic_masks)),
    ]
    for name, image_only, with_masks in pairs:
        case = f"{name} [{b},{h},{w},3] uint8 + uint8 masks"
        # Interleaved, so a load swing on the shared machine hits both alike.
        t_img, t_mask = [], []
        for fn, acc, arg in ((image_only, t_img, y), (with_masks, t_mask, masks)):
            jax.block_until_ready(fn(next(keys), x, arg))
        for _ in range(repeats):
            for fn, acc, arg in ((image_only, t_img, y), (with_masks, t_mask, masks)):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(next(keys), x, arg))
                acc.append(time.perf_counter() - t0)
        si, sm = float(np.median(t_img)), float(np.median(t_mask))
        rows.append(Row(case, "jbalance image-only (labels)", si, baseline=True))
        rows.append(Row(case, "jbalance with masks", sm,
                        note=f"{sm / si:.2f}x the image-only call (bar: 1.3x)"))
    b2, s2, m2 = (4, 128, 8) if quick else (16, 512, 32)
    ids, classes = _instance_scene(b2, s2, s2, m2, rng)
    imgs = jnp.asarray(rng.integers(0, 256, (b2, s2, s2, 3), dtype=np.uint8))
    case = f"copy_paste [{b2},{s2},{s2},3] uint8, {m2} instances"
    fn = jax.jit(augment.copy_paste)
    args = (imgs, jnp.asarray(ids), jnp.asarray(classes), jnp.ones((b2, m2), bool))
    sec = _harness.time_fn(lambda: fn(next(keys), *args), repeats=repeats)
    rows.append(Row(case, "jbalance", sec, baseline=True))
    rows.append(_ultralytics_copy_paste_row(case, np.asarray(imgs), ids, classes, repeats))
    rows.append(Row(case, "albumentations", None,
                    note="albumentations ships no instance Copy-Paste transform"))
    return rows


def run(quick: bool) -> list[Row]:
    optax, _ = _harness.try_import("optax")
    return _segmentation_rows(optax, quick) + _mask_cases(quick)
