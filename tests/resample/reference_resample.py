"""Independent references for `jbalance.resample` (tests and benchmarks use them).

* `solve_lp`: the exact L1 resampling LP handed to HiGHS (scipy ``linprog``). scipy is a
  test/benchmark extra: nothing in ``jbalance`` imports this module.
* `np_objective`, `np_pdhg`, `np_target`: direct NumPy formulas of the objective, of the
  Chambolle-Pock iteration and of the statistic targets.
* `np_group_round`: systematic rounding in float64, the rounding stage's reference.
* `random_counts`, `median_setup`, `guard_ok`: small test problems, the default target and
  lam, and the guard written from its definition.

(LVIS repeat factors have their reference in ``tests/sampling/reference_sampling.py``.)

Exact LP reference for the resampling objective (scipy ``linprog`` with HiGHS).

The relaxed problem solved by `jbalance.resample.solve` (objective ``"l1"``) is a linear
programme. This module writes it out exactly and hands it to HiGHS, so that tests and
benchmarks can compare jbalance's first-order solver with the true optimum. scipy is a
test/benchmark extra: nothing in ``jbalance`` imports this module.

Variables: the repeat rate is split as ``r = 1 + p - q`` with ``p in [0, M - 1]`` and
``q in [0, 1 - m]`` (``m = min_repeat``, 0 or 1; ``|r - 1| = p + q`` at the optimum because
``lam > 0``), and one slack
``t_c >= |T_c - s_c(r)|`` per class. With ``n = Y^T 1`` the original class totals,
``s(r) = n + Y^T (p - q)`` and the LP is

    min  sum_c t_c / T_c + lam * sum_i (p_i + q_i)
    s.t. T_c - s_c <= t_c,  s_c - T_c <= t_c,  s_c >= g_c = min(n_c, floor(T_c)).
"""


import time
from typing import Any, NamedTuple

import numpy as np


class LPResult(NamedTuple):
    rates: np.ndarray       # float64 [N], the exact relaxed optimum
    objective: float        # relaxed optimum value of F
    rounded: np.ndarray     # int32 [N], ``rint(rates)``
    rounded_objective: float  # F of ``rounded`` (the guard may fail there)
    seconds: float          # HiGHS wall time (model build included)


