"""Tests for jbalance.resample: LP references, real label sets, sharding, baselines."""

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import load_label_set
from jax.experimental import sparse as jsparse

from jbalance import resample
from jbalance._src import resample as _impl

# The exact LP reference lives in benchmarks/ (scipy is a test extra, not a dependency).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
scipy_sparse = pytest.importorskip("scipy.sparse")
from benchmarks import lp_reference  # noqa: E402


# ----------------------------------------------------------------------------- references


def np_objective(counts, repeats, target, lam):
    """F(r) written from the issue's formula (dense NumPy)."""
    s = np.asarray(counts, np.float64).T @ np.asarray(repeats, np.float64)
    act = target > 0
    return float(np.sum(np.abs(target[act] - s[act]) / target[act])
                 + lam * np.sum(np.abs(np.asarray(repeats, np.float64) - 1)))


def np_pdhg(counts, target, lam, max_repeat, eta, steps):
    """Chambolle-Pock with diagonal steps, from the 2011 papers (dense, float64)."""
    y_mat = np.asarray(counts, np.float64)
    k = y_mat.T                                   # K r = class totals
    rowsum, colsum = y_mat.sum(1), y_mat.sum(0)
    tau = np.where(rowsum > 0, eta / np.where(rowsum > 0, rowsum, 1), 0)
    sigma = 1 / (eta * colsum)
    w, g = 1 / target, np.minimum(colsum, np.floor(target))
    r, y = np.ones(y_mat.shape[0]), np.zeros(y_mat.shape[1])
    for _ in range(steps):
        x = r - tau * (k.T @ y)
        # prox of tau*lam*|r-1| + box: soft-threshold toward 1, then clip.
        r_new = np.clip(1 + np.sign(x - 1) * np.maximum(np.abs(x - 1) - tau * lam, 0), 0,
                        max_repeat)
        v = y + sigma * (k @ (2 * r_new - r))
        # prox of sigma*G* via Moreau: v - sigma * prox_{G/sigma}(v / sigma), where
        # prox_{G/sigma} soft-thresholds toward T and then projects onto s >= g.
        u = v / sigma
        p = np.maximum(g, target + np.sign(u - target) * np.maximum(np.abs(u - target)
                                                                    - w / sigma, 0))
        y = v - sigma * p
        r = r_new
    return r


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relaxed_matches_lp_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    counts = random_counts(rng, 120, 6)
    target, lam = median_setup(counts)
    lp = lp_reference.solve_lp(counts, target, lam)
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


@pytest.mark.parametrize("name", ["voc0712_trainval", "voc07_test", "enron"])
def test_quality_bar_on_real_labels(name):
    counts = load_label_set(name)["counts"]
    target, lam = median_setup(counts)
    lp = lp_reference.solve_lp(counts, target, lam)
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


def test_guard_keeps_enron_singleton_label():
    counts = load_label_set("enron")["counts"]
    target, lam = median_setup(counts)
    no_guard = lp_reference.solve_lp(counts, target, lam, guard=False)
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
        (np.array([[1.0, np.nan], [0, 2]]), "NaN"),
        (np.array([[1.5, 1], [0, 2]]), "non-integer"),
        (np.array([1, 2, 3]), "rank 2"),
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


