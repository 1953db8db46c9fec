r"""`plan`: what ``jbalance plan`` computes, as one library call (the CLI only prints it)."""

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from jbalance._src import tables
from jbalance._src.resample import api as _api
from jbalance._src.resample import problem as _problem
from jbalance._src.resample import summary as _summary
from jbalance._src.sampling import repeats as _repeats


class SweepPoint(NamedTuple):
    """One point of the ``lam`` sweep of a `Plan` (plain Python values)."""

    lam: float
    objective: float
    ratio_after: float
    cv_after: float
    dropped: int
    duplicated: int
    size_after: int


class Plan(NamedTuple):
    r"""Result of `plan`: the solver's repeat counts, the LVIS baseline, and a sweep.

    Attributes:
      solution: the `Solution` of `solve`.
      repeats: NumPy int64 ``[N]`` repeat counts (``solution.repeats`` on the host).
      summary: `Summary` of ``repeats``.
      lam: the ``lam`` used (the default ``0.5 / median class total`` when not given).
      lvis_threshold: the threshold of the LVIS baseline (given, or the default: the
        median over classes of the fraction of images that contain the class).
      lvis_repeats: NumPy int64 ``[N]`` LVIS repeat-factor sampling counts, stochastically
        rounded with ``jax.random.key(seed)``.
      lvis: `Summary` of ``lvis_repeats``.
      empty_classes: indices of classes without any example (left out of the objective).
      sweep: ``None``, or one `SweepPoint` per ``lam * 2 ** linspace(-4, 4, sweep_points)``.
      seconds: wall time of the solve (compilation included).
    """

    solution: _api.Solution
    repeats: np.ndarray
    summary: _summary.Summary
    lam: float
    lvis_threshold: float
    lvis_repeats: np.ndarray
    lvis: _summary.Summary
    empty_classes: tuple[int, ...]
    sweep: tuple[SweepPoint, ...] | None
    seconds: float

    def as_dict(self, *, class_names: Any = None) -> dict[str, Any]:
        """Plain Python types only (``json.dumps(..., allow_nan=False)`` works; non-finite
        numbers become ``None``); ``empty_classes`` by name when ``class_names`` is given."""
        names = None if class_names is None else [str(n) for n in class_names]
        sweep = None if self.sweep is None else [
                {**p._asdict(), "changed": p.dropped + p.duplicated} for p in self.sweep]
        return tables.jsonable({
                "lam": self.lam,
                "objective": float(np.asarray(self.solution.objective)),
                "lower_bound": float(np.asarray(self.solution.lower_bound)),
                "seconds": self.seconds,
                "jbalance": self.summary,
                "lvis": {"threshold": self.lvis_threshold, **self.lvis._asdict()},
                "empty_classes": [names[c] if names else c for c in self.empty_classes],
                "sweep": sweep,
        })

    def to_table(self, *, class_names: Any = None, title: str = "resampling plan") -> str:
        """The plan as text: before / jbalance / LVIS side by side, then the sweep."""
        s, lv, f = self.summary, self.lvis, tables.fmt
        rows = [
                ("images per epoch", s.size_before, s.size_after, lv.size_after),
                ("max/min class ratio", f(s.ratio_before), f(s.ratio_after), f(lv.ratio_after)),
                ("CV of class totals", f(s.cv_before, 3), f(s.cv_after, 3), f(lv.cv_after, 3)),
                ("images dropped", 0, s.dropped, lv.dropped),
                ("images duplicated", 0, s.duplicated, lv.duplicated),
                ("classes erased", 0, len(s.erased), len(lv.erased)),
        ]
        lines = [f"{title}: lam={self.lam:.3g}, solved in {self.seconds:.1f} s; LVIS "
                 f"threshold {self.lvis_threshold:.3g}", "",
                 tables.table(("", "before", "jbalance", "LVIS RFS"), rows)]
        if self.empty_classes:
            names = [str(class_names[c]) if class_names is not None else str(c)
                     for c in self.empty_classes]
            lines.append(f"\nclasses without any example, left out of the objective: "
                         f"{', '.join(names)}")
        if self.sweep:
            lines += ["", "trade-off (lam sweep):",
                      tables.table(("lam", "max/min ratio", "CV", "dropped", "duplicated",
                                    "images per epoch"),
                                   [(f"{p.lam:.3g}", f(p.ratio_after), f(p.cv_after, 3),
                                     p.dropped, p.duplicated, p.size_after)
                                    for p in self.sweep], align=">>>>>>")]
        return "\n".join(lines)


def default_lvis_threshold(obj: _problem.Objects) -> float:
    """The median over classes (with examples) of the fraction of images containing it.

    LVIS's own 0.001 never triggers on a small-vocabulary set such as VOC; the median makes
    the baseline repeat the rarer half of the classes on any data set.
    """
    pairs = np.unique(obj.img.astype(np.int64) * obj.num_classes + obj.cls)
    freq = np.bincount(pairs % obj.num_classes, minlength=obj.num_classes) / obj.num_images
    freq = freq[freq > 0]
    return float(np.median(freq)) if freq.size else 1e-3


