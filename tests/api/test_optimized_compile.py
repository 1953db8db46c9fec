"""The suite compiles with XLA's optimisations off (tests/conftest.py, for compile time); users
compile with them on. The exact-numerics contracts, float32 against float64 for every logit
in [-100, 100] and the extreme-logit checks, are run again here the way users compile, so an
optimisation pass that changed a result would fail a test."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The tests whose tolerances are tight enough for an optimisation pass to matter.
EXACT = [
    "tests/losses/test_losses_sigmoid.py::test_sigmoid_cross_entropy_exact_for_every_logit",
    "tests/losses/test_losses_sigmoid.py::test_sigmoid_focal_exact_for_every_logit",
    "tests/losses/test_losses_asymmetric.py::test_asymmetric_exact_for_every_logit",
    "tests/losses/test_losses_db.py::test_gradients_extreme_logits_and_mask",
    "tests/losses/test_losses_softmax.py::test_softmax_extreme_logits_values",
    "tests/losses/test_losses_longtail.py::test_logit_adjusted_extreme_logits_values",
    "tests/losses/test_losses_seesaw.py::test_seesaw_extreme_logits_values",
]


def test_the_conftest_turns_optimisations_off_unless_asked():
    import jax

    expected = os.environ.get("JBALANCE_TEST_XLA_OPT", "") not in ("1", "true")
    assert jax.config.read("jax_disable_most_optimizations") is expected


@pytest.mark.slow
def test_exact_numerics_hold_with_xla_optimisations_on(tmp_path):
    env = {**os.environ, "JBALANCE_TEST_XLA_OPT": "1"}
    env.pop("JBALANCE_JAX_CACHE", None)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         *EXACT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "failed" not in res.stdout, res.stdout[-2000:]
