"""Composite augmentations: MixUp, CutMix and Mosaic, for classification and detection.

Every batch function is built from a public one-example function that takes its partner(s)
explicitly, so users can `jax.vmap` the one-example function themselves. The batch
functions derive their randomness in one documented way::

    key_partners, key_examples = jax.random.split(key)
    partners = partner_indices(key_partners, batch_size, ...)
    keys = jax.random.split(key_examples, batch_size)      # mode="elem"
    keys = [key_examples] * batch_size                       # mode="batch": one shared draw

so ``batch_fn(key, ...)`` equals ``jax.vmap(one_fn)(keys, ..., partners...)``, and a batch
function run on a device's shard (inside `jax.shard_map`, key folded by the axis index)
draws partners from that shard only. No function keeps state or assumes a batch size.

Pixel copies (CutMix, Mosaic) never resample: every output pixel is a copy of one source
pixel or the fill value. Mosaic tiles are copied as a few static-shape windows
(`dynamic_slice` into an in-place `dynamic_update_slice`), or for layouts that do not
allow that, assembled from contiguous one-dimensional windows of the flattened batch (one
`dynamic_slice` per tile, then a select), because XLA on CPU turns per-pixel gathers of
bytes into slow scalar loops.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jbalance._src import boxes as _boxes
from jbalance._src import checks
from jbalance._src.typing import Array, ArrayLike, Bool, Float, Int, Num, PRNGKey

_MODES = ("elem", "batch")
_TILES = (2, 4)
_PLACEMENTS = ("corner", "same")


# --------------------------------------------------------------------------------------------
# Validation helpers.


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


def _check_alpha(alpha: Any) -> None:
    if np.ndim(alpha) != 0:
        raise ValueError(f"`alpha` must be a scalar, got shape {np.shape(alpha)}.")
    # inf would turn Beta(alpha, alpha) into NaN (MixUp) or a no-op (CutMix): refuse it.
    fix = "Use a finite Beta concentration (e.g. 0.2-1.0; 32 for detection MixUp)."
    checks.check_finite(alpha, "alpha", fix)
    checks.check_scalar_range(alpha, "alpha", low=0.0, low_inclusive=False)
    if not checks.is_concrete(alpha):
        checks.require(jnp.asarray(alpha) > 0, "`alpha` must be > 0.")


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
    checks.check_one_of(mode, _MODES, "mode")


def _check_in_place(in_place: Any) -> None:
    if not isinstance(in_place, (bool, np.bool_)):
        raise TypeError(f"`in_place` must be a Python bool (static), got {in_place!r}.")


def _check_tiles(tiles: Any) -> None:
    if (isinstance(tiles, bool) or not isinstance(tiles, (int, np.integer))
            or tiles not in _TILES):
        raise ValueError(f"`tiles` must be 2 or 4 (a static Python int), got {tiles!r}.")


def _check_detection(images, boxes, classes, valid, *, batched: bool, prefix: str = "") -> None:
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


# --------------------------------------------------------------------------------------------
# Shared pieces.


def _blend(x: Array, y: Array, lam: Array, partner_weight: Array | None = None) -> Array:
    """``lam * x + (1 - lam) * y`` in ``x.dtype``; integers are rounded and clipped.

    ``partner_weight`` replaces ``1 - lam`` when the caller knows it exactly (CutMix's
    pasted fraction), so a one-hot partner gets exactly that weight.
    """
    cdt = checks.compute_dtype(x.dtype)
    lam = lam.astype(cdt)
    other = jnp.ones((), cdt) - lam if partner_weight is None else partner_weight.astype(cdt)
    out = lam * x.astype(cdt) + other * y.astype(cdt)
    if jnp.issubdtype(x.dtype, jnp.integer):
        info = jnp.iinfo(x.dtype)
        out = jnp.clip(jnp.round(out), info.min, info.max)
    return out.astype(x.dtype)


def _exact_fraction(count: Array, total: int) -> Array:
    """``count / total`` in float32, correctly rounded.

    XLA rewrites a division by a (broadcast) constant into a multiplication by its
    reciprocal, which can be one ulp off. A denominator that depends on the data (the
    select never takes its first branch, as counts are non-negative) keeps a true IEEE
    division, so label weights equal pasted-pixel fractions exactly, also under `vmap`.
    """
    denom = jnp.where(count < 0, jnp.int32(1), jnp.int32(total)).astype(jnp.float32)
    return count.astype(jnp.float32) / lax.optimization_barrier(denom)


def _draw_lambda(key: PRNGKey, alpha: ArrayLike) -> Array:
    alpha = jnp.asarray(alpha, jnp.float32)
    return jax.random.beta(key, alpha, alpha, dtype=jnp.float32)


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
    key_partners, key_examples = jax.random.split(key)
    if mode == "batch":
        keys = jnp.broadcast_to(key_examples, (batch_size, *key_examples.shape))
    else:
        keys = jax.random.split(key_examples, batch_size)
    return key_partners, keys


def _take(x: Array, idx: Array) -> Array:
    return jnp.take(x, idx, axis=0, mode="clip")


# --------------------------------------------------------------------------------------------
# MixUp.


def mixup_one(key: PRNGKey, image: Num[" h w ch"], label: Num[" c"], partner_image: Num[" h w ch"],
              partner_label: Num[" c"], *, alpha: ArrayLike = 1.0) -> tuple[Num[" h w ch"],
              Float[" c"]]:
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
      ``(image, label)`` with the input shapes and dtypes.

    Raises:
      ValueError / TypeError: on mismatched shapes, non-floating labels or ``alpha <= 0``.

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
    return (_blend(image, jnp.asarray(partner_image), lam),
            _blend(label, jnp.asarray(partner_label), lam))


def _check_pair(a: Any, b: Any, name_a: str, name_b: str) -> None:
    if tuple(np.shape(a)) != tuple(np.shape(b)):
        raise ValueError(f"`{name_b}` must have the shape of `{name_a}` {tuple(np.shape(a))}, got "
                         f"{tuple(np.shape(b))}.")
    if jnp.result_type(a) != jnp.result_type(b):
        raise TypeError(f"`{name_b}` must have the dtype of `{name_a}` ({jnp.result_type(a)}), "
                        f"got {jnp.result_type(b)}.")


def _check_batch_classification(key, images, labels, mode, partner_weights):
    _check_key(key)
    _check_images(images, 4, "images")
    _check_labels(labels, 2, "labels")
    checks.check_same_batch({"images": images, "labels": labels})
    _check_mode(mode)
    _check_partner_weights(partner_weights, np.shape(images)[0])


def mixup(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, alpha: ArrayLike = 1.0,
          mode: str = "elem", partner_weights: Num[" b"] | None = None,
          in_place: bool = False) -> tuple[Num[" b h w ch"], Float[" b c"]]:
    r"""MixUp over a batch: each example is blended with a random partner.

    .. math::
      x_i' = \lambda_i x_i + (1-\lambda_i) x_{p(i)}, \quad
      y_i' = \lambda_i y_i + (1-\lambda_i) y_{p(i)}, \quad
      \lambda_i \sim \mathrm{Beta}(\alpha, \alpha)

    Partners ``p`` come from `partner_indices` (a random permutation by default). The result
    equals ``jax.vmap(mixup_one)(keys, images, labels, images[p], labels[p])`` with the keys
    derived as in this module's docstring, so it runs per shard inside `jax.shard_map`.

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
      in_place: Static. ``False`` (default): one fused blend into a new buffer, equal bit
        for bit to the `mixup_one` formula. ``True``: the batch is rewritten band by band
        (a few rows of every example at a time, read whole before written back) with
        `lax.dynamic_update_slice`; on a batch donated to `jax.jit`
        (``donate_argnums``) XLA updates its buffer in place, so no batch-sized output is
        allocated and MixUp moves about one copy of the batch. Without donation XLA first
        copies the input, which is slower than the default. XLA:CPU may fuse the
        multiply-add of this kernel into an FMA, so pixels can differ from the default by
        one float32 rounding (before an integer dtype's rounding).

    Returns:
      ``(images, labels)``, shapes and dtypes as given.

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
    return (_mixup_images(images, p, lam, in_place),
            _blend(labels, _take(labels, p), lam[:, None]))


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


def _batch_lambdas(keys: Array, alpha: ArrayLike, mode: str) -> Array:
    """``[B]`` lambdas: ``keys[i]`` draws example ``i``'s (as `mixup_one` does)."""
    if mode == "batch":  # every key is the same: one draw, broadcast.
        return jnp.broadcast_to(_draw_lambda(keys[0], alpha), keys.shape[:1])
    return jax.vmap(lambda k: _draw_lambda(k, alpha))(keys)


def _mixup_images(images: Array, p: Array, lam: Array, in_place: bool) -> Array:
    # The batch path: one fused blend of the batch with its partners (no per-example vmap),
    # the same arithmetic as `mixup_one`, so results are equal bit for bit.
    lam = lam.reshape(lam.shape[0], *(1,) * (images.ndim - 1))
    if in_place:
        return _update_bands(images, lambda band, y0: _blend(band, _take(band, p), lam), p, lam)
    return _blend(images, _take(images, p), lam)


_BAND_BYTES = 1 << 18  # a band of rows across the batch small enough to stay in L2 cache


def _band_rows(images: Array, examples: int | None = None) -> int:
    """Rows of every example (or of ``examples`` of them) that fit in `_BAND_BYTES` together
    (at least 1)."""
    n = images.shape[0] if examples is None else examples
    row_bytes = n * int(np.prod(images.shape[2:])) * images.dtype.itemsize
    return max(1, _BAND_BYTES // max(1, row_bytes))


def _divisor_rows(images: Array, examples: int | None = None) -> int:
    """The largest divisor of ``H`` that fits `_band_rows` (so bands tile the image)."""
    h = images.shape[1]
    return max(d for d in range(1, min(_band_rows(images, examples), h) + 1) if h % d == 0)


def _update_bands(images: Array, update, *operands: Array) -> Array:
    """``images`` rewritten band by band: ``band <- update(band, first_row)``.

    A band is rows ``[y0, y0 + R)`` of every example (so partners are inside it), with
    ``R`` the largest divisor of ``H`` whose band fits in `_BAND_BYTES` (at least 1 row).
    Bands are disjoint and each is read whole before it is written back with
    `lax.dynamic_update_slice`, so the result equals ``update`` applied to the whole batch;
    on a donated batch XLA keeps the loop-carried buffer in place. ``operands`` are the
    arrays ``update`` closes over: inside `jax.shard_map` the carried batch must vary over
    every mesh axis they vary over (e.g. a key folded by the device index).
    """
    images = _vary_like(images, *operands)
    b, h = images.shape[:2]
    rows = _divisor_rows(images)
    zero = jnp.int32(0)
    tail = (zero,) * (images.ndim - 2)

    def body(i, x):
        y0 = i * rows
        start = (zero, y0, *tail)
        band = lax.dynamic_slice(x, start, (b, rows, *x.shape[2:]))
        return lax.dynamic_update_slice(x, update(band, y0), start)

    return lax.fori_loop(0, h // rows, body, images)


def remix(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, counts: Num[" c"],
          alpha: ArrayLike = 1.0, kappa: ArrayLike = 3.0, tau: ArrayLike = 0.5,
          mode: str = "elem", partner_weights: Num[" b"] | None = None,
          in_place: bool = False) -> tuple[Num[" b h w ch"], Float[" b c"]]:
    r"""Remix: MixUp images, with labels that favour the minority class of each pair.

    The images (and each ``lambda``) are exactly those of `mixup` with the same key and
    arguments. With ``i``, ``j`` the classes (argmax of the label rows) of an example and
    its partner and ``n`` the class counts, the label weight is

    .. math::
      \lambda_y = \begin{cases}
        0 & n_i / n_j \ge \kappa \text{ and } \lambda < \tau \
        1 & n_i / n_j \le 1/\kappa \text{ and } 1 - \lambda < \tau \
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
      kappa: Imbalance ratio that triggers the rule, ``>= 1`` (traceable; paper: 3).
      tau: Lambda threshold in ``[0, 1]`` (traceable; paper: 0.5).
      mode: ``"elem"`` (one lambda per example) or ``"batch"``, as `mixup`. Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights, as `mixup`.
      in_place: Static; as `mixup`: ``True`` rewrites the batch band by band, in place
        when it is donated to `jax.jit`.

    Returns:
      ``(images, labels)``, shapes and dtypes as given.

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
    for name, value, low, high in (("kappa", kappa, 1.0, None), ("tau", tau, 0.0, 1.0)):
        if np.ndim(value) != 0:
            raise ValueError(f"`{name}` must be a scalar, got shape {np.shape(value)}.")
        checks.check_finite(value, name)
        checks.check_scalar_range(value, name, low=low, high=high)
        if not checks.is_concrete(value):
            v = jnp.asarray(value)
            checks.require((v >= low) & (v <= (jnp.inf if high is None else high)),
                           f"`{name}` must be in [{low:g}, {high if high is not None else 'inf'}].")
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
    return (_mixup_images(images, p, lam, in_place),
            _blend(labels, _take(labels, p), lam_y[:, None]))


# --------------------------------------------------------------------------------------------
# CutMix.


def cutmix_box(key: PRNGKey, height: int, width: int, *,
               alpha: ArrayLike = 1.0) -> tuple[Int[" 4"], Float[" "]]:
    r"""Draws one CutMix rectangle (the box whose pixels come from the partner).

    ``lam ~ Beta(alpha, alpha)``; the box has height ``floor(H sqrt(1-lam))`` and width
    ``floor(W sqrt(1-lam))`` before clipping, its centre is uniform over the pixel grid
    (as in the paper and timm), and it is clipped to the image.

    Args:
      key: PRNG key.
      height: Image height ``H`` (static int).
      width: Image width ``W`` (static int).
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).

    Returns:
      ``(box, lam)``: int32 ``[4]`` box ``(y1, y2, x1, x2)`` (half-open, clipped) and the
      float32 lambda drawn. The exact partner fraction is
      ``(y2 - y1) * (x2 - x1) / (H * W)``.

    Examples:
      >>> import jax
      >>> from jbalance import augment
      >>> box, lam = augment.cutmix_box(jax.random.key(0), 32, 32)
      >>> box.shape
      (4,)
    """
    _check_alpha(alpha)
    k_lam, k_y, k_x = jax.random.split(key, 3)
    lam = _draw_lambda(k_lam, alpha)
    ratio = jnp.sqrt(jnp.clip(1.0 - lam, 0.0, 1.0))
    cut_h = jnp.floor(height * ratio).astype(jnp.int32)
    cut_w = jnp.floor(width * ratio).astype(jnp.int32)
    cy = jax.random.randint(k_y, (), 0, height, dtype=jnp.int32)
    cx = jax.random.randint(k_x, (), 0, width, dtype=jnp.int32)
    y1 = cy - cut_h // 2
    x1 = cx - cut_w // 2
    box = jnp.stack([jnp.clip(y1, 0, height), jnp.clip(y1 + cut_h, 0, height),
                     jnp.clip(x1, 0, width), jnp.clip(x1 + cut_w, 0, width)])
    return box, lam


def cutmix_one(key: PRNGKey, image: Num[" h w ch"], label: Num[" c"], partner_image: Num[" h w ch"],
               partner_label: Num[" c"], *, alpha: ArrayLike = 1.0) -> tuple[Num[" h w ch"],
               Float[" c"]]:
    r"""CutMix of one example with a given partner.

    A rectangle drawn by `cutmix_box` is pasted from ``partner_image``; the label is
    ``(1 - f) * label + f * partner_label`` where ``f`` is the *exact* fraction of pixels
    pasted after clipping the box to the image (not the drawn ``1 - lam``).

    Args:
      key: PRNG key.
      image: ``[H, W, C]``, any numeric dtype (pixels are copied, never blended).
      label: ``[K]`` floating probabilities.
      partner_image: Same shape and dtype as ``image``.
      partner_label: Same shape as ``label``.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).

    Returns:
      ``(image, label)`` with the input shapes and dtypes.

    Raises:
      ValueError / TypeError: on bad ranks, mismatched shapes or ``alpha <= 0``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x, y = augment.cutmix_one(jax.random.key(1), jnp.ones((8, 8, 1)),
      ...                           jnp.array([1., 0.]), jnp.zeros((8, 8, 1)),
      ...                           jnp.array([0., 1.]))
      >>> bool(jnp.isclose(1 - x.mean(), y[1]))
      True

    References:
      Yun et al., `CutMix: Regularization Strategy to Train Strong Classifiers with
      Localizable Features <https://arxiv.org/abs/1905.04899>`_, ICCV 2019.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_images(image, 3, "image")
    _check_labels(label, 1, "label")
    _check_pair(image, partner_image, "image", "partner_image")
    _check_pair(label, partner_label, "label", "partner_label")
    image, label = jnp.asarray(image), jnp.asarray(label)
    h, w = image.shape[0], image.shape[1]
    box, _ = cutmix_box(key, h, w, alpha=alpha)
    rows = jnp.arange(h, dtype=jnp.int32)
    cols = jnp.arange(w, dtype=jnp.int32)
    in_rows = (rows >= box[0]) & (rows < box[1])
    in_cols = (cols >= box[2]) & (cols < box[3])
    mask = in_rows[:, None, None] & in_cols[None, :, None]
    out = jnp.where(mask, jnp.asarray(partner_image), image)
    frac = _exact_fraction((box[1] - box[0]) * (box[3] - box[2]), h * w)
    return out, _blend(label, jnp.asarray(partner_label), 1.0 - frac, frac)


def cutmix(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, alpha: ArrayLike = 1.0,
           mode: str = "elem", partner_weights: Num[" b"] | None = None,
           in_place: bool = False) -> tuple[Num[" b h w ch"], Float[" b c"]]:
    r"""CutMix over a batch: each example gets a rectangle pasted from a random partner.

    Equals ``jax.vmap(cutmix_one)(keys, images, labels, images[p], labels[p])`` (keys and
    partners as in this module's docstring). Label weights are exact pasted-pixel fractions.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      labels: ``[B, K]`` floating probabilities.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`).
      mode: ``"elem"`` (one lambda and box per example) or ``"batch"`` (one lambda and one
        box for the whole batch, as timm's batch mode). Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.
      in_place: Static. Batch mode always pastes its one box with in-place
        `lax.dynamic_update_slice` bands of the box rows (in place when the batch is
        donated to `jax.jit`, so it moves box rows only). In elem mode ``False`` (default)
        is one select into a new buffer and ``True`` copies each example's box from its
        partner tile by tile, visiting the examples cycle by cycle of the partner
        permutation (the first example of each cycle saved in a one-image scratch), so on
        a donated batch only box pixels are read and written; with ``partner_weights``
        (not a permutation) the batch is rewritten band by band, as `mixup`'s
        ``in_place``. Pixels are equal either way (copies, no arithmetic).

    Returns:
      ``(images, labels)``, shapes and dtypes as given.

    Raises:
      ValueError: wrong ranks, different batch sizes, ``alpha <= 0``, unknown ``mode``.
      TypeError: non-floating labels, non-bool ``in_place``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((5, 8, 8, 3), jnp.uint8); y = jax.nn.one_hot(jnp.arange(5), 5)
      >>> x2, y2 = augment.cutmix(jax.random.key(0), x, y)
      >>> x2.dtype, y2.shape
      (dtype('uint8'), (5, 5))

    References:
      Yun et al., `CutMix: Regularization Strategy to Train Strong Classifiers with
      Localizable Features <https://arxiv.org/abs/1905.04899>`_, ICCV 2019.
    """
    images, labels, keys, p = _pairwise_draw(key, images, labels, alpha=alpha, mode=mode,
                                             partner_weights=partner_weights, in_place=in_place)
    b, h, w = images.shape[:3]
    if mode == "batch":  # one box for the batch: paste one window (in place when donated).
        box, _ = cutmix_box(keys[0], h, w, alpha=alpha)
        out = _paste_window(images, p, box)
        boxes = jnp.broadcast_to(box, (b, 4))
    else:
        boxes, _ = jax.vmap(lambda k: cutmix_box(k, h, w, alpha=alpha))(keys)
        if in_place and partner_weights is None:  # partners form a permutation
            out = _paste_cycles(images, p, boxes)
        else:
            out = _paste_boxes(images, p, boxes, in_place)
    frac = _exact_fraction((boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2]), h * w)
    frac = frac[:, None]
    return out, _blend(labels, _take(labels, p), 1.0 - frac, frac)


