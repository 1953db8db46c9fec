"""Tests for jbalance.augment against the NumPy references in tests/reference_augment.py.

Most checks call the functions through `J` (a cached `jax.jit`), which keeps the file fast;
`test_jit_equals_eager_and_same_key_same_output` checks that eager calls agree.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from reference_augment import (mosaic_regions, np_clip_boxes, np_cutmix, np_mixup, np_mosaic,
                               np_mosaic_boxes, np_remix_label_weight, source_origins)

from jbalance import augment
from jbalance import boxes as boxes_lib
from jbalance._src import augment as augment_src

# ---------------------------------------------------------------------------------------------
# Helpers: data and the documented key derivation of the batch functions.


@functools.cache
def _jitted(fn, options):
    return jax.jit(functools.partial(fn, **dict(options)))


def J(fn, **options):
    """``fn`` under `jax.jit` with static keyword options, compiled once per signature."""
    if options.get("mode") == "elem":  # the default: share the compilation
        del options["mode"]
    return _jitted(fn, tuple(sorted(options.items())))


_beta = jax.jit(jax.random.beta)


def _derive(key, b, *, mode="elem", num_partners=1, partner_weights=None):
    """Keys and partners exactly as jbalance.augment documents them (module docstring)."""
    key_partners, key_examples = jax.random.split(key)
    fn = J(augment.partner_indices, batch_size=b, num_partners=num_partners)
    partners = fn(key_partners, partner_weights=partner_weights)
    if mode == "batch":
        keys = jnp.broadcast_to(key_examples, (b,))
    else:
        keys = jax.random.split(key_examples, b)
    return keys, np.asarray(partners)


def _rng(key):
    """A NumPy generator seeded from a JAX key (test data is made with NumPy: fast)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).astype(np.uint64))


def _images(key, b, h=12, w=10, c=3, dtype=jnp.float32):
    rng = _rng(key)
    if dtype == jnp.uint8:
        return jnp.asarray(rng.integers(0, 256, (b, h, w, c), dtype=np.uint8))
    if dtype == jnp.int32:
        return jnp.asarray(rng.integers(-1000, 1000, (b, h, w, c), dtype=np.int32))
    return jnp.asarray(rng.random((b, h, w, c), dtype=np.float32)).astype(dtype)


def _soft_labels(key, b, k=4):
    z = _rng(key).normal(size=(b, k)) * 2
    p = np.exp(z - z.max(-1, keepdims=True))
    return jnp.asarray((p / p.sum(-1, keepdims=True)).astype(np.float32))


def _boxes(key, b, m=3, h=12, w=10):
    rng = _rng(key)
    xy = rng.uniform(0.0, 1.0, (b, m, 2)) * np.array([w - 3.0, h - 3.0])
    wh = rng.uniform(0.0, 1.0, (b, m, 2)) * np.array([w / 2 - 1, h / 2 - 1]) + 1.0
    boxes = np.concatenate([xy, np.minimum(xy + wh, np.array([w, h]))], -1).astype(np.float32)
    classes = rng.integers(0, 7, (b, m)).astype(np.int32)
    valid = rng.random((b, m)) < 0.8
    return jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(valid)


def _layout_centre(rects, tiles):
    """(cy, cx, left_right) read back from the tile rectangles of `mosaic_layout`."""
    rects = np.asarray(rects)
    if tiles == 4:
        return int(rects[0, 1]), int(rects[0, 3]), True
    left_right = bool(rects[1, 0] == 0)
    return int(rects[0, 1]), int(rects[0, 3]), left_right


def _mosaic_reference(key, images, tiles, out_hw, placement="corner", fill=0,
                      partner_weights=None):
    """Expected output of the batch mosaic, built one example at a time with NumPy."""
    images = np.asarray(images)
    b, h, w = images.shape[:3]
    keys, partners = _derive(key, b, num_partners=tiles - 1, partner_weights=partner_weights)
    outs, all_regions, all_origins, all_sources = [], [], [], []
    for i in range(b):
        rects, _ = J(augment.mosaic_layout, source_size=(h, w), tiles=tiles,
                     output_size=out_hw, placement=placement)(keys[i])
        cy, cx, left_right = _layout_centre(rects, tiles)
        regions = mosaic_regions(tiles, (cy, cx), out_hw, left_right)
        np.testing.assert_array_equal(np.asarray(rects), np.asarray(regions))
        origins = source_origins(tiles, (cy, cx), out_hw, (h, w), left_right, placement)
        sources = [i, *partners[i]]
        outs.append(np_mosaic(images[sources], regions, origins, out_hw, fill=fill))
        all_regions.append(regions)
        all_origins.append(origins)
        all_sources.append(sources)
    return np.stack(outs), all_regions, all_origins, all_sources


# ---------------------------------------------------------------------------------------------
# MixUp.


@pytest.mark.parametrize("b,dtype,mode", [(5, jnp.float32, "elem"), (5, jnp.uint8, "elem"),
                                          (3, jnp.float32, "batch"), (1, jnp.uint8, "batch")])
def test_mixup_matches_reference(getkey, b, dtype, mode):
    x, y = _images(getkey(), b, dtype=dtype), _soft_labels(getkey(), b)
    key, alpha = getkey(), 0.7
    got_x, got_y = J(augment.mixup, mode=mode)(key, x, y, alpha=alpha)
    assert got_x.dtype == x.dtype and got_y.dtype == y.dtype
    keys, partners = _derive(key, b, mode=mode)
    xn, yn = np.asarray(x), np.asarray(y)
    for i in range(b):
        lam = float(_beta(keys[i], alpha, alpha))
        p = partners[i, 0]
        want_x, want_y = np_mixup(xn[i], yn[i], xn[p], yn[p], lam)
        if dtype == jnp.uint8:
            # Halfway cases may round differently after float32 re-association: allow 1.
            assert np.abs(np.asarray(got_x[i], np.int32) - want_x.astype(np.int32)).max() <= 1
        else:
            np.testing.assert_allclose(got_x[i], want_x, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got_y[i], want_y, rtol=1e-6, atol=1e-6)


def test_mixup_hand_computed_value():
    # lam*1 + (1-lam)*0 = lam, and the labels [1, 0], [0, 1] mix to [lam, 1 - lam].
    key = jax.random.key(3)
    x, y = J(augment.mixup_one)(key, jnp.ones((2, 2, 1)), jnp.array([1.0, 0.0]),
                                jnp.zeros((2, 2, 1)), jnp.array([0.0, 1.0]), alpha=2.0)
    lam = float(jax.random.beta(key, 2.0, 2.0))
    np.testing.assert_allclose(x, np.full((2, 2, 1), lam), rtol=1e-6)
    np.testing.assert_allclose(y, [lam, 1 - lam], rtol=1e-6)


@jax.jit
def _lambda_samples(keys, alpha):
    one = jnp.ones((1, 1, 1))
    lab = jnp.array([1.0, 0.0])
    return jax.vmap(lambda k: augment.mixup_one(k, one, lab, one * 0, 1 - lab, alpha=alpha))(
            keys)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixup_lambda_is_beta_distributed(alpha):
    n = 4000
    keys = jax.random.split(jax.random.key(11), n)
    x, _ = _lambda_samples(keys, alpha)  # alpha traced: one compilation for all three
    lam = np.asarray(x).ravel()
    assert scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    se = np.sqrt(1 / (4 * (2 * alpha + 1)) / n)
    assert abs(lam.mean() - 0.5) < 4 * se


