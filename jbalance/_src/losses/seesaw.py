"""Seesaw loss (`seesaw_loss`) and its state, the running class counts (`update_counts`)."""

import functools

import jax
import jax.numpy as jnp

from jbalance._src import checks
from jbalance._src.losses import _inputs
from jbalance._src.typing import Array, ArrayLike, Float, Num


def update_counts(counts: Num[" c"], labels: Num[" *labels"], *,
                  where: ArrayLike | None = None) -> Num[" c"]:
    r"""Adds a batch's labels to running per-class counts: :math:`n_c + \sum_i [y_i = c]`.

    The state of `seesaw_loss` (mmdetection's ``cum_samples``); carry it in the train state.

    Args:
        counts: Current counts ``[num_classes]``, finite, non-negative.
        labels: Integer class ids (any shape; every id must be in ``[0, num_classes)`` unless
            masked), or probabilities ``[..., num_classes]`` (summed per class; needs floating
            ``counts``).
        where: Optional boolean mask broadcastable to the ids' shape (probabilities: to
            ``labels.shape[:-1]``); masked labels are not counted.

    Returns:
        Updated counts, shape and dtype of ``counts``.

    Raises:
        TypeError: wrong dtypes.
        ValueError: class ids out of range, bad ``counts``, shape mismatches.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jbalance import losses
        >>> print(losses.update_counts(jnp.array([5, 0, 1]), jnp.array([1, 1, 2])))
        [5 2 2]

    References:
        Wang et al., `Seesaw Loss for Long-Tailed Instance Segmentation
        <https://arxiv.org/abs/2008.10032>`_, CVPR 2021 (mmdetection's ``cum_samples``).

    .. versionadded:: 0.2.0
    """
    counts = _inputs.counts_vector(counts)
    num_classes = counts.shape[0]
    labels = jnp.asarray(checks.check_array(labels, "labels"))
    if jnp.issubdtype(labels.dtype, jnp.integer):
        mask = checks.mask(where, labels.shape, "(`labels.shape`)")
        valid = (labels >= 0) & (labels < num_classes)
        checks.require(valid if mask is None else valid | ~mask,
                       f"`labels` must be class ids in [0, {num_classes}) (the length of "
                       f"`counts`); exclude others with `where=`.")
        keep = valid if mask is None else valid & mask
        add = jnp.zeros((num_classes,), counts.dtype).at[labels.ravel()].add(
            keep.ravel().astype(counts.dtype), mode="drop")
        return counts + add
    if jnp.issubdtype(labels.dtype, jnp.floating):
        if not jnp.issubdtype(counts.dtype, jnp.floating):
            raise TypeError("Probability `labels` need floating `counts` (fractional counts).")
        checks.check_min_rank(labels, 1, "labels", "[..., num_classes]")
        if labels.shape[-1] != num_classes:
            raise ValueError(f"Probability `labels` must have last axis {num_classes} (the "
                             f"length of `counts`), got shape {labels.shape}.")
        checks.check_nonnegative(labels, "labels")
        y = labels.astype(counts.dtype)
        mask = checks.mask(where, labels.shape[:-1], "(`labels.shape[:-1]`)")
        if mask is not None:
            y = jnp.where(mask[..., None], y, jnp.zeros((), y.dtype))
        return counts + jnp.sum(y.reshape(-1, num_classes), axis=0)
    raise TypeError(f"`labels` must be integer class ids or real probabilities, got dtype "
                    f"{labels.dtype}.")


