"""API conventions of every public function (after dm_pix/_src/api_test.py).

* random functions take ``key`` first and never an ``rng``/``seed`` parameter;
* every parameter with a default is keyword-only (positional data, keyword options);
* every docstring documents ``Args:`` and ``Returns:``; losses also cite ``References:``.
"""

import importlib
import inspect

import pytest

MODULES = ("losses", "augment", "resample", "metrics", "io", "sharding", "boxes", "sampling",
           "checks")
# Host-side epoch samplers take the integer ``seed`` that grain, PyTorch and detectron2 use
# (the issue fixes these names); everything on the JAX side takes a ``key``.
SEED_ALLOWED = {("sampling", "epoch_indices"), ("resample", "plan")}


def _public_functions():
    for name in MODULES:
        module = importlib.import_module(f"jbalance.{name}")
        for attr in module.__all__:
            obj = getattr(module, attr)
            if inspect.isfunction(obj):
                yield pytest.param(name, attr, obj, id=f"{name}.{attr}")


PUBLIC = list(_public_functions())


def test_every_module_has_functions():
    found = {p.values[0] for p in PUBLIC}
    assert found == set(MODULES)


@pytest.mark.parametrize("module,name,fn", PUBLIC)
def test_key_first_and_no_rng(module, name, fn):
    params = list(inspect.signature(fn).parameters)
    for banned in ("rng", "seed", "prng", "rng_key"):
        if banned == "seed" and (module, name) in SEED_ALLOWED:
            continue
        assert banned not in params, f"{module}.{name} takes {banned!r}; call it `key`."
    if "key" in params:
        assert params[0] == "key", f"{module}.{name}: `key` must come first, got {params}."


@pytest.mark.parametrize("module,name,fn", PUBLIC)
def test_defaulted_parameters_are_keyword_only(module, name, fn):
    for p in inspect.signature(fn).parameters.values():
        if p.default is not inspect.Parameter.empty:
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, (
                f"{module}.{name}: parameter {p.name!r} has a default but is not keyword-only.")


@pytest.mark.parametrize("module,name,fn", PUBLIC)
def test_docstring_sections(module, name, fn):
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc, f"{module}.{name} lacks an Args: section."
    assert "Returns:" in doc, f"{module}.{name} lacks a Returns: section."
    if module == "losses":
        assert "References:" in doc, f"{module}.{name} lacks a References: section."


def test_import_jbalance_pulls_in_no_optional_dependency():
    import subprocess
    import sys

    code = ("import sys, jbalance; "
            "[getattr(jbalance, m) for m in jbalance._SUBMODULES]; jbalance.report; "
            "bad = sorted(m for m in ('scipy', 'sklearn', 'flax', 'matplotlib', 'torch', "
            "'pandas', 'grain', 'hypothesis', 'jaxtyping') if m in sys.modules); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("call", [
    "losses.class_weights(np.array([3, 1]), dtype=np.int32)",
    "losses.log_prior(np.array([3, 1]), dtype='int8')",
    "sampling.class_balanced_probs(np.array([0, 1]), num_classes=2, dtype=np.int32)",
    "sampling.progressive_probs(np.array([0, 1]), num_classes=2, progress=0.5, dtype=bool)",
    "resample.solve(np.array([[1, 0], [0, 1]]), num_steps=2, dtype=np.int64)",
])
def test_a_non_floating_dtype_argument_is_a_type_error_naming_dtype(call):
    import numpy as np

    from jbalance import losses, resample, sampling

    namespace = {"np": np, "losses": losses, "resample": resample, "sampling": sampling}
    with pytest.raises(TypeError, match="`dtype` must be a floating dtype"):
        eval(call, namespace)
