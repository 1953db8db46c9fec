"""`examples._stats`, the per-seed summaries every study's tables are built from."""

import numpy as np

from examples import _stats

RESULTS = [
    {"method": "base", "chosen": "--", "runs": [{"seed": 0, "m": 0.5}, {"seed": 1, "m": 0.7}]},
    {"method": "a", "chosen": "k=1", "runs": [{"seed": 0, "m": 0.6}, {"seed": 1, "m": 0.7}]},
    {"method": "b", "chosen": "--", "runs": [{"seed": 1, "m": 0.4}]},
]


def test_paired_deltas_hand_worked():
    d = _stats.paired_deltas(RESULTS, "m", "base")
    np.testing.assert_allclose(d["a"]["per_seed"], [0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose([d["a"]["mean"], d["a"]["std"]], [0.05, 0.05], atol=1e-12)
    assert (d["a"]["wins"], d["a"]["nonneg"]) == (1, 2)
    # Paired by seed: b ran on seed 1 only.
    np.testing.assert_allclose(d["b"]["per_seed"], [-0.3], atol=1e-12)
    assert (d["b"]["wins"], d["b"]["nonneg"]) == (0, 0)
    assert d["base"]["per_seed"] == [0.0, 0.0]


def test_summarize_hand_worked():
    s = _stats.summarize(RESULTS, ("m",))
    assert s["a"]["seeds"] == 2 and s["a"]["chosen"] == "k=1"
    np.testing.assert_allclose(s["base"]["m"], (0.6, 0.1), atol=1e-12)
