"""Tests for jbalance.boxes: formats against a formula reference (and torchvision when
importable), padding against a per-image loop, and the box policy."""

import importlib.util
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_augment import np_clip_boxes

from jbalance import boxes

H, W = 48.0, 64.0


def np_to_xyxy(b, fmt, h=H, w=W):
    """Formula reference, written from the format definitions (float64)."""
    b = np.asarray(b, np.float64).copy()
    if fmt.endswith("n"):
        b = b * np.array([w, h, w, h])
        fmt = fmt[:-1]
    p, q, r, s = b.T
    if fmt == "xywh":
        return np.stack([p, q, p + r, q + s], -1)
    if fmt == "cxcywh":
        return np.stack([p - r / 2, q - s / 2, p + r / 2, q + s / 2], -1)
    return b


def np_from_xyxy(b, fmt, h=H, w=W):
    x1, y1, x2, y2 = np.asarray(b, np.float64).T
    base = fmt.rstrip("n")
    if base == "xywh":
        out = np.stack([x1, y1, x2 - x1, y2 - y1], -1)
    elif base == "cxcywh":
        out = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
    else:
        out = np.stack([x1, y1, x2, y2], -1)
    return out / np.array([w, h, w, h]) if fmt.endswith("n") else out


def _xyxy(n=50, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1, (n, 2)) * np.array([W - 8, H - 8])
    wh = rng.uniform(1, 8, (n, 2))
    return np.concatenate([xy, xy + wh], -1).astype(np.float32)


_convert = jax.jit(boxes.convert, static_argnames=("src", "dst"))


@pytest.mark.parametrize("src,dst", list(itertools.permutations(boxes.FORMATS, 2)))
def test_convert_matches_the_formula_reference(src, dst):
    xyxy = _xyxy()
    given = np_from_xyxy(xyxy, src).astype(np.float32)
    got = _convert(given, src=src, dst=dst, image_size=(H, W))
    want = np_from_xyxy(np_to_xyxy(given, src), dst)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    assert got.dtype == jnp.float32 and got.shape == given.shape


@pytest.mark.parametrize("fmt", boxes.FORMATS)
def test_round_trips_are_exact_to_float_tolerance(fmt):
    xyxy = jnp.asarray(_xyxy(seed=1))
    there = _convert(xyxy, src="xyxy", dst=fmt, image_size=(H, W))
    back = _convert(there, src=fmt, dst="xyxy", image_size=(H, W))
    np.testing.assert_allclose(np.asarray(back), np.asarray(xyxy), rtol=1e-6, atol=1e-5)
    assert not np.array_equal(np.asarray(there), np.asarray(xyxy)) or fmt == "xyxy"


def test_hand_worked_yolo_and_coco_boxes():
    # YOLO: a 640x480 image, centre (0.5, 0.5), 25% x 50% of the image.
    got = boxes.convert(jnp.array([0.5, 0.5, 0.25, 0.5]), src="cxcywhn", dst="xyxy",
                        image_size=(480, 640))
    assert got.tolist() == [240.0, 120.0, 400.0, 360.0]
    got = boxes.convert(jnp.array([[10.0, 20.0, 30.0, 40.0]]), src="xywh", dst="cxcywh")
    assert got.tolist() == [[25.0, 40.0, 30.0, 40.0]]


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                    reason="torchvision not installed (the formula reference covers it)")
@pytest.mark.parametrize("src,dst", list(itertools.permutations(("xyxy", "xywh", "cxcywh"), 2))
                         )
def test_convert_equals_torchvision_box_convert(src, dst):
    import torch
    from torchvision.ops import box_convert

    given = np_from_xyxy(_xyxy(seed=2), src).astype(np.float32)
    want = box_convert(torch.from_numpy(given), in_fmt=src, out_fmt=dst).numpy()
    np.testing.assert_array_equal(np.asarray(boxes.convert(given, src=src, dst=dst)), want)