def test_core_jit_equals_eager_and_compiles_once():
    counts = random_counts(np.random.default_rng(5), 50, 4)
    prep = _impl._prepare(counts, None, "median", 0.0, 4, "error")
    host, _ = _impl._layout(prep.obj, prep.target, prep.guard, np.float32, 1)
    data = jax.tree.map(jnp.asarray, host)
    state = _impl._pdhg_init(data)
    args = (state, data, jnp.float32(prep.lam), 4, jnp.float32(3.0))
    with jax.disable_jit():
        eager, h_eager = _impl._pdhg_chunk(*args, num_steps=3, axis_name=None)
    traces = []

    def counted(*a):
        traces.append(1)
        return _impl._pdhg_chunk(*a, num_steps=3, axis_name=None)

    jitted = jax.jit(counted)
    out, h = jitted(*args)
    np.testing.assert_allclose(np.asarray(out.rates), np.asarray(eager.rates), atol=1e-5)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h_eager), rtol=1e-5)
    jitted(state, data, jnp.float32(prep.lam * 2), 4, jnp.float32(1.0))
    assert len(traces) == 1
    # The core is vmappable over lam (what solve_path uses).
    lams = jnp.asarray([prep.lam, 2 * prep.lam], jnp.float32)
    batched = jax.vmap(lambda lm: _impl._pdhg_chunk(state, data, lm, 4, jnp.float32(3.0),
                                                    num_steps=3, axis_name=None)[0].rates)
    np.testing.assert_allclose(np.asarray(batched(lams)[0]), np.asarray(out.rates), atol=1e-6)


def test_dedupe_changes_nothing_but_speed():
    counts = load_label_set("enron")["counts"]
    a = resample.solve(counts, num_steps=100)
    b = resample.solve(counts, num_steps=100, dedupe=False)
    np.testing.assert_allclose(np.asarray(a.rates), np.asarray(b.rates), atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.history), np.asarray(b.history), rtol=1e-5)
    red, mult, inverse = _impl._dedupe(_impl._objects(counts))
    assert red.num_images < counts.shape[0] and mult.sum() == counts.shape[0]
    np.testing.assert_array_equal(np.unique(counts, axis=0).shape[0], red.num_images)
    np.testing.assert_array_equal(counts[np.argmax(inverse[:, None] == np.arange(
            red.num_images), axis=0)][inverse], counts)


def test_progress_callback_is_called_during_the_run():
    counts = random_counts(np.random.default_rng(6), 80, 5)
    seen = []
    sol = resample.solve(counts, num_steps=120, progress=lambda s, f: seen.append((s, float(f))),
                         progress_every=50)
    assert [s for s, _ in seen] == [50, 100, 120]
    assert seen[-1][1] == pytest.approx(float(sol.history[-1]), rel=1e-6)
    plain = resample.solve(counts, num_steps=120)
    np.testing.assert_allclose(np.asarray(sol.rates), np.asarray(plain.rates), atol=1e-6)


@pytest.mark.parametrize("kind", ["squared", "log", "huber"])
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


def test_sharded_layout_places_image_blocks_on_devices():
    mesh = jax.make_mesh((8,), ("data",))
    counts = random_counts(np.random.default_rng(7), 101, 5)
    prep = _impl._prepare(counts, None, "median", 0.0, 4, "error")
    host, block = _impl._layout(prep.obj, prep.target, prep.guard, np.float32, 8)
    assert block == 13 and host.inv_row.shape == (104,)
    assert [_impl._bucket(x) for x in (1, 16, 17, 100, 1000)] == [1, 16, 18, 104, 1024]
    data = _impl._put(host, mesh, "data")
    assert data.img.sharding.spec == jax.sharding.PartitionSpec("data")
    assert data.target.sharding.spec == jax.sharding.PartitionSpec()
    # Each device's object list holds only its own images (local indices < block).
    img = np.asarray(host.img).reshape(8, -1)
    vals = np.asarray(host.vals).reshape(8, -1)
    assert img.max() < block and vals.sum() == counts.sum()
    with pytest.raises(ValueError, match="axis"):
        resample.solve(counts, mesh=mesh, axis="model")


# ------------------------------------------------------------------------- baselines


def np_rfs(counts, t, sqrt=True):
    present = np.asarray(counts) > 0
    f = present.mean(0)
    out = np.ones(present.shape[0])
    for i in range(present.shape[0]):
        for c in np.flatnonzero(present[i]):
            rc = max(1.0, np.sqrt(t / f[c]) if sqrt else t / f[c])
            out[i] = max(out[i], rc)
    return out


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
    assert resample.indices([0, 2, 1, 3]).tolist() == [1, 1, 2, 3, 3, 3]
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