def test_mixup_batch_lambdas_distinct_per_example_and_shared_in_batch_mode():
    b = 64
    x = jnp.zeros((b, 2, 2, 1))
    y = jnp.eye(b)
    key = jax.random.key(5)
    _, partners = _derive(key, b)
    _, ye = J(augment.mixup)(key, x, y, alpha=1.0)
    own = np.diag(np.asarray(ye))[partners[:, 0] != np.arange(b)]
    assert len(np.unique(own)) == len(own) > 30
    _, yb = J(augment.mixup, mode="batch")(key, x, y, alpha=1.0)
    own_b = np.diag(np.asarray(yb))[partners[:, 0] != np.arange(b)]
    np.testing.assert_allclose(own_b, own_b[0])
    # The batch function's lambdas are Beta(alpha, alpha) as well (fixed key).
    lam = np.concatenate([
            np.diag(np.asarray(J(augment.mixup)(jax.random.key(s), x, y, alpha=1.0)[1]))
            for s in range(20)])
    assert scipy.stats.kstest(lam, "uniform").pvalue > 1e-3


def test_batch_of_one_mixes_with_itself(getkey):
    x, y = _images(getkey(), 1), _soft_labels(getkey(), 1)
    for fn in (augment.mixup, augment.cutmix, augment.mosaic):
        gx, gy = J(fn)(getkey(), x, y)
        np.testing.assert_allclose(gy, y, rtol=1e-6)
        if fn is not augment.mosaic:
            np.testing.assert_allclose(gx, x, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# CutMix.


@pytest.mark.parametrize("b,dtype,mode", [(7, jnp.float32, "elem"), (4, jnp.uint8, "elem"),
                                          (1, jnp.bfloat16, "elem"), (5, jnp.uint8, "batch")])
def test_cutmix_matches_reference(getkey, b, dtype, mode):
    x, y = _images(getkey(), b, dtype=dtype), _soft_labels(getkey(), b)
    key = getkey()
    got_x, got_y = J(augment.cutmix, mode=mode)(key, x, y, alpha=1.0)
    assert got_x.dtype == x.dtype
    keys, partners = _derive(key, b, mode=mode)
    xn, yn = np.asarray(x), np.asarray(y)
    for i in range(b):
        box, _ = J(augment.cutmix_box, height=x.shape[1], width=x.shape[2])(keys[i], alpha=1.0)
        p = partners[i, 0]
        want_x, want_y = np_cutmix(xn[i], yn[i], xn[p], yn[p], np.asarray(box))
        np.testing.assert_array_equal(np.asarray(got_x[i]), want_x)
        np.testing.assert_allclose(got_y[i], want_y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(16, 16), (9, 13), (1, 5)])
def test_cutmix_label_weight_is_exact_pasted_fraction(shape):
    b = 32
    h, w = shape
    x = jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.float32)[:, None, None, None],
                         (b, h, w, 2))
    y = jnp.eye(b)
    key = jax.random.key(7)
    gx, gy = J(augment.cutmix)(key, x, y, alpha=0.5)
    _, partners = _derive(key, b)
    gx, gy = np.asarray(gx), np.asarray(gy)
    checked = 0
    for i in range(b):
        p = partners[i, 0]
        if p == i:
            continue
        pasted = gx[i, :, :, 0] == p + 1
        frac = np.float32(pasted.sum()) / np.float32(h * w)
        assert gy[i, p] == frac  # exact, not approximately
        assert gy[i, i] == np.float32(1) - frac
        assert np.isin(gx[i], [i + 1, p + 1]).all()
        if pasted.any():  # the pasted pixels form one rectangle
            rows, cols = np.nonzero(pasted)
            assert pasted.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        checked += 1
    assert checked > 20


def test_cutmix_box_lambda_and_clipping():
    keys = jax.random.split(jax.random.key(2), 3000)
    boxes, lam = jax.jit(jax.vmap(lambda k: augment.cutmix_box(k, 20, 30, alpha=1.0)))(keys)
    boxes, lam = np.asarray(boxes), np.asarray(lam)
    assert scipy.stats.kstest(lam, "uniform").pvalue > 1e-3
    assert (boxes[:, 0] <= boxes[:, 1]).all() and (boxes[:, 2] <= boxes[:, 3]).all()
    assert boxes.min() >= 0 and boxes[:, :2].max() <= 20 and boxes[:, 2:].max() <= 30
    # Unclipped boxes have floor(H sqrt(1-lam)) x floor(W sqrt(1-lam)) pixels.
    hs = boxes[:, 1] - boxes[:, 0]
    ws = boxes[:, 3] - boxes[:, 2]
    full = (boxes[:, 0] > 0) & (boxes[:, 1] < 20) & (boxes[:, 2] > 0) & (boxes[:, 3] < 30)
    r = np.sqrt(1 - lam.astype(np.float64))
    np.testing.assert_array_equal(hs[full], np.floor(20 * r[full] + 1e-9).astype(int))
    np.testing.assert_array_equal(ws[full], np.floor(30 * r[full] + 1e-9).astype(int))


# ---------------------------------------------------------------------------------------------
# Mosaic (classification).


@pytest.mark.parametrize("tiles,b,dtype,placement", [
        (4, 5, jnp.uint8, "corner"), (2, 5, jnp.uint8, "corner"), (4, 3, jnp.float32, "same"),
        (2, 1, jnp.float32, "same")])
def test_mosaic_tiles_are_source_crops(getkey, tiles, b, dtype, placement):
    x, y = _images(getkey(), b, h=11, w=14, dtype=dtype), _soft_labels(getkey(), b)
    key = getkey()
    gx, gy = J(augment.mosaic, tiles=tiles, placement=placement)(key, x, y)
    assert gx.shape == x.shape and gx.dtype == x.dtype
    want, regions, _, sources = _mosaic_reference(key, x, tiles, (11, 14), placement)
    np.testing.assert_array_equal(np.asarray(gx), want)
    yn = np.asarray(y)
    for i in range(b):
        area = np.array([(r[1] - r[0]) * (r[3] - r[2]) for r in regions[i]], np.float32)
        assert area.sum() == 11 * 14  # the tiles partition the image
        want_y = (area / np.float32(11 * 14)) @ yn[sources[i]]
        np.testing.assert_allclose(gy[i], want_y, rtol=1e-6, atol=1e-7)


def test_mosaic_of_identical_images_keeps_the_image(getkey):
    x = jnp.broadcast_to(_images(getkey(), 1, dtype=jnp.uint8), (4, 12, 10, 3))
    y = jnp.broadcast_to(jnp.array([[0.25, 0.75]]), (4, 2))
    gx, gy = J(augment.mosaic, placement="same")(getkey(), x, y)
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_allclose(gy, y, rtol=1e-6)