def plan(
        counts: Any,
        *,
        lam: float | None = None,
        target: Any = "median",
        # One source of truth: the plan's solver defaults are `solve`'s (tested).
        max_repeat: int = _api.solve.__kwdefaults__["max_repeat"],
        min_repeat: int = _problem.PLAN_MIN_REPEAT,
        num_steps: int = _api.solve.__kwdefaults__["num_steps"],
        lvis_threshold: float | None = None,
        seed: int = 0,
        sweep: bool = False,
        sweep_points: int = 9,
        progress: Callable[[int, Any], Any] | None = None,
        num_classes: int | None = None,
) -> Plan:
    r"""Solves, compares with LVIS repeat-factor sampling and optionally sweeps ``lam``.

    Exactly what ``jbalance plan`` prints and writes: the command line parses its
    arguments, calls this function with them, and formats the result. Classes without any
    example are left out of the objective (``empty_classes="ignore"``) and listed.

    Args:
      counts: as in `solve` (``[N, C]`` counts, sparse, or ``[N]`` class ids).
      lam: as in `solve` (``None``: ``0.5 / median class total``).
      target: as in `solve`.
      max_repeat: as in `solve`.
      min_repeat: as in `solve` (0 or 1), but 1 by default: every image is kept and the plan
        only oversamples (see docs/resample.md for why; 0 lets the plan drop images).
      num_steps: as in `solve`.
      lvis_threshold: threshold of the LVIS baseline; ``None``: the median fraction of
        images containing a class (`default_lvis_threshold`).
      seed: integer seed of the stochastic rounding of the LVIS repeat factors (a host-side
        wrapper, like `jbalance.sampling.epoch_indices`: the key is
        ``jax.random.key(seed)``).
      sweep: also solve for ``sweep_points`` values ``lam * 2 ** linspace(-4, 4, k)``
        (`solve_path`).
      sweep_points: number of sweep values.
      progress: as in `solve` (called by the solve and by the sweep).
      num_classes: as in `solve`.

    Returns:
      A `Plan`.

    Raises:
      ValueError: as `solve` (a ``min_repeat`` other than 0 or 1 included);
        ``sweep_points < 1``; a non-positive ``lvis_threshold``.

    Examples:
      >>> import numpy as np
      >>> from jbalance import resample
      >>> counts = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [1, 1]])
      >>> p = resample.plan(counts, lam=0.01)
      >>> p.summary.dropped, p.summary.ratio_after < p.summary.ratio_before
      (0, True)
      >>> len(resample.indices(p.repeats)) == p.summary.size_after
      True

    .. versionadded:: 0.2.0
    """
    if isinstance(sweep_points, bool) or not isinstance(sweep_points, (int, np.integer)) \
            or sweep_points < 1:
        raise ValueError(f"`sweep_points` must be a positive int, got {sweep_points!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an int, got {seed!r}.")
    key = jax.random.key(seed)
    _problem.check_min_repeat(min_repeat)
    _problem.check_hyper(lvis_threshold, "lvis_threshold", positive=True)
    obj = _problem.objects(counts, num_classes=num_classes)
    if not _problem.is_sparse(counts) and np.ndim(counts) == 1:
        counts = _problem.class_ids_to_counts(counts, num_classes)
    totals = _problem.class_totals(obj)
    empty = tuple(int(c) for c in np.flatnonzero(totals == 0))
    threshold = default_lvis_threshold(obj) if lvis_threshold is None else float(lvis_threshold)
    del obj  # the solve builds its own; a large set's object list need not be held twice
    options = dict(target=target, max_repeat=max_repeat, min_repeat=min_repeat,
                   num_steps=num_steps,
                   empty_classes="ignore" if empty else "error", progress=progress)
    t0 = time.perf_counter()
    sol = _api.solve(counts, lam=lam, **options)
    repeats = np.asarray(sol.repeats).astype(np.int64)
    seconds = time.perf_counter() - t0
    summ = _summary.summary(counts, repeats)
    rf = _repeats.repeat_factor_sampling(counts, threshold=threshold)
    lvis_repeats = np.asarray(_repeats.stochastic_round(key, rf)).astype(np.int64)
    lam_used = float(np.asarray(sol.lam))
    points = None
    if sweep:
        lams = lam_used * 2.0 ** np.linspace(-4, 4, sweep_points)
        path = _api.solve_path(counts, lams, **options)
        reps = np.asarray(path.repeats)
        objs = np.asarray(path.objective)
        points = []
        for j, lm in enumerate(lams):
            s = _summary.summary(counts, reps[j])
            points.append(SweepPoint(lam=float(lm), objective=float(objs[j]),
                                     ratio_after=s.ratio_after, cv_after=s.cv_after,
                                     dropped=s.dropped, duplicated=s.duplicated,
                                     size_after=s.size_after))
        points = tuple(points)
    return Plan(solution=sol, repeats=repeats, summary=summ, lam=lam_used,
                lvis_threshold=threshold, lvis_repeats=lvis_repeats,
                lvis=_summary.summary(counts, lvis_repeats), empty_classes=empty,
                sweep=points, seconds=seconds)
