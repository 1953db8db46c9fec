"""MixUp, CutMix and Mosaic: jbalance.augment against timm, torchvision, albumentations and
ultralytics, plus the memory-bandwidth floor.

Cases (full size; ``--quick`` shrinks them for smoke runs):

* MixUp and CutMix on ``[64, 224, 224, 3]`` float32, "batch" mode (one lambda) and "elem"
  mode (one lambda per example). Peers: timm's ``Mixup`` (NCHW torch tensors, in place),
  torchvision ``transforms.v2.MixUp``/``CutMix`` (one lambda per batch, so batch mode only).
* Mosaic with boxes on ``[16, 640, 640, 3]`` uint8 (up to 8 boxes per image), 640x640
  outputs, NumPy in and NumPy out: albumentations ``Mosaic`` (per image, 640x640 target)
  and ultralytics ``Mosaic`` (per image, its 1280x1280 canvas).
* The floor: ``np.copyto`` of as many bytes as the operation must read and write (MixUp
  reads two images and writes one per example: a copy of 1.5x the batch; CutMix and
  Mosaic read one source pixel per output pixel and write it: a copy of the output).

Each jbalance case is timed twice, in the same run as its peers:

* "fresh": as a user calls it, the output freshly allocated on every call. glibc serves
  allocations above its mmap threshold (32 MiB at most) with ``mmap`` and returns them on
  free, so each call of a 38 MB output pays ~10k page faults; every implementation pays
  this, peers included.
* "steady": after ``mallopt(M_MMAP_THRESHOLD=1 GiB, M_TRIM_THRESHOLD=2 GiB)``: freed
  buffers are reused, as they are in a training loop that keeps its pool warm. Every row of
  this second pass runs under the same allocator settings (peers too). XLA's worker
  threads allocate from per-thread glibc arenas, whose heaps stop at 64 MiB, so outputs
  above that (Mosaic's 79 MB 1280 canvas) are still mmapped per call in this pass; the
  "glibc tuned" allocator runs (``MALLOC_ARENA_MAX=1`` too, set before start) remove that.
* "donated": `jax.jit(..., donate_argnums=1)` with a fresh copy of the input per call (the
  copy is not timed). With the default ``in_place=False`` XLA cannot write MixUp or
  elem-mode CutMix in place (every output reads a partner), so donation adds a copy;
  ``in_place=True`` rewrites the donated batch band by band (`dynamic_update_slice`), so
  no batch-sized buffer is allocated and MixUp moves about one copy of the batch;
  batch-mode CutMix always pastes its box rows in place, and elem-mode CutMix with
  ``in_place=True`` copies only box pixels (partner cycle by cycle), so donated they move
  box bytes, not the batch.
* "spare output buffer donated": the default path jitted with one more, ignored argument
  that is donated: the previous call's output. XLA writes the output into that buffer, so a
  loop that hands back last step's batch allocates (and faults in) nothing batch-sized per
  call, under any allocator, and keeps the default path's fused, multi-threaded kernel.

Issue 14 additions: `_allocator_cases` reruns MixUp/CutMix/Mosaic and their peers in fresh
processes under glibc as it comes, glibc tuned (`GLIBC_TUNED`: one arena, high mmap and
trim thresholds) and each preloadable allocator found by ``ldconfig -p`` (jemalloc, also
with its purging off, and tcmalloc), side by side; `_window_copy_cases` isolates Mosaic's
window-copy loop; `_train_step_cases` times a jitted Flax NNX train step on
``[64, 224, 224, 3]`` with and without MixUp/CutMix/Mosaic fused (overhead in % of the step).
"""

import ctypes
import functools
import importlib.util
import os
import time

import numpy as np

from benchmarks import _harness
from benchmarks._harness import Row


