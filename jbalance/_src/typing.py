"""Type aliases shared by the implementation modules, and jaxtyping-style shape annotations.

``Float[" *batch classes"]`` annotates a floating array whose shape is ``[*batch, classes]``,
in the jaxtyping notation: names bind to sizes, ``*name`` is any number of axes, integers are
fixed sizes, ``_`` is any size. Specs start with a space (``Int[" n"]``), as jaxtyping advises,
so that linters read them as strings rather than forward references.

At run time an annotation is a small object that reads like jaxtyping's in ``help()``,
``inspect.signature`` and Sphinx (``Float[Array, '*batch classes']``, ``ArrayLike``,
``Float[Array, 'c'] | None``) and keeps its spec and dtype kind (``.shape``) for
``tests/typing/shape_check.py``, which calls the public functions and checks every annotated
argument and result against its spec, with the same name bound to the same size throughout a
call. jaxtyping is not needed at run time; a type checker sees the jax types themselves.
"""

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import numpy as np


class Shape(NamedTuple):
    """A shape spec in jaxtyping's notation and the dtype kind it expects."""

    spec: str
    kind: str  # "float", "int", "bool", "num" (int or float) or "any"


def _name(tp: Any) -> str:
    """How one member of a union reads: ``None``, ``int``, ``numpy.ndarray``, ``ArrayLike``."""
    if tp is None or tp is type(None):
        return "None"
    if isinstance(tp, type):
        return tp.__qualname__ if tp.__module__ == "builtins" else \
            f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp)


class _Annotation:
    """Base of the run-time annotation objects: readable, hashable, and ``|``-able.

    They deliberately have no ``__qualname__`` or ``__origin__``, so that ``inspect``,
    ``typing.get_type_hints`` and Sphinx render them by their ``repr``.
    """

    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def __or__(self, other: Any) -> "AnyOf":
        return AnyOf(self, other)

    def __ror__(self, other: Any) -> "AnyOf":
        return AnyOf(other, self)


class Alias(_Annotation):
    """A named type (``ArrayLike``, ``Array``, ``PRNGKey``); ``.type`` is the jax type."""

    __slots__ = ("name", "type")

    def __init__(self, name: str, tp: Any):
        self.name, self.type = name, tp

    def _key(self) -> tuple[Any, ...]:
        return (self.name,)

    def __repr__(self) -> str:
        return self.name


class AnyOf(_Annotation):
    """``a | b`` where one side is one of these annotations; ``.options`` are the members."""

    __slots__ = ("options",)

    def __init__(self, *options: Any):
        flat: list[Any] = []
        for o in options:
            for m in (o.options if isinstance(o, AnyOf) else (o,)):
                m = type(None) if m is None else m
                if m not in flat:
                    flat.append(m)
        self.options = tuple(flat)

    def _key(self) -> tuple[Any, ...]:
        return self.options

    def __repr__(self) -> str:
        return " | ".join(_name(o) for o in self.options)


class ArrayType(_Annotation):
    """``Float[" n c"]`` at run time: reads ``Float[Array, 'n c']``; ``.shape`` is the spec."""

    __slots__ = ("kind_name", "shape")

    def __init__(self, kind_name: str, shape: Shape):
        self.kind_name, self.shape = kind_name, shape

    def _key(self) -> tuple[Any, ...]:
        return (self.kind_name, self.shape)

    def __repr__(self) -> str:
        return f"{self.kind_name}[Array, {self.shape.spec.strip()!r}]"


if TYPE_CHECKING:  # type checkers see the jax types; the shape specs are documentation
    Array = jax.Array
    ArrayLike = jax.typing.ArrayLike
    DTypeLike = jax.typing.DTypeLike
    PRNGKey = jax.Array
else:
    Array = Alias("Array", jax.Array)
    ArrayLike = Alias("ArrayLike", jax.typing.ArrayLike)
    DTypeLike = Alias("DTypeLike", jax.typing.DTypeLike)
    # A typed PRNG key from `jax.random.key` (a legacy uint32[2] key is accepted too).
    PRNGKey = Alias("PRNGKey", jax.Array)
# Host-side numeric input: anything `np.asarray` understands.
HostArray = np.ndarray


class _Kind:
    kind = "any"

    def __class_getitem__(cls, spec: str) -> Any:
        if not isinstance(spec, str):
            raise TypeError(f"{cls.__name__}[...] takes one shape string, like {cls.__name__}"
                            f'[" n c"]; got {spec!r}')
        return ArrayType(cls.__name__, Shape(spec, cls.kind))


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
