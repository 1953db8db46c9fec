"""The pure solver core (issue 13), class ids and host indices (issue 11), bad values (issue 12).

Every test here shares one small problem shape and the default options, so the whole file
compiles the core only a few times.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_label_set
from reference_resample import np_group_round, np_objective

from jbalance import resample
from jbalance._src.resample import rounding

STEPS = 120


@pytest.fixture(scope="module")
def counts():
    return load_label_set("voc07_test")["counts"][:300].astype(np.int32)


@pytest.fixture(scope="module")
def eager(counts):
    return resample.solve(counts, num_steps=STEPS, empty_classes="ignore")


def _guard_ok(counts, repeats, guard):
    s = counts.T.astype(np.float64) @ np.asarray(repeats, np.float64)
    return bool(np.all(s >= np.asarray(guard, np.float64) - 1e-9))


# --------------------------------------------------------------------- jit, vmap, grad


def test_jit_of_solve_with_traced_counts(counts, eager):
    fn = jax.jit(resample.solve, static_argnames=("num_steps", "empty_classes"))
    sol = fn(jnp.asarray(counts), num_steps=STEPS, empty_classes="ignore")
    # Traced counts: no row merging, so only the summation order differs.
    np.testing.assert_allclose(np.asarray(sol.rates), np.asarray(eager.rates), atol=1e-4)
    assert _guard_ok(counts, sol.repeats, eager.guard)
    f_jit = np_objective(counts, sol.repeats, np.asarray(eager.target, np.float64),
                         float(eager.lam))
    assert f_jit == pytest.approx(float(eager.objective), rel=0.02)
    assert float(sol.objective) == pytest.approx(f_jit, rel=1e-4)


def test_vmap_over_lam_equals_solve_path_and_the_loop(counts):
    lams = jnp.asarray([1e-4, 1e-3, 1e-2], jnp.float32)
    batched = jax.vmap(lambda lm: resample.solve(counts, lam=lm, num_steps=STEPS,
                                                 empty_classes="ignore"))(lams)
    path = resample.solve_path(counts, lams, num_steps=STEPS, empty_classes="ignore")
    np.testing.assert_array_equal(np.asarray(batched.repeats), np.asarray(path.repeats))
    for j in range(3):
        one = resample.solve(counts, lam=float(lams[j]), num_steps=STEPS,
                             empty_classes="ignore")
        np.testing.assert_allclose(np.asarray(path.rates[j]), np.asarray(one.rates),
                                   atol=1e-5)
        np.testing.assert_array_equal(np.asarray(path.repeats[j]), np.asarray(one.repeats))
        assert _guard_ok(counts, path.repeats[j], one.guard)
    assert path.target.shape == (3, counts.shape[1])


def test_grad_through_relax_matches_finite_differences():
    counts = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [1, 1], [2, 0], [0, 1]])

    def f(lam):
        return resample.relax(counts, lam=lam, num_steps=60).objective

    lam = 0.05
    g = float(jax.grad(f)(lam))
    h = 1e-3
    fd = (float(f(lam + h)) - float(f(lam - h))) / (2 * h)
    assert np.isfinite(g) and g == pytest.approx(fd, rel=0.05, abs=1e-3)


def test_relax_is_the_relaxed_part_of_solve(counts, eager):
    rel = resample.relax(counts, num_steps=STEPS, empty_classes="ignore")
    assert isinstance(rel, resample.Relaxed)
    np.testing.assert_array_equal(np.asarray(rel.rates), np.asarray(eager.rates))
    np.testing.assert_array_equal(np.asarray(rel.history), np.asarray(eager.history))
    assert float(rel.lower_bound) == float(eager.lower_bound)


def test_deterministic(counts, eager):
    again = resample.solve(counts, num_steps=STEPS, empty_classes="ignore")
    np.testing.assert_array_equal(np.asarray(again.repeats), np.asarray(eager.repeats))


def test_no_module_state():
    import jbalance._src.resample.api as api
    import jbalance._src.resample.rounding as rnd

    for mod in (api, rnd):
        for name, value in vars(mod).items():
            assert not isinstance(value, (dict, list, set)) or name.startswith("__"), name


# ------------------------------------------------------------------------ rounding


def test_group_round_matches_float64_reference_and_keeps_group_totals():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0, 4, 5000).astype(np.float32)
    groups = rng.integers(0, 50, 5000)
    rates = rates[groups]  # identical images, identical rates
    order = np.argsort(groups, kind="stable")
    got = np.asarray(rounding.group_round(jnp.asarray(rates), jnp.asarray(order, jnp.int32), 4))
    ref = np_group_round(rates, order)
    np.testing.assert_array_equal(got, np.clip(ref, 0, 4))
    for g in range(50):
        sel = groups == g
        assert abs(got[sel].sum() - rates[sel].astype(np.float64).sum()) <= 1 + 1e-3


def test_repair_restores_the_guard_from_a_bad_start(counts):
    # Start from dropping everything: the repair alone must restore every class.
    sol = resample.solve(counts, num_steps=STEPS, empty_classes="ignore")
    assert _guard_ok(counts, sol.repeats, sol.guard)
    assert resample.summary(counts, sol.repeats).erased == ()


# ------------------------------------------------------------------ issue 11: inputs


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
    p = resample.plan(ids, lam=0.01, num_steps=STEPS)
    np.testing.assert_array_equal(p.repeats, np.asarray(a.repeats))


def test_indices_is_host_numpy_int64():
    idx = resample.indices(np.array([2, 0, 1], np.int32))
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64 and len(idx) == 3
    assert idx.tolist() == [0, 0, 2]
    assert resample.indices([2, 0, 1], total_size=5).tolist() == [0, 0, 2, 2, 2]
    out = jax.jit(lambda r: resample.indices(r, total_size=3))(jnp.asarray([2, 0, 1]))
    assert isinstance(out, jax.Array) and out.tolist() == [0, 0, 2]


# -------------------------------------------------------------- issue 12: bad values


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


def test_summary_rejects_nan_repeats():
    with pytest.raises(ValueError, match="repeats"):
        resample.summary(np.array([[1, 0], [0, 1]]), [1, np.nan])


@pytest.mark.parametrize("repeats", [[-1, 2], [1.5, 1], [np.nan, 1]])
def test_indices_rejects_bad_repeats_with_total_size(repeats):
    with pytest.raises(ValueError, match="repeats"):
        resample.indices(repeats, total_size=2)


# --------------------------------------------------------------------- plan defaults


def test_plan_defaults_are_solve_defaults():
    plan = inspect.signature(resample.plan).parameters
    solve = inspect.signature(resample.solve).parameters
    for name in ("lam", "target", "max_repeat", "num_steps"):
        assert plan[name].default == solve[name].default, name


def test_plan_equals_its_parts(counts):
    p = resample.plan(counts, num_steps=STEPS, sweep=True, sweep_points=3, seed=1)
    sol = resample.solve(counts, num_steps=STEPS, empty_classes="ignore")
    np.testing.assert_array_equal(p.repeats, np.asarray(sol.repeats))
    assert p.empty_classes == tuple(np.flatnonzero(counts.sum(0) == 0).tolist())
    freq = (counts > 0).mean(0)
    assert p.lvis_threshold == pytest.approx(float(np.median(freq[freq > 0])))
    rf = resample.repeat_factor_sampling(counts, threshold=p.lvis_threshold)
    np.testing.assert_array_equal(
            p.lvis_repeats, np.asarray(resample.stochastic_round(jax.random.key(1), rf)))
    assert len(p.sweep) == 3 and p.sweep[1].lam == pytest.approx(p.lam)
    assert p.summary.size_after == int(p.repeats.sum())