def test_per_box_image_sizes_and_batch_shapes():
    rng = np.random.default_rng(3)
    b = rng.uniform(0.1, 0.4, (2, 5, 4)).astype(np.float32)
    hs = rng.integers(100, 800, (2, 5)).astype(np.float32)
    ws = rng.integers(100, 800, (2, 5)).astype(np.float32)
    got = np.asarray(boxes.convert(b, src="xywhn", dst="xyxy", image_size=(hs, ws)))
    for i, j in np.ndindex(2, 5):
        want = np_to_xyxy(b[i, j][None], "xywhn", hs[i, j], ws[i, j])[0]
        np.testing.assert_allclose(got[i, j], want, rtol=1e-5)
    # One size per image, broadcast over its boxes.
    got2 = boxes.convert(b, src="xywhn", dst="xyxy", image_size=(hs[:, :1], ws[:, :1]))
    np.testing.assert_allclose(np.asarray(got2)[:, 0], got[:, 0], rtol=1e-6)


def test_jit_vmap_grad_and_dtypes():
    b = jnp.asarray(_xyxy(8))
    f = lambda x, s: boxes.convert(x, src="xyxy", dst="cxcywhn", image_size=(s, s))  # noqa
    out = jax.vmap(f, in_axes=(0, None))(b, 64.0)
    np.testing.assert_allclose(out, f(b, 64.0), rtol=1e-6)
    g = jax.grad(lambda x: f(x, 64.0)[:, 2].sum())(b)  # d(w/64)/dx1 = -1/64, dx2 = +1/64
    np.testing.assert_allclose(g[:, 0], -1 / 64) and np.testing.assert_allclose(g[:, 2], 1 / 64)
    assert boxes.convert(b.astype(jnp.bfloat16), src="xyxy", dst="xywhn",
                         image_size=(48, 64)).dtype == jnp.bfloat16
    assert boxes.convert(jnp.array([[1, 2, 3, 4]]), src="xyxy", dst="xywh").dtype == jnp.float32


