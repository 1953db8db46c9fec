"""Detection Mosaic and MixUp (jbalance._src.augment.detection) against the NumPy references.

Pixels against `np_mosaic` / `np_mixup` (every pixel), boxes against `np_mosaic_boxes` /
`np_clip_boxes`, for every kernel (Mosaic: windows, masked windows, and the gather used
when the output is narrower than the sources; MixUp: ``mode``, ``in_place``, partner
weights) with the hyper-parameters given eagerly, concrete under `jit` and traced.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import (
    J,
    box_data,
    call,
    cases,
    derive,
    images,
    lambda_of,
    mosaic_draws,
    mosaic_reference,
    uses_windows,
    weights_for,
)
from reference_augment import (
    mosaic_regions,
    np_clip_boxes,
    np_mixup,
    np_mosaic,
    np_mosaic_boxes,
    source_origins,
)

from jbalance import augment
from jbalance import boxes as boxes_lib

H, W = 12, 10


def _to_format(b, fmt, hw):
    return b if fmt == "xyxy" else boxes_lib.convert(b, src="xyxy", dst=fmt, image_size=hw)


def _from_format(b, fmt, hw):
    return b if fmt == "xyxy" else boxes_lib.convert(b, src=fmt, dst="xyxy", image_size=hw)


# (tiles, output size, batch, placement, centre, (min_size, min_visible), weighted,
#  box_format, how, takes the window kernel: True / False / None = the gather, ow < W)
MOSAIC_BOXES_CASES = [
    (4, None, 5, "corner", (0.25, 0.75), (2.0, 0.1), False, "xyxy", "eager", "draws"),
    (2, None, 1, "corner", (0.25, 0.75), (0.0, 0.0), False, "xyxy", "traced", "draws"),
    (4, (24, 20), 5, "corner", (0.5, 0.5), (2.0, 0.1), True, "xyxy", "concrete", True),
    (4, (24, 20), 4, "corner", (0.5, 0.5), (3.0, 0.5), True, "cxcywhn", "traced", True),
    (2, (24, 20), 5, "corner", (0.02, 0.1), (2.0, 0.1), False, "xyxy", "traced", False),
    (4, (15, 17), 3, "same", (0.25, 0.75), (1.0, 0.3), True, "xywh", "concrete", False),
    (4, (9, 7), 5, "corner", (0.25, 0.75), (2.0, 0.1), False, "xyxy", "concrete", None),
    (2, (9, 7), 1, "corner", (0.25, 0.75), (2.0, 0.1), False, "xyxy", "traced", None),
]


@pytest.mark.slow
@pytest.mark.parametrize("tiles,out_hw,b,placement,centre,filters,weighted,fmt,how,windows",
                         cases(MOSAIC_BOXES_CASES))
def test_mosaic_boxes_matches_reference(getkey, tiles, out_hw, b, placement, centre, filters,
                                        weighted, fmt, how, windows):
    x = images(getkey(), b, h=H, w=W, dtype=jnp.uint8)
    boxes, classes, valid = box_data(getkey(), b, h=H, w=W)
    key = getkey()
    size = out_hw or (H, W)
    w = weights_for(b) if weighted else None
    min_size, min_visible = filters
    got = call(augment.mosaic_boxes, key, x, _to_format(boxes, fmt, (H, W)), classes, valid,
               how=how, static={"tiles": tiles, "output_size": out_hw, "placement": placement,
                                "box_format": fmt},
               fill_value=114, min_size=min_size, min_visible=min_visible, centre=centre,
               partner_weights=w)
    assert isinstance(got, augment.MosaicBoxes)
    m = boxes.shape[1]
    assert got.images.shape == (b, *size, 3) and got.boxes.shape == (b, tiles * m, 4)
    assert got.classes.shape == got.valid.shape == (b, tiles * m)
    assert got.valid.dtype == jnp.bool_
    want, regions, origins, sources = mosaic_reference(key, x, tiles, size, fill=114,
                                                       placement=placement, centre=centre,
                                                       partner_weights=w)
    if windows in (True, False):
        assert all(uses_windows(r, o, (H, W), size) for r, o in zip(regions, origins)) \
            == windows
    np.testing.assert_array_equal(np.asarray(got.images), want)  # every pixel, exact
    gb = np.asarray(_from_format(got.boxes, fmt, size))
    bn, cn, vn = np.asarray(boxes), np.asarray(classes), np.asarray(valid)
    for i in range(b):
        wb, wv = np_mosaic_boxes(bn[sources[i]], vn[sources[i]], regions[i], origins[i],
                                 (H, W), min_size=min_size, min_visible=min_visible)
        np.testing.assert_array_equal(np.asarray(got.valid[i]), wv)
        np.testing.assert_allclose(gb[i][wv], wb[wv], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(got.boxes[i])[~wv], 0)
        np.testing.assert_array_equal(np.asarray(got.classes[i]), cn[sources[i]].ravel())


@pytest.mark.parametrize("how", ["concrete", "traced"])
def test_mosaic_boxes_one_matches_reference(getkey, how):
    x = images(getkey(), 4, h=H, w=W, dtype=jnp.uint8)
    boxes, classes, valid = box_data(getkey(), 4, h=H, w=W)
    key = getkey()
    out_hw = (20, 16)
    got = call(augment.mosaic_boxes_one, key, x, boxes, classes, valid, how=how,
               static={"output_size": out_hw}, fill_value=7, min_size=1.0, min_visible=0.2)
    assert isinstance(got, augment.MosaicBoxes)
    cy, cx, lr = mosaic_draws(key, out_hw)
    regions = mosaic_regions(4, (cy, cx), out_hw, lr)
    origins = source_origins(4, (cy, cx), out_hw, (H, W), lr)
    np.testing.assert_array_equal(np.asarray(got.images),
                                  np_mosaic(np.asarray(x), regions, origins, out_hw, fill=7))
    wb, wv = np_mosaic_boxes(np.asarray(boxes), np.asarray(valid), regions, origins, (H, W),
                             min_size=1.0, min_visible=0.2)
    np.testing.assert_array_equal(np.asarray(got.valid), wv)
    np.testing.assert_allclose(np.asarray(got.boxes), wb, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(got.classes), np.asarray(classes).ravel())


@pytest.mark.slow
@pytest.mark.parametrize("out_hw", [None, (48, 40)])
def test_box_drawn_in_source_is_found_at_its_new_coordinates(out_hw):
    """Colour a rectangle per box; the coloured pixels in the output are exactly the box."""
    b, h, w, m = 6, 24, 20, 2
    rng = np.random.default_rng(0)
    images_ = np.zeros((b, h, w, 3), np.uint8)
    boxes = np.zeros((b, m, 4), np.float32)
    for s in range(b):
        for j in range(m):  # two disjoint integer boxes: left half and right half
            x1 = rng.integers(0, w // 2 - 4) + j * (w // 2)
            y1 = rng.integers(0, h - 6)
            x2 = x1 + rng.integers(3, w // 2 - (x1 - j * (w // 2)))
            y2 = y1 + rng.integers(4, h - y1)
            boxes[s, j] = (x1, y1, x2, y2)
            images_[s, y1:y2, x1:x2] = (s + 1, j + 1, 255)
    classes = np.zeros((b, m), np.int32)
    valid = np.ones((b, m), bool)
    key = jax.random.key(9)
    gx, gb, _, gv = J(augment.mosaic_boxes, output_size=out_hw)(key, images_, boxes,
                                                                  classes, valid)
    want, regions, _, sources = mosaic_reference(key, images_, 4, out_hw or (h, w))
    gx, gb, gv = map(np.asarray, (gx, gb, gv))
    np.testing.assert_array_equal(gx, want)  # every pixel
    found = dropped = 0
    for i in range(b):
        for t in range(4):
            y1, y2, x1, x2 = regions[i][t]
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
    x = images(getkey(), 4, dtype=jnp.uint8)
    boxes, classes, valid = box_data(getkey(), 4)
    key = getkey()
    fn = J(augment.mosaic_boxes)  # min_size and min_visible are traced: one compilation
    _, regions, origins, sources = mosaic_reference(key, x, 4, (H, W))
    bn, vn = np.asarray(boxes), np.asarray(valid)
    kept = []
    for min_size, min_visible in ((2.0, 0.1), (0.0, 0.0), (4.0, 0.9)):
        gv = np.asarray(fn(key, x, boxes, classes, valid, min_size=min_size,
                           min_visible=min_visible).valid)
        for i in range(4):
            _, wv = np_mosaic_boxes(bn[sources[i]], vn[sources[i]], regions[i], origins[i],
                                    (H, W), min_size=min_size, min_visible=min_visible)
            np.testing.assert_array_equal(gv[i], wv)
        kept.append(gv.sum())
    assert kept[1] > kept[0] > kept[2]  # the options matter on this data


# (batch, mode, in_place, weighted, how): every branch both ways
MIXUP_BOXES_CASES = [
    (4, "elem", False, False, "eager"),
    (4, "elem", True, True, "traced"),
    (3, "batch", True, False, "concrete"),
    (1, "batch", False, True, "traced"),
    (4, "elem", False, True, "concrete"),
    (5, "batch", True, False, "traced"),
]


@pytest.mark.slow
@pytest.mark.parametrize("b,mode,in_place,weighted,how", cases(MIXUP_BOXES_CASES))
def test_mixup_boxes_matches_reference(getkey, b, mode, in_place, weighted, how):
    x = images(getkey(), b, dtype=jnp.uint8)
    boxes, classes, valid = box_data(getkey(), b)
    key = getkey()
    w = weights_for(b) if weighted else None
    got = call(augment.mixup_boxes, key, x, boxes, classes, valid, how=how,
               static={"mode": mode, "in_place": in_place}, alpha=32.0, partner_weights=w)
    assert isinstance(got, augment.MixedBoxes)
    keys, partners = derive(key, b, mode=mode, partner_weights=w)
    m = boxes.shape[1]
    assert got.boxes.shape == (b, 2 * m, 4) and got.box_weights.dtype == boxes.dtype
    for i in range(b):
        p = partners[i, 0]
        lam = lambda_of(keys[i], 32.0)
        want_x, _ = np_mixup(np.asarray(x[i]), np.zeros(1), np.asarray(x[p]), np.zeros(1),
                             lam)
        assert np.abs(np.asarray(got.images[i], np.int32) - want_x.astype(np.int32)).max() <= 1
        want_b, want_v = np_clip_boxes(np.concatenate([boxes[i], boxes[p]]),
                                       np.concatenate([valid[i], valid[p]]), H, W)
        np.testing.assert_array_equal(got.boxes[i], want_b)
        np.testing.assert_array_equal(got.classes[i], np.concatenate([classes[i], classes[p]]))
        np.testing.assert_array_equal(got.valid[i], want_v)
        want_w = np.where(want_v, np.repeat([lam, 1 - lam], m), 0)
        np.testing.assert_allclose(got.box_weights[i], want_w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("how", ["concrete", "traced"])
def test_mixup_boxes_one_matches_reference(getkey, how):
    x = images(getkey(), 2)
    boxes, classes, valid = box_data(getkey(), 2)
    key = getkey()
    got = call(augment.mixup_boxes_one, key, x[0], boxes[0], classes[0], valid[0], x[1],
               boxes[1], classes[1], valid[1], how=how, alpha=8.0)
    assert isinstance(got, augment.MixedBoxes)
    lam = lambda_of(key, 8.0)
    want_x, _ = np_mixup(np.asarray(x[0]), np.zeros(1), np.asarray(x[1]), np.zeros(1), lam)
    np.testing.assert_allclose(got.images, want_x, rtol=1e-6, atol=1e-6)
    want_b, want_v = np_clip_boxes(np.concatenate([boxes[0], boxes[1]]),
                                   np.concatenate([valid[0], valid[1]]), H, W)
    np.testing.assert_array_equal(got.boxes, want_b)
    np.testing.assert_array_equal(got.valid, want_v)
    np.testing.assert_array_equal(got.classes, np.concatenate([classes[0], classes[1]]))
    want_w = np.where(want_v, np.repeat([lam, 1 - lam], boxes.shape[1]), 0)
    np.testing.assert_allclose(got.box_weights, want_w, rtol=1e-6, atol=1e-7)


def test_uint8_fill_value_is_kept_not_wrapped():
    x = jnp.zeros((1, 8, 8, 1), jnp.uint8)
    b, c, v = jnp.ones((1, 1, 4)), jnp.zeros((1, 1), jnp.int32), jnp.ones((1, 1), bool)
    key = jax.random.key(0)
    out = J(augment.mosaic_boxes, output_size=(32, 32), fill_value=255)(key, x, b, c, v)[0]
    want, _, _, _ = mosaic_reference(key, x, 4, (32, 32), fill=255)
    np.testing.assert_array_equal(np.asarray(out), want)  # uncovered: exactly 255
    assert (want == 255).any() and (want == 0).any()


def test_mixup_boxes_applies_the_mosaic_box_policy():
    # Off-image, inverted, NaN, inf, zero-size and fully outside boxes; image 10 x 8 (H x W).
    bad = jnp.array([[[-3.0, 2.0, 12.0, 7.0],      # clipped to [0, 2, 8, 7]
                      [5.0, 5.0, 2.0, 9.0],        # inverted: dropped
                      [jnp.nan, 1.0, 3.0, 3.0],    # NaN: dropped
                      [1.0, 1.0, jnp.inf, 3.0],    # inf: dropped
                      [2.0, 2.0, 2.0, 6.0],        # zero width: dropped
                      [9.0, 1.0, 11.0, 4.0]]])     # wholly right of the image: dropped
    valid = jnp.ones((1, 6), bool)
    x = images(jax.random.key(3), 1, h=10, w=8)
    classes = jnp.arange(6, dtype=jnp.int32)[None]
    _, gb, _, gv, gw = J(augment.mixup_boxes)(jax.random.key(0), x, bad, classes, valid)
    want_b, want_v = np_clip_boxes(np.concatenate([bad[0], bad[0]]),
                                   np.ones(12, bool), 10, 8)
    np.testing.assert_array_equal(np.asarray(gv[0]), want_v)
    np.testing.assert_array_equal(np.asarray(gb[0]), want_b)
    assert want_v.tolist() == [True] + [False] * 5 + [True] + [False] * 5
    assert (np.asarray(gw[0])[~want_v] == 0).all()
    # Mosaic applies the same rule: none of the bad boxes survives, none is NaN.
    key = jax.random.key(1)
    mx, mb, _, mv = J(augment.mosaic_boxes, placement="same")(key, x, bad, classes, valid)
    want, _, _, _ = mosaic_reference(key, x, 4, (10, 8), placement="same")
    np.testing.assert_array_equal(np.asarray(mx), want)  # every pixel
    assert np.isfinite(np.asarray(mb)).all()
    assert set(np.asarray(classes[0])[np.asarray(mv[0, :6])]) <= {0}
    # The public policy function is the same rule.
    cb, cv = boxes_lib.clip_boxes(bad[0], valid[0], image_size=(10, 8))
    np.testing.assert_array_equal(np.asarray(cv), want_v[:6])
    np.testing.assert_array_equal(np.asarray(cb), want_b[:6])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["cxcywhn", "xywh"])
def test_box_format_round_trips_through_mosaic_and_mixup(getkey, fmt):
    b, h, w = 4, 40, 36
    x = images(getkey(), b, h=h, w=w, dtype=jnp.uint8)
    bx, c, v = box_data(getkey(), b, h=h, w=w)
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
    # 19 YOLO boxes on 640 images passed as pixels: the silent 19 -> 0.
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
