"""Metric benchmarks: `jbalance.metrics` against scikit-learn, pycocotools and NumPy.

Cases (same process, same data; every note records the load average at that moment):

* ``average_precision [N, C]``: `metrics.average_precision` under `jit` (after compilation)
  against scikit-learn's per-class loop, ``average_precision_score(labels[:, c],
  scores[:, c])`` for every class (issue 19's target: at least 10x at ``[100k, 1000]``).
  Long-tailed labels: class prevalence from 20% down to 0.1% (geometric); scores are a
  normal draw plus 1 for the positives, float32. The note gives the largest difference to
  scikit-learn over the classes with positives.
* ``average_precision XLA sort``: the accelerator path (plain XLA sort and scans) run on the
  CPU, on the first 100 classes, next to the default path on the same classes: why the CPU
  backend takes NumPy's sort.
* ``detection_average_precision``: against pycocotools' ``COCOeval`` (evaluate + accumulate at
  one IoU, ``maxDets=[100]``, ``areaRng`` all) on the same detections; the note gives the
  largest AP difference.
* ``segmentation_confusion``: `[8, 512, 512]` label maps with 21 classes and ``ignore_index``
  255, under `jit`, against NumPy's ``bincount`` of the same pairs.

``--quick`` shrinks every size.
"""

import contextlib
import io
import os
import warnings

import numpy as np

from benchmarks import _harness
from benchmarks._harness import Row


def _load() -> str:
    return "load %.2f/%.2f/%.2f" % os.getloadavg()


