"""Reductions: `reduce_loss` (plain mean, sum, PyTorch's weighted mean) and its normaliser,
`example_weights`."""

import jax
import jax.numpy as jnp

from jbalance._src import checks
from jbalance._src.losses import _inputs
from jbalance._src.typing import Array, ArrayLike, Float, Num

REDUCTIONS = ("mean", "sum", "weighted_mean")


def example_weights(labels: Num[" *labels"], class_weights: Num[" c"], *,
                    where: ArrayLike | None = None) -> Array:
    r"""Per-example weight :math:`w_{y}` of each label: the normaliser of PyTorch's weighted mean.

    .. math::
      v_i = w_{y_i} \;\text{(class ids)}, \qquad v_i = \sum_c w_c\, y_{ic} \;\text{(probabilities)}

    Args:
        labels: Integer class ids ``[...]`` or class probabilities ``[..., num_classes]``
            (floating).
        class_weights: Per-class weights, shape ``[num_classes]``, non-negative.
        where: Optional boolean mask broadcastable to the output; masked examples get 0.
            Out-of-range class ids (e.g. an ignore label) also get 0.

    Returns:
        Weights of shape ``labels.shape`` (ids) or ``labels.shape[:-1]`` (probabilities), in
        the dtype of ``class_weights`` (float32 if it is an integer array).

    Raises:
        TypeError: ``labels`` or ``class_weights`` of the wrong dtype.
        ValueError: shapes that do not match, or negative ``class_weights`` (when concrete).

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> print(losses.example_weights(jnp.array([0, 2, 2]), jnp.array([1.0, 2.0, 5.0])))
        [1. 5. 5.]

    References:
        PyTorch, `CrossEntropyLoss
        <https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html>`_
        (``reduction="mean"`` with ``weight``).

    .. versionadded:: 0.1.0
    """
    cw = jnp.asarray(checks.check_array(class_weights, "class_weights"))
    checks.check_rank(cw, 1, "class_weights", "[num_classes]")
    checks.check_real(cw, "class_weights")
    _inputs.nonnegative(cw, "class_weights")
    dtype = cw.dtype if jnp.issubdtype(cw.dtype, jnp.floating) else jnp.dtype(jnp.float32)
    cw = cw.astype(dtype)
    num_classes = cw.shape[0]
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    if jnp.issubdtype(labels.dtype, jnp.integer):
        onehot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
    elif jnp.issubdtype(labels.dtype, jnp.floating):
        checks.check_min_rank(labels, 1, "labels", "[..., num_classes]")
        if labels.shape[-1] != num_classes:
            raise ValueError(
                f"Probability `labels` must have last axis num_classes = {num_classes} (the "
                f"length of `class_weights`), got shape {labels.shape}.")
        onehot = labels.astype(dtype)
    else:
        raise TypeError(f"`labels` must be integer class ids or real probabilities, got dtype "
                        f"{labels.dtype}.")
    out = jnp.sum(onehot * jnp.broadcast_to(cw, onehot.shape), axis=-1)
    return _inputs.apply_mask(out, checks.mask(where, out.shape, "(the per-example shape)"))


def reduce_loss(losses: Float[" *shape"], *, reduction: str = "mean",
                weights: ArrayLike | None = None,
                where: ArrayLike | None = None) -> Array:
    r"""Reduces unreduced losses to a scalar: plain mean, sum, or PyTorch's weighted mean.

    .. math::
      \text{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i}, \qquad
      \text{sum} = \sum_i m_i \ell_i, \qquad
      \text{weighted\_mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i v_i}

    with :math:`m` the ``where`` mask. ``"weighted_mean"`` with ``weights`` =
    `example_weights` ``(labels, class_weights)`` is PyTorch's ``reduction="mean"`` for a
    class-weighted ``cross_entropy``/``nll_loss`` (the losses already contain :math:`w_y`; the
    mean divides by the total weight, not the count). PyTorch's mean for probability targets and
    for ``BCEWithLogitsLoss`` is the plain ``"mean"`` (over elements for the sigmoid losses).
    An empty selection (all masked, or zero total weight) gives 0, where PyTorch gives NaN.

    Args:
        losses: Unreduced losses, any shape.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"weighted_mean"`` (static).
        weights: Per-example normalising weights broadcastable to ``losses.shape``; required
            by (and only used by) ``"weighted_mean"``.
        where: Optional boolean mask broadcastable to ``losses.shape``; masked entries are
            left out of numerator and denominator.

    Returns:
        A scalar of the dtype of ``losses``.

    Raises:
        TypeError: ``losses`` not floating, or ``where`` not boolean.
        ValueError: unknown ``reduction``, ``"weighted_mean"`` without ``weights``, or shapes
            that do not broadcast.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> l = jnp.array([1.0, 10.0, 5.0])
        >>> print(losses.reduce_loss(l, reduction="weighted_mean", weights=jnp.array([1., 5., 5.])))
        1.4545455

    References:
        PyTorch, `CrossEntropyLoss
        <https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html>`_.

    .. versionadded:: 0.1.0
    """
    checks.check_one_of(reduction, REDUCTIONS, "reduction")
    losses = jnp.asarray(checks.check_array(losses, "losses"))
    checks.check_floating(losses, "losses")
    dtype = losses.dtype
    cdt = checks.compute_dtype(dtype)
    x = losses.astype(cdt)
    mask = checks.mask(where, x.shape, "(`losses.shape`)")
    zero = jnp.zeros((), cdt)
    num = jnp.sum(_inputs.apply_mask(x, mask))
    if reduction == "sum":
        return num.astype(dtype)
    if reduction == "mean":
        den = (jnp.sum(mask.astype(cdt)) if mask is not None
               else jnp.asarray(x.size, cdt))
    else:
        if weights is None:
            raise ValueError("`reduction=\"weighted_mean\"` needs `weights` (e.g. "
                             "`example_weights(labels, class_weights)`).")
        v = jnp.asarray(checks.check_array(weights, "weights"))
        checks.check_real(v, "weights")
        v = checks.broadcast(v.astype(cdt), x.shape, "weights", "(`losses.shape`)")
        den = jnp.sum(_inputs.apply_mask(v, mask))
    safe = jnp.where(den > 0, den, jnp.ones((), cdt))
    return jnp.where(den > 0, num / safe, zero).astype(dtype)
