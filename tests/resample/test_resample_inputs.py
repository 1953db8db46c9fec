"""What the solver accepts and refuses: dense, sparse and class-id counts, and clear errors
naming the argument for bad counts and options (issues 11 and 12)."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_label_set
from jax.experimental import sparse as jsparse

from jbalance import resample

scipy_sparse = pytest.importorskip("scipy.sparse")
STEPS = 120


# ------------------------------------------------------------------------ input formats


@pytest.mark.slow
def test_input_formats_agree():
    counts = load_label_set("voc07_test")["counts"][:400]
    ref = resample.solve(counts, num_steps=100, empty_classes="ignore")
    for x in (jnp.asarray(counts), jsparse.BCOO.fromdense(jnp.asarray(counts)),
              scipy_sparse.csr_matrix(counts), scipy_sparse.coo_matrix(counts),
              counts.astype(np.float32), counts.tolist()):
        sol = resample.solve(x, num_steps=100, empty_classes="ignore")
        np.testing.assert_array_equal(np.asarray(sol.repeats), np.asarray(ref.repeats))
        np.testing.assert_allclose(np.asarray(sol.rates), np.asarray(ref.rates), atol=1e-6)


@pytest.mark.slow
def test_class_ids_equal_one_hot_counts():
    ids = np.array([0, 0, 0, 0, 0, 1, 1, 2, 0, 2, 0, 0])
    onehot = np.eye(3, dtype=np.int32)[ids]
    a = resample.solve(ids, lam=0.01, num_steps=STEPS)
    b = resample.solve(onehot, lam=0.01, num_steps=STEPS)
    np.testing.assert_array_equal(np.asarray(a.repeats), np.asarray(b.repeats))
    c = resample.solve(ids, lam=0.01, num_steps=STEPS, num_classes=4, empty_classes="ignore")
    assert c.target.shape == (4,) and float(c.target[3]) == 0
    with pytest.raises(ValueError, match="num_classes"):
        resample.solve(ids, num_classes=2)
    with pytest.raises(ValueError, match=">= 0"):
        resample.solve(np.array([0, -1, 1]))
    # plan defaults to min_repeat=1 (oversample only); with 0 it is the same problem as solve.
    p = resample.plan(ids, lam=0.01, num_steps=STEPS, min_repeat=0)
    np.testing.assert_array_equal(p.repeats, np.asarray(a.repeats))


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad, match", [
        (np.array([[1, -1], [0, 2]]), "negative"),
        (np.array([[1.0, np.nan], [0, 2]]), "count is nan; counts must be finite"),
        (np.array([[1.5, 1], [0, 2]]), "not a whole number"),
        (np.array([1.0, 2.0, 3.0]), "rank 2"),
        (np.ones((2, 2, 2)), "rank 2"),
        (np.array([[1, 0], [2, 0]]), "no examples"),
        (np.zeros((0, 2)), "at least one image"),
])
def test_bad_counts_raise_naming_the_argument(bad, match):
    with pytest.raises(ValueError, match=match) as err:
        resample.solve(bad)
    assert "`counts`" in str(err.value)


def test_bad_options_raise():
    counts = np.array([[1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="max_repeat"):
        resample.solve(counts, max_repeat=0)
    with pytest.raises(TypeError, match="max_repeat"):
        resample.solve(counts, max_repeat=2.5)
    with pytest.raises(ValueError, match="target"):
        resample.solve(counts, target="mode")
    with pytest.raises(ValueError, match="target"):
        resample.solve(counts, target=np.ones(3))
    with pytest.raises(ValueError, match="target"):
        resample.solve(counts, target=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="lam"):
        resample.solve(counts, lam=-1.0)
    with pytest.raises(ValueError, match="objective"):
        resample.solve(counts, objective="l2")
    with pytest.raises(ValueError, match="empty_classes"):
        resample.solve(counts, empty_classes="drop")
    with pytest.raises(TypeError, match="counts"):
        resample.solve("counts.npy")


@pytest.mark.parametrize("lam", [float("inf"), float("nan"), -1.0, -np.inf])
def test_bad_lam_raises(lam):
    with pytest.raises(ValueError, match="lam"):
        resample.solve(np.array([[1, 0], [0, 1], [1, 1]]), lam=lam)


def test_bad_lams_in_path_raise():
    with pytest.raises(ValueError, match="lams"):
        resample.solve_path(np.array([[1, 0], [0, 1], [1, 1]]), np.array([0.1, np.inf]))


@pytest.mark.parametrize("bad, match", [
        (np.array([[1.0, np.inf], [0, 2]]), "must be finite"),
        (np.array([[1e38, 1.0], [1e38, 2.0]]), "exceeds the int32 range"),
        (np.array([[3e8, 1], [0, 1]]), "too large"),
])
def test_huge_or_non_finite_counts_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        resample.solve(bad)


@pytest.mark.parametrize("name", ["tau", "step_ratio", "delta"])
def test_non_finite_hyper_parameters_raise(name):
    with pytest.raises(ValueError, match=name):
        resample.solve(np.array([[1, 0], [0, 1], [1, 1]]), **{name: float("inf")})
