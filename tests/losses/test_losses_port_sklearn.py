"""scikit-learn's own class-weight test cases, run against `losses.class_weights`.

Ported from scikit-learn 1.9, ``sklearn/utils/tests/test_class_weight.py`` (BSD-3-Clause,
Copyright the scikit-learn developers): the labels and expected weights of
``test_compute_class_weight``, ``..._balanced_negative``, ``..._balanced_unordered``,
``..._balanced_sample_weight_equivalence`` and ``test_compute_sample_weight`` are written here
as our own cases (our API takes counts, so each label vector becomes its class counts), and
scikit-learn itself is called as the reference. No scikit-learn code is copied.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from jbalance import losses

sklearn_cw = pytest.importorskip("sklearn.utils.class_weight")


def _counts(y, classes):
    return np.array([np.sum(np.asarray(y) == c) for c in classes], np.float32)


def test_balanced_preserves_total_effect_and_orders_weights():
    y = np.asarray([2, 2, 2, 3, 3, 4])
    classes = np.unique(y)
    n = _counts(y, classes)
    cw = np.asarray(losses.class_weights(n, method="balanced"))
    np.testing.assert_allclose(np.dot(cw, n), y.shape[0], rtol=1e-6)
    assert cw[0] < cw[1] < cw[2]
    np.testing.assert_allclose(
        cw, sklearn_cw.compute_class_weight("balanced", classes=classes, y=y), rtol=1e-6)


def test_balanced_negative_labels_balanced_set_gives_ones():
    classes = np.array([-2, -1, 0])
    y = np.asarray([-1, -1, 0, 0, -2, -2])
    np.testing.assert_allclose(losses.class_weights(_counts(y, classes), method="balanced"),
                               [1.0, 1.0, 1.0], rtol=1e-6)


def test_balanced_unordered_classes():
    classes = np.array([1, 0, 3])
    y = np.asarray([1, 0, 0, 3, 3, 3])
    n = _counts(y, classes)
    cw = losses.class_weights(n, method="balanced")
    np.testing.assert_allclose(np.dot(np.asarray(cw), n), y.shape[0], rtol=1e-6)
    np.testing.assert_allclose(cw, [2.0, 1.0, 2.0 / 3], rtol=1e-6)  # sklearn's expected


def test_balanced_weighted_counts_equal_repeated_samples():
    # Fractional (sample-weighted) counts are accepted and equal repeating the samples.
    classes = np.array([-2, -1, 0])
    y = np.asarray([-1, -1, 0, 0, -2, -2])
    sw = np.asarray([1, 0, 1, 1, 1, 2])
    weighted = np.bincount(y + 2, weights=sw).astype(np.float32)
    repeated = _counts(np.repeat(y, sw), classes)
    np.testing.assert_allclose(losses.class_weights(weighted, method="balanced"),
                               losses.class_weights(repeated, method="balanced"), rtol=1e-6)
    np.testing.assert_allclose(
        losses.class_weights(weighted, method="balanced"),
        sklearn_cw.compute_class_weight("balanced", classes=classes, y=y, sample_weight=sw),
        rtol=1e-6)


@pytest.mark.parametrize("y,expected", [
    ([1, 1, 1, 2, 2, 2], [1.0] * 6),
    ([1, 1, 1, 2, 2, 2, 3], [0.7777, 0.7777, 0.7777, 0.7777, 0.7777, 0.7777, 2.3333]),
])
def test_sample_weights_from_balanced_class_weights(y, expected):
    # sklearn's compute_sample_weight("balanced", y) is example_weights(labels, balanced).
    y = np.asarray(y)
    classes = np.unique(y)
    ids = np.searchsorted(classes, y)
    w = losses.class_weights(_counts(y, classes), method="balanced")
    sample = losses.example_weights(jnp.asarray(ids), w)
    np.testing.assert_allclose(sample, expected, atol=1e-4)
    np.testing.assert_allclose(sample, sklearn_cw.compute_sample_weight("balanced", y),
                               rtol=1e-6)


def test_absent_class_is_a_deliberate_difference():
    # sklearn raises for a class absent from y; jbalance gives it the rarest class's weight
    # (zero_count="max") or 0 (zero_count="zero"), and never inf.
    classes = np.arange(4)
    y = np.asarray([0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError):
        sklearn_cw.compute_class_weight("balanced", classes=classes, y=y)
    n = _counts(y, classes)
    w = np.asarray(losses.class_weights(n, method="balanced"))
    assert np.all(np.isfinite(w)) and w[3] == w[2]
    assert np.asarray(losses.class_weights(n, method="balanced", zero_count="zero"))[3] == 0
