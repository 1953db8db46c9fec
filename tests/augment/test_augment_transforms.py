"""Transforms and outputs of the batch augmentations: named results, `vmap` of the
one-example functions, abstract evaluation, dtypes, randomness and retracing.

Eager, `jit`-concrete and `jit`-traced calls are each compared with the NumPy references in
the per-capability files (`augment_data.call`), not with one another.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import (
    J,
    assert_fits,
    box_data,
    derive,
    images,
    lambda_of,
    mosaic_reference,
    soft_labels,
)
from reference_augment import np_mixup

from jbalance import augment
from jbalance import boxes as boxes_lib

_S = jax.ShapeDtypeStruct


def _named_outputs():
    """(function, a call of it on abstract arrays, the NamedTuple it returns)."""
    key = jax.random.key(0)
    x, y = _S((3, 12, 10, 3), jnp.uint8), _S((3, 4), jnp.float32)
    bx, c, v = _S((3, 2, 4), jnp.float32), _S((3, 2), jnp.int32), _S((3, 2), jnp.bool_)
    x1, y1 = _S((12, 10, 3), jnp.uint8), _S((4,), jnp.float32)
    x4, y4 = _S((4, 12, 10, 3), jnp.uint8), _S((4, 4), jnp.float32)
    b4, c4, v4 = _S((4, 2, 4), jnp.float32), _S((4, 2), jnp.int32), _S((4, 2), jnp.bool_)
    b1, c1, v1 = _S((2, 4), jnp.float32), _S((2,), jnp.int32), _S((2,), jnp.bool_)
    a = augment
    return [
        (a.mixup, lambda: jax.eval_shape(a.mixup, key, x, y), a.Mixed),
        (a.remix, lambda: jax.eval_shape(lambda *z: a.remix(*z, counts=jnp.ones(4)), key, x, y),
         a.Mixed),
        (a.cutmix, lambda: jax.eval_shape(a.cutmix, key, x, y), a.Mixed),
        (a.mosaic, lambda: jax.eval_shape(a.mosaic, key, x, y), a.Mixed),
        (a.mixup_one, lambda: jax.eval_shape(a.mixup_one, key, x1, y1, x1, y1), a.Mixed),
        (a.cutmix_one, lambda: jax.eval_shape(a.cutmix_one, key, x1, y1, x1, y1), a.Mixed),
        (a.mosaic_one, lambda: jax.eval_shape(a.mosaic_one, key, x4, y4), a.Mixed),
        (a.mosaic_boxes, lambda: jax.eval_shape(
                lambda *z: a.mosaic_boxes(*z, output_size=(24, 20)), key, x, bx, c, v),
         a.MosaicBoxes),
        (a.mosaic_boxes_one, lambda: jax.eval_shape(a.mosaic_boxes_one, key, x4, b4, c4, v4),
         a.MosaicBoxes),
        (a.mixup_boxes, lambda: jax.eval_shape(a.mixup_boxes, key, x, bx, c, v), a.MixedBoxes),
        (a.mixup_boxes_one, lambda: jax.eval_shape(a.mixup_boxes_one, key, x1, b1, c1, v1, x1,
                                                   b1, c1, v1), a.MixedBoxes),
        (a.cutmix_box, lambda: jax.eval_shape(lambda k: a.cutmix_box(k, 12, 10), key),
         a.CutMixBox),
        (a.mosaic_layout, lambda: jax.eval_shape(lambda k: a.mosaic_layout(k, (12, 10)), key),
         a.MosaicLayout),
        (boxes_lib.clip_boxes, lambda: jax.eval_shape(
                lambda b_, v_: boxes_lib.clip_boxes(b_, v_, image_size=(12, 10)), bx, v),
         boxes_lib.ClippedBoxes),
    ]


FIELDS = {
    augment.Mixed: ("images", "labels"),
    augment.MosaicBoxes: ("images", "boxes", "classes", "valid"),
    augment.MixedBoxes: ("images", "boxes", "classes", "valid", "box_weights"),
    augment.CutMixBox: ("box", "lam"),
    augment.MosaicLayout: ("rects", "offsets"),
    boxes_lib.ClippedBoxes: ("boxes", "valid"),
}


@pytest.mark.parametrize("fn,run,kind", _named_outputs(),
                         ids=[c[0].__name__ for c in _named_outputs()])
def test_results_are_named_tuples_that_unpack(fn, run, kind):
    # Abstract evaluation keeps the NamedTuple (a pytree node), without compiling.
    out = run()
    assert type(out) is kind and kind._fields == FIELDS[kind]
    assert isinstance(out, tuple) and len(out) == len(FIELDS[kind])
    *first, last = out  # tuple unpacking keeps working
    assert last is getattr(out, kind._fields[-1])
    # Each field fits its documented shape annotation, with one size per axis name.
    memo: dict = {}
    for name in kind._fields:
        assert_fits(getattr(out, name), kind.__annotations__[name], memo,
                    f"{fn.__name__}.{name}")


def test_named_results_are_exported():
    for kind in FIELDS:
        module = augment if kind is not boxes_lib.ClippedBoxes else boxes_lib
        assert kind.__name__ in module.__all__


@pytest.mark.slow
def test_vmap_of_one_example_functions_equals_batch(getkey):
    # The documented contract batch_fn(key, ...) == vmap(one_fn)(keys, ..., partners).
    b = 5
    x, xf = images(getkey(), b, dtype=jnp.uint8), images(getkey(), b)
    y = soft_labels(getkey(), b)
    boxes, classes, valid = box_data(getkey(), b)
    key = getkey()

    def same(got, want):
        assert type(got) is type(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64),
                                       rtol=1e-6, atol=1e-6)

    # One mode / tile count per function keeps compilations down (the others share the code).
    for batch_fn, one_fn, data, mode in ((augment.mixup, augment.mixup_one, (xf, y), "batch"),
                                         (augment.cutmix, augment.cutmix_one, (x, y), "elem")):
        keys, p = derive(key, b, mode=mode)
        want = jax.jit(jax.vmap(lambda k, *a, f=one_fn: f(k, *a, alpha=0.5)))(
                keys, *data, *(d[p[:, 0]] for d in data))
        same(J(batch_fn, mode=mode)(key, *data, alpha=0.5), want)
    keys, p = derive(key, b, num_partners=1)
    s = np.concatenate([np.arange(b)[:, None], p], 1)
    want = jax.jit(jax.vmap(lambda k, a, c: augment.mosaic_one(k, a, c, tiles=2)))(
            keys, x[s], y[s])
    same(J(augment.mosaic, tiles=2)(key, x, y), want)
    keys, p = derive(key, b, num_partners=3)
    s = np.concatenate([np.arange(b)[:, None], p], 1)
    want = jax.jit(jax.vmap(lambda k, *a: augment.mosaic_boxes_one(k, *a, output_size=(20, 16))))(
            keys, x[s], boxes[s], classes[s], valid[s])
    same(J(augment.mosaic_boxes, output_size=(20, 16))(key, x, boxes, classes, valid), want)
    keys, p = derive(key, b)
    p = p[:, 0]
    want = jax.jit(jax.vmap(augment.mixup_boxes_one))(keys, xf, boxes, classes, valid, xf[p],
                                                      boxes[p], classes[p], valid[p])
    same(J(augment.mixup_boxes)(key, xf, boxes, classes, valid), want)


@pytest.mark.parametrize("name", ["mixup", "cutmix", "mosaic", "mosaic_boxes", "mixup_boxes"])
def test_a_different_key_gives_a_different_output(getkey, name):
    fn = getattr(augment, name)
    x = images(getkey(), 5, dtype=jnp.uint8)
    rest = box_data(getkey(), 5) if name.endswith("boxes") else (soft_labels(getkey(), 5),)
    f = J(fn)
    a, b = f(getkey(), x, *rest), f(getkey(), x, *rest)
    assert not np.array_equal(np.asarray(a[0]), np.asarray(b[0]))


@pytest.mark.slow
def test_batch_of_one_mixes_with_itself(getkey):
    x, y = images(getkey(), 1), soft_labels(getkey(), 1)
    for fn in (augment.mixup, augment.cutmix):
        gx, gy = J(fn)(getkey(), x, y)
        np.testing.assert_allclose(gy, y, rtol=1e-6)
        np.testing.assert_allclose(gx, x, rtol=1e-6)
    key = getkey()
    gx, gy = J(augment.mosaic)(key, x, y)  # four tiles of the one image, rearranged
    np.testing.assert_allclose(gy, y, rtol=1e-6)
    want, _, _, sources = mosaic_reference(key, x, 4, x.shape[1:3])
    assert sources == [[0, 0, 0, 0]]
    np.testing.assert_array_equal(np.asarray(gx), want)  # every pixel


@pytest.mark.slow
def test_label_rows_sum_to_one(getkey):
    x, y = images(getkey(), 5), soft_labels(getkey(), 5)
    for fn in (augment.mixup, augment.cutmix, augment.mosaic):
        for seed in range(3):
            _, gy = J(fn)(jax.random.key(seed), x, y)
            np.testing.assert_allclose(np.asarray(gy).sum(-1), 1.0, rtol=1e-6)
            assert (np.asarray(gy) >= 0).all()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.uint8, jnp.int32])
def test_dtypes_are_preserved(getkey, dtype):
    # Abstract evaluation checks the output dtypes without compiling (values: tests above).
    x = _S((3, 12, 10, 3), dtype)
    y = _S((3, 4), jnp.bfloat16)
    for fn in (augment.mixup, augment.cutmix, augment.mosaic):
        gx, gy = jax.eval_shape(fn, getkey(), x, y)
        assert gx.dtype == dtype and gy.dtype == jnp.bfloat16
    boxes = _S((3, 2, 4), jnp.bfloat16)
    classes = _S((3, 2), jnp.int32)
    valid = _S((3, 2), jnp.bool_)
    out = jax.eval_shape(augment.mixup_boxes, getkey(), x, boxes, classes, valid)
    assert out[0].dtype == dtype and out[1].dtype == out[4].dtype == jnp.bfloat16
    out = jax.eval_shape(augment.mosaic_boxes, getkey(), x, boxes, classes, valid)
    assert out[0].dtype == dtype and out[1].dtype == jnp.bfloat16


@pytest.mark.slow
def test_traced_alpha_and_eval_shape(getkey):
    x, y = images(getkey(), 5), soft_labels(getkey(), 5)
    alphas = np.array([0.2, 1.0, 5.0], np.float32)
    key = jax.random.key(0)
    out = jax.jit(jax.vmap(lambda a: augment.mixup(key, x, y, alpha=a).labels))(alphas)
    assert out.shape == (3, 5, 4)
    keys, p = derive(key, 5)
    xn, yn = np.asarray(x), np.asarray(y)
    for r, alpha in enumerate(alphas):  # each row: the reference at its alpha
        for i in range(5):
            _, want = np_mixup(xn[i], yn[i], xn[p[i, 0]], yn[p[i, 0]],
                               lambda_of(keys[i], float(alpha)))
            np.testing.assert_allclose(out[r, i], want, rtol=1e-6, atol=1e-6)
    spec = jax.eval_shape(lambda k, a, c: augment.mosaic(k, a, c),
                          jax.random.key(0), _S((6, 32, 24, 3), jnp.uint8),
                          _S((6, 5), jnp.float32))
    assert spec[0].shape == (6, 32, 24, 3) and spec[1].shape == (6, 5)


@pytest.mark.slow
def test_compiles_once_per_shape(getkey):
    traces = []

    @jax.jit
    def step(key, x, y):
        traces.append(1)
        return augment.cutmix(key, x, y)

    x, y = images(getkey(), 2, h=4, w=4), soft_labels(getkey(), 2)
    step(getkey(), x, y)
    step(getkey(), x + 1, y)
    assert len(traces) == 1
