"""Argument checks that raise clear errors naming the argument and the fix.

Shape and dtype checks run at trace time (shapes and dtypes are static under `jit`), so a
bad call fails when it is first traced rather than producing garbage. Value checks
(``alpha > 0``, ``gamma >= 0``) run only when the value is concrete: a traced
hyper-parameter (inside `jit`, `vmap` or `grad`) cannot be inspected without a host sync,
and the docstrings of the public functions say what happens to out-of-range traced values.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when ``x`` has a value known on the host (not a tracer)."""
    if isinstance(x, jax.core.Tracer):
        return False
    try:
        leaves = jax.tree_util.tree_leaves(x)
    except Exception:  # pragma: no cover - defensive: exotic containers.
        return True
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def check_array(x: Any, name: str) -> jax.Array | np.ndarray:
    """Returns ``x`` as an array (host or device), or raises a `TypeError`."""
    if isinstance(x, (jax.Array, np.ndarray)):
        return x
    if isinstance(x, (bool, int, float, np.generic)) or (
            isinstance(x, (list, tuple)) and not any(isinstance(v, str) for v in np.ravel(x))):
        return jnp.asarray(x)
    raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.")


def check_floating(x: Any, name: str) -> None:
    """Raises a `TypeError` unless ``x`` has a floating dtype."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
                f"`{name}` must have a floating dtype (float16, bfloat16, float32 or float64), "
                f"got {dtype}. Cast it first, e.g. `{name}.astype(jnp.float32)`.")


def check_integer(x: Any, name: str) -> None:
    """Raises a `TypeError` unless ``x`` has an integer (or bool) dtype."""
    dtype = jnp.result_type(x)
    if not (jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
        raise TypeError(f"`{name}` must have an integer dtype, got {dtype}.")


def check_rank(x: Any, rank: int | Sequence[int], name: str, shape_doc: str = "") -> None:
    """Raises a `ValueError` unless ``x.ndim`` is ``rank`` (or one of them)."""
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    ndim = np.ndim(x)
    if ndim not in ranks:
        want = " or ".join(str(r) for r in ranks)
        doc = f" {shape_doc}" if shape_doc else ""
        raise ValueError(
                f"`{name}` must have rank {want}{doc}, got shape {tuple(np.shape(x))}.")


def check_min_rank(x: Any, rank: int, name: str, shape_doc: str = "") -> None:
    """Raises a `ValueError` unless ``x.ndim >= rank``."""
    if np.ndim(x) < rank:
        doc = f" {shape_doc}" if shape_doc else ""
        raise ValueError(
                f"`{name}` must have at least {rank} dimensions{doc}, got shape "
                f"{tuple(np.shape(x))}.")


def check_shape(x: Any, shape: Sequence[int | None], name: str, shape_doc: str = "") -> None:
    """Raises a `ValueError` unless ``x.shape`` matches ``shape`` (None = any size)."""
    got = tuple(np.shape(x))
    if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
        want = tuple("?" if s is None else s for s in shape)
        doc = f" {shape_doc}" if shape_doc else ""
        raise ValueError(f"`{name}` must have shape {want}{doc}, got {got}.")


def check_same_batch(arrays: dict[str, Any], axis: int = 0) -> None:
    """Raises a `ValueError` unless all arrays share the size of ``axis``."""
    sizes = {name: np.shape(a)[axis] for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"`{n}`: {s}" for n, s in sizes.items())
        raise ValueError(f"Batch sizes differ along axis {axis} ({listed}); they must be equal.")


def check_scalar_range(value: Any, name: str, *, low: float | None = None,
                                              high: float | None = None, low_inclusive: bool = True,
                                              high_inclusive: bool = True) -> None:
    """Checks a hyper-parameter's value when it is concrete; silent for tracers."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` must not be NaN.")
    if low is not None:
        bad = (arr < low) if low_inclusive else (arr <= low)
        if bad.any():
            op = ">=" if low_inclusive else ">"
            raise ValueError(f"`{name}` must be {op} {low}, got {value!r}.")
    if high is not None:
        bad = (arr > high) if high_inclusive else (arr >= high)
        if bad.any():
            op = "<=" if high_inclusive else "<"
            raise ValueError(f"`{name}` must be {op} {high}, got {value!r}.")


def check_one_of(value: Any, options: Sequence[Any], name: str) -> None:
    """Raises a `ValueError` unless ``value`` is one of ``options`` (static arguments)."""
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"`{name}` must be one of {listed}; got {value!r}.")
