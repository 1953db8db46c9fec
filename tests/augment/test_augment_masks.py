"""Mask-aware MixUp, CutMix and Mosaic (jbalance._src.augment.masks), checked by construction
and against the NumPy references.

By construction: images whose pixels encode their class (the one-hot of the mask as
channels, or the class id as a value) must still agree with the returned masks after every
augmentation: MixUp's soft mask equals the blended encoding, CutMix's and Mosaic's masks
equal the encoding of every pixel. Against the references: the masks rebuilt in float64
NumPy from the documented draws (`derive`, `lambda_of`, `cutmix_draws`, `mosaic_reference`),
and the images equal to the image-only twins for the same key.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import (
    J,
    call,
    cutmix_draws,
    derive,
    images,
    lambda_of,
    mosaic_reference,
    rng_of,
    weights_for,
)
from reference_augment import cutmix_box_from_draws

from jbalance import augment, checks

H, W, K = 12, 10, 5


def label_maps(key, b, h=H, w=W, k=K, dtype=jnp.int32, ignore=None, frac=0.1):
    """``[b, h, w]`` ids in ``[0, k)`` as blobs (runs of rows), some pixels ``ignore``."""
    rng = rng_of(key)
    m = rng.integers(0, k, (b, h, w))
    m = np.repeat(m[:, ::2], 2, axis=1)[:, :h]  # blobs, so boxes cut through regions
    if ignore is not None:
        m = np.where(rng.random((b, h, w)) < frac, ignore, m)
    return jnp.asarray(m.astype(np.dtype(dtype)))


def encode(masks, k=K, dtype=jnp.float32):
    """Images whose channels are the one-hot of their mask (ignored pixels: zeros)."""
    return jax.nn.one_hot(masks, k, dtype=dtype)


def encode_ids(masks, dtype=jnp.float32):
    """Images whose one channel is the class id of the pixel."""
    return jnp.asarray(masks).astype(dtype)[..., None]


# --------------------------------------------------------------------------------------------
# MixUp


def np_soft(a, b, lam, k, ignore):
    """``lam e_a + (1 - lam) e_b`` in float64, a zero row where either is ``ignore``."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    eye = np.eye(k)
    out = (np.float64(lam) * eye[np.clip(a, 0, k - 1)] * (a < k)[..., None]
           + (1 - np.float64(lam)) * eye[np.clip(b, 0, k - 1)] * (b < k)[..., None])
    if ignore is not None:
        out[(a == ignore) | (b == ignore)] = 0
    return out


@pytest.mark.parametrize("mode,weighted,ignore,how", [
    ("elem", False, None, "concrete"),
    ("elem", True, 255, "traced"),
    ("batch", False, 255, "concrete"),
])
def test_mixup_masks_by_construction_and_reference(getkey, mode, weighted, ignore, how):
    b = 6
    m = label_maps(getkey(), b, ignore=ignore)
    x = encode(m)
    key = getkey()
    w = weights_for(b) if weighted else None
    got = call(augment.mixup_masks, key, x, m, how=how,
               static={"num_classes": K, "mode": mode, "ignore_index": ignore}, alpha=0.7,
               partner_weights=w)
    assert isinstance(got, augment.MixedMasks)
    assert got.masks.shape == (b, H, W, K) and got.masks.dtype == jnp.float32
    # By construction: the blended one-hot image is the soft mask, except ignored pixels.
    xi, si = np.asarray(got.images, np.float64), np.asarray(got.masks, np.float64)
    keys, partners = derive(key, b, mode=mode, partner_weights=w)
    mn = np.asarray(m)
    for i in range(b):
        p = partners[i, 0]
        lam = lambda_of(keys[i], 0.7)
        want = np_soft(mn[i], mn[p], lam, K, ignore)
        np.testing.assert_allclose(si[i], want, rtol=1e-6, atol=1e-7)
        kept = np.ones((H, W), bool) if ignore is None else (mn[i] != ignore) & (mn[p] != ignore)
        np.testing.assert_allclose(xi[i][kept], si[i][kept], rtol=1e-6, atol=1e-7)
        assert (si[i][~kept] == 0).all()
        np.testing.assert_allclose(si[i][kept].sum(-1), 1.0, rtol=1e-6)
    # The images are mixup's for the same key (labels only ride along); the two programs
    # fuse the blend differently: an ulp of float32.
    want_x = J(augment.mixup, mode=mode)(key, x, jnp.eye(b), alpha=0.7, partner_weights=w)
    np.testing.assert_allclose(np.asarray(got.images), np.asarray(want_x.images), rtol=1e-6,
                               atol=1e-7)


def test_mixup_masks_integer_images_and_bf16(getkey):
    m = label_maps(getkey(), 4, dtype=jnp.uint8)
    x8 = images(getkey(), 4, dtype=jnp.uint8)
    got = J(augment.mixup_masks, num_classes=K)(getkey(), x8, m)
    assert got.images.dtype == jnp.uint8 and got.masks.dtype == jnp.float32
    xb = encode(m, dtype=jnp.bfloat16)
    got = J(augment.mixup_masks, num_classes=K)(getkey(), xb, m)
    assert got.masks.dtype == jnp.bfloat16


