"""Argument checks that raise clear errors naming the argument and the fix.

This is the one place for the library's validation, ``where``-mask and dtype rules.

Shape and dtype checks run at trace time (shapes and dtypes are static under `jit`), so a
bad call fails when it is first traced rather than producing garbage. Value checks
(``alpha > 0``, labels in range, finite counts) run on the host whenever the value is
concrete (eager calls). Under `jit`, `vmap` or `grad` a value is a tracer and cannot be
inspected without a host sync; there the same checks are emitted as
`jax.experimental.checkify` checks when the caller wraps the function with `checked`
(the one documented way), and are skipped otherwise.
"""

import contextvars
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify as _checkify


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


def is_real(dtype: Any, *, bool_ok: bool = False) -> bool:
    """True for an integer or floating dtype (and bool, with ``bool_ok``)."""
    dtype = jnp.dtype(dtype)
    return (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
            or (bool_ok and dtype == jnp.bool_))


def check_real(x: Any, name: str, *, bool_ok: bool = False) -> None:
    """Raises a `TypeError` unless ``x`` has an integer or floating dtype (or bool, with
    ``bool_ok``): the rule for counts, weights, targets and numeric hyper-parameters."""
    dtype = jnp.result_type(x)
    if not is_real(dtype, bool_ok=bool_ok):
        kinds = "a real (integer, floating or boolean)" if bool_ok else \
            "a real (integer or floating)"
        raise TypeError(f"`{name}` must be {kinds} number or array, got dtype {dtype}.")


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
    """Checks a value's range when it is concrete; silent for tracers (NaN is refused, inf
    passes unless a bound refuses it). For a traceable hyper-parameter use `check_hyper`,
    which also holds under `checked`."""
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


# ----------------------------------------------------------------------------------------
# Value checks that also hold under `jit` (through checkify).
# ----------------------------------------------------------------------------------------

_CHECKIFY = contextvars.ContextVar("jbalance_checkify", default=False)


def require(ok: Any, message: str, error: type[Exception] = ValueError) -> None:
    """Asserts ``all(ok)``: raises ``error(message)`` eagerly, or a checkify check under `checked`.

    ``ok`` is a boolean scalar or array (True where the input is fine). When it is concrete
    the check runs now on the host. When it is traced it becomes a `checkify.check` if the
    caller is being traced inside `checked`, and is skipped otherwise (a plain `jit` cannot
    raise on a value).
    """
    if is_concrete(ok):
        if not bool(np.all(np.asarray(ok))):
            raise error(message)
    elif _CHECKIFY.get():
        _checkify.check(jnp.all(ok), message)


def checked(fn: Callable[..., Any], *, errors: Any = None) -> Callable[..., Any]:
    """Returns ``fn`` wrapped so that jbalance's value checks also hold under `jit`.

    The result follows `jax.experimental.checkify.checkify`: it returns ``(error, out)``;
    call ``error.throw()`` (outside `jit`) to raise the first failed check as a
    `checkify.JaxRuntimeError` whose message is the same as the eager `ValueError`'s.

    >>> import jax, jax.numpy as jnp
    >>> from jbalance import checks, losses
    >>> f = jax.jit(checks.checked(losses.weighted_softmax_cross_entropy))
    >>> err, loss = f(jnp.zeros((2, 3)), jnp.array([0, 5]))
    >>> err.get() is not None
    True

    Args:
      fn: any function that calls jbalance (jit it *outside*: ``jax.jit(checked(fn))``).
      errors: the checkify error set; default ``checkify.user_checks`` (jbalance's own
        checks). Add ``checkify.float_checks`` to also catch NaNs produced anywhere.

    Returns:
      A function with ``fn``'s arguments that returns ``(checkify.Error, fn's output)``.
    """
    errors = _checkify.user_checks if errors is None else errors

    @functools.wraps(fn)
    def with_checks(*args: Any, **kwargs: Any) -> Any:
        token = _CHECKIFY.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _CHECKIFY.reset(token)

    return _checkify.checkify(with_checks, errors=errors)


def range_text(*, low: float | None = None, high: float | None = None,
               low_inclusive: bool = True, high_inclusive: bool = True) -> str:
    """How a range reads in a message: ``>= 0``, ``> 0``, ``in [0, 1)``; "" without bounds."""
    if low is not None and high is not None:
        return (f"in {'[' if low_inclusive else '('}{low:g}, "
                f"{high:g}{']' if high_inclusive else ')'}")
    if low is not None:
        return f"{'>=' if low_inclusive else '>'} {low:g}"
    if high is not None:
        return f"{'<=' if high_inclusive else '<'} {high:g}"
    return ""


def check_hyper(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, high_inclusive: bool = True, fix: str = "") -> None:
    """The one range rule of a numeric hyper-parameter (a scalar or an array of them).

    Every entry must be finite and within the bounds. A concrete value is checked now and a
    `ValueError` is raised; a traced one becomes a checkify check under `checked` (skipped
    under a plain `jit`). Both carry the same message, e.g. ``\`scale\` must be finite and
    > 0.``, so an error reads the same eagerly and under ``checked(jax.jit(f))``.
    """
    if value is None:
        return
    text = range_text(low=low, high=high, low_inclusive=low_inclusive,
                      high_inclusive=high_inclusive)
    message = (f"`{name}` must be finite{' and ' + text if text else ''}."
               f"{' ' + fix if fix else ''}")
    if is_concrete(value):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be a real number or array, got dtype {arr.dtype}.")
        v = arr.astype(np.float64)
        ok = np.isfinite(v)
    else:
        v = jnp.asarray(value)
        v = v.astype(compute_dtype(v.dtype) if jnp.issubdtype(v.dtype, jnp.floating)
                     else jnp.float32)
        ok = jnp.isfinite(v)
    if low is not None:
        ok = ok & ((v >= low) if low_inclusive else (v > low))
    if high is not None:
        ok = ok & ((v <= high) if high_inclusive else (v < high))
    require(ok, message)


