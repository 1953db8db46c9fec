"""Rounding and repair: systematic group rounding against its float64 reference, and the
greedy repair, which restores the guard from any start and only lowers F (issue 21: its
scoring pass walks the object list in blocks; that path is pinned here too)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_resample import (
    guard_ok,
    median_setup,
    np_group_round,
    np_objective,
    random_counts,
    solve_lp,
)

from jbalance import resample
from jbalance._src.resample import problem, rounding


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


def _host(counts):
    return problem.build(counts, target="median", tau=0.0, empty_classes="error",
                         dtype=np.float32)


@pytest.mark.parametrize("start", ["zeros", "max"])
def test_repair_restores_the_guard_from_a_bad_start(start):
    # Dropping every image breaks the guard in every class; repeating every image M times
    # keeps it but is far from the target. The repair alone must give a guarded plan with a
    # lower F.
    counts = random_counts(np.random.default_rng(11), 60, 5)
    target, lam = median_setup(counts)
    host = _host(counts)
    full, n = host.problem.full, counts.shape[0]
    r0 = jnp.zeros((full.order.shape[0],), jnp.int32) if start == "zeros" else \
        jnp.full((full.order.shape[0],), 4, jnp.int32)
    t = jnp.asarray(host.target, jnp.float32)
    weight = jnp.where(t > 0, 1 / jnp.where(t > 0, t, 1), 0)
    r, rounds = rounding.repair(full, r0, t, weight, jnp.asarray(host.guard, jnp.float32),
                                jnp.asarray(lam, jnp.float32), kind="l1", delta=0.05,
                                max_repeat=4, width=host.width)
    r = np.asarray(r)[:n]
    assert guard_ok(counts, np.asarray(r0)[:n], target) == (start == "max")
    assert guard_ok(counts, r, target) and 0 < int(rounds)
    assert r.min() >= 0 and r.max() <= 4
    assert np_objective(counts, r, target, lam) < np_objective(counts, np.asarray(r0)[:n],
                                                               target, lam)


def test_blocked_scoring_pass_equals_one_block_and_the_references(monkeypatch):
    # A small block makes this small problem take the blocked path of large ones.
    counts = random_counts(np.random.default_rng(12), 400, 6)
    length = _host(counts).problem.full.img.shape[0]
    monkeypatch.setattr(rounding, "_BLOCK", 64)
    assert rounding.object_block(length) == 64 and length // 64 > 1
    jax.clear_caches()  # the block size is read when the solver is traced
    blocked = resample.solve(counts, num_steps=200)
    monkeypatch.setattr(rounding, "_BLOCK", 1 << 30)
    assert rounding.object_block(length) == length
    jax.clear_caches()
    whole = resample.solve(counts, num_steps=200)
    np.testing.assert_array_equal(np.asarray(blocked.repeats), np.asarray(whole.repeats))
    target, lam = median_setup(counts)
    assert guard_ok(counts, blocked.repeats, target)
    f = np_objective(counts, blocked.repeats, target, lam)
    assert float(blocked.objective) == pytest.approx(f, rel=1e-5)
    lp = solve_lp(counts, target, lam)
    assert lp.objective - 1e-6 <= f <= max(lp.rounded_objective, lp.objective) * 1.05 + 1e-6
