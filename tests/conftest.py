"""Test configuration: 8 virtual CPU devices and strict JAX promotion rules."""

import os

# Must happen before jax is imported anywhere: sharding tests need several devices.
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Catch accidental dtype/rank promotion in library code (as equinox and optax do).
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

DATA_DIR = pathlib.Path(__file__).parent / "data"
PACKAGE_DATA_DIR = pathlib.Path(__file__).parent.parent / "jbalance" / "data"


@pytest.fixture
def getkey():
    """Returns a function that yields a fresh PRNG key on every call (fixed seed)."""
    state = {"key": jax.random.key(0)}

    def _next():
        state["key"], sub = jax.random.split(state["key"])
        return sub

    return _next


def load_label_set(name: str) -> dict[str, np.ndarray]:
    """Loads one of the bundled real label sets as a dict of arrays."""
    path = PACKAGE_DATA_DIR / f"{name}.npz"
    if not path.exists():
        path = DATA_DIR / f"{name}.npz"
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