def test_mosaic_centre_range_and_two_tile_orientations():
    keys = jax.random.split(jax.random.key(4), 400)
    rects, offsets = jax.jit(jax.vmap(
            lambda k: augment.mosaic_layout(k, (40, 60), tiles=4)))(keys)
    cy, cx = np.asarray(rects[:, 0, 1]), np.asarray(rects[:, 0, 3])
    assert cy.min() >= 10 and cy.max() <= 30 and cx.min() >= 15 and cx.max() <= 45
    assert np.ptp(cy) > 15 and np.ptp(cx) > 25
    rects2, _ = jax.jit(jax.vmap(lambda k: augment.mosaic_layout(k, (40, 60), tiles=2)))(keys)
    left_right = np.asarray(rects2[:, 1, 0] == 0)
    assert 0.4 < left_right.mean() < 0.6


# ---------------------------------------------------------------------------------------------
# Detection: Mosaic and MixUp with boxes.


@pytest.mark.parametrize("tiles,out_hw,b", [
        (4, None, 5), (2, None, 1), (4, (24, 20), 5), (2, (24, 20), 5), (4, (15, 17), 3),
        (4, (9, 7), 5), (2, (9, 7), 1)])
def test_mosaic_boxes_matches_reference(getkey, tiles, out_hw, b):
    h, w = 12, 10
    x = _images(getkey(), b, h=h, w=w, dtype=jnp.uint8)
    boxes, classes, valid = _boxes(getkey(), b, h=h, w=w)
    key = getkey()
    gx, gb, gc, gv = J(augment.mosaic_boxes, tiles=tiles, output_size=out_hw)(
            key, x, boxes, classes, valid, fill_value=114)
    size = out_hw or (h, w)
    m = boxes.shape[1]
    assert gx.shape == (b, *size, 3) and gb.shape == (b, tiles * m, 4)
    assert gc.shape == gv.shape == (b, tiles * m) and gv.dtype == jnp.bool_
    want, regions, origins, sources = _mosaic_reference(key, x, tiles, size, fill=114)
    np.testing.assert_array_equal(np.asarray(gx), want)
    bn, cn, vn = np.asarray(boxes), np.asarray(classes), np.asarray(valid)
    for i in range(b):
        wb, wv = np_mosaic_boxes(bn[sources[i]], vn[sources[i]], regions[i], origins[i],
                                 (h, w))
        np.testing.assert_array_equal(np.asarray(gv[i]), wv)
        np.testing.assert_allclose(np.asarray(gb[i]), wb, rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(gc[i]), cn[sources[i]].ravel())


@pytest.mark.parametrize("out_hw", [None, (48, 40)])
def test_box_drawn_in_source_is_found_at_its_new_coordinates(out_hw):
    """Colour a rectangle per box; the coloured pixels in the output are exactly the box."""
    b, h, w, m = 6, 24, 20, 2
    rng = np.random.default_rng(0)
    images = np.zeros((b, h, w, 3), np.uint8)
    boxes = np.zeros((b, m, 4), np.float32)
    for s in range(b):
        for j in range(m):  # two disjoint integer boxes: left half and right half
            x1 = rng.integers(0, w // 2 - 4) + j * (w // 2)
            y1 = rng.integers(0, h - 6)
            x2 = x1 + rng.integers(3, w // 2 - (x1 - j * (w // 2)))
            y2 = y1 + rng.integers(4, h - y1)
            boxes[s, j] = (x1, y1, x2, y2)
            images[s, y1:y2, x1:x2] = (s + 1, j + 1, 255)
    classes = np.zeros((b, m), np.int32)
    valid = np.ones((b, m), bool)
    key = jax.random.key(9)
    gx, gb, _, gv = J(augment.mosaic_boxes, output_size=out_hw)(key, images, boxes,
                                                                  classes, valid)
    _, _, _, sources = _mosaic_reference(key, images, 4, out_hw or (h, w))
    rects, _ = jax.jit(jax.vmap(
            lambda k: augment.mosaic_layout(k, (h, w), output_size=out_hw)))(
            _derive(key, b, num_partners=3)[0])
    gx, gb, gv, rects = map(np.asarray, (gx, gb, gv, rects))
    found = dropped = 0
    for i in range(b):
        for t in range(4):
            y1, y2, x1, x2 = rects[i, t]
            tile = gx[i, y1:y2, x1:x2]
            for j in range(m):
                s = sources[i][t]
                hit = (tile == np.array([s + 1, j + 1, 255], np.uint8)).all(-1)
                slot = t * m + j
                if gv[i, slot]:
                    rows, cols = np.nonzero(hit)
                    bbox = [cols.min() + x1, rows.min() + y1, cols.max() + 1 + x1,
                            rows.max() + 1 + y1]
                    np.testing.assert_array_equal(gb[i, slot], bbox)
                    assert hit.sum() == (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])
                    found += 1
                else:
                    ob = boxes[s, j]
                    area = (ob[2] - ob[0]) * (ob[3] - ob[1])
                    if hit.any():
                        rows, cols = np.nonzero(hit)
                        small = (np.ptp(rows) + 1 < 2) or (np.ptp(cols) + 1 < 2)
                        assert small or hit.sum() < 0.1 * area
                    dropped += 1
    assert found > 10 and dropped > 0


def test_mosaic_boxes_filters_follow_the_options(getkey):
    x = _images(getkey(), 4, dtype=jnp.uint8)
    boxes, classes, valid = _boxes(getkey(), 4)
    key = getkey()
    fn = J(augment.mosaic_boxes)  # min_size and min_visible are traced: one compilation
    _, _, _, v_default = fn(key, x, boxes, classes, valid)
    _, _, _, v_loose = fn(key, x, boxes, classes, valid, min_size=0.0, min_visible=0.0)
    _, _, _, v_strict = fn(key, x, boxes, classes, valid, min_size=4.0, min_visible=0.9)
    assert (np.asarray(v_strict) <= np.asarray(v_default)).all()
    assert (np.asarray(v_default) <= np.asarray(v_loose)).all()
    assert np.asarray(v_loose).sum() > np.asarray(v_strict).sum()


@pytest.mark.parametrize("b", [1, 4])
def test_mixup_boxes_matches_reference(getkey, b):
    x = _images(getkey(), b, dtype=jnp.uint8)
    boxes, classes, valid = _boxes(getkey(), b)
    key = getkey()
    gx, gb, gc, gv, gw = J(augment.mixup_boxes)(key, x, boxes, classes, valid)
    keys, partners = _derive(key, b)
    m = boxes.shape[1]
    for i in range(b):
        p = partners[i, 0]
        lam = float(_beta(keys[i], 32.0, 32.0))
        want_x, _ = np_mixup(np.asarray(x[i]), np.zeros(1), np.asarray(x[p]), np.zeros(1),
                             lam)
        assert np.abs(np.asarray(gx[i], np.int32) - want_x.astype(np.int32)).max() <= 1
        want_b, want_v = np_clip_boxes(np.concatenate([boxes[i], boxes[p]]),
                                       np.concatenate([valid[i], valid[p]]), 12, 10)
        np.testing.assert_array_equal(gb[i], want_b)
        np.testing.assert_array_equal(gc[i], np.concatenate([classes[i], classes[p]]))
        np.testing.assert_array_equal(gv[i], want_v)
        want_w = np.where(want_v, np.repeat([lam, 1 - lam], m), 0)
        np.testing.assert_allclose(gw[i], want_w, rtol=1e-6, atol=1e-7)
        assert gb.shape == (b, 2 * m, 4) and gw.dtype == boxes.dtype


# ---------------------------------------------------------------------------------------------
# Transforms: jit == eager, vmap(one-example) == batch, determinism.


def _all_batch_calls(getkey, b=5):
    x = _images(getkey(), b, dtype=jnp.uint8)
    xf = _images(getkey(), b)
    y = _soft_labels(getkey(), b)
    boxes, classes, valid = _boxes(getkey(), b)
    return {
        "mixup": (augment.mixup, (xf, y), {}),
        "mixup_batch": (augment.mixup, (xf, y), {"mode": "batch"}),
        "cutmix": (augment.cutmix, (x, y), {}),
        "cutmix_batch": (augment.cutmix, (x, y), {"mode": "batch"}),
        "mosaic": (augment.mosaic, (x, y), {}),
        "mosaic2": (augment.mosaic, (xf, y), {"tiles": 2}),
        "mosaic_boxes": (augment.mosaic_boxes, (x, boxes, classes, valid), {}),
        "mosaic_boxes_big": (augment.mosaic_boxes, (x, boxes, classes, valid),
                             {"output_size": (24, 20), "fill_value": 114}),
        "mixup_boxes": (augment.mixup_boxes, (xf, boxes, classes, valid), {}),
    }


CALLS = ["mixup", "cutmix_batch", "mosaic2", "mosaic_boxes_big", "mixup_boxes"]


@pytest.mark.parametrize("name", CALLS)
def test_jit_equals_eager_and_same_key_same_output(getkey, name):
    fn, args, kw = _all_batch_calls(getkey)[name]
    key = getkey()
    eager = fn(key, *args, **kw)
    jitted = jax.jit(lambda k, *a: fn(k, *a, **kw))(key, *args)
    again = fn(key, *args, **kw)
    for e, j, a in zip(eager, jitted, again):
        np.testing.assert_allclose(np.asarray(e, np.float64), np.asarray(j, np.float64),
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(e), np.asarray(a))
    other = fn(getkey(), *args, **kw)
    assert not np.array_equal(np.asarray(other[0]), np.asarray(eager[0]))


def test_vmap_of_one_example_functions_equals_batch(getkey):
    b = 5
    x, xf = _images(getkey(), b, dtype=jnp.uint8), _images(getkey(), b)
    y = _soft_labels(getkey(), b)
    boxes, classes, valid = _boxes(getkey(), b)
    key = getkey()

    def same(got, want):
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64),
                                       rtol=1e-6, atol=1e-6)

    # One mode / tile count per function keeps compilations down (the others share the code).
    for batch_fn, one_fn, data, mode in ((augment.mixup, augment.mixup_one, (xf, y), "batch"),
                                         (augment.cutmix, augment.cutmix_one, (x, y), "elem")):
        keys, p = _derive(key, b, mode=mode)
        want = jax.jit(jax.vmap(lambda k, *a, f=one_fn: f(k, *a, alpha=0.5)))(
                keys, *data, *(d[p[:, 0]] for d in data))
        same(J(batch_fn, mode=mode)(key, *data, alpha=0.5), want)
    keys, p = _derive(key, b, num_partners=1)
    s = np.concatenate([np.arange(b)[:, None], p], 1)
    want = jax.jit(jax.vmap(lambda k, a, c: augment.mosaic_one(k, a, c, tiles=2)))(
            keys, x[s], y[s])
    same(J(augment.mosaic, tiles=2)(key, x, y), want)
    keys, p = _derive(key, b, num_partners=3)
    s = np.concatenate([np.arange(b)[:, None], p], 1)
    want = jax.jit(jax.vmap(lambda k, *a: augment.mosaic_boxes_one(k, *a, output_size=(20, 16))))(
            keys, x[s], boxes[s], classes[s], valid[s])
    same(J(augment.mosaic_boxes, output_size=(20, 16))(key, x, boxes, classes, valid), want)
    keys, p = _derive(key, b)
    p = p[:, 0]
    want = jax.jit(jax.vmap(augment.mixup_boxes_one))(keys, xf, boxes, classes, valid, xf[p],
                                                      boxes[p], classes[p], valid[p])
    same(J(augment.mixup_boxes)(key, xf, boxes, classes, valid), want)


