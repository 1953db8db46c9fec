"""`metrics.average_precision` against scikit-learn's `average_precision_score` per class."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jbalance import checks, metrics
from jbalance._src.metrics.ranking import _ap_host, _ap_sorted

sk = pytest.importorskip("sklearn.metrics")

# AP is a sum of up to N float32 ratios: float32 accumulation is good to ~1e-6 relative.
RTOL = 2e-6


def _sk_ap(labels, scores, mask=None):
    """scikit-learn per class on the counted entries; NaN where a class has no positive."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    out = []
    for c in range(labels.shape[1]):
        keep = np.ones(labels.shape[0], bool) if mask is None else np.asarray(mask)[:, c]
        y, s = labels[keep, c] != 0, scores[keep, c]
        if not y.any():
            out.append(np.nan)
            continue
        out.append(sk.average_precision_score(y, s.astype(np.float64)))
    return np.array(out)


def _multilabel(rng, n, c, *, levels=None, prevalence=None):
    prevalence = np.geomspace(0.4, 0.01, c) if prevalence is None else prevalence
    labels = (rng.random((n, c)) < prevalence).astype(np.int32)
    scores = rng.normal(size=(n, c)) + 1.5 * labels
    if levels is not None:
        # Few distinct values: many ties, across positives and negatives.
        scores = np.round(scores * levels) / levels
    return labels, scores.astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("levels", [None, 2, 10])
def test_matches_sklearn_with_and_without_ties(seed, levels):
    rng = np.random.default_rng(seed)
    labels, scores = _multilabel(rng, 300, 6, levels=levels)
    got = metrics.average_precision(labels, scores)
    assert got.shape == (6,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, _sk_ap(labels, scores), rtol=RTOL)


@pytest.mark.parametrize("levels", [None, 3])
def test_xla_path_matches_sklearn(levels):
    # The accelerator path (plain XLA sort + scans), run here on the CPU.
    rng = np.random.default_rng(11)
    labels, scores = _multilabel(rng, 257, 5, levels=levels)
    mask = rng.random((257, 5)) < 0.8
    f = jax.jit(lambda y, s, w: _ap_sorted(y, s, w, jnp.float32))
    np.testing.assert_allclose(f(labels, scores, None if levels else mask),
                               _sk_ap(labels, scores, None if levels else mask), rtol=1e-5)


def test_host_path_float64_scores():
    # x64 inputs take 64-bit keys; here the NumPy path is called directly with float64.
    rng = np.random.default_rng(12)
    labels, scores = _multilabel(rng, 200, 4)
    s64 = scores.astype(np.float64) + rng.normal(size=scores.shape) * 1e-12
    np.testing.assert_allclose(_ap_host(labels, s64, None, np.float64),
                               _sk_ap(labels, s64), rtol=1e-12)


def test_hand_worked():
    labels = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    scores = np.array([[0.9, 0.2], [0.8, 0.4], [0.3, 0.4], [0.1, 0.1]], np.float32)
    # Class 0: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2. Class 1: the 0.4 tie holds one
    # positive and one negative -> P = 1/2 at R = 1/2, then P = 2/4 at R = 1 -> 0.5.
    np.testing.assert_allclose(metrics.average_precision(labels, scores),
                               [(1 + 2 / 3) / 2, 0.5], rtol=RTOL)


def test_ties_enter_together():
    # One threshold holds everything: AP = precision of the whole set = 2/5.
    labels = np.array([[1], [0], [1], [0], [0]])
    np.testing.assert_allclose(metrics.average_precision(labels, np.zeros((5, 1), np.float32)),
                               [0.4], rtol=RTOL)
    # -0.0 and +0.0 are one score (scikit-learn sees no step between them).
    scores = np.array([[0.0], [-0.0], [0.0], [-0.0], [-0.0]], np.float32)
    np.testing.assert_allclose(metrics.average_precision(labels, scores), [0.4], rtol=RTOL)