def _set_steady_allocator() -> bool:
    """Makes glibc keep and reuse large freed blocks (no mmap/munmap per call)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    ok &= libc.mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD
    return bool(ok)


def _time_donated(fn, keys, x, y, repeats: int) -> float:
    """Median seconds of ``jit(fn, donate_argnums=1)`` on a fresh (untimed) copy per call."""
    import jax
    import jax.numpy as jnp

    donated = jax.jit(fn, donate_argnums=1)
    times = []
    for _ in range(repeats + 2):
        xc = jax.block_until_ready(jnp.copy(x))
        kk = next(keys)
        t0 = time.perf_counter()
        jax.block_until_ready(donated(kk, xc, y))
        times.append(time.perf_counter() - t0)
    return float(np.median(times[2:]))


def _time_spare(fn, args, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` jitted with a donated spare buffer for its images.

    The spare is the previous call's output images (what a loop that is done with last
    step's batch hands back), passed as an extra argument that ``fn`` ignores; XLA writes
    the new output into it (``input_output_alias``), so nothing batch-sized is allocated
    and nothing is faulted in, whatever the allocator. The input itself is not donated.
    """
    import jax

    spared = jax.jit(lambda *a: fn(*a[:-1]), donate_argnums=len(args), keep_unused=True)
    out = jax.block_until_ready(fn(*args))
    spare = jax.numpy.copy(out[0])
    times = []
    for _ in range(repeats + 2):
        t0 = time.perf_counter()
        out = jax.block_until_ready(spared(*args, spare))
        times.append(time.perf_counter() - t0)
        spare = out[0]
    return float(np.median(times[2:]))


def _floor_row(case: str, nbytes: int, repeats: int) -> Row:
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    sec = _harness.time_fn(lambda: np.copyto(dst, src), repeats=repeats)
    return Row(case, "floor: np.copyto", sec, note=f"copy of {nbytes / 2**20:.0f} MiB (one core)")


def _load_timm_mixup():
    """timm's Mixup class; loads timm/data/mixup.py directly if `import timm` fails."""
    try:
        from timm.data import Mixup

        return Mixup, ""
    except Exception as e:  # noqa: BLE001 - any import failure falls back to the file.
        spec = importlib.util.find_spec("timm")
        if spec is None or not spec.submodule_search_locations:
            return None, f"timm not importable ({type(e).__name__})"
        path = os.path.join(list(spec.submodule_search_locations)[0], "data", "mixup.py")
        try:
            mspec = importlib.util.spec_from_file_location("_timm_mixup", path)
            module = importlib.util.module_from_spec(mspec)
            mspec.loader.exec_module(module)
            return module.Mixup, "loaded timm/data/mixup.py directly"
        except Exception as e2:  # noqa: BLE001
            return None, f"timm mixup.py not loadable ({type(e2).__name__}: {e2})"


# ---------------------------------------------------------------------------------------------
# MixUp / CutMix.


