"""Implementation of `jbalance.resample` (private): see the files for each stage.

problem.py: validated inputs and device layout; relax.py: the relaxed solver;
rounding.py: rounding and repair; api.py: solve/relax/solve_path; summary.py: balance
before and after; plan.py: the plan the CLI prints. LVIS repeat factors, stochastic rounding
and the index list are in ``jbalance/_src/sampling/repeats.py`` (shared with the samplers).
"""
