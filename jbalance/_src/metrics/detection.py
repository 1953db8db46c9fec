r"""Detection metrics: COCO-style per-class average precision at one IoU threshold.

Host-side NumPy on padded, fixed-slot inputs (the ``(boxes, classes, valid)`` slots of
`jbalance.boxes.pad_objects` and the detection augmentations). The result is
pycocotools' ``COCOeval`` per-class AP at that threshold, bit for bit in the tests: the same
greedy matching, the same score-tie order, the same 101-point interpolation.
"""

from typing import Any

import numpy as np

from jbalance._src import boxes as _boxes
from jbalance._src import checks
from jbalance._src.metrics.classification import _check_num_classes
from jbalance._src.typing import Bool, Float, Int

# COCOeval's "all" area range: objects whose area lies outside it are ignored.
_AREA_RANGE = (0.0, 1e5 ** 2)
# COCOeval's recall thresholds: 0, 0.01, ..., 1.
_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101, endpoint=True)


def _to_xywh(b: np.ndarray, fmt: str) -> np.ndarray:
    """Boxes ``[..., 4]`` as float64 ``(x, y, w, h)`` (COCO's box layout)."""
    b = b.astype(np.float64)
    p, q, r, s = (b[..., i] for i in range(4))
    # A normalised format is its pixel twin with width = height = 1: IoU is unchanged when
    # both boxes are scaled by the same (W, H).
    fmt = fmt[:-1] if fmt.endswith("n") else fmt
    if fmt == "xyxy":
        return np.stack([p, q, r - p, s - q], axis=-1)
    if fmt == "cxcywh":
        return np.stack([p - 0.5 * r, q - 0.5 * s, r, s], axis=-1)
    return b


