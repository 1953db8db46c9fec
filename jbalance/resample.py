"""Resampling: per-image repeat counts that balance class totals, and baselines.

See ``docs/resample.md``. `solve` is the relaxed (primal-dual) solver with rounding and
repair; `solve_path` vmaps it over ``lam``; `repeat_factor_sampling` is the LVIS baseline.
"""

from jbalance._src.resample import Solution as Solution
from jbalance._src.resample import Summary as Summary
from jbalance._src.resample import indices as indices
from jbalance._src.resample import objective_value as objective_value
from jbalance._src.resample import repeat_factor_sampling as repeat_factor_sampling
from jbalance._src.resample import solve as solve
from jbalance._src.resample import solve_path as solve_path
from jbalance._src.resample import stochastic_round as stochastic_round
from jbalance._src.resample import summary as summary

__all__ = [
    "Solution",
    "Summary",
    "indices",
    "objective_value",
    "repeat_factor_sampling",
    "solve",
    "solve_path",
    "stochastic_round",
    "summary",
]
