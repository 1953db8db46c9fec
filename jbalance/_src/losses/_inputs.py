"""Argument handling shared by every loss: logits, targets, masks, class weights, counts and
numeric hyper-parameters.

Everything is validated through `jbalance._src.checks`: shapes and dtypes at trace time,
values eagerly (a `ValueError`) or, when traced, as checkify checks under
`jbalance.checks.checked`. Masked entries (``where=``, ``ignore_index=``) have their inputs
replaced by 0 *before* a loss is computed (the double-``where``), so NaN/inf there give 0
loss and 0 gradient.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.typing import Array


def logits_array(logits: Any, min_rank: int = 1) -> Array:
    """``logits`` as a floating array of at least ``min_rank`` axes."""
    logits = jnp.asarray(checks.check_array(logits, "logits"))
    checks.check_floating(logits, "logits")
    checks.check_min_rank(logits, min_rank, "logits", "[..., num_classes]")
    return logits


def hyper(value: Any, name: str, shape: tuple[int, ...], dtype: Any, *,
          low: float | None = None, high: float | None = None, low_inclusive: bool = True,
          high_inclusive: bool = True) -> Array:
    """A numeric hyper-parameter: finite and in range (`checks.check_hyper`, eagerly and
    under `checks.checked`), cast to ``dtype`` and broadcast to ``shape``."""
    checks.check_real(value, name, bool_ok=True)
    checks.check_hyper(value, name, low=low, high=high, low_inclusive=low_inclusive,
                       high_inclusive=high_inclusive)
    return checks.broadcast(jnp.asarray(value).astype(dtype), shape, name)


def static_int(value: Any, limit: int = 16) -> int | None:
    """``value`` as a Python int when it is a concrete whole number in ``[0, limit]``.

    Only how a power is evaluated may depend on it (`jax.lax.integer_pow` instead of
    ``exp(gamma log x)``, the same value): the formula is the same for a traced value.
    """
    if not checks.is_concrete(value) or np.ndim(value) != 0:
        return None
    v = float(np.asarray(value))
    return int(v) if v == int(v) and 0 <= v <= limit else None


def nonnegative(value: Any, name: str) -> None:
    """Finite and ``>= 0`` (weights and counts): eager `ValueError`, or checkify."""
    checks.check_nonnegative(
        value, name, "Weights and counts scale a class; use 0 to switch a class off.")


def class_weights_1d(class_weights: Any, num_classes: int, shape: tuple[int, ...],
                     name: str = "class_weights") -> Array | None:
    """Validated per-class weights ``[num_classes]`` (``None`` stays ``None``)."""
    if class_weights is None:
        return None
    if not shape:
        raise ValueError(f"`{name}` needs `logits` with a class axis, got a scalar `logits`.")
    w = jnp.asarray(checks.check_array(class_weights, name))
    checks.check_real(w, name)
    if w.ndim > 1 or (w.ndim == 1 and w.shape[0] not in (1, num_classes)):
        raise ValueError(
            f"`{name}` must have shape ({num_classes},) (one weight per class, along the last "
            f"axis of `logits`), got {w.shape}.")
    nonnegative(w, name)
    return jnp.broadcast_to(w, (num_classes,))


def class_weight_vector(class_weights: Any, num_classes: int, shape: tuple[int, ...],
                        dtype: Any, name: str = "class_weights") -> Array | None:
    """Per-class weights broadcast along the last axis of ``shape``, in ``dtype``."""
    w = class_weights_1d(class_weights, num_classes, shape, name)
    return None if w is None else jnp.broadcast_to(w.astype(dtype), shape)


def apply_mask(loss: Array, mask: Array | None) -> Array:
    """0 where ``mask`` is False."""
    if mask is None:
        return loss
    return jnp.where(mask, loss, jnp.zeros((), loss.dtype))


def counts_vector(counts: Any, num_classes: int | None = None, name: str = "counts") -> Array:
    """Validated per-class counts ``[num_classes]`` (real, finite, non-negative)."""
    counts = jnp.asarray(checks.check_array(counts, name))
    checks.check_real(counts, name)
    checks.check_rank(counts, 1, name, "[num_classes]")
    if num_classes is not None and counts.shape[0] != num_classes:
        raise ValueError(f"`{name}` must have shape ({num_classes},) (one count per class, "
                         f"num_classes = logits.shape[-1]), got {counts.shape}.")
    checks.check_nonnegative(counts, name, "Counts are numbers of training examples.")
    return counts


def float_dtype(counts: Array, dtype: Any) -> Any:
    """The output dtype: ``dtype``, or the counts' own when floating (else float32)."""
    if dtype is None:
        dtype = counts.dtype if jnp.issubdtype(counts.dtype, jnp.floating) else jnp.float32
    return checks.floating_dtype(dtype)


# ----------------------------------------------------------------------------------------
# Elementwise (sigmoid) losses: targets of the logits' shape.
# ----------------------------------------------------------------------------------------


def sigmoid_inputs(logits: Any, labels: Any, where: Any
                   ) -> tuple[Array, Array, Array | None, Any, Any]:
    """Validated ``(z, y, mask, dtype, cdt)`` of an elementwise loss.

    Labels must be finite and in ``[0, 1]`` wherever the mask keeps them. Masked elements
    have their logits and labels replaced by 0 before the loss is computed.
    """
    # Elementwise losses: any rank, even a scalar (class weights need a last axis).
    logits = logits_array(logits, min_rank=0)
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    if labels.shape != logits.shape:
        raise ValueError(
            f"`labels` must have the shape of `logits` {logits.shape} (one binary or soft "
            f"target in [0, 1] per element), got {labels.shape}.")
    checks.check_real(labels, "labels", bool_ok=True)
    mask = checks.mask(where, logits.shape, "(`logits.shape`)")
    if labels.dtype != jnp.bool_:
        in_range = (labels >= 0) & (labels <= 1)
        checks.require(in_range if mask is None else in_range | ~mask,
                       "`labels` of a sigmoid loss must be finite targets in [0, 1] (binary or "
                       "soft); mask unknown targets with `where=`.")
    cdt = checks.compute_dtype(logits.dtype)
    z, y = logits.astype(cdt), labels.astype(cdt)
    if mask is not None:
        zero = jnp.zeros((), cdt)
        z, y = jnp.where(mask, z, zero), jnp.where(mask, y, zero)
    return z, y, mask, logits.dtype, cdt