def test_label_rows_sum_to_one(getkey):
    x, y = _images(getkey(), 5), _soft_labels(getkey(), 5)
    for fn in (augment.mixup, augment.cutmix, augment.mosaic):
        for seed in range(3):
            _, gy = J(fn)(jax.random.key(seed), x, y)
            np.testing.assert_allclose(np.asarray(gy).sum(-1), 1.0, rtol=1e-6)
            assert (np.asarray(gy) >= 0).all()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.uint8, jnp.int32])
def test_dtypes_are_preserved(getkey, dtype):
    # Abstract evaluation checks the output dtypes without compiling (values: tests above).
    x = jax.ShapeDtypeStruct((3, 12, 10, 3), dtype)
    y = jax.ShapeDtypeStruct((3, 4), jnp.bfloat16)
    for fn in (augment.mixup, augment.cutmix, augment.mosaic):
        gx, gy = jax.eval_shape(fn, getkey(), x, y)
        assert gx.dtype == dtype and gy.dtype == jnp.bfloat16
    boxes = jax.ShapeDtypeStruct((3, 2, 4), jnp.bfloat16)
    classes = jax.ShapeDtypeStruct((3, 2), jnp.int32)
    valid = jax.ShapeDtypeStruct((3, 2), jnp.bool_)
    out = jax.eval_shape(augment.mixup_boxes, getkey(), x, boxes, classes, valid)
    assert out[0].dtype == dtype and out[1].dtype == out[4].dtype == jnp.bfloat16
    out = jax.eval_shape(augment.mosaic_boxes, getkey(), x, boxes, classes, valid)
    assert out[0].dtype == dtype and out[1].dtype == jnp.bfloat16


def test_traced_alpha_and_eval_shape(getkey):
    x, y = _images(getkey(), 5), _soft_labels(getkey(), 5)
    alphas = jnp.array([0.2, 1.0, 5.0])
    out = jax.vmap(lambda a: augment.mixup(jax.random.key(0), x, y, alpha=a)[1])(alphas)
    assert out.shape == (3, 5, 4)
    out = J(augment.cutmix)(jax.random.key(0), x, y, alpha=jnp.float32(0.3))[1]
    assert out.shape == (5, 4)
    spec = jax.eval_shape(lambda k, a, c: augment.mosaic(k, a, c),
                          jax.random.key(0), jax.ShapeDtypeStruct((6, 32, 24, 3), jnp.uint8),
                          jax.ShapeDtypeStruct((6, 5), jnp.float32))
    assert spec[0].shape == (6, 32, 24, 3) and spec[1].shape == (6, 5)


def test_compiles_once_per_shape(getkey):
    traces = []

    @jax.jit
    def step(key, x, y):
        traces.append(1)
        return augment.cutmix(key, x, y)

    x, y = _images(getkey(), 2, h=4, w=4), _soft_labels(getkey(), 2)
    step(getkey(), x, y)
    step(getkey(), x + 1, y)
    assert len(traces) == 1


# ---------------------------------------------------------------------------------------------
# Partners.


