"""`metrics.detection_average_precision` against pycocotools' COCOeval, case by case."""

import contextlib
import io

import numpy as np
import pytest

from jbalance import metrics

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _coco_ap(pred_xywh, scores, pred_classes, pred_valid, gt_xywh, gt_classes, gt_valid,
             num_classes, iou, max_dets=100):
    """COCOeval's per-class AP at one IoU (-1 for classes without ground truth)."""
    images = [{"id": b + 1} for b in range(gt_xywh.shape[0])]
    anns = []
    for b, j in zip(*np.nonzero(gt_valid)):
        x, y, w, h = (float(v) for v in gt_xywh[b, j])
        anns.append({"id": len(anns) + 1, "image_id": int(b) + 1, "iscrowd": 0,
                     "category_id": int(gt_classes[b, j]) + 1, "bbox": [x, y, w, h],
                     "area": w * h})
    results = [{"image_id": int(b) + 1, "category_id": int(pred_classes[b, j]) + 1,
                "bbox": [float(v) for v in pred_xywh[b, j]], "score": float(scores[b, j])}
               for b, j in zip(*np.nonzero(pred_valid))]
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": k + 1} for k in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.iouThrs = np.array([iou])
        ev.params.maxDets = [max_dets]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, 0]  # [recall thresholds, classes]
    return np.array([precision[:, k].mean() if (precision[:, k] > -1).all() else -1.0
                     for k in range(num_classes)])


def _check(pred_xywh, scores, pred_classes, pred_valid, gt_xywh, gt_classes, gt_valid,
           num_classes, iou=0.5, max_dets=100, **kw):
    got = metrics.detection_average_precision(
        kw.pop("pred_boxes", pred_xywh), scores, pred_classes, pred_valid,
        kw.pop("gt_boxes", gt_xywh), gt_classes, gt_valid, num_classes=num_classes,
        iou_threshold=iou, max_detections=max_dets, box_format=kw.pop("box_format", "xywh"))
    want = _coco_ap(pred_xywh, scores, pred_classes, pred_valid, gt_xywh, gt_classes,
                    gt_valid, num_classes, iou, max_dets)
    assert got.shape == (num_classes,) and got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), want == -1)
    # Same arithmetic in float64 as pycocotools: equal, not merely close.
    np.testing.assert_array_equal(got[want > -1], want[want > -1])
    return got


def _scene(rng, b=6, m=40, g=8, c=5, *, score_levels=None, absent=(4,)):
    """Random gts, and detections jittered around them (plus wrong classes and padding)."""
    xy = rng.uniform(0, 80, (b, g, 2))
    wh = rng.uniform(4, 30, (b, g, 2))
    gt = np.concatenate([xy, wh], -1).astype(np.float32)
    present = [k for k in range(c) if k not in absent]
    gt_classes = rng.choice(present, (b, g))
    gt_valid = rng.random((b, g)) < 0.8
    src = rng.integers(0, g, (b, m))
    pred = gt[np.arange(b)[:, None], src] + rng.normal(0, 3, (b, m, 4))
    pred[..., 2:] = np.abs(pred[..., 2:])
    scores = rng.random((b, m))
    if score_levels:
        scores = np.round(scores * score_levels) / score_levels
    keep_class = rng.random((b, m)) < 0.8
    pred_classes = np.where(keep_class, gt_classes[np.arange(b)[:, None], src],
                            rng.integers(0, c, (b, m)))
    pred_valid = rng.random((b, m)) < 0.9
    return (pred.astype(np.float32), scores.astype(np.float32), pred_classes, pred_valid,
            gt, gt_classes, gt_valid, c)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou", [0.5, 0.75])
@pytest.mark.parametrize("score_levels", [None, 5])
def test_random_scenes_match_cocoeval(seed, iou, score_levels):
    args = _scene(np.random.default_rng(seed), score_levels=score_levels)
    got = _check(*args, iou=iou)
    assert np.isnan(got[4])  # class 4 has no ground truth
    assert (got[:4] > 0).any()


@pytest.mark.parametrize("max_dets", [1, 3, 10])
def test_max_detections_per_image_and_class(max_dets):
    _check(*_scene(np.random.default_rng(9), m=60), max_dets=max_dets)


@pytest.mark.parametrize("iou", [0.0, 0.3, 0.9, 1.0])
def test_thresholds_at_the_ends(iou):
    _check(*_scene(np.random.default_rng(10)), iou=iou)


def _one_image(pred, scores, gt, pred_classes=None, gt_classes=None, num_classes=1):
    pred = np.asarray(pred, np.float32)[None]
    gt = np.asarray(gt, np.float32).reshape(1, -1, 4)
    pc = np.zeros(pred.shape[:2], np.int32) if pred_classes is None else \
        np.asarray(pred_classes)[None]
    gc = np.zeros(gt.shape[:2], np.int32) if gt_classes is None else np.asarray(gt_classes)[None]
    return (pred, np.asarray(scores, np.float32)[None], pc, np.ones(pred.shape[:2], bool), gt,
            gc, np.ones(gt.shape[:2], bool), num_classes)