def _iou_xywh(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """IoU ``[D, G]`` of xywh boxes, with COCO's arithmetic (float64, no +1, 0 when disjoint)."""
    w = (np.minimum(d[:, None, 2] + d[:, None, 0], g[None, :, 2] + g[None, :, 0])
         - np.maximum(d[:, None, 0], g[None, :, 0]))
    h = (np.minimum(d[:, None, 3] + d[:, None, 1], g[None, :, 3] + g[None, :, 1])
         - np.maximum(d[:, None, 1], g[None, :, 1]))
    inter = w * h
    union = (d[:, None, 2] * d[:, None, 3]) + (g[None, :, 2] * g[None, :, 3]) - inter
    overlap = (w > 0) & (h > 0)
    return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def _match(iou: np.ndarray, gt_ignore: np.ndarray, threshold: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching of score-sorted detections to gts (no crowd annotations).

    Each detection, best score first, takes the unmatched gt of highest IoU (at least
    ``threshold``; among equal IoUs the last in gt order), preferring gts that are not
    ignored. Returns ``(matched, ignored)`` flags per detection.
    """
    num_det, num_gt = iou.shape
    matched = np.zeros(num_det, bool)
    ignored = np.zeros(num_det, bool)
    taken = np.zeros(num_gt, bool)
    groups = [np.flatnonzero(~gt_ignore), np.flatnonzero(gt_ignore)]
    for d in range(num_det):
        for flag, group in zip((False, True), groups):
            free = group[~taken[group]]
            if free.size == 0:
                continue
            vals = iou[d, free]
            ok = vals >= threshold
            if not ok.any():
                continue
            best = vals[ok].max()
            # The last gt reaching the best IoU wins, as COCOeval's `<` comparison gives.
            g = free[np.flatnonzero(ok & (vals == best))[-1]]
            taken[g], matched[d], ignored[d] = True, True, flag
            break
    return matched, ignored


def _coco_ap(scores: np.ndarray, tp: np.ndarray, ignored: np.ndarray, num_gt: int) -> float:
    """101-point interpolated AP of one class from its detections (COCOeval.accumulate)."""
    order = np.argsort(-scores, kind="mergesort")
    tp, ignored = tp[order], ignored[order]
    tps = np.cumsum(tp & ~ignored).astype(np.float64)
    fps = np.cumsum(~tp & ~ignored).astype(np.float64)
    recall = tps / num_gt
    precision = tps / (fps + tps + np.spacing(1))
    # The precision envelope: the best precision at any recall at least as large.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    inds = np.searchsorted(recall, _RECALL_THRESHOLDS, side="left")
    q = np.zeros(_RECALL_THRESHOLDS.shape)
    hit = inds < precision.size
    q[hit] = precision[inds[hit]]
    return float(np.mean(q))


def _host(x: Any, name: str) -> np.ndarray:
    return np.asarray(checks.check_array(x, name))


def _check_slots(boxes: Any, scores: Any, classes: Any, valid: Any, prefix: str,
                 num_classes: int, fmt: str) -> tuple[np.ndarray, ...]:
    b = _host(boxes, f"{prefix}_boxes")
    checks.check_floating(b, f"{prefix}_boxes")
    checks.check_rank(b, 3, f"{prefix}_boxes", "[batch, slots, 4]")
    checks.check_shape(b, (None, None, 4), f"{prefix}_boxes", "[batch, slots, 4]")
    slots = b.shape[:2]
    doc = f"[batch, slots] = {slots}, as `{prefix}_boxes`"
    arrays = {}
    for name, x in (("classes", classes), ("valid", valid), ("scores", scores)):
        if x is None:
            continue
        arr = _host(x, f"{prefix}_{name}")
        checks.check_shape(arr, slots, f"{prefix}_{name}", doc)
        arrays[name] = arr
    checks.check_integer(arrays["classes"], f"{prefix}_classes")
    v = checks.mask(arrays["valid"], slots, doc, f"{prefix}_valid")
    v = np.asarray(v)
    if "scores" in arrays:
        checks.check_floating(arrays["scores"], f"{prefix}_scores")
        s = arrays["scores"].astype(np.float64)
        if np.isnan(s[v]).any():
            raise ValueError(f"`{prefix}_scores` must not contain NaN in valid slots (NaN has "
                             f"no rank); set `{prefix}_valid` False there.")
    else:
        s = None
    c = arrays["classes"].astype(np.int64)
    bad = v & ((c < 0) | (c >= num_classes))
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise ValueError(f"`{prefix}_classes` must hold class ids in [0, {num_classes}) in valid "
                         f"slots, got {c[i]} at {i}; set `{prefix}_valid` False for padding.")
    if not np.isfinite(b[v]).all():
        raise ValueError(f"`{prefix}_boxes` must be finite in valid slots.")
    xywh = _to_xywh(b, fmt)
    if (xywh[v][:, 2:] < 0).any():
        raise ValueError(
            f"`{prefix}_boxes` hold boxes of negative width or height in box_format={fmt!r}: "
            f"check `box_format` (one of {', '.join(map(repr, _boxes.FORMATS))}).")
    return xywh, s, c, v


def detection_average_precision(
        pred_boxes: Float[" b m 4"], pred_scores: Float[" b m"], pred_classes: Int[" b m"],
        pred_valid: Bool[" b m"], gt_boxes: Float[" b g 4"], gt_classes: Int[" b g"],
        gt_valid: Bool[" b g"], *, num_classes: int, iou_threshold: float = 0.5,
        box_format: str = "xyxy", max_detections: int = 100) -> Float[" c"]:
    r"""Per-class detection AP at one IoU threshold, as COCO's evaluation computes it.

    Use it to score a detector per class, e.g. macro AP50 (``np.nanmean`` of the result at
    ``iou_threshold=0.5``) and the worst class: on long-tailed data the mean hides the rare
    classes, the per-class values do not.

    For each class, over all images:

    1. per image, the class's valid detections are sorted by score (stable: ties keep slot
       order) and cut to the best ``max_detections`` (COCOeval's ``maxDets``, which counts
       per image *and* class; a detector that keeps 100 boxes per image meets it already);
    2. detections, best score first, are matched greedily: each takes the still unmatched
       ground-truth box of highest IoU, if that IoU is at least ``iou_threshold`` (among equal
       IoUs the later slot); matched detections are true positives, the others false;
    3. the image lists are merged by score (ties: lower image index first, then the per-image
       order) and the precision-recall curve ``P(R)`` is made monotone,
       :math:`\tilde P(r) = \max_{r' \ge r} P(r')`; then

    .. math::
      \mathrm{AP}_c = \frac{1}{101} \sum_{r \in \{0, 0.01, \ldots, 1\}} \tilde P(r)

    with :math:`\tilde P(r) = 0` beyond the largest recall reached. IoU is COCO's, on
    continuous coordinates: ``inter / (area_d + area_g - inter)`` with no ``+1``.

    This equals pycocotools' ``COCOeval(iouType="bbox")`` per-class AP with
    ``params.iouThrs = [iou_threshold]``, ``params.areaRng = [[0, 1e10]]`` ("all") and
    ``params.maxDets = [max_detections]``, for images without crowd annotations (the tests
    check this against pycocotools). As in COCOeval, a box whose area (``w h``) exceeds
    ``1e10`` is ignored: a detection matched to such a ground truth, or unmatched and that
    large itself, is neither a true nor a false positive.

    A class with no ground-truth box has no AP: it is **NaN** (COCOeval stores -1), so
    ``np.nanmean`` averages over the classes present. A class with ground truth but no
    detection has AP 0.

    Args:
      pred_boxes: Detections ``[B, M, 4]`` (floating) in ``box_format``.
      pred_scores: Confidence ``[B, M]`` (floating; only the order matters).
      pred_classes: Integer class ids ``[B, M]`` in ``[0, num_classes)`` where valid.
      pred_valid: Boolean (or integer, non-zero = valid) mask ``[B, M]`` of real detections;
        padding slots may hold anything.
      gt_boxes: Ground truth ``[B, G, 4]`` in ``box_format``.
      gt_classes: Integer class ids ``[B, G]``.
      gt_valid: Boolean mask ``[B, G]`` of real objects.
      num_classes: Number of classes ``C`` (the length of the result).
      iou_threshold: Minimum IoU of a true positive, in ``[0, 1]`` (COCOeval caps it at
        ``1 - 1e-10``). 0.5 is VOC's criterion and COCO's AP50, 0.75 COCO's AP75.
      box_format: One of `jbalance.boxes.FORMATS` (``"xyxy"``, ``"xywh"``, ``"cxcywh"`` or
        their normalised ``n`` twins; prediction and ground truth share it).
      max_detections: Detections kept per image and class (COCOeval's ``maxDets``).

    Returns:
      NumPy float64 ``[C]``: per-class AP in ``[0, 1]``, NaN for a class without ground
      truth.

    Raises:
      ValueError: an unknown ``box_format``; shapes that disagree; in valid slots, a NaN in
        ``pred_scores``, class ids outside ``[0, num_classes)``, non-finite boxes, or boxes of
        negative width or height in ``box_format`` (usually the wrong ``box_format``);
        ``iou_threshold`` outside ``[0, 1]``; ``max_detections < 1``.
      TypeError: non-floating boxes or scores, non-integer classes, non-static
        ``num_classes`` or ``max_detections``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import metrics
      >>> gt = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], np.float32)
      >>> pred = np.array([[[0, 0, 10, 11], [50, 50, 60, 60], [21, 21, 30, 30]]], np.float32)
      >>> ap = metrics.detection_average_precision(
      ...     pred, np.array([[0.9, 0.8, 0.7]], np.float32), np.array([[0, 0, 0]]),
      ...     np.ones((1, 3), bool), gt, np.array([[0, 0]]), np.ones((1, 2), bool),
      ...     num_classes=2)
      >>> print(f"{ap[0]:.4f} {ap[1]}")
      0.8350 nan

    References:
      Lin et al., `Microsoft COCO: Common Objects in Context
      <https://arxiv.org/abs/1405.0312>`_, ECCV 2014 (and the ``cocoapi`` evaluation code).
      Everingham et al., `The PASCAL Visual Object Classes (VOC) Challenge
      <https://doi.org/10.1007/s11263-009-0275-4>`_, IJCV 2010 (IoU >= 0.5, greedy matching).

    .. versionadded:: 0.2.0
    """
    fmt = _boxes.check_format(box_format)
    num_classes = _check_num_classes(num_classes)
    if isinstance(max_detections, bool) or not isinstance(max_detections, (int, np.integer)):
        raise TypeError(f"`max_detections` must be a Python int, got "
                        f"{type(max_detections).__name__}.")
    if max_detections < 1:
        raise ValueError(f"`max_detections` must be >= 1, got {max_detections}.")
    checks.check_scalar_range(iou_threshold, "iou_threshold", low=0.0, high=1.0)
    threshold = min(float(iou_threshold), 1 - 1e-10)
    pb, ps, pc, pv = _check_slots(pred_boxes, pred_scores, pred_classes, pred_valid, "pred",
                                  num_classes, fmt)
    gb, _, gc, gv = _check_slots(gt_boxes, None, gt_classes, gt_valid, "gt", num_classes, fmt)
    checks.check_same_batch({"pred_boxes": pb, "gt_boxes": gb})
    lo, hi = _AREA_RANGE
    per_class: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [
        [] for _ in range(num_classes)]
    num_gt = np.zeros(num_classes, np.int64)
    for b in range(pb.shape[0]):
        pred_idx, gt_idx = np.flatnonzero(pv[b]), np.flatnonzero(gv[b])
        for k in np.union1d(pc[b, pred_idx], gc[b, gt_idx]):
            d = pred_idx[pc[b, pred_idx] == k]
            g = gt_idx[gc[b, gt_idx] == k]
            d = d[np.argsort(-ps[b, d], kind="mergesort")][:max_detections]
            gboxes, dboxes = gb[b, g], pb[b, d]
            g_area = gboxes[:, 2] * gboxes[:, 3]
            g_ignore = (g_area < lo) | (g_area > hi)
            num_gt[k] += int(np.count_nonzero(~g_ignore))
            if d.size == 0:
                continue
            if g.size:
                matched, ignored = _match(_iou_xywh(dboxes, gboxes), g_ignore, threshold)
            else:
                matched, ignored = np.zeros(d.size, bool), np.zeros(d.size, bool)
            d_area = dboxes[:, 2] * dboxes[:, 3]
            ignored |= ~matched & ((d_area < lo) | (d_area > hi))
            per_class[k].append((ps[b, d], matched, ignored))
    out = np.full(num_classes, np.nan)
    for k in range(num_classes):
        if num_gt[k] == 0:
            continue
        if not per_class[k]:
            out[k] = 0.0
            continue
        scores, matched, ignored = (np.concatenate(x) for x in zip(*per_class[k]))
        out[k] = _coco_ap(scores, matched, ignored, int(num_gt[k]))
    return out
