"""Reductions (jbalance/_src/losses/reduction.py): `reduce_loss` and `example_weights`, on
hand-worked values (PyTorch's weighted mean is checked against torch in the softmax tests)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jbalance import losses


def test_reduce_loss():
    x = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    v = jnp.array([[1.0, 0.5, 2.0], [1.0, 1.0, 0.5]])
    mask = jnp.array([[True, False, True], [True, True, False]])
    np.testing.assert_allclose(losses.reduce_loss(x), 3.5)
    np.testing.assert_allclose(losses.reduce_loss(x, reduction="sum"), 21.0)
    np.testing.assert_allclose(losses.reduce_loss(x, where=mask), 13.0 / 4)
    np.testing.assert_allclose(losses.reduce_loss(x, reduction="sum", where=mask), 13.0)
    np.testing.assert_allclose(losses.reduce_loss(x, reduction="weighted_mean", weights=v),
                               21.0 / 6.0)
    np.testing.assert_allclose(
        losses.reduce_loss(x, reduction="weighted_mean", weights=v, where=mask), 13.0 / 5.0)
    # Broadcast weights and an empty selection.
    np.testing.assert_allclose(
        losses.reduce_loss(x, reduction="weighted_mean", weights=jnp.array([2.0, 1.0, 1.0])),
        21.0 / 8.0)
    assert losses.reduce_loss(x, where=jnp.zeros((2, 3), bool)) == 0
    assert losses.reduce_loss(x, reduction="weighted_mean", weights=jnp.zeros_like(x)) == 0
    assert losses.reduce_loss(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="weights"):
        losses.reduce_loss(x, reduction="weighted_mean")
    with pytest.raises(ValueError, match="reduction"):
        losses.reduce_loss(x, reduction="none")
    with pytest.raises(ValueError, match="where"):
        losses.reduce_loss(x, where=jnp.ones(2, bool))


def test_example_weights():
    w = jnp.array([1.0, 2.0, 5.0])
    np.testing.assert_array_equal(losses.example_weights(jnp.array([[0, 2], [1, -100]]), w),
                                  [[1.0, 5.0], [2.0, 0.0]])
    probs = jnp.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    np.testing.assert_allclose(losses.example_weights(probs, w), [1.5, 4.4], rtol=1e-6)
    np.testing.assert_array_equal(
        losses.example_weights(jnp.array([0, 2]), w, where=jnp.array([True, False])), [1.0, 0.0])
    with pytest.raises(ValueError, match="class_weights"):
        losses.example_weights(jnp.array([0]), jnp.array([1.0, -1.0]))
