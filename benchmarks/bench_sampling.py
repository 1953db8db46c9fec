"""Sampling benchmarks: `jbalance.sampling` against NumPy, detectron2-style loops and torch.

Cases (same process, same data; every note records the load average at that moment):

* ``sample_indices N=10^7``: `sampling.sample_indices` under `jit` (after compilation; the
  O(N) tree is rebuilt inside every call) against NumPy's ``Generator.choice(N, size, p=)``
  and ``torch.multinomial(p, size, replacement=True)`` (which refuses N > 2^24).
* ``epoch_indices N=10^7 fractional``: one epoch of repeat factors in [0, 3): stochastic
  rounding + shuffle, against a NumPy port of detectron2's
  ``RepeatFactorTrainingSampler._get_epoch_indices`` (per-image Python loop, then a
  permutation). The torch original (``torch.rand`` + ``.item()`` loop + ``randperm``) runs
  at N=10^6, with jbalance at the same N.
* ``GrainSampler``: ``sampler[g]`` throughput (indices/s), with the (lazily built) per-record
  NumPy generator and without it, grain's own ``IndexSampler`` (which builds its generator
  eagerly), and a whole ``grain.DataLoader`` for context.

``--quick`` divides the sizes by 10-100.
"""

import os
import time

import numpy as np

from benchmarks import _harness
from benchmarks._harness import Row


def _load() -> str:
    return "load %.2f/%.2f/%.2f" % os.getloadavg()


def _np_detectron2_epoch(rng: np.random.Generator, rates: np.ndarray) -> np.ndarray:
    """detectron2's _get_epoch_indices + randperm, ported line by line to NumPy."""
    int_part = np.trunc(rates)
    frac_part = rates - int_part
    rands = rng.random(len(frac_part))
    rep_factors = int_part + (rands < frac_part)
    indices = []
    for dataset_index, rep_factor in enumerate(rep_factors):
        indices.extend([dataset_index] * int(rep_factor.item()))
    indices = np.asarray(indices, dtype=np.int64)
    return indices[rng.permutation(len(indices))]


def _torch_detectron2_epoch(g, rates_t):
    import torch

    int_part = torch.trunc(rates_t)
    frac_part = rates_t - int_part
    rands = torch.rand(len(frac_part), generator=g)
    rep_factors = int_part + (rands < frac_part).float()
    indices = []
    for dataset_index, rep_factor in enumerate(rep_factors):
        indices.extend([dataset_index] * int(rep_factor.item()))
    indices = torch.tensor(indices, dtype=torch.int64)
    return indices[torch.randperm(len(indices), generator=g)]


def _case_sample_indices(n: int, sizes, rows: list[Row]) -> None:
    import jax
    import jax.numpy as jnp

    from jbalance import sampling

    rng = np.random.default_rng(0)
    p32 = rng.random(n).astype(np.float32) ** 2
    p64 = p32.astype(np.float64) / p32.astype(np.float64).sum()
    probs = jnp.asarray(p32)
    fn = jax.jit(sampling.sample_indices, static_argnums=2)
    torch, why = _harness.try_import("torch")
    for s in sizes:
        case = f"sample_indices N={n:.0e} S={s:.0e}"
        keys = iter(jax.random.split(jax.random.key(0), 1000))
        reps = 3 if s < 10**7 else 2
        t = _harness.time_fn(lambda: fn(next(keys), probs, s), repeats=reps, warmup=1)
        rows.append(Row(case, "jbalance.sampling.sample_indices (jit)", t, baseline=True,
                        note=f"{s / t:,.0f} draws/s; {_load()}"))
        g = np.random.default_rng(1)
        t = _harness.time_fn(lambda: g.choice(n, size=s, p=p64), repeats=reps, warmup=1)
        rows.append(Row(case, "numpy Generator.choice(p=)", t, note=_load()))
        if torch is None:
            rows.append(Row(case, "torch.multinomial", None, note=why))
        else:
            pt = torch.from_numpy(p32)
            t = _harness.time_fn(lambda: torch.multinomial(pt, s, replacement=True),
                                 repeats=reps, warmup=1)
            rows.append(Row(case, "torch.multinomial(replacement=True)", t,
                            note=f"{torch.get_num_threads()} threads; {_load()}"))


