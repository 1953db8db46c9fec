"""Every loss under jax transforms (jit, vmap, grad, Hessians), dtypes (float16, bfloat16,
float64), extra batch axes, retracing and sharding; extreme logits stay finite. The
registry-wide matrix over every public function is tests/transforms/test_transforms.py;
these tests pin the losses' own paths (class ids and probabilities, smoothing, traced gamma).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_losses as ref
from jax.test_util import check_grads
from losses_data import (
    CE_AND_FOCAL,
    F64,
    LONG_TAIL_AND_ASL,
    SOFTMAX,
    call,
    counts_kw,
    data,
    labels_for,
    long_tail_data,
)

from jbalance import losses


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_jit_equals_eager_and_vmap_equals_loop(name):
    # Inner shape (5, 4) as elsewhere: eager op-by-op compilations are shared with other tests.
    z, ids, soft, binary, unit, w = data(16, shape=(3, 5, 4))
    labels = labels_for(name, ids, binary)
    kw = dict(class_weights=w)
    if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
        kw["gamma"] = 1.5
    fn = functools.partial(getattr(losses, name), **kw)
    eager = fn(z, labels)
    np.testing.assert_allclose(jax.jit(fn)(z, labels), eager, rtol=1e-6, atol=1e-7)
    batched = jax.vmap(fn)(z, labels)
    loop = jnp.stack([fn(z[i], labels[i]) for i in range(z.shape[0])])
    np.testing.assert_allclose(batched, loop, rtol=1e-6, atol=1e-7)
    # Extra batch axes: the same as flattening them.
    flat = fn(z.reshape(15, 4), labels.reshape((15,) + labels.shape[2:]))
    np.testing.assert_allclose(eager.reshape(flat.shape), flat, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["softmax_focal_loss", "sigmoid_focal_loss"])
def test_vmap_over_gamma(name):
    z, ids, soft, binary, *_ = data(17)
    labels = labels_for(name, ids, binary)
    gammas = jnp.array([0.0, 0.5, 2.0])
    got = jax.vmap(lambda g: call(name, z, labels, gamma=g))(gammas)
    for i, g in enumerate([0.0, 0.5, 2.0]):
        np.testing.assert_allclose(got[i], call(name, z, labels, gamma=g), rtol=1e-6, atol=1e-7)


# Second-order check_grads is the slowest test here (every transform compiles), so it runs
# once per code path: the softmax losses share one implementation (the cross-entropy is the
# focal loss without its factor) with a gather path for class ids without smoothing and a full
# path otherwise; binary-label sigmoid focal derivatives (and Hessians) are compared with
# autodiff of the textbook formula in test_sigmoid_focal_custom_jvp_gradients.
@pytest.mark.slow
@pytest.mark.parametrize("name,soft,eps", [
    ("softmax_focal_loss", False, 0.0),
    ("softmax_focal_loss", True, 0.1),
    ("weighted_sigmoid_cross_entropy", True, None),
    ("sigmoid_focal_loss", True, None),
])
def test_check_grads_order_two(name, soft, eps):
    with jax.enable_x64(True):
        z, ids, probs, binary, unit, w = data(18, shape=(3, 4), scale=2.0, dtype=np.float64)
        labels = (probs if soft else ids) if name in SOFTMAX else (unit if soft else binary)
        kw = dict(class_weights=w)
        if name in ("softmax_focal_loss", "sigmoid_focal_loss"):
            kw["gamma"] = 0.7
        if eps is not None:
            kw["label_smoothing"] = eps
        # jit: op-by-op dispatch of second-order transforms is slow on a shared CPU.
        check_grads(jax.jit(lambda x: call(name, x, labels, **kw)), (z,), order=2,
                    modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CE_AND_FOCAL)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_logits_finite_with_hessians(name, dtype):
    focal = name in ("softmax_focal_loss", "sigmoid_focal_loss")
    z = jnp.array([[1e4, -1e4, 0.0, 50.0], [-1e4, 1e4, 1e4, -100.0],
                   [3e3, -3e3, 30.0, -30.0]], dtype)
    if name in SOFTMAX:
        label_sets = [jnp.array([0, 0, 3]), jnp.array([[0.2, 0.0, 0.8, 0.0]] * 3, dtype)]
    else:
        label_sets = [jnp.array([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], dtype),
                      jnp.array([[0.3, 1.0, 0.0, 0.9]] * 3, dtype)]
    cw = jnp.array([1.0, 2.0, 0.5, 1.0], dtype)

    def loss(x, labels, gamma):
        kw = dict(gamma=gamma) if focal else {}
        return call(name, x, labels, class_weights=cw, **kw)

    def total(x, labels, gamma):
        return jnp.sum(loss(x, labels, gamma).astype(jnp.float32))

    # gamma is traced, so one compilation serves every gamma (0 and < 1 included).
    run = jax.jit(lambda x, labels, gamma: (loss(x, labels, gamma),
                                            jax.grad(total)(x, labels, gamma),
                                            jax.hessian(total)(x, labels, gamma)))
    for labels in label_sets:
        for gamma in (0.0, 0.5, 2.0):
            for out in run(z, labels, jnp.asarray(gamma, dtype)):
                assert np.isfinite(np.asarray(out, np.float32)).all(), (labels, gamma)


@pytest.mark.parametrize("name", CE_AND_FOCAL)
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_dtypes(name, dtype):
    z, ids, soft, binary, unit, w = data(20)
    labels = labels_for(name, ids, binary)
    zz = jnp.asarray(z).astype(dtype)
    out = call(name, zz, labels, class_weights=w)
    assert out.dtype == dtype
    want = call(name, zz.astype(jnp.float32), labels, class_weights=w)
    tol = 1e-2 if dtype != jnp.float32 else 1e-6  # half-precision output rounding
    np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=tol, atol=tol)
    g = jax.grad(lambda x: jnp.sum(call(name, x, labels, class_weights=w)))(zz)
    assert g.dtype == dtype


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_float64(name):
    with jax.enable_x64(True):
        z, ids, soft, binary, unit, w = data(21, dtype=np.float64)
        labels = labels_for(name, ids, binary)
        out = call(name, jnp.asarray(z), labels, class_weights=w)
        assert out.dtype == jnp.float64
        refs = {"weighted_softmax_cross_entropy": lambda: ref.softmax_cross_entropy(z, ids, w),
                "softmax_focal_loss": lambda: ref.softmax_focal(z, ids, 2.0, w),
                "weighted_sigmoid_cross_entropy": lambda: ref.sigmoid_cross_entropy(z, binary, w),
                "sigmoid_focal_loss": lambda: ref.sigmoid_focal(z, binary, 2.0, 0.25, w)}
        np.testing.assert_allclose(out, refs[name](), **F64)


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_eval_shape_extra_batch_axes(name):
    z = jax.ShapeDtypeStruct((2, 3, 4, 7), jnp.bfloat16)
    if name in SOFTMAX:
        labels = jax.ShapeDtypeStruct((2, 3, 4), jnp.int32)
        want = (2, 3, 4)
    else:
        labels = jax.ShapeDtypeStruct((2, 3, 4, 7), jnp.float32)
        want = (2, 3, 4, 7)
    out = jax.eval_shape(getattr(losses, name), z, labels)
    assert out.shape == want and out.dtype == jnp.bfloat16


@pytest.mark.parametrize("name", CE_AND_FOCAL)
def test_traces_once(name):
    z, ids, soft, binary, unit, w = data(22)
    labels = labels_for(name, ids, binary)
    traces = []

    @jax.jit
    def f(x, y, cw):
        traces.append(1)
        return call(name, x, y, class_weights=cw)

    f(z, labels, w)
    f(z + 1, labels, w * 2)
    assert len(traces) == 1


def test_sharded_batch_matches_unsharded():
    mesh = jax.make_mesh((8,), ("batch",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    z, _, _, binary, _, w = data(23, shape=(16, 6))
    zs, ys = jax.device_put(z, sharding), jax.device_put(binary, sharding)
    fn = jax.jit(lambda a, b: losses.sigmoid_focal_loss(a, b, gamma=0.5, class_weights=w))
    np.testing.assert_allclose(fn(zs, ys), losses.sigmoid_focal_loss(z, binary, gamma=0.5,
                                                                     class_weights=w), rtol=1e-6)
    ids = np.arange(16) % 6
    ce = jax.jit(lambda a, b: losses.softmax_focal_loss(a, b, class_weights=w))
    np.testing.assert_allclose(ce(zs, jax.device_put(ids, sharding)),
                               losses.softmax_focal_loss(z, ids, class_weights=w), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", LONG_TAIL_AND_ASL)
def test_long_tail_jit_vmap_and_central_difference_gradients(name):
    z, ids, _, binary, *_ = long_tail_data(13, shape=(3, 5, 6))
    labels = labels_for(name, ids, binary)
    fn = functools.partial(getattr(losses, name), **counts_kw(name))
    eager = fn(z, labels)
    np.testing.assert_allclose(jax.jit(fn)(z, labels), eager, rtol=1e-6, atol=1e-6)
    batched = jax.vmap(fn)(z, labels)
    loop = jnp.stack([fn(z[i], labels[i]) for i in range(3)])
    np.testing.assert_allclose(batched, loop, rtol=1e-6, atol=1e-6)
    # Gradients against central differences (float64). Seesaw's factors use the stopped-
    # gradient softmax (so its gradient is not that of its value; checked against torch).
    if name == "seesaw_loss":
        return
    with jax.enable_x64(True):
        z64 = jnp.asarray(z[0], jnp.float64)
        lab = labels[0]
        f = jax.jit(lambda x: jnp.sum(getattr(losses, name)(x, lab, **counts_kw(name))))
        g = jax.grad(f)(z64)
        d = np.random.default_rng(0).standard_normal(z64.shape)
        h = 1e-6
        num = (f(z64 + h * d) - f(z64 - h * d)) / (2 * h)
        np.testing.assert_allclose(jnp.sum(g * d), num, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name", LONG_TAIL_AND_ASL)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_long_tail_extreme_logits_finite_and_bf16_follows_f32(name, dtype):
    z = jnp.array([[1e4, -1e4, 0.0, 50.0, -3e3, 3e3], [-1e4, 1e4, 1e4, -100.0, 0.0, 1.0],
                   [3e3, -3e3, 30.0, -30.0, 1e4, -1e4]], dtype)
    ids = jnp.array([0, 0, 5], jnp.int32)
    binary = jnp.array([[1, 0, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1]], dtype)
    labels = labels_for(name, ids, binary)
    kw = counts_kw(name)
    out = getattr(losses, name)(z, labels, **kw)
    assert out.dtype == dtype
    g = jax.grad(lambda x: jnp.sum(getattr(losses, name)(x, labels, **kw).astype(jnp.float32)))(z)
    assert np.isfinite(np.asarray(out, np.float32)).all()
    assert np.isfinite(np.asarray(g, np.float32)).all()
    # bf16 values follow float32 to bf16 rounding.
    if dtype == jnp.bfloat16:
        want = getattr(losses, name)(z.astype(jnp.float32), labels, **kw)
        np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=1e-2, atol=1e-2)