def test_hand_worked_duplicates():
    # Two gts; three detections: a hit, a duplicate of the same gt, a hit on the other.
    # Sorted: TP, FP, TP -> recall .5, .5, 1; precision 1, .5, 2/3; envelope 1, 2/3, 2/3.
    # 101-point AP = (51 * 1 + 50 * 2/3) / 101.
    args = _one_image([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 10, 10]], [0.9, 0.8, 0.7],
                      [[0, 0, 10, 10], [20, 20, 10, 10]])
    got = _check(*args)
    np.testing.assert_allclose(got, [(51 + 50 * 2 / 3) / 101], rtol=1e-12)


def test_hand_worked_perfect_and_missing():
    # Every gt found with nothing else: AP 1. Half the gts never found: 51 points of 1.
    perfect = _one_image([[0, 0, 5, 5], [10, 10, 5, 5]], [0.5, 0.4],
                         [[0, 0, 5, 5], [10, 10, 5, 5]])
    np.testing.assert_array_equal(_check(*perfect), [1.0])
    half = _one_image([[0, 0, 5, 5]], [0.5], [[0, 0, 5, 5], [10, 10, 5, 5]])
    np.testing.assert_allclose(_check(*half), [51 / 101], rtol=1e-12)


def test_score_ties_keep_slot_order():
    # Equal scores: the earlier slot is matched first (a stable sort, as COCOeval's
    # mergesort); here the earlier slot is the false positive.
    args = _one_image([[50, 50, 5, 5], [0, 0, 10, 10]], [0.5, 0.5], [[0, 0, 10, 10]])
    np.testing.assert_allclose(_check(*args), [0.5 * 101 / 101], rtol=1e-12)
    # Ties across images: lower image index first.
    pred = np.array([[[0, 0, 10, 10]], [[50, 50, 5, 5]]], np.float32)
    gt = np.array([[[0, 0, 10, 10]], [[0, 0, 10, 10]]], np.float32)
    args = (pred, np.full((2, 1), 0.5, np.float32), np.zeros((2, 1), np.int32),
            np.ones((2, 1), bool), gt, np.zeros((2, 1), np.int32), np.ones((2, 1), bool), 1)
    _check(*args)


def test_equal_ious_take_the_later_gt():
    # The detection overlaps two gts equally; COCOeval gives it the later one, so the
    # second detection (which only fits the earlier gt) still finds a match.
    args = _one_image([[0, 0, 10, 10], [-5, 0, 10, 10]], [0.9, 0.8],
                      [[-5, 0, 10, 10], [5, 0, 10, 10]])
    # The first detection's IoU with either gt is 1/3: threshold 0.3 lets it match.
    got = _check(*args, iou=0.3)
    np.testing.assert_array_equal(got, [1.0])


def test_empty_images_and_classes():
    rng = np.random.default_rng(12)
    pred, scores, pc, pv, gt, gc, gv, c = _scene(rng, b=5)
    gv[1] = False           # an image without ground truth: its detections are all FPs
    pv[2] = False           # an image without detections: its gts are all missed
    pc[pc == 3] = 2         # class 3 has ground truth but no detection: AP 0
    got = _check(pred, scores, pc, pv, gt, gc, gv, c)
    assert got[3] == 0.0 and np.isnan(got[4])


def test_only_false_positives_and_no_valid_slot():
    args = _one_image([[50, 50, 5, 5]], [0.9], [[0, 0, 10, 10]])
    np.testing.assert_array_equal(_check(*args), [0.0])
    pred, scores, pc, pv, gt, gc, gv, c = _one_image([[0, 0, 1, 1]], [0.9], [[0, 0, 1, 1]])
    got = metrics.detection_average_precision(pred, scores, pc, ~pv, gt, gc, ~gv,
                                              num_classes=1)
    assert np.isnan(got).all()


@pytest.mark.parametrize("fmt", ["xyxy", "cxcywh", "xywhn", "xyxyn"])
def test_box_formats(fmt):
    # Integer-valued boxes convert exactly, so every format gives COCO's xywh result.
    rng = np.random.default_rng(13)
    b, m, g = 4, 20, 6
    xy = rng.integers(0, 60, (b, g, 2))
    wh = rng.integers(2, 30, (b, g, 2))
    gt = np.concatenate([xy, wh], -1).astype(np.float32)
    src = rng.integers(0, g, (b, m))
    pred = gt[np.arange(b)[:, None], src] + rng.integers(-3, 4, (b, m, 4))
    pred[..., 2:] = np.abs(pred[..., 2:]) + 1
    scores = rng.random((b, m)).astype(np.float32)
    pc, gc = np.zeros((b, m), np.int32), np.zeros((b, g), np.int32)
    pv, gv = np.ones((b, m), bool), np.ones((b, g), bool)

    def to(x):
        x = x.astype(np.float64)
        xyxy = np.concatenate([x[..., :2], x[..., :2] + x[..., 2:]], -1)
        if fmt.startswith("xyxy"):
            out = xyxy
        elif fmt.startswith("cxcywh"):
            out = np.concatenate([x[..., :2] + x[..., 2:] / 2, x[..., 2:]], -1)
        else:
            out = x
        if fmt.endswith("n"):
            out = out / 128.0  # a power of two: exact
        return out.astype(np.float32)

    _check(pred, scores, pc, pv, gt, gc, gv, 1, pred_boxes=to(pred), gt_boxes=to(gt),
           box_format=fmt)