def _case_epoch_indices(n: int, n_torch: int, rows: list[Row]) -> None:
    from jbalance import sampling

    rates = np.random.default_rng(0).uniform(0.0, 3.0, n)
    case = f"epoch_indices N={n:.0e} fractional rates"
    epochs = iter(range(10**6))
    t = _harness.time_fn(lambda: sampling.epoch_indices(0, rates, epoch=next(epochs)),
                         repeats=3, warmup=1)
    rows.append(Row(case, "jbalance.sampling.epoch_indices", t, baseline=True,
                    note=f"{rates.sum():,.0f} indices per epoch; {_load()}"))
    t, _ = _harness.time_once(lambda: _np_detectron2_epoch(np.random.default_rng(0), rates))
    rows.append(Row(case, "detectron2 _get_epoch_indices, NumPy port", t,
                    note=f"one run; {_load()}"))
    torch, why = _harness.try_import("torch")
    case = f"epoch_indices N={n_torch:.0e} fractional rates"
    small = rates[:n_torch]
    t = _harness.time_fn(lambda: sampling.epoch_indices(0, small, epoch=next(epochs)),
                         repeats=5, warmup=1)
    rows.append(Row(case, "jbalance.sampling.epoch_indices", t, baseline=True, note=_load()))
    if torch is None:
        rows.append(Row(case, "detectron2 RepeatFactorTrainingSampler (torch)", None, note=why))
    else:
        g = torch.Generator().manual_seed(0)
        rt = torch.from_numpy(small)
        t, _ = _harness.time_once(lambda: _torch_detectron2_epoch(g, rt))
        rows.append(Row(case, "detectron2 _get_epoch_indices (torch, original)", t,
                        note=f"one run; {_load()}"))


def _case_grain(n: int, count: int, rows: list[Row]) -> None:
    from jbalance import sampling

    grain, why = _harness.try_import("grain")
    case = f"GrainSampler {count:.0e} indices, N={n:.0e}"
    if grain is None:
        rows.append(Row(case, "jbalance.sampling.GrainSampler", None, note=why))
        return
    rates = np.random.default_rng(0).uniform(0.0, 3.0, n)
    for record_rng in (True, False):
        sampler = sampling.GrainSampler(rates, seed=0, record_rng=record_rng)
        sampler[0]  # draws epoch 0 (timed separately by the epoch_indices case)
        t0 = time.perf_counter()
        for g in range(count):
            sampler[g]
        t = time.perf_counter() - t0
        rows.append(Row(case, f"GrainSampler[g], record_rng={record_rng}", t,
                        baseline=record_rng,
                        note=f"{count / t:,.0f} indices/s; {_load()}"))
    # The peers are slower: time a tenth (a hundredth) of the indices and scale up.
    index_sampler = grain.samplers.IndexSampler(n, shuffle=True, seed=0,
                                                shard_options=grain.sharding.NoSharding())
    m = max(count // 10, 1)
    t0 = time.perf_counter()
    for g in range(m):
        index_sampler[g]
    t = (time.perf_counter() - t0) * count / m
    rows.append(Row(case, "grain IndexSampler[g] (plain shuffle, seed => rng)", t,
                    note=f"{count / t:,.0f} indices/s (timed on {m:,}); {_load()}"))
    loader = grain.DataLoader(data_source=np.arange(n),
                              sampler=sampling.GrainSampler(rates, seed=0), worker_count=0)
    it = iter(loader)
    next(it)
    m = max(count // 100, 1)
    t0 = time.perf_counter()
    for _ in range(m):
        next(it)
    t = (time.perf_counter() - t0) * count / m
    rows.append(Row(case, "grain.DataLoader(worker_count=0) over GrainSampler", t,
                    note=f"{count / t:,.0f} records/s, whole loader (timed on {m:,}); "
                         f"{_load()}"))


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    if quick:
        _case_sample_indices(10**5, (10**5,), rows)
        _case_epoch_indices(10**5, 10**4, rows)
        _case_grain(10**5, 10**4, rows)
    else:
        _case_sample_indices(10**7, (10**6, 10**7), rows)
        _case_epoch_indices(10**7, 10**6, rows)
        _case_grain(10**6, 2 * 10**5, rows)
    return rows


if __name__ == "__main__":
    _harness.main(run)