def _classification_cases(quick: bool, steady: bool) -> list[Row]:
    import jax
    import jax.numpy as jnp

    from jbalance import augment

    b, h, w, c, k = (8, 64, 64, 3, 10) if quick else (64, 224, 224, 3, 1000)
    repeats = 5 if quick else 15
    tag = "steady" if steady else "fresh"
    rng = np.random.default_rng(0)
    x_np = rng.random((b, h, w, c), dtype=np.float32)
    y_int = rng.integers(0, k, b)
    x = jnp.asarray(x_np)
    y = jax.nn.one_hot(jnp.asarray(y_int), k, dtype=jnp.float32)
    nbytes = x_np.nbytes
    rows: list[Row] = []

    torch, why_torch = _harness.try_import("torch")
    mixup_cls, why_timm = _load_timm_mixup() if torch is not None else (None, why_torch)
    v2, why_v2 = _harness.try_import("torchvision.transforms.v2")
    if torch is not None:
        torch.manual_seed(0)
        xt = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous()  # NCHW as timm expects
        yt = torch.from_numpy(y_int)

    for op in ("mixup", "cutmix"):
        floor_bytes = int(1.5 * nbytes) if op == "mixup" else nbytes
        for mode in ("batch", "elem"):
            case = f"{op} {mode} [{b},{h},{w},{c}] f32 ({tag})"
            fn = getattr(augment, op)
            jitted = jax.jit(functools.partial(fn, mode=mode))
            keys = iter(jax.random.split(jax.random.key(1), 10_000))
            sec = _harness.time_fn(lambda: jitted(next(keys), x, y), repeats=repeats)
            rows.append(Row(case, "jbalance", sec, baseline=True,
                            note=f"{b / sec:,.0f} images/s"))
            for in_place in ((False, True) if not steady else (True,)):
                sec_d = _time_donated(functools.partial(fn, mode=mode, in_place=in_place),
                                      keys, x, y, repeats)
                if op == "cutmix" and mode == "elem" and in_place:
                    how = "box pixels only, partner cycle by cycle"
                elif in_place or (op == "cutmix" and mode == "batch"):
                    how = "band by band in place"
                else:
                    how = "XLA adds a copy: outputs read partners"
                rows.append(Row(case, f"jbalance, donated, in_place={in_place}", sec_d,
                                note=how))
            sec_s = _time_spare(lambda k, a, b, fn=fn, mode=mode: fn(k, a, b, mode=mode),
                                (next(keys), x, y), repeats)
            rows.append(Row(case, "jbalance, spare output buffer donated", sec_s,
                            note="default path written into last call's donated output"))
            # timm: Mixup(..., mode) works in place on the NCHW tensor; elem mode needs an even
            # batch and loops over examples in Python.
            if mixup_cls is None:
                rows.append(Row(case, "timm Mixup", None, note=why_timm))
            else:
                kw = ({"mixup_alpha": 1.0, "cutmix_alpha": 0.0} if op == "mixup"
                      else {"mixup_alpha": 0.0, "cutmix_alpha": 1.0})
                mix = mixup_cls(**kw, mode=mode, num_classes=k, label_smoothing=0.0,
                                correct_lam=True)
                work = xt.clone()

                def run_timm(mix=mix, work=work):
                    work.copy_(xt)  # timm mutates its input; restore it (also timed: in place)
                    return mix(work, yt)

                sec_t = _harness.time_fn(run_timm, repeats=repeats)
                # Subtract the restoring copy, timed alone, so timm is not charged for it.
                sec_c = _harness.time_fn(lambda work=work: work.copy_(xt), repeats=repeats)
                rows.append(Row(case, "timm Mixup", max(sec_t - sec_c, 1e-9),
                                note="in place on NCHW torch; input-restore copy subtracted"
                                     + (f"; {why_timm}" if why_timm else "")))
            if mode == "batch":
                if v2 is None or torch is None:
                    rows.append(Row(case, "torchvision v2", None, note=why_v2 or why_torch))
                else:
                    tv = (v2.MixUp(alpha=1.0, num_classes=k) if op == "mixup"
                          else v2.CutMix(alpha=1.0, num_classes=k))
                    sec_v = _harness.time_fn(lambda tv=tv: tv(xt, yt), repeats=repeats)
                    rows.append(Row(case, f"torchvision v2 {tv.__class__.__name__}", sec_v,
                                    note="one lambda per batch, partner = roll by 1"))
            rows.append(_floor_row(case, floor_bytes, repeats))
    return rows


# ---------------------------------------------------------------------------------------------
# Mosaic with boxes.


def _make_detection(b, size, m, rng):
    images = rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)
    xy = rng.uniform(0, size * 0.8, (b, m, 2))
    wh = rng.uniform(size * 0.05, size * 0.3, (b, m, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, size)], -1).astype(np.float32)
    classes = rng.integers(0, 20, (b, m)).astype(np.int32)
    valid = rng.random((b, m)) < 0.8
    return images, boxes, classes, valid


