"""Data parallelism with JAX's own machinery: meshes, sharded batches, per-shard partners."""

from jbalance._src.sharding import batch_mesh as batch_mesh
from jbalance._src.sharding import data_parallel as data_parallel
from jbalance._src.sharding import shard_batch as shard_batch

__all__ = ["batch_mesh", "data_parallel", "shard_batch"]
