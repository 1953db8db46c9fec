"""``min_repeat`` (issue 19): 0 lets a plan drop images, 1 oversamples only. Checked against
the exact LP with the same bound (HiGHS, `reference_resample.solve_lp`) and the NumPy
primal-dual iteration, on small problems; the guard and the repair still hold."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_resample import (
    guard_ok,
    median_setup,
    np_objective,
    np_pdhg,
    random_counts,
    solve_lp,
)

from jbalance import cli, resample
from jbalance._src.resample import problem

STEPS = 25


def _skewed(seed, n=120, c=6):
    # One frequent class in most images: the default plan drops many of them.
    y = random_counts(np.random.default_rng(seed), n, c)
    y[: 3 * n // 4, 0] += 2
    return y


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_oversample_only_matches_the_lp_with_the_same_bound(seed):
    counts = _skewed(seed)
    target, lam = median_setup(counts)
    lp = solve_lp(counts, target, lam, min_repeat=1)
    free = solve_lp(counts, target, lam)
    assert lp.rates.min() >= 1 - 1e-9 and free.rates.min() < 0.5  # the bound binds here
    sol = resample.solve(counts, min_repeat=1, num_steps=1500)
    r = np.asarray(sol.repeats)
    assert r.min() >= 1 and r.max() <= 4 and np.asarray(sol.rates).min() >= 1
    assert resample.summary(counts, r).dropped == 0
    # The certified bound and the relaxed optimum are those of the bounded LP.
    assert float(sol.lower_bound) <= lp.objective * (1 + 1e-5) + 1e-6
    assert float(sol.lower_bound) >= lp.objective * 0.98
    assert float(sol.relaxed_objective) == pytest.approx(lp.objective, rel=0.01)
    f = np_objective(counts, r, target, lam)
    assert float(sol.objective) == pytest.approx(f, rel=1e-5)
    assert lp.objective - 1e-6 <= f <= max(lp.rounded_objective, lp.objective) * 1.05 + 1e-6
    assert guard_ok(counts, r, target)


def test_steps_match_numpy_reference_with_the_bound():
    counts = _skewed(3, 40, 5)
    target, lam = median_setup(counts)
    ref = np_pdhg(counts, target, lam, 4, eta=float(np.median(target)), steps=STEPS,
                  min_repeat=1)
    for sol in (resample.solve(counts, min_repeat=1, num_steps=STEPS),
                jax.jit(lambda c: resample.solve(c, min_repeat=1, num_steps=STEPS))(
                        jnp.asarray(counts)),
                resample.relax(counts, min_repeat=1, num_steps=STEPS)):
        # float32 on device against float64 over 25 steps; traced counts too.
        np.testing.assert_allclose(np.asarray(sol.rates), ref, atol=2e-4)
    assert ref.min() >= 1


def test_path_and_plan_keep_every_image():
    counts = _skewed(4, 60, 4)
    path = resample.solve_path(counts, np.array([0.0, 1e-3, 0.1]), min_repeat=1,
                               num_steps=100)
    assert np.asarray(path.repeats).min() >= 1
    target, _ = median_setup(counts)
    assert all(guard_ok(counts, r, target) for r in np.asarray(path.repeats))
    plan = resample.plan(counts, min_repeat=1, num_steps=100, sweep=True, sweep_points=3)
    assert plan.repeats.min() >= 1 and plan.summary.dropped == 0
    assert all(p.dropped == 0 for p in plan.sweep)
    assert resample.plan(counts, num_steps=100).summary.dropped == 0  # the default is 1
    assert resample.plan(counts, min_repeat=0, num_steps=100).summary.dropped > 0


def test_guard_and_repair_hold_with_either_bound():
    # max_repeat=1 with min_repeat=1 leaves one plan only: every image once.
    counts = _skewed(5, 50, 4)
    sol = resample.solve(counts, min_repeat=1, max_repeat=1, num_steps=50)
    np.testing.assert_array_equal(np.asarray(sol.repeats), 1)
    target, lam = median_setup(counts)
    assert float(sol.objective) == pytest.approx(np_objective(counts, np.ones(50), target,
                                                              lam), rel=1e-5)
    for m in (0, 1):
        sol = resample.solve(counts, min_repeat=m, max_repeat=2, num_steps=100)
        r = np.asarray(sol.repeats)
        assert guard_ok(counts, r, target) and r.min() >= m and r.max() <= 2


@pytest.mark.parametrize("bad", [2, -1, 0.5, 1.0, True, "1", None])
def test_bad_min_repeat_raises_naming_it(bad):
    counts = np.array([[1, 0], [0, 1], [1, 1]])
    for call in (lambda: resample.solve(counts, min_repeat=bad),
                 lambda: resample.relax(counts, min_repeat=bad),
                 lambda: resample.solve_path(counts, np.array([0.1]), min_repeat=bad),
                 lambda: resample.plan(counts, min_repeat=bad)):
        with pytest.raises(ValueError, match="`min_repeat`"):
            call()


def test_every_default_reads_the_one_constant():
    # The solver keeps the general problem (drops allowed); plan and the command line, which
    # make the training list, oversample only (the training studies, docs/study.md).
    for fn in (resample.solve, resample.relax, resample.solve_path):
        default = inspect.signature(fn).parameters["min_repeat"].default
        assert default == problem.DEFAULT_MIN_REPEAT == 0, fn.__name__
    assert inspect.signature(resample.plan).parameters["min_repeat"].default == \
        problem.PLAN_MIN_REPEAT == 1
    assert cli.build_parser().parse_args(["plan", "x.csv"]).min_repeat == \
        problem.PLAN_MIN_REPEAT
