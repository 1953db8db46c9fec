"""Data parallelism on 8 virtual CPU devices: sharded results equal one-device results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jbalance import augment, losses, metrics, sharding

COLLECTIVES = ("all-gather", "all-to-all", "all-reduce", "collective-permute",
               "reduce-scatter")


@pytest.fixture(scope="module")
def mesh():
    return sharding.batch_mesh(devices=jax.devices("cpu")[:8])


def _batch(key, n=16, h=12, w=10, c=3, k=5):
    k1, k2 = jax.random.split(key)
    images = jax.random.uniform(k1, (n, h, w, c), jnp.float32)
    labels = jax.nn.one_hot(jax.random.randint(k2, (n,), 0, k), k, dtype=jnp.float32)
    return images, labels


def _boxes(n=16, m=3, h=12, w=10):
    rng = np.random.default_rng(0)
    x1 = rng.uniform(0, w / 2, (n, m))
    y1 = rng.uniform(0, h / 2, (n, m))
    boxes = np.stack([x1, y1, x1 + w / 3, y1 + h / 3], -1).astype(np.float32)
    classes = rng.integers(0, 4, (n, m)).astype(np.int32)
    valid = rng.uniform(size=(n, m)) < 0.8
    return jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(valid)


def test_shard_batch_places_batch_axis(mesh):
    x = jnp.arange(16.0 * 3).reshape(16, 3)
    xs = sharding.shard_batch(x, mesh)
    assert xs.sharding.spec == PartitionSpec("data")
    assert len(xs.addressable_shards) == 8
    np.testing.assert_array_equal(xs, x)


def test_shard_batch_rejects_uneven_batch(mesh):
    with pytest.raises(ValueError, match="cannot be split evenly"):
        sharding.shard_batch(jnp.zeros((10, 3)), mesh)


def test_data_parallel_rejects_unknown_mode(mesh):
    with pytest.raises(ValueError, match="partners"):
        sharding.data_parallel(augment.mixup, mesh, partners="nearby")


@pytest.mark.parametrize("loss_name", ["weighted_softmax_cross_entropy", "softmax_focal_loss"])
def test_softmax_losses_sharded_equal_single_device(mesh, getkey, loss_name):
    logits = jax.random.normal(getkey(), (32, 7), jnp.float32) * 3
    labels = jax.random.randint(getkey(), (32,), 0, 7)
    w = losses.class_weights(jnp.arange(1.0, 8.0) ** 2)
    fn = jax.jit(lambda z, y: getattr(losses, loss_name)(z, y, class_weights=w))
    expected = fn(logits, labels)
    got = fn(*sharding.shard_batch((logits, labels), mesh))
    assert got.sharding.spec == PartitionSpec("data")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_sigmoid_losses_and_grad_sharded_equal_single_device(mesh, getkey):
    logits = jax.random.normal(getkey(), (16, 6), jnp.float32) * 4
    labels = (jax.random.uniform(getkey(), (16, 6)) < 0.3).astype(jnp.float32)

    def mean_loss(z, y):
        return (losses.sigmoid_focal_loss(z, y, gamma=2.0)
                + losses.weighted_sigmoid_cross_entropy(z, y)).mean()

    f = jax.jit(jax.value_and_grad(mean_loss))
    v0, g0 = f(logits, labels)
    v1, g1 = f(*sharding.shard_batch((logits, labels), mesh))
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-8)


def test_confusion_matrix_sharded_equals_single_device(mesh, getkey):
    y = jax.random.randint(getkey(), (64,), 0, 5)
    p = jax.random.randint(getkey(), (64,), 0, 5)
    f = jax.jit(lambda a, b: metrics.confusion_matrix(a, b, num_classes=5))
    np.testing.assert_array_equal(f(*sharding.shard_batch((y, p), mesh)), f(y, p))


def _per_shard_reference(fn, key, arrays, n_shards, **options):
    """What local partners promise: fn on each shard with the key folded by shard index."""
    size = arrays[0].shape[0] // n_shards
    outs = [fn(jax.random.fold_in(key, i), *(a[i * size:(i + 1) * size] for a in arrays),
               **options) for i in range(n_shards)]
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)


# MixUp stays in the quick loop as data_parallel's light case; each other function compiles
# its copy kernels for 8 devices (tens of seconds on 2 cores).
@pytest.mark.parametrize("name", ["mixup", pytest.param("cutmix", marks=pytest.mark.slow),
                                  pytest.param("mosaic", marks=pytest.mark.slow)])
def test_local_partners_are_per_shard_and_move_no_images(mesh, getkey, name):
    fn = getattr(augment, name)
    images, labels = _batch(getkey())
    key = getkey()
    parallel = jax.jit(sharding.data_parallel(fn, mesh))
    sharded = sharding.shard_batch((images, labels), mesh)
    got = parallel(key, *sharded)
    want = _per_shard_reference(fn, key, (images, labels), 8)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
        assert g.sharding.spec == PartitionSpec("data")
    hlo = parallel.lower(key, *sharded).compile().as_text()
    assert not [c for c in COLLECTIVES if c in hlo], "local partners must not communicate"


@pytest.mark.slow
def test_local_partners_mosaic_boxes(mesh, getkey):
    images, _ = _batch(getkey())
    boxes, classes, valid = _boxes()
    key = getkey()
    parallel = jax.jit(sharding.data_parallel(augment.mosaic_boxes, mesh))
    got = parallel(key, *sharding.shard_batch((images, boxes, classes, valid), mesh))
    want = _per_shard_reference(augment.mosaic_boxes, key, (images, boxes, classes, valid), 8)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64),
                                   rtol=1e-6, atol=1e-5)


@pytest.mark.slow
def test_local_partner_weights_are_split_with_the_batch(mesh, getkey):
    images, labels = _batch(getkey())
    weights = jnp.where(jnp.arange(16) % 2 == 0, 1.0, 0.0)  # only even examples as partners
    key = getkey()
    parallel = jax.jit(sharding.data_parallel(augment.mixup, mesh))
    got = parallel(key, *sharding.shard_batch((images, labels), mesh),
                   partner_weights=sharding.shard_batch(weights, mesh))
    want = _per_shard_reference(augment.mixup, key, (images, labels), 8,
                                partner_weights=weights[:2])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_global_partners_equal_one_device(mesh, getkey, name):
    fn = getattr(augment, name)
    images, labels = _batch(getkey())
    key = getkey()
    parallel = jax.jit(sharding.data_parallel(fn, mesh, partners="global"))
    got = parallel(key, *sharding.shard_batch((images, labels), mesh))
    want = jax.jit(fn)(key, images, labels)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
        assert isinstance(g.sharding, NamedSharding) and g.sharding.spec == PartitionSpec("data")


@pytest.mark.slow  # three 8-device in-place programs plus their donated twins
@pytest.mark.parametrize("name,options", [("mixup", {"in_place": True}),
                                          ("cutmix", {"in_place": True}),
                                          ("cutmix", {"mode": "batch"})])
def test_in_place_loops_under_shard_map_with_a_per_device_key(mesh, getkey, name, options):
    # The in-place kernels carry the batch through a loop; inside shard_map a replicated
    # batch updated under a key folded by the device index must be cast to varying first
    # (batch-mode CutMix raised a TypeError here before).
    fn = getattr(augment, name)
    images, labels = _batch(getkey())
    key = getkey()

    def per_device(key, x, y):
        key = jax.random.fold_in(key, jax.lax.axis_index("data"))
        return fn(key, x, y, **options)[0][None]

    got = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=PartitionSpec(),
                                out_specs=PartitionSpec("data")))(key, images, labels)
    for i in range(8):
        want = fn(jax.random.fold_in(key, i), images, labels, **options)[0]
        np.testing.assert_allclose(np.asarray(got[i]), np.asarray(want), rtol=1e-6, atol=1e-6)
    # And sharded the usual way, donated: equal to the default path per shard.
    parallel = jax.jit(sharding.data_parallel(fn, mesh), static_argnames=tuple(options))
    sharded = sharding.shard_batch((images, labels), mesh)
    want = parallel(key, *sharded, **{k: v for k, v in options.items() if k != "in_place"})
    donated = jax.jit(lambda k, x, y: sharding.data_parallel(fn, mesh)(k, x, y, **options),
                      donate_argnums=1)
    got = donated(key, *sharding.shard_batch((images + 0, labels), mesh))
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=1e-6, atol=1e-6)