def test_partners_default_to_permutations_of_any_size():
    for b in (1, 7, 33):
        p = np.asarray(J(augment.partner_indices, batch_size=b, num_partners=3)(
                jax.random.key(b)))
        assert p.shape == (b, 3) and p.dtype == np.int32
        for col in p.T:
            np.testing.assert_array_equal(np.sort(col), np.arange(b))
        if b > 2:
            assert len({tuple(c) for c in p.T}) == 3  # independent columns


def test_partner_weights_set_the_partner_probabilities():
    w = np.array([1.0, 0.0, 2.0, 3.0, 4.0], np.float32)
    p = np.asarray(augment.partner_indices(jax.random.key(1), 5, num_partners=4000,
                                           partner_weights=w)).ravel()
    counts = np.bincount(p, minlength=5)
    assert counts[1] == 0
    assert scipy.stats.chisquare(counts[w > 0], counts.sum() * w[w > 0] / w.sum()).pvalue > 1e-3


def test_partner_weights_steer_mixup_partners(getkey):
    b = 6
    x, y = _images(getkey(), b), jnp.eye(b)
    w = jnp.zeros(b).at[4].set(1.0)  # only example 4 may be a partner
    _, gy = J(augment.mixup)(getkey(), x, y, partner_weights=w)
    gy = np.asarray(gy)
    off = gy * (1 - np.eye(b))
    assert np.all(off[:, [0, 1, 2, 3, 5]] == 0) and np.all(off[np.arange(b) != 4, 4] > 0)


# ---------------------------------------------------------------------------------------------
# Bad inputs.


def _bad_cases():
    k = jax.random.key(0)
    x = jnp.zeros((4, 8, 8, 3))
    y = jnp.eye(4)
    bx, c, v = jnp.zeros((4, 2, 4)), jnp.zeros((4, 2), jnp.int32), jnp.ones((4, 2), bool)
    return [
        ("images", lambda: augment.mixup(k, x[0], y), ValueError),
        ("labels", lambda: augment.mixup(k, x, y[0]), ValueError),
        ("labels", lambda: augment.cutmix(k, x, y[:3]), ValueError),
        ("labels", lambda: augment.mixup(k, x, jnp.zeros((4, 4), jnp.int32)), TypeError),
        ("alpha", lambda: augment.mixup(k, x, y, alpha=0.0), ValueError),
        ("alpha", lambda: augment.cutmix(k, x, y, alpha=-1.0), ValueError),
        ("alpha", lambda: augment.mixup_boxes(k, x, bx, c, v, alpha=0), ValueError),
        ("mode", lambda: augment.mixup(k, x, y, mode="pairs"), ValueError),
        ("tiles", lambda: augment.mosaic(k, x, y, tiles=3), ValueError),
        ("tiles", lambda: augment.mosaic_boxes(k, x, bx, c, v, tiles=9), ValueError),
        ("tiles", lambda: augment.mosaic_one(k, x, y, tiles=2), ValueError),
        ("images", lambda: augment.mosaic(k, x[..., 0], y), ValueError),
        ("boxes", lambda: augment.mosaic_boxes(k, x, bx[..., :3], c, v), ValueError),
        ("boxes", lambda: augment.mosaic_boxes(k, x, bx[:3], c[:3], v[:3]), ValueError),
        ("classes", lambda: augment.mosaic_boxes(k, x, bx, c[:, :1], v), ValueError),
        ("valid", lambda: augment.mosaic_boxes(k, x, bx, c, c), TypeError),
        ("output_size", lambda: augment.mosaic_boxes(k, x, bx, c, v, output_size=(8,)),
         ValueError),
        ("partner_weights", lambda: augment.mixup(k, x, y, partner_weights=jnp.ones(3)),
         ValueError),
        ("partner_weights", lambda: augment.mosaic(k, x, y, partner_weights=-jnp.ones(4)),
         ValueError),
        ("partner_image", lambda: augment.mixup_one(k, x[0], y[0], x[0, :4], y[1]), ValueError),
        ("min_visible", lambda: augment.mosaic_boxes(k, x, bx, c, v, min_visible=2.0),
         ValueError),
        ("placement", lambda: augment.mosaic(k, x, y, placement="random"), ValueError),
        ("in_place", lambda: augment.mixup(k, x, y, in_place="yes"), TypeError),
        ("in_place", lambda: augment.mixup_boxes(k, x, bx, c, v, in_place=1), TypeError),
    ]


@pytest.mark.parametrize("name,call,error", _bad_cases(),
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(_bad_cases())])
def test_bad_inputs_raise_naming_the_argument(name, call, error):
    with pytest.raises(error, match=name):
        call()


# ---------------------------------------------------------------------------------------------
# Remix (issue 10).


@pytest.mark.parametrize("mode", ["elem", "batch"])
def test_remix_images_equal_mixup_and_labels_follow_the_rule(getkey, mode):
    b, k = 16, 3
    x = _images(getkey(), b, dtype=jnp.uint8)
    classes = np.asarray(jax.random.randint(getkey(), (b,), 0, k))
    y = jax.nn.one_hot(classes, k, dtype=jnp.float32)
    counts = np.array([500, 60, 10])  # ratios 8.3, 50, 6: the rule fires for every pair
    key = getkey()
    mx, _ = J(augment.mixup, mode=mode)(key, x, y, alpha=1.0)
    rx, ry = J(augment.remix, mode=mode)(key, x, y, counts=counts, alpha=1.0)
    np.testing.assert_array_equal(np.asarray(rx), np.asarray(mx))  # identical images
    keys, partners = _derive(key, b, mode=mode)
    fired = 0
    for i in range(b):
        lam = float(_beta(keys[i], 1.0, 1.0))
        j = partners[i, 0]
        ly = np_remix_label_weight(lam, counts[classes[i]], counts[classes[j]], 3.0, 0.5)
        fired += ly != lam
        want = ly * np.asarray(y[i]) + (1 - ly) * np.asarray(y[j])
        np.testing.assert_allclose(np.asarray(ry[i]), want, rtol=1e-6, atol=1e-6)
    if mode == "elem":
        assert fired > 0  # the test data exercises the rule, not only the lambda branch


def test_remix_hand_worked_case():
    # Two examples, partners swap (b=2 permutation or self). Majority 0 (n=90), minority 1
    # (n=10): a pair image that is mostly the majority example gets the minority label.
    y = jnp.eye(2)
    x = jnp.zeros((2, 4, 4, 1))
    counts = jnp.array([90.0, 10.0])
    for seed in range(6):
        key = jax.random.key(seed)
        _, ry = J(augment.remix)(key, x, y, counts=counts, kappa=3.0, tau=0.5)
        _, my = J(augment.mixup)(key, x, y)
        keys, p = _derive(key, 2)
        for i in range(2):
            lam = float(_beta(keys[i], 1.0, 1.0))
            if p[i, 0] == i:
                np.testing.assert_allclose(ry[i], y[i])
            elif i == 0 and lam < 0.5:  # n_0/n_1 = 9 >= 3: all of it is class 1
                np.testing.assert_array_equal(ry[i], [0.0, 1.0])
            elif i == 1 and 1 - lam < 0.5:  # n_1/n_0 = 1/9: keep the minority label
                np.testing.assert_array_equal(ry[i], [0.0, 1.0])
            else:
                np.testing.assert_allclose(ry[i], my[i], rtol=1e-6)


