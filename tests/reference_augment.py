"""Independent NumPy references for jbalance.augment, written from the papers' descriptions.

They take the random draws (lambda, the CutMix box, the mosaic centre) as inputs and build
the outputs with plain NumPy slicing and loops, never calling jbalance.
"""

import numpy as np


def np_mixup(x, y, xp, yp, lam):
    """MixUp of one example (Zhang et al. 2018): blend pixels and labels with ``lam``."""
    lam = np.float32(lam)
    if np.issubdtype(x.dtype, np.integer):
        out = lam * x.astype(np.float32) + (np.float32(1) - lam) * xp.astype(np.float32)
        info = np.iinfo(x.dtype)
        out = np.clip(np.round(out), info.min, info.max).astype(x.dtype)
    else:
        out = (lam * x.astype(np.float32) + (1 - lam) * xp.astype(np.float32)).astype(x.dtype)
    return out, lam * y + (1 - lam) * yp


def cutmix_box_from_draws(lam, cy, cx, h, w):
    """The CutMix box (Yun et al. 2019, as timm): ``H sqrt(1 - lam)`` by ``W sqrt(1 - lam)``
    pixels (floored) centred on pixel ``(cy, cx)``, clipped to the image; ``(y1, y2, x1, x2)``.

    float32 arithmetic, as the library draws lambda in float32 (so the floors agree).
    """
    ratio = np.sqrt(np.float32(1) - np.float32(lam), dtype=np.float32)
    cut_h = int(np.floor(np.float32(h) * ratio))
    cut_w = int(np.floor(np.float32(w) * ratio))
    y1, x1 = cy - cut_h // 2, cx - cut_w // 2
    return (min(max(y1, 0), h), min(max(y1 + cut_h, 0), h),
            min(max(x1, 0), w), min(max(x1 + cut_w, 0), w))


def np_cutmix(x, y, xp, yp, box):
    """CutMix of one example (Yun et al. 2019): paste ``xp[y1:y2, x1:x2]``; exact weights."""
    y1, y2, x1, x2 = (int(v) for v in box)
    out = x.copy()
    out[y1:y2, x1:x2] = xp[y1:y2, x1:x2]
    frac = np.float32((y2 - y1) * (x2 - x1)) / np.float32(x.shape[0] * x.shape[1])
    return out, (1 - frac) * y + frac * yp


def mosaic_regions(tiles, centre, out_hw, left_right=True):
    """Tile rectangles (y1, y2, x1, x2) around the centre, tile order TL, TR, BL, BR."""
    cy, cx = centre
    oh, ow = out_hw
    if tiles == 4:
        return [(0, cy, 0, cx), (0, cy, cx, ow), (cy, oh, 0, cx), (cy, oh, cx, ow)]
    if left_right:
        return [(0, oh, 0, cx), (0, oh, cx, ow)]
    return [(0, cy, 0, ow), (cy, oh, 0, ow)]


def source_origins(tiles, centre, out_hw, src_hw, left_right=True, placement="corner"):
    """Where each tile's source has its top-left pixel in the output.

    "corner" (YOLOv4/ultralytics): the source corner facing the mosaic centre sits on the
    centre: a tile left of the vertical centre line has its source's right edge on that
    line, a tile right of it has its left edge there; likewise above/below. With a
    left/right split the horizontal "line" is the output's bottom edge, with a top/bottom
    split the vertical one is the output's right edge. "same": every source at the origin.
    """
    cy, cx = centre
    oh, ow = out_hw
    h, w = src_hw
    if placement == "same":
        return [(0, 0)] * tiles
    if tiles == 2 and left_right:
        cy = oh
    elif tiles == 2:
        cx = ow
    above, below = cy - h, cy
    left, right = cx - w, cx
    if tiles == 4:
        return [(above, left), (above, right), (below, left), (below, right)]
    if left_right:
        return [(above, left), (above, right)]
    return [(above, left), (below, left)]


def np_mosaic(sources, regions, origins, out_hw, *, fill=0):
    """Builds the mosaic canvas with NumPy slicing (as ultralytics does on its canvas).

    ``sources[t]``, placed with its top-left pixel at ``origins[t]``, fills ``regions[t]``;
    pixels outside every placed source keep ``fill``.
    """
    oh, ow = out_hw
    h, w, c = sources.shape[1:]
    canvas = np.full((oh, ow, c), fill, sources.dtype)
    for src, (y1, y2, x1, x2), (oy, ox) in zip(sources, regions, origins):
        ya, yb = max(y1, oy), min(y2, oy + h)
        xa, xb = max(x1, ox), min(x2, ox + w)
        if ya < yb and xa < xb:
            canvas[ya:yb, xa:xb] = src[ya - oy:yb - oy, xa - ox:xb - ox]
    return canvas


def np_mosaic_boxes(boxes, valid, regions, origins, src_hw, *, min_size=2.0, min_visible=0.1):
    """Shift each tile's boxes by its source origin, clip to the tile, filter (ultralytics).

    A box stays only if it was valid, finite, of positive area, still has some area inside
    its tile, and passes ``min_size`` (clipped width and height) and ``min_visible``
    (clipped over original area).
    """
    h, w = src_hw
    out_boxes, out_valid = [], []
    for t, region in enumerate(regions):
        oy, ox = origins[t]
        y1, y2, x1, x2 = region
        ylo, yhi = max(y1, oy), min(y2, oy + h)
        xlo, xhi = max(x1, ox), min(x2, ox + w)
        for box, ok in zip(boxes[t], valid[t]):
            bx1, by1, bx2, by2 = (float(v) for v in box)
            area = max(bx2 - bx1, 0.0) * max(by2 - by1, 0.0)
            nx1 = min(max(bx1 + ox, xlo), xhi)
            nx2 = min(max(bx2 + ox, xlo), xhi)
            ny1 = min(max(by1 + oy, ylo), yhi)
            ny2 = min(max(by2 + oy, ylo), yhi)
            bw, bh = nx2 - nx1, ny2 - ny1
            # The box policy (valid, finite, a positive area, some of it inside the tile),
            # then ultralytics' filters.
            keep = bool(ok) and np.isfinite(box).all() and area > 0 and bw > 0 and bh > 0 \
                and bw >= min_size and bh >= min_size and bw * bh >= min_visible * area
            out_boxes.append([nx1, ny1, nx2, ny2] if keep else [0.0] * 4)
            out_valid.append(keep)
    return np.asarray(out_boxes, np.float64), np.asarray(out_valid)


def np_clip_boxes(boxes, valid, h, w):
    """The documented box policy in NumPy: clip pixel xyxy boxes to the image; drop boxes
    that are padding, non-finite, inverted/empty, or wholly outside; zero dropped slots."""
    boxes = np.asarray(boxes, np.float64)
    out = np.zeros_like(boxes)
    keep = np.zeros(boxes.shape[:-1], bool)
    for idx in np.ndindex(*boxes.shape[:-1]):
        x1, y1, x2, y2 = boxes[idx]
        if not valid[idx] or not np.isfinite(boxes[idx]).all() or x2 <= x1 or y2 <= y1:
            continue
        c = [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]
        if c[2] > c[0] and c[3] > c[1]:
            out[idx], keep[idx] = c, True
    return out, keep


def np_remix_label_weight(lam, n_i, n_j, kappa, tau):
    """Remix (Chou et al. 2020, Algorithm 1): the label weight of the example's own class."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.float64(n_i) / np.float64(n_j)
    if ratio >= kappa and lam < tau:
        return 0.0
    if ratio <= 1 / kappa and 1 - lam < tau:
        return 1.0
    return lam
