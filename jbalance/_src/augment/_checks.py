"""Argument checks of the augmentations: ranks, dtypes, static options, hyper-parameters.

Shape, dtype and static-option checks run at trace time. A traceable hyper-parameter
(``alpha``, ``kappa``, ``min_size``, ...) goes through `_check_scalar`, the one rule for
its range: it raises now when the value is concrete, and emits the same condition as a
checkify check (under `jbalance.checks.checked`) when it is traced.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks

MODES = ("elem", "batch")
TILES = (2, 4)
PLACEMENTS = ("corner", "same")


def _range_text(low: float | None, high: float | None, low_inclusive: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def _check_scalar(value: Any, name: str, *, low: float | None = None,
                  high: float | None = None, low_inclusive: bool = True,
                  finite: bool = False, scalar: bool = True, fix: str = "") -> None:
    """The range rule of one traceable hyper-parameter, eager and checked alike.

    ``finite``: NaN and inf are refused as well (NaN always is). ``scalar``: the value must
    have no axes.
    """
    if scalar and np.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {np.shape(value)}.")
    if finite:
        checks.check_finite(value, name, fix)
    if checks.is_concrete(value):
        checks.check_scalar_range(value, name, low=low, high=high,
                                  low_inclusive=low_inclusive)
        return
    v = jnp.asarray(value)
    v = v.astype(checks.compute_dtype(v.dtype))
    ok = ~jnp.isnan(v)
    if low is not None:
        ok = ok & ((v >= low) if low_inclusive else (v > low))
    if high is not None:
        ok = ok & (v <= high)
    checks.require(ok, f"`{name}` must be {_range_text(low, high, low_inclusive)}."
                       f"{' ' + fix if fix else ''}")


def _check_key(key: Any) -> None:
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(
                f"`key` must be a PRNG key from `jax.random.key(seed)`, got {type(key).__name__}.")


def _check_images(images: Any, rank: int, name: str) -> None:
    checks.check_rank(images, rank, name,
                      "[batch, height, width, channels]" if rank == 4
                      else "[height, width, channels]" if rank == 3
                      else "[tiles, height, width, channels]")
    dtype = jnp.result_type(images)
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"`{name}` must have a floating or integer (e.g. uint8) dtype, got "
                        f"{dtype}.")
    if any(s == 0 for s in np.shape(images)[-3:-1]):
        raise ValueError(f"`{name}` must have a non-empty height and width, got shape "
                         f"{tuple(np.shape(images))}.")


def _check_labels(labels: Any, rank: int, name: str) -> None:
    checks.check_rank(labels, rank, name,
                      "[batch, num_classes] (one-hot or soft)" if rank == 2 else "[num_classes]")
    dtype = jnp.result_type(labels)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
                f"`{name}` must be floating probabilities (one-hot or soft), got {dtype}. Convert "
                f"integer class ids with `jax.nn.one_hot({name}, num_classes)`.")


def _check_pair(a: Any, b: Any, name_a: str, name_b: str) -> None:
    if tuple(np.shape(a)) != tuple(np.shape(b)):
        raise ValueError(f"`{name_b}` must have the shape of `{name_a}` {tuple(np.shape(a))}, got "
                         f"{tuple(np.shape(b))}.")
    if jnp.result_type(a) != jnp.result_type(b):
        raise TypeError(f"`{name_b}` must have the dtype of `{name_a}` ({jnp.result_type(a)}), "
                        f"got {jnp.result_type(b)}.")


def _check_alpha(alpha: Any) -> None:
    # inf would turn Beta(alpha, alpha) into NaN (MixUp) or a no-op (CutMix): refuse it.
    _check_scalar(alpha, "alpha", low=0.0, low_inclusive=False, finite=True,
                  fix="Use a finite Beta concentration (e.g. 0.2-1.0; 32 for detection MixUp).")


def _check_fill(fill_value: Any, dtype: Any) -> None:
    """``fill_value`` must be representable in the image dtype (no silent wrap-around)."""
    if np.ndim(fill_value) != 0:
        raise ValueError(f"`fill_value` must be a scalar, got shape {np.shape(fill_value)}.")
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    else:
        lo, hi = float(-jnp.finfo(dtype).max), float(jnp.finfo(dtype).max)
    msg = (f"`fill_value` must be a finite value in the range of the image dtype {dtype} "
           f"[{lo:g}, {hi:g}] (it would wrap or overflow), got {{}}.")
    if checks.is_concrete(fill_value):
        v = np.asarray(fill_value, np.float64)
        if not np.isfinite(v) or v < lo or v > hi:
            raise ValueError(msg.format(fill_value))
        return
    v = jnp.asarray(fill_value).astype(jnp.float32)
    checks.require(jnp.isfinite(v) & (v >= lo) & (v <= hi), msg.format("a traced value"))


def _check_mode(mode: Any) -> None:
    checks.check_one_of(mode, MODES, "mode")


def _check_in_place(in_place: Any) -> None:
    if not isinstance(in_place, (bool, np.bool_)):
        raise TypeError(f"`in_place` must be a Python bool (static), got {in_place!r}.")


def _check_tiles(tiles: Any) -> None:
    if (isinstance(tiles, bool) or not isinstance(tiles, (int, np.integer))
            or tiles not in TILES):
        raise ValueError(f"`tiles` must be 2 or 4 (a static Python int), got {tiles!r}.")


def _check_centre(centre: Any) -> None:
    if not isinstance(centre, (tuple, list)) or len(centre) != 2:
        raise ValueError(f"`centre` must be a pair (low, high) of fractions, got {centre!r}.")
    for c in centre:
        _check_scalar(c, "centre", low=0.0, high=1.0)
    if all(checks.is_concrete(c) for c in centre):
        if float(centre[0]) > float(centre[1]):
            raise ValueError(f"`centre` must have low <= high, got {centre!r}.")
    else:
        lo, hi = (jnp.asarray(c).astype(jnp.float32) for c in centre)
        checks.require(lo <= hi, "`centre` must have low <= high.")


def _check_box_options(min_size: Any, min_visible: Any, centre: Any) -> None:
    _check_scalar(min_size, "min_size", low=0.0, scalar=False)
    _check_scalar(min_visible, "min_visible", low=0.0, high=1.0, scalar=False)
    _check_centre(centre)


def _check_output_size(output_size: Any, source: tuple[int, int]) -> tuple[int, int]:
    """``output_size`` (static) as ints; the source size when it is None."""
    if output_size is None:
        return source
    if (not isinstance(output_size, (tuple, list)) or len(output_size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                       for s in output_size)):
        raise ValueError(f"`output_size` must be None or a pair of positive ints (height, "
                         f"width), got {output_size!r}.")
    return int(output_size[0]), int(output_size[1])


def _check_partner_weights(partner_weights: Any, batch_size: int) -> None:
    if partner_weights is None:
        return
    checks.check_shape(partner_weights, (batch_size,), "partner_weights",
                       "[batch] (one non-negative weight per example)")
    if checks.is_concrete(partner_weights):
        w = np.asarray(partner_weights, np.float64)
        if np.isnan(w).any() or (w < 0).any() or not (w > 0).any():
            raise ValueError("`partner_weights` must be non-negative, free of NaN and not all "
                             "zero.")


def _check_batch_classification(key: Any, images: Any, labels: Any, mode: str,
                                partner_weights: Any) -> None:
    _check_key(key)
    _check_images(images, 4, "images")
    _check_labels(labels, 2, "labels")
    checks.check_same_batch({"images": images, "labels": labels})
    _check_mode(mode)
    _check_partner_weights(partner_weights, np.shape(images)[0])


def _check_detection(images: Any, boxes: Any, classes: Any, valid: Any, *, batched: bool,
                     prefix: str = "") -> None:
    lead = 1 if batched else 0
    checks.check_rank(boxes, 2 + lead, f"{prefix}boxes",
                      "[batch, max_boxes, 4] in `box_format`" if batched
                      else "[max_boxes, 4] in `box_format`")
    if np.shape(boxes)[-1] != 4:
        raise ValueError(f"`{prefix}boxes` must end in 4 coordinates, got shape "
                         f"{tuple(np.shape(boxes))}.")
    checks.check_floating(boxes, f"{prefix}boxes")
    checks.check_rank(classes, 1 + lead, f"{prefix}classes",
                      "[batch, max_boxes]" if batched else "[max_boxes]")
    checks.check_integer(classes, f"{prefix}classes")
    checks.check_rank(valid, 1 + lead, f"{prefix}valid",
                      "[batch, max_boxes]" if batched else "[max_boxes]")
    if jnp.result_type(valid) != jnp.bool_:
        raise TypeError(f"`{prefix}valid` must be boolean (True for real boxes, False for "
                        f"padding), got {jnp.result_type(valid)}.")
    m = np.shape(boxes)[:-1]
    for name, arr in ((f"{prefix}classes", classes), (f"{prefix}valid", valid)):
        if tuple(np.shape(arr)) != tuple(m):
            raise ValueError(f"`{name}` must have shape {tuple(m)} to match `{prefix}boxes` "
                             f"{tuple(np.shape(boxes))}, got {tuple(np.shape(arr))}.")
    if batched:
        checks.check_same_batch({f"{prefix}images": images, f"{prefix}boxes": boxes})
