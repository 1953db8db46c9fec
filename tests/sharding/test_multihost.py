"""The multi-host example: two CPU processes (gloo) train exactly as one process does."""

import pathlib
import re
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "multihost" / "train.py"


def _losses(num_processes: int, devices_per_process: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--launch-local", str(num_processes),
         "--devices-per-process", str(devices_per_process), "--steps", "3"],
        capture_output=True, text=True, timeout=240)
    if out.returncode != 0 and "gloo" in out.stderr.lower() and "not" in out.stderr.lower():
        pytest.skip("this jaxlib has no gloo CPU collectives")
    assert out.returncode == 0, out.stderr[-3000:]
    found = re.findall(r"processes (\d+) devices (\d+) loss ([0-9.]+)", out.stdout)
    assert len(found) == 3, out.stdout
    assert {(int(p), int(d)) for p, d, _ in found} == {(num_processes,
                                                        num_processes * devices_per_process)}
    return [float(v) for *_, v in found]


@pytest.mark.slow
def test_two_processes_match_one_process():
    one = _losses(1, 4)
    two = _losses(2, 2)
    assert one == pytest.approx(two, rel=1e-5)
    assert one[-1] < one[0]  # it trains
