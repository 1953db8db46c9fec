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

# The quick loop (`make test-fast`) keeps compiled programs across runs in a persistent
# cache: a warm re-run skips most of XLA's compile time. CI (`make test`) runs cold.
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
    that of its largest file rather than the sum of all (the suite stays under 3 GB)."""
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


# The quick loop (`make test-fast`, `-m "not slow"`) skips the heaviest compiles as well as
# the tests marked `slow` in their files (subprocesses, notebooks, multi-host, real-label LP
# checks). Each entry below is covered in the quick loop by a lighter test of the same
# function; `make test` (CI) runs everything. Measured with `pytest --durations=0`.
_HEAVY = (
    "test_augment.py::test_jit_equals_eager_and_same_key_same_output",
    "test_augment.py::test_vmap_of_one_example_functions_equals_batch",
    "test_augment.py::test_mosaic_boxes_matches_reference",
    "test_augment.py::test_mixup_batch_lambdas_distinct_per_example_and_shared_in_batch_mode",
    "test_augment.py::test_cutmix_batch_window_path_and_donation_equal_the_one_example_function",
    "test_augment.py::test_box_format_round_trips_through_mosaic_and_mixup",
    "test_augment.py::test_cutmix_label_weight_is_exact_pasted_fraction",
    "test_augment.py::test_traced_alpha_and_eval_shape",
    "test_augment.py::test_batch_of_one_mixes_with_itself",
    "test_augment.py::test_box_drawn_in_source_is_found_at_its_new_coordinates",
    "test_augment.py::test_label_rows_sum_to_one",
    "test_augment.py::test_mosaic_tiles_are_source_crops",
    "test_augment.py::test_mixup_boxes_matches_reference",
    "test_augment.py::test_compiles_once_per_shape",
    "test_augment.py::test_mixup_lambda_is_beta_distributed",
    "test_augment.py::test_in_place_equals_the_default_with_and_without_donation",
    "test_sharding.py::test_local_partners_are_per_shard_and_move_no_images",
    "test_sharding.py::test_global_partners_equal_one_device",
    "test_sharding.py::test_local_partner_weights_are_split_with_the_batch",
    "test_shapes.py::test_augment_and_boxes_annotations_hold",
    "test_losses.py::test_check_grads_order_two",
    "test_losses.py::test_softmax_focal_factor_precise_near_certainty",
    "test_losses.py::test_softmax_integer_equals_one_hot",
    "test_losses_longtail.py::test_jit_vmap_grad",
    "test_losses_longtail.py::test_extreme_logits_finite",
    "test_losses_longtail.py::test_asymmetric_paths_agree_and_label_gradients",
    "test_examples.py::test_smoke_every_method",
    "test_resample_core.py::test_class_ids_equal_one_hot_counts",
    "test_resample_core.py::test_jit_of_solve_with_traced_counts",
    "test_resample.py::test_input_formats_agree",
    "test_resample.py::test_smooth_objectives_with_optax",
    "test_metrics.py::test_vmap_equals_loop",
    "test_doctests.py::test_docstring_example[jbalance.augment.",
    "test_doctests.py::test_docstring_example[jbalance.sharding.",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(h in item.nodeid for h in _HEAVY):
            item.add_marker(pytest.mark.slow)
