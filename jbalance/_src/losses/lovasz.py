"""The Lovász-softmax loss (`lovasz_softmax_loss`): a convex surrogate of the per-class
Jaccard loss (1 - IoU), computed with static shapes (one sort per class; no boolean
indexing), so it runs under `jit`, `vmap` and `shard_map`."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.losses import _inputs
from jbalance._src.typing import Array, ArrayLike, Float, Int


def _class_list(classes: Any, num_classes: int) -> tuple[int, ...] | None:
    """``None`` for "present"/"all", else the validated tuple of class ids (static)."""
    if isinstance(classes, str):
        checks.check_one_of(classes, ("present", "all"), "classes")
        return None
    if not isinstance(classes, Sequence) or not classes or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
        raise TypeError(f"`classes` must be 'present', 'all' or a non-empty list of class ids "
                        f"(Python ints), got {classes!r}.")
    bad = [int(c) for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"`classes` must be class ids in [0, {num_classes}) (num_classes = "
                         f"logits.shape[-1]), got {bad}.")
    return tuple(int(c) for c in classes)


def _lovasz_flat(p: Array, fg: Array, valid: Array, present_only: bool) -> Array:
    """Mean over classes of the Lovász extension of the Jaccard loss.

    ``p``, ``fg`` ``[B, K, P]`` (probabilities and 0/1 foreground of the K classes summed),
    ``valid`` ``[B, 1, P]``. Returns ``[B]``.
    """
    cdt = p.dtype
    zero = jnp.zeros((), cdt)
    # Ignored pixels get error -1: sorted (descending) after every kept pixel, where the
    # cumulative sums below no longer change, and their error is dropped from the dot product.
    err = jnp.where(valid, jnp.abs(fg - p), -jnp.ones((), cdt))
    neg_sorted, fg_sorted = jax.lax.sort((-err, fg), dimension=-1, num_keys=1)
    err_sorted = -neg_sorted
    kept = err_sorted >= 0
    fg_sorted = jax.lax.stop_gradient(fg_sorted)
    gts = jnp.sum(fg_sorted, axis=-1, keepdims=True)
    intersection = gts - jnp.cumsum(fg_sorted, axis=-1)
    union = gts + jnp.cumsum(jnp.where(kept, 1 - fg_sorted, zero), axis=-1)
    # union = 0 only before the first kept pixel of an image with none (all ignored).
    ok = union > 0
    jaccard = jnp.where(ok, 1 - intersection / jnp.where(ok, union, jnp.ones((), cdt)), zero)
    grad = jnp.concatenate([jaccard[..., :1], jnp.diff(jaccard, axis=-1)], axis=-1)
    loss = jnp.sum(jnp.where(kept, err_sorted, zero) * grad, axis=-1)  # [B, K]
    if not present_only:
        return jnp.mean(loss, axis=-1)
    present = gts[..., 0] > 0
    n = jnp.sum(present.astype(cdt), axis=-1)
    total = jnp.sum(jnp.where(present, loss, zero), axis=-1)
    return jnp.where(n > 0, total / jnp.maximum(n, jnp.ones((), cdt)), zero)


def lovasz_softmax_loss(logits: Float[" n *spatial c"], labels: Int[" n *spatial"], *,
                        classes: str | Sequence[int] = "present", per_image: bool = False,
                        ignore_index: int | None = None,
                        where: ArrayLike | None = None) -> Float[" ..."]:
    r"""Lovász-softmax loss (Berman et al., CVPR 2018), the authors' algorithm with static
    shapes.

    A tight convex surrogate of the Jaccard loss :math:`1 - \mathrm{IoU}_c`, which it
    optimises directly: unlike a per-pixel loss it is not dominated by the frequent classes.
    Often added to a cross-entropy (e.g. ``ce.mean() + lovasz``).

    .. math::
      \ell_c = \sum_{k} e_{c,\pi(k)}\, \big(J_c(\pi_{1..k}) - J_c(\pi_{1..k-1})\big),
      \quad e_{ci} = |[y_i = c] - p_{ic}|

    with the errors :math:`e_c` sorted in decreasing order (permutation :math:`\pi`) and
    :math:`J_c(\cdot)` the Jaccard loss of class ``c`` when the first pixels of the order are
    mispredicted (the authors' ``lovasz_grad``); the loss is the mean of :math:`\ell_c` over
    the classes summed. It equals the authors' ``lovasz_softmax(softmax(z), y, classes,
    per_image, ignore)`` (channels last here), except as noted under ``per_image``.

    Conventions. ``classes="present"`` averages over the classes present in the (kept)
    labels: a prediction of an absent class is penalised only through the other classes'
    errors; ``"all"`` averages over every class (an absent class contributes its largest
    predicted probability); a list averages over the listed classes, present or not (as the
    authors do). An image (or batch) with no kept pixel gives 0 with gradient 0. Ignored
    (``ignore_index``) and masked (``where=``) pixels are left out of every sort and sum.

    Args:
        logits: Unnormalised scores ``[N, *spatial, C]``, floating (rank >= 2).
        labels: Integer label maps ``[N, *spatial]``, ids in ``[0, C)`` unless ignored or
            masked (checked eagerly and under `jbalance.checks.checked`; an unchecked `jit`
            gives NaN for an out-of-range id).
        classes: ``"present"``, ``"all"`` or a list of class ids (static).
        per_image: ``False``: one loss over all the pixels of the batch (a scalar).
            ``True``: one loss per image, ``[N]``; the authors' ``per_image=True`` returns
            their mean (``.mean()`` of this).
        ignore_index: Optional label id (VOC's 255) left out.
        where: Optional boolean mask broadcastable to ``[N, *spatial]``; masked pixels are
            left out.

    Returns:
        A scalar (``per_image=False``) or ``[N]`` (``per_image=True``), dtype
        ``logits.dtype``.

    Raises:
        TypeError: ``logits`` not floating; ``labels`` not integer; a bad ``classes``.
        ValueError: ``labels`` of the wrong shape; class ids out of range; ``classes`` ids
            out of range.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])
        >>> loss = losses.lovasz_softmax_loss(logits, jnp.array([[0, 1, 1]]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        0.5

    References:
        Berman, Triki and Blaschko, `The Lovász-Softmax loss: A tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks
        <https://arxiv.org/abs/1705.08790>`_, CVPR 2018.

    .. versionadded:: 0.3.0
    """
    logits = _inputs.logits_array(logits, min_rank=2)
    z, t, dtype, cdt = _inputs.softmax_inputs(logits, labels, where, ignore_index,
                                              ids_only="lovasz_softmax_loss")
    num_classes = z.shape[-1]
    listed = _class_list(classes, num_classes)
    n = z.shape[0]
    p = jax.nn.softmax(z, axis=-1)
    fg = t.hit.astype(cdt)
    if t.mask is not None:  # masked ids were replaced by 0: not a foreground of class 0
        fg = jnp.where(t.mask[..., None], fg, jnp.zeros((), cdt))
    if listed is not None:
        idx = jnp.asarray(listed, jnp.int32)
        p, fg = jnp.take(p, idx, axis=-1), jnp.take(fg, idx, axis=-1)
    k = p.shape[-1]
    valid = (jnp.ones(z.shape[:-1], jnp.bool_) if t.mask is None else t.mask)
    rows = n if per_image else 1
    # [rows, K, pixels]: one sort per image (or over the batch) and class.
    p = jnp.swapaxes(p.reshape(rows, -1, k), 1, 2)
    fg = jnp.swapaxes(fg.reshape(rows, -1, k), 1, 2)
    valid = valid.reshape(rows, 1, -1)
    loss = _lovasz_flat(p, fg, valid, present_only=classes == "present")
    if t.valid is not None:
        wrong = ~t.valid if t.mask is None else ~t.valid & t.mask
        bad = jnp.any(wrong.reshape(rows, -1), axis=1)
        loss = jnp.where(bad, jnp.asarray(jnp.nan, cdt), loss)
    if not per_image:
        loss = loss[0]
    return loss.astype(dtype)
