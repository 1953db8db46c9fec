"""Command line for the detection scenes study (the logic lives in `train.py`).

  python -m examples.detection.main                        # every method, seeds 0-4
  python -m examples.detection.main --preset smoke         # a few steps, one seed (CI)
  python -m examples.detection.main --tail diverse --seeds 0 1 2 --json out.json
  python -m examples.detection.main --timing               # loop vs scan, ms per step
  python -m examples.detection.main --table-from examples/detection/results.json
"""

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import jax

from examples.detection import train


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m examples.detection.main",
                                description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", choices=list(train.PRESETS))
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--methods", nargs="+", default=None, choices=list(train.METHODS))
    p.add_argument("--no-combine", action="store_true")
    p.add_argument("--lr-check", type=float, nargs="*", default=None,
                   help="also train the focal baseline at these learning rates")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--tail", choices=("scarce", "diverse"), default=None)
    p.add_argument("--timing", action="store_true", help="only time loop vs scan")
    p.add_argument("--json", default=None)
    p.add_argument("--table-from", default=None, metavar="RESULTS_JSON")
    return p.parse_args(argv)


def render(results, extra=""):
    text = (train.markdown_table(results) + "\n\nKnob candidates (mean validation macro "
            "AP50; bold: chosen):\n\n" + train.validation_table(results))
    plans = train.plan_table(results)
    if plans:
        text += "\n\nEvery sampler candidate against focal, per seed (test):\n\n" + plans
    return text + extra


def lr_check(cfg, seeds, lrs):
    data = train.stack_seeds(seeds, cfg)
    out = []
    for lr in lrs:
        rec = train.run_method("focal", train.METHODS["focal"], seeds,
                               dataclasses.replace(cfg, learning_rate=lr), data)
        out.append({"learning_rate": lr, "test_map": [r["map"] for r in rec["runs"]],
                    "test_worst_ap": [r["worst_ap"] for r in rec["runs"]]})
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        for tail, run in saved["runs"].items():
            print(f"## tail={tail}\n\n" + render(run["results"], run.get("footer", "")))
        return 0
    cfg = train.PRESETS[args.preset]
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.tail is not None:
        cfg = dataclasses.replace(cfg, tail=args.tail)
    if args.timing:
        print(train.time_runners(cfg))
        return 0
    smoke = args.preset == "smoke"
    seeds = args.seeds if args.seeds is not None else ([0] if smoke else [0, 1, 2, 3, 4])
    methods = args.methods or list(train.METHODS)
    load0, t0 = os.getloadavg(), time.perf_counter()
    results = train.run_study(methods, seeds, cfg, combine=not args.no_combine)
    stability = lr_check(cfg, seeds, args.lr_check) if args.lr_check else []
    elapsed = time.perf_counter() - t0
    footer = (f"\n\ntail={cfg.tail}, {cfg.steps} steps x batch {cfg.batch_size}, seeds "
              f"{' '.join(map(str, seeds))}; {elapsed:.0f} s on {jax.default_backend()} "
              f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load "
              f"{load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end).")
    text = render(results, footer)
    for s in stability:
        text += (f"\nfocal at lr {s['learning_rate']:g}: test AP50 "
                 + " ".join(f"{x:.3f}" for x in s["test_map"]))
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": {cfg.tail: {"config": dataclasses.asdict(cfg), "seeds": seeds,
                                           "footer": footer, "seconds": elapsed,
                                           "results": results, "stability": stability}}},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