def seesaw_loss(logits: Float[" *batch c"], labels: Num[" *labels"], *, counts: Num[" c"],
                p: ArrayLike = 0.8,
                q: ArrayLike = 2.0, eps: ArrayLike = 1e-2, where: ArrayLike | None = None,
                ignore_index: int | None = None) -> Float[" *batch"]:
    r"""Seesaw loss (Wang et al., CVPR 2021): a cross-entropy that rebalances negative gradients.

    For an example of class :math:`i` the non-target logits are shifted by the log of the
    seesaw factor :math:`S_{ij} = M_{ij} C_{ij}`:

    .. math::
      \ell = -\log \frac{e^{z_i}}{e^{z_i} + \sum_{j \ne i} S_{ij} e^{z_j}}, \quad
      M_{ij} = \begin{cases} (N_j / N_i)^p & N_j < N_i \\ 1 & \text{else} \end{cases}, \quad
      C_{ij} = \begin{cases} (\sigma_j / \sigma_i)^q & \sigma_j > \sigma_i \\ 1 & \text{else}
      \end{cases}

    with :math:`N` the cumulative counts (clamped at 1), :math:`\sigma` the softmax of the
    *stopped-gradient* logits and :math:`\sigma_i` clamped at ``eps``. The mitigation factor
    :math:`M` shrinks the penalty a frequent class :math:`i` puts on rarer classes; the
    compensation factor :math:`C` restores it for classes that are wrongly scored higher.
    Equal to mmdetection's / mmpretrain's ``seesaw_ce_loss(z, y, None, counts, C, p, q, eps,
    reduction="none")``. The factors are constants of the loss, as in mmdetection (no gradient
    flows into ``p``, ``q``, ``eps`` or ``counts``); the compensation factor is normalised by
    its largest value, so the loss is finite for any logits and any ``q`` and ``eps``. Update
    ``counts`` every step with `update_counts` *before* the loss, as mmdet does.

    Args:
        logits: Unnormalised scores, shape ``[..., num_classes]``, floating.
        labels: Integer class ids, shape ``logits.shape[:-1]``.
        counts: Cumulative examples per class ``[num_classes]``, finite, non-negative.
        p: Mitigation exponent, finite, ``>= 0`` (default 0.8; 0 disables it). Traceable.
        q: Compensation exponent, finite, ``>= 0`` (default 2; 0 disables it). Traceable.
        eps: Lower clamp of :math:`\sigma_i`, finite, ``> 0`` (default 0.01). Traceable.
        where: Optional boolean mask broadcastable to ``logits.shape[:-1]``; masked examples
            give 0 loss and 0 gradient.
        ignore_index: Optional class id (e.g. -100) whose examples give 0.

    Returns:
        Losses of shape ``logits.shape[:-1]`` and dtype ``logits.dtype``.

    Raises:
        TypeError: wrong dtypes (probability labels are not supported).
        ValueError: wrong shapes, class ids out of range, bad ``counts``/``p``/``q``/``eps``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from jbalance import losses
        >>> loss = losses.seesaw_loss(jnp.array([[1.0, 2.0, 0.0]]), jnp.array([0]),
        ...                           counts=jnp.array([100, 10, 1]))
        >>> print(np.round(np.asarray(loss, np.float64), 4))
        [1.4333]

    References:
        Wang et al., `Seesaw Loss for Long-Tailed Instance Segmentation
        <https://arxiv.org/abs/2008.10032>`_, CVPR 2021; mmdetection
        ``mmdet/models/losses/seesaw_loss.py``.

    .. versionadded:: 0.2.0
    """
    z, t, dtype, cdt = _inputs.softmax_inputs(logits, labels, where, ignore_index,
                                              ids_only="`seesaw_loss`")
    n = _inputs.counts_vector(counts, z.shape[-1]).astype(cdt)
    pp = _inputs.hyper(p, "p", (), cdt, low=0.0)
    qq = _inputs.hyper(q, "q", (), cdt, low=0.0)
    ee = _inputs.hyper(eps, "eps", (), cdt, low=0.0, low_inclusive=False)
    log_n = jnp.log(jnp.maximum(n, jnp.ones((), cdt)))
    # The mitigation factor min(1, (N_j / N_i)^p) = min(1, a_j / a_i), a = (N / max N)^p in
    # (0, 1]: one per-class vector, so the factor is a multiply per element.
    a = jnp.exp(pp * (log_n - jnp.max(log_n)))
    stop = jax.lax.stop_gradient
    loss = _seesaw_ce(z, t.ids, stop(a), stop(qq), stop(ee), _inputs.static_int(q))
    return _inputs.finish(loss, t, dtype)


def _seesaw_parts(z: Array, ids: Array, a: Array, q: Array, eps: Array,
                  q_int: int | None) -> tuple[Array, Array]:
    """The loss and softmax(z + log S) (its gradient plus the one-hot), in the scale of
    e = exp(z - max z): one exp per element.

    With s = sum(e), sigma_j / max(sigma_i, eps) = e_j / E with E = max(e_i, eps s), and the
    compensation factor is max(1, e_j / E)^q. Divided by its largest value, max(1, 1 / E)^q
    (that of the arg-max, where e = 1), it is rho^q with rho = max(e_j, E) / max(E, 1) in
    (0, 1], which never overflows, whatever q and eps; the target's own term becomes
    e_i rho_i^q. The divisor returns in the loss as -q min(log E, 0).
    """
    cdt = z.dtype
    one = jnp.ones((), cdt)
    stop = jax.lax.stop_gradient
    m = stop(jnp.max(z, axis=-1, keepdims=True))
    e = jnp.exp(z - m)
    s = jnp.sum(e, axis=-1, keepdims=True)
    z_i = jnp.take_along_axis(z, ids[..., None], axis=-1, mode="clip")
    big_e = stop(jnp.maximum(jnp.exp(z_i - m), eps * s))  # [..., 1]
    log_e = jnp.log(big_e)
    if q_int is None:
        log_rho = stop(jnp.maximum(z - m, log_e) - jnp.maximum(log_e, jnp.zeros((), cdt)))
        comp = jnp.exp(q * log_rho)
    elif q_int == 0:
        comp = jnp.ones_like(e)
    else:
        # Per-example reciprocal: a multiply per element instead of a divide.
        rho = stop(jnp.maximum(e, big_e) * (one / jnp.maximum(big_e, one)))
        comp = jax.lax.integer_pow(rho, q_int)
    a_i = _inputs.take(a, ids)[..., None]
    mit = jnp.minimum(jnp.broadcast_to(a, z.shape) * (one / jnp.maximum(a_i, jnp.finfo(cdt).tiny)),
                      one)
    iota = jax.lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)
    fe = e * comp * jnp.where(iota == ids[..., None], one, mit)
    s2 = jnp.sum(fe, axis=-1, keepdims=True)
    loss = jnp.log(s2) - (z_i - m) - q * jnp.minimum(log_e, jnp.zeros((), cdt))
    return loss[..., 0], fe * (one / s2)


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _seesaw_ce(z: Array, ids: Array, a: Array, q: Array, eps: Array, q_int: int | None) -> Array:
    return _seesaw_parts(z, ids, a, q, eps, q_int)[0]


@_seesaw_ce.defjvp
def _seesaw_ce_jvp(q_int, primals, tangents):
    # The factors S are constants (mmdet's detached scores), so the derivative of
    # log(sum_j S_ij e^z_j) - z_i is softmax(z + log S) - onehot: from the forward products.
    z, ids, a, q, eps = primals
    zd = tangents[0]
    loss, prob = _seesaw_parts(z, ids, a, q, eps, q_int)
    zd_i = jnp.take_along_axis(zd, ids[..., None], axis=-1, mode="clip")[..., 0]
    return loss, jnp.sum(prob * zd, axis=-1) - zd_i
