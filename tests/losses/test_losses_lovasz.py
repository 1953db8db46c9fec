"""Lovász-softmax (jbalance/_src/losses/lovasz.py) against a float64 transcription of the
authors' reference implementation, bermanmaxim/LovaszSoftmax ``pytorch/lovasz_losses.py``
(MIT licence, (c) Maxim Berman 2018), in tests/losses/reference_segmentation.py: classes
"all" / "present" / a list, per_image, ignore handling; plus gradients, jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_segmentation as ref

from jbalance import losses
from jbalance._src import checks

TOL = dict(rtol=2e-5, atol=2e-6)
N, H, W, C = 3, 6, 5, 4


def _data(seed, ignore=False):
    r = np.random.default_rng(seed)
    z = (2 * r.standard_normal((N, H, W, C))).astype(np.float32)
    y = r.integers(0, C, (N, H, W)).astype(np.int32)
    y[0][y[0] == 3] = 1  # class 3 absent from image 0
    if ignore:
        y[r.random((N, H, W)) < 0.25] = 255
    return z, y


@pytest.mark.parametrize("classes", ["present", "all", [1, 3], [0]])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_matches_authors_reference(classes, per_image, ignore):
    z, y = _data(0, ignore)
    got = losses.lovasz_softmax_loss(z, y, classes=classes, per_image=per_image,
                                     ignore_index=255 if ignore else None)
    want = ref.lovasz_softmax(z, y, classes=classes, per_image=per_image,
                              ignore=255 if ignore else None)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, **TOL)


def test_hand_value():
    # p = softmax([2, 0]) = (s, 1 - s), s = 0.8808; labels (0, 1, 1).
    # Class 0: fg (1, 0, 0), errors (1 - s, 1 - s, s); sorted: s (fg 0), then the tie
    # 1 - s (fg 1), 1 - s (fg 0). gts = 1, intersection (1, 0, 0), union (2, 2, 3),
    # Jaccard (1/2, 1, 1), lovasz_grad (1/2, 1/2, 0): loss s/2 + (1 - s)/2 = 1/2.
    # Class 1: fg (0, 1, 1), errors (1 - s, 1 - s, s); sorted: s (fg 1), 1 - s (fg 0),
    # 1 - s (fg 1). gts = 2, intersection (1, 1, 0), union (2, 3, 3), Jaccard
    # (1/2, 2/3, 1), grad (1/2, 1/6, 1/3): loss s/2 + (1 - s)/2 = 1/2. Mean 1/2.
    got = losses.lovasz_softmax_loss(jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]]),
                                     jnp.array([[0, 1, 1]]))
    np.testing.assert_allclose(got, 0.5, rtol=1e-6)
    # A perfect prediction loses nothing but its soft errors: logits +-50 give ~0.
    z = jnp.array([[[50.0, -50.0], [-50.0, 50.0], [-50.0, 50.0]]])
    np.testing.assert_allclose(losses.lovasz_softmax_loss(z, jnp.array([[0, 1, 1]])), 0.0,
                               atol=1e-6)


def test_gradient_matches_finite_differences_and_is_finite():
    z, y = _data(1, ignore=True)
    z64 = z.astype(np.float64)
    with jax.enable_x64(True):
        f = lambda z: losses.lovasz_softmax_loss(z, y, ignore_index=255)  # noqa: E731
        g = np.asarray(jax.grad(f)(jnp.asarray(z64)))
        r = np.random.default_rng(2)
        d = r.standard_normal(z.shape)
        eps = 1e-6
        fd = (ref.lovasz_softmax(z64 + eps * d, y, ignore=255)
              - ref.lovasz_softmax(z64 - eps * d, y, ignore=255)) / (2 * eps)
        np.testing.assert_allclose(np.sum(g * d), fd, rtol=1e-4)
    np.testing.assert_array_equal(g[y == 255], 0.0)
    big = jax.grad(lambda z: losses.lovasz_softmax_loss(z, y, ignore_index=255))(z * 60)
    assert np.isfinite(np.asarray(big)).all()


def test_all_ignored_image_and_nan_there():
    z, y = _data(3, ignore=True)
    y[1] = 255
    z[1, 0, 0, 0] = np.nan
    per = np.asarray(losses.lovasz_softmax_loss(z, y, per_image=True, ignore_index=255))
    assert per[1] == 0
    keep = [0, 2]
    np.testing.assert_allclose(per[keep], ref.lovasz_softmax(z[keep], y[keep], per_image=True,
                                                             ignore=255), **TOL)
    g = jax.grad(lambda z: jnp.sum(losses.lovasz_softmax_loss(z, y, per_image=True,
                                                              ignore_index=255)))(z)
    assert np.isfinite(np.asarray(g)).all() and (np.asarray(g)[1] == 0).all()
    # where= masks like ignore_index.
    yy = np.where(y == 255, 0, y).astype(np.int32)
    np.testing.assert_allclose(losses.lovasz_softmax_loss(z, yy, per_image=True, where=y != 255),
                               per, **TOL)
    everything = np.full_like(y, 255)
    assert losses.lovasz_softmax_loss(z, everything, ignore_index=255) == 0


def test_jit_vmap_dtypes():
    z, y = _data(4, ignore=True)
    want = losses.lovasz_softmax_loss(z, y, per_image=True, ignore_index=255)
    f = jax.jit(lambda z, y: losses.lovasz_softmax_loss(z, y, per_image=True, ignore_index=255))
    np.testing.assert_allclose(f(z, y), want, **TOL)
    one = jax.vmap(lambda z, y: losses.lovasz_softmax_loss(z[None], y[None],
                                                           ignore_index=255))(z, y)
    np.testing.assert_allclose(one, want, **TOL)
    out = losses.lovasz_softmax_loss(jnp.asarray(z, jnp.bfloat16), y, ignore_index=255)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(out), ref.lovasz_softmax(z, y, ignore=255), rtol=2e-2)


def test_errors():
    z, y = _data(5)
    with pytest.raises(ValueError, match="labels"):
        losses.lovasz_softmax_loss(z, np.where(y == 0, 9, y).astype(np.int32))
    with pytest.raises(TypeError, match="labels"):
        losses.lovasz_softmax_loss(z, np.eye(C, dtype=np.float32)[y])
    with pytest.raises(ValueError, match="classes"):
        losses.lovasz_softmax_loss(z, y, classes="some")
    with pytest.raises(ValueError, match="classes"):
        losses.lovasz_softmax_loss(z, y, classes=[0, 4])
    with pytest.raises(TypeError, match="classes"):
        losses.lovasz_softmax_loss(z, y, classes=[])
    bad = np.where(y == 0, 9, y).astype(np.int32)
    err, _ = jax.jit(checks.checked(losses.lovasz_softmax_loss))(z, bad)
    with pytest.raises(Exception, match="labels"):
        err.throw()
    assert np.isnan(float(jax.jit(losses.lovasz_softmax_loss)(z, bad)))