def test_docstring_example_by_hand():
    gt = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], np.float32)
    pred = np.array([[[0, 0, 10, 11], [50, 50, 60, 60], [21, 21, 30, 30]]], np.float32)
    ap = metrics.detection_average_precision(
        pred, np.array([[0.9, 0.8, 0.7]], np.float32), np.array([[0, 0, 0]]),
        np.ones((1, 3), bool), gt, np.array([[0, 0]]), np.ones((1, 2), bool), num_classes=2)
    np.testing.assert_allclose(ap[0], (51 + 50 * 2 / 3) / 101, rtol=1e-12)
    assert np.isnan(ap[1])


def _valid_args():
    return _one_image([[0, 0, 10, 10]], [0.9], [[0, 0, 10, 10]], num_classes=2)


def _call(args, **kw):
    pred, scores, pc, pv, gt, gc, gv, c = args
    return metrics.detection_average_precision(pred, scores, pc, pv, gt, gc, gv,
                                               num_classes=kw.pop("num_classes", c), **kw)


def test_bad_box_format():
    with pytest.raises(ValueError, match="box_format"):
        _call(_valid_args(), box_format="xyxy_abs")
    # xyxy boxes read as if they were cxcywh can still be valid; xywh read as xyxy often not.
    pred, scores, pc, pv, gt, gc, gv, c = _valid_args()
    gt = np.array([[[20, 20, 5, 5]]], np.float32)   # xywh, where x2 < x1 as xyxy
    with pytest.raises(ValueError, match="box_format"):
        _call((pred, scores, pc, pv, gt, gc, gv, c), box_format="xyxy")


def test_nan_scores_raise_and_padding_may_hold_anything():
    pred, scores, pc, pv, gt, gc, gv, c = _valid_args()
    bad = scores.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="pred_scores"):
        _call((pred, bad, pc, pv, gt, gc, gv, c))
    # Invalid (padding) slots are never read.
    pred2 = np.concatenate([pred, np.full((1, 1, 4), np.nan, np.float32)], 1)
    scores2 = np.concatenate([scores, np.full((1, 1), np.nan, np.float32)], 1)
    pc2 = np.concatenate([pc, np.full((1, 1), -7, np.int32)], 1)
    pv2 = np.array([[True, False]])
    np.testing.assert_array_equal(_call((pred2, scores2, pc2, pv2, gt, gc, gv, c)),
                                  _call((pred, scores, pc, pv, gt, gc, gv, c)))


@pytest.mark.parametrize("change,exc,match", [
    (dict(pred_classes=np.array([[2]])), ValueError, "pred_classes"),
    (dict(gt_classes=np.array([[-1]])), ValueError, "gt_classes"),
    (dict(pred_scores=np.array([[1, 2]], np.float32)), ValueError, "pred_scores"),
    (dict(pred_scores=np.array([[1]], np.int32)), TypeError, "pred_scores"),
    (dict(pred_boxes=np.zeros((1, 1, 4), np.int32)), TypeError, "pred_boxes"),
    (dict(gt_boxes=np.zeros((1, 1, 5), np.float32)), ValueError, "gt_boxes"),
    (dict(gt_boxes=np.full((1, 1, 4), np.inf, np.float32)), ValueError, "gt_boxes"),
    (dict(pred_classes=np.array([[0.0]])), TypeError, "pred_classes"),
    (dict(gt_valid=np.ones((1, 1), np.float32)), TypeError, "gt_valid"),
    (dict(gt_boxes=np.zeros((2, 1, 4), np.float32), gt_classes=np.zeros((2, 1), np.int32),
          gt_valid=np.ones((2, 1), bool)), ValueError, "Batch sizes"),
    (dict(iou_threshold=1.5), ValueError, "iou_threshold"),
    (dict(max_detections=0), ValueError, "max_detections"),
    (dict(max_detections=2.0), TypeError, "max_detections"),
    (dict(num_classes=0), ValueError, "num_classes"),
])
def test_bad_inputs(change, exc, match):
    pred, scores, pc, pv, gt, gc, gv, c = _valid_args()
    kw = dict(pred_boxes=pred, pred_scores=scores, pred_classes=pc, pred_valid=pv,
              gt_boxes=gt, gt_classes=gc, gt_valid=gv, num_classes=c)
    kw.update(change)
    with pytest.raises(exc, match=match):
        metrics.detection_average_precision(**kw)

