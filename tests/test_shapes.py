"""The jaxtyping-style shape annotations of the public API hold on real calls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shape_check import annotated_parameters, check_call, match

from jbalance import metrics, sampling
from jbalance._src.typing import Shape


def test_checker_catches_a_wrong_shape_and_dtype():
    memo = {}
    match(np.zeros((3, 4), np.float32), Shape("n c", "float"), memo, "x")
    with pytest.raises(AssertionError, match="elsewhere"):
        match(np.zeros((5,), np.float32), Shape("n", "float"), memo, "y")
    with pytest.raises(AssertionError, match="dtype"):
        match(np.zeros((3,), np.int32), Shape("n", "float"), {}, "z")
    match(np.zeros((2, 3, 4)), Shape("*batch c", "float"), memo := {}, "w")
    assert memo == {"batch": (2, 3), "c": 4}


def test_metrics_annotations_hold():
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.integers(0, 4, 20), jnp.int32)
    p = jnp.asarray(rng.integers(0, 4, 20), jnp.int32)
    check_call(metrics.confusion_matrix, y, p, num_classes=4)
    check_call(metrics.confusion_matrix, y, jax.nn.one_hot(p, 4), num_classes=4)
    ym = jnp.asarray(rng.integers(0, 2, (20, 4)), jnp.int32)
    check_call(metrics.multilabel_confusion_matrix, ym, ym, num_classes=4)
    check_call(metrics.report_from_confusion, metrics.confusion_matrix(y, p, num_classes=4))
    with pytest.raises(AssertionError):
        check_call(metrics.multilabel_confusion_matrix, ym, ym[:, :3], num_classes=4)


@pytest.mark.parametrize("fn", [getattr(metrics, n) for n in metrics.__all__])
def test_metrics_array_parameters_are_annotated(fn):
    assert {"labels", "predictions"} <= set(annotated_parameters(fn)) or \
        "confusion" in annotated_parameters(fn)


def test_sampling_annotations_hold():
    y = jnp.array([0, 0, 0, 1, 2, 2], jnp.int32)
    p = check_call(sampling.class_balanced_probs, y, num_classes=3, q=0.5)
    check_call(sampling.progressive_probs, y, num_classes=3, progress=0.3)
    out = check_call(sampling.sample_indices, jax.random.key(0), p, 11)
    assert out.shape == (11,)
