"""Partners and keys: which examples a batch function mixes, and the draws it makes.

Every batch function derives its randomness the one way `jbalance.augment` documents:
``key`` splits into a partner key (`partner_indices`) and an example key, which splits into
one key per example (``mode="elem"``) or is shared by the batch (``mode="batch"``).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.augment._checks import (
    _check_alpha,
    _check_batch_classification,
    _check_in_place,
    _check_key,
    _check_partner_weights,
)
from jbalance._src.typing import Array, ArrayLike, Int, Num, PRNGKey


def partner_indices(key: PRNGKey, batch_size: int, *, num_partners: int = 1,
                    partner_weights: Num[" b"] | None = None) -> Int[" b p"]:
    r"""Draws partner example indices for composite augmentations.

    By default each column is an independent random permutation of ``range(batch_size)``,
    so every example is used exactly once as a partner per column (any batch size works,
    odd or 1; an example may be its own partner). With ``partner_weights``, partners are
    drawn independently with replacement, example ``j`` with probability
    ``w_j / sum(w)``: give rare-class examples larger weights to mix them in more often
    (class-aware mixing).

    Args:
      key: PRNG key.
      batch_size: Number of examples (static Python int).
      num_partners: Partners per example (static), e.g. ``tiles - 1`` for Mosaic.
      partner_weights: Optional ``[batch_size]`` non-negative weights, not all zero.
        Checked when concrete; under `jit` an all-zero vector gives arbitrary partners.

    Returns:
      int32 array ``[batch_size, num_partners]`` of indices in ``[0, batch_size)``.

    Raises:
      ValueError: if ``partner_weights`` has the wrong shape or invalid values.

    Examples:
      >>> import jax
      >>> from jbalance import augment
      >>> augment.partner_indices(jax.random.key(0), 5).shape
      (5, 1)
    """
    _check_key(key)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if not isinstance(num_partners, (int, np.integer)) or num_partners < 1:
        raise ValueError(f"`num_partners` must be a positive int, got {num_partners!r}.")
    _check_partner_weights(partner_weights, batch_size)
    if partner_weights is None:
        keys = jax.random.split(key, num_partners)
        cols = jax.vmap(lambda k: jax.random.permutation(k, batch_size))(keys)
        return cols.T.astype(jnp.int32)
    w = jnp.asarray(partner_weights)
    w = w.astype(checks.compute_dtype(w.dtype))
    logits = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1)), -jnp.inf)
    draws = jax.random.categorical(key, logits, shape=(batch_size, num_partners))
    return draws.astype(jnp.int32)


def _example_keys(key: PRNGKey, batch_size: int, mode: str) -> tuple[Array, Array]:
    """``(key_partners, keys [B])``: the split every batch function starts with."""
    key_partners, key_examples = jax.random.split(key)
    if mode == "batch":
        keys = jnp.broadcast_to(key_examples, (batch_size, *key_examples.shape))
    else:
        keys = jax.random.split(key_examples, batch_size)
    return key_partners, keys


def _draw_lambda(key: PRNGKey, alpha: ArrayLike) -> Array:
    """``lam ~ Beta(alpha, alpha)``, float32 (the draw of every ``*_one`` function)."""
    alpha = jnp.asarray(alpha, jnp.float32)
    return jax.random.beta(key, alpha, alpha, dtype=jnp.float32)


def _batch_lambdas(keys: Array, alpha: ArrayLike, mode: str) -> Array:
    """``[B]`` lambdas: ``keys[i]`` draws example ``i``'s (as `mixup_one` does)."""
    if mode == "batch":  # every key is the same: one draw, broadcast.
        return jnp.broadcast_to(_draw_lambda(keys[0], alpha), keys.shape[:1])
    return jax.vmap(lambda k: _draw_lambda(k, alpha))(keys)


def _pairwise_draw(key, images, labels, *, alpha, mode, partner_weights, in_place):
    """The batch prologue shared by `mixup`, `remix` and `cutmix`: checks, keys, partners."""
    _check_batch_classification(key, images, labels, mode, partner_weights)
    _check_in_place(in_place)
    _check_alpha(alpha)
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    b = images.shape[0]
    key_partners, keys = _example_keys(key, b, mode)
    p = partner_indices(key_partners, b, partner_weights=partner_weights)[:, 0]
    return images, labels, keys, p


def _with_partners(key_partners: PRNGKey, batch_size: int, tiles: int,
                   partner_weights: ArrayLike | None) -> Array:
    """``[B, tiles]`` Mosaic sources: example ``i`` itself, then ``tiles - 1`` partners."""
    p = partner_indices(key_partners, batch_size, num_partners=tiles - 1,
                        partner_weights=partner_weights)
    return jnp.concatenate([jnp.arange(batch_size, dtype=jnp.int32)[:, None], p], axis=1)
