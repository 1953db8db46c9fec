"""Checks calls against the jaxtyping-style annotations of jbalance's public functions.

`check_call(fn, *args, **kwargs)` binds the arguments, checks every argument annotated
``Float[...]``/``Int[...]``/... against its shape spec and dtype kind, calls ``fn`` and
checks the result (an annotated array, or a tuple of them), with each axis name bound to
one size throughout the call. Independent of the library: it reads only the annotations.
"""

import inspect
import typing
from typing import Any

import numpy as np

from jbalance._src.typing import Shape


def _shape_of(annotation: Any) -> Shape | None:
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, Shape):
                return meta
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
    got = tuple(np.shape(value))
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
        _bind(tokens[i][1:], middle, memo, where)


def annotated_parameters(fn: Any) -> dict[str, Shape]:
    """The shape-annotated parameters of ``fn`` (and ``return`` / ``return[k]``)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = {k: s for k, v in hints.items() if (s := _shape_of(v)) is not None}
    if typing.get_origin(hints.get("return")) is tuple:
        for k, r in enumerate(typing.get_args(hints["return"])):
            if (s := _shape_of(r)) is not None:
                out[f"return[{k}]"] = s
    return out


def check_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    hints = typing.get_type_hints(fn, include_extras=True)
    bound = inspect.signature(fn).bind(*args, **kwargs)
    memo: dict[str, Any] = {}
    name = getattr(fn, "__name__", str(fn))
    for arg, value in bound.arguments.items():
        shape = _shape_of(hints.get(arg))
        if shape is not None and value is not None:
            match(value, shape, memo, f"{name}({arg})")
    out = fn(*args, **kwargs)
    ret = hints.get("return")
    shape = _shape_of(ret)
    if shape is not None:
        match(out, shape, memo, f"{name} -> result")
    elif typing.get_origin(ret) is tuple:
        for k, (r, o) in enumerate(zip(typing.get_args(ret), out)):
            s = _shape_of(r)
            if s is not None:
                match(o, s, memo, f"{name} -> result[{k}]")
    return out