def _coo(counts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    if hasattr(counts, "tocoo") and not isinstance(counts, np.ndarray):
        coo = counts.tocoo()
        n, c = coo.shape
        return (np.asarray(coo.row, np.int64), np.asarray(coo.col, np.int64),
                np.asarray(coo.data, np.float64), n, c)
    y = np.asarray(counts, np.float64)
    rows, cols = np.nonzero(y)
    return rows, cols, y[rows, cols], y.shape[0], y.shape[1]


def objective(counts: Any, repeats: np.ndarray, target: np.ndarray, lam: float) -> float:
    """``F(r) = sum_c |T_c - s_c(r)| / T_c + lam * sum_i |r_i - 1|`` (``T_c = 0``: skipped)."""
    rows, cols, vals, _, c = _coo(counts)
    s = np.bincount(cols, weights=vals * np.asarray(repeats, np.float64)[rows], minlength=c)
    target = np.asarray(target, np.float64)
    active = target > 0
    dev = np.abs(target[active] - s[active]) / target[active]
    return float(dev.sum() + lam * np.abs(np.asarray(repeats, np.float64) - 1.0).sum())


def solve_lp(counts: Any, target: np.ndarray, lam: float, *, max_repeat: int = 4,
             guard: bool = True, min_repeat: int = 0) -> LPResult:
    """Solves the L1 resampling LP exactly with HiGHS.

    Args:
      counts: ``[N, C]`` dense array or any scipy.sparse matrix of non-negative counts.
      target: ``[C]`` target totals ``T_c`` (classes with ``T_c = 0`` are ignored).
      lam: weight of ``sum_i |r_i - 1|``.
      max_repeat: upper bound ``M`` on each rate.
      min_repeat: lower bound ``m`` on each rate (0, or 1: no image dropped).
      guard: add ``s_c >= min(n_c, floor(T_c))`` as constraints.

    Returns:
      An `LPResult`.
    """
    import scipy.optimize
    import scipy.sparse as sp

    t0 = time.perf_counter()
    rows, cols, vals, n_img, n_cls = _coo(counts)
    target = np.asarray(target, np.float64)
    active = np.flatnonzero(target > 0)
    totals = np.bincount(cols, weights=vals, minlength=n_cls)
    # Only the active classes enter the LP; remap their column indices to 0..A-1.
    remap = -np.ones(n_cls, np.int64)
    remap[active] = np.arange(active.size)
    keep = remap[cols] >= 0
    a_rows, a_cols, a_vals = remap[cols[keep]], rows[keep], vals[keep]
    n_act = active.size
    yt = sp.csr_matrix((a_vals, (a_rows, a_cols)), shape=(n_act, n_img))
    t_act, n_act_tot = target[active], totals[active]
    eye = sp.identity(n_act, format="csr")
    # Variable order: p [N], q [N], t [A]. s - n = Yt p - Yt q.
    upper = sp.hstack([yt, -yt, -eye])          # s - T <= t
    lower = sp.hstack([-yt, yt, -eye])          # T - s <= t
    blocks = [upper, lower]
    rhs = [t_act - n_act_tot, n_act_tot - t_act]
    if guard:
        g = np.minimum(n_act_tot, np.floor(t_act))
        blocks.append(sp.hstack([-yt, yt, sp.csr_matrix((n_act, n_act))]))  # s >= g
        rhs.append(n_act_tot - g)
    a_ub = sp.vstack(blocks, format="csr")
    b_ub = np.concatenate(rhs)
    cost = np.concatenate([np.full(2 * n_img, float(lam)), 1.0 / t_act])
    bounds = np.concatenate([
            np.stack([np.zeros(n_img), np.full(n_img, max_repeat - 1.0)], 1),
            np.stack([np.zeros(n_img), np.full(n_img, 1.0 - min_repeat)], 1),
            np.stack([np.zeros(n_act), np.full(n_act, np.inf)], 1)])
    res = scipy.optimize.linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    seconds = time.perf_counter() - t0
    if res.status != 0:
        raise RuntimeError(f"HiGHS failed: {res.message}")
    rates = 1.0 + res.x[:n_img] - res.x[n_img:2 * n_img]
    rounded = np.rint(rates).astype(np.int32)
    return LPResult(rates=rates, objective=float(res.fun), rounded=rounded,
                    rounded_objective=objective(counts, rounded, target, lam), seconds=seconds)


def np_objective(counts, repeats, target, lam):
    """F(r) written from the issue's formula (dense NumPy)."""
    s = np.asarray(counts, np.float64).T @ np.asarray(repeats, np.float64)
    act = target > 0
    return float(np.sum(np.abs(target[act] - s[act]) / target[act])
                 + lam * np.sum(np.abs(np.asarray(repeats, np.float64) - 1)))


def np_pdhg(counts, target, lam, max_repeat, eta, steps, min_repeat=0):
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
        # prox of tau*lam*|r-1| + box [min_repeat, max_repeat]: soft-threshold toward 1,
        # then clip.
        r_new = np.clip(1 + np.sign(x - 1) * np.maximum(np.abs(x - 1) - tau * lam, 0),
                        min_repeat, max_repeat)
        v = y + sigma * (k @ (2 * r_new - r))
        # prox of sigma*G* via Moreau: v - sigma * prox_{G/sigma}(v / sigma), where
        # prox_{G/sigma} soft-thresholds toward T and then projects onto s >= g.
        u = v / sigma
        p = np.maximum(g, target + np.sign(u - target) * np.maximum(np.abs(u - target)
                                                                    - w / sigma, 0))
        y = v - sigma * p
        r = r_new
    return r


def np_group_round(rates, order):
    """Systematic rounding along ``order`` in float64: every contiguous run keeps its total."""
    x = np.asarray(rates, np.float64)[order]
    base = np.floor(x)
    cum = np.floor(np.cumsum(x - base) + 0.5)
    inc = np.diff(np.r_[0.0, cum])
    out = np.empty(x.shape, np.int64)
    out[order] = (base + inc).astype(np.int64)
    return out


def np_target(counts, target="median", tau=0.0):
    """``T_c = m (n_c / m)^tau`` with ``m`` a statistic of the class totals with examples (0
    for classes without), or an explicit vector."""
    n = np.asarray(counts, np.float64).sum(0)
    active = n > 0
    if not isinstance(target, str):
        return np.where(active, np.broadcast_to(np.asarray(target, np.float64), n.shape), 0.0)
    m = {"median": np.median, "mean": np.mean, "max": np.max, "min": np.min}[target](n[active])
    return np.where(active, m * (np.where(active, n, 1.0) / m) ** tau, 0.0)


def random_counts(rng, n, c, density=0.25, max_count=3):
    """``[n, c]`` int32 counts with every class present at least once."""
    y = rng.integers(1, max_count + 1, (n, c)) * (rng.random((n, c)) < density)
    y[np.arange(c) % n, np.arange(c)] = np.maximum(y[np.arange(c) % n, np.arange(c)], 1)
    return y.astype(np.int32)


def median_setup(counts):
    """The default target (median class total for every class) and lam (0.5 / median)."""
    n = np.asarray(counts, np.float64).sum(0)
    med = float(np.median(n))
    return np.full(n.shape, med), 0.5 / med


def guard_ok(counts, repeats, target):
    """The guard ``s_c(r) >= min(n_c, floor(T_c))`` for every class."""
    n = np.asarray(counts, np.float64).sum(0)
    s = np.asarray(counts, np.float64).T @ np.asarray(repeats, np.float64)
    return bool(np.all(s >= np.minimum(n, np.floor(target)) - 1e-9))