@pytest.mark.slow
def test_remix_jit_vmap_and_traced_hyperparameters(getkey):
    x, y = _images(getkey(), 4), jnp.eye(4)
    counts = jnp.array([100.0, 30.0, 10.0, 1.0])
    key = getkey()
    eager = augment.remix(key, x, y, counts=counts, kappa=2.0, tau=0.4)
    jitted = jax.jit(lambda c, kp, t: augment.remix(key, x, y, counts=c, kappa=kp, tau=t))(
            counts, 2.0, 0.4)
    for e, j in zip(eager, jitted):
        np.testing.assert_allclose(np.asarray(e), np.asarray(j), rtol=1e-6)
    taus = jnp.array([0.0, 0.5, 1.0])
    out = jax.vmap(lambda t: augment.remix(key, x, y, counts=counts, tau=t)[1])(taus)
    assert out.shape == (3, 4, 4)
    np.testing.assert_allclose(out[0], J(augment.mixup)(key, x, y)[1], rtol=1e-6)  # tau=0


# ---------------------------------------------------------------------------------------------
# Issue 12: non-finite and out-of-range hyper-parameters, one box policy.


def _bad_cases_issue12():
    k = jax.random.key(0)
    x = jnp.zeros((4, 8, 8, 3))
    xu = jnp.zeros((4, 8, 8, 3), jnp.uint8)
    y = jnp.eye(4)
    bx, c, v = jnp.ones((4, 2, 4)), jnp.zeros((4, 2), jnp.int32), jnp.ones((4, 2), bool)
    counts = jnp.array([5.0, 4.0, 3.0, 1.0])
    return [
        ("alpha", lambda: augment.mixup(k, x, y, alpha=float("inf")), ValueError),
        ("alpha", lambda: augment.cutmix(k, x, y, alpha=float("inf")), ValueError),
        ("alpha", lambda: augment.cutmix(k, x, y, alpha=float("nan")), ValueError),
        ("alpha", lambda: augment.mixup_boxes(k, x, bx, c, v, alpha=jnp.inf), ValueError),
        ("alpha", lambda: augment.remix(k, x, y, counts=counts, alpha=jnp.inf), ValueError),
        ("fill_value", lambda: augment.mosaic_boxes(k, xu, bx, c, v, fill_value=300),
         ValueError),
        ("fill_value", lambda: augment.mosaic_boxes(k, xu, bx, c, v, fill_value=-1), ValueError),
        ("fill_value", lambda: augment.mosaic_boxes_one(k, xu, bx, c, v, fill_value=256.0),
         ValueError),
        ("fill_value", lambda: augment.mosaic_boxes(k, x, bx, c, v, fill_value=jnp.nan),
         ValueError),
        ("tiles", lambda: augment.mosaic(k, x, y, tiles=2.0), ValueError),
        ("tiles", lambda: augment.mosaic_boxes(k, x, bx, c, v, tiles=4.0), ValueError),
        ("kappa", lambda: augment.remix(k, x, y, counts=counts, kappa=0.5), ValueError),
        ("kappa", lambda: augment.remix(k, x, y, counts=counts, kappa=jnp.inf), ValueError),
        ("tau", lambda: augment.remix(k, x, y, counts=counts, tau=1.5), ValueError),
        ("tau", lambda: augment.remix(k, x, y, counts=counts, tau=-0.1), ValueError),
        ("counts", lambda: augment.remix(k, x, y, counts=-counts), ValueError),
        ("counts", lambda: augment.remix(k, x, y, counts=counts[:3]), ValueError),
        ("counts", lambda: augment.remix(k, x, y, counts=counts.at[0].set(jnp.nan)),
         ValueError),
        ("box_format", lambda: augment.mosaic_boxes(k, x, bx, c, v, box_format="yolo"),
         ValueError),
        ("box_format", lambda: augment.mixup_boxes(k, x, bx, c, v, box_format="xyxy_n"),
         ValueError),
    ]


@pytest.mark.parametrize("name,call,error", _bad_cases_issue12(),
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(_bad_cases_issue12())])
def test_bad_hyperparameters_raise_naming_the_argument(name, call, error):
    with pytest.raises(error, match=name):
        call()


def test_value_checks_hold_under_jit_through_checked(getkey):
    from jbalance import checks

    x, y = _images(getkey(), 4), jnp.eye(4)
    f = jax.jit(checks.checked(lambda a, kp: augment.remix(jax.random.key(0), x, y,
                                                           counts=jnp.ones(4), alpha=a,
                                                           kappa=kp)))
    err, _ = f(jnp.float32(1.0), jnp.float32(3.0))
    assert err.get() is None
    for a, kp, what in ((jnp.inf, 3.0, "alpha"), (1.0, 0.5, "kappa"), (-1.0, 3.0, "alpha")):
        err, _ = f(jnp.float32(a), jnp.float32(kp))
        assert err.get() is not None and what in err.get()
    g = jax.jit(checks.checked(lambda fv: augment.mosaic_boxes(
            jax.random.key(0), jnp.zeros((2, 8, 8, 1), jnp.uint8), jnp.ones((2, 1, 4)),
            jnp.zeros((2, 1), jnp.int32), jnp.ones((2, 1), bool), fill_value=fv)))
    assert g(jnp.int32(114))[0].get() is None
    assert "fill_value" in g(jnp.int32(300))[0].get()


def test_uint8_fill_value_is_kept_not_wrapped():
    x = jnp.zeros((1, 8, 8, 1), jnp.uint8)
    b, c, v = jnp.ones((1, 1, 4)), jnp.zeros((1, 1), jnp.int32), jnp.ones((1, 1), bool)
    out = J(augment.mosaic_boxes, output_size=(32, 32), fill_value=255)(
            jax.random.key(0), x, b, c, v)[0]
    assert int(out.max()) == 255  # uncovered pixels: exactly the fill value


def test_mixup_boxes_applies_the_mosaic_box_policy():
    # Off-image, inverted, NaN, inf, zero-size and fully outside boxes; image 10 x 8 (H x W).
    bad = jnp.array([[[-3.0, 2.0, 12.0, 7.0],      # clipped to [0, 2, 8, 7]
                      [5.0, 5.0, 2.0, 9.0],        # inverted: dropped
                      [jnp.nan, 1.0, 3.0, 3.0],    # NaN: dropped
                      [1.0, 1.0, jnp.inf, 3.0],    # inf: dropped
                      [2.0, 2.0, 2.0, 6.0],        # zero width: dropped
                      [9.0, 1.0, 11.0, 4.0]]])     # wholly right of the image: dropped
    valid = jnp.ones((1, 6), bool)
    x = jnp.zeros((1, 10, 8, 3))
    classes = jnp.arange(6, dtype=jnp.int32)[None]
    _, gb, _, gv, gw = J(augment.mixup_boxes)(jax.random.key(0), x, bad, classes, valid)
    want_b, want_v = np_clip_boxes(np.concatenate([bad[0], bad[0]]),
                                   np.ones(12, bool), 10, 8)
    np.testing.assert_array_equal(np.asarray(gv[0]), want_v)
    np.testing.assert_array_equal(np.asarray(gb[0]), want_b)
    assert want_v.tolist() == [True] + [False] * 5 + [True] + [False] * 5
    assert (np.asarray(gw[0])[~want_v] == 0).all()
    # Mosaic applies the same rule: none of the bad boxes survives, none is NaN.
    _, mb, _, mv = J(augment.mosaic_boxes, placement="same")(jax.random.key(1), x, bad,
                                                             classes, valid)
    assert np.isfinite(np.asarray(mb)).all()
    assert set(np.asarray(classes[0])[np.asarray(mv[0, :6])]) <= {0}
    # The public policy function is the same rule.
    cb, cv = boxes_lib.clip_boxes(bad[0], valid[0], image_size=(10, 8))
    np.testing.assert_array_equal(np.asarray(cv), want_v[:6])
    np.testing.assert_array_equal(np.asarray(cb), want_b[:6])


