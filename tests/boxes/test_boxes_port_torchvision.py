"""torchvision's own box-conversion cases, run against `boxes.convert`.

Ported from torchvision, ``test/test_ops.py::TestBox`` (BSD-3-Clause, Copyright the
PyTorch/torchvision contributors): the boxes and expected conversions of
``test_bbox_same``, ``test_bbox_xyxy_xywh``, ``test_bbox_xyxy_cxcywh``,
``test_bbox_xywh_cxcywh`` and ``test_bbox_invalid`` are written here as our own cases. Exact
equality, as torchvision asserts, since `convert` uses the same formulas. No torchvision code
is copied.
"""

import jax
import numpy as np
import pytest

from jbalance import boxes

XYXY = np.array([[0, 0, 100, 100], [0, 0, 0, 0], [10, 15, 30, 35], [23, 35, 93, 95]],
                np.float32)
XYWH = np.array([[0, 0, 100, 100], [0, 0, 0, 0], [10, 15, 20, 20], [23, 35, 70, 60]],
                np.float32)
CXCYWH = np.array([[50, 50, 100, 100], [0, 0, 0, 0], [20, 25, 20, 20], [58, 65, 70, 60]],
                  np.float32)


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_same_format_is_identity(fmt):
    np.testing.assert_array_equal(boxes.convert(XYXY, src=fmt, dst=fmt), XYXY)


@pytest.mark.parametrize("a,fa,b,fb", [
    (XYXY, "xyxy", XYWH, "xywh"),
    (XYXY, "xyxy", CXCYWH, "cxcywh"),
    (XYWH, "xywh", CXCYWH, "cxcywh"),
])
def test_conversions_and_their_reverse(a, fa, b, fb):
    np.testing.assert_array_equal(boxes.convert(a, src=fa, dst=fb), b)
    np.testing.assert_array_equal(boxes.convert(b, src=fb, dst=fa), a)
    f = jax.jit(lambda x: boxes.convert(x, src=fa, dst=fb))
    np.testing.assert_allclose(f(a), b, rtol=0, atol=1e-3)  # torchvision's jit tolerance


@pytest.mark.parametrize("src", ["xwyh", "cxwyh"])
@pytest.mark.parametrize("dst", ["xwcx", "xhwcy"])
def test_invalid_formats_raise(src, dst):
    with pytest.raises(ValueError, match="box_format|src|dst|must be one of"):
        boxes.convert(XYWH, src=src, dst=dst)
