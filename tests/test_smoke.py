import jax

import jbalance


def test_eight_virtual_cpu_devices():
    # conftest.py asks XLA for 8 host devices so that sharding is tested on any machine.
    assert len(jax.devices("cpu")) == 8


def test_version():
    assert isinstance(jbalance.__version__, str)
