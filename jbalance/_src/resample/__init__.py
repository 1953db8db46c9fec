"""Implementation of `jbalance.resample` (private): see the files for each stage.

problem.py: validated inputs and device layout; relax.py: the relaxed solver;
rounding.py: rounding and repair; api.py: solve/relax/solve_path; baselines.py: LVIS
repeat-factor sampling, stochastic rounding, indices, summary; plan.py: the plan the CLI
prints.
"""