def _albumentations_row(case, images, boxes, classes, valid, size, repeats):
    A, why = _harness.try_import("albumentations")
    if A is None:
        return Row(case, "albumentations Mosaic", None, note=why)
    b = images.shape[0]
    rng = np.random.default_rng(1)
    items = [{"image": images[i], "bboxes": boxes[i][valid[i]],
              "labels": classes[i][valid[i]]} for i in range(b)]
    transform = A.Compose(
            [A.Mosaic(grid_yx=(2, 2), target_size=(size, size), cell_shape=(size, size),
                      center_range=(0.25, 0.75), fit_mode="cover", p=1.0)],
            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"],
                                     min_visibility=0.1, min_width=2, min_height=2))

    def run():
        outs = []
        for i in range(b):
            others = rng.choice(b, 3)
            out = transform(image=items[i]["image"], bboxes=items[i]["bboxes"],
                            labels=items[i]["labels"],
                            mosaic_metadata=[items[j] for j in others])
            outs.append(out["image"])
        return np.stack(outs)

    try:
        sec = _harness.time_fn(run, repeats=repeats, warmup=1)
    except Exception as e:  # noqa: BLE001 - a peer failing to run is reported, not fatal.
        return Row(case, "albumentations Mosaic", None,
                   note=f"failed: {type(e).__name__}: {str(e)[:80]}")
    return Row(case, "albumentations Mosaic", sec,
               note=f"per image, NumPy in/out, {size}x{size} out")


def _ultralytics_row(case, images, boxes, classes, valid, size, repeats):
    mod, why = _harness.try_import("ultralytics.data.augment")
    inst_mod, why2 = _harness.try_import("ultralytics.utils.instance")
    if mod is None or inst_mod is None:
        return Row(case, "ultralytics Mosaic", None, note=why or why2)
    Instances = inst_mod.Instances
    b = images.shape[0]

    def label(i):
        bb = boxes[i][valid[i]].astype(np.float32)
        return {"img": images[i], "resized_shape": (size, size), "ori_shape": (size, size),
                "im_file": f"{i}.jpg", "cls": classes[i][valid[i]][:, None].astype(np.float32),
                "instances": Instances(bb, np.zeros((0, 1000, 2), np.float32), None,
                                       bbox_format="xyxy", normalized=False)}

    class _Dataset:
        cache = "ram"  # no buffer: partners are drawn from the whole dataset

        def __len__(self):
            return b

        def get_image_and_label(self, i):
            return label(i)

    try:
        mosaic = mod.Mosaic(_Dataset(), imgsz=size, p=1.0, n=4)

        def run():
            return np.stack([mosaic(label(i))["img"] for i in range(b)])

        sec = _harness.time_fn(run, repeats=repeats, warmup=1)
    except Exception as e:  # noqa: BLE001
        return Row(case, "ultralytics Mosaic", None,
                   note=f"failed: {type(e).__name__}: {str(e)[:80]}")
    return Row(case, "ultralytics Mosaic", sec,
               note=f"per image, {2 * size}x{2 * size} canvas, NumPy in/out")