def check_finite(x: Any, name: str, fix: str = "") -> None:
    """Raises (eagerly) / checks (under `checked`) that every entry of ``x`` is finite."""
    if x is None:
        return
    if is_concrete(x):
        arr = np.asarray(x)
        if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
            bad = arr[~np.isfinite(arr)].ravel()[0]
            raise ValueError(f"`{name}` must be finite, got {bad}.{' ' + fix if fix else ''}")
        return
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
        require(jnp.isfinite(x), f"`{name}` must be finite.{' ' + fix if fix else ''}")


def check_nonnegative(x: Any, name: str, fix: str = "") -> None:
    """Checks that ``x`` is finite and ``>= 0`` (counts, weights)."""
    if x is None:
        return
    check_finite(x, name, fix)
    if is_concrete(x):
        arr = np.asarray(x)
        if arr.size and (arr < 0).any():
            raise ValueError(
                    f"`{name}` must be non-negative, got a minimum of {arr.min():g}."
                    f"{' ' + fix if fix else ''}")
        return
    require(jnp.asarray(x) >= 0, f"`{name}` must be non-negative.{' ' + fix if fix else ''}")


# ----------------------------------------------------------------------------------------
# Counts: the one rule for count matrices (readers, report, solver).
# ----------------------------------------------------------------------------------------

_INT32_MAX = int(np.iinfo(np.int32).max)


def count_problem(values: Any) -> tuple[tuple[int, ...], str] | None:
    """The first entry of a count array that is not a count, as ``(index, reason)``.

    A count is a finite, non-negative whole number within the int32 range (booleans are
    0/1 presence). Returns ``None`` when every entry is a count. Callers wrap the reason in
    their own error (`ValueError` naming the argument, or the readers' `LabelFormatError`
    naming the file and record).
    """
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or arr.size == 0:
        return None
    if arr.dtype.kind not in "iuf":
        return (), f"counts must be numbers, got dtype {arr.dtype}"
    tests = []
    if arr.dtype.kind == "f":
        tests += [(~np.isfinite(arr), "count is {v}; counts must be finite"),
                  (arr != np.round(arr), "count {v} is not a whole number")]
    tests += [(arr < 0, "count {v} is negative; counts must be >= 0"),
              (arr > _INT32_MAX, "count {v} exceeds the int32 range")]
    for bad, reason in tests:
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            return index, reason.format(v=arr[index])
    return None


# ----------------------------------------------------------------------------------------
# The dtype rule and the `where` rule, shared by every module.
# ----------------------------------------------------------------------------------------


def floating_dtype(dtype: Any, name: str = "dtype") -> Any:
    """``dtype`` as a dtype object; a `TypeError` naming ``name`` unless it is floating."""
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating dtype, got {dtype}.")
    return dtype


def compute_dtype(dtype: Any) -> Any:
    """The dtype arithmetic runs in: at least float32 (float64 stays float64).

    exp/log1p and blends in 16 bits lose ~3 significant digits and overflow early (float16
    at 65504); computing in float32 and casting back is more accurate and no slower on CPU.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize >= 4:
        return dtype
    return jnp.dtype(jnp.float32)


def broadcast(x: Any, shape: Sequence[int], name: str, shape_doc: str = "") -> jax.Array:
    """Broadcasts ``x`` to ``shape`` explicitly (the library runs under rank promotion
    "raise") or raises a `ValueError` naming the argument."""
    x = jnp.asarray(x)
    try:
        out = np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        out = None
    if out != tuple(shape):
        doc = f" {shape_doc}" if shape_doc else ""
        raise ValueError(
                f"`{name}` has shape {x.shape}, which does not broadcast to {tuple(shape)}{doc}.")
    return jnp.broadcast_to(x, tuple(shape))


def mask(where: Any, shape: Sequence[int], shape_doc: str = "", name: str = "where"
         ) -> jax.Array | None:
    """The ``where=`` rule of every jbalance function.

    ``None`` (everything counts) or a boolean/integer mask (non-zero = counts) that
    broadcasts to ``shape``; returns a boolean array of exactly ``shape``. Real-valued
    weights are refused: they belong in a loss weight, not a mask.
    """
    if where is None:
        return None
    where = jnp.asarray(check_array(where, name))
    if not (where.dtype == jnp.bool_ or jnp.issubdtype(where.dtype, jnp.integer)):
        raise TypeError(
                f"`{name}` must be a boolean mask, got dtype {where.dtype}. For real-valued "
                f"per-example weights multiply the loss, or pass them to "
                f"`reduce_loss(weights=...)`.")
    if where.dtype != jnp.bool_:
        where = where != 0
    return broadcast(where, shape, name, shape_doc)
