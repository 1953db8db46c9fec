"""The solver's answers: against the exact LP (HiGHS), the NumPy primal-dual iteration, real
label sets, hand-worked problems, the targets, and the smooth objectives."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import load_label_set
from reference_resample import (
    guard_ok,
    median_setup,
    np_objective,
    np_pdhg,
    random_counts,
    solve_lp,
)

from jbalance import resample

# ------------------------------------------------------------------------ solver vs LP


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow),
                                  pytest.param(2, marks=pytest.mark.slow)])
def test_relaxed_matches_lp_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    counts = random_counts(rng, 120, 6)
    target, lam = median_setup(counts)
    lp = solve_lp(counts, target, lam)
    sol = resample.solve(counts, num_steps=1500)
    # The certified bound really is a lower bound of the exact optimum, and tight.
    assert float(sol.lower_bound) <= lp.objective * (1 + 1e-5) + 1e-6
    assert float(sol.lower_bound) >= lp.objective * 0.98
    assert float(sol.relaxed_objective) == pytest.approx(lp.objective, rel=0.01)
    # Integer solutions cannot beat the relaxation; ours is close to the rounded LP.
    assert float(sol.objective) >= lp.objective - 1e-5
    assert float(sol.objective) <= max(lp.rounded_objective, lp.objective) * 1.05 + 1e-6
    assert float(sol.objective) == pytest.approx(
            np_objective(counts, sol.repeats, target, lam), rel=1e-5)
    assert resample.objective_value(counts, sol.repeats) == pytest.approx(
            np_objective(counts, sol.repeats, target, lam), rel=1e-12)
    assert guard_ok(counts, sol.repeats, target)


def test_steps_match_numpy_reference():
    rng = np.random.default_rng(3)
    counts = random_counts(rng, 40, 5)
    target, lam = median_setup(counts)
    sol = resample.solve(counts, num_steps=25)
    ref = np_pdhg(counts, target, lam, 4, eta=float(np.median(target)), steps=25)
    # float32 on device vs float64 reference over 25 steps.
    np.testing.assert_allclose(np.asarray(sol.rates), ref, atol=2e-4)
    assert sol.history.shape == (25,)
    np.testing.assert_allclose(float(sol.history[-1]), np_objective(counts, ref, target, lam),
                               rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["voc0712_trainval", "voc07_test", "enron"])
def test_quality_bar_on_real_labels(name):
    counts = load_label_set(name)["counts"]
    target, lam = median_setup(counts)
    lp = solve_lp(counts, target, lam)
    sol = resample.solve(counts, max_repeat=4)
    assert float(sol.lam) == pytest.approx(lam, rel=1e-6)
    f = np_objective(counts, np.asarray(sol.repeats), target, lam)
    assert f <= 1.02 * lp.rounded_objective
    assert guard_ok(counts, sol.repeats, target)
    assert float(sol.lower_bound) <= lp.objective * (1 + 1e-5)
    summ = resample.summary(counts, sol.repeats)
    assert summ.erased == ()
    if name == "voc0712_trainval":
        assert summ.ratio_before == pytest.approx(16.3, abs=0.05)
        assert summ.ratio_after < 1.3
        rfs = resample.repeat_factor_sampling(counts, threshold=0.1)
        exp_totals = counts.T.astype(np.float64) @ np.asarray(rfs, np.float64)
        assert exp_totals.max() / exp_totals.min() > 10  # LVIS RFS stays far from balance


@pytest.mark.slow
def test_guard_keeps_enron_singleton_label():
    counts = load_label_set("enron")["counts"]
    target, lam = median_setup(counts)
    no_guard = solve_lp(counts, target, lam, guard=False)
    erased_by_lp = resample.summary(counts, no_guard.rounded).erased
    assert erased_by_lp, "the unguarded LP is known to erase a label on Enron"
    sol = resample.solve(counts)
    assert resample.summary(counts, sol.repeats).erased == ()
    for c in erased_by_lp:
        assert float(counts[:, c] @ np.asarray(sol.repeats)) >= 1


def test_toy_problem_recovers_known_repeats():
    # Single-label images with totals 2, 4, 8 and target 4: duplicate class 0's images,
    # keep class 1, drop half of class 2. F = lam * (2 + 4).
    counts = np.zeros((14, 3), np.int32)
    counts[:2, 0] = 1
    counts[2:6, 1] = 1
    counts[6:, 2] = 1
    sol = resample.solve(counts, lam=0.01, num_steps=600)
    r = np.asarray(sol.repeats)
    np.testing.assert_array_equal(r[:2], [2, 2])
    np.testing.assert_array_equal(r[2:6], [1, 1, 1, 1])
    assert sorted(r[6:].tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert float(sol.objective) == pytest.approx(0.06, abs=1e-5)
    np.testing.assert_allclose(np.asarray(sol.target), [4, 4, 4])


def test_tempered_target_tau_one_keeps_everything():
    counts = load_label_set("voc07_test")["counts"][:500]
    sol = resample.solve(counts, tau=1.0, empty_classes="ignore")
    np.testing.assert_array_equal(np.asarray(sol.repeats), 1)
    assert float(sol.objective) == pytest.approx(0.0, abs=1e-6)


def test_explicit_and_statistic_targets():
    counts = random_counts(np.random.default_rng(4), 60, 4)
    n = counts.sum(0).astype(np.float64)
    sol = resample.solve(counts, target="mean", num_steps=50)
    np.testing.assert_allclose(np.asarray(sol.target), n.mean(), rtol=1e-6)
    sol = resample.solve(counts, target="median", tau=0.5, num_steps=50)
    med = np.median(n)
    np.testing.assert_allclose(np.asarray(sol.target), med * (n / med) ** 0.5, rtol=1e-5)
    explicit = np.array([10.0, 20.0, 30.0, 40.0])
    sol = resample.solve(counts, target=explicit, num_steps=50)
    np.testing.assert_allclose(np.asarray(sol.target), explicit)
    np.testing.assert_allclose(np.asarray(sol.guard), np.minimum(n, explicit))


def test_empty_classes_ignore():
    # Totals 4, 0, 2; the median over classes with examples is 3.
    counts = np.array([[1, 0, 0]] * 4 + [[0, 0, 1]] * 2)
    sol = resample.solve(counts, empty_classes="ignore", lam=0.01, num_steps=400)
    np.testing.assert_allclose(np.asarray(sol.target), [3, 0, 3])
    np.testing.assert_array_equal(counts.T @ np.asarray(sol.repeats), [3, 0, 3])
    assert float(sol.objective) == pytest.approx(0.02, abs=1e-6)


# ------------------------------------------------------------------ smooth objectives


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["squared", pytest.param("log", marks=pytest.mark.slow),
                                  pytest.param("huber", marks=pytest.mark.slow)])
def test_smooth_objectives_with_optax(kind):
    counts = load_label_set("voc07_test")["counts"][:800]
    sol = resample.solve(counts, objective=kind, optimizer=optax.adam(0.05), num_steps=200,
                         empty_classes="ignore")
    target = np.asarray(sol.target, np.float64)
    assert guard_ok(counts, sol.repeats, target)
    start = resample.objective_value(counts, np.ones(800), objective=kind,
                                     empty_classes="ignore")
    assert float(sol.objective) < start
    assert np.isnan(float(sol.lower_bound))
    assert float(sol.history[-1]) < float(sol.history[0])


def test_solution_fields_and_dtypes():
    counts = random_counts(np.random.default_rng(8), 30, 3)
    sol = resample.solve(counts, num_steps=20)
    for field in ("rates", "repeats", "objective", "history", "relaxed_objective",
                  "lower_bound", "target", "lam"):
        assert field in sol._fields
    assert sol.repeats.dtype == jnp.int32 and sol.rates.dtype == jnp.float32
    assert sol.rates.shape == (30,) and sol.target.shape == (3,)
    assert int(np.asarray(sol.repeats).max()) <= 4 and int(np.asarray(sol.repeats).min()) >= 0