# --------------------------------------------------------------------------------------------
# CutMix


@pytest.mark.parametrize("mode,weighted,dtype,how", [
    ("elem", False, jnp.int32, "concrete"),
    ("elem", True, jnp.uint8, "traced"),
    ("batch", False, jnp.uint8, "concrete"),
    ("batch", True, jnp.int32, "traced"),
])
def test_cutmix_masks_every_pixel_agrees(getkey, mode, weighted, dtype, how):
    b = 5
    m = label_maps(getkey(), b, dtype=dtype)
    x = encode_ids(m)
    key = getkey()
    w = weights_for(b) if weighted else None
    got = call(augment.cutmix_masks, key, x, m, how=how, static={"mode": mode}, alpha=1.0,
               partner_weights=w)
    assert got.masks.dtype == dtype and got.masks.shape == (b, H, W)
    # By construction: every pixel's encoded class is its mask id.
    np.testing.assert_array_equal(np.asarray(got.images[..., 0]).astype(np.int64),
                                  np.asarray(got.masks).astype(np.int64))
    # The reference: the box from the documented draws, pasted with NumPy slicing.
    keys, partners = derive(key, b, mode=mode, partner_weights=w)
    mn = np.asarray(m)
    pasted = 0
    for i in range(b):
        lam, cy, cx = cutmix_draws(keys[i], 1.0, H, W)
        y1, y2, x1, x2 = cutmix_box_from_draws(lam, cy, cx, H, W)
        want = mn[i].copy()
        want[y1:y2, x1:x2] = mn[partners[i, 0]][y1:y2, x1:x2]
        np.testing.assert_array_equal(np.asarray(got.masks[i]), want)
        pasted += (y2 - y1) * (x2 - x1)
    assert pasted > 0
    # The images are cutmix's for the same key.
    want_x = J(augment.cutmix, mode=mode)(key, x, jnp.eye(b), alpha=1.0, partner_weights=w)
    np.testing.assert_array_equal(np.asarray(got.images), np.asarray(want_x.images))


# --------------------------------------------------------------------------------------------
# Mosaic


@pytest.mark.parametrize("tiles,out_hw,placement,weighted,dtype", [
    (4, None, "corner", False, jnp.int32),
    (2, (20, 16), "corner", True, jnp.uint8),
    (4, (24, 20), "same", False, jnp.uint8),
])
def test_mosaic_masks_every_pixel_agrees(getkey, tiles, out_hw, placement, weighted, dtype):
    b = 5
    m = label_maps(getkey(), b, dtype=dtype)
    x = encode_ids(m, jnp.float32)
    key = getkey()
    w = weights_for(b) if weighted else None
    got = J(augment.mosaic_masks, tiles=tiles, output_size=out_hw, placement=placement)(
            key, x, m, partner_weights=w)
    oh, ow = out_hw or (H, W)
    assert got.masks.shape == (b, oh, ow) and got.masks.dtype == dtype
    want, _, _, _ = mosaic_reference(key, np.asarray(m)[..., None], tiles, (oh, ow),
                                     placement=placement, fill=255, partner_weights=w)
    np.testing.assert_array_equal(np.asarray(got.masks), want[..., 0])
    covered = np.asarray(got.masks) != 255
    assert covered.any() and (out_hw is None) == covered.all()
    # By construction: the encoded class of every covered pixel is its mask id; the
    # uncovered ones are the fills.
    img = np.asarray(got.images[..., 0]).astype(np.int64)
    np.testing.assert_array_equal(img[covered], np.asarray(got.masks)[covered])
    assert (img[~covered] == 0).all()
    if out_hw is None and placement == "corner":
        want_x = J(augment.mosaic, tiles=tiles)(key, x, jnp.eye(b), partner_weights=w)
        np.testing.assert_array_equal(np.asarray(got.images), np.asarray(want_x.images))
    else:  # the detection Mosaic's canvas for the same key and output size
        boxes = jnp.zeros((b, 1, 4)), jnp.zeros((b, 1), jnp.int32), jnp.zeros((b, 1), bool)
        want_x = J(augment.mosaic_boxes, tiles=tiles, output_size=(oh, ow),
                   placement=placement)(key, x, *boxes, partner_weights=w)
        np.testing.assert_array_equal(np.asarray(got.images), np.asarray(want_x.images))


def test_mosaic_masks_fill_values(getkey):
    m = label_maps(getkey(), 3, dtype=jnp.uint8)
    x = images(getkey(), 3, dtype=jnp.uint8)
    got = J(augment.mosaic_masks, output_size=(30, 30), fill_mask=7, fill_value=114)(
            getkey(), x, m)
    uncovered = np.asarray(got.masks) == 7
    assert uncovered.any()
    assert (np.asarray(got.images)[uncovered] == 114).all()


# --------------------------------------------------------------------------------------------
# The one-example forms, randomness, jit


def _one_args(getkey, b=4):
    m = label_maps(getkey(), b, ignore=255)
    return m, encode_ids(m)


