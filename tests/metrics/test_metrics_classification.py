"""Tests for jbalance.metrics against scikit-learn and hand-worked values."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jbalance import checks, metrics

sk = pytest.importorskip("sklearn.metrics")

# Metrics are ratios of small integer counts: float32 on CPU is exact to ~1e-7.
RTOL = 1e-6
ATOL = 1e-7


def _sk_multiclass(y, p, c):
    labels = list(range(c))
    kw = dict(labels=labels, zero_division=0)
    prec, rec, f1, support = sk.precision_recall_fscore_support(y, p, average=None, **kw)
    present = np.isin(np.arange(c), y)
    return {
        "accuracy": sk.accuracy_score(y, p),
        # balanced_accuracy_score warns when predictions hold classes absent from the truth;
        # its definition is the mean recall over classes present in `y`.
        "balanced_accuracy": rec[present].mean(),
        "macro_f1": sk.f1_score(y, p, average="macro", **kw),
        "micro_f1": sk.f1_score(y, p, average="micro", **kw),
        "macro_precision": sk.precision_score(y, p, average="macro", **kw),
        "macro_recall": sk.recall_score(y, p, average="macro", **kw),
        "micro_precision": sk.precision_score(y, p, average="micro", **kw),
        "micro_recall": sk.recall_score(y, p, average="micro", **kw),
        "weighted_f1": sk.f1_score(y, p, average="weighted", **kw) if support.sum() else 0.0,
        "per_class_precision": prec,
        "per_class_recall": rec,
        "per_class_f1": f1,
        "per_class_support": support,
        "worst_class_recall": rec[present].min() if present.any() else 0.0,
        "confusion_matrix": sk.confusion_matrix(y, p, labels=labels),
    }


def _assert_report(got, want):
    for k, v in want.items():
        np.testing.assert_allclose(np.asarray(got[k]), v, rtol=RTOL, atol=ATOL, err_msg=k)
        assert not np.isnan(np.asarray(got[k])).any(), k


def _long_tail(rng, n, c, absent=()):
    """Labels with a long tail and some classes absent, and noisy predictions."""
    probs = 0.5 ** np.arange(c)
    probs[list(absent)] = 0
    y = rng.choice(c, size=n, p=probs / probs.sum())
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, c, n))
    return y.astype(np.int32), p.astype(np.int32)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("absent", [(), (3,), (0, 5)])
def test_multiclass_matches_sklearn(seed, absent):
    rng = np.random.default_rng(seed)
    c = 7
    y, p = _long_tail(rng, 200, c, absent)
    got = metrics.classification_report(jnp.asarray(y), jnp.asarray(p), num_classes=c)
    _assert_report(got, _sk_multiclass(y, p, c))


def test_class_never_seen_nor_predicted_counts_zero_in_macro():
    # Hand-worked: classes 0,1 perfect, class 2 never appears -> F1 = (1 + 1 + 0) / 3.
    y = jnp.array([0, 0, 1, 1], jnp.int32)
    r = metrics.classification_report(y, y, num_classes=3)
    np.testing.assert_allclose(r["macro_f1"], 2 / 3, rtol=RTOL)
    np.testing.assert_allclose(r["per_class_f1"], [1, 1, 0])
    np.testing.assert_allclose(r["balanced_accuracy"], 1.0)  # class 2 has no support
    np.testing.assert_allclose(r["macro_recall"], 2 / 3, rtol=RTOL)
    np.testing.assert_allclose(r["accuracy"], 1.0)


def test_hand_worked_accuracy_paradox():
    # 8 majority, 1 + 1 minority, always predicting the majority class.
    y = jnp.array([0] * 8 + [1, 2], jnp.int32)
    r = metrics.classification_report(y, jnp.zeros(10, jnp.int32), num_classes=3)
    # Class 0: P = 8/10, R = 1, F1 = 16/18; classes 1, 2: 0.
    np.testing.assert_allclose(r["per_class_f1"], [16 / 18, 0, 0], rtol=RTOL)
    np.testing.assert_allclose(r["macro_f1"], 16 / 54, rtol=RTOL)
    np.testing.assert_allclose(r["accuracy"], 0.8, rtol=RTOL)
    np.testing.assert_allclose(r["micro_f1"], 0.8, rtol=RTOL)
    np.testing.assert_allclose(r["balanced_accuracy"], 1 / 3, rtol=RTOL)
    np.testing.assert_allclose(r["worst_class_recall"], 0.0)


def test_confusion_matrix_matches_sklearn_and_layout():
    y = jnp.array([0, 0, 1, 2, 2, 2], jnp.int32)
    p = jnp.array([0, 1, 1, 2, 0, 2], jnp.int32)
    cm = metrics.confusion_matrix(y, p, num_classes=4)
    assert cm.dtype == jnp.int32 and cm.shape == (4, 4)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(y, p, labels=range(4)))
    assert int(cm[2, 0]) == 1  # rows are the truth, columns the prediction


def test_scores_are_argmaxed():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 5)).astype(np.float32)
    y = rng.integers(0, 5, 50).astype(np.int32)
    a = metrics.classification_report(y, scores, num_classes=5)
    b = metrics.classification_report(y, scores.argmax(-1).astype(np.int32), num_classes=5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_where_mask_equals_subset():
    rng = np.random.default_rng(1)
    y, p = _long_tail(rng, 120, 6)
    mask = rng.random(120) < 0.5
    got = metrics.classification_report(y, p, num_classes=6, where=jnp.asarray(mask))
    _assert_report(got, _sk_multiclass(y[mask], p[mask], 6))


def test_all_masked_gives_zeros_not_nan():
    y = jnp.array([0, 1, 2], jnp.int32)
    r = metrics.classification_report(y, y, num_classes=3, where=jnp.zeros(3, bool))
    for k, v in r.items():
        assert not np.isnan(np.asarray(v)).any(), k
    assert float(r["accuracy"]) == 0.0 and float(r["macro_f1"]) == 0.0


def test_out_of_range_values_raise_eagerly_and_are_dropped_under_jit():
    y = jnp.array([0, 1, 5, -1], jnp.int32)
    p = jnp.array([0, 3, 1, 0], jnp.int32)  # 3 is out of range for num_classes=3
    with pytest.raises(ValueError, match="labels"):
        metrics.confusion_matrix(y, p, num_classes=3)
    # Under a plain jit values cannot be checked: never aliased onto a real cell.
    cm = jax.jit(metrics.confusion_matrix, static_argnames="num_classes")(y, p, num_classes=3)
    assert int(cm.sum()) == 1 and int(cm[0, 0]) == 1
    # Under checks.checked the eager error is kept.
    err, _ = jax.jit(checks.checked(functools.partial(metrics.confusion_matrix,
                                                      num_classes=3)))(y, p)
    assert "labels" in str(err.get())


def test_summed_batches_equal_whole_set():
    rng = np.random.default_rng(2)
    y, p = _long_tail(rng, 300, 5)
    cm = sum(metrics.confusion_matrix(y[i:i + 100], p[i:i + 100], num_classes=5)
             for i in range(0, 300, 100))
    a = metrics.report_from_confusion(cm)
    b = metrics.classification_report(y, p, num_classes=5)
    for k in b:
        np.testing.assert_allclose(a[k], b[k], rtol=RTOL)


# Multi-label -------------------------------------------------------------------------------

def _sk_multilabel(y, p, c):
    kw = dict(zero_division=0)
    prec, rec, f1, support = sk.precision_recall_fscore_support(y, p, average=None, **kw)
    present = support > 0
    return {
        "accuracy": sk.accuracy_score(y, p),
        "hamming_accuracy": 1 - sk.hamming_loss(y, p),
        "macro_f1": sk.f1_score(y, p, average="macro", **kw),
        "micro_f1": sk.f1_score(y, p, average="micro", **kw),
        "macro_precision": sk.precision_score(y, p, average="macro", **kw),
        "micro_recall": sk.recall_score(y, p, average="micro", **kw),
        "per_class_precision": prec,
        "per_class_recall": rec,
        "per_class_f1": f1,
        "per_class_support": support,
        "balanced_accuracy": rec[present].mean(),
        "confusion_matrix": sk.multilabel_confusion_matrix(y, p),
    }


@pytest.mark.parametrize("seed", range(3))
def test_multilabel_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, c = 80, 6
    y = (rng.random((n, c)) < np.array([0.6, 0.3, 0.1, 0.05, 0.0, 0.2])).astype(np.int32)
    flip = rng.random((n, c)) < 0.15
    p = np.where(flip, 1 - y, y).astype(np.int32)
    p[:, 4] = 0  # class 4: never present, never predicted -> 0/0 everywhere
    want = _sk_multilabel(y, p, c)
    for fn in (metrics.classification_report, metrics.multilabel_classification_report):
        got = fn(jnp.asarray(y), jnp.asarray(p), num_classes=c)
        _assert_report(got, want)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y, p, num_classes=c), want["confusion_matrix"])


def test_multilabel_bool_inputs_and_mask():
    rng = np.random.default_rng(5)
    y = rng.random((40, 4)) < 0.3
    p = rng.random((40, 4)) < 0.3
    mask = rng.random(40) < 0.6
    got = metrics.classification_report(y, p, num_classes=4, where=mask)
    _assert_report(got, _sk_multilabel(y[mask], p[mask], 4))


def test_multilabel_float_targets_and_probabilities():
    rng = np.random.default_rng(7)
    y = (rng.random((50, 5)) < 0.3).astype(np.int32)
    probs = rng.random((50, 5)).astype(np.float32)
    want = _sk_multilabel(y, (probs > 0.5).astype(np.int32), 5)
    # Float 0/1 targets (as fed to a sigmoid loss) and probabilities thresholded at 0.5.
    got = metrics.classification_report(y.astype(np.float32), probs, num_classes=5)
    _assert_report(got, want)


def test_multilabel_hand_worked():
    y = jnp.array([[1, 0, 1], [0, 1, 0]])
    p = jnp.array([[1, 0, 0], [0, 1, 0]])
    r = metrics.classification_report(y, p, num_classes=3)
    # tp = 2, fp = 0, fn = 1 -> micro F1 = 4 / 5; per class F1 = [1, 1, 0].
    np.testing.assert_allclose(r["micro_f1"], 0.8, rtol=RTOL)
    np.testing.assert_allclose(r["macro_f1"], 2 / 3, rtol=RTOL)
    np.testing.assert_allclose(r["accuracy"], 0.5)


# Transforms --------------------------------------------------------------------------------

def test_jit_equals_eager_and_compiles_once():
    traces = []

    def f(y, p):
        traces.append(1)
        return metrics.classification_report(y, p, num_classes=5)

    jf = jax.jit(f)
    rng = np.random.default_rng(3)
    y, p = _long_tail(rng, 64, 5)
    eager = metrics.classification_report(y, p, num_classes=5)
    a = jf(jnp.asarray(y), jnp.asarray(p))
    y2, p2 = _long_tail(rng, 64, 5)
    jf(jnp.asarray(y2), jnp.asarray(p2))
    assert len(traces) == 1
    for k in eager:
        np.testing.assert_allclose(a[k], eager[k], rtol=RTOL)


def test_static_argnames_jit():
    f = jax.jit(metrics.confusion_matrix, static_argnames="num_classes")
    y = jnp.array([0, 1, 1], jnp.int32)
    np.testing.assert_array_equal(f(y, y, num_classes=2), [[1, 0], [0, 2]])


@pytest.mark.slow
def test_vmap_equals_loop():
    rng = np.random.default_rng(4)
    ys, ps = zip(*[_long_tail(rng, 30, 4) for _ in range(5)])
    ys, ps = np.stack(ys), np.stack(ps)
    f = functools.partial(metrics.classification_report, num_classes=4)
    batched = jax.vmap(f)(jnp.asarray(ys), jnp.asarray(ps))
    for i in range(5):
        one = f(ys[i], ps[i])
        for k in one:
            np.testing.assert_allclose(batched[k][i], one[k], rtol=RTOL)


def test_sharded_inputs_match():
    devices = np.array(jax.devices()[:8])
    mesh = Mesh(devices, ("data",))
    rng = np.random.default_rng(6)
    y, p = _long_tail(rng, 8 * 16, 6)
    shard = NamedSharding(mesh, PartitionSpec("data"))
    ys, ps = jax.device_put(y, shard), jax.device_put(p, shard)
    f = jax.jit(functools.partial(metrics.classification_report, num_classes=6))
    got = f(ys, ps)
    want = metrics.classification_report(y, p, num_classes=6)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=RTOL)


def test_shard_map_psum_of_confusion_matrices():
    # Each device counts its shard; the psum of the matrices is the matrix of the whole batch.
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    rng = np.random.default_rng(8)
    y, p = _long_tail(rng, 8 * 12, 5)

    def local(ys, ps):
        cm = metrics.confusion_matrix(ys, ps, num_classes=5)
        return jax.lax.psum(cm, "data")

    f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec("data"),) * 2,
                              out_specs=PartitionSpec()))
    shard = NamedSharding(mesh, PartitionSpec("data"))
    cm = f(jax.device_put(y, shard), jax.device_put(p, shard))
    np.testing.assert_array_equal(cm, sk.confusion_matrix(y, p, labels=range(5)))
    _assert_report(metrics.report_from_confusion(cm), _sk_multiclass(y, p, 5))


def test_eval_shape_and_dtypes():
    out = jax.eval_shape(functools.partial(metrics.classification_report, num_classes=3),
                         jax.ShapeDtypeStruct((10,), jnp.int32),
                         jax.ShapeDtypeStruct((10,), jnp.int32))
    assert out["macro_f1"].shape == () and out["macro_f1"].dtype == jnp.float32
    assert out["per_class_f1"].shape == (3,)
    assert out["confusion_matrix"].shape == (3, 3)
    ml = jax.eval_shape(functools.partial(metrics.confusion_matrix, num_classes=3),
                        jax.ShapeDtypeStruct((10, 3), jnp.bool_),
                        jax.ShapeDtypeStruct((10, 3), jnp.int8))
    assert ml.shape == (3, 2, 2) and ml.dtype == jnp.int32


# Bad inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(labels=np.zeros(3, np.float32), predictions=np.zeros(3, np.int32)), TypeError,
     "labels"),
    (dict(labels=np.zeros((3, 2, 2), np.int32), predictions=np.zeros(3, np.int32)),
     ValueError, "labels"),
    (dict(labels=np.zeros(3, np.int32), predictions=np.zeros(4, np.int32)), ValueError,
     "Batch sizes"),
    (dict(labels=np.zeros(3, np.int32), predictions=np.zeros((3, 4), np.float32)),
     ValueError, "predictions"),
    (dict(labels=np.zeros(3, np.int32), predictions=np.zeros((3, 3), np.int32)),
     TypeError, "predictions"),
    (dict(labels=np.zeros((3, 3), np.int32), predictions=np.zeros((3, 3), np.complex64)),
     TypeError, "predictions"),
    (dict(labels=np.zeros((3, 4), np.int32), predictions=np.zeros((3, 4), np.int32)),
     ValueError, "labels"),
    (dict(labels=np.zeros(3, np.int32), predictions=np.zeros(3, np.int32),
          where=np.ones(3, np.float32)), TypeError, "where"),
    (dict(labels=np.array([0, 3, 1], np.int32), predictions=np.zeros(3, np.int32)),
     ValueError, "labels"),
    (dict(labels=np.zeros(3, np.int32), predictions=np.array([0, -1, 1], np.int32)),
     ValueError, "predictions"),
    (dict(labels=np.zeros(3, np.int32), predictions=np.zeros(3, np.int32),
          where=np.ones(2, bool)), ValueError, "where"),
])
@pytest.mark.parametrize("fn", [metrics.confusion_matrix, metrics.classification_report])
def test_bad_inputs(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(**kwargs, num_classes=3)


@pytest.mark.parametrize("num_classes,exc", [(0, ValueError), (2.0, TypeError),
                                             (jnp.array(3), TypeError)])
def test_bad_num_classes(num_classes, exc):
    with pytest.raises(exc, match="num_classes"):
        metrics.classification_report(np.zeros(3, np.int32), np.zeros(3, np.int32),
                                      num_classes=num_classes)


def test_bad_confusion_shape():
    with pytest.raises(ValueError, match="confusion"):
        metrics.report_from_confusion(np.zeros((3, 2)))
