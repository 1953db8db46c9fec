"""Mosaic for classification: the layout of the tiles, and images stitched from sources.

The tile copies themselves (static-shape windows, or masked windows of the flattened batch)
live in `_kernels._assemble`; `detection` builds the detection Mosaic from the same pieces.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jbalance._src import checks
from jbalance._src.augment._checks import (
    PLACEMENTS,
    _check_batch_classification,
    _check_centre,
    _check_images,
    _check_key,
    _check_labels,
    _check_output_size,
    _check_tiles,
)
from jbalance._src.augment._common import _exact_fraction, _mix_labels, _take
from jbalance._src.augment._kernels import _assemble
from jbalance._src.augment.outputs import Mixed, MosaicLayout
from jbalance._src.augment.partners import _example_keys, _with_partners
from jbalance._src.typing import Array, ArrayLike, Num, PRNGKey


def mosaic_layout(key: PRNGKey, source_size: tuple[int, int], *, tiles: int = 4,
                  output_size: tuple[int, int] | None = None,
                  centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
                  placement: str = "corner") -> MosaicLayout:
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
      A `MosaicLayout` ``(rects, offsets)``: int32 ``[tiles, 4]`` tile rectangles
      ``(y1, y2, x1, x2)``
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
    checks.check_one_of(placement, PLACEMENTS, "placement")
    h, w = (int(s) for s in source_size)
    oh, ow = _check_output_size(output_size, (h, w))
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
    return MosaicLayout(rects, offsets)


def mosaic_one(key: PRNGKey, images: Num[" t h w ch"], labels: Num[" t c"], *, tiles: int = 4,
               centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75),
               placement: str = "corner") -> Mixed:
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
      A `Mixed` ``(images, labels)``: here one image ``[H, W, C]`` and one label ``[K]``,
      in the input dtypes.

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
    return Mixed(out, _mix_labels(labels, weights))


def mosaic(key: PRNGKey, images: Num[" b h w ch"], labels: Num[" b c"], *, tiles: int = 4,
           centre: tuple[ArrayLike, ArrayLike] = (0.25, 0.75), placement: str = "corner",
           partner_weights: Num[" b"] | None = None) -> Mixed:
    r"""Mosaic over a batch: output ``i`` is stitched from example ``i`` and ``tiles - 1``
    partners, and has the input's height and width.

    Equals ``jax.vmap(mosaic_one)(keys, images[s], labels[s])`` with ``s[i] = [i,
    *partners[i]]`` (partners from `partner_indices` with ``num_partners=tiles - 1``, keys
    as the `jbalance.augment` module docstring says), but copies the tiles straight from
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
      A `Mixed` ``(images [B, H, W, C], labels [B, K])`` in the input dtypes; each label
      row is the tile-area-weighted mean of its sources' labels.

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
    sources = _with_partners(key_partners, b, tiles, partner_weights)
    rects, offsets = jax.vmap(lambda k: mosaic_layout(k, (h, w), tiles=tiles, centre=centre,
                                                     placement=placement))(keys)
    out = _assemble(images, sources, rects, offsets, (h, w), 0)
    weights = _tile_area_weights(rects, offsets, h, w, h, w)
    return Mixed(out, _mix_labels(_take(labels, sources), weights))


def _tile_area_weights(rects: Array, offsets: Array, h: int, w: int, oh: int, ow: int) -> Array:
    """Fraction of the output each tile's source pixels cover, ``[..., T]`` float32."""
    y1 = jnp.maximum(rects[..., 0], offsets[..., 0])
    y2 = jnp.minimum(rects[..., 1], offsets[..., 0] + h)
    x1 = jnp.maximum(rects[..., 2], offsets[..., 1])
    x2 = jnp.minimum(rects[..., 3], offsets[..., 1] + w)
    area = jnp.maximum(y2 - y1, 0) * jnp.maximum(x2 - x1, 0)
    return _exact_fraction(area, oh * ow)