# ----------------------------------------------------------------------------------------
# Softmax losses: class ids or class probabilities.
# ----------------------------------------------------------------------------------------


class Targets(NamedTuple):
    """Validated softmax targets: class ids (``ids``, ``hit``) or probabilities (``probs``)."""

    ids: Array | None  # [...] int32, 0 where masked
    hit: Array | None  # [..., C] bool one-hot of ids
    probs: Array | None  # [..., C] in the compute dtype, 0 where masked
    valid: Array | None  # [...] ids in range (class ids only)
    mask: Array | None  # [...] the `where` mask combined with `ignore_index`


def softmax_inputs(logits: Any, labels: Any, where: Any, ignore_index: Any, *,
                   ids_only: str = "") -> tuple[Array, Targets, Any, Any]:
    """``(z, targets, dtype, cdt)`` of a softmax loss, validated and double-``where`` masked.

    Class ids must lie in ``[0, num_classes)`` unless masked by ``where`` or equal to
    ``ignore_index``; probabilities must be finite and ``>= 0`` unless masked. Masked rows
    have their logits (and targets) replaced by 0 before anything is computed. ``ids_only``
    names a loss that takes class ids only.
    """
    logits = logits_array(logits)
    dtype = logits.dtype
    cdt = checks.compute_dtype(dtype)
    shape = logits.shape
    num_classes = shape[-1]
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    mask = checks.mask(where, shape[:-1], "(`logits.shape[:-1]`)")
    z = logits.astype(cdt)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape != shape[:-1]:
            hint = (" Integer labels are class ids; one-hot or soft targets must be floating."
                    if labels.shape == shape else "")
            raise ValueError(
                f"Integer `labels` (class ids) must have shape `logits.shape[:-1]` = "
                f"{shape[:-1]}, got {labels.shape}.{hint}")
        if ignore_index is not None:
            if not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, bool):
                raise TypeError(f"`ignore_index` must be a Python int (e.g. -100) or None, got "
                                f"{ignore_index!r}.")
            keep = labels != ignore_index
            mask = keep if mask is None else mask & keep
        valid = (labels >= 0) & (labels < num_classes)
        checks.require(
            valid if mask is None else valid | ~mask,
            f"`labels` must be class ids in [0, {num_classes}) (num_classes = "
            f"logits.shape[-1]); ignore examples with `ignore_index=` or `where=`.")
        ids = labels.astype(jnp.int32)
        if mask is not None:
            ids = jnp.where(mask, ids, jnp.zeros((), jnp.int32))
            z = jnp.where(mask[..., None], z, jnp.zeros((), cdt))
        iota = jax.lax.broadcasted_iota(jnp.int32, shape, len(shape) - 1)
        hit = iota == ids[..., None]
        return z, Targets(ids, hit, None, valid, mask), dtype, cdt
    if jnp.issubdtype(labels.dtype, jnp.floating) or labels.dtype == jnp.bool_:
        if ids_only:
            raise TypeError(f"`labels` of {ids_only} must be integer class ids of shape "
                            f"`logits.shape[:-1]`, got dtype {labels.dtype}.")
        if labels.shape != shape:
            hint = (" Class ids must have an integer dtype."
                    if labels.shape == shape[:-1] else "")
            raise ValueError(
                f"Floating `labels` (class probabilities) must have the shape of `logits` "
                f"{shape}, got {labels.shape}.{hint}")
        if ignore_index is not None:
            raise ValueError("`ignore_index` applies to integer class ids; mask probability "
                             "labels with `where=`.")
        if labels.dtype != jnp.bool_:
            ok = (labels >= 0) & (labels < jnp.inf)  # False for NaN.
            checks.require(ok if mask is None else ok | ~mask[..., None],
                           "`labels` (class probabilities) must be finite and non-negative; "
                           "mask unknown rows with `where=`.")
        probs = labels.astype(cdt)
        if mask is not None:
            zero = jnp.zeros((), cdt)
            z = jnp.where(mask[..., None], z, zero)
            probs = jnp.where(mask[..., None], probs, zero)
        return z, Targets(None, None, probs, None, mask), dtype, cdt
    raise TypeError(f"`labels` must be integer class ids or real probabilities, got dtype "
                    f"{labels.dtype}.")


def finish(loss: Array, t: Targets, dtype: Any) -> Array:
    """Masked examples give 0; out-of-range unmasked ids give NaN (only reachable under an
    unchecked `jit`, where no value check can raise)."""
    if t.valid is not None:
        ok = t.valid if t.mask is None else t.valid | ~t.mask
        loss = jnp.where(ok, loss, jnp.asarray(jnp.nan, loss.dtype))
    return apply_mask(loss, t.mask).astype(dtype)


def take(values: Array, ids: Array) -> Array:
    """``values[ids]`` for a per-class vector: a gather (cheaper than a masked sum over the
    classes), whose output follows the sharding of ``ids``."""
    return values.at[ids].get(mode="clip", out_sharding=jax.typeof(ids).sharding)
