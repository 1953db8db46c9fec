"""`resample.plan` (what ``jbalance plan`` computes) and `resample.summary`."""

import inspect
import json

import jax
import numpy as np
import pytest
from conftest import load_label_set

from jbalance import resample

STEPS = 120


@pytest.fixture(scope="module")
def counts():
    return load_label_set("voc07_test")["counts"][:300].astype(np.int32)


def test_plan_defaults_are_solve_defaults():
    plan = inspect.signature(resample.plan).parameters
    solve = inspect.signature(resample.solve).parameters
    for name in ("lam", "target", "max_repeat", "num_steps"):
        assert plan[name].default == solve[name].default, name


def test_plan_equals_its_parts(counts):
    p = resample.plan(counts, num_steps=STEPS, sweep=True, sweep_points=3, seed=1)
    sol = resample.solve(counts, num_steps=STEPS, empty_classes="ignore", min_repeat=1)
    np.testing.assert_array_equal(p.repeats, np.asarray(sol.repeats))
    assert p.empty_classes == tuple(np.flatnonzero(counts.sum(0) == 0).tolist())
    freq = (counts > 0).mean(0)
    assert p.lvis_threshold == pytest.approx(float(np.median(freq[freq > 0])))
    rf = resample.repeat_factor_sampling(counts, threshold=p.lvis_threshold)
    np.testing.assert_array_equal(
            p.lvis_repeats, np.asarray(resample.stochastic_round(jax.random.key(1), rf)))
    assert len(p.sweep) == 3 and p.sweep[1].lam == pytest.approx(p.lam)
    assert p.summary.size_after == int(p.repeats.sum())


def test_summary_hand_values_and_json():
    counts = np.array([[2, 0, 0], [1, 1, 0], [0, 0, 1], [0, 3, 0]])
    s = resample.summary(counts, [0, 2, 0, 1])
    np.testing.assert_array_equal(s.totals_before, [3, 4, 1])
    np.testing.assert_array_equal(s.totals_after, [2, 5, 0])
    assert s.ratio_before == 4.0 and s.ratio_after == float("inf")
    assert s.cv_before == pytest.approx(np.std([3, 4, 1]) / np.mean([3, 4, 1]))
    assert s.cv_after == pytest.approx(np.std([2, 5, 0]) / np.mean([2, 5, 0]))
    assert (s.dropped, s.duplicated, s.size_before, s.size_after) == (2, 1, 4, 3)
    assert s.erased == (2,)
    assert list(resample.Summary._fields) == [
            "totals_before", "totals_after", "ratio_before", "ratio_after", "cv_before",
            "cv_after", "dropped", "duplicated", "size_before", "size_after", "erased"]
    d = s._asdict()
    d["totals_before"], d["totals_after"] = d["totals_before"].tolist(), d["totals_after"].tolist()
    json.dumps(d)
    with pytest.raises(ValueError, match="repeats"):
        resample.summary(counts, [1, 1])


def test_summary_rejects_nan_repeats():
    with pytest.raises(ValueError, match="repeats"):
        resample.summary(np.array([[1, 0], [0, 1]]), [1, np.nan])