def test_infinite_scores_and_extremes():
    labels = np.array([[1, 1], [0, 0], [1, 0], [0, 1]])
    scores = np.array([[np.inf, -np.inf], [1e30, -np.inf], [-1e30, 0], [-np.inf, -np.inf]],
                      np.float32)
    # scikit-learn cannot take infinite scores; by hand: class 0 ranks its positives 1st and
    # 3rd; class 1 ranks a negative first, then ties two positives with a negative at -inf.
    np.testing.assert_allclose(metrics.average_precision(labels, scores),
                               [(1 + 2 / 3) / 2, 0.5], rtol=RTOL)
    # The same order with finite scores, checked against scikit-learn.
    finite = np.array([[3, -1], [2, -1], [-2, 0], [-3, -1]], np.float32)
    np.testing.assert_allclose(metrics.average_precision(labels, finite),
                               _sk_ap(labels, finite), rtol=RTOL)


def test_no_positive_is_nan_and_nanmean_is_macro_over_present():
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1]])
    scores = np.array([[0.9, 0.5, 0.1], [0.8, 0.5, 0.2], [0.1, 0.5, 0.3]], np.float32)
    ap = np.asarray(metrics.average_precision(labels, scores))
    assert np.isnan(ap[1]) and np.isfinite(ap[[0, 2]]).all()
    # scikit-learn gives 0 (with a warning) for the class without positives.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sk.average_precision_score(labels[:, 1], scores[:, 1]) == 0.0
    np.testing.assert_allclose(jnp.nanmean(ap), (ap[0] + ap[2]) / 2)
    np.testing.assert_allclose(ap[2], 1.0)  # every example positive


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.float32])
def test_label_dtypes(dtype):
    rng = np.random.default_rng(3)
    labels, scores = _multilabel(rng, 120, 4, levels=4)
    np.testing.assert_allclose(metrics.average_precision(labels.astype(dtype), scores),
                               _sk_ap(labels, scores), rtol=RTOL)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_scores_keep_their_ties(dtype):
    rng = np.random.default_rng(4)
    labels, scores = _multilabel(rng, 150, 3)
    low = jnp.asarray(scores).astype(dtype)
    np.testing.assert_allclose(metrics.average_precision(labels, low),
                               _sk_ap(labels, np.asarray(low.astype(jnp.float32))), rtol=RTOL)


@pytest.mark.parametrize("per_label", [False, True])
def test_where_equals_subset(per_label):
    rng = np.random.default_rng(5)
    labels, scores = _multilabel(rng, 200, 5, levels=5)
    if per_label:
        mask = rng.random((200, 5)) < 0.6
    else:
        mask = np.broadcast_to((rng.random(200) < 0.6)[:, None], (200, 5))
    # Masked entries may hold anything: unknown labels, NaN scores.
    labels_bad = np.where(mask, labels, -1)
    scores_bad = np.where(mask, scores, np.nan).astype(np.float32)
    where = mask if per_label else mask[:, 0]
    got = metrics.average_precision(labels_bad, scores_bad, where=where)
    np.testing.assert_allclose(got, _sk_ap(labels, scores, mask), rtol=RTOL)


def test_all_masked_is_nan():
    labels, scores = np.ones((4, 2), np.int32), np.zeros((4, 2), np.float32)
    assert np.isnan(metrics.average_precision(labels, scores, where=np.zeros(4, bool))).all()


def test_jit_equals_eager_and_compiles_once():
    traces = []

    def f(y, s):
        traces.append(1)
        return metrics.average_precision(y, s)

    jf = jax.jit(f)
    rng = np.random.default_rng(6)
    labels, scores = _multilabel(rng, 100, 4, levels=3)
    np.testing.assert_allclose(jf(labels, scores), _sk_ap(labels, scores), rtol=RTOL)
    labels2, scores2 = _multilabel(rng, 100, 4)
    np.testing.assert_allclose(jf(labels2, scores2), _sk_ap(labels2, scores2), rtol=RTOL)
    assert len(traces) == 1


