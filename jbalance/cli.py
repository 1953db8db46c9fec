r"""The ``jbalance`` command line: inspect a label set, plan a resampling, run the demo.

::

    jbalance inspect LABELS [--json] [--plot dist.png]
    jbalance plan LABELS [--lam L] [--max-repeat M] [--min-repeat {0,1}] [--out plan.csv]
                         [--indices idx.txt] [--image-list train.txt] [--force] [--json]
                         [--plot plan.png] [--sweep]
    jbalance demo [--out-dir DIR]

``LABELS`` is anything `jbalance.io.load` reads: a COCO ``.json``, a YOLO or Pascal VOC
folder, a ``.csv`` table, or a ``.npy``/``.npz`` count matrix.

The command line only parses arguments and prints: the plan is `jbalance.resample.plan`
(its defaults are the command's defaults), files are written by `jbalance.io`'s atomic
writers. An output path equal to an input or to another output is refused, and so is an
existing output file unless ``--force`` is given.

Exit codes: 0 success, 2 usage error (argparse), 1 data error (one line on stderr, no
traceback). Progress of the solver goes to stderr, so ``--json`` output on stdout stays
machine-readable.
"""

import argparse
import inspect
import json
import math
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import jbalance
from jbalance import io as _io

_PLOT_HINT = "install matplotlib (pip install 'jbalance[plot]') or leave out --plot"


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


# --------------------------------------------------------------------------------------------
# Helpers


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _plan_defaults() -> dict[str, Any]:
    """The defaults of `jbalance.resample.plan`: the command's defaults (one source)."""
    from jbalance import resample

    return {k: v.default for k, v in inspect.signature(resample.plan).parameters.items()
            if v.default is not inspect.Parameter.empty}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _target(text: str) -> str | float:
    if text in ("median", "mean", "max", "min"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected median, mean, max, min or a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"a numeric target must be > 0, got {text!r}")
    return value


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise CliError(f"--plot needs matplotlib, which is not installed: {_PLOT_HINT}") \
            from None


def _check_outputs(outputs: dict[str, str | None], inputs: Sequence[str] = (), *,
                   force: bool = False) -> None:
    """Fails before any work on an output that would lose data or cannot be written.

    Refused: an output path equal to an input path, two outputs on one path, an existing
    file without ``--force``, and a missing folder. ``outputs`` maps option name to path.
    """
    seen: dict[str, str] = {}
    resolved_inputs = {os.path.realpath(p): p for p in inputs}
    for option, p in outputs.items():
        if not p:
            continue
        real = os.path.realpath(p)
        if real in resolved_inputs:
            raise CliError(f"{option} {p} is the input {resolved_inputs[real]}; refusing to "
                           "overwrite the labels (choose another output path)")
        if real in seen:
            raise CliError(f"{option} and {seen[real]} both write {p}; give them different "
                           "paths")
        seen[real] = option
        path = pathlib.Path(p)
        if not path.resolve().parent.is_dir():
            raise CliError(f"cannot write {p}: folder {path.parent} does not exist")
        if path.is_dir():
            raise CliError(f"cannot write {p}: it is a folder")
        if path.exists() and not force:
            raise CliError(f"{option} {p} already exists; pass --force to overwrite it")


def _load(args: argparse.Namespace) -> _io.LabelSet:
    options: dict[str, Any] = {}
    fmt = args.format or _io.detect_format(args.labels)
    if args.include_difficult:
        if fmt != "voc":
            raise CliError(f"--include-difficult applies to Pascal VOC folders, but "
                           f"{args.labels} reads as {fmt}")
        options["include_difficult"] = True
    if args.include_crowd:
        if fmt != "coco":
            raise CliError(f"--include-crowd applies to COCO JSON files, but {args.labels} "
                           f"reads as {fmt}")
        options["include_crowd"] = True
    return _io.load(args.labels, format=fmt, **options)


