"""Tests for jbalance.resample: LP references, real label sets, sharding, baselines."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import load_label_set
from jax.experimental import sparse as jsparse
from reference_resample import np_objective, np_pdhg, np_rfs, solve_lp

from jbalance import resample

scipy_sparse = pytest.importorskip("scipy.sparse")


def random_counts(rng, n, c, density=0.25, max_count=3):
    y = rng.integers(1, max_count + 1, (n, c)) * (rng.random((n, c)) < density)
    y[np.arange(c) % n, np.arange(c)] = np.maximum(y[np.arange(c) % n, np.arange(c)], 1)
    return y.astype(np.int32)


def median_setup(counts):
    n = np.asarray(counts, np.float64).sum(0)
    med = float(np.median(n))
    return np.full(n.shape, med), 0.5 / med


def guard_ok(counts, repeats, target):
    n = np.asarray(counts, np.float64).sum(0)
    s = np.asarray(counts, np.float64).T @ np.asarray(repeats, np.float64)
    return bool(np.all(s >= np.minimum(n, np.floor(target)) - 1e-9))


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


# ------------------------------------------------------------------- inputs and errors


def test_input_formats_agree():
    counts = load_label_set("voc07_test")["counts"][:400]
    ref = resample.solve(counts, num_steps=100, empty_classes="ignore")
    for x in (jnp.asarray(counts), jsparse.BCOO.fromdense(jnp.asarray(counts)),
              scipy_sparse.csr_matrix(counts), scipy_sparse.coo_matrix(counts),
              counts.astype(np.float32), counts.tolist()):
        sol = resample.solve(x, num_steps=100, empty_classes="ignore")
        np.testing.assert_array_equal(np.asarray(sol.repeats), np.asarray(ref.repeats))
        np.testing.assert_allclose(np.asarray(sol.rates), np.asarray(ref.rates), atol=1e-6)


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


def test_empty_classes_ignore():
    # Totals 4, 0, 2; the median over classes with examples is 3.
    counts = np.array([[1, 0, 0]] * 4 + [[0, 0, 1]] * 2)
    sol = resample.solve(counts, empty_classes="ignore", lam=0.01, num_steps=400)
    np.testing.assert_allclose(np.asarray(sol.target), [3, 0, 3])
    np.testing.assert_array_equal(counts.T @ np.asarray(sol.repeats), [3, 0, 3])
    assert float(sol.objective) == pytest.approx(0.02, abs=1e-6)


# ---------------------------------------------------------------- transforms and paths


@pytest.mark.slow
def test_solve_path_equals_loop_and_traces_tradeoff():
    counts = load_label_set("voc07_test")["counts"][:600]
    lams = np.array([0.0, 1e-4, 1e-3, 1e-2])
    path = resample.solve_path(counts, lams, num_steps=150, empty_classes="ignore")
    assert path.repeats.shape == (4, 600) and path.history.shape == (4, 150)
    changed = []
    for j, lm in enumerate(lams):
        one = resample.solve(counts, lam=float(lm), num_steps=150, empty_classes="ignore")
        np.testing.assert_allclose(np.asarray(path.rates[j]), np.asarray(one.rates),
                                   atol=1e-5)
        np.testing.assert_array_equal(np.asarray(path.repeats[j]), np.asarray(one.repeats))
        changed.append(np.abs(np.asarray(path.rates[j]) - 1).sum())
    # Larger lam, fewer images changed: the Pareto trade-off.
    assert all(a >= b - 1e-3 for a, b in zip(changed, changed[1:]))


@pytest.mark.slow
def test_dedupe_changes_nothing_but_speed():
    counts = load_label_set("enron")["counts"]
    a = resample.solve(counts, num_steps=100)
    b = resample.solve(counts, num_steps=100, dedupe=False)
    np.testing.assert_allclose(np.asarray(a.rates), np.asarray(b.rates), atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.history), np.asarray(b.history), rtol=1e-5)
    # Identical images get identical rates either way.
    rows, inverse = np.unique(counts, axis=0, return_inverse=True)
    assert rows.shape[0] < counts.shape[0]
    rates = np.asarray(a.rates)
    first = np.argmax(inverse.reshape(-1)[:, None] == np.arange(rows.shape[0]), axis=0)
    np.testing.assert_array_equal(rates, rates[first][inverse.reshape(-1)])


@pytest.mark.slow
def test_progress_callback_is_called_during_the_run():
    counts = random_counts(np.random.default_rng(6), 80, 5)
    seen = []
    sol = resample.solve(counts, num_steps=120, progress=lambda s, f: seen.append((s, float(f))),
                         progress_every=50)
    assert [s for s, _ in seen] == [50, 100, 120]
    assert seen[-1][1] == pytest.approx(float(sol.history[-1]), rel=1e-6)
    plain = resample.solve(counts, num_steps=120)
    np.testing.assert_allclose(np.asarray(sol.rates), np.asarray(plain.rates), atol=1e-6)


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


# ------------------------------------------------------------------------- sharding


@pytest.mark.slow
def test_sharded_solver_matches_single_device():
    assert len(jax.devices()) >= 8
    mesh = jax.make_mesh((8,), ("data",))
    counts = load_label_set("voc07_test")["counts"][:1003]  # not a multiple of 8: padding
    one = resample.solve(counts, empty_classes="ignore")
    many = resample.solve(counts, mesh=mesh, empty_classes="ignore")
    # Only the order of the class-total summation differs (psum of per-device sums).
    np.testing.assert_allclose(np.asarray(many.rates), np.asarray(one.rates), atol=2e-5)
    np.testing.assert_array_equal(np.asarray(many.repeats), np.asarray(one.repeats))
    assert float(many.objective) == pytest.approx(float(one.objective), rel=1e-6)
    assert float(many.lower_bound) == pytest.approx(float(one.lower_bound), rel=1e-4)
    path1 = resample.solve_path(counts, np.array([1e-4, 1e-3]), num_steps=100,
                                empty_classes="ignore")
    path8 = resample.solve_path(counts, np.array([1e-4, 1e-3]), num_steps=100, mesh=mesh,
                                empty_classes="ignore")
    np.testing.assert_allclose(np.asarray(path8.rates), np.asarray(path1.rates), atol=2e-5)


@pytest.mark.slow
def test_sharded_padding_and_axis_errors():
    mesh = jax.make_mesh((8,), ("data",))
    counts = random_counts(np.random.default_rng(7), 101, 5)  # 101 = 8 * 13 - 3: padding
    one = resample.solve(counts, num_steps=60)
    many = resample.solve(counts, num_steps=60, mesh=mesh)
    np.testing.assert_allclose(np.asarray(many.rates), np.asarray(one.rates), atol=2e-5)
    with pytest.raises(ValueError, match="axis"):
        resample.solve(counts, mesh=mesh, axis="model")


# ------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("sqrt", [True, False])
def test_repeat_factor_sampling_matches_formula(sqrt):
    counts = load_label_set("voc07_test")["counts"][:300]
    ref = np_rfs(counts, 0.1, sqrt)
    got = resample.repeat_factor_sampling(counts, threshold=0.1, sqrt=sqrt)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-6)
    sparse = resample.repeat_factor_sampling(scipy_sparse.csr_matrix(counts), threshold=0.1,
                                             sqrt=sqrt)
    np.testing.assert_allclose(np.asarray(sparse), ref, rtol=1e-6)
    jitted = jax.jit(lambda c, t: resample.repeat_factor_sampling(c, threshold=t, sqrt=sqrt))
    np.testing.assert_allclose(np.asarray(jitted(jnp.asarray(counts), 0.1)), ref, rtol=1e-6)


def test_repeat_factor_sampling_hand_value():
    # Class 1 is in 1 of 4 images: f = 0.25, t = 0.5 -> sqrt(2).
    got = resample.repeat_factor_sampling(np.array([[1, 0], [1, 0], [1, 0], [1, 1]]),
                                          threshold=0.5)
    np.testing.assert_allclose(np.asarray(got), [1, 1, 1, np.sqrt(2)], rtol=1e-6)
    with pytest.raises(ValueError, match="threshold"):
        resample.repeat_factor_sampling(np.eye(2), threshold=0.0)


def test_stochastic_round(getkey):
    rates = jnp.asarray(np.linspace(0, 4, 4001), jnp.float32)
    key = getkey()
    a, b = resample.stochastic_round(key, rates), resample.stochastic_round(key, rates)
    assert a.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = resample.stochastic_round(getkey(), rates)
    assert (np.asarray(a) != np.asarray(c)).any()
    diff = np.asarray(a) - np.floor(np.asarray(rates))
    assert set(np.unique(diff).tolist()) <= {0, 1}
    # Unbiased: mean over many draws matches the rates (fixed seed, 4 sigma).
    keys = jax.random.split(getkey(), 400)
    draws = jax.vmap(resample.stochastic_round, in_axes=(0, None))(keys, rates[:9])
    np.testing.assert_allclose(np.asarray(draws).mean(0), np.asarray(rates[:9]), atol=0.1)
    np.testing.assert_array_equal(np.asarray(resample.stochastic_round(key, jnp.arange(
            4.0))), [0, 1, 2, 3])
    with pytest.raises(TypeError, match="rates"):
        resample.stochastic_round(key, jnp.arange(3))


def test_indices():
    idx = resample.indices([0, 2, 1, 3])
    assert idx.tolist() == [1, 1, 2, 3, 3, 3]
    # Issue 11: a host NumPy int64 array, so len() works (PyTorch samplers need it).
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64 and len(idx) == 6
    out = jax.jit(lambda r: resample.indices(r, total_size=6))(jnp.asarray([0, 2, 1, 3]))
    assert out.tolist() == [1, 1, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="repeats"):
        resample.indices([1, -1])
    with pytest.raises(ValueError, match="repeats"):
        resample.indices([[1, 2]])


def test_summary_hand_values_and_json():
    counts = np.array([[2, 0, 0], [1, 1, 0], [0, 0, 1], [0, 3, 0]])
    s = resample.summary(counts, [0, 2, 0, 1])
    np.testing.assert_array_equal(s.totals_before, [3, 4, 1])
    np.testing.assert_array_equal(s.totals_after, [2, 5, 0])
    assert s.ratio_before == 4.0 and s.ratio_after == float("inf")
    assert s.cv_before == pytest.approx(np.std([3, 4, 1]) / np.mean([3, 4, 1]))
    assert s.cv_after == pytest.approx(np.std([2, 5, 0]) / np.mean([2, 5, 0]))
    assert (s.dropped, s.duplicated, s.size_before, s.size_after) == (2, 1, 4, 3)
    assert s.erased == (2,)
    assert list(resample.Summary._fields) == [
            "totals_before", "totals_after", "ratio_before", "ratio_after", "cv_before",
            "cv_after", "dropped", "duplicated", "size_before", "size_after", "erased"]
    d = s._asdict()
    d["totals_before"], d["totals_after"] = d["totals_before"].tolist(), d["totals_after"].tolist()
    json.dumps(d)
    with pytest.raises(ValueError, match="repeats"):
        resample.summary(counts, [1, 1])


def test_solution_fields_and_dtypes():
    counts = random_counts(np.random.default_rng(8), 30, 3)
    sol = resample.solve(counts, num_steps=20)
    for field in ("rates", "repeats", "objective", "history", "relaxed_objective",
                  "lower_bound", "target", "lam"):
        assert field in sol._fields
    assert sol.repeats.dtype == jnp.int32 and sol.rates.dtype == jnp.float32
    assert sol.rates.shape == (30,) and sol.target.shape == (3,)
    assert int(np.asarray(sol.repeats).max()) <= 4 and int(np.asarray(sol.repeats).min()) >= 0