# ---------------------------------------------------------------------------------------------
# Issue 11: box formats in the detection augmentations.


@pytest.mark.parametrize("fmt", ["cxcywhn", pytest.param("xywh", marks=pytest.mark.slow)])
def test_box_format_round_trips_through_mosaic_and_mixup(getkey, fmt):
    b, h, w = 4, 40, 36
    x = _images(getkey(), b, h=h, w=w, dtype=jnp.uint8)
    bx, c, v = _boxes(getkey(), b, h=h, w=w)
    key = getkey()
    ref = J(augment.mosaic_boxes, output_size=(48, 40))(key, x, bx, c, v)
    conv = boxes_lib.convert(bx, src="xyxy", dst=fmt, image_size=(h, w))
    got = J(augment.mosaic_boxes, output_size=(48, 40), box_format=fmt)(key, x, conv, c, v)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(ref[0]))
    np.testing.assert_array_equal(np.asarray(got[3]), np.asarray(ref[3]))
    back = boxes_lib.convert(got[1], src=fmt, dst="xyxy", image_size=(48, 40))
    np.testing.assert_allclose(np.asarray(back), np.asarray(ref[1]), atol=1e-4)
    ref = J(augment.mixup_boxes)(key, x, bx, c, v)
    got = J(augment.mixup_boxes, box_format=fmt)(key, x, conv, c, v)
    np.testing.assert_array_equal(np.asarray(got[3]), np.asarray(ref[3]))
    back = boxes_lib.convert(got[1], src=fmt, dst="xyxy", image_size=(h, w))
    np.testing.assert_allclose(np.asarray(back), np.asarray(ref[1]), atol=1e-4)


def test_boxes_in_the_wrong_format_raise_instead_of_vanishing():
    # 19 YOLO boxes on 640 images passed as pixels: the issue's silent 19 -> 0.
    rng = np.random.default_rng(0)
    yolo = np.concatenate([rng.uniform(0.2, 0.8, (1, 19, 2)), rng.uniform(0.05, 0.2, (1, 19, 2))],
                          -1).astype(np.float32)
    yolo = jnp.asarray(np.repeat(yolo, 2, 0))
    x = jax.ShapeDtypeStruct((2, 640, 640, 3), jnp.uint8)
    c, v = jnp.zeros((2, 19), jnp.int32), jnp.ones((2, 19), bool)
    k = jax.random.key(0)
    for fn in (augment.mosaic_boxes, augment.mixup_boxes):
        with pytest.raises(ValueError, match="cxcywhn|normalised"):
            fn(k, jnp.zeros((2, 64, 64, 3), jnp.uint8), yolo, c, v, box_format="cxcywh")
        with pytest.raises(ValueError, match="normalised"):
            fn(k, jnp.zeros((2, 64, 64, 3), jnp.uint8), yolo * 640, c, v, box_format="cxcywhn")
        jax.eval_shape(lambda a, b, fn=fn: fn(k, a, b, c, v, box_format="cxcywhn"), x, yolo)
    # Normalised boxes in the right format survive Mosaic (>0 valid out).
    out = J(augment.mosaic_boxes, box_format="cxcywhn")(
            k, jnp.zeros((2, 64, 64, 3), jnp.uint8), yolo, c, v)
    assert int(np.asarray(out[3]).sum()) > 0


# ---------------------------------------------------------------------------------------------
# Issue 14: the batch paths equal the one-example functions, with and without donation.


@pytest.mark.parametrize("band_rows", [1, 8, 64])
def test_cutmix_batch_window_path_and_donation_equal_the_one_example_function(
        getkey, monkeypatch, band_rows):
    b, h, w = 6, 33, 20
    # Bands of 1 and 8 rows (shifted last band) and one band for the whole image.
    monkeypatch.setattr(augment_src, "_BAND_BYTES", band_rows * b * w * 3)
    x = _images(getkey(), b, h=h, w=w, dtype=jnp.uint8)
    y = _soft_labels(getkey(), b)
    one = jax.jit(jax.vmap(lambda k, *a: augment.cutmix_one(k, *a, alpha=0.3)))
    donated = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, alpha=0.3, mode="batch"),
                      donate_argnums=1)
    sizes = set()
    for seed in range(6):  # alpha=0.3: box sizes from tiny to whole, many band counts
        key = jax.random.key(seed)
        keys, p = _derive(key, b, mode="batch")
        want = one(keys, x, y, x[p[:, 0]], y[p[:, 0]])
        got = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, alpha=0.3, mode="batch"))(
            key, x, y)
        got_d = donated(key, jnp.array(x, copy=True), y)
        for g in (got, got_d):  # pixels: exact; label blends may differ by an ulp (fusion)
            np.testing.assert_array_equal(np.asarray(g[0]), np.asarray(want[0]))
            np.testing.assert_allclose(np.asarray(g[1]), np.asarray(want[1]), rtol=1e-6,
                                       atol=1e-7)
        box, _ = augment.cutmix_box(keys[0], h, w, alpha=0.3)
        sizes.add(int(box[1] - box[0]))
    assert len(sizes) > 3


def _in_place_cases():
    # (function, extra keyword arguments, takes detection targets)
    return [(augment.mixup, {}, False), (augment.remix, {"counts": jnp.arange(1., 5.)}, False),
            (augment.cutmix, {}, False), (augment.mixup_boxes, {}, True)]


@pytest.mark.parametrize("case,mode,dtype,h,band_bytes", [
    (0, "elem", jnp.float32, 12, 1), (0, "batch", jnp.float32, 12, 1 << 30),
    (0, "elem", jnp.uint8, 13, 1), (0, "elem", jnp.bfloat16, 12, 1000),
    (1, "elem", jnp.float32, 12, 1000), (1, "batch", jnp.uint8, 13, 1),
    (2, "elem", jnp.uint8, 13, 1), (2, "elem", jnp.float32, 12, 1 << 30),
    (2, "batch", jnp.float32, 12, 1000), (3, "elem", jnp.float32, 12, 1),
    (3, "batch", jnp.uint8, 12, 1000)])
