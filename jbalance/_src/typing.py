"""Type aliases shared by the implementation modules, and jaxtyping-style shape annotations.

``Float["*batch classes"]`` is ``Annotated[ArrayLike, Shape("*batch classes", "float")]``:
a plain array type for type checkers and IDEs, carrying the shape and dtype kind in the
jaxtyping notation (names bind to sizes, ``*name`` is any number of axes, integers are fixed
sizes, ``_`` is any size). Specs start with a space (``Int[" n"]``), as jaxtyping advises, so
that linters read them as strings rather than forward references. It needs no dependency at
run time; ``tests/test_shapes.py``
calls the public functions and checks every annotated argument and result against its spec,
with the same name bound to the same size throughout a call.
"""

from typing import Annotated, Any, NamedTuple

import jax
import numpy as np

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
DTypeLike = jax.typing.DTypeLike
# A typed PRNG key from `jax.random.key` (a legacy uint32[2] key is accepted too).
PRNGKey = jax.Array
# Host-side numeric input: anything `np.asarray` understands.
HostArray = np.ndarray


class Shape(NamedTuple):
    """A shape spec in jaxtyping's notation and the dtype kind it expects."""

    spec: str
    kind: str  # "float", "int", "bool", "num" (int or float) or "any"


class _Kind:
    kind = "any"
    base: Any = ArrayLike

    def __class_getitem__(cls, spec: str) -> Any:
        return Annotated[cls.base, Shape(spec, cls.kind)]


class Float(_Kind):
    """``Float["n c"]``: a floating array of shape ``[n, c]``."""

    kind = "float"


class Int(_Kind):
    """``Int["n"]``: an integer array of shape ``[n]``."""

    kind = "int"


class Bool(_Kind):
    """``Bool["n"]``: a boolean array (integer masks are accepted where documented)."""

    kind = "bool"


class Num(_Kind):
    """``Num["n c"]``: an integer or floating array."""

    kind = "num"


class Shaped(_Kind):
    """``Shaped["b h w c"]``: any dtype."""

    kind = "any"