def _multilabel(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prevalence = np.geomspace(0.2, 0.001, c).astype(np.float32)
    labels = rng.random((n, c), dtype=np.float32) < prevalence
    scores = rng.standard_normal((n, c), dtype=np.float32)
    scores += labels
    return labels, scores


def _sk_loop(sk, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    out = np.full(labels.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes without positives warn in scikit-learn
        for c in range(labels.shape[1]):
            if labels[:, c].any():
                out[c] = sk.average_precision_score(labels[:, c], scores[:, c])
    return out


def _case_average_precision(n: int, c: int, rows: list[Row]) -> None:
    import jax
    import jax.numpy as jnp

    from jbalance import metrics
    from jbalance._src.metrics.ranking import _ap_sorted

    labels, scores = _multilabel(n, c)
    y, s = jnp.asarray(labels), jnp.asarray(scores)
    fn = jax.jit(metrics.average_precision)
    case = f"average_precision [{n}, {c}]"
    t = _harness.time_fn(lambda: fn(y, s), repeats=3, warmup=1)
    ours = np.asarray(fn(y, s))
    rows.append(Row(case, "jbalance.metrics.average_precision (jit)", t, baseline=True,
                    note=f"{1e3 * t / c:.2f} ms/class; {_load()}"))
    sk, why = _harness.try_import("sklearn.metrics")
    if sk is None:
        rows.append(Row(case, "sklearn average_precision_score per class", None, note=why))
    else:
        t_sk, ref = _harness.time_once(lambda: _sk_loop(sk, labels, scores))
        diff = np.nanmax(np.abs(ours - ref))
        rows.append(Row(case, "sklearn average_precision_score per class", t_sk,
                        note=f"one run; {t_sk / t:.1f}x jbalance; max |diff| {diff:.1e}; "
                             f"{_load()}"))
    # The XLA path on the CPU, on a slice (its sort is the slow part).
    k = min(c, 100)
    case = f"average_precision XLA sort [{n}, {k}]"
    ys, ss = y[:, :k], s[:, :k]
    t = _harness.time_fn(lambda: fn(ys, ss), repeats=3, warmup=1)
    rows.append(Row(case, "jbalance default (CPU: NumPy sort in pure_callback)", t,
                    baseline=True, note=_load()))
    xla = jax.jit(lambda a, b: _ap_sorted(a, b, None, jnp.float32))
    t = _harness.time_fn(lambda: xla(ys, ss), repeats=2, warmup=1)
    rows.append(Row(case, "jbalance XLA path (lax.sort + cumsum) on CPU", t,
                    note=f"the path every non-CPU backend takes; {_load()}"))


def _detections(b: int, g: int, m: int, c: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 500, (b, g, 2))
    wh = rng.uniform(8, 120, (b, g, 2))
    gt = np.concatenate([xy, wh], -1).astype(np.float32)
    # Long-tailed classes: Zipf-like frequencies.
    p = 1.0 / np.arange(1, c + 1)
    gt_classes = rng.choice(c, (b, g), p=p / p.sum())
    gt_valid = rng.random((b, g)) < 0.7
    src = rng.integers(0, g, (b, m))
    pred = gt[np.arange(b)[:, None], src] + rng.normal(0, 6, (b, m, 4))
    pred[..., 2:] = np.abs(pred[..., 2:]) + 1
    pred_classes = np.where(rng.random((b, m)) < 0.8, gt_classes[np.arange(b)[:, None], src],
                            rng.integers(0, c, (b, m)))
    scores = rng.random((b, m)).astype(np.float32)
    pred_valid = np.ones((b, m), bool)
    return (pred.astype(np.float32), scores, pred_classes, pred_valid, gt, gt_classes,
            gt_valid)


def _cocoeval(coco_mod, eval_mod, args, c: int, iou: float) -> np.ndarray:
    pred, scores, pc, pv, gt, gc, gv = args
    anns = []
    for bi, j in zip(*np.nonzero(gv)):
        x, y, w, h = (float(v) for v in gt[bi, j])
        anns.append({"id": len(anns) + 1, "image_id": int(bi) + 1, "iscrowd": 0,
                     "category_id": int(gc[bi, j]) + 1, "bbox": [x, y, w, h], "area": w * h})
    results = [{"image_id": int(bi) + 1, "category_id": int(pc[bi, j]) + 1,
                "bbox": [float(v) for v in pred[bi, j]], "score": float(scores[bi, j])}
               for bi, j in zip(*np.nonzero(pv))]
    coco = coco_mod.COCO()
    coco.dataset = {"images": [{"id": i + 1} for i in range(gt.shape[0])], "annotations": anns,
                    "categories": [{"id": k + 1} for k in range(c)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = eval_mod.COCOeval(coco, coco.loadRes(results), "bbox")
        ev.params.iouThrs = np.array([iou])
        ev.params.maxDets = [100]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][0, :, :, 0, 0]
    return np.array([prec[:, k].mean() if (prec[:, k] > -1).all() else np.nan
                     for k in range(c)])


def _case_detection(b: int, rows: list[Row]) -> None:
    from jbalance import metrics

    g, m, c = 20, 100, 80
    args = _detections(b, g, m, c)
    case = f"detection_average_precision {b} images x {m} dets, {c} classes"

    def ours():
        return metrics.detection_average_precision(*args, num_classes=c, box_format="xywh")

    t, ap = _harness.time_once(ours)
    rows.append(Row(case, "jbalance.metrics.detection_average_precision (NumPy)", t,
                    baseline=True, note=f"one run; {_load()}"))
    coco_mod, why = _harness.try_import("pycocotools.coco")
    eval_mod, why2 = _harness.try_import("pycocotools.cocoeval")
    if coco_mod is None or eval_mod is None:
        rows.append(Row(case, "pycocotools COCOeval", None, note=why or why2))
        return
    t_ref, ref = _harness.time_once(lambda: _cocoeval(coco_mod, eval_mod, args, c, 0.5))
    diff = np.nanmax(np.abs(ap - ref))
    rows.append(Row(case, "pycocotools COCOeval (evaluate + accumulate)", t_ref,
                    note=f"one run; max |AP diff| {diff:.1e}; {_load()}"))


def _case_segmentation(n: int, size: int, rows: list[Row]) -> None:
    import functools

    import jax
    import jax.numpy as jnp

    from jbalance import metrics

    c = 21
    rng = np.random.default_rng(0)
    labels = rng.integers(0, c, (n, size, size)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.05] = 255
    preds = np.where(rng.random(labels.shape) < 0.7, np.minimum(labels, c - 1),
                     rng.integers(0, c, labels.shape)).astype(np.int32)
    fn = jax.jit(functools.partial(metrics.segmentation_confusion, num_classes=c,
                                   ignore_index=255))
    y, p = jnp.asarray(labels), jnp.asarray(preds)
    case = f"segmentation_confusion [{n}, {size}, {size}] C={c}"
    t = _harness.time_fn(lambda: fn(y, p), repeats=5, warmup=1)
    rows.append(Row(case, "jbalance.metrics.segmentation_confusion (jit)", t, baseline=True,
                    note=_load()))

    def numpy_bincount():
        keep = labels != 255
        return np.bincount(labels[keep] * c + preds[keep], minlength=c * c).reshape(c, c)

    t = _harness.time_fn(numpy_bincount, repeats=5, warmup=1)
    same = np.array_equal(numpy_bincount(), np.asarray(fn(y, p)))
    rows.append(Row(case, "NumPy bincount", t, note=f"equal: {same}; {_load()}"))


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    if quick:
        _case_average_precision(20_000, 100, rows)
        _case_detection(50, rows)
        _case_segmentation(2, 128, rows)
    else:
        _case_average_precision(100_000, 1000, rows)
        _case_detection(500, rows)
        _case_segmentation(8, 512, rows)
    return rows


if __name__ == "__main__":
    _harness.main(run)