def test_vmap_equals_loop():
    rng = np.random.default_rng(7)
    data = [_multilabel(rng, 60, 3, levels=3) for _ in range(4)]
    ys, ss = np.stack([d[0] for d in data]), np.stack([d[1] for d in data])
    got = jax.vmap(metrics.average_precision)(ys, ss)
    for i in range(4):
        np.testing.assert_allclose(got[i], _sk_ap(ys[i], ss[i]), rtol=RTOL)
    # A shared (unbatched) mask.
    mask = rng.random(60) < 0.7
    got = jax.vmap(functools.partial(metrics.average_precision, where=mask))(ys, ss)
    np.testing.assert_allclose(got[1], _sk_ap(ys[1], ss[1], np.stack([mask] * 3, 1)),
                               rtol=RTOL)


def test_sharded_inputs_and_shard_map():
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    rng = np.random.default_rng(8)
    labels, scores = _multilabel(rng, 8 * 16, 4, levels=4)
    shard = NamedSharding(mesh, PartitionSpec("data"))
    y, s = jax.device_put(labels, shard), jax.device_put(scores, shard)
    np.testing.assert_allclose(jax.jit(metrics.average_precision)(y, s),
                               _sk_ap(labels, scores), rtol=RTOL)

    # Under shard_map each device ranks its own shard (AP does not decompose over shards:
    # gather the examples first for the AP of the whole batch).
    def local(ys, ss):
        return metrics.average_precision(ys, ss)[None]

    f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec("data"),) * 2,
                              out_specs=PartitionSpec("data")))
    got = f(y, s)
    assert got.shape == (8, 4)
    for i in range(8):
        rows = slice(16 * i, 16 * (i + 1))
        np.testing.assert_allclose(got[i], _sk_ap(labels[rows], scores[rows]), rtol=RTOL)


def test_eval_shape_and_no_gradient():
    out = jax.eval_shape(metrics.average_precision, jax.ShapeDtypeStruct((10, 3), jnp.int32),
                         jax.ShapeDtypeStruct((10, 3), jnp.float32))
    assert out.shape == (3,) and out.dtype == jnp.float32
    labels = np.array([[1], [0], [1]])
    g = jax.grad(lambda s: metrics.average_precision(labels, s)[0])(jnp.ones((3, 1)))
    np.testing.assert_array_equal(g, 0.0)


def test_nan_scores_raise_eagerly_and_under_checked():
    labels = np.array([[1], [0]])
    scores = np.array([[0.5], [np.nan]], np.float32)
    with pytest.raises(ValueError, match="`scores`"):
        metrics.average_precision(labels, scores)
    err, _ = jax.jit(checks.checked(metrics.average_precision))(labels, scores)
    assert "scores" in str(err.get())


@pytest.mark.parametrize("labels,scores,exc,match", [
    (np.array([[2], [0]]), np.zeros((2, 1), np.float32), ValueError, "labels"),
    (np.array([[0.5], [0]]), np.zeros((2, 1), np.float32), ValueError, "labels"),
    (np.array([[1], [0]]), np.zeros((2, 1), np.int32), TypeError, "scores"),
    (np.array([[1], [0]]), np.zeros(2, np.float32), ValueError, "scores"),
    (np.array([[1, 0], [0, 1]]), np.zeros((2, 1), np.float32), ValueError, "labels"),
    (np.array([["a"], ["b"]]), np.zeros((2, 1), np.float32), TypeError, "labels"),
])
def test_bad_inputs(labels, scores, exc, match):
    with pytest.raises(exc, match=match):
        metrics.average_precision(labels, scores)


def test_bad_where():
    with pytest.raises(TypeError, match="where"):
        metrics.average_precision(np.ones((2, 1)), np.ones((2, 1), np.float32),
                                  where=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="where"):
        metrics.average_precision(np.ones((2, 1)), np.ones((2, 1), np.float32),
                                  where=np.ones(3, bool))