def _box_masks(boxes: Array, h: int, w: int, y0: Array | int = 0) -> Array:
    """``[B, h, W, 1]`` bool: rows ``[y0, y0 + h)`` inside box ``(y1, y2, x1, x2)``."""
    rows = y0 + jnp.arange(h, dtype=jnp.int32)[None, :]
    cols = jnp.arange(w, dtype=jnp.int32)[None, :]
    in_rows = (rows >= boxes[:, 0, None]) & (rows < boxes[:, 1, None])
    in_cols = (cols >= boxes[:, 2, None]) & (cols < boxes[:, 3, None])
    return in_rows[:, :, None, None] & in_cols[:, None, :, None]


def _paste_boxes(images: Array, p: Array, boxes: Array, in_place: bool) -> Array:
    """One select over the batch: pixels inside each example's box come from its partner."""
    h, w = images.shape[1], images.shape[2]
    if in_place:
        return _update_bands(images, lambda band, y0: jnp.where(
            _box_masks(boxes, band.shape[1], w, y0), _take(band, p), band), p, boxes)
    return jnp.where(_box_masks(boxes, h, w), _take(images, p), images)


def _cycle_order(p: Array) -> tuple[Array, Array, Array]:
    """The examples of permutation ``p`` ordered cycle by cycle.

    Returns ``(order, first, last)``: ``order[t + 1] == p[order[t]]`` inside a cycle,
    ``first[t]`` / ``last[t]`` mark where each cycle starts and ends (both for a fixed
    point). A `lax.fori_loop` of ``B`` scalar steps.
    """
    b = p.shape[0]

    def body(t, carry):
        seen, nxt, order, first = carry
        new = seen[nxt] | (t == 0)
        cur = jnp.where(new, jnp.argmin(seen).astype(jnp.int32), nxt)  # first unseen
        return seen.at[cur].set(True), p[cur], order.at[t].set(cur), first.at[t].set(new)

    init = (jnp.zeros((b,), bool), jnp.int32(0), jnp.zeros((b,), jnp.int32),
            jnp.zeros((b,), bool))
    _, _, order, first = lax.fori_loop(0, b, body, tuple(_vary_like(a, p) for a in init))
    return order, first, jnp.concatenate([first[1:], jnp.ones((1,), bool)])


