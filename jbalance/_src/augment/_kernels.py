"""The XLA:CPU copy kernels behind `in_place=True`, batch-mode CutMix and Mosaic.

Each kernel returns exactly what a plain select or gather over the batch would (tests pin
them against the NumPy references); they differ in which bytes they read and write, so that
on a batch donated to `jax.jit` XLA can update the buffer in place. docs/augment.md ("How it
is made fast on CPU", "Updating a donated batch in place") explains the choices.

* Row bands (`_update_bands`): rows ``[y0, y0 + R)`` of every example, read whole and
  written back; any per-pixel update of the batch with partners inside the band.
* Permutation cycles (`_paste_cycles`): elem-mode CutMix boxes copied tile by tile,
  visiting the partner permutation cycle by cycle through a one-image scratch.
* Windows (`_paste_window`, `_assemble`): one shared CutMix box, and Mosaic tiles, as a
  few static-shape `dynamic_slice` -> `dynamic_update_slice` copies.

Pixel copies never resample: every output pixel is one source pixel or the fill value.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jbalance._src.augment._common import _take, _vary_like
from jbalance._src.typing import Array, ArrayLike

# --------------------------------------------------------------------------------------------
# Row bands: the budget, and the in-place rewrite of every example's rows.


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


# --------------------------------------------------------------------------------------------
# CutMix: a box per example (select, bands or permutation cycles), or one shared box.


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
# Mosaic: tiles copied as static-shape windows, or masked windows of the flat batch.


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

    Fast path: when every source's footprint on the output lies inside its tile (the
    ``"corner"`` placement; the rest of a larger tile keeps the fill) and is at least
    ``1/_WINDOWS`` of the source side in each dimension, the footprint is a union of
    ``_WINDOWS**2`` overlapping windows of one static shape that lie inside it, so each is a
    plain copy (`dynamic_slice` into `dynamic_update_slice`, in place on the filled
    output): no masks, no padded copy of the batch. Otherwise (``"same"`` placement, thin
    tiles) `_assemble_masked`.
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
