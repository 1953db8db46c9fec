"""Type aliases shared by the implementation modules."""

import jax
import numpy as np

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
DTypeLike = jax.typing.DTypeLike
# A typed PRNG key from `jax.random.key` (a legacy uint32[2] key is accepted too).
PRNGKey = jax.Array
# Host-side numeric input: anything `np.asarray` understands.
HostArray = np.ndarray
