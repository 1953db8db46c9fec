"""Checks calls against the jaxtyping-style annotations of jbalance's public functions.

`check_call(fn, *args, **kwargs)` binds the arguments, checks every argument annotated
``Float[...]``/``Int[...]``/... against its shape spec and dtype kind, calls ``fn`` and
checks the result (an annotated array, or a tuple of them), with each axis name bound to
one size throughout the call. Independent of the library: it reads only the annotations
(``jbalance._src.typing.ArrayType`` objects, also inside ``... | None``).
"""

import inspect
import typing
from typing import Any

import jax
import numpy as np

from jbalance._src.typing import AnyOf, ArrayType, Shape


def _shape_of(annotation: Any) -> Shape | None:
    """The spec of ``Float[...]`` and the like, also inside ``Float[...] | None``."""
    if isinstance(annotation, ArrayType):
        return annotation.shape
    if isinstance(annotation, AnyOf):
        specs = [s for o in annotation.options if (s := _shape_of(o)) is not None]
        return specs[0] if len(specs) == 1 else None
    return None


def _dtype_ok(value: Any, kind: str) -> bool:
    dtype = np.dtype(getattr(value, "dtype", np.asarray(value).dtype))
    if kind == "float":
        return np.issubdtype(dtype, np.floating) or dtype.name == "bfloat16"
    if kind == "int":
        return np.issubdtype(dtype, np.integer)
    if kind == "bool":
        return dtype == np.bool_ or np.issubdtype(dtype, np.integer)
    if kind == "num":
        return (np.issubdtype(dtype, np.number) or dtype == np.bool_
                or dtype.name == "bfloat16")
    return True


def _bind(token: str, size: Any, memo: dict[str, Any], where: str) -> None:
    if token == "_":
        return
    if token.lstrip("-").isdigit():
        assert size == int(token), f"{where}: axis must be {token}, got {size}"
        return
    if token in memo:
        assert memo[token] == size, (
            f"{where}: `{token}` is {size} here but {memo[token]} elsewhere in the call")
    memo[token] = size


def match(value: Any, shape: Shape, memo: dict[str, Any], where: str) -> None:
    """Asserts that ``value`` fits ``shape`` (binding names in ``memo``)."""
    assert _dtype_ok(value, shape.kind), (
        f"{where}: dtype {getattr(value, 'dtype', type(value))} is not {shape.kind}")
    # `.shape` also reads a jax.ShapeDtypeStruct (an abstract result from jax.eval_shape).
    got = tuple(value.shape) if hasattr(value, "shape") else tuple(np.shape(value))
    tokens = shape.spec.split()
    variadic = [i for i, t in enumerate(tokens) if t.startswith("*") or t == "..."]
    assert len(variadic) <= 1, f"bad spec {shape.spec!r}"
    if not variadic:
        assert len(got) == len(tokens), f"{where}: shape {got} does not match {shape.spec!r}"
        for t, s in zip(tokens, got):
            _bind(t, s, memo, where)
        return
    i = variadic[0]
    head, tail = tokens[:i], tokens[i + 1:]
    assert len(got) >= len(head) + len(tail), (
        f"{where}: shape {got} has too few axes for {shape.spec!r}")
    for t, s in zip(head, got[:len(head)]):
        _bind(t, s, memo, where)
    for t, s in zip(tail, got[len(got) - len(tail):]):
        _bind(t, s, memo, where)
    middle = got[len(head):len(got) - len(tail)]
    if tokens[i] != "...":
        # Variadic names live apart from single-axis ones, as in jaxtyping: `*b` and `b`
        # may both appear (a NamedTuple result's `*b h w ch` and an argument's `b h w ch`).
        _bind(tokens[i], middle, memo, where)


def _result_shapes(ret: Any) -> list[tuple[str, Any]]:
    """(label, annotation) for each part of a result: one array, a tuple or a NamedTuple."""
    if typing.get_origin(ret) is tuple:
        return [(f"[{k}]", r) for k, r in enumerate(typing.get_args(ret))]
    if isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields"):
        hints = typing.get_type_hints(ret)
        return [(f".{f}", hints.get(f)) for f in ret._fields]
    return [("", ret)]


def annotated_parameters(fn: Any) -> dict[str, Shape]:
    """The shape-annotated parameters of ``fn`` (and ``return`` / ``return[k]``)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = {k: s for k, v in hints.items() if k != "return" and (s := _shape_of(v)) is not None}
    for label, r in _result_shapes(hints.get("return")):
        if (s := _shape_of(r)) is not None:
            out[f"return{label}"] = s
    return out


def _check(fn: Any, run: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(fn, include_extras=True)
    bound = inspect.signature(fn).bind(*args, **kwargs)
    memo: dict[str, Any] = {}
    name = getattr(fn, "__name__", str(fn))
    for arg, value in bound.arguments.items():
        shape = _shape_of(hints.get(arg))
        if shape is not None and value is not None:
            match(value, shape, memo, f"{name}({arg})")
    out = run(bound)
    parts = _result_shapes(hints.get("return"))
    values = [out] if parts and parts[0][0] == "" else list(out)
    for (label, r), o in zip(parts, values):
        s = _shape_of(r)
        if s is not None:
            match(o, s, memo, f"{name} -> result{label}")
    return out


def check_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls ``fn`` and checks its arguments and result against the annotations."""
    return _check(fn, lambda bound: fn(*bound.args, **bound.kwargs), args, kwargs)


def check_abstract(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """As `check_call`, but the result comes from ``jax.eval_shape`` (traced, not run).

    Array arguments are traced; everything else (sizes, options) is passed as it is.
    """

    def run(bound):
        arrays = {k: v for k, v in bound.arguments.items()
                  if isinstance(v, (jax.Array, np.ndarray))}

        def call(traced):
            b = bound.signature.bind(*bound.args, **bound.kwargs)
            b.arguments.update(traced)  # same keys: the order of the signature is kept
            return fn(*b.args, **b.kwargs)

        return jax.eval_shape(call, arrays)

    return _check(fn, run, args, kwargs)