def _emit_json(payload: dict[str, Any]) -> None:
    # Every part is already plain Python (`as_dict` of the report and of the plan).
    print(json.dumps(payload, indent=2, allow_nan=False))


def _fmt(x: float, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "inf" if x is not None and x > 0 else "n/a"
    return f"{x:.{digits}f}"


class _Progress:
    """Host callback ``progress(step, objective)`` that draws the solver's progress on stderr.

    On a terminal it redraws one line (``\\r``); otherwise (logs, pipes) it writes one line
    per report. It says when XLA is compiling, which is most of a small solve: `start`
    before the first call that compiles, and again before the sweep's own program. The
    sweep's callbacks arrive once per value of ``lam`` and step (a vmapped loop); they are
    gathered into one report per step.
    """

    def __init__(self, total: int, *, sweep_points: int = 0, enabled: bool = True,
                 stream: Any = None):
        self.total = total
        self.sweep_points = sweep_points
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.calls = 0
        self.label = "solving"
        self.pending: list[float] = []
        self.drawn = False
        self.width = 78

    def _write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            # Pad to the widest line drawn so far, so that no tail of it is left behind.
            self.width = max(self.width, len(line))
            self.stream.write("\r" + line.ljust(self.width))
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _elapsed(self) -> str:
        return f"({time.perf_counter() - self.start:.1f} s)"

    def compiling(self, what: str) -> None:
        """Says that XLA is compiling ``what`` (call it before the call that compiles)."""
        self._write(f"  {what}: compiling with XLA ... {self._elapsed()}")

    def __call__(self, step: Any, objective: Any) -> None:
        self.calls += 1
        step = int(np.asarray(step))
        values = np.asarray(objective, dtype=np.float64).reshape(-1)
        if self.label == "sweep":
            # One callback per lam: report the step once all of them have arrived.
            self.pending.extend(values.tolist())
            if len(self.pending) < self.sweep_points:
                return
            values, self.pending = np.asarray(self.pending), []
            value = f"{values.min():.4g}..{values.max():.4g} over {values.size} lam"
        else:
            value = f"{float(values[0]):.6g}" if values.size == 1 else \
                f"{values.min():.4g}..{values.max():.4g}"
        self._write(f"  {self.label}: step {step}/{self.total}  objective {value}  "
                    f"{self._elapsed()}")
        if self.label == "solving" and step >= self.total and self.sweep_points:
            # The solve is done; the sweep's vmapped program compiles next.
            self.label = "sweep"
            self.compiling("sweep")

    def done(self) -> None:
        if self.enabled and self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------------
# Plots (matplotlib is an optional extra; no pyplot, so no global backend state).


def _save_figure(fig: Any, path: str) -> None:
    fmt = pathlib.Path(path).suffix.lstrip(".") or "png"
    _io.atomic_write(path, lambda f: fig.savefig(f, dpi=120, format=fmt))


def _plot_distribution(rep: Any, path: str, title: str) -> None:
    from matplotlib.figure import Figure

    order = np.argsort(-rep.objects_per_class, kind="stable")
    names = [rep.class_names[k] for k in order]
    c = len(names)
    fig = Figure(figsize=(max(6.0, 0.32 * c + 2), 4.5), layout="constrained")
    ax = fig.subplots()
    x = np.arange(c)
    ax.bar(x - 0.2, rep.objects_per_class[order], 0.4, label="objects")
    ax.bar(x + 0.2, rep.images_per_class[order], 0.4, label="images containing")
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=90 if c > 8 else 0, fontsize=8 if c > 30 else 9)
    ax.set_ylabel("count (log scale)")
    ax.set_title(f"{title}: max/min {_fmt(rep.imbalance_ratio, 1)}, "
                 f"effective classes {rep.effective_num_classes:.1f} of {c}")
    ax.legend()
    _save_figure(fig, path)


