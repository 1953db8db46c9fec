"""`boxes.from_instance_ids` against a NumPy loop over instances and a hand-worked case.

The reference is written from the documented convention: pixel ``(y, x)`` covers
``[x, x + 1) x [y, y + 1)``, so a box is ``(min x, min y, max x + 1, max y + 1)``;
torchvision's ``masks_to_boxes`` gives the inclusive ``max x, max y`` (ours minus 1).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jbalance import boxes


def np_boxes(ids, n):
    ids = np.asarray(ids)
    lead = ids.shape[:-2]
    flat = ids.reshape(-1, *ids.shape[-2:])
    out = np.zeros((flat.shape[0], n, 4), np.float32)
    valid = np.zeros((flat.shape[0], n), bool)
    for i, im in enumerate(flat):
        for k in range(n):
            ys, xs = np.nonzero(im == k + 1)
            if ys.size:
                out[i, k] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                valid[i, k] = True
    return out.reshape(*lead, n, 4), valid.reshape(*lead, n)


def test_hand_worked():
    ids = np.zeros((5, 7), np.int32)
    ids[1:3, 2:6] = 1  # rows 1-2, cols 2-5
    ids[4, 0] = 3      # one pixel
    ids[0, 6] = 9      # beyond num_instances: no box
    b, v = boxes.from_instance_ids(jnp.asarray(ids), 3)
    assert b.dtype == jnp.float32 and v.dtype == jnp.bool_
    assert b.tolist() == [[2, 1, 6, 3], [0, 0, 0, 0], [0, 4, 1, 5]]
    assert v.tolist() == [True, False, True]
    # torchvision's inclusive convention is ours minus 1 in x2, y2 (written out, not run).
    inclusive = np.asarray(b) - np.array([0, 0, 1, 1]) * np.asarray(v)[:, None]
    assert inclusive[0].tolist() == [2, 1, 5, 2]


@pytest.mark.parametrize("lead", [(), (3,), (2, 2)])
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.int16])
def test_matches_reference(lead, dtype):
    rng = np.random.default_rng(len(lead))
    ids = rng.integers(0, 6, (*lead, 9, 11))
    ids = np.where(rng.random(ids.shape) < 0.6, 0, ids).astype(np.dtype(dtype))
    want_b, want_v = np_boxes(ids, 5)
    got = jax.jit(boxes.from_instance_ids, static_argnums=1)(jnp.asarray(ids), 5)
    assert isinstance(got, boxes.InstanceBoxes)
    np.testing.assert_array_equal(np.asarray(got.boxes), want_b)
    np.testing.assert_array_equal(np.asarray(got.valid), want_v)
    # Boxes are inside the image, as `clip_boxes` sees pixel boxes.
    clipped = boxes.clip_boxes(got.boxes, got.valid, image_size=(9, 11))
    np.testing.assert_array_equal(np.asarray(clipped.boxes), want_b)
    np.testing.assert_array_equal(np.asarray(clipped.valid), want_v)


def test_vmap_equals_batch():
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 4, (4, 6, 6)), jnp.int32)
    one = jax.vmap(lambda i: boxes.from_instance_ids(i, 3))(ids)
    batch = boxes.from_instance_ids(ids, 3)
    for a, b in zip(one, batch):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_inputs():
    with pytest.raises(TypeError, match="`instance_ids`"):
        boxes.from_instance_ids(jnp.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="`instance_ids`"):
        boxes.from_instance_ids(jnp.zeros((4,), jnp.int32), 2)
    with pytest.raises(ValueError, match="`num_instances`"):
        boxes.from_instance_ids(jnp.zeros((4, 4), jnp.int32), 0)
