"""Mosaic for classification (jbalance._src.augment.mosaic) against the NumPy references.

Every output pixel is compared with `np_mosaic` built from the documented draws. Mosaic
copies tiles with one of two kernels, chosen per batch from the layout (static-shape
windows when every source's footprint lies inside its tile and is not too thin, masked
windows otherwise); the cases below take each (`uses_windows` shows which), with the centre and the
partner weights given eagerly, concrete under `jit` and traced.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import (
    J,
    call,
    cases,
    images,
    mosaic_draws,
    mosaic_reference,
    soft_labels,
    uses_windows,
    weights_for,
)
from reference_augment import mosaic_regions, np_mosaic, source_origins

from jbalance import augment

H, W = 11, 14


def _expected_labels(labels, regions, sources, hw):
    area = np.array([(r[1] - r[0]) * (r[3] - r[2]) for r in regions], np.float32)
    assert area.sum() == hw[0] * hw[1]  # the tiles partition the image
    return (area / np.float32(hw[0] * hw[1])) @ np.asarray(labels)[sources]


# (tiles, batch, dtype, placement, centre, weighted, how, takes the window kernel)
MOSAIC_CASES = [
    (4, 5, jnp.uint8, "corner", (0.5, 0.5), False, "eager", True),
    (2, 5, jnp.float32, "corner", (0.4, 0.6), True, "traced", True),
    (4, 3, jnp.float32, "same", (0.25, 0.75), False, "traced", False),
    (2, 4, jnp.uint8, "corner", (0.02, 0.1), True, "concrete", False),  # thin tiles
    (4, 5, jnp.int32, "corner", (0.25, 0.75), False, "concrete", None),  # per the draws
    (2, 1, jnp.float32, "same", (0.25, 0.75), False, "concrete", False),
    (4, 4, jnp.bfloat16, "corner", (0.5, 0.5), True, "concrete", True),
    (4, 4, jnp.uint8, "corner", (0.0, 0.08), False, "traced", False),  # thin tiles
]


@pytest.mark.parametrize("tiles,b,dtype,placement,centre,weighted,how,windows", cases(MOSAIC_CASES))
def test_mosaic_matches_reference(getkey, tiles, b, dtype, placement, centre, weighted, how,
                                  windows):
    x, y = images(getkey(), b, h=H, w=W, dtype=dtype), soft_labels(getkey(), b)
    key = getkey()
    w = weights_for(b) if weighted else None
    got = call(augment.mosaic, key, x, y, how=how,
               static={"tiles": tiles, "placement": placement}, centre=centre,
               partner_weights=w)
    assert isinstance(got, augment.Mixed)
    assert got.images.shape == x.shape and got.images.dtype == x.dtype
    want, regions, origins, sources = mosaic_reference(key, x, tiles, (H, W),
                                                       placement=placement, centre=centre,
                                                       partner_weights=w)
    if windows is not None:  # the case takes the kernel it is meant to pin
        assert all(uses_windows(r, o, (H, W), (H, W)) for r, o in zip(regions, origins)) \
            == windows
    np.testing.assert_array_equal(np.asarray(got.images), want)  # every pixel, exact
    for i in range(b):
        np.testing.assert_allclose(got.labels[i], _expected_labels(y, regions[i], sources[i],
                                                                   (H, W)),
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("how", ["concrete", "traced"])
def test_mosaic_layout_and_mosaic_one_match_the_draws(getkey, how):
    x, y = images(getkey(), 4, h=H, w=W, dtype=jnp.uint8), soft_labels(getkey(), 4)
    for seed, tiles in ((0, 4), (1, 2), (2, 2), (3, 4)):
        key = jax.random.key(seed)
        cy, cx, left_right = mosaic_draws(key, (H, W), (0.3, 0.7))
        regions = mosaic_regions(tiles, (cy, cx), (H, W), left_right)
        origins = source_origins(tiles, (cy, cx), (H, W), (H, W), left_right)
        layout = call(augment.mosaic_layout, key, how=how,
                      static={"source_size": (H, W), "tiles": tiles}, centre=(0.3, 0.7))
        assert isinstance(layout, augment.MosaicLayout)
        np.testing.assert_array_equal(np.asarray(layout.rects), np.asarray(regions))
        np.testing.assert_array_equal(np.asarray(layout.offsets), np.asarray(origins))
        got = call(augment.mosaic_one, key, x[:tiles], y[:tiles], how=how,
                   static={"tiles": tiles}, centre=(0.3, 0.7))
        want = np_mosaic(np.asarray(x[:tiles]), regions, origins, (H, W))
        np.testing.assert_array_equal(np.asarray(got.images), want)
        np.testing.assert_allclose(got.labels, _expected_labels(y, regions, list(range(tiles)),
                                                                (H, W)), rtol=1e-6, atol=1e-7)


def test_mosaic_of_identical_images_keeps_the_image(getkey):
    x = jnp.broadcast_to(images(getkey(), 1, dtype=jnp.uint8), (4, 12, 10, 3))
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
