"""The exact LP reference of the resampling benchmarks (HiGHS through scipy ``linprog``).

It lives in ``tests/resample/reference_resample.py`` (tests must not import benchmarks/); this module
loads it from there so that the benchmarks and the tests use one reference.
"""

import importlib.util
import pathlib

_path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "resample" / "reference_resample.py"
_spec = importlib.util.spec_from_file_location("_jbalance_reference_resample", _path)
_ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ref)

LPResult = _ref.LPResult
objective = _ref.objective
solve_lp = _ref.solve_lp

__all__ = ["LPResult", "objective", "solve_lp"]
