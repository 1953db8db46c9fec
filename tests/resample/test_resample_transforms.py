"""The solver under transformations, and each of its code paths against the references.

* ``jit`` (counts traced), ``vmap`` over ``lam``, ``grad`` through `relax`, `solve_path`,
  determinism, no module state, sharding over 8 devices, row merging.
* One code path per input kind? No: concrete counts are prepared on the host (merged rows,
  sparse input), traced ones in JAX. Every branch (counts concrete or traced, ``lam`` concrete
  or traced, class ids concrete or traced, ``lams`` concrete or traced) is pinned here to the
  independent NumPy references (`reference_resample`), not to each other.
* ``progress`` callbacks arrive while the solve runs.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_label_set
from reference_resample import guard_ok, np_objective, np_pdhg, np_target, random_counts, solve_lp

from jbalance import resample

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


@pytest.mark.slow
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


def test_answer_does_not_depend_on_the_order_of_sparse_entries(counts, eager):
    # A COO matrix lists the same objects in a shuffled order (and one entry split in two).
    import scipy.sparse as sp

    rows, cols = np.nonzero(counts)
    vals = counts[rows, cols].astype(np.int32)
    perm = np.random.default_rng(0).permutation(rows.size)
    split = np.flatnonzero(vals[perm] >= 2)[0]
    r, c, v = rows[perm], cols[perm], vals[perm].copy()
    v[split] -= 1
    coo = sp.coo_matrix((np.r_[v, 1], (np.r_[r, r[split]], np.r_[c, c[split]])),
                        shape=counts.shape)
    sol = resample.solve(coo, num_steps=STEPS, empty_classes="ignore")
    np.testing.assert_array_equal(np.asarray(sol.repeats), np.asarray(eager.repeats))


def test_no_module_state():
    import jbalance._src.resample.api as api
    import jbalance._src.resample.rounding as rnd

    for mod in (api, rnd):
        for name, value in vars(mod).items():
            assert not isinstance(value, (dict, list, set)) or name.startswith("__"), name


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


# ------------------------------------------------------- every branch against the references

PIN_STEPS = 25
PIN_LAM = 0.02
# (target, tau) pairs: the quick loop runs the median; the others compile the traced path
# once more each.
PIN_TARGETS = [("median", 0.0), pytest.param("max", 0.5, marks=pytest.mark.slow),
               pytest.param("explicit", 0.0, marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def small():
    return random_counts(np.random.default_rng(3), 40, 5)


def _pin(counts, sol, target, tau, lam, *, rates_only=False):
    """The relaxed rates against the NumPy primal-dual iteration, the integer plan against
    the objective, the guard and the LP optimum (all written from the formulas)."""
    t = np_target(counts, target, tau)
    lam_ref = 0.5 / np.median(counts.sum(0)) if lam is None else lam
    ref = np_pdhg(counts, t, lam_ref, 4, eta=float(np.median(t)), steps=PIN_STEPS)
    # float32 on device against float64 over 25 steps.
    np.testing.assert_allclose(np.asarray(sol.rates), ref, atol=2e-4)
    np.testing.assert_allclose(np.asarray(sol.target), t, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sol.guard), np.minimum(counts.sum(0), np.floor(t)))
    assert float(sol.lam) == pytest.approx(lam_ref, rel=1e-6)
    if rates_only:
        return
    r = np.asarray(sol.repeats)
    assert guard_ok(counts, r, t) and r.min() >= 0 and r.max() <= 4
    f = np_objective(counts, r, t, lam_ref)
    assert float(sol.objective) == pytest.approx(f, rel=1e-5)
    assert f >= solve_lp(counts, t, lam_ref).objective - 1e-6


def _target_arg(counts, target):
    return np.linspace(0.5, 1.5, counts.shape[1]) * counts.sum(0).mean() \
        if target == "explicit" else target


@pytest.mark.parametrize("target, tau", PIN_TARGETS)
@pytest.mark.parametrize("lam", [PIN_LAM, None])
def test_concrete_counts_match_the_references(small, target, tau, lam):
    tgt = _target_arg(small, target)
    kw = dict(lam=lam, target=tgt, tau=tau, num_steps=PIN_STEPS)
    _pin(small, resample.solve(small, **kw), tgt, tau, lam)
    _pin(small, resample.relax(small, **kw), tgt, tau, lam, rates_only=True)


@pytest.mark.parametrize("target, tau", PIN_TARGETS)
@pytest.mark.parametrize("lam", [PIN_LAM, None])
def test_traced_counts_match_the_references(small, target, tau, lam):
    # The counts (and an explicit target) are traced: the JAX-side problem, no row merging.
    tgt = _target_arg(small, target)

    @jax.jit
    def run(c, t):
        kw = dict(lam=lam, target=target if isinstance(target, str) and target != "explicit"
                  else t, tau=tau, num_steps=PIN_STEPS)
        return resample.solve(c, **kw), resample.relax(c, **kw)

    sol, rel = run(jnp.asarray(small), jnp.asarray(tgt if not isinstance(tgt, str) else 0.0,
                                                   jnp.float32))
    _pin(small, sol, tgt, tau, lam)
    _pin(small, rel, tgt, tau, lam, rates_only=True)


def test_traced_lam_and_lams_match_the_references(small):
    # Concrete counts (host-prepared), traced lam: jit, and solve_path with traced lams.
    sol = jax.jit(lambda lm: resample.solve(small, lam=lm, num_steps=PIN_STEPS))(PIN_LAM)
    _pin(small, sol, "median", 0.0, PIN_LAM)
    lams = np.array([PIN_LAM, 0.1])
    for path in (resample.solve_path(small, lams, num_steps=PIN_STEPS),
                 jax.jit(lambda ls: resample.solve_path(small, ls, num_steps=PIN_STEPS))(
                         jnp.asarray(lams, jnp.float32))):
        for j, lm in enumerate(lams):
            _pin(small, jax.tree.map(lambda x, j=j: x[j], path), "median", 0.0, float(lm))


@pytest.mark.slow
def test_traced_class_ids_match_the_references():
    ids = np.random.default_rng(4).integers(0, 3, 30)
    ids[:3] = [0, 1, 2]
    onehot = np.eye(3, dtype=np.int32)[ids]
    kw = dict(lam=PIN_LAM, num_steps=PIN_STEPS, num_classes=3)
    _pin(onehot, resample.solve(ids, **kw), "median", 0.0, PIN_LAM)
    _pin(onehot, jax.jit(lambda y: resample.solve(y, **kw))(jnp.asarray(ids)), "median", 0.0,
         PIN_LAM)


# ---------------------------------------------------------------------------- progress


@pytest.mark.slow
def test_progress_callback_is_called_during_the_run():
    counts = random_counts(np.random.default_rng(6), 80, 5)
    seen = []
    sol = resample.solve(counts, num_steps=120, progress=lambda s, f: seen.append((s, float(f))),
                         progress_every=50)
    assert [s for s, _ in seen] == [50, 100, 120]
    assert seen[-1][1] == pytest.approx(float(sol.history[-1]), rel=1e-6)
    np.testing.assert_allclose([f for _, f in seen], np.asarray(sol.history)[[49, 99, 119]],
                               rtol=1e-6)


@pytest.mark.slow
def test_progress_callbacks_arrive_while_the_solve_runs():
    # Not all at once after the run: their arrival times span the solve.
    counts = random_counts(np.random.default_rng(5), 2000, 20)
    seen = []

    def progress(step, value):
        seen.append((time.monotonic(), int(step)))

    kw = dict(num_steps=10000, progress=progress, progress_every=1000)
    resample.solve(counts, **kw)  # compiles (the callback is part of the program)
    seen.clear()
    t0 = time.monotonic()
    jax.block_until_ready(resample.solve(counts, **kw))
    t1 = time.monotonic()
    assert [s for _, s in seen] == list(range(1000, 10001, 1000))
    times = np.array([t for t, _ in seen]) - t0
    total = t1 - t0
    assert times[0] < 0.4 * total          # the first well before the solve returns
    assert times[-1] - times[0] > 0.5 * total  # spread over the run ...
    assert np.diff(times).max() < 0.5 * (times[-1] - times[0])  # ... not in one burst
