"""Test configuration: 8 virtual CPU devices and strict JAX promotion rules.

Tests mirror the source (tests/<area>/test_*.py, unique basenames, no __init__.py). Heavy
tests carry ``@pytest.mark.slow`` on the test itself (or ``pytest.param(..., marks=...)``):
`make test-fast` skips them, `make test` (CI) runs everything.
"""

import os

# Must happen before jax is imported anywhere: sharding tests need several devices.
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Most of the suite's time is XLA compiling thousands of small programs, and on XLA:CPU about a
# quarter of that is its optimisation passes (LLVM's among them). Tests therefore compile with
# `jax_disable_most_optimizations`: the same operations and the same float semantics (XLA does
# no fast-math reassociation either way), with less time spent optimising code that runs for
# microseconds. JBALANCE_TEST_XLA_OPT=1 compiles as users do; the exact-numerics tests also run
# that way in tests/api/test_optimized_compile.py, and the subprocess tests (CLI, examples,
# notebooks) and `make demo` always do.
if os.environ.get("JBALANCE_TEST_XLA_OPT", "") not in ("1", "true"):
    jax.config.update("jax_disable_most_optimizations", True)

# The quick loop (`make test-fast`) keeps compiled programs across runs in a persistent
# cache: a warm re-run skips most of XLA's compile time. `make test` (CI) starts from an empty
# cache of its own each run, so that test files compiling the same program share it.
if os.environ.get("JBALANCE_JAX_CACHE"):
    jax.config.update("jax_compilation_cache_dir", os.environ["JBALANCE_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

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


def _release_freed_heap() -> None:
    # glibc keeps freed arenas mapped; hand them back so the next file starts small.
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to do
        pass


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs_after_each_module(request):
    """Drops JAX's compilation caches after each test file, so that the suite's memory is
    that of its largest file rather than the sum of all (set JBALANCE_MEMORY_LOG to see it)."""
    yield
    jax.clear_caches()
    import gc

    gc.collect()
    _release_freed_heap()
    log = os.environ.get("JBALANCE_MEMORY_LOG")
    if log:  # peak and current memory after each file: where the suite's peak comes from
        status = dict(line.split(":", 1) for line in
                      pathlib.Path("/proc/self/status").read_text().splitlines() if ":" in line)
        with open(log, "a") as f:
            f.write(f"{request.module.__name__} peak {status['VmHWM'].strip()} "
                    f"now {status['VmRSS'].strip()}\n")