@pytest.mark.parametrize("call,match", [
    (lambda: boxes.convert(jnp.ones((2, 4)), src="cxcywhn", dst="xyxy"), "image_size"),
    (lambda: boxes.convert(jnp.ones((2, 4)), src="xyxy", dst="xywhn"), "image_size"),
    (lambda: boxes.convert(jnp.ones((2, 4)), src="yolo", dst="xyxy"), "src"),
    (lambda: boxes.convert(jnp.ones((2, 4)), src="xyxy", dst="XYXY"), "dst"),
    (lambda: boxes.convert(jnp.ones((2, 3)), src="xyxy", dst="xywh"), "boxes"),
    (lambda: boxes.convert(jnp.ones((2, 4)), src="xyxyn", dst="xyxy", image_size=(0, 5)),
     "image_size"),
    (lambda: boxes.convert(jnp.ones((2, 4)), src="xyxyn", dst="xyxy",
                           image_size=(5, jnp.inf)), "image_size"),
    (lambda: boxes.convert(jnp.ones((2, 4)), src="xyxyn", dst="xyxy",
                           image_size=(jnp.ones(3), 5)), "image_size"),
    (lambda: boxes.convert(jnp.ones((2, 4)), src="xyxyn", dst="xyxy", image_size=640),
     "image_size"),
])
def test_convert_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_normalised_to_normalised_needs_no_size():
    b = jnp.array([[0.5, 0.5, 0.2, 0.4]])
    got = boxes.convert(b, src="cxcywhn", dst="xyxyn")
    np.testing.assert_allclose(np.asarray(got), [[0.4, 0.3, 0.6, 0.7]], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# pad_objects.


def _objects(seed=0, n_images=6, k=25, fmt="cxcywhn"):
    rng = np.random.default_rng(seed)
    return boxes.Objects(rng.integers(0, n_images, k).astype(np.int32),
                         rng.integers(0, 5, k).astype(np.int32),
                         rng.uniform(0, 1, (k, 4)).astype(np.float32), fmt)


def _pad_reference(objects, idx, m):
    out_b = np.zeros((len(idx), m, 4), np.float32)
    out_c = np.zeros((len(idx), m), np.int32)
    out_v = np.zeros((len(idx), m), bool)
    for r, i in enumerate(idx):
        rows = [j for j in range(len(objects.image_index)) if objects.image_index[j] == i][:m]
        for s, j in enumerate(rows):
            out_b[r, s], out_c[r, s], out_v[r, s] = objects.boxes[j], objects.class_index[j], True
    return out_b, out_c, out_v


def test_pad_objects_matches_a_per_image_loop():
    objs = _objects()
    m = int(np.bincount(objs.image_index).max())
    idx = np.array([3, 0, 0, 5, 9, 1])  # repeats, and 9 has no objects
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation: no warning
        got = boxes.pad_objects(objs, idx, max_boxes=m)
    for g, w in zip(got, _pad_reference(objs, idx, m)):
        np.testing.assert_array_equal(g, w)
    b, c, v = got
    assert b.dtype == np.float32 and c.dtype == np.int32 and v.dtype == bool
    assert got.boxes is b and not v[4].any()


def test_pad_objects_truncation_keeps_the_first_and_says_so():
    objs = _objects(seed=1)
    idx = np.arange(6)
    counts = np.bincount(objs.image_index, minlength=6)
    with pytest.warns(boxes.BoxesTruncatedWarning, match=f"dropped {(counts - 2).clip(0).sum()}"):
        got = boxes.pad_objects(objs, idx, max_boxes=2)
    for g, w in zip(got, _pad_reference(objs, idx, 2)):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(ValueError, match="max_boxes"):
        boxes.pad_objects(objs, idx, max_boxes=2, on_overflow="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        boxes.pad_objects(objs, idx, max_boxes=2, on_overflow="ignore")


@pytest.mark.parametrize("call,match", [
    (lambda o: boxes.pad_objects(o, [-1], max_boxes=2), "image_indices"),
    (lambda o: boxes.pad_objects(o, [0.5], max_boxes=2), "image_indices"),
    (lambda o: boxes.pad_objects(o, [0], max_boxes=0), "max_boxes"),
    (lambda o: boxes.pad_objects(o._replace(box_format="yolo"), [0], max_boxes=2),
     "box_format"),
    (lambda o: boxes.pad_objects(o._replace(boxes=o.boxes[:, :3]), [0], max_boxes=2),
     "objects"),
])
def test_pad_objects_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call(_objects())


def test_objects_fields_are_the_io_contract():
    assert boxes.Objects._fields == ("image_index", "class_index", "boxes", "box_format")
    assert set(boxes.FORMATS) == {"xyxy", "xywh", "cxcywh", "xyxyn", "xywhn", "cxcywhn"}
    empty = boxes.Objects(np.zeros(0, np.int32), np.zeros(0, np.int32),
                          np.zeros((0, 4), np.float32), "xyxy")
    b, c, v = boxes.pad_objects(empty, [0, 1], max_boxes=3)
    assert b.shape == (2, 3, 4) and not v.any()


# ---------------------------------------------------------------------------------------------
# The box policy.


@pytest.mark.parametrize("fmt", ["xyxy", "cxcywhn"])
def test_clip_boxes_matches_the_numpy_policy(fmt):
    rng = np.random.default_rng(4)
    xyxy = rng.uniform(-20, 80, (40, 4)).astype(np.float32)  # off-image and inverted boxes
    xyxy[3, 1] = np.nan
    xyxy[5, 2] = np.inf
    valid = rng.random(40) < 0.9
    want_b, want_v = np_clip_boxes(xyxy, valid, H, W)
    given = np_from_xyxy(xyxy, fmt).astype(np.float32)
    out = boxes.clip_boxes(given, jnp.asarray(valid), image_size=(H, W), box_format=fmt)
    assert isinstance(out, boxes.ClippedBoxes) and out._fields == ("boxes", "valid")
    got_b, got_v = out  # unpacks as a pair
    assert got_b is out.boxes and got_v is out.valid
    np.testing.assert_array_equal(np.asarray(got_v), want_v)
    back = np.asarray(boxes.convert(got_b, src=fmt, dst="xyxy", image_size=(H, W)))
    np.testing.assert_allclose(back, want_b, atol=1e-4)
    assert 0 < want_v.sum() < valid.sum()


def test_yolo_mosaic_example_end_to_end():
    from examples import yolo_mosaic

    res = yolo_mosaic.run(seed=3, size=64)
    assert int(res["input_valid"].sum()) == sum(len(v) for v in yolo_mosaic.LABELS.values())
    assert res["valid"].any() and np.isfinite(res["boxes"]).all()
    kept = res["boxes"][res["valid"]]
    assert (kept >= 0).all() and (kept <= 1).all()  # YOLO boxes of the 128x128 canvas
    assert res["images"].shape == (4, 128, 128, 3)
