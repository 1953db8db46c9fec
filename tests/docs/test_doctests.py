"""Every example in a public docstring runs and prints what it says (doctest)."""

import doctest
import importlib
import inspect

import jax
import pytest

import jbalance

_MODULES = [*jbalance._SUBMODULES, "report"]
# Examples that compile whole augmentation programs (copy kernels) or 8-device programs take
# seconds each: `make test-fast` skips them; tests/augment and tests/sharding run the same
# functions in the quick loop.
_HEAVY_MODULES = ("jbalance.augment.", "jbalance.sharding.")


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    seen = set()
    for name in _MODULES:
        module = importlib.import_module(f"jbalance.{name}" if name != "report"
                                         else "jbalance._src.report")
        objects = [module] + [getattr(module, a) for a in getattr(module, "__all__", [])]
        for obj in objects:
            if not (inspect.ismodule(obj) or inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            for test in finder.find(obj, f"jbalance.{name}.{getattr(obj, '__name__', '')}"):
                key = (test.filename, test.lineno, test.name)
                if test.examples and key not in seen:
                    seen.add(key)
                    heavy = test.name.startswith(_HEAVY_MODULES)
                    yield pytest.param(test, id=test.name,
                                       marks=[pytest.mark.slow] if heavy else [])


DOCTESTS = list(_doctests())


def test_there_are_doctests():
    assert len(DOCTESTS) > 20


@pytest.mark.parametrize("test", DOCTESTS)
def test_docstring_example(test):
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    test.globs = dict(test.globs)
    # Examples are user code: JAX's default promotion rules, not the suite's strict ones.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        result = runner.run(test, out=lambda s: None)
    if result.failed:
        out = []
        runner = doctest.DocTestRunner(
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            runner.run(test, out=out.append)
        pytest.fail("".join(out), pytrace=False)
