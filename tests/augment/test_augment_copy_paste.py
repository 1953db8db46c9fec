"""Copy-Paste (jbalance._src.augment.copy_paste) against a NumPy reference and by construction.

The reference (`np_copy_paste`) is written from Ghiasi et al.'s description and the
documented contract: it takes the paste draws (one uniform per donor slot, from the
example's key) and pastes with NumPy loops over instances. By construction: images whose
pixel values encode the instance id and class must agree with the returned id maps,
``classes[ids - 1]`` (0 -> background) is the semantic map the pixels imply, pasted pixels
equal the partner's, pasted ids are ``M+1..2M``, occlusion and ``min_area``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import J, call, derive, rng_of, weights_for

from jbalance import augment, boxes, checks

H, W, M = 16, 14, 4


def instance_data(key, b, m=M, h=H, w=W, p_valid=0.8):
    """Rectangular instances drawn in slot order (later ones on top): ``(ids, classes,
    valid)``; invalid slots have no pixels."""
    rng = rng_of(key)
    ids = np.zeros((b, h, w), np.int32)
    valid = rng.random((b, m)) < p_valid
    for i in range(b):
        for k in range(m):
            if valid[i, k]:
                y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
                dy, dx = rng.integers(1, h // 2), rng.integers(1, w // 2)
                ids[i, y:y + dy, x:x + dx] = k + 1
    classes = rng.integers(1, 9, (b, m)).astype(np.int32)
    return jnp.asarray(ids), jnp.asarray(classes), jnp.asarray(valid)


def encode(ids, classes):
    """Images whose pixels carry (example-unique instance code, class): channel 0 is
    ``1000 * example + id``, channel 1 the class (0 for background)."""
    ids, classes = np.asarray(ids), np.asarray(classes)
    b = ids.shape[0]
    code = 1000 * np.arange(b)[:, None, None] + ids
    cls = np.where(ids > 0, np.take_along_axis(classes, np.maximum(ids - 1, 0).reshape(b, -1),
                                               1).reshape(ids.shape), 0)
    return jnp.asarray(np.stack([code, cls], -1).astype(np.float32))


def paste_uniforms(key, m):
    return np.asarray(jax.random.uniform(key, (m,), jnp.float32))


def np_copy_paste(x, ids, classes, valid, px, pids, pclasses, pvalid, u, prob, min_area):
    """One example, from the contract, with NumPy loops over the slots."""
    m = classes.shape[0]
    out_x, out_ids = x.copy(), ids.copy()
    keep = np.zeros(m, bool)
    for k in range(m):
        area = int((pids == k + 1).sum())
        keep[k] = pvalid[k] and u[k] < prob[k] and area >= min_area
        if keep[k]:
            sel = pids == k + 1
            out_x[sel] = px[sel]
            out_ids[sel] = m + k + 1
    own = np.array([valid[k] and (out_ids == k + 1).sum() >= min_area for k in range(m)])
    new_valid = np.concatenate([own, keep])
    for k in range(2 * m):
        if not new_valid[k]:
            out_ids[out_ids == k + 1] = 0
    return out_x, out_ids, np.concatenate([classes, pclasses]), new_valid


def expected(key, x, ids, classes, valid, *, paste_prob, min_area=1, partner_weights=None,
             instance_weights=None):
    b = x.shape[0]
    keys, partners = derive(key, b, partner_weights=partner_weights)
    x, ids, classes, valid = (np.asarray(a) for a in (x, ids, classes, valid))
    outs = []
    for i in range(b):
        p = partners[i, 0]
        w = np.ones(M) if instance_weights is None else np.asarray(instance_weights)[p]
        prob = np.clip(np.float32(paste_prob) * w.astype(np.float32), 0, 1)
        u = paste_uniforms(keys[i], M)
        outs.append(np_copy_paste(x[i], ids[i], classes[i], valid[i], x[p], ids[p],
                                  classes[p], valid[p], u, prob, min_area))
    return [np.stack(o) for o in zip(*outs)], partners[:, 0]


@pytest.mark.parametrize("paste_prob,min_area,weighted,inst_weighted,how", [
    (0.5, 1, False, False, "concrete"),
    (1.0, 6, True, False, "traced"),
    (0.6, 3, False, True, "traced"),
])
def test_copy_paste_matches_reference_and_construction(getkey, paste_prob, min_area, weighted,
                                                       inst_weighted, how):
    b = 6
    ids, classes, valid = instance_data(getkey(), b)
    x = encode(ids, classes)
    key = getkey()
    pw = weights_for(b) if weighted else None
    iw = (rng_of(getkey()).uniform(0, 3, (b, M)).astype(np.float32) if inst_weighted
          else None)
    got = call(augment.copy_paste, key, x, ids, classes, valid, how=how,
               paste_prob=paste_prob, min_area=min_area, partner_weights=pw,
               instance_weights=iw)
    assert isinstance(got, augment.Pasted)
    assert got.instance_ids.shape == (b, H, W) and got.classes.shape == (b, 2 * M)
    assert got.valid.shape == (b, 2 * M) and got.instance_ids.dtype == ids.dtype
    (wx, wids, wcls, wvalid), p = expected(key, x, ids, classes, valid, paste_prob=paste_prob,
                                           min_area=min_area, partner_weights=pw,
                                           instance_weights=iw)
    np.testing.assert_array_equal(np.asarray(got.images), wx)
    np.testing.assert_array_equal(np.asarray(got.instance_ids), wids)
    np.testing.assert_array_equal(np.asarray(got.classes), wcls)
    np.testing.assert_array_equal(np.asarray(got.valid), wvalid)
    gids, gx = np.asarray(got.instance_ids), np.asarray(got.images)
    gcls, gval = np.asarray(got.classes), np.asarray(got.valid)
    pasted_any = False
    for i in range(b):
        # Every nonzero id names a valid row; classes[ids - 1] is the semantic map the
        # pixels carry (0 -> background only where the pixel's instance is gone).
        nz = gids[i] > 0
        assert gval[i][gids[i][nz] - 1].all()
        sem = np.where(nz, gcls[i][np.maximum(gids[i] - 1, 0)], 0)
        np.testing.assert_array_equal(sem[nz], gx[i, ..., 1][nz].astype(np.int64))
        # Pasted ids M+1..2M carry exactly the partner's pixels of that instance.
        pasted = gids[i] > M
        pasted_any |= bool(pasted.any())
        code = gx[i, ..., 0].astype(np.int64)
        np.testing.assert_array_equal(code[pasted], 1000 * p[i] + gids[i][pasted] - M)
        np.testing.assert_array_equal(gx[i][pasted], np.asarray(x)[p[i]][pasted])
        # Own pixels are the example's own, with their own id.
        own = nz & ~pasted
        np.testing.assert_array_equal(code[own], 1000 * i + gids[i][own])
        # Areas of valid instances reach min_area.
        for k in np.flatnonzero(gval[i]):
            assert (gids[i] == k + 1).sum() >= min_area
    assert pasted_any


def test_occlusion_and_min_area_hand_worked():
    # Own instance 1 (3x3 = 9 px) is covered by the donor's instance 1 except one column
    # (3 px left): valid with min_area 3, invalid (pixels relabelled 0) with min_area 4.
    ids = np.zeros((6, 6), np.int32)
    ids[1:4, 1:4] = 1
    pids = np.zeros((6, 6), np.int32)
    pids[1:4, 2:5] = 1
    c, v = jnp.array([2, 0]), jnp.array([True, False])
    pc = jnp.array([5, 0])
    x, px = jnp.zeros((6, 6, 1)), jnp.ones((6, 6, 1))
    for min_area, own_valid in ((3, True), (4, False)):
        out = augment.copy_paste_one(jax.random.key(0), x, jnp.asarray(ids), c, v, px,
                                     jnp.asarray(pids), pc, v, paste_prob=1.0,
                                     min_area=min_area)
        want = np.zeros((6, 6), np.int32)
        want[1:4, 1] = 1 if own_valid else 0
        want[1:4, 2:5] = 3  # M + 1
        np.testing.assert_array_equal(np.asarray(out.instance_ids), want)
        assert out.valid.tolist() == [own_valid, False, True, False]
        assert out.classes.tolist() == [2, 0, 5, 0]
        np.testing.assert_array_equal(np.asarray(out.images[..., 0]), (pids > 0) * 1.0)
    # paste_prob 0 pastes nothing; weights 0 too.
    out = augment.copy_paste_one(jax.random.key(0), x, jnp.asarray(ids), c, v, px,
                                 jnp.asarray(pids), pc, v, paste_prob=0.0)
    np.testing.assert_array_equal(np.asarray(out.instance_ids), ids)
    out = augment.copy_paste_one(jax.random.key(0), x, jnp.asarray(ids), c, v, px,
                                 jnp.asarray(pids), pc, v, paste_prob=1.0,
                                 partner_instance_weights=jnp.zeros(2))
    np.testing.assert_array_equal(np.asarray(out.instance_ids), ids)


def test_instance_weights_prefer_rare_instances(getkey):
    # Weight 0 for slot 0 (never pasted), 2 for slot 1 (prob 0.5 * 2 = 1: always pasted
    # when the donor's slot has pixels; instances drawn later may cover it whole).
    b = 8
    ids, classes, _ = instance_data(getkey(), b, p_valid=1.0)
    valid = jnp.ones((b, M), bool)
    iw = jnp.tile(jnp.array([0.0, 2.0, 1.0, 1.0]), (b, 1))
    key = getkey()
    out = J(augment.copy_paste)(key, encode(ids, classes), ids, classes, valid,
                                instance_weights=iw, paste_prob=0.5)
    gval = np.asarray(out.valid)
    assert not gval[:, M].any()
    _, partners = derive(key, b)
    donor_area = (np.asarray(ids)[partners[:, 0]] == 2).sum((1, 2))
    np.testing.assert_array_equal(gval[:, M + 1], donor_area > 0)
    assert gval[:, M + 1].any()


@pytest.mark.slow
def test_vmap_of_one_equals_batch_and_jit_equals_eager(getkey):
    b = 4
    ids, classes, valid = instance_data(getkey(), b)
    x = encode(ids, classes)
    iw = jnp.asarray(rng_of(getkey()).uniform(0, 2, (b, M)).astype(np.float32))
    key = getkey()
    keys, partners = derive(key, b)
    p = partners[:, 0]
    batch = augment.copy_paste(key, x, ids, classes, valid, instance_weights=iw)
    one = jax.vmap(lambda *a: augment.copy_paste_one(*a[:9], partner_instance_weights=a[9]))(
            keys, x, ids, classes, valid, x[p], ids[p], classes[p], valid[p], iw[p])
    jitted = jax.jit(augment.copy_paste)(key, x, ids, classes, valid, instance_weights=iw)
    for a, o, j in zip(batch, one, jitted):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(o))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(j))


def test_determinism_and_key_sensitivity(getkey):
    b = 6
    ids, classes, valid = instance_data(getkey(), b)
    x = encode(ids, classes)
    f = J(augment.copy_paste)
    a, a2, c = (f(jax.random.key(s), x, ids, classes, valid) for s in (3, 3, 4))
    for u, v in zip(a, a2):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert not np.array_equal(np.asarray(a.instance_ids), np.asarray(c.instance_ids))


def test_output_feeds_from_instance_ids(getkey):
    b = 3
    ids, classes, valid = instance_data(getkey(), b)
    out = J(augment.copy_paste)(getkey(), encode(ids, classes), ids, classes, valid,
                                paste_prob=1.0)
    bx, bv = boxes.from_instance_ids(out.instance_ids, 2 * M)
    np.testing.assert_array_equal(np.asarray(bv), np.asarray(out.valid))
    gids = np.asarray(out.instance_ids)
    for i, k in zip(*np.nonzero(np.asarray(bv))):
        ys, xs = np.nonzero(gids[i] == k + 1)
        assert np.asarray(bx[i, k]).tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_bad_inputs_name_the_argument(getkey):
    b = 4
    ids, classes, valid = instance_data(getkey(), b)
    x = encode(ids, classes)
    key = getkey()
    cp = augment.copy_paste
    with pytest.raises(ValueError, match=r"`instance_ids` holds id 5 .* \[0, 4\]"):
        cp(key, x, ids.at[0, 0, 0].set(M + 1), classes, valid)
    with pytest.raises(ValueError, match="`instance_ids` holds id -1"):
        cp(key, x, ids.at[0, 0, 0].set(-1), classes, valid)
    with pytest.raises(ValueError, match="`instance_ids` must have the leading shape"):
        cp(key, x, ids[:, :-1], classes, valid)
    with pytest.raises(TypeError, match="`instance_ids` must hold integer"):
        cp(key, x, ids.astype(jnp.float32), classes, valid)
    with pytest.raises(TypeError, match="`classes` must"):
        cp(key, x, ids, classes.astype(jnp.float32), valid)
    with pytest.raises(TypeError, match="`valid` must be boolean"):
        cp(key, x, ids, classes, valid.astype(jnp.int32))
    with pytest.raises(ValueError, match="`valid` must have the shape of `classes`"):
        cp(key, x, ids, classes, valid[:, :2])
    with pytest.raises(ValueError, match="`instance_weights` must be finite"):
        cp(key, x, ids, classes, valid, instance_weights=jnp.full((b, M), jnp.inf))
    with pytest.raises(ValueError, match="`instance_weights` must be non-negative"):
        cp(key, x, ids, classes, valid, instance_weights=-jnp.ones((b, M)))
    with pytest.raises(ValueError, match="`instance_weights`"):
        cp(key, x, ids, classes, valid, instance_weights=jnp.ones((b, M + 1)))
    with pytest.raises(ValueError, match="`partner_weights`"):
        cp(key, x, ids, classes, valid, partner_weights=jnp.array([1.0, jnp.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="`paste_prob`"):
        cp(key, x, ids, classes, valid, paste_prob=1.5)
    with pytest.raises(ValueError, match="`min_area`"):
        cp(key, x, ids, classes, valid, min_area=0)
    with pytest.raises(TypeError, match="cannot hold the pasted ids"):
        cp(key, x, ids.astype(jnp.int8), jnp.zeros((b, 100), jnp.int32),
           jnp.zeros((b, 100), bool))
    f = jax.jit(checks.checked(lambda k, a, i, c, v: cp(k, a, i, c, v)))
    err, _ = f(key, x, ids.at[1, 1, 1].set(9), classes, valid)
    assert err.get() is not None and "`instance_ids` holds ids outside [0, 4]" in err.get()
