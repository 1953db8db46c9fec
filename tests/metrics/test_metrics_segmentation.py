"""`metrics.segmentation_confusion` / `segmentation_report` against float64 NumPy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jbalance import checks, metrics

# Ratios of integer counts: float32 is exact to ~1e-7 relative.
RTOL = 1e-6


def _np_confusion(labels, predictions, c, ignore=None, mask=None):
    """Pixel by pixel, in plain Python (the reference, written from the definition)."""
    cm = np.zeros((c, c), np.int64)
    m = np.ones(labels.shape, bool) if mask is None else np.broadcast_to(mask, labels.shape)
    for y, p, keep in zip(labels.ravel(), predictions.ravel(), m.ravel()):
        if keep and y != ignore:
            cm[y, p] += 1
    return cm


def _np_report(cm):
    """IoU / Dice / fwIoU / accuracy in float64, classes absent from both excluded."""
    cm = np.asarray(cm, np.float64)
    c = cm.shape[0]
    iou, dice = np.full(c, np.nan), np.full(c, np.nan)
    for k in range(c):
        tp = cm[k, k]
        fp = cm[:, k].sum() - tp
        fn = cm[k, :].sum() - tp
        if tp + fp + fn > 0:
            iou[k] = tp / (tp + fp + fn)
            dice[k] = 2 * tp / (2 * tp + fp + fn)
    total = cm.sum()
    freq = cm.sum(1) / total
    return {"iou": iou, "dice": dice, "miou": np.nanmean(iou), "mdice": np.nanmean(dice),
            "worst_class_iou": np.nanmin(iou),
            "fwiou": sum(freq[k] * iou[k] for k in range(c) if freq[k] > 0),
            "pixel_accuracy": np.trace(cm) / total}


def _maps(rng, n=3, h=9, w=7, c=5, ignore=None, absent=()):
    probs = 0.5 ** np.arange(c)
    probs[list(absent)] = 0
    labels = rng.choice(c, (n, h, w), p=probs / probs.sum())
    noise = rng.random((n, h, w)) < 0.3
    predictions = np.where(noise, rng.choice(c, (n, h, w), p=probs / probs.sum()), labels)
    if ignore is not None:
        labels = np.where(rng.random((n, h, w)) < 0.1, ignore, labels)
    return labels.astype(np.int32), predictions.astype(np.int32)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ignore", [None, 255])
def test_confusion_matches_reference(seed, ignore):
    rng = np.random.default_rng(seed)
    labels, predictions = _maps(rng, ignore=ignore)
    cm = metrics.segmentation_confusion(labels, predictions, num_classes=5, ignore_index=ignore)
    assert cm.dtype == jnp.int32 and cm.shape == (5, 5)
    np.testing.assert_array_equal(cm, _np_confusion(labels, predictions, 5, ignore))


def test_confusion_layout_and_hand_worked():
    labels = np.array([[[0, 0], [1, 255]]])
    predictions = np.array([[[0, 1], [1, 1]]])
    cm = metrics.segmentation_confusion(labels, predictions, num_classes=2, ignore_index=255)
    np.testing.assert_array_equal(cm, [[1, 1], [0, 1]])  # rows: truth; [0, 1]: a 0 called 1


def test_scores_are_argmaxed_and_3d_volumes_work():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (2, 3, 4, 5)).astype(np.int32)   # [N, D, H, W]
    logits = rng.normal(size=(2, 3, 4, 5, 4)).astype(np.float32)
    cm = metrics.segmentation_confusion(labels, logits, num_classes=4)
    np.testing.assert_array_equal(cm, _np_confusion(labels, logits.argmax(-1), 4))


def test_where_mask_and_uint8_labels():
    rng = np.random.default_rng(2)
    labels, predictions = _maps(rng, ignore=255)
    mask = rng.random(labels.shape) < 0.6
    # Masked pixels may hold any label.
    labels_bad = np.where(mask, labels, 77).astype(np.uint8)
    cm = metrics.segmentation_confusion(labels_bad, predictions, num_classes=5,
                                        ignore_index=255, where=mask)
    np.testing.assert_array_equal(cm, _np_confusion(labels, predictions, 5, 255, mask))
    # A per-image mask broadcasts.
    per_image = np.array([True, False, True])[:, None, None]
    cm = metrics.segmentation_confusion(labels, predictions, num_classes=5, ignore_index=255,
                                        where=per_image)
    np.testing.assert_array_equal(cm, _np_confusion(labels, predictions, 5, 255, per_image))


def test_batches_sum_to_the_whole():
    rng = np.random.default_rng(3)
    labels, predictions = _maps(rng, n=6, ignore=255)
    f = jax.jit(functools.partial(metrics.segmentation_confusion, num_classes=5,
                                  ignore_index=255))
    parts = sum(f(labels[i:i + 2], predictions[i:i + 2]) for i in range(0, 6, 2))
    np.testing.assert_array_equal(parts, f(labels, predictions))
    r_parts = metrics.segmentation_report(parts)
    want = _np_report(_np_confusion(labels, predictions, 5, 255))
    for k, v in want.items():
        np.testing.assert_allclose(r_parts[k], v, rtol=RTOL, err_msg=k)


def test_out_of_range_raise_eagerly_dropped_under_jit_and_kept_under_checked():
    labels = np.array([[0, 1, 7, 255]], np.int32)
    predictions = np.array([[0, 1, 1, 0]], np.int32)
    with pytest.raises(ValueError, match="`labels`"):
        metrics.segmentation_confusion(labels, predictions, num_classes=2, ignore_index=255)
    with pytest.raises(ValueError, match="`labels`"):  # 255 is not ignored here
        metrics.segmentation_confusion(np.array([[0, 255]]), np.array([[0, 0]]), num_classes=2)
    with pytest.raises(ValueError, match="`predictions`"):
        metrics.segmentation_confusion(np.array([[0, 1]]), np.array([[0, 2]]), num_classes=2)
    f = functools.partial(metrics.segmentation_confusion, num_classes=2, ignore_index=255)
    cm = jax.jit(f)(labels, predictions)
    np.testing.assert_array_equal(cm, [[1, 0], [0, 1]])  # the 7 is dropped, never aliased
    err, _ = jax.jit(checks.checked(f))(labels, predictions)
    assert "labels" in str(err.get())


def test_shard_map_psum_equals_whole_batch():
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    rng = np.random.default_rng(4)
    labels, predictions = _maps(rng, n=8, ignore=255)

    def local(y, p):
        cm = metrics.segmentation_confusion(y, p, num_classes=5, ignore_index=255)
        return jax.lax.psum(cm, "data")

    f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec("data"),) * 2,
                              out_specs=PartitionSpec()))
    shard = NamedSharding(mesh, PartitionSpec("data"))
    cm = f(jax.device_put(labels, shard), jax.device_put(predictions, shard))
    np.testing.assert_array_equal(cm, _np_confusion(labels, predictions, 5, 255))


def test_vmap_gives_per_image_matrices():
    rng = np.random.default_rng(5)
    labels, predictions = _maps(rng, n=4)
    f = functools.partial(metrics.segmentation_confusion, num_classes=5)
    per_image = jax.vmap(lambda y, p: f(y[None], p[None]))(labels, predictions)
    for i in range(4):
        np.testing.assert_array_equal(per_image[i],
                                      _np_confusion(labels[i], predictions[i], 5))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("absent", [(), (4,), (0, 3)])
def test_report_matches_float64_reference(seed, absent):
    rng = np.random.default_rng(seed)
    labels, predictions = _maps(rng, absent=absent, ignore=255)
    cm = metrics.segmentation_confusion(labels, predictions, num_classes=5, ignore_index=255)
    got = metrics.segmentation_report(cm)
    want = _np_report(_np_confusion(labels, predictions, 5, 255))
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=RTOL, err_msg=k)


def test_report_hand_worked():
    # Class 0: tp 6, fn 2 (one pixel called 1, one called 3), fp 1 -> IoU 6/9, Dice 12/15.
    # Class 1: tp 1, fp 1, fn 1 -> IoU 1/3, Dice 2/4. Class 2: never present, never
    # predicted -> NaN, left out of the means. Class 3: predicted once, never present -> IoU 0,
    # counted in the mean.
    cm = np.array([[6, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    r = {k: np.asarray(v) for k, v in metrics.segmentation_report(cm).items()}
    np.testing.assert_allclose(r["iou"][[0, 1, 3]], [6 / 9, 1 / 3, 0.0], rtol=RTOL)
    assert np.isnan(r["iou"][2]) and np.isnan(r["dice"][2])
    np.testing.assert_allclose(r["dice"][[0, 1, 3]], [12 / 15, 2 / 4, 0.0], rtol=RTOL)
    np.testing.assert_allclose(r["miou"], (6 / 9 + 1 / 3 + 0) / 3, rtol=RTOL)
    np.testing.assert_allclose(r["worst_class_iou"], 0.0)
    # fwIoU: true pixels 8 and 2 of 10 (class 3 has none, so weighs 0).
    np.testing.assert_allclose(r["fwiou"], 0.8 * 6 / 9 + 0.2 * 1 / 3, rtol=RTOL)
    np.testing.assert_allclose(r["pixel_accuracy"], 7 / 10, rtol=RTOL)


def test_report_empty_and_float_counts():
    r = metrics.segmentation_report(np.zeros((3, 3), np.int32))
    for k in ("miou", "mdice", "fwiou", "pixel_accuracy", "worst_class_iou"):
        assert np.isnan(r[k]), k
    assert np.isnan(r["iou"]).all()
    weighted = np.array([[2.5, 0.5], [0.0, 1.0]])
    got = metrics.segmentation_report(weighted)
    want = _np_report(weighted)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=RTOL, err_msg=k)


def test_report_jit_and_eval_shape():
    cm = jnp.array([[5, 1], [2, 3]], jnp.int32)
    a = jax.jit(metrics.segmentation_report)(cm)
    b = metrics.segmentation_report(cm)
    for k in b:
        np.testing.assert_allclose(a[k], b[k], rtol=RTOL)
    out = jax.eval_shape(metrics.segmentation_report, jax.ShapeDtypeStruct((4, 4), jnp.int32))
    assert out["iou"].shape == (4,) and out["miou"].shape == () and \
        out["miou"].dtype == jnp.float32
    shp = jax.eval_shape(functools.partial(metrics.segmentation_confusion, num_classes=3),
                         jax.ShapeDtypeStruct((2, 8, 8), jnp.uint8),
                         jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.bfloat16))
    assert shp.shape == (3, 3) and shp.dtype == jnp.int32


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(labels=np.zeros((2, 3), np.float32), predictions=np.zeros((2, 3), np.int32)),
     TypeError, "labels"),
    (dict(labels=np.zeros((2, 3), np.int32), predictions=np.zeros((2, 4), np.int32)),
     ValueError, "predictions"),
    (dict(labels=np.zeros((2, 3), np.int32), predictions=np.zeros((2, 3, 5), np.float32)),
     ValueError, "predictions"),
    (dict(labels=np.zeros((2, 3), np.int32), predictions=np.zeros((2, 3), np.float32)),
     TypeError, "predictions"),
    (dict(labels=np.zeros((2, 3), np.int32), predictions=np.zeros((2, 3), np.int32),
          where=np.ones((2, 3), np.float32)), TypeError, "where"),
    (dict(labels=np.zeros((2, 3), np.int32), predictions=np.zeros((2, 3), np.int32),
          ignore_index=255.0), TypeError, "ignore_index"),
    (dict(labels=np.zeros((2, 3), np.int32), predictions=np.zeros((2, 3), np.int32),
          num_classes=0), ValueError, "num_classes"),
])
def test_bad_inputs(kwargs, exc, match):
    kwargs.setdefault("num_classes", 4)
    with pytest.raises(exc, match=match):
        metrics.segmentation_confusion(**kwargs)


def test_bad_confusion_shape():
    with pytest.raises(ValueError, match="confusion"):
        metrics.segmentation_report(np.zeros((3, 2)))

