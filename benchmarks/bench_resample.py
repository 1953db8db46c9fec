"""Resampling benchmarks: `jbalance.resample.solve` against HiGHS, LVIS RFS and DataEval.

Cases (sizes depend on the mode; every row's note says which size ran):

* ``long-tailed N x 80``: the relaxed solver after compilation, its compile time, HiGHS'
  exact LP (scipy ``linprog``) on the same matrix, LVIS repeat-factor sampling and
  DataEval's ``ClassBalance`` (``"global"`` and ``"interclass"``), each with the balance it
  reaches (max/min class-total ratio, CV) and the images it drops / duplicates.
* ``vmap sweep over 8 lam``: `solve_path` (one vmapped call) against 8 HiGHS solves.
* ``sparse N x 1000 (fresh process)``: jbalance and HiGHS each in their own subprocess,
  timed from the scipy matrix to the solution (data preparation and compilation
  included), with the peak resident memory of each process.
* ``scaling``: the same fresh-process measurement at 10^4 ... 10^7 images.

``--quality`` prints the real-label-set table of docs/resample.md instead.

Modes: ``--quick`` (smoke sizes), default, and full (``--full`` or ``JBALANCE_BENCH_FULL=1``:
100k x 80 with DataEval interclass (~15 min), 1M x 1000 HiGHS (~5 min), 10M images).
Run under the shared lock: ``flock /tmp/bench.lock .venv-bench/bin/python -m
benchmarks.bench_resample [--quick|--full]``.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks import _harness
from benchmarks._harness import Row

FULL = os.environ.get("JBALANCE_BENCH_FULL", "") not in ("", "0")


def _reference():
    """The exact LP reference (HiGHS), ``tests/resample/reference_resample.py``: one
    reference for the tests and the benchmarks (tests must not import benchmarks/)."""
    import importlib.util
    import pathlib

    path = (pathlib.Path(__file__).resolve().parent.parent / "tests" / "resample"
            / "reference_resample.py")
    spec = importlib.util.spec_from_file_location("_jbalance_reference_resample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic(num_images: int, num_classes: int, *, seed: int = 0, mean_objects: float = 2.5,
              alpha: float = 1.1):
    """A long-tailed detection-like count matrix as ``scipy.sparse.csr_matrix`` (int32).

    Each image holds ``1 + Poisson(mean_objects - 1)`` objects whose classes follow a Zipf
    law ``p_c ~ (c + 1)^-alpha``; repeated classes in one image add up to counts.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    k = 1 + rng.poisson(mean_objects - 1.0, num_images)
    img = np.repeat(np.arange(num_images, dtype=np.int64), k)
    p = (np.arange(num_classes) + 1.0) ** -alpha
    cls = rng.choice(num_classes, size=img.size, p=p / p.sum())
    keys, cnt = np.unique(img * num_classes + cls, return_counts=True)
    return sp.csr_matrix((cnt.astype(np.int32), (keys // num_classes, keys % num_classes)),
                         shape=(num_images, num_classes))


def _balance_note(counts, repeats) -> str:
    from jbalance import resample

    s = resample.summary(counts, np.asarray(repeats))
    return (f"max/min {s.ratio_before:.1f}->{s.ratio_after:.2f}, CV {s.cv_before:.2f}->"
            f"{s.cv_after:.3f}, dropped {s.dropped}, duplicated {s.duplicated}, "
            f"erased {len(s.erased)}")


def _dataeval_repeats(counts, method: str) -> np.ndarray:
    """Repeat counts implied by DataEval's ClassBalance selection on a dummy dataset."""
    from dataeval.data import ClassBalance, View

    coo = counts.tocoo()
    order = np.argsort(coo.row, kind="stable")
    rows, cols, vals = coo.row[order], coo.col[order], coo.data[order]
    starts = np.searchsorted(rows, np.arange(counts.shape[0] + 1))
    image = np.zeros((3, 2, 2), np.uint8)

    class Target:
        def __init__(self, labels):
            self.labels = labels
            self.boxes = np.zeros((len(labels), 4), np.float32)
            self.scores = np.ones((len(labels),), np.float32)

    class Dataset:
        metadata = {"id": "synthetic"}

        def __len__(self):
            return counts.shape[0]

        def __getitem__(self, i):
            lo, hi = starts[i], starts[i + 1]
            return image, Target(np.repeat(cols[lo:hi], vals[lo:hi])), {}

    view = View(Dataset(), [ClassBalance(method)])
    return np.bincount(np.asarray(view.selection), minlength=counts.shape[0])


def _median_target(counts):
    n = np.asarray(counts.sum(0)).ravel().astype(np.float64)
    med = float(np.median(n[n > 0]))
    return np.where(n > 0, med, 0.0), 0.5 / med


def _case_long_tailed(n: int, rows: list[Row]) -> None:
    import jax

    solve_lp = _reference().solve_lp
    from jbalance import resample

    counts = synthetic(n, 80)
    case = f"long-tailed {n // 1000}k x 80"
    t0 = time.perf_counter()
    sol = resample.solve(counts)
    first = time.perf_counter() - t0
    warm = _harness.time_fn(lambda: resample.solve(counts).repeats, repeats=3, warmup=0)
    rows.append(Row(case, "jbalance.resample.solve (after compile)", warm, baseline=True,
                    note=f"F={float(sol.objective):.4f}, LB={float(sol.lower_bound):.4f}; "
                         + _balance_note(counts, sol.repeats)))
    rows.append(Row(case + " compile", "jbalance first call - warm call", first - warm,
                    note="compilation (plus one-off tracing)"))
    target, lam = _median_target(counts)
    lp = solve_lp(counts, target, lam)
    rows.append(Row(case, "scipy linprog HiGHS (exact LP)", lp.seconds,
                    note=f"LP={lp.objective:.4f}, rounded F={lp.rounded_objective:.4f}; "
                         + _balance_note(counts, lp.rounded)))
    rf = resample.repeat_factor_sampling(counts, threshold=0.1)
    t_rfs = _harness.time_fn(lambda: resample.repeat_factor_sampling(counts, threshold=0.1),
                             repeats=5, warmup=1)
    reps = resample.stochastic_round(jax.random.key(0), rf)
    rows.append(Row(case, "LVIS repeat-factor sampling (t=0.1), jbalance", t_rfs,
                    note="stochastic rounding; " + _balance_note(counts, reps)))
    de, why = _harness.try_import("dataeval")
    methods = ["global", "interclass"] if (FULL or n <= 20000) else ["global"]
    for method in ["global", "interclass"]:
        impl = f"DataEval ClassBalance('{method}')"
        if de is None:
            rows.append(Row(case, impl, None, note=why))
        elif method not in methods:
            rows.append(Row(case, impl, None, note="skipped: ~14 min at 100k (run with --full)"))
        else:
            t, reps = _harness.time_once(lambda m=method: _dataeval_repeats(counts, m))
            rows.append(Row(case, impl, t, note=_balance_note(counts, reps)))
    jax.clear_caches()


def _case_sweep(n: int, rows: list[Row]) -> None:
    solve_lp = _reference().solve_lp
    from jbalance import resample

    counts = synthetic(n, 80, seed=1)
    target, lam0 = _median_target(counts)
    lams = lam0 * np.geomspace(0.1, 10.0, 8)
    case = f"vmap sweep over 8 lam, {n // 1000}k x 80"
    resample.solve_path(counts, lams)
    t = _harness.time_fn(lambda: resample.solve_path(counts, lams).repeats, repeats=2,
                         warmup=0)
    rows.append(Row(case, "jbalance.resample.solve_path (after compile)", t, baseline=True))
    t_lp = sum(solve_lp(counts, target, float(lm)).seconds for lm in lams)
    rows.append(Row(case, "8 x scipy linprog HiGHS", t_lp))


def _peak_gib() -> float:
    """This process's peak RSS (VmHWM). Unlike ``ru_maxrss``, it is not inherited from the
    parent through fork + exec, so each child's number is its own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return _harness.peak_rss_gib()


def _child(which: str, n: int, c: int) -> dict:
    """Runs in a fresh process: data generation, then one solve, timed and RSS-measured."""
    counts = synthetic(n, c, seed=2)
    rss_data = _peak_gib()
    t0 = time.perf_counter()
    if which == "jbalance":
        from jbalance import resample

        sol = resample.solve(counts, empty_classes="ignore")
        extra = {"F": float(sol.objective), "LB": float(sol.lower_bound)}
    else:
        solve_lp = _reference().solve_lp

        target, lam = _median_target(counts)
        lp = solve_lp(counts, target, lam)
        extra = {"F": lp.rounded_objective, "LP": lp.objective}
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_gib": _peak_gib(), "data_gib": rss_data,
            "nnz": int(counts.nnz), **extra}


def quality_table() -> str:
    """Markdown table: jbalance vs the exact LP and LVIS RFS on the real label sets."""
    import pathlib

    import jax

    solve_lp = _reference().solve_lp
    from jbalance import resample

    root = pathlib.Path(__file__).resolve().parent.parent
    lines = ["| set | LP optimum | rounded LP F (guard broken on) | jbalance F (vs rounded LP) "
             "| certified LB | max/min: before -> rounded LP -> jbalance | CV after "
             "| dropped / duplicated | LVIS RFS t=0.1 max/min |", "|---" * 9 + "|"]
    for name in ["voc0712_trainval", "voc07_test", "enron", "scene"]:
        path = root / "jbalance" / "data" / f"{name}.npz"
        if not path.exists():
            path = root / "tests" / "data" / f"{name}.npz"
        with np.load(path, allow_pickle=False) as f:
            y = f["counts"]
        n = y.sum(0).astype(np.float64)
        target, lam = np.full(n.shape, np.median(n)), 0.5 / np.median(n)
        lp = solve_lp(y, target, lam)
        s_lp = resample.summary(y, lp.rounded)
        viol = int((s_lp.totals_after < np.minimum(n, np.floor(target))).sum())
        sol = resample.solve(y)
        s = resample.summary(y, sol.repeats)
        rfs = resample.stochastic_round(jax.random.key(0),
                                        resample.repeat_factor_sampling(y, threshold=0.1))
        s_rfs = resample.summary(y, rfs)
        f = float(sol.objective)
        lines.append(
                f"| {name} | {lp.objective:.4f} | {lp.rounded_objective:.4f} ({viol}) | {f:.4f} "
                f"({f / lp.rounded_objective - 1:+.2%}) | {float(sol.lower_bound):.4f} | "
                f"{s.ratio_before:.1f} -> {s_lp.ratio_after:.2f} -> {s.ratio_after:.2f} | "
                f"{s.cv_after:.3f} | {s.dropped} / {s.duplicated} | {s_rfs.ratio_after:.1f} |")
    return "\n".join(lines)


_FRESH_CACHE: dict[tuple[str, int, int], dict | None] = {}


def _fresh(which: str, n: int, c: int, timeout: float = 3600) -> dict | None:
    if (which, n, c) in _FRESH_CACHE:  # the 1M case doubles as a scaling point
        return _FRESH_CACHE[which, n, c]
    cmd = [sys.executable, "-m", "benchmarks.bench_resample", "--child", which, str(n), str(c)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    except subprocess.TimeoutExpired:
        return None
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            _FRESH_CACHE[which, n, c] = json.loads(line)
            return _FRESH_CACHE[which, n, c]
    raise RuntimeError(f"child {which} {n}x{c} failed:\n{out.stderr[-2000:]}")


def _case_fresh(n: int, c: int, rows: list[Row], *, highs: bool, case: str) -> None:
    """One size in fresh processes: jbalance, then (optionally) HiGHS."""
    res = _fresh("jbalance", n, c)
    note = (f"incl. data prep + compile; F={res['F']:.3f} LB={res['LB']:.3f}; "
            f"nnz={res['nnz']}; data alone {res['data_gib']:.2f} GiB")
    rows.append(Row(case, "jbalance solve (fresh process)", res["seconds"], baseline=True,
                    note=note))
    rows.append(Row(case + " peak RSS", "jbalance solve (fresh process)", res["peak_gib"],
                    unit="GiB", baseline=True))
    if highs:
        lp = _fresh("highs", n, c)
        if lp is None:
            rows.append(Row(case, "scipy linprog HiGHS (fresh process)", None, note="timeout"))
            return
        rows.append(Row(case, "scipy linprog HiGHS (fresh process)", lp["seconds"],
                        note=f"incl. model build; LP={lp['LP']:.3f}, rounded F={lp['F']:.3f}"))
        rows.append(Row(case + " peak RSS", "scipy linprog HiGHS (fresh process)",
                        lp["peak_gib"], unit="GiB"))
    else:
        rows.append(Row(case, "scipy linprog HiGHS (fresh process)", None,
                        note="skipped at this size (run with --full)"))


def _guarded(rows: list[Row], name: str, fn, *args, **kwargs) -> None:
    """Runs one case; a failure becomes a row (the other cases still run)."""
    start = len(rows)
    try:
        fn(*args, rows, **kwargs)
    except Exception as e:  # noqa: BLE001 - reported in the table, never hidden.
        rows.append(Row(name, "jbalance", None, note=f"failed: {type(e).__name__}: {e}"[:200]))
    for row in rows[start:]:  # progress on stderr: the full run takes most of an hour
        print(f"[bench_resample] {row.case} | {row.impl} | {row.seconds} | {row.note}",
              file=sys.stderr, flush=True)


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    mode = "quick" if quick else ("full" if FULL else "default")
    print(f"[bench_resample] mode={mode}", file=sys.stderr, flush=True)
    if quick:
        _guarded(rows, "long-tailed", _case_long_tailed, 10_000)
        _guarded(rows, "sweep", _case_sweep, 10_000)
        _guarded(rows, "sparse", _case_fresh, 50_000, 1000, highs=True,
                 case="sparse 50k x 1000")
        return rows
    _guarded(rows, "long-tailed", _case_long_tailed, 100_000)
    _guarded(rows, "sweep", _case_sweep, 100_000)
    if FULL:
        _guarded(rows, "sparse", _case_fresh, 1_000_000, 1000, highs=True,
                 case="sparse 1M x 1000")
    else:
        _guarded(rows, "sparse", _case_fresh, 200_000, 1000, highs=True,
                 case="sparse 200k x 1000")
    sizes = [10_000, 100_000, 1_000_000] + ([10_000_000] if FULL else [])
    for n in sizes:
        _guarded(rows, "scaling", _case_fresh, n, 1000, highs=n <= 100_000,
                 case=f"scaling {n:.0e} x 1000")
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--quality":
        print(quality_table())
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        argv = sys.argv[1:]
        if "--full" in argv:
            argv.remove("--full")
            FULL = True
        _harness.main(run, argv)
