"""Data-parallel helpers built on JAX's own machinery (`NamedSharding`, `shard_map`).

jbalance functions are pure and batch-major, so under `jax.jit` they already run on a batch
sharded over a device mesh: XLA's partitioner inserts whatever communication the maths
needs. Two things deserve a helper:

* A one-dimensional "data" mesh and putting a batch on it (`batch_mesh`, `shard_batch`).
* Composite augmentations choose a *partner* for each example. Drawn from the whole batch,
  partners live on other devices and every step pays an all-to-all of images; drawn within
  each device's shard, no byte crosses devices. `data_parallel` runs a key-first batch
  function per shard inside `jax.shard_map` (local partners, the default) or over the
  global batch under `jit` (global partners, the same result as on one device).
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jbalance._src import checks


def batch_mesh(*, axis_name: str = "data", devices: Sequence[Any] | None = None) -> Mesh:
    r"""A one-dimensional device mesh for data parallelism.

    Args:
      axis_name: Name of the mesh axis the batch is split along.
      devices: Devices to use; default every device of the default backend
        (`jax.devices()`, which on a multi-host run spans all processes).

    Returns:
      A `jax.sharding.Mesh` of shape ``[len(devices)]``.

    Examples:
      >>> import jax
      >>> from jbalance import sharding
      >>> mesh = sharding.batch_mesh()
      >>> mesh.axis_names
      ('data',)
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty; pass at least one device.")
    return Mesh(np.asarray(devices), (axis_name,))


def shard_batch(tree: Any, mesh: Mesh, *, axis_name: str = "data") -> Any:
    r"""Places every array of ``tree`` on ``mesh``, split along its leading (batch) axis.

    Arrays of rank 0 (and PRNG keys of rank 0) are replicated. The leading axis of every other
    array must be divisible by the number of devices along ``axis_name``.

    Args:
      tree: A pytree of arrays whose leading axis is the batch.
      mesh: The device mesh, e.g. from `batch_mesh`.
      axis_name: The mesh axis to split the batch over.

    Returns:
      The same pytree with `jax.Array` leaves carrying a `NamedSharding`.

    Raises:
      ValueError: if ``axis_name`` is not an axis of ``mesh`` or a batch does not divide.
    """
    if axis_name not in mesh.axis_names:
        raise ValueError(f"`axis_name` {axis_name!r} is not an axis of `mesh` "
                         f"(axes: {mesh.axis_names}).")
    n = mesh.shape[axis_name]

    def put(x):
        if np.ndim(x) == 0:
            return jax.device_put(x, NamedSharding(mesh, PartitionSpec()))
        if np.shape(x)[0] % n:
            raise ValueError(
                f"A batch of {np.shape(x)[0]} examples cannot be split evenly over {n} devices "
                f"along {axis_name!r}; pad or trim the batch to a multiple of {n}.")
        return jax.device_put(x, NamedSharding(mesh, PartitionSpec(axis_name)))

    return jax.tree_util.tree_map(put, tree)


def data_parallel(fn: Callable[..., Any], mesh: Mesh, *, axis_name: str = "data",
                  partners: str = "local") -> Callable[..., Any]:
    r"""Runs a key-first batch function (e.g. `jbalance.augment.mixup`) on a sharded batch.

    With ``partners="local"`` (the default) the batch function runs once per device on that
    device's shard, inside `jax.shard_map`, with the key folded with the device's index along
    ``axis_name``: partners are drawn within the shard and no image crosses devices. The
    result equals, shard for shard, ``fn(jax.random.fold_in(key, i), *shard_i)``.

    With ``partners="global"`` the function runs on the global batch under `jit` with sharded
    inputs and outputs; partners come from the whole batch (XLA moves the partner images
    between devices) and the result equals ``fn(key, *batch)`` on one device.

    Args:
      fn: ``fn(key, *arrays, **options) -> pytree``, every array and every output leaf
        batch-major (leading axis = examples).
      mesh: The device mesh (`batch_mesh`).
      axis_name: Mesh axis the batch is split along.
      partners: ``"local"`` (per-shard partners, no cross-device traffic) or ``"global"``.

    Returns:
      A function with ``fn``'s signature. Keyword options that are arrays with the batch's
      leading size (e.g. ``partner_weights``) are split like the batch; other options are
      passed through unchanged (static ones must be hashable if you `jit` the result).

    Raises:
      ValueError: for an unknown ``partners`` mode or ``axis_name``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment, sharding
      >>> mesh = sharding.batch_mesh()
      >>> n = mesh.shape["data"]
      >>> images = jnp.ones((2 * n, 8, 8, 3)); labels = jax.nn.one_hot(jnp.arange(2 * n) % 3, 3)
      >>> mix = sharding.data_parallel(augment.mixup, mesh)
      >>> x, y = mix(jax.random.key(0), *sharding.shard_batch((images, labels), mesh))
      >>> x.shape, y.shape
      ((16, 8, 8, 3), (16, 3))
    """
    checks.check_one_of(partners, ("local", "global"), "partners")
    if axis_name not in mesh.axis_names:
        raise ValueError(f"`axis_name` {axis_name!r} is not an axis of `mesh` "
                         f"(axes: {mesh.axis_names}).")
    batch_spec = PartitionSpec(axis_name)

    def _split_options(arrays, options):
        """Separates batch-major array options (sharded) from the rest (closed over)."""
        batch = np.shape(arrays[0])[0] if arrays else None
        sharded, static = {}, {}
        for name, value in options.items():
            if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) >= 1 \
                    and np.shape(value)[0] == batch:
                sharded[name] = value
            else:
                static[name] = value
        return sharded, static

    if partners == "global":

        def global_fn(key, *arrays, **options):
            out = fn(key, *arrays, **options)
            # Keep the outputs split like the inputs rather than gathered on one device.
            return jax.lax.with_sharding_constraint(out, NamedSharding(mesh, batch_spec))

        return global_fn

    def local_fn(key, *arrays, **options):
        if not arrays:
            raise ValueError("`data_parallel` needs at least one batch array after `key`.")
        sharded, static = _split_options(arrays, options)

        def per_shard(key, arrays, sharded):
            key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
            return fn(key, *arrays, **sharded, **static)

        mapped = jax.shard_map(
            per_shard, mesh=mesh,
            in_specs=(PartitionSpec(), batch_spec, batch_spec),
            out_specs=batch_spec)
        return mapped(key, tuple(arrays), sharded)

    return local_fn
