"""The README's quick start runs as written (it is the first thing a user copies)."""

import pathlib
import re

import jax

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_quick_start_runs():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    # User code: JAX's default promotion rules, not the suite's strict ones.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        exec(compile(code, str(README), "exec"), namespace)
    assert len(namespace["order"]) == int(namespace["solution"].repeats.sum())
    assert namespace["batch"].shape == (8,)