def _plot_plan(names: Sequence[str], before: np.ndarray, after: np.ndarray,
               lvis: np.ndarray, sweep: list[dict[str, Any]] | None, lvis_point: dict,
               chosen: dict, path: str) -> None:
    from matplotlib.figure import Figure

    order = np.argsort(-before, kind="stable")
    c = len(names)
    ncols = 2 if sweep else 1
    fig = Figure(figsize=(max(6.0, 0.36 * c + 2) + (5.5 if sweep else 0), 4.8),
                 layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    ax = axes[0]
    x = np.arange(c)
    w = 0.27
    ax.bar(x - w, before[order], w, label="before")
    ax.bar(x, after[order], w, label="jbalance plan")
    ax.bar(x + w, lvis[order], w, label="LVIS repeat factors")
    ax.set_yscale("log")
    ax.set_xticks(x, [names[k] for k in order], rotation=90 if c > 8 else 0,
                  fontsize=8 if c > 30 else 9)
    ax.set_ylabel("objects per epoch (log scale)")
    ax.set_title("class totals before and after")
    ax.legend()
    if sweep:
        ax = axes[1]
        changed = [p["changed"] for p in sweep]
        cv = [p["cv_after"] for p in sweep]
        ax.plot(changed, cv, "o-", label="jbalance (lam sweep)")
        # Label lam at the points, skipping labels that would overprint a previous one.
        xr = max(max(changed) - min(changed), 1e-12)
        yr = max(max(cv) - min(cv), 1e-12)
        placed: list[tuple[float, float]] = []
        for p in sweep:
            x0, y0 = p["changed"], p["cv_after"]
            if any(abs(x0 - a) / xr < 0.06 and abs(y0 - b) / yr < 0.06 for a, b in placed):
                continue
            placed.append((x0, y0))
            ax.annotate(f"{p['lam']:.2g}", (x0, y0), fontsize=7, textcoords="offset points",
                        xytext=(3, 3))
        ax.plot([chosen["changed"]], [chosen["cv_after"]], "*", ms=14, label="chosen plan")
        ax.plot([lvis_point["changed"]], [lvis_point["cv_after"]], "s", ms=8,
                label="LVIS repeat factors")
        ax.plot([0], [lvis_point["cv_before"]], "x", ms=10, label="unchanged")
        ax.set_xlabel("images changed (dropped + repeated)")
        ax.set_ylabel("CV of class totals after")
        ax.set_title("trade-off: balance vs images changed (labels: lam)")
        ax.legend(fontsize=8)
    _save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Commands


def _cmd_inspect(args: argparse.Namespace) -> int:
    _check_outputs({"--plot": args.plot}, [args.labels], force=args.force)
    if args.plot:
        _require_matplotlib()
    ls = _load(args)
    rep = jbalance.report(ls, top_pairs=args.top_pairs)
    if args.json:
        _emit_json({"source": ls.source, "format": ls.format, "report": rep.as_dict(),
                    "plot": args.plot})
    else:
        print(f"{ls.source} ({ls.format})")
        print(rep.to_table(max_rows=args.max_rows))
    if args.plot:
        _plot_distribution(rep, args.plot, pathlib.Path(ls.source).name or "labels")
        if not args.json:
            print(f"\nwrote {args.plot}")
    return 0


def _point(s: Any, **extra: Any) -> dict[str, Any]:
    return {**extra, "ratio_after": s.ratio_after, "cv_after": s.cv_after,
            "cv_before": s.cv_before, "dropped": s.dropped, "duplicated": s.duplicated,
            "changed": s.dropped + s.duplicated, "size_after": s.size_after}


def _plan(ls: _io.LabelSet, *, quiet: bool, sweep_points: int | None = None,
          **options: Any) -> Any:
    """`jbalance.resample.plan` with a progress display (everything the output needs)."""
    from jbalance import resample

    defaults = _plan_defaults()
    total = options.get("num_steps", defaults["num_steps"])
    if sweep_points is not None:
        options["sweep_points"] = sweep_points
    points = options.get("sweep_points", defaults["sweep_points"]) if options.get("sweep") \
        else 0
    progress = _Progress(total, sweep_points=points, enabled=not quiet)
    # The first solve compiles (XLA): say so before it starts, not after.
    progress.compiling("solving")
    out = resample.plan(ls.counts, progress=progress if not quiet else None, **options)
    progress.done()
    return out


# A plan that drops more than this share of the images gets a warning (see `_cmd_plan`).
_DROP_WARNING = 0.25


def _warn_if_many_dropped(summary: Any) -> None:
    """One line on stderr when a plan drops more than a quarter of the images."""
    if summary.size_before and summary.dropped > _DROP_WARNING * summary.size_before:
        share = summary.dropped / summary.size_before
        print(f"jbalance: warning: the plan drops {summary.dropped} of {summary.size_before} "
              f"images ({share:.0%}); docs/study.md has the study's measurement of what "
              f"plans that drop many images do to a trained model. --min-repeat 1 keeps "
              f"every image.", file=sys.stderr)


def _sweep_dicts(res: Any) -> list[dict[str, Any]] | None:
    return res.as_dict()["sweep"]


def _plan_json(ls: _io.LabelSet, res: Any, outputs: dict[str, str | None]) -> dict[str, Any]:
    return {"source": ls.source, "format": ls.format, "class_names": list(ls.class_names),
            **res.as_dict(class_names=ls.class_names), **outputs}


def _write_plan_outputs(ls: _io.LabelSet, res: Any, out: str | None, indices: str | None,
                        plot: str | None, image_list: str | None = None) -> list[str]:
    from jbalance import resample

    written = []
    if out:
        _io.write_repeats(out, res.repeats, image_ids=ls.image_ids)
        written.append(out)
    if indices:
        _io.write_indices(indices, resample.indices(res.repeats), image_ids=ls.image_ids)
        written.append(indices)
    if image_list:
        _io.write_image_list(image_list, ls, resample.indices(res.repeats))
        written.append(image_list)
    if plot:
        s, lv = res.summary, res.lvis
        _plot_plan(ls.class_names, np.asarray(s.totals_before), np.asarray(s.totals_after),
                   np.asarray(lv.totals_after), _sweep_dicts(res), _point(lv),
                   _point(s, lam=res.lam), plot)
        written.append(plot)
    return written


def _cmd_plan(args: argparse.Namespace) -> int:
    outputs = {"--out": args.out, "--indices": args.indices, "--image-list": args.image_list,
               "--plot": args.plot}
    _check_outputs(outputs, [args.labels], force=args.force)
    if args.plot:
        _require_matplotlib()
    ls = _load(args)
    if ls.num_images == 0:
        raise CliError(f"{ls.source}: no images to plan for")
    if args.image_list and ls.image_paths is None:
        raise CliError(f"--image-list: {ls.source} does not say where its images are "
                       f"({ls.format}); use --indices instead")
    res = _plan(ls, quiet=args.quiet, lam=args.lam, target=args.target,
                max_repeat=args.max_repeat, min_repeat=args.min_repeat, num_steps=args.steps,
                seed=args.seed, lvis_threshold=args.lvis_threshold, sweep=args.sweep)
    _warn_if_many_dropped(res.summary)
    written = _write_plan_outputs(ls, res, args.out, args.indices, args.plot, args.image_list)
    if args.json:
        _emit_json(_plan_json(ls, res, {"out": args.out, "indices": args.indices,
                                        "image_list": args.image_list, "plot": args.plot}))
    else:
        print(res.to_table(class_names=ls.class_names,
                           title=f"resampling plan for {ls.source} ({ls.num_images} images, "
                                 f"{ls.num_classes} classes)"))
        for p in written:
            print(f"wrote {p}")
        if not args.out:
            print("(no --out given: the repeat counts were not written)")
    return 0


# The demo's "Python equivalent": the same plan as `jbalance plan` (tested).
DEMO_PYTHON = ("    ls = jbalance.io.load('labels/')\n"
               "    plan = jbalance.resample.plan(ls.counts)\n"
               "    idx = jbalance.resample.indices(plan.repeats)  # NumPy int64; shuffle per "
               "epoch\n")


def _demo_path() -> pathlib.Path:
    import importlib.resources

    return pathlib.Path(str(importlib.resources.files("jbalance") / "data" /
                            "voc0712_trainval.npz"))


def _cmd_demo(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out_dir = pathlib.Path(args.out_dir or tempfile.mkdtemp(prefix="jbalance-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = not args.no_plot
    if plot:
        try:
            _require_matplotlib()
        except CliError:
            plot = False
            print("(matplotlib is not installed: skipping the plots; "
                  "pip install 'jbalance[plot]')")
    ls = _io.load(_demo_path())
    print("=" * 78)
    print("jbalance demo: Pascal VOC 2007+2012 trainval detection labels, bundled with the "
          "package")
    print("=" * 78)
    print("\n[1/3] jbalance inspect: how imbalanced is it?\n")
    rep = jbalance.report(ls)
    print(rep.to_table())
    if plot:
        _plot_distribution(rep, str(out_dir / "distribution.png"), "VOC07+12 trainval")
    print("\n[2/3] jbalance plan --sweep: repeat counts that flatten the class totals\n")
    # The library's defaults, exactly as `jbalance plan --sweep` and the Python below.
    res = _plan(ls, quiet=args.quiet, sweep=True, sweep_points=7)
    csv_path = out_dir / "plan.csv"
    written = _write_plan_outputs(ls, res, str(csv_path), None,
                                  str(out_dir / "plan.png") if plot else None)
    print(res.to_table(class_names=ls.class_names,
                       title=f"resampling plan for {ls.source} ({ls.num_images} images, "
                             f"{ls.num_classes} classes)"))
    s = res.summary
    print("\n[3/3] what to do with it\n")
    for p in ([str(out_dir / "distribution.png")] if plot else []) + written:
        print(f"  wrote {p}")
    print(f"\n  The plan keeps {s.size_after} image draws per epoch instead of {s.size_before}: "
          f"{s.dropped} frequent-class images are dropped and {s.duplicated} rare-class "
          f"images repeated, taking the max/min class ratio from {_fmt(s.ratio_before, 1)} "
          f"to {_fmt(s.ratio_after, 1)}.")
    print("  Feed plan.csv (image_id,repeats) to your data loader, or in Python:\n"
          f"{DEMO_PYTHON}"
          "  On your own labels: jbalance inspect LABELS; "
          "jbalance plan LABELS --out plan.csv --plot plan.png --sweep")
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
    return 0


# --------------------------------------------------------------------------------------------
# Parser


def _add_label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("labels", metavar="LABELS",
                   help="COCO .json, YOLO or VOC folder, .csv/.tsv table, or .npy/.npz "
                        "count matrix")
    p.add_argument("--format", choices=("coco", "yolo", "voc", "csv", "numpy"),
                   help="skip format detection")
    p.add_argument("--include-difficult", action="store_true",
                   help="VOC: count objects marked difficult (excluded by default)")
    p.add_argument("--include-crowd", action="store_true",
                   help="COCO: count iscrowd annotations (excluded by default)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``jbalance`` command (for docs and tests)."""
    from jbalance import __version__

    parser = argparse.ArgumentParser(
        prog="jbalance",
        description="Inspect class imbalance in a label set and plan a balanced resampling.",
        epilog="Exit codes: 0 success, 1 data error, 2 usage error. "
               "Run 'jbalance demo' for a tour on a bundled data set.")
    parser.add_argument("--version", action="version", version=f"jbalance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "inspect", help="imbalance report of a label set",
        description="Print the imbalance report of a label set (class frequencies, ratios, "
                    "effective number of classes, co-occurrence, advice).")
    _add_label_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    p.add_argument("--plot", metavar="PNG",
                   help="draw the class distribution (log scale, sorted); needs matplotlib")
    p.add_argument("--top-pairs", type=int, default=5, metavar="K",
                   help="co-occurring class pairs to list (default 5)")
    p.add_argument("--max-rows", type=_positive_int, default=None, metavar="K",
                   help="show at most K classes in the table")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "plan", help="solve for per-image repeat counts that balance the classes",
        description="Solve for per-image repeat counts (jbalance.resample.plan), compare "
                    "with LVIS repeat-factor sampling, and write the plan.")
    _add_label_args(p)
    d = _plan_defaults()
    p.add_argument("--lam", type=_positive_float, default=d["lam"],
                   help="weight on images changed (default 0.5 / median class total); "
                        "larger changes fewer images")
    p.add_argument("--max-repeat", type=_positive_int, default=d["max_repeat"], metavar="M",
                   help=f"most copies of one image (default {d['max_repeat']})")
    p.add_argument("--min-repeat", type=int, choices=(0, 1), default=d["min_repeat"],
                   help=f"fewest copies of one image: 0 lets the plan drop images, 1 keeps "
                        f"every image (oversampling only) (default {d['min_repeat']})")
    p.add_argument("--target", type=_target, default=d["target"],
                   help=f"class total to aim for: median, mean, max, min or a number "
                        f"(default {d['target']})")
    p.add_argument("--steps", type=_positive_int, default=d["num_steps"],
                   help=f"solver steps (default {d['num_steps']})")
    p.add_argument("--out", metavar="CSV",
                   help="write repeat counts (image_id,repeats; .json writes {id: repeats})")
    p.add_argument("--indices", metavar="PATH",
                   help="also write the resampled index list (.txt ids, .csv, .json, .npy)")
    p.add_argument("--image-list", metavar="TXT",
                   help="also write the resampled list of image paths, one per line (an "
                        "Ultralytics `train:` list); needs a format that knows the image "
                        "paths")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (never the input)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    p.add_argument("--plot", metavar="PNG",
                   help="draw class totals before/after (and the sweep); needs matplotlib")
    p.add_argument("--sweep", action="store_true",
                   help=f"also solve for {d['sweep_points']} values of lam around the chosen "
                        "one (trade-off curve)")
    p.add_argument("--lvis-threshold", type=_positive_float, default=d["lvis_threshold"],
                   metavar="T",
                   help="threshold of the LVIS baseline (default: median fraction of images "
                        "containing a class)")
    p.add_argument("--seed", type=int, default=d["seed"],
                   help=f"seed for rounding the LVIS repeat factors (default {d['seed']})")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser(
        "demo", help="the whole story on Pascal VOC labels bundled with the package",
        description="Inspect, plan, sweep and plot on the bundled Pascal VOC 2007+2012 "
                    "trainval labels; needs no input.")
    p.add_argument("--out-dir", metavar="DIR",
                   help="where to write plan.csv and the plots (default: a new temporary "
                        "folder)")
    p.add_argument("--no-plot", action="store_true", help="skip the plots")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    r"""Runs the ``jbalance`` command line.

    Args:
      argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
      The exit code: 0 on success, 1 on a data error (message on stderr). Usage errors and
      ``--help`` raise ``SystemExit`` (2 and 0) as argparse does.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("jbalance: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, OSError) as e:
        # Data errors (LabelFormatError is a ValueError), missing files, bad solver input.
        # TypeError is here because argument values reach library code; bugs still surface
        # with their message.
        message = " ".join(str(e).split()) or type(e).__name__
        if isinstance(e, FileNotFoundError) and e.filename:
            message = f"no such file or directory: {e.filename}"
        print(f"jbalance: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
