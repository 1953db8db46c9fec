r"""The imbalance report: how skewed a label set is, and what to do about it (host NumPy).

Exploratory analysis, not a training-time function: it runs once on concrete data, so it is
plain NumPy and returns a frozen dataclass that prints as a table and serialises to JSON.
"""

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jbalance._src import tables


@dataclasses.dataclass(frozen=True)
class ClassPair:
    """Two classes that appear in the same images.

    Attributes:
      first, second: Class names.
      images: Number of images holding both.
      lift: ``P(both) / (P(first) P(second))`` over images; 1 means independent, above 1
        means they appear together more often than chance.
    """

    first: str
    second: str
    images: int
    lift: float


@dataclasses.dataclass(frozen=True)
class ImbalanceReport:
    r"""Statistics of a count matrix and plain-language advice; see `report`.

    Per-class arrays are in column order of the input (``class_names``); ``str(report)`` (or
    `to_table`) prints them sorted by object count.

    Attributes:
      class_names: Names of the ``num_classes`` columns.
      num_images: Rows of the count matrix.
      num_objects: Sum of all counts.
      images_per_class: ``int [C]``, images containing at least one object of the class.
      objects_per_class: ``int [C]``, total objects (instances) of the class.
      shares: ``float [C]``, ``objects_per_class / num_objects``.
      majority_class: Name of the class with the most objects.
      majority_share: Its share of all objects, in ``[0, 1]``.
      minority_class: Name of the class with the fewest objects.
      imbalance_ratio: ``max / min`` of ``objects_per_class`` (``inf`` when a class has none).
      image_imbalance_ratio: The same ratio over ``images_per_class``.
      cv: Coefficient of variation of ``objects_per_class``: population standard deviation
        over mean (0 for perfectly balanced classes).
      effective_num_classes: :math:`\exp(-\sum_c p_c \log p_c)` with ``p = shares``: the
        number of equally frequent classes with the same entropy; ``num_classes`` when
        balanced, approaching 1 when one class dominates.
      empty_images: Images with no objects at all.
      missing_classes: Names of classes with no objects.
      rare_classes: Names of classes below ``rare_fraction`` times the median class total
        (and with at least one object).
      mean_classes_per_image: Mean number of distinct classes per image (over all images).
      mean_objects_per_image: ``num_objects / num_images``.
      multi_class_images: Images holding two or more distinct classes.
      top_pairs: The most frequent co-occurring class pairs, most images first.
      advice: Plain-language recommendations.
    """

    class_names: tuple[str, ...]
    num_images: int
    num_objects: int
    images_per_class: np.ndarray
    objects_per_class: np.ndarray
    shares: np.ndarray
    majority_class: str
    majority_share: float
    minority_class: str
    imbalance_ratio: float
    image_imbalance_ratio: float
    cv: float
    effective_num_classes: float
    empty_images: int
    missing_classes: tuple[str, ...]
    rare_classes: tuple[str, ...]
    mean_classes_per_image: float
    mean_objects_per_image: float
    multi_class_images: int
    top_pairs: tuple[ClassPair, ...]
    advice: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def as_dict(self) -> dict[str, Any]:
        """Plain Python types only (``json.dumps`` works; ``inf`` becomes ``null``)."""

        out = {f.name: tables.jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["num_classes"] = self.num_classes
        return out

    def to_json(self, **kwargs: Any) -> str:
        """`as_dict` as a JSON string (``kwargs`` go to ``json.dumps``, default indent 2)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.as_dict(), allow_nan=False, **kwargs)

    def to_table(self, *, max_rows: int | None = None) -> str:
        r"""The report as text: a summary, a per-class table sorted by objects, advice.

        Args:
          max_rows: Show at most this many classes (the most and least frequent halves);
            default all.

        Returns:
          A multi-line string.
        """
        fmt_ratio = "inf" if not math.isfinite(self.imbalance_ratio) else \
            f"{self.imbalance_ratio:.1f}"
        lines = [
            f"{self.num_images} images, {self.num_classes} classes, {self.num_objects} objects "
            f"({self.mean_objects_per_image:.2f} per image, "
            f"{self.mean_classes_per_image:.2f} classes per image)",
            f"majority class   {self.majority_class} ({100 * self.majority_share:.1f}% of "
            f"objects)",
            f"minority class   {self.minority_class}",
            f"max/min ratio    {fmt_ratio} (objects), "
            + ("inf" if not math.isfinite(self.image_imbalance_ratio)
               else f"{self.image_imbalance_ratio:.1f}") + " (images)",
            f"CV of totals     {self.cv:.3f}",
            f"effective number {self.effective_num_classes:.2f} of {self.num_classes} classes",
            f"empty images     {self.empty_images} "
            f"({100 * self.empty_images / max(self.num_images, 1):.1f}%)",
            "",
        ]
        order = np.argsort(-self.objects_per_class, kind="stable")
        if max_rows is not None and len(order) > max_rows:
            head = max_rows - max_rows // 2
            shown = [*order[:head].tolist(), None, *order[len(order) - max_rows // 2:].tolist()]
        else:
            shown = order.tolist()
        width = max([5, *(len(n) for n in self.class_names)])
        lines.append(f"{'class':<{width}}  {'objects':>9}  {'share':>6}  {'images':>8}  bar")
        positive = self.objects_per_class[self.objects_per_class > 0]
        lo, hi = (int(positive.min()), int(positive.max())) if positive.size else (1, 1)
        for c in shown:
            if c is None:
                lines.append(f"{'...':<{width}}")
                continue
            n = int(self.objects_per_class[c])
            # Log-scaled bar between the rarest and the most frequent present class, so the
            # rare classes stay visible and differences among them remain readable.
            span = math.log(hi / lo) if hi > lo else 1.0
            bar = "#" * (0 if n == 0 else 1 + round(29 * math.log(n / lo) / span))
            lines.append(f"{self.class_names[c]:<{width}}  {n:>9}  "
                         f"{100 * self.shares[c]:>5.1f}%  {int(self.images_per_class[c]):>8}  "
                         f"{bar}")
        if self.top_pairs:
            lines += ["", "most frequent class pairs (images, lift):"]
            lines += [f"  {p.first} + {p.second}: {p.images} ({p.lift:.2f})"
                      for p in self.top_pairs]
        lines += ["", "advice:"]
        lines += [f"  - {a}" for a in self.advice]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_table()


# The decision guide (README "Which remedy to start with"). The advice states what to do;
# the measurements behind it, with their figures, are in docs/study.md.
_STUDY = "What each remedy measured: docs/study.md."
_GUIDE = {
    "single-label": (
        "Single-label classifier: start with logit-adjusted cross-entropy "
        "(jbalance.losses.logit_adjusted_cross_entropy with log_prior=losses.log_prior(counts); "
        "choose tau, 1 to 2, on a balanced validation split), or adjust a trained model's "
        "logits post hoc (losses.adjust_logits). Balanced softmax and LDAM-DRW come next; "
        "class weights, re-sampling (class-balanced, square-root, progressive, the solver), "
        "Remix and class-aware MixUp helped less in jbalance's long-tail study, the focal "
        "loss not at all, and combining MixUp or Remix with logit adjustment did not beat it "
        f"alone. {_STUDY}"),
    "multi-label": (
        "Multi-label (several classes per image): start with class-aware Copy-Paste "
        "(jbalance.augment.copy_paste with partner_weights or instance_weights that favour "
        "the rare classes' instances), with the asymmetric loss (losses.asymmetric_loss) on "
        "top; class-aware MixUp (augment.mixup with partner_weights) comes next. Adding rare "
        "instances helped both model families in jbalance's multi-label study; losses and "
        "samplers added little. If you resample, keep every image: `jbalance plan LABELS` "
        "(resample.plan) oversamples only by default; a plan that drops images "
        f"(--min-repeat 0) cost points when used from the first step. {_STUDY}"),
    "detection": (
        "Detection (several objects per image): start with the seesaw loss on the "
        "classification head (jbalance.losses.seesaw_loss, carrying counts with "
        "losses.update_counts) and image-level resampling from the first step: in jbalance's "
        "small-detector study a plan that may drop images (`jbalance plan LABELS "
        "--min-repeat 0`) or sampling.class_aware_probs helped most, the default plan less; "
        "class-aware Copy-Paste helped too, while detection MixUp and Mosaic on small canvases "
        f"hurt. Choose between the samplers on a validation split. {_STUDY}"),
    "segmentation": (
        "Segmentation (per-pixel labels): re-balance the per-pixel loss first, with "
        "logit-adjusted CE and the pixel prior (losses.logit_adjusted_cross_entropy with "
        "log_prior=losses.log_prior(pixel totals)) or ENet weights "
        "(losses.pixel_class_weights(pixel_counts, method=\"enet\") in "
        "losses.weighted_softmax_cross_entropy); then add losses.lovasz_softmax_loss beside "
        "it, not instead of it, and resample images on their instance counts (`jbalance plan "
        "LABELS --min-repeat 0` helped most in jbalance's segmentation study, the default "
        "plan less). The Dice family alone, and CutMix, Mosaic and Copy-Paste of masks, did "
        f"not help there. {_STUDY}"),
}


def _task(r: dict[str, Any]) -> str:
    """``"segmentation"`` for per-pixel labels, ``"detection"`` if some image holds a class
    twice, ``"multi-label"`` if some image holds two classes, else ``"single-label"``."""
    if r.get("per_pixel"):
        return "segmentation"
    if np.any(np.asarray(r["objects_per_class"]) > np.asarray(r["images_per_class"])):
        return "detection"
    return "multi-label" if r["multi_class_images"] else "single-label"


def _advice(r: dict[str, Any], *, majority_threshold: float, balanced_ratio: float) -> list[str]:
    out = []
    if r["num_objects"] == 0:
        return ["The label set has no objects at all: check the reader options (e.g. "
                "include_difficult, include_crowd) or the label files."]
    if r["majority_share"] > majority_threshold:
        out.append(
            f"'{r['majority_class']}' holds {100 * r['majority_share']:.1f}% of the objects "
            f"(above {100 * majority_threshold:.0f}%): accuracy will look high even for a model "
            f"that ignores every other class. Report per-class and macro-averaged metrics "
            f"(jbalance.metrics) and treat this as a severe imbalance.")
    if r["missing_classes"]:
        out.append(f"{len(r['missing_classes'])} class(es) have no objects at all "
                   f"({', '.join(r['missing_classes'][:5])}"
                   f"{', ...' if len(r['missing_classes']) > 5 else ''}): no reweighting or "
                   f"resampling can create them; collect or label examples, or drop the class.")
    imbalanced = not (r["imbalance_ratio"] <= balanced_ratio)
    if imbalanced:
        out.append(_GUIDE[_task(r)])
    else:
        out.append(f"Class totals are within a factor {balanced_ratio:g} of each other: no "
                   f"imbalance remedy is needed.")
    if r["rare_classes"] or (imbalanced and r["least_frequent"]):
        rare = list(r["rare_classes"]) or list(r["least_frequent"])
        label = "Rare classes" if r["rare_classes"] else "The least frequent classes"
        out.append(
            f"{label} ({', '.join(rare[:5])}{', ...' if len(rare) > 5 else ''}) can be "
            f"mistaken for outliers or label noise: exclude them from automatic outlier and "
            f"duplicate filtering and check their images by hand instead of discarding them.")
    if r["empty_images"]:
        share = r["empty_images"] / max(r["num_images"], 1)
        out.append(
            f"{r['empty_images']} image(s) ({100 * share:.1f}%) have no objects: they are "
            f"background examples (useful against false positives for detectors); a "
            f"resampling plan gives them no class to balance, so decide their rate yourself.")
    return out


def report(counts: Any, *, class_names: Sequence[str] | None = None, top_pairs: int = 5,
           majority_threshold: float = 0.9, rare_fraction: float = 0.1,
           balanced_ratio: float = 1.5) -> ImbalanceReport:
    r"""Summarises how imbalanced a label set is and advises what to do.

    Use it before training, on the count matrix of a data set (`jbalance.io.load`), to decide
    between nothing, loss weighting and resampling. All statistics are over *objects*
    (instances; for multi-hot tables objects equal images) unless named for images.

    .. math::
      p_c = \frac{n_c}{\sum_k n_k}, \quad
      \mathrm{CV} = \frac{\operatorname{std}(n)}{\operatorname{mean}(n)}, \quad
      N_\mathrm{eff} = \exp\Big(-\sum_c p_c \log p_c\Big)

    where :math:`n_c` is the total count of class :math:`c`. :math:`N_\mathrm{eff}` (the
    exponential of the Shannon entropy, Hill number of order 1) is the number of equally
    frequent classes that would have the same entropy: :math:`C` for balanced classes, near 1
    when one class dominates. (Not to be confused with Cui et al.'s effective number of
    *samples* used for class weights.)

    Advice follows the usual practice -- a majority class above ``majority_threshold`` of the
    objects is flagged; rare classes are easily mistaken for outliers -- and, for an
    imbalanced set, gives the measured decision guide of ``docs/study.md`` for its kind of
    labels: single-label (one class per image: logit-adjusted cross-entropy), multi-label
    (several classes per image: class-aware Copy-Paste and the asymmetric loss), detection (a
    class twice in an image: seesaw loss and resampling) or segmentation (a `LabelSet` with
    per-pixel counts: a re-balanced per-pixel loss beside a region loss).

    Args:
      counts: ``[num_images, num_classes]`` non-negative counts (or 0/1 tags), or a
        `jbalance.io.LabelSet` (its class names are then used).
      class_names: ``num_classes`` names; default from a `LabelSet`, else ``"0"``, ``"1"``...
      top_pairs: How many co-occurring class pairs to list (0 for none).
      majority_threshold: Share above which the majority class is flagged, in ``(0, 1]``.
      rare_fraction: A class is rare when its total is below this fraction of the median
        class total (and above zero).
      balanced_ratio: Max/min ratio at or below which no remedy is advised (``>= 1``).

    Returns:
      An `ImbalanceReport` (``print(r)`` for the table, ``r.to_json()`` for JSON).

    Raises:
      ValueError: If ``counts`` is not a 2-D matrix of non-negative whole numbers with at least
        one column, the names do not match, or an option is out of range.

    Examples:
      >>> import numpy as np
      >>> import jbalance
      >>> counts = np.array([[3, 0], [1, 1], [0, 0]])
      >>> r = jbalance.report(counts, class_names=["car", "bike"])
      >>> r.objects_per_class.tolist(), r.majority_share, r.empty_images
      ([4, 1], 0.8, 1)
      >>> round(r.effective_num_classes, 4)
      1.6494

    References:
      Hill, `Diversity and evenness: a unifying notation and its consequences
      <https://doi.org/10.2307/1934352>`_, Ecology 1973 (effective number of types).
      Gupta et al., `LVIS: A Dataset for Large Vocabulary Instance Segmentation
      <https://arxiv.org/abs/1908.03195>`_, CVPR 2019 (repeat-factor sampling).
    """
    from jbalance._src import io as _io

    # A LabelSet read with masks carries per-pixel counts: its advice is segmentation's.
    per_pixel = getattr(counts, "pixel_counts", None) is not None
    if hasattr(counts, "counts") and hasattr(counts, "class_names"):
        if class_names is None:
            class_names = counts.class_names
        counts = counts.counts
    try:
        counts = _io._as_count_matrix(counts, None)
    except _io.LabelFormatError as e:
        raise ValueError(f"`counts`: {e}") from None
    n, c = counts.shape
    if c == 0:
        raise ValueError("`counts` must have at least one class column, got shape "
                         f"{counts.shape}.")
    if class_names is None:
        class_names = [str(k) for k in range(c)]
    class_names = tuple(str(x) for x in class_names)
    if len(class_names) != c:
        raise ValueError(f"`class_names` has {len(class_names)} entries but `counts` has {c} "
                         f"columns.")
    if not 0.0 < majority_threshold <= 1.0:
        raise ValueError(f"`majority_threshold` must be in (0, 1], got {majority_threshold}.")
    if rare_fraction < 0:
        raise ValueError(f"`rare_fraction` must be >= 0, got {rare_fraction}.")
    if balanced_ratio < 1:
        raise ValueError(f"`balanced_ratio` must be >= 1, got {balanced_ratio}.")
    if top_pairs < 0:
        raise ValueError(f"`top_pairs` must be >= 0, got {top_pairs}.")

    counts64 = counts.astype(np.int64)
    objects = counts64.sum(axis=0)
    present = counts64 > 0
    images = present.sum(axis=0)
    total = int(objects.sum())
    shares = objects / total if total else np.zeros(c)
    nz = shares[shares > 0]
    eff = float(np.exp(-np.sum(nz * np.log(nz)))) if total else 0.0
    ratio_objects, cv = tables.balance_stats(objects)

    order = np.argsort(-objects, kind="stable")
    median = float(np.median(objects))
    rare = tuple(class_names[k] for k in order[::-1]
                 if 0 < objects[k] < rare_fraction * median)
    missing = tuple(class_names[k] for k in range(c) if objects[k] == 0)
    classes_per_image = present.sum(axis=1)

    pairs: list[ClassPair] = []
    if top_pairs and c > 1 and n:
        # Image-level co-occurrence: a C x C product of the 0/1 presence matrix.
        p = present.astype(np.float64)
        co = p.T @ p
        iu, ju = np.triu_indices(c, k=1)
        vals = co[iu, ju]
        keep = np.nonzero(vals > 0)[0]
        top = keep[np.argsort(-vals[keep], kind="stable")[:top_pairs]]
        for k in top:
            a, b = int(iu[k]), int(ju[k])
            lift = float(vals[k] * n / (images[a] * images[b]))
            pairs.append(ClassPair(class_names[a], class_names[b], int(vals[k]), lift))

    stats = dict(
        class_names=class_names,
        num_images=int(n),
        num_objects=total,
        images_per_class=images,
        objects_per_class=objects,
        shares=shares,
        majority_class=class_names[int(order[0])],
        majority_share=float(shares[order[0]]),
        minority_class=class_names[int(order[-1])],
        imbalance_ratio=ratio_objects,
        image_imbalance_ratio=tables.balance_stats(images)[0],
        cv=cv,
        effective_num_classes=eff,
        empty_images=int((classes_per_image == 0).sum()),
        missing_classes=missing,
        rare_classes=rare,
        mean_classes_per_image=float(classes_per_image.mean()) if n else 0.0,
        mean_objects_per_image=total / n if n else 0.0,
        multi_class_images=int((classes_per_image >= 2).sum()),
        top_pairs=tuple(pairs),
    )
    least = [class_names[k] for k in order[::-1] if 0 < objects[k] < median][:3]
    advice = _advice({**stats, "least_frequent": least, "per_pixel": per_pixel},
                     majority_threshold=majority_threshold, balanced_ratio=balanced_ratio)
    return ImbalanceReport(**stats, advice=tuple(advice))