def test_in_place_equals_the_default_with_and_without_donation(getkey, monkeypatch, case, mode,
                                                               dtype, h, band_bytes):
    # Bands of one row, of the whole image, and of a divisor of H (1000 bytes: 3 rows of
    # 5 x 10 x 3 x 4 bytes, 6 of 5 x 10 x 3 x 2 -> the largest divisor of 12 that fits);
    # H = 13 (prime): 1 row.
    monkeypatch.setattr(augment_src, "_BAND_BYTES", band_bytes)
    fn, extra, detection = _in_place_cases()[case]
    b = 5
    x = _images(getkey(), b, h=h, dtype=dtype)
    if detection:
        bx = jnp.tile(jnp.array([[1., 1., 6., 7.], [0., 2., 9., 11.]]), (b, 1, 1))
        rest = (bx, jnp.zeros((b, 2), jnp.int32), jnp.ones((b, 2), bool))
        extra = {**extra, "alpha": 0.8}
    else:
        rest = (_soft_labels(getkey(), b, k=4),)
    key = getkey()

    def run(in_place, donate):
        f = jax.jit(lambda k, a, *r: fn(k, a, *r, mode=mode, in_place=in_place, **extra),
                    donate_argnums=(1,) if donate else ())
        return f(key, jnp.array(x, copy=True), *rest)

    want = run(False, False)
    for got in (run(True, False), run(True, True)):
        for g, w_ in zip(got[1:], want[1:]):  # labels / targets: unchanged by in_place
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w_))
        g, w_ = np.asarray(got[0]), np.asarray(want[0])
        if fn is augment.cutmix:  # pixel copies: exact
            np.testing.assert_array_equal(g, w_)
        elif dtype == jnp.uint8:  # one float32 rounding (FMA) may move a halfway case by 1
            assert np.abs(g.astype(np.int32) - w_.astype(np.int32)).max() <= 1
        else:  # the in-place kernel may contract the blend into an FMA: one rounding
            np.testing.assert_array_max_ulp(g.astype(np.float32), w_.astype(np.float32), 1)


def _cycle_lengths(p):
    seen, lengths = set(), []
    for start in range(len(p)):
        n, i = 0, start
        while i not in seen:
            seen.add(i)
            i, n = int(p[i]), n + 1
        if n:
            lengths.append(n)
    return lengths


@pytest.mark.parametrize("b,h,w,tile,dtype", [
    (7, 12, 10, (32, 64), jnp.float32),  # tiles larger than the image: every box masked
    (7, 12, 10, (3, 4), jnp.uint8),  # whole tiles, shifted last tiles, masked small boxes
    (6, 13, 11, (1, 1), jnp.float32),  # one-pixel tiles
    (1, 9, 9, (2, 3), jnp.int32)])  # one example: its own partner, nothing moves
def test_in_place_elem_cutmix_walks_the_partner_cycles(monkeypatch, b, h, w, tile, dtype):
    # Elem-mode CutMix in place copies each box from the partner, cycle by cycle, through
    # a one-image scratch at each cycle's end; against the one-example reference, many
    # permutations (fixed points and long cycles) and box sizes from empty to whole.
    monkeypatch.setattr(augment_src, "_TILE", tile)
    x = _images(jax.random.key(b), b, h=h, w=w, dtype=dtype)
    y = _soft_labels(jax.random.key(1), b)
    one = jax.jit(jax.vmap(lambda k, *a: augment.cutmix_one(k, *a, alpha=0.4)))
    donated = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, alpha=0.4, in_place=True),
                      donate_argnums=1)
    lengths, areas = set(), set()
    for seed in range(12):
        key = jax.random.key(seed)
        keys, p = _derive(key, b)
        want = one(keys, x, y, x[p[:, 0]], y[p[:, 0]])
        got = donated(key, jnp.array(x, copy=True), y)
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
        np.testing.assert_allclose(np.asarray(got[1]), np.asarray(want[1]), rtol=1e-6,
                                   atol=1e-7)
        lengths.update(_cycle_lengths(p[:, 0]))
        boxes = jax.vmap(lambda k: augment.cutmix_box(k, h, w, alpha=0.4)[0])(keys)
        areas.update(np.asarray((boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])))
    if b > 1:  # the draws reached fixed points, long cycles, empty and large boxes
        assert 1 in lengths and max(lengths) >= 3, lengths
        assert min(areas) < (h * w) / 8 and max(areas) > (h * w) / 2, areas


def test_in_place_elem_cutmix_with_partner_weights_equals_the_default(getkey):
    # Weighted partners are drawn with replacement (no permutation): the band path.
    x = _images(getkey(), 6, dtype=jnp.uint8)
    y = _soft_labels(getkey(), 6)
    wts = jnp.array([0., 1., 5., 1., 0., 2.])
    key = getkey()
    want = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, partner_weights=wts))(key, x, y)
    got = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, partner_weights=wts, in_place=True),
                  donate_argnums=1)(key, jnp.array(x, copy=True), y)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))


@pytest.mark.parametrize("name,options", [("mixup", {}), ("cutmix", {}),
                                          ("cutmix", {"mode": "batch"}),
                                          ("remix", {"counts": jnp.arange(1., 5.)}),
                                          ("mosaic_boxes", {"output_size": (24, 20)})])
def test_a_donated_spare_buffer_receives_the_output(getkey, name, options):
    # The recipe in docs/augment.md: donate last call's output as an extra, ignored
    # argument; XLA writes the new output into it (no fresh batch-sized buffer) and the
    # result is that of the plain call.
    fn = getattr(augment, name)
    x = _images(getkey(), 6, dtype=jnp.uint8)
    if name == "mosaic_boxes":
        bx, c, v = _boxes(getkey(), 6)
        rest = (bx, c, v)
    else:
        rest = (_soft_labels(getkey(), 6),)
    key = getkey()
    plain = jax.jit(lambda k, a, *r: fn(k, a, *r, **options))
    want = plain(key, x, *rest)
    spared = jax.jit(lambda k, a, *r: fn(k, a, *r[:-1], **options),
                     donate_argnums=2 + len(rest), keep_unused=True)
    spare = jnp.zeros_like(want[0])
    assert "input_output_alias" in spared.lower(key, x, *rest, spare).compile().as_text()
    got = spared(key, x, *rest, spare)
    assert spare.is_deleted()  # its buffer now holds the output
    for g, w_ in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w_))


@pytest.mark.parametrize("op", ["mixup", "cutmix"])
def test_in_place_on_a_donated_batch_aliases_it_and_copies_nothing_batch_sized(monkeypatch,
                                                                             op):
    # The claim of `in_place=True`: XLA writes the result into the donated input buffer
    # (input/output alias) and never materialises a second batch-sized array.
    x = jnp.zeros((8, 16, 16, 3), jnp.float32)
    y = jnp.zeros((8, 4), jnp.float32)
    monkeypatch.setattr(augment_src, "_BAND_BYTES", 2 * 8 * 16 * 3 * 4)  # 8 bands of 2 rows
    fn = getattr(augment, op)
    batch = "f32[8,16,16,3]"

    def compiled(in_place):
        f = jax.jit(lambda k, a, c: fn(k, a, c, in_place=in_place), donate_argnums=1)
        return f.lower(jax.random.key(0), x, y).compile().as_text()

    def batch_copies(text):
        return [ln for ln in text.splitlines()
                if batch in ln.split("=", 1)[-1].split("(")[0]
                and (" copy(" in ln or "gather(" in ln)]

    text = compiled(True)
    assert "input_output_alias" in text
    assert not batch_copies(text), batch_copies(text)
    # The default path computes into a new buffer and copies it into the donated one.
    assert batch_copies(compiled(False))
