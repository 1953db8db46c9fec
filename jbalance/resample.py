"""Resampling: per-image repeat counts that balance class totals, and baselines.

See ``docs/resample.md``. `solve` is the relaxed (primal-dual) solver with rounding and
repair, pure and jit-compatible; `relax` is its continuous part alone; `solve_path` vmaps
`solve` over ``lam``; `plan` is what ``jbalance plan`` computes (solve, the LVIS baseline,
an optional sweep); `repeat_factor_sampling` is the LVIS baseline.
"""

from jbalance._src.resample.api import Solution as Solution
from jbalance._src.resample.api import objective_value as objective_value
from jbalance._src.resample.api import relax as relax
from jbalance._src.resample.api import solve as solve
from jbalance._src.resample.api import solve_path as solve_path
from jbalance._src.resample.plan import Plan as Plan
from jbalance._src.resample.plan import SweepPoint as SweepPoint
from jbalance._src.resample.plan import plan as plan
from jbalance._src.resample.relax import Relaxed as Relaxed
from jbalance._src.resample.summary import Summary as Summary
from jbalance._src.resample.summary import summary as summary
from jbalance._src.sampling.repeats import indices as indices
from jbalance._src.sampling.repeats import repeat_factor_sampling as repeat_factor_sampling
from jbalance._src.sampling.repeats import stochastic_round as stochastic_round

__all__ = [
    "Plan",
    "Relaxed",
    "Solution",
    "Summary",
    "indices",
    "objective_value",
    "plan",
    "relax",
    "repeat_factor_sampling",
    "solve",
    "solve_path",
    "stochastic_round",
    "summary",
    "SweepPoint",
]