_TILE = (32, 64)  # rows x columns of the tiles `_paste_cycles` copies (clipped to the image)


def _paste_cycles(images: Array, p: Array, boxes: Array) -> Array:
    """Elem-mode CutMix in place: each example's own box is copied from its partner.

    ``p`` must be a permutation. Examples are visited cycle by cycle (`_cycle_order`), so
    an example's partner is still unchanged when it is read, except at the end of a cycle,
    whose partner is the cycle's first example: that one is saved whole in a one-image
    scratch buffer before it is changed. A box is copied as static ``_TILE`` tiles
    (`dynamic_slice` -> `dynamic_update_slice`), the last row and column of tiles shifted
    back to end at the box edge (a re-copied pixel gets the same value); a box smaller than
    a tile is copied through a select on the destination tile instead. Only box pixels
    are read and written, so on a donated batch CutMix moves box bytes, not the batch.

    Each loop has a traced trip count, zero when it has nothing to do, rather than a
    `lax.cond`: XLA copies a loop-carried batch into a conditional's branches.
    """
    b, h, w, c = images.shape
    th, tw = min(_TILE[0], h), min(_TILE[1], w)
    order, first, last = _cycle_order(p)
    zero = jnp.int32(0)
    save_rows = _divisor_rows(images, examples=1)  # rows of the scratch saved per step

    def paste(carry, i, box, read):
        y1, y2, x1, x2 = box[0], box[1], box[2], box[3]
        bh, bw = jnp.maximum(y2 - y1, 0), jnp.maximum(x2 - x1, 0)
        cols = (bw + tw - 1) // tw
        n = ((bh + th - 1) // th) * cols
        exact = (bh >= th) & (bw >= tw)

        def whole(k, carry):  # a tile inside the box
            x, s = carry
            ys = jnp.minimum(y1 + (k // cols) * th, y2 - th)
            xs = jnp.minimum(x1 + (k % cols) * tw, x2 - tw)
            return lax.dynamic_update_slice(x, read(x, s, ys, xs), (i, ys, xs, zero)), s

        def masked(k, carry):  # a tile inside the image, only its box pixels replaced
            x, s = carry
            lo_y, lo_x = y1 + (k // cols) * th, x1 + (k % cols) * tw
            ys, xs = jnp.clip(lo_y, 0, h - th), jnp.clip(lo_x, 0, w - tw)
            rows = ys + jnp.arange(th, dtype=jnp.int32)
            cols_ = xs + jnp.arange(tw, dtype=jnp.int32)
            inside = (((rows >= lo_y) & (rows < jnp.minimum(lo_y + th, y2)))[:, None]
                      & ((cols_ >= lo_x) & (cols_ < jnp.minimum(lo_x + tw, x2)))[None, :])
            dst = lax.dynamic_slice(x, (i, ys, xs, zero), (1, th, tw, c))
            tile = jnp.where(inside[None, :, :, None], read(x, s, ys, xs), dst)
            return lax.dynamic_update_slice(x, tile, (i, ys, xs, zero)), s

        carry = lax.fori_loop(0, jnp.where(exact, n, 0), whole, carry)
        return lax.fori_loop(0, jnp.where(exact, 0, n), masked, carry)

    def step(t, carry):
        i = order[t]
        j, box = p[i], boxes[i]
        moved = j != i  # a fixed point pastes from itself: nothing to do
        # Two loops, one of which runs: from the partner, or (cycle end) from the scratch.
        carry = paste(carry, i, jnp.where(moved & ~last[t], box, 0), lambda x, s, ys, xs:
                      lax.dynamic_slice(x, (j, ys, xs, zero), (1, th, tw, c)))
        carry = paste(carry, i, jnp.where(moved & last[t], box, 0), lambda x, s, ys, xs:
                      lax.dynamic_slice(s, (ys, xs, zero), (th, tw, c))[None])
        # Save the next cycle's first example before it changes. This reads the batch
        # after this step's writes, so XLA orders it without copying the batch.
        nxt = jnp.minimum(t + 1, b - 1)
        save = (t + 1 < b) & first[nxt] & ~last[nxt]

        def keep(k, carry):
            x, s = carry
            rows = lax.dynamic_slice(x, (order[nxt], k * save_rows, zero, zero),
                                     (1, save_rows, w, c))
            return x, lax.dynamic_update_slice(s, rows[0], (k * save_rows, zero, zero))

        return lax.fori_loop(0, jnp.where(save, h // save_rows, 0), keep, carry)

    images = _vary_like(images, p, boxes)
    scratch = lax.dynamic_index_in_dim(images, order[0], 0, keepdims=False)
    return lax.fori_loop(0, b, step, (images, scratch))[0]


def _paste_window(images: Array, p: Array, box: Array) -> Array:
    """Pastes one shared box from the partners with in-place `dynamic_update_slice` s.

    The box rows are visited in bands of ``R`` (static) rows by a `lax.fori_loop` with a
    traced trip count: each step reads the band of every example, selects the partner's
    pixels inside the box, and writes the band back. Only box rows are read and written,
    and on a donated batch XLA updates the loop-carried buffer in place, so CutMix moves
    box bytes, not the batch. A band is read whole before it is written and bands do not
    overlap in the rows they change (the last one is shifted up to stay in bounds, with
    its mask limited to its own rows), so every partner pixel is read before any write.
    """
    b, h, w, c = images.shape
    band = min(h, _band_rows(images))
    y1, y2, x1, x2 = box[0], box[1], box[2], box[3]
    steps = (jnp.maximum(y2 - y1, 0) + band - 1) // band
    xs = jnp.arange(w, dtype=jnp.int32)
    in_cols = ((xs >= x1) & (xs < x2))[None, :, None]
    zero = jnp.int32(0)

    def body(i, x):
        lo = y1 + i * band
        hi = jnp.minimum(lo + band, y2)
        y0 = jnp.minimum(lo, h - band)  # stays in bounds; the mask keeps rows [lo, hi)
        win = lax.dynamic_slice(x, (zero, y0, zero, zero), (b, band, w, c))
        ys = y0 + jnp.arange(band, dtype=jnp.int32)
        inside = ((ys >= lo) & (ys < hi))[:, None, None] & in_cols
        return lax.dynamic_update_slice(x, jnp.where(inside, _take(win, p), win),
                                        (zero, y0, zero, zero))

    return lax.fori_loop(0, steps, body, _vary_like(images, p, box))


# --------------------------------------------------------------------------------------------
# Mosaic: layout and pixel assembly.


def _check_centre(centre: Any) -> None:
    if not isinstance(centre, (tuple, list)) or len(centre) != 2:
        raise ValueError(f"`centre` must be a pair (low, high) of fractions, got {centre!r}.")
    for c in centre:
        checks.check_scalar_range(c, "centre", low=0.0, high=1.0)
    if all(checks.is_concrete(c) for c in centre) and float(centre[0]) > float(centre[1]):
        raise ValueError(f"`centre` must have low <= high, got {centre!r}.")


def mosaic_layout(key: PRNGKey, source_size: tuple[int, int], *, tiles: int = 4,
                  output_size: tuple[int, int] | None = None,
                  centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                  placement: str = "corner") -> tuple[Int[" t 4"], Int[" t 2"]]:
    r"""Draws one Mosaic layout: tile rectangles and where each source image is placed.

    The mosaic centre ``(cy, cx)`` is uniform in ``centre`` (fractions of the output size,
    as ultralytics' ``[s/2, 3s/2]`` on a ``2s`` canvas). With 4 tiles, tile 0..3 are the
    top-left, top-right, bottom-left and bottom-right quadrants around the centre; with 2
    tiles the split is left/right at ``cx`` or top/bottom at ``cy`` (a fair coin). Each
    source image is placed with the corner that faces the centre *on* the centre (the
    placement of YOLOv4/ultralytics), so tile ``t`` shows the crop of source ``t`` nearest
    the centre, pixel for pixel; parts of a tile that its source does not cover (only when
    the output is larger than the sources) get the fill value.

    Args:
      key: PRNG key.
      source_size: ``(H, W)`` of the source images (static).
      tiles: 2 or 4 (static).
      output_size: ``(out_H, out_W)`` (static), default ``source_size``.
      centre: ``(low, high)`` range of the centre as fractions of the output size, in
        ``[0, 1]`` (traceable).
      placement: ``"corner"`` (default): each source's corner facing the centre sits on the
        centre, as above. ``"same"``: every source sits at the output's origin, so tile
        ``t`` copies the same region of source ``t`` (a mosaic of identical images is that
        image; a 4-way CutMix). Static.

    Returns:
      ``(rects, offsets)``: int32 ``[tiles, 4]`` tile rectangles ``(y1, y2, x1, x2)``
      (half-open, output pixels; may be empty) and int32 ``[tiles, 2]`` offsets
      ``(dy, dx)``: source pixel ``(y, x)`` lands at output pixel ``(y + dy, x + dx)``.

    Examples:
      >>> import jax
      >>> from jbalance import augment
      >>> rects, offsets = augment.mosaic_layout(jax.random.key(0), (32, 32))
      >>> rects.shape, offsets.shape
      ((4, 4), (4, 2))
    """
    _check_tiles(tiles)
    _check_centre(centre)
    checks.check_one_of(placement, _PLACEMENTS, "placement")
    h, w = (int(s) for s in source_size)
    oh, ow = _output_size(output_size, (h, w))
    k_y, k_x, k_o = jax.random.split(key, 3)
    lo = jnp.asarray(centre[0], jnp.float32)
    hi = jnp.asarray(centre[1], jnp.float32)
    fy = jax.random.uniform(k_y, (), jnp.float32, lo, hi)
    fx = jax.random.uniform(k_x, (), jnp.float32, lo, hi)
    cy = jnp.clip(jnp.floor(fy * oh).astype(jnp.int32), 0, oh)
    cx = jnp.clip(jnp.floor(fx * ow).astype(jnp.int32), 0, ow)
    oh_, ow_ = jnp.int32(oh), jnp.int32(ow)
    if tiles == 2:
        # A fair coin picks a left/right split (no horizontal cut) or a top/bottom split.
        left_right = jax.random.bernoulli(k_o)
        cy = jnp.where(left_right, oh_, cy)
        cx = jnp.where(left_right, cx, ow_)
    zero = jnp.int32(0)
    quads = [  # (y1, y2, x1, x2), (dy, dx): the source corner facing the centre sits on it.
        ((zero, cy, zero, cx), (cy - h, cx - w)),
        ((zero, cy, cx, ow_), (cy - h, cx)),
        ((cy, oh_, zero, cx), (cy, cx - w)),
        ((cy, oh_, cx, ow_), (cy, cx)),
    ]
    if tiles == 4:
        chosen = quads
    else:
        second = [jnp.where(left_right, a, b) for a, b in
                  zip((*quads[1][0], *quads[1][1]), (*quads[2][0], *quads[2][1]))]
        chosen = [quads[0], (tuple(second[:4]), tuple(second[4:]))]
    rects = jnp.stack([jnp.stack(r) for r, _ in chosen]).astype(jnp.int32)
    offsets = jnp.stack([jnp.stack(o) for _, o in chosen]).astype(jnp.int32)
    if placement == "same":
        offsets = jnp.zeros_like(offsets)
    return rects, offsets


def _output_size(output_size: Any, source: tuple[int, int]) -> tuple[int, int]:
    if output_size is None:
        return source
    if (not isinstance(output_size, (tuple, list)) or len(output_size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                       for s in output_size)):
        raise ValueError(f"`output_size` must be None or a pair of positive ints (height, "
                         f"width), got {output_size!r}.")
    return int(output_size[0]), int(output_size[1])


def _tile_masks(rects: Array, offsets: Array, h: int, w: int, oh: int, ow: int
                ) -> tuple[Array, Array]:
    """Row ``[..., T, oh]`` and column ``[..., T, ow]`` masks: inside tile and source."""
    lead = (1,) * (rects.ndim - 1)
    ys = jnp.arange(oh, dtype=jnp.int32).reshape(*lead, oh)
    xs = jnp.arange(ow, dtype=jnp.int32).reshape(*lead, ow)
    y1, y2, x1, x2 = (rects[..., i, None] for i in range(4))
    dy, dx = offsets[..., 0, None], offsets[..., 1, None]
    rows = (ys >= jnp.maximum(y1, dy)) & (ys < jnp.minimum(y2, dy + h))
    cols = (xs >= jnp.maximum(x1, dx)) & (xs < jnp.minimum(x2, dx + w))
    return rows, cols


_WINDOWS = 4  # Windows per tile side on the fast path: fits tiles >= 1/4 of the source side.


def _assemble(images: Array, sources: Array, rects: Array, offsets: Array,
              out_hw: tuple[int, int], fill_value: ArrayLike) -> Array:
    """Pastes tile ``t`` of output ``b`` from ``images[sources[b, t]]`` at ``offsets[b, t]``.

    images ``[N, H, W, C]``; sources ``[B, T]``; rects ``[B, T, 4]``; offsets ``[B, T, 2]``.

    Fast path: when every tile is exactly its source's footprint on the output (the
    ``"corner"`` placement) and at least ``1/_WINDOWS`` of the source side in each
    dimension, the tile is a union of ``_WINDOWS**2`` overlapping windows of one static
    shape that lie inside it, so each is a plain copy (`dynamic_slice` into
    `dynamic_update_slice`, in place on the filled output): no masks, no padded copy of the
    batch. Otherwise (``"same"`` placement, thin tiles) `_assemble_masked`.
    """
    n, h, w, c = images.shape
    oh, ow = out_hw
    b, t = sources.shape
    ky, kx = min(_WINDOWS, h, oh), min(_WINDOWS, w, ow)
    wy, wx = -(-min(h, oh) // ky), -(-min(w, ow) // kx)  # static window shape
    dy, dx = offsets[..., 0], offsets[..., 1]
    y1, y2 = jnp.maximum(dy, 0), jnp.minimum(dy + h, oh)  # footprint on the output
    x1, x2 = jnp.maximum(dx, 0), jnp.minimum(dx + w, ow)
    fits = ((jnp.maximum(rects[..., 0], dy) == y1) & (jnp.minimum(rects[..., 1], dy + h) == y2)
            & (jnp.maximum(rects[..., 2], dx) == x1) & (jnp.minimum(rects[..., 3], dx + w) == x2)
            & (y2 - y1 >= wy) & (x2 - x1 >= wx)).all()
    # Window j starts at min(j * size, tile - size) from the tile's start: inside the tile,
    # and together they cover it (k * size >= the source side >= the tile side).
    ys = y1[..., None] + jnp.minimum(jnp.arange(ky, dtype=jnp.int32)[None, None] * wy,
                                     (y2 - y1 - wy)[..., None])
    xs = x1[..., None] + jnp.minimum(jnp.arange(kx, dtype=jnp.int32)[None, None] * wx,
                                     (x2 - x1 - wx)[..., None])
    shape = (b, t, ky, kx)
    plan = jnp.stack([  # one row per window: output, source, out y, source y, out x, source x
            jnp.broadcast_to(jnp.arange(b, dtype=jnp.int32)[:, None, None, None], shape),
            jnp.broadcast_to(sources[..., None, None], shape),
            jnp.broadcast_to(ys[..., None], shape),
            jnp.broadcast_to((ys - dy[..., None])[..., None], shape),
            jnp.broadcast_to(xs[..., None, :] * c, shape),
            jnp.broadcast_to((xs - dx[..., None])[..., None, :] * c, shape),
    ], axis=-1).reshape(-1, 6).astype(jnp.int32)

    def windows(images):
        flat = images.reshape(n, h, w * c)

        def copy(i, out):
            o, s_, oy, sy, ox, sx = (plan[i, j] for j in range(6))
            win = lax.dynamic_slice(flat, (s_, sy, sx), (1, wy, wx * c))
            return lax.dynamic_update_slice(out, win, (o, oy, ox))

        fill = jnp.asarray(fill_value).astype(images.dtype)
        out = jnp.broadcast_to(fill, (b, oh, ow * c))
        out = lax.fori_loop(0, plan.shape[0], copy, _vary_like(out, flat, plan))
        return out.reshape(b, oh, ow, c)

    return lax.cond(fits, windows, lambda x: _assemble_masked(x, sources, rects, offsets,
                                                             out_hw, fill_value), images)


def _vary_like(carry: Array, *operands: Array) -> Array:
    """``carry`` marked as varying over the `jax.shard_map` mesh axes ``operands`` vary over.

    A loop carry must keep its type, so a carry that starts unvarying (a fresh canvas, or a
    replicated batch) but is updated from varying values (a key folded by the device index)
    is cast first. Outside `shard_map` nothing varies and ``carry`` is returned as is.
    """
    axes = tuple(a for a in _varying_axes(*operands) if a not in _varying_axes(carry))
    return lax.pcast(carry, axes, to="varying") if axes else carry


def _varying_axes(*xs: Array) -> tuple[str, ...]:
    """Mesh axes any of ``xs`` varies over inside `shard_map` (empty outside)."""
    axes: set[str] = set()
    for x in xs:
        aval = jax.typeof(x)
        mat = getattr(aval, "mat", None)  # earlier jax releases spell it ``aval.vma``
        axes |= set(getattr(mat, "varying", None) or getattr(aval, "vma", None) or ())
    return tuple(sorted(axes))


def _assemble_masked(images: Array, sources: Array, rects: Array, offsets: Array,
                     out_hw: tuple[int, int], fill_value: ArrayLike) -> Array:
    """`_assemble` for any layout: one masked window of the whole output per tile."""
    n, h, w, c = images.shape
    oh, ow = out_hw
    b, t = sources.shape
    fill = jnp.asarray(fill_value).astype(images.dtype)
    rows, cols = _tile_masks(rects, offsets, h, w, oh, ow)  # [B,T,oh], [B,T,ow]
    if ow < w or (n + 8) * h * ow * c + 2 * oh * ow * c >= 2**31:
        return _assemble_gather(images, sources, rows, cols, offsets, out_hw, fill)
    # Pad every source row to the output row width: a shift by (dy, dx) is then one uniform
    # offset in the flattened buffer, so each tile is one contiguous window (dynamic_slice).
    # Whole padding images before/after keep every window start in bounds (no clamping).
    row_len = ow * c
    src_len = h * row_len
    out_len = oh * row_len
    before = -(-((oh * ow + ow) * c) // src_len)
    after = -(-max(0, (h * ow + w) * c + out_len - src_len) // src_len)
    padded = jnp.pad(images, ((before, after), (0, 0), (0, ow - w), (0, 0)))
    flat = lax.optimization_barrier(padded.reshape(-1))
    starts = ((sources + before) * src_len
              - (offsets[..., 0] * ow + offsets[..., 1]) * c).astype(jnp.int32)
    col_bytes = jnp.repeat(cols, c, axis=-1)  # [B, T, ow*C]: a mask per channel byte.
    out = jnp.broadcast_to(fill, (b, oh, row_len))
    for i in range(t):
        window = jax.vmap(lambda s: lax.dynamic_slice(flat, (s,), (out_len,)))(starts[:, i])
        window = window.reshape(b, oh, row_len)
        mask = rows[:, i, :, None] & col_bytes[:, i, None, :]
        out = jnp.where(mask, window, out)
    return out.reshape(b, oh, ow, c)


def _assemble_gather(images, sources, rows, cols, offsets, out_hw, fill):
    # Fallback when the output is narrower than the sources (rows cannot share a stride).
    n, h, w, c = images.shape
    oh, ow = out_hw
    b, t = sources.shape
    ys = jnp.arange(oh, dtype=jnp.int32)
    xs = jnp.arange(ow, dtype=jnp.int32)
    out = jnp.broadcast_to(fill, (b, oh, ow, c))
    for i in range(t):
        sy = jnp.clip(ys[None, :] - offsets[:, i, 0, None], 0, h - 1)
        sx = jnp.clip(xs[None, :] - offsets[:, i, 1, None], 0, w - 1)
        win = images[sources[:, i, None, None], sy[:, :, None], sx[:, None, :]]
        mask = rows[:, i, :, None, None] & cols[:, i, None, :, None]
        out = jnp.where(mask, win, out)
    return out


def _tile_area_weights(rects: Array, offsets: Array, h: int, w: int, oh: int, ow: int) -> Array:
    """Fraction of the output each tile's source pixels cover, ``[..., T]`` float32."""
    y1 = jnp.maximum(rects[..., 0], offsets[..., 0])
    y2 = jnp.minimum(rects[..., 1], offsets[..., 0] + h)
    x1 = jnp.maximum(rects[..., 2], offsets[..., 1])
    x2 = jnp.minimum(rects[..., 3], offsets[..., 1] + w)
    area = jnp.maximum(y2 - y1, 0) * jnp.maximum(x2 - x1, 0)
    return _exact_fraction(area, oh * ow)


def _mix_labels(labels: Array, weights: Array) -> Array:
    """``sum_t weights[..., t] * labels[..., t, :]`` in the labels' dtype."""
    cdt = checks.compute_dtype(labels.dtype)
    out = jnp.einsum("...t,...tk->...k", weights.astype(cdt), labels.astype(cdt))
    return out.astype(labels.dtype)


def _mosaic_sources(key_partners, b, tiles, partner_weights):
    p = partner_indices(key_partners, b, num_partners=tiles - 1,
                        partner_weights=partner_weights)
    return jnp.concatenate([jnp.arange(b, dtype=jnp.int32)[:, None], p], axis=1)


# --------------------------------------------------------------------------------------------
# Mosaic for classification.


def mosaic_one(key: PRNGKey, images: Num[" t h w ch"], labels: Num[" t c"], *, tiles: int = 4,
               centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
               placement: str = "corner") -> tuple[Num[" h w ch"], Float[" c"]]:
    r"""Mosaic of ``tiles`` given source images into one image of the same size.

    The layout comes from `mosaic_layout` (output size = source size, so every tile is
    fully covered by its source): tile ``t`` is the crop of ``images[t]`` nearest the
    mosaic centre, copied pixel for pixel. The label is the tile-area-weighted mean.

    .. math::
      y = \sum_t \frac{|R_t|}{H W} \, y_t

    Args:
      key: PRNG key.
      images: ``[tiles, H, W, C]`` sources (tile ``t`` comes from ``images[t]``), any
        numeric dtype.
      labels: ``[tiles, K]`` floating probabilities.
      tiles: 2 or 4 (static).
      centre: ``(low, high)`` range of the mosaic centre as fractions of H and W.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.

    Returns:
      ``(image [H, W, C], label [K])`` in the input dtypes.

    Raises:
      ValueError: ``tiles`` not in {2, 4}, ``images`` not holding ``tiles`` sources, bad
        ranks.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.arange(4.)[:, None, None, None] * jnp.ones((4, 8, 8, 1))
      >>> img, lab = augment.mosaic_one(jax.random.key(0), x, jnp.eye(4))
      >>> bool(jnp.isclose(lab.sum(), 1.0))
      True

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    _check_key(key)
    _check_tiles(tiles)
    _check_images(images, 4, "images")
    _check_labels(labels, 2, "labels")
    checks.check_same_batch({"images": images, "labels": labels})
    if np.shape(images)[0] != tiles:
        raise ValueError(f"`images` must hold `tiles`={tiles} sources along axis 0, got shape "
                         f"{tuple(np.shape(images))}.")
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    h, w = images.shape[1], images.shape[2]
    rects, offsets = mosaic_layout(key, (h, w), tiles=tiles, centre=centre,
                                   placement=placement)
    src = jnp.arange(tiles, dtype=jnp.int32)[None]
    out = _assemble(images, src, rects[None], offsets[None], (h, w), 0)[0]
    weights = _tile_area_weights(rects, offsets, h, w, h, w)
    return out, _mix_labels(labels, weights)


def mosaic(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, tiles: int = 4,
           centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75), placement: str = "corner",
           partner_weights: Num[" b"] | None = None) -> tuple[Num[" b h w ch"], Float[" b c"]]:
    r"""Mosaic over a batch: output ``i`` is stitched from example ``i`` and ``tiles - 1``
    partners, and has the input's height and width.

    Equals ``jax.vmap(mosaic_one)(keys, images[s], labels[s])`` with ``s[i] = [i,
    *partners[i]]`` (partners from `partner_indices` with ``num_partners=tiles - 1``, keys
    as in this module's docstring), but assembles all outputs from contiguous windows of
    the batch without materialising ``images[s]``.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      labels: ``[B, K]`` floating probabilities.
      tiles: 2 or 4 (static).
      centre: ``(low, high)`` range of the mosaic centre as fractions of H and W.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.

    Returns:
      ``(images [B, H, W, C], labels [B, K])`` in the input dtypes; each label row is the
      tile-area-weighted mean of its sources' labels.

    Raises:
      ValueError: bad ranks, different batch sizes, ``tiles`` not in {2, 4}.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((3, 16, 16, 3), jnp.uint8); y = jnp.eye(3)
      >>> x2, y2 = augment.mosaic(jax.random.key(0), x, y, tiles=2)
      >>> x2.shape, y2.shape
      ((3, 16, 16, 3), (3, 3))

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    _check_tiles(tiles)
    _check_batch_classification(key, images, labels, "elem", partner_weights)
    _check_centre(centre)
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    b, h, w = images.shape[:3]
    key_partners, keys = _example_keys(key, b, "elem")
    sources = _mosaic_sources(key_partners, b, tiles, partner_weights)
    rects, offsets = jax.vmap(
            lambda k: mosaic_layout(k, (h, w), tiles=tiles, centre=centre,
                              placement=placement))(keys)
    out = _assemble(images, sources, rects, offsets, (h, w), 0)
    weights = _tile_area_weights(rects, offsets, h, w, h, w)
    return out, _mix_labels(_take(labels, sources), weights)


# --------------------------------------------------------------------------------------------
# Detection: Mosaic and MixUp with boxes.


def _move_boxes(boxes: Array, valid: Array, rects: Array, offsets: Array, h: int, w: int,
                min_size: ArrayLike, min_visible: ArrayLike) -> tuple[Array, Array]:
    """Shifts ``[..., T, M, 4]`` pixel xyxy boxes by their tile offset, clips, filters.

    The box policy of `boxes.clip_boxes` (clip; drop non-finite, inverted, empty boxes)
    with the bounds of the tile and of the box's own source footprint, then Mosaic's own
    ``min_size`` / ``min_visible`` filters.
    """
    dt = boxes.dtype
    dy = offsets[..., 0, None].astype(dt)
    dx = offsets[..., 1, None].astype(dt)
    ylo = jnp.maximum(rects[..., 0], offsets[..., 0])[..., None].astype(dt)
    yhi = jnp.minimum(rects[..., 1], offsets[..., 0] + h)[..., None].astype(dt)
    xlo = jnp.maximum(rects[..., 2], offsets[..., 1])[..., None].astype(dt)
    xhi = jnp.minimum(rects[..., 3], offsets[..., 1] + w)[..., None].astype(dt)
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    zero = jnp.zeros((), dt)
    area = jnp.maximum(x2 - x1, zero) * jnp.maximum(y2 - y1, zero)  # before the shift
    shifted = jnp.stack([x1 + dx, y1 + dy, x2 + dx, y2 + dy], axis=-1)
    out, keep, _ = _boxes._clip_filter(shifted, valid, xlo, ylo, xhi, yhi)
    bw, bh = out[..., 2] - out[..., 0], out[..., 3] - out[..., 1]
    min_size = jnp.asarray(min_size).astype(dt)
    min_visible = jnp.asarray(min_visible).astype(dt)
    keep = keep & (area > 0) & (bw >= min_size) & (bh >= min_size) & (
            bw * bh >= min_visible * area)
    return jnp.where(keep[..., None], out, zero), keep


def _boxes_in(boxes: Array, valid: Array, box_format: str, hw: tuple[int, int]) -> Array:
    """Boxes in ``box_format`` -> pixel xyxy, after the wrong-format check."""
    _boxes.check_plausible(boxes, valid, box_format, hw)
    return _boxes.convert(boxes, src=box_format, dst="xyxy", image_size=hw)


def _boxes_out(xyxy: Array, box_format: str, hw: tuple[int, int], dtype: Any) -> Array:
    return _boxes.convert(xyxy, src="xyxy", dst=box_format, image_size=hw).astype(dtype)


def _mosaic_boxes_inputs(key, images, boxes, classes, valid, tiles, min_size, min_visible,
                         centre, fill_value, box_format):
    """Checks shared by `mosaic_boxes_one` and `mosaic_boxes`; returns the inputs as arrays."""
    _check_key(key)
    _check_tiles(tiles)
    _check_images(images, 4, "images")
    _boxes.check_format(box_format)
    _check_detection(images, boxes, classes, valid, batched=True)
    _check_box_options(min_size, min_visible, centre)
    _check_fill(fill_value, jnp.result_type(images))
    return (jnp.asarray(images), jnp.asarray(boxes), jnp.asarray(classes),
            jnp.asarray(valid))


def mosaic_boxes_one(key: PRNGKey, images: Num[" t h w ch"], boxes: Float[" t m 4"],
                     classes: Int[" t m"],
                     valid: Bool[" t m"], *, tiles: int = 4,
                     output_size: tuple[int, int] | None = None,
                     min_size: ArrayLike = 2.0, min_visible: ArrayLike = 0.1,
                     centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                     placement: str = "corner", fill_value: ArrayLike = 0,
                     box_format: str = "xyxy") -> tuple[Array, Array, Array, Array]:
    r"""Detection Mosaic of ``tiles`` given sources with their boxes.

    Pixels as `mosaic_one` (layout from `mosaic_layout`), on an output of ``output_size``
    (e.g. ``(2H, 2W)``, the ultralytics canvas); uncovered pixels get ``fill_value``
    (ultralytics uses 114). Box ``m`` of source ``t`` goes to slot ``t * M + m``: it is
    shifted with its tile, clipped to the tile, and kept (``valid=True``) only if it was
    valid, its clipped width and height are ``>= min_size`` pixels and its clipped area is
    ``>= min_visible`` times its original area (ultralytics' defaults: 2 px, 10%).
    Dropped slots get zero boxes; ``classes`` are carried unchanged.

    Args:
      key: PRNG key.
      images: ``[tiles, H, W, C]`` sources, any numeric dtype.
      boxes: ``[tiles, M, 4]`` floating boxes in ``box_format`` (default pixel
        ``(x1, y1, x2, y2)``).
      classes: ``[tiles, M]`` integer class ids.
      valid: ``[tiles, M]`` bool, False for padding slots.
      tiles: 2 or 4 (static).
      output_size: ``(out_H, out_W)`` (static), default ``(H, W)``.
      min_size: Minimum clipped width and height in pixels (traceable).
      min_visible: Minimum fraction of the original area still visible (traceable).
      centre: ``(low, high)`` range of the mosaic centre as fractions of the output size.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.
      fill_value: Value of pixels no source covers, finite and in the image dtype's range
        (uint8: 0-255; checked, never wrapped).
      box_format: Format of ``boxes`` and of the returned boxes, one of
        `jbalance.boxes.FORMATS` (static; default ``"xyxy"`` pixels). Normalised formats
        (e.g. YOLO's ``"cxcywhn"``) are read against the source size and written against
        the output size. Boxes clearly in another format (all valid boxes within
        ``[0, 1]`` on a >= 32-pixel image in a pixel format, or coordinates > 2 in a
        normalised one) raise a `ValueError` (under `jit`: through `jbalance.checks.checked`).

    Returns:
      ``(image [out_H, out_W, C], boxes [tiles*M, 4], classes [tiles*M],
      valid [tiles*M])``.

    Raises:
      ValueError / TypeError: bad ranks, shapes or dtypes, ``tiles`` not the int 2 or 4,
        ``fill_value`` out of range, boxes in the wrong format.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((4, 32, 32, 3), jnp.uint8)
      >>> b = jnp.tile(jnp.array([[[4., 4., 28., 28.]]]), (4, 1, 1))
      >>> c = jnp.zeros((4, 1), jnp.int32); v = jnp.ones((4, 1), bool)
      >>> img, b2, c2, v2 = augment.mosaic_boxes_one(jax.random.key(0), x, b, c, v,
      ...                                            output_size=(64, 64))
      >>> img.shape, b2.shape
      ((64, 64, 3), (4, 4))

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    images, boxes, classes, valid = _mosaic_boxes_inputs(
        key, images, boxes, classes, valid, tiles, min_size, min_visible, centre, fill_value,
        box_format)
    if images.shape[0] != tiles:
        raise ValueError(f"`images` must hold `tiles`={tiles} sources along axis 0, got shape "
                         f"{tuple(images.shape)}.")
    h, w = images.shape[1], images.shape[2]
    oh, ow = _output_size(output_size, (h, w))
    rects, offsets = mosaic_layout(key, (h, w), tiles=tiles, output_size=(oh, ow),
                                   centre=centre, placement=placement)
    src = jnp.arange(tiles, dtype=jnp.int32)[None]
    xyxy = _boxes_in(boxes, valid, box_format, (h, w))  # checks the format before work
    out = _assemble(images, src, rects[None], offsets[None], (oh, ow), fill_value)[0]
    nb, keep = _move_boxes(xyxy, valid, rects, offsets, h, w, min_size, min_visible)
    m = boxes.shape[1]
    nb = _boxes_out(nb, box_format, (oh, ow), boxes.dtype)
    return (out, nb.reshape(tiles * m, 4), classes.reshape(tiles * m),
            keep.reshape(tiles * m))


def _check_box_options(min_size, min_visible, centre):
    checks.check_scalar_range(min_size, "min_size", low=0.0)
    checks.check_scalar_range(min_visible, "min_visible", low=0.0, high=1.0)
    _check_centre(centre)


def mosaic_boxes(key: PRNGKey, images: Num[" b h w ch"], boxes: Float[" b m 4"],
                 classes: Int[" b m"],
                 valid: Bool[" b m"], *, tiles: int = 4,
                 output_size: tuple[int, int] | None = None, min_size: ArrayLike = 2.0,
                 min_visible: ArrayLike = 0.1,
                 centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                 placement: str = "corner", fill_value: ArrayLike = 0,
                 partner_weights: ArrayLike | None = None,
                 box_format: str = "xyxy") -> tuple[Array, Array, Array, Array]:
    r"""Detection Mosaic over a batch, with static box slots.

    Output ``i`` is stitched from example ``i`` and ``tiles - 1`` partners. Equals
    ``jax.vmap(mosaic_boxes_one)`` over ``images[s], boxes[s], classes[s], valid[s]`` with
    ``s[i] = [i, *partners[i]]`` (keys and partners as in this module's docstring).

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]``, any numeric dtype (pixels are copied).
      boxes: ``[B, M, 4]`` floating boxes in ``box_format`` (default pixel
        ``(x1, y1, x2, y2)``).
      classes: ``[B, M]`` integer class ids.
      valid: ``[B, M]`` bool, False for padding slots.
      tiles: 2 or 4 (static).
      output_size: ``(out_H, out_W)`` (static), default ``(H, W)``; ``(2H, 2W)`` gives the
        ultralytics canvas.
      min_size: Minimum clipped box width and height in pixels (default 2, traceable).
      min_visible: Minimum visible fraction of a box's original area (default 0.1).
      centre: ``(low, high)`` range of the mosaic centre as fractions of the output size.
      placement: ``"corner"`` (YOLOv4/ultralytics) or ``"same"``; see `mosaic_layout`.
      fill_value: Value of pixels no source covers (ultralytics uses 114); finite and in
        the image dtype's range (checked, never wrapped).
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.
      box_format: Format of ``boxes`` and of the returned boxes, one of
        `jbalance.boxes.FORMATS` (static; default ``"xyxy"`` pixels). Normalised formats
        (e.g. YOLO's ``"cxcywhn"``) are read against the source size and written against
        the output size. Boxes clearly in another format (all valid boxes within
        ``[0, 1]`` on a >= 32-pixel image in a pixel format, or coordinates > 2 in a
        normalised one) raise a `ValueError` (under `jit`: through `jbalance.checks.checked`).

    Returns:
      ``(images [B, out_H, out_W, C], boxes [B, tiles*M, 4], classes [B, tiles*M],
      valid [B, tiles*M])``; slot ``t*M + m`` holds box ``m`` of the tile-``t`` source.

    Raises:
      ValueError / TypeError: bad ranks, shapes or dtypes, different batch sizes,
        ``tiles`` not the int 2 or 4, ``fill_value`` out of range, boxes in the wrong
        format.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
      >>> b = jnp.array([[[4., 4., 28., 28.]]] * 2)
      >>> c = jnp.zeros((2, 1), jnp.int32); v = jnp.ones((2, 1), bool)
      >>> out = augment.mosaic_boxes(jax.random.key(0), x, b, c, v)
      >>> [o.shape for o in out]
      [(2, 32, 32, 3), (2, 4, 4), (2, 4), (2, 4)]

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    images, boxes, classes, valid = _mosaic_boxes_inputs(
        key, images, boxes, classes, valid, tiles, min_size, min_visible, centre, fill_value,
        box_format)
    _check_partner_weights(partner_weights, np.shape(images)[0])
    b, h, w = images.shape[:3]
    m = boxes.shape[1]
    oh, ow = _output_size(output_size, (h, w))
    key_partners, keys = _example_keys(key, b, "elem")
    sources = _mosaic_sources(key_partners, b, tiles, partner_weights)
    rects, offsets = jax.vmap(lambda k: mosaic_layout(
            k, (h, w), tiles=tiles, output_size=(oh, ow), centre=centre,
            placement=placement))(keys)
    xyxy = _boxes_in(boxes, valid, box_format, (h, w))  # checks the format before work
    out = _assemble(images, sources, rects, offsets, (oh, ow), fill_value)
    nb, keep = _move_boxes(_take(xyxy, sources), _take(valid, sources), rects, offsets, h, w,
                           min_size, min_visible)
    nb = _boxes_out(nb, box_format, (oh, ow), boxes.dtype)
    return (out, nb.reshape(b, tiles * m, 4), _take(classes, sources).reshape(b, tiles * m),
            keep.reshape(b, tiles * m))


def mixup_boxes_one(key: PRNGKey, image: Num[" h w ch"], boxes: Float[" m 4"], classes: Int[" m"],
                    valid: Bool[" m"], partner_image: Num[" h w ch"], partner_boxes: Float[" pm 4"],
                    partner_classes: Int[" pm"], partner_valid: Bool[" pm"], *,
                    alpha: ArrayLike = 32.0,
                    box_format: str = "xyxy") -> tuple[Array, Array, Array, Array, Array]:
    r"""Detection MixUp of one image with a given partner (YOLOv4 style).

    Pixels are blended with ``lam ~ Beta(alpha, alpha)`` as in `mixup_one`; the boxes are
    the concatenation of both images' boxes (slots ``[0, M)`` from ``image``, ``[M, 2M)``
    from the partner) after the box policy of `mosaic_boxes` (`jbalance.boxes.clip_boxes`:
    clipped to the image; non-finite, inverted, empty and off-image boxes dropped: zero
    box, ``valid=False``), and ``box_weights`` gives each kept box the weight of its image
    (``lam`` or ``1 - lam``; 0 for dropped and padding slots) for losses that want it.

    Args:
      key: PRNG key.
      image: ``[H, W, C]`` float or integer (integers are rounded).
      boxes: ``[M, 4]`` floating boxes in ``box_format``. classes: ``[M]`` int.
        valid: ``[M]`` bool.
      partner_image: Same shape and dtype as ``image``.
      partner_boxes: ``[M, 4]``. partner_classes: ``[M]``. partner_valid: ``[M]``.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`). The default 32 is ultralytics' and
        YOLOv5's ``Beta(32, 32)``, which keeps ``lam`` near 0.5.
      box_format: Format of the boxes in and out, one of `jbalance.boxes.FORMATS`
        (static; default ``"xyxy"`` pixels); wrong-format boxes raise as in `mosaic_boxes`.

    Returns:
      ``(image [H, W, C], boxes [2M, 4], classes [2M], valid [2M], box_weights [2M])``;
      ``box_weights`` has the boxes' dtype.

    Raises:
      ValueError / TypeError: bad ranks, shapes or dtypes, ``alpha <= 0``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((8, 8, 3)); b = jnp.array([[1., 1., 5., 5.]])
      >>> c = jnp.array([3]); v = jnp.array([True])
      >>> out = augment.mixup_boxes_one(jax.random.key(0), x, b, c, v, x, b, c, v)
      >>> float(out[4].sum())
      1.0

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_images(image, 3, "image")
    _check_pair(image, partner_image, "image", "partner_image")
    _check_detection(image, boxes, classes, valid, batched=False)
    _check_detection(partner_image, partner_boxes, partner_classes, partner_valid,
                     batched=False, prefix="partner_")
    _check_pair(boxes, partner_boxes, "boxes", "partner_boxes")
    _boxes.check_format(box_format)
    image = jnp.asarray(image)
    lam = _draw_lambda(key, alpha)
    both = _mixup_targets(jnp.concatenate([jnp.asarray(boxes), jnp.asarray(partner_boxes)]),
                          jnp.concatenate([jnp.asarray(classes), jnp.asarray(
                              partner_classes).astype(jnp.result_type(classes))]),
                          jnp.concatenate([jnp.asarray(valid), jnp.asarray(partner_valid)]),
                          lam, image.shape[:2], box_format)
    return (_blend(image, jnp.asarray(partner_image), lam), *both)


def _mixup_targets(boxes: Array, classes: Array, valid: Array, lam: Array,
                   hw: tuple[int, int], box_format: str) -> tuple[Array, Array, Array, Array]:
    """``[..., 2M]`` own + partner slots -> the box policy, then weights ``lam`` / ``1-lam``."""
    dt = boxes.dtype
    m = boxes.shape[-2] // 2
    xyxy = _boxes_in(boxes, valid, box_format, hw)
    zero = jnp.zeros((), xyxy.dtype)
    h, w = (jnp.asarray(s, xyxy.dtype) for s in hw)
    clipped, keep, _ = _boxes._clip_filter(xyxy, valid, zero, zero, w, h)
    clipped = jnp.where(keep[..., None], clipped, zero)
    lam_b = lam.astype(dt)[..., None]
    own = (jnp.arange(2 * m) < m).reshape(*(1,) * (keep.ndim - 1), 2 * m)
    weights = jnp.where(keep, jnp.where(own, lam_b, 1 - lam_b), jnp.zeros((), dt))
    return _boxes_out(clipped, box_format, hw, dt), classes, keep, weights


def mixup_boxes(key: PRNGKey, images: Num[" b h w ch"], boxes: Float[" b m 4"],
                classes: Int[" b m"],
                valid: Bool[" b m"], *, alpha: ArrayLike = 32.0, mode: str = "elem",
                partner_weights: Num[" b"] | None = None, box_format: str = "xyxy",
                in_place: bool = False) -> tuple[Array, Array, Array, Array, Array]:
    r"""Detection MixUp over a batch: pixels blended, boxes of both images concatenated.

    Equals ``jax.vmap(mixup_boxes_one)`` with partners ``p`` from `partner_indices` (keys
    as in this module's docstring).

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` float or integer (integers are rounded).
      boxes: ``[B, M, 4]`` floating boxes in ``box_format``.
      classes: ``[B, M]`` integer class ids.
      valid: ``[B, M]`` bool.
      alpha: Beta concentration, finite and > 0 (traceable; checked eagerly, under `jit`
        through `jbalance.checks.checked`); default 32 as ultralytics.
      mode: ``"elem"`` (one lambda per example) or ``"batch"`` (one for the batch). Static.
      partner_weights: Optional ``[B]`` non-negative partner-sampling weights.
      box_format: Format of the boxes in and out, one of `jbalance.boxes.FORMATS`
        (static; default ``"xyxy"`` pixels); wrong-format boxes raise as in `mosaic_boxes`.
      in_place: Static; as `mixup`: ``True`` rewrites the batch band by band, in place
        when it is donated to `jax.jit`.

    Returns:
      ``(images [B, H, W, C], boxes [B, 2M, 4], classes [B, 2M], valid [B, 2M],
      box_weights [B, 2M])``: slots ``[0, M)`` are the example's own boxes with weight
      ``lam``, ``[M, 2M)`` the partner's with ``1 - lam``, after the box policy of
      `mosaic_boxes` (clipped; bad boxes dropped); dropped and padding slots weigh 0.

    Raises:
      ValueError / TypeError: bad ranks, shapes or dtypes, different batch sizes,
        ``alpha <= 0``, unknown ``mode``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jbalance import augment
      >>> x = jnp.zeros((3, 8, 8, 3)); b = jnp.ones((3, 2, 4))
      >>> c = jnp.zeros((3, 2), jnp.int32); v = jnp.ones((3, 2), bool)
      >>> [o.shape for o in augment.mixup_boxes(jax.random.key(0), x, b, c, v)]
      [(3, 8, 8, 3), (3, 4, 4), (3, 4), (3, 4), (3, 4)]

    References:
      Bochkovskiy et al., `YOLOv4: Optimal Speed and Accuracy of Object Detection
      <https://arxiv.org/abs/2004.10934>`_, 2020.
    """
    _check_key(key)
    _check_alpha(alpha)
    _check_mode(mode)
    _check_images(images, 4, "images")
    _check_detection(images, boxes, classes, valid, batched=True)
    _check_partner_weights(partner_weights, np.shape(images)[0])
    _boxes.check_format(box_format)
    _check_in_place(in_place)
    images = jnp.asarray(images)
    boxes, classes, valid = jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(valid)
    b = images.shape[0]
    key_partners, keys = _example_keys(key, b, mode)
    p = partner_indices(key_partners, b, partner_weights=partner_weights)[:, 0]
    lam = _batch_lambdas(keys, alpha, mode)
    cat = lambda x: jnp.concatenate([x, _take(x, p)], axis=1)  # noqa: E731
    targets = _mixup_targets(cat(boxes), cat(classes), cat(valid), lam, images.shape[1:3],
                             box_format)  # first: checks the box format before the pixels
    return (_mixup_images(images, p, lam, in_place), *targets)


