"""Command line for the segmentation study (the logic lives in `train.py`).

  python -m examples.segmentation.main                      # full study: every method, 5 seeds
  python -m examples.segmentation.main --preset smoke       # a few seconds (CI)
  python -m examples.segmentation.main --methods ce logit_adjusted --seeds 0 1 2
  python -m examples.segmentation.main --json results.json  # also save every run's metrics
  python -m examples.segmentation.main --table-from results.json   # re-render a saved run
"""

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import jax

from examples.segmentation import train

PRESETS = {"full": train.Config(), "smoke": train.SMOKE}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m examples.segmentation.main",
                                description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default="full",
                   help="full (default) or smoke: a few steps on a few scenes, one seed")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds (scenes, init, batches); default 0 1 2 3 4 (smoke: 0)")
    p.add_argument("--methods", nargs="+", default=None, choices=list(train.METHODS),
                   help="methods to compare (default: every method; smoke: a few)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--tail", choices=("scarce", "diverse"), default=None)
    p.add_argument("--workers", type=int, default=None,
                   help="processes the seeds are split over (default 2, smoke 1)")
    p.add_argument("--no-timing", action="store_true",
                   help="skip timing the step from a Python loop vs inside lax.scan")
    p.add_argument("--out", default=None, help="write the markdown tables to this file")
    p.add_argument("--json", default=None, help="write every run's metrics to this file")
    p.add_argument("--table-from", default=None, metavar="RESULTS_JSON",
                   help="print the tables of a saved --json file instead of training")
    return p.parse_args(argv)


SMOKE_METHODS = ("ce", "weighted_ce", "logit_adjusted", "dice_ce", "copy_paste_aware",
                 "resample_pixels")


def _cpu_seconds() -> float:
    # This process and its finished children (the worker processes).
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def render(results: list, footer: str = "") -> str:
    return (train.markdown_table(results) + "\n\nKnob candidates (mean mIoU on the balanced "
            "validation split; bold: chosen):\n\n" + train.validation_table(results) +
            "\n\nMean test IoU per class:\n\n" + train.iou_table(results) + footer)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        print(render(saved["results"], saved.get("footer", "")))
        return 0
    smoke = args.preset == "smoke"
    cfg = PRESETS[args.preset]
    for field, value in (("steps", args.steps), ("batch_size", args.batch_size),
                         ("tail", args.tail)):
        if value is not None:
            cfg = dataclasses.replace(cfg, **{field: value})
    seeds = args.seeds if args.seeds is not None else ([0] if smoke else [0, 1, 2, 3, 4])
    methods = args.methods or list(SMOKE_METHODS if smoke else train.METHODS)
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    timing = None
    if not args.no_timing:
        timing = train.time_loop_vs_scan(cfg, steps=3 if smoke else 10,
                                         repeats=1 if smoke else 2)
        print(f"step timing: {timing}")
    workers = args.workers if args.workers is not None else (1 if smoke else 2)
    results = train.run_study(methods, seeds, cfg, workers=workers)
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    load1 = os.getloadavg()
    footer = (f"\n\n{cfg.steps} steps x batch {cfg.batch_size} per run, seeds "
              f"{' '.join(map(str, seeds))}, tail {cfg.tail}; {elapsed:.0f} s wall in all "
              f"({workers} process{'es' if workers > 1 else ''}; {cpu:.0f} s CPU, workers "
              f"included) on {jax.default_backend()} "
              f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load "
              f"average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end).")
    text = render(results, footer)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": dataclasses.asdict(cfg), "seeds": seeds, "footer": footer,
                       "wall_seconds": elapsed, "cpu_seconds": cpu,
                       "workers": workers,
                       "load_average": {"start": load0, "end": load1},
                       "step_timing_ms": timing,
                       "jax": jax.__version__, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
