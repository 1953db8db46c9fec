"""Per-seed summaries shared by the studies (`examples.multilabel`, `examples.detection`,
`examples.segmentation`): a study's results are records ``{"method", "chosen", "runs": [{
"seed", <metric>: float, ...}]}``, one per method, all run on the same seeds."""

from collections.abc import Sequence
from typing import Any

import numpy as np


def summarize(results: Sequence[dict[str, Any]], keys: Sequence[str]
              ) -> dict[str, dict[str, Any]]:
    """Per method: the number of seeds, the chosen knob, and ``(mean, std)`` over seeds of
    each metric in ``keys``."""
    out: dict[str, dict[str, Any]] = {}
    for rec in results:
        s: dict[str, Any] = {"seeds": len(rec["runs"]), "chosen": rec["chosen"]}
        for k in keys:
            v = np.array([r[k] for r in rec["runs"]])
            s[k] = (float(v.mean()), float(v.std()))
        out[rec["method"]] = s
    return out


def paired_deltas(results: Sequence[dict[str, Any]], key: str, baseline: str
                  ) -> dict[str, dict[str, Any]]:
    """Per method: ``key`` minus the baseline's on the same seed -- the per-seed values, their
    mean and std, on how many seeds the method beat the baseline (``wins``) and on how many it
    did not fall below it (``nonneg``). Seeds share the data, so the paired difference removes
    the seed-to-seed variance that dominates the unpaired standard deviations."""
    base = {r["seed"]: r[key] for rec in results if rec["method"] == baseline
            for r in rec["runs"]}
    out = {}
    for rec in results:
        d = np.array([r[key] - base[r["seed"]] for r in rec["runs"] if r["seed"] in base])
        if len(d):
            out[rec["method"]] = {"mean": float(d.mean()), "std": float(d.std()),
                                  "wins": int((d > 0).sum()), "nonneg": int((d >= 0).sum()),
                                  "per_seed": d.tolist()}
    return out
