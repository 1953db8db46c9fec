"""Library text states contracts; measured figures live in docs/ and benchmarks/RESULTS.md.

Issue 21's acceptance: ``git grep`` finds no timing or study figures in ``jbalance/``. This
scans every source file of the package for the shapes such figures take (a signed gain in
points, a speed ratio, a time per call, "measured on/at").
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "jbalance"
FIGURES = re.compile(
    r"[+-]\d+(\.\d+)? ?(points|pts|mAP|mIoU|AP)\b"     # study deltas: "+10.4 mAP"
    r"|\b\d+(\.\d+)?x (faster|slower|the)\b"            # speed ratios: "4x faster"
    r"|\b\d+(\.\d+)? ?(ms|us|µs) (per|a|each)\b"        # timings: "60 ms per step"
    r"|\bmeasured (on|at) \w"                           # "measured on CPU"
    r"|\bGiB peak\b")


def test_the_pattern_catches_figures():
    for text in ("gains +10.4 mAP", "about 4x faster than", "60 ms per step",
                 "measured on CPU", "-3.3 points"):
        assert FIGURES.search(text), text


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(
    p.relative_to(ROOT)))
def test_no_study_or_timing_figures_in_the_library(path):
    for i, line in enumerate(path.read_text().splitlines(), 1):
        m = FIGURES.search(line)
        assert m is None, (f"{path.relative_to(ROOT.parent)}:{i} states a figure "
                           f"({m.group(0)!r}); put it in docs/ or benchmarks/RESULTS.md "
                           "and link to it")
