import jax

import jbalance


def test_eight_virtual_devices():
    assert len(jax.devices()) == 8


def test_version():
    assert isinstance(jbalance.__version__, str)