@pytest.mark.slow
def test_vmap_of_one_equals_batch(getkey):
    m, x = _one_args(getkey)
    b = m.shape[0]
    key = getkey()
    keys, partners = derive(key, b)
    p = partners[:, 0]
    got = J(augment.mixup_masks, num_classes=K, ignore_index=255)(key, x, m)
    one = jax.vmap(lambda k, a, ma, pa, pm: augment.mixup_masks_one(
            k, a, ma, pa, pm, num_classes=K, ignore_index=255))(keys, x, m, x[p], m[p])
    np.testing.assert_allclose(np.asarray(got.images), np.asarray(one.images), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got.masks), np.asarray(one.masks), rtol=1e-6)
    got = J(augment.cutmix_masks)(key, x, m)
    one = jax.vmap(augment.cutmix_masks_one)(keys, x, m, x[p], m[p])
    for g, o in zip(got, one):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(o))
    keys, partners = derive(key, b, num_partners=3)
    s = np.concatenate([np.arange(b)[:, None], partners], 1)
    got = J(augment.mosaic_masks, output_size=(16, 14))(key, x, m)
    one = jax.vmap(lambda k, a, ma: augment.mosaic_masks_one(k, a, ma, output_size=(16, 14)))(
            keys, x[s], m[s])
    for g, o in zip(got, one):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(o))


@pytest.mark.parametrize("name,kwargs", [
    ("mixup_masks", {"num_classes": K, "ignore_index": 255}),
    ("cutmix_masks", {}),
    ("mosaic_masks", {}),
])
def test_determinism_and_key_sensitivity(getkey, name, kwargs):
    m, x = _one_args(getkey, b=6)
    f = J(getattr(augment, name), **kwargs)
    a, b_, c = f(jax.random.key(1), x, m), f(jax.random.key(1), x, m), f(jax.random.key(2), x, m)
    for u, v in zip(a, b_):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert not np.array_equal(np.asarray(a.masks), np.asarray(c.masks))


@pytest.mark.slow
def test_jit_equals_eager(getkey):
    m, x = _one_args(getkey)
    key = getkey()
    for fn, kw in ((augment.mixup_masks, {"num_classes": K, "ignore_index": 255}),
                   (augment.cutmix_masks, {}), (augment.mosaic_masks, {})):
        eager = fn(key, x, m, **kw)
        jitted = J(fn, **kw)(key, x, m)
        for e, j in zip(eager, jitted):
            np.testing.assert_allclose(np.asarray(e, np.float64), np.asarray(j, np.float64),
                                       rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Bad input


def test_bad_inputs_name_the_argument(getkey):
    m, x = _one_args(getkey)
    key = getkey()
    with pytest.raises(ValueError, match="`masks` holds class id 255"):
        augment.mixup_masks(key, x, m, num_classes=K)  # 255 without ignore_index
    with pytest.raises(ValueError, match="`masks` holds class id 9"):
        augment.mixup_masks(key, x, m.at[0, 0, 0].set(9), num_classes=K, ignore_index=255)
    with pytest.raises(ValueError, match="`masks` holds class id -1"):
        augment.mixup_masks(key, x, m.at[0, 0, 0].set(-1), num_classes=K, ignore_index=255)
    for fn in (augment.cutmix_masks, augment.mosaic_masks):
        with pytest.raises(ValueError, match="`masks` must have the leading shape"):
            fn(key, x, m[:, :-1])
        with pytest.raises(TypeError, match="`masks` must hold integer class ids"):
            fn(key, x, m.astype(jnp.float32))
        with pytest.raises(ValueError, match="`masks` must have rank"):
            fn(key, x, m[0])
    with pytest.raises(ValueError, match="`masks` must have the leading shape"):
        augment.mixup_masks(key, x, m[:3], num_classes=K, ignore_index=255)
    with pytest.raises(ValueError, match="`partner_weights`"):
        augment.cutmix_masks(key, x, m, partner_weights=jnp.array([1.0, jnp.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="`num_classes`"):
        augment.mixup_masks(key, x, m, num_classes=0)
    with pytest.raises(ValueError, match="`ignore_index`"):
        augment.mixup_masks(key, x, m, num_classes=K, ignore_index=255.0)
    with pytest.raises(ValueError, match="`fill_mask`"):
        augment.mosaic_masks(key, x, m.astype(jnp.uint8), fill_mask=256)
    with pytest.raises(ValueError, match="`alpha`"):
        augment.cutmix_masks(key, x, m, alpha=jnp.inf)
    with pytest.raises(TypeError, match="`partner_mask` must hold integer"):
        augment.cutmix_masks_one(key, x[0], m[0], x[1], m[1].astype(jnp.float32))


def test_out_of_range_ids_under_jit_are_checked(getkey):
    m, x = _one_args(getkey)
    bad = m.at[1, 2, 3].set(K)
    f = jax.jit(checks.checked(lambda k, a, b: augment.mixup_masks(k, a, b, num_classes=K,
                                                                   ignore_index=255)))
    err, _ = f(getkey(), x, bad)
    assert err.get() is not None and "class ids outside [0, 5)" in err.get()
    err, _ = f(getkey(), x, m)
    assert err.get() is None