def _mosaic_cases(quick: bool, steady: bool) -> list[Row]:
    import jax

    from jbalance import augment

    b, size, m = (4, 128, 8) if quick else (16, 640, 8)
    repeats = 5 if quick else 10
    tag = "steady" if steady else "fresh"
    rng = np.random.default_rng(0)
    images, boxes, classes, valid = _make_detection(b, size, m, rng)
    case = f"mosaic+boxes [{b},{size},{size},3] u8 -> {size}x{size} ({tag})"
    rows: list[Row] = []
    fn = jax.jit(functools.partial(augment.mosaic_boxes, fill_value=114))
    keys = iter(jax.random.split(jax.random.key(2), 10_000))

    def run_np():  # NumPy in, NumPy out: the transfer both ways is included.
        out = fn(next(keys), images, boxes, classes, valid)
        return tuple(np.asarray(o) for o in out)

    sec = _harness.time_fn(run_np, repeats=repeats)
    rows.append(Row(case, "jbalance", sec, baseline=True,
                    note=f"NumPy in/out; {b / sec:,.0f} images/s"))
    dev = [jax.device_put(a) for a in (images, boxes, classes, valid)]
    sec_d = _harness.time_fn(lambda: fn(next(keys), *dev), repeats=repeats)
    rows.append(Row(case, "jbalance, arrays on device", sec_d, note="no host transfer"))
    big = jax.jit(functools.partial(augment.mosaic_boxes, output_size=(2 * size, 2 * size),
                                    fill_value=114))
    sec_b = _harness.time_fn(lambda: big(next(keys), *dev), repeats=repeats)
    rows.append(Row(case, f"jbalance, {2 * size}x{2 * size} canvas", sec_b,
                    note="ultralytics' output size"))
    sec_s = _time_spare(big, (next(keys), *dev), repeats)
    rows.append(Row(case, f"jbalance, {2 * size}x{2 * size} canvas, spare output donated",
                    sec_s, note="the canvas written into last call's donated output"))
    peer_repeats = max(2, repeats // 3)
    rows.append(_albumentations_row(case, images, boxes, classes, valid, size, peer_repeats))
    rows.append(_ultralytics_row(case, images, boxes, classes, valid, size, peer_repeats))
    rows.append(_floor_row(case, images.nbytes, repeats))
    return rows


def _window_copy_cases(quick: bool) -> list[Row]:
    """The copy loop of Mosaic's corner kernel alone, offsets passed in vs computed in-graph.

    1024 windows of ``[160, 480]`` bytes (the 1280 canvas of 16 640x640 RGB sources) copied
    by `dynamic_slice` -> in-place `dynamic_update_slice` onto a filled canvas. The two jits
    differ only in where the ``[1024, 6]`` offset table comes from: a jit argument, or
    ``table + z`` with ``z = 0`` an argument, so the table lives in XLA's temporary buffer
    as it does inside `mosaic_boxes` (computed from the key). Their loop HLO is identical.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    b, side, n_win, win = (4, 128, 64, 32) if quick else (16, 640, 1024, 160)
    oh, row = 2 * side, 2 * side * 3
    rng = np.random.default_rng(0)
    table = np.stack([rng.integers(0, b, n_win), rng.integers(0, b, n_win),
                      rng.integers(0, oh - win, n_win), rng.integers(0, side - win, n_win),
                      rng.integers(0, row - 3 * win, n_win) // 3 * 3,
                      rng.integers(0, 3 * (side - win), n_win) // 3 * 3], 1).astype(np.int32)
    flat = jnp.asarray(rng.integers(0, 256, (b, side, side * 3), dtype=np.uint8))

    def copies(flat, plan):
        def body(i, out):
            o, s_, oy, sy, ox, sx = (plan[i, j] for j in range(6))
            w_ = lax.dynamic_slice(flat, (s_, sy, sx), (1, win, 3 * win))
            return lax.dynamic_update_slice(out, w_, (o, oy, ox))
        out = jnp.full((b, oh, row), 114, jnp.uint8)
        return lax.fori_loop(0, plan.shape[0], body, out)

    as_arg = jax.jit(copies)
    in_graph = jax.jit(lambda f, p, z: copies(f, p + z))
    t = jnp.asarray(table)
    z = jnp.int32(0)
    repeats = 5 if quick else 10
    case = f"window copies {n_win} x [{win},{3 * win}] u8 -> [{b},{oh},{row}]"
    return [Row(case, "offsets as jit argument", _harness.time_fn(lambda: as_arg(flat, t),
                                                                   repeats=repeats),
                baseline=True),
            Row(case, "offsets computed in-graph", _harness.time_fn(
                lambda: in_graph(flat, t, z), repeats=repeats),
                note="same loop HLO; the table in XLA's temp buffer")]


def _scaling_cases(quick: bool) -> list[Row]:
    """Batch-size scaling (issue 7): time per batch from 8 to 512 examples of 128x128x3 f32.

    The ratio column is time(B) / time(8): linear scaling reads 4x per 4x batch; less than
    that means per-call overhead is being amortised.
    """
    import jax
    import jax.numpy as jnp

    from jbalance import augment

    side, k = (32, 10) if quick else (128, 100)
    batches = (8, 32) if quick else (8, 32, 128, 512)
    rows: list[Row] = []
    for name in ("mixup", "cutmix", "mosaic"):
        fn = jax.jit(getattr(augment, name))
        case = f"scaling {name} [B,{side},{side},3] f32"
        for b in batches:
            key = jax.random.key(b)
            images = jax.random.uniform(key, (b, side, side, 3), jnp.float32)
            labels = jax.nn.one_hot(jnp.arange(b) % k, k, dtype=jnp.float32)
            sec = _harness.time_fn(lambda: fn(key, images, labels), repeats=5 if quick else 10)
            rows.append(Row(case, f"jbalance B={b}", sec, baseline=(b == batches[0]),
                            note=f"{b / sec:,.0f} images/s"))
    return rows


# ---------------------------------------------------------------------------------------------
# Issue 14: the batch paths, in-place CutMix, and the allocator, side by side.

_ALLOCATORS = {"jemalloc": "libjemalloc.so.2", "tcmalloc": "libtcmalloc.so.4"}

# glibc kept from returning large blocks: one arena (XLA's worker threads otherwise allocate
# from per-thread arenas, whose heaps stop at 64 MiB, so a 79 MB Mosaic canvas is mmapped
# and faulted in on every call whatever the thresholds) and thresholds above the outputs.
GLIBC_TUNED = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
               "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1)}
JEMALLOC_KEEP = "dirty_decay_ms:-1,muzzy_decay_ms:-1"


def _find_allocators() -> dict[str, str]:
    """Preloadable allocators present on this machine (from ``ldconfig -p``)."""
    import subprocess

    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                                 check=False).stdout
    except OSError:
        return {}
    found = {}
    for name, lib in _ALLOCATORS.items():
        for line in listing.splitlines():
            if line.strip().startswith(lib) and "=>" in line:
                found[name] = line.split("=>")[-1].strip()
                break
    return found


def core_rows(quick: bool) -> list[dict]:
    """MixUp/CutMix (jbalance fresh, and donated with ``in_place=True``), timm, a copy floor,
    and the Mosaic cases (albumentations, ultralytics) under the same allocator.

    Run once per allocator in a fresh process (see `_allocator_cases`); returns plain dicts.
    """
    import jax
    import jax.numpy as jnp

    from jbalance import augment

    b, h, w, c, k = (8, 64, 64, 3, 10) if quick else (64, 224, 224, 3, 1000)
    repeats = 5 if quick else 12
    rng = np.random.default_rng(0)
    x_np = rng.random((b, h, w, c), dtype=np.float32)
    y_int = rng.integers(0, k, b)
    x = jnp.asarray(x_np)
    y = jax.nn.one_hot(jnp.asarray(y_int), k, dtype=jnp.float32)
    keys = iter(jax.random.split(jax.random.key(1), 100_000))
    out = []
    torch, _ = _harness.try_import("torch")
    mixup_cls, why_timm = _load_timm_mixup() if torch is not None else (None, "no torch")
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
        xt = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous()
        yt = torch.from_numpy(y_int)
    for op in ("mixup", "cutmix"):
        for mode in ("batch", "elem"):
            case = f"{op} {mode} [{b},{h},{w},{c}] f32"
            fn = jax.jit(functools.partial(getattr(augment, op), mode=mode))
            sec = _harness.time_fn(lambda fn=fn: fn(next(keys), x, y), repeats=repeats)
            out.append({"case": case, "impl": "jbalance", "seconds": sec})
            # Donated, in place: a training loop donates a batch it no longer needs; here
            # the fresh input is made by an untimed copy per call.
            sec_d = _time_donated(functools.partial(getattr(augment, op), mode=mode,
                                                    in_place=True), keys, x, y, repeats)
            out.append({"case": case, "impl": "jbalance, donated, in_place=True",
                        "seconds": sec_d})
            sec_s = _time_spare(lambda k, a, b, op=op, mode=mode: getattr(augment, op)(
                k, a, b, mode=mode), (next(keys), x, y), repeats)
            out.append({"case": case, "impl": "jbalance, spare output buffer donated",
                        "seconds": sec_s})
            if mixup_cls is not None:
                kw = ({"mixup_alpha": 1.0, "cutmix_alpha": 0.0} if op == "mixup"
                      else {"mixup_alpha": 0.0, "cutmix_alpha": 1.0})
                mix = mixup_cls(**kw, mode=mode, num_classes=k, label_smoothing=0.0,
                                correct_lam=True)
                work = xt.clone()
                sec_t = _harness.time_fn(lambda mix=mix, work=work: (work.copy_(xt),
                                                                     mix(work, yt)),
                                         repeats=repeats)
                sec_c = _harness.time_fn(lambda work=work: work.copy_(xt), repeats=repeats)
                out.append({"case": case, "impl": "timm Mixup",
                            "seconds": max(sec_t - sec_c, 1e-9),
                            "note": "in place; input-restore copy subtracted"})
            else:
                out.append({"case": case, "impl": "timm Mixup", "seconds": None,
                            "note": why_timm})
    src = np.ones(x_np.nbytes, np.uint8)
    dst = np.empty_like(src)
    sec = _harness.time_fn(lambda: np.copyto(dst, src), repeats=repeats)
    out.append({"case": f"copy of the batch ({x_np.nbytes / 2**20:.0f} MiB)",
                "impl": "floor: np.copyto", "seconds": sec})
    # The copy's own time swings 2x between moments on a shared VM, so the "within 2x of a
    # copy" figure interleaves the two: one in-place MixUp, one copy, and so on.
    for mode in ("batch", "elem"):
        fn = jax.jit(functools.partial(augment.mixup, mode=mode, in_place=True),
                     donate_argnums=1)
        jax.block_until_ready(fn(next(keys), jnp.copy(x), y))
        mix_t, copy_t = [], []
        for _ in range(2 * repeats):
            xc = jax.block_until_ready(jnp.copy(x))
            kk = next(keys)
            t0 = time.perf_counter()
            jax.block_until_ready(fn(kk, xc, y))
            t1 = time.perf_counter()
            np.copyto(dst, src)
            mix_t.append(t1 - t0)
            copy_t.append(time.perf_counter() - t1)
        ratio = float(np.median(np.asarray(mix_t) / np.asarray(copy_t)))
        out.append({"case": f"mixup {mode} in place / copy, interleaved", "impl":
                    "jbalance, donated, in_place=True", "seconds": float(np.median(mix_t)),
                    "note": f"{ratio:.2f}x the interleaved copy ({1e3 * np.median(copy_t):.2f} "
                            f"ms; median of per-pair ratios)"})
    out += [{"case": r.case.replace(" (fresh)", ""), "impl": r.impl, "seconds": r.seconds,
             "note": r.note} for r in _mosaic_cases(quick, steady=False)]
    return out


def _allocator_cases(quick: bool) -> list[Row]:
    """`core_rows` in fresh processes: glibc as it comes, glibc tuned (`GLIBC_TUNED`),
    then each preloadable allocator."""
    import json
    import subprocess
    import sys

    runs: dict[str, dict[str, str]] = {"default": {}, "glibc tuned": GLIBC_TUNED}
    for name, lib in _find_allocators().items():
        runs[name] = {"LD_PRELOAD": lib}
        if name == "jemalloc":  # jemalloc purges blocks above 8 MiB at once unless told not to
            runs["jemalloc, decay off"] = {"LD_PRELOAD": lib, "MALLOC_CONF": JEMALLOC_KEEP}
    code = ("import json, sys; from benchmarks.bench_augment import core_rows; "
            f"print('ROWS' + json.dumps(core_rows({quick})))")
    rows: list[Row] = []
    for name, extra_env in runs.items():
        env = {k: v for k, v in os.environ.items()
               if k not in GLIBC_TUNED and k not in ("LD_PRELOAD", "MALLOC_CONF")}
        env.update(extra_env)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=os.path.dirname(os.path.dirname(
                                  os.path.abspath(__file__))), check=False)
        found = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROWS")]
        if not found:
            rows.append(Row(f"allocator {name}", "jbalance", None,
                            note=f"run failed: {proc.stderr.strip()[-120:]}"))
            continue
        for r in json.loads(found[0][4:]):
            rows.append(Row(f"{r['case']} [{name}]", r["impl"], r["seconds"],
                            baseline=r["impl"] == "jbalance", note=r.get("note", "")))
    if "jemalloc" not in runs:
        rows.append(Row("allocator jemalloc", "jbalance", None,
                        note="libjemalloc.so.2 not found (apt-get install libjemalloc2)"))
    return rows


def _train_step_cases(quick: bool) -> list[Row]:
    """A jitted Flax NNX train step with and without an augmentation fused into it.

    Small conv net (two stride-2 3x3 convs, global average pool, dense), softmax
    cross-entropy on the mixed soft labels, Adam. The overhead is
    ``(t_with - t_without) / t_without`` of the same step in the same run.
    """
    flax_nnx, why = _harness.try_import("flax.nnx")
    if flax_nnx is None:
        return [Row("train step", "jbalance", None, note=f"flax not importable: {why}")]
    import jax
    import jax.numpy as jnp
    import optax

    from jbalance import augment

    nnx = flax_nnx
    b, side, k = (8, 64, 10) if quick else (64, 224, 100)
    repeats = 3 if quick else 8

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.c1 = nnx.Conv(3, 16, (3, 3), strides=(2, 2), rngs=rngs)
            self.c2 = nnx.Conv(16, 32, (3, 3), strides=(2, 2), rngs=rngs)
            self.fc = nnx.Linear(32, k, rngs=rngs)

        def __call__(self, x):
            x = jax.nn.relu(self.c1(x))
            x = jax.nn.relu(self.c2(x))
            return self.fc(x.mean(axis=(1, 2)))

    augs = {
        "none": None,
        "mixup": lambda key, x, y: augment.mixup(key, x, y, alpha=1.0),
        "cutmix": lambda key, x, y: augment.cutmix(key, x, y, alpha=1.0),
        "mosaic": lambda key, x, y: augment.mosaic(key, x, y),
    }
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((b, side, side, 3), dtype=np.float32))
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, k, b)), k, dtype=jnp.float32)
    case = f"train step [{b},{side},{side},3] f32, NNX conv net"
    steps = {}
    for name, aug in augs.items():
        model = Net(nnx.Rngs(0))
        opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

        @nnx.jit
        def step(model, opt, key, xb, yb, aug=aug):
            if aug is not None:
                xb, yb = aug(key, xb, yb)

            def loss_fn(m):
                return optax.softmax_cross_entropy(m(xb), yb).mean()

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            opt.update(model, grads)
            return loss

        steps[name] = (step, model, opt)
    keys = iter(jax.random.split(jax.random.key(0), 1000))
    for step, model, opt in steps.values():  # compile and warm up
        for _ in range(2):
            jax.block_until_ready(step(model, opt, next(keys), x, y))
    # Interleaved rounds (every configuration once per round) and the minimum per
    # configuration: on a loaded machine the minimum is the least disturbed figure.
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, (step, model, opt) in steps.items():
            kk = next(keys)
            t0 = time.perf_counter()
            jax.block_until_ready(step(model, opt, kk, x, y))
            times[name].append(time.perf_counter() - t0)
    base = min(times["none"])
    rows = [Row(case, "step, no augmentation", base, baseline=True,
                note=f"min of {repeats} interleaved rounds (median "
                     f"{1e3 * float(np.median(times['none'])):.0f} ms)")]
    for name in ("mixup", "cutmix", "mosaic"):
        sec = min(times[name])
        rows.append(Row(case, f"step + {name} fused", sec,
                        note=f"augmentation overhead {100 * (sec - base) / base:+.1f}% of the "
                             f"step (median {1e3 * float(np.median(times[name])):.0f} ms)"))
    return rows


def run(quick: bool) -> list[Row]:
    rows = _classification_cases(quick, steady=False) + _mosaic_cases(quick, steady=False)
    rows += _window_copy_cases(quick) + _scaling_cases(quick)
    rows += _allocator_cases(quick)  # fresh processes: before mallopt changes this one
    rows += _train_step_cases(quick)
    if _set_steady_allocator():
        rows += _classification_cases(quick, steady=True) + _mosaic_cases(quick, steady=True)
    else:
        rows.append(Row("steady", "jbalance", None, note="mallopt unavailable (not glibc)"))
    return rows


if __name__ == "__main__":
    _harness.main(run)
