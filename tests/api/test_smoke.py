import pathlib
import re
import tomllib

import jax

import jbalance


def test_eight_virtual_cpu_devices():
    # conftest.py asks XLA for 8 host devices so that sharding is tested on any machine.
    assert len(jax.devices("cpu")) == 8


def test_version_is_the_released_one():
    # The package states the version that pyproject.toml releases, in PEP 440's public form.
    pyproject = pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml"
    released = tomllib.loads(pyproject.read_text())["project"]["version"]
    assert jbalance.__version__ == released
    assert re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", released)
