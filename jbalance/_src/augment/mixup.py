"""MixUp and Remix: images blended with a partner, labels mixed (Remix: rebalanced)."""

import jax.numpy as jnp

from jbalance._src import checks
from jbalance._src.augment._checks import (
    _check_alpha,
    _check_key,
    _check_labels,
    _check_pair,
    _check_scalar,
)
from jbalance._src.augment._common import _blend, _take
from jbalance._src.augment._kernels import _update_bands
from jbalance._src.augment.outputs import Mixed
from jbalance._src.augment.partners import _batch_lambdas, _draw_lambda, _pairwise_draw
from jbalance._src.typing import Array, ArrayLike, Num, PRNGKey


def mixup_one(key: PRNGKey, image: Num[" h w ch"], label: Num[" c"], partner_image: Num[" h w ch"],
              partner_label: Num[" c"], *, alpha: ArrayLike = 1.0) -> Mixed:
    r"""MixUp of one example with a given partner.

    .. math::
      \lambda \sim \mathrm{Beta}(\alpha, \alpha), \quad
      x = \lambda x_i + (1-\lambda) x_j, \quad y = \lambda y_i + (1-\lambda) y_j

    Args:
      key: PRNG key (draws lambda).
      image: ``[H, W, C]`` (or any shape equal to ``partner_image``'s), float or integer.
        Integer images (e.g. uint8) are blended in float32, rounded half to even and clipped
        to the dtype's range.
      label: ``[K]`` floating probabilities.
      partner_image: Same shape and dtype as ``image``.
      partner_label: Same shape as ``label``.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).

    Returns:
      A `Mixed` ``(images, labels)``: here one image and one label, with the input shapes
      and dtypes.

    Raises:
      ValueError, TypeError: on mismatched shapes, non-floating labels or ``alpha <= 0``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x, y = augment.mixup_one(jax.random.key(0), jnp.ones((4, 4, 3)),
      ...                          jnp.array([1., 0.]), jnp.zeros((4, 4, 3)),
      ...                          jnp.array([0., 1.]))
      >>> bool(jnp.allclose(x[0, 0, 0], y[0]))
      True

    References:
      Zhang et al., `mixup: Beyond Empirical Risk Minimization
      <https://arxiv.org/abs/1710.09412>`_, ICLR 2018.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_labels(label, 1, "label")
    _check_labels(partner_label, 1, "partner_label")
    _check_pair(image, partner_image, "image", "partner_image")
    _check_pair(label, partner_label, "label", "partner_label")
    image, label = jnp.asarray(image), jnp.asarray(label)
    lam = _draw_lambda(key, alpha)
    return Mixed(_blend(image, jnp.asarray(partner_image), lam),
                 _blend(label, jnp.asarray(partner_label), lam))


def mixup(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, alpha: ArrayLike = 1.0,
          mode: str = "elem", partner_weights: Num[" b"] | None = None,
          in_place: bool = False) -> Mixed:
    r"""MixUp over a batch: each example is blended with a random partner.

    .. math::
      x_i' = \lambda_i x_i + (1-\lambda_i) x_{p(i)}, \quad
      y_i' = \lambda_i y_i + (1-\lambda_i) y_{p(i)}, \quad
      \lambda_i \sim \mathrm{Beta}(\alpha, \alpha)

    Partners ``p`` come from `partner_indices` (a random permutation by default). The result
    equals ``jax.vmap(mixup_one)(keys, images, labels, images[p], labels[p])`` with the keys
    derived as the `jbalance.augment` module docstring says, so it runs per shard inside
    `jax.shard_map`.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` float or integer (uint8: blended in float32, rounded).
      labels: ``[B, K]`` floating probabilities (one-hot or soft).
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).
      mode: ``"elem"`` (one lambda per example, default) or ``"batch"`` (one lambda shared
        by the batch, as timm's batch mode). Static.
      partner_weights: Optional ``[B]`` non-negative weights: partners are drawn with these
        probabilities (with replacement) instead of a permutation.
      in_place: Static. ``False`` (default): the images are written to a new array, equal
        bit for bit to `mixup_one` on each example. ``True``: they are written into the
        buffer of ``images``: when ``images`` is donated to `jax.jit` (``donate_argnums``)
        the output aliases it and no second batch-sized buffer is allocated (without
        donation XLA copies ``images`` first). The labels are the same either way; a pixel
        may differ from the default by one float32 rounding of its blend (a fused
        multiply-add), before an integer dtype's rounding. When it pays off:
        docs/augment.md, "Updating a donated batch in place".

    Returns:
      A `Mixed` ``(images, labels)``, shapes and dtypes as given.

    Raises:
      ValueError: wrong ranks, different batch sizes, ``alpha <= 0``, unknown ``mode``.
      TypeError: non-floating labels, non-numeric images, non-bool ``in_place``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((3, 8, 8, 3)); y = jax.nn.one_hot(jnp.arange(3), 3)
      >>> x2, y2 = augment.mixup(jax.random.key(0), x, y, alpha=0.4)
      >>> x2.shape, y2.shape
      ((3, 8, 8, 3), (3, 3))

    References:
      Zhang et al., `mixup: Beyond Empirical Risk Minimization
      <https://arxiv.org/abs/1710.09412>`_, ICLR 2018.
    """
    images, labels, keys, p = _pairwise_draw(key, images, labels, alpha=alpha, mode=mode,
                                             partner_weights=partner_weights, in_place=in_place)
    lam = _batch_lambdas(keys, alpha, mode)
    return Mixed(_mixup_images(images, p, lam, in_place),
                 _blend(labels, _take(labels, p), lam[:, None]))


def _mixup_images(images: Array, p: Array, lam: Array, in_place: bool) -> Array:
    """``lam * images + (1 - lam) * images[p]`` per example: one fused blend of the batch
    (the arithmetic of `mixup_one`, so equal bit for bit), or the same blend band by band
    into the buffer of ``images`` (`_update_bands`)."""
    lam = lam.reshape(lam.shape[0], *(1,) * (images.ndim - 1))
    if in_place:
        return _update_bands(images, lambda band, y0: _blend(band, _take(band, p), lam), p, lam)
    return _blend(images, _take(images, p), lam)


def remix(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, counts: Num[" c"],
          alpha: ArrayLike = 1.0, kappa: ArrayLike = 3.0, tau: ArrayLike = 0.5,
          mode: str = "elem", partner_weights: Num[" b"] | None = None,
          in_place: bool = False) -> Mixed:
    r"""Remix: MixUp images, with labels that favour the minority class of each pair.

    The images (and each ``lambda``) are exactly those of `mixup` with the same key and
    arguments. With ``i``, ``j`` the classes (argmax of the label rows) of an example and
    its partner and ``n`` the class counts, the label weight is

    .. math::
      \lambda_y = \begin{cases}
        0 & n_i / n_j \ge \kappa \text{ and } \lambda < \tau \\
        1 & n_i / n_j \le 1/\kappa \text{ and } 1 - \lambda < \tau \\
        \lambda & \text{otherwise}
      \end{cases}, \qquad
      \tilde y = \lambda_y y_i + (1 - \lambda_y) y_j

    so a pair whose image is mostly the majority example is labelled wholly as the
    minority class (Chou et al., Algorithm 1).

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` float or integer (uint8: blended in float32, rounded).
      labels: ``[B, K]`` floating probabilities (one-hot or soft; the class of a row is its
        argmax).
      counts: ``[K]`` non-negative finite class counts of the training set. A ratio with
        ``n_j = 0`` is ``inf`` (``n_i > 0``) or NaN (both 0: ``lambda_y = lambda``).
      alpha: Beta concentration, > 0 and finite (traceable).
      kappa: Imbalance ratio that triggers the rule, finite and ``>= 1`` (traceable;
        paper: 3).
      tau: Lambda threshold in ``[0, 1]`` (traceable; paper: 0.5).
      mode: ``"elem"`` (one lambda per example) or ``"batch"``, as `mixup`. Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights, as `mixup`.
      in_place: Static; as `mixup` (``True``: the images are written into the buffer of
        ``images``, aliased to it when it is donated to `jax.jit`).

    Returns:
      A `Mixed` ``(images, labels)``, shapes and dtypes as given.

    Raises:
      ValueError: the errors of `mixup`; ``counts`` not ``[K]``, negative or non-finite;
        ``kappa < 1``; ``tau`` outside ``[0, 1]`` (eagerly; under `jax.jit` through
        `jbalance.checks.checked`).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((4, 8, 8, 3)); y = jax.nn.one_hot(jnp.array([0, 0, 0, 1]), 2)
      >>> x2, y2 = augment.remix(jax.random.key(0), x, y, counts=jnp.array([900, 10]))
      >>> y2.shape
      (4, 2)

    References:
      Chou et al., `Remix: Rebalanced Mixup <https://arxiv.org/abs/2007.03943>`_,
      ECCV Workshops 2020.
    """
    images, labels, keys, p = _pairwise_draw(key, images, labels, alpha=alpha, mode=mode,
                                             partner_weights=partner_weights, in_place=in_place)
    k = labels.shape[1]
    checks.check_shape(counts, (k,), "counts", "[num_classes] (one count per label column)")
    checks.check_nonnegative(counts, "counts")
    _check_scalar(kappa, "kappa", low=1.0, finite=True)
    _check_scalar(tau, "tau", low=0.0, high=1.0, finite=True)
    lam = _batch_lambdas(keys, alpha, mode)
    cdt = checks.compute_dtype(labels.dtype)
    n = jnp.asarray(counts).astype(cdt)
    ci = jnp.argmax(labels, axis=-1)
    ratio = n[ci] / n[ci[p]]  # n_j = 0: inf (or NaN when n_i = 0 too), as documented
    kappa = jnp.asarray(kappa).astype(cdt)
    tau = jnp.asarray(tau).astype(cdt)
    lam_c = lam.astype(cdt)
    one = jnp.ones((), cdt)
    lam_y = jnp.where((ratio >= kappa) & (lam_c < tau), jnp.zeros((), cdt),
                      jnp.where((ratio <= one / kappa) & (one - lam_c < tau), one, lam_c))
    return Mixed(_mixup_images(images, p, lam, in_place),
                 _blend(labels, _take(labels, p), lam_y[:, None]))
