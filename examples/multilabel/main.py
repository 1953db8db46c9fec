"""Command line for the multi-label scenes study (the logic lives in `train.py`).

  python -m examples.multilabel.main                     # MLP, every method, 5 seeds
  python -m examples.multilabel.main --preset conv       # the conv net (reduced method set)
  python -m examples.multilabel.main --preset smoke      # a few steps, one seed (CI)
  python -m examples.multilabel.main --methods bce asl plan --seeds 0 1 2
  python -m examples.multilabel.main --table-from examples/multilabel/results.json
"""

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import jax

from examples.multilabel import train

# The conv net is ~8x slower per step on a CPU: its preset runs the baseline at two learning
# rates (stability) and the remedies that matter most for the goals.
CONV_METHODS = ["bce", "asl", "mixup_aware", "copy_paste_aware", "plan", "plan_deferred",
                "dataeval_global"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m examples.multilabel.main",
                                description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", choices=list(train.PRESETS))
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="paired seeds (scenes, init, batches); default 0-4 (smoke: 0)")
    p.add_argument("--methods", nargs="+", default=None, choices=list(train.METHODS),
                   help="single methods to compare (default: all; conv preset: a subset)")
    p.add_argument("--no-combine", action="store_true",
                   help="skip the combinations built from the single methods' results")
    p.add_argument("--lr-check", type=float, nargs="*", default=None,
                   help="also train BCE at these learning rates (baseline stability)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--tail", choices=("scarce", "diverse"), default=None)
    p.add_argument("--out", default=None, help="write the markdown tables to this file")
    p.add_argument("--json", default=None, help="write every run's metrics to this file")
    p.add_argument("--table-from", default=None, metavar="RESULTS_JSON")
    return p.parse_args(argv)


def render(results: list, extra: str = "") -> str:
    text = (train.markdown_table(results) + "\n\nKnob candidates (mean macro mAP on the "
            "balanced validation split; bold: chosen):\n\n" + train.validation_table(results))
    plans = train.plan_table(results)
    if plans:
        text += ("\n\nEvery resampling candidate against BCE, per seed (diagnostic; the rows "
                 "above were chosen on validation):\n\n" + plans)
    recipe = train.recipe_table(results)
    if recipe:
        text += "\n\nWhat each sampler adds to the recipe (paired):\n\n" + recipe
    return text + extra


def lr_check(cfg: train.Config, seeds: list[int], lrs: list[float]) -> list[dict]:
    """BCE at each learning rate (test mAP per seed): is the baseline stable?"""
    data = train.stack_seeds(seeds, cfg)
    out = []
    for lr in lrs:
        c = dataclasses.replace(cfg, learning_rate=lr)
        rec = train.run_method("bce", train.METHODS["bce"], seeds, c, data)
        out.append({"learning_rate": lr, "test_map": [r["map"] for r in rec["runs"]],
                    "test_worst_ap": [r["worst_ap"] for r in rec["runs"]],
                    "val_map": [r["map"] for r in rec["candidates"][0]["val"]]})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        print(render(saved["results"], saved.get("footer", "")))
        return 0
    cfg = train.PRESETS[args.preset]
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.tail is not None:
        cfg = dataclasses.replace(cfg, tail=args.tail)
    smoke = args.preset.startswith("smoke")
    seeds = args.seeds if args.seeds is not None else ([0] if smoke else [0, 1, 2, 3, 4])
    methods = args.methods or (CONV_METHODS if cfg.model == "conv" else list(train.METHODS))
    load0, t0 = os.getloadavg(), time.perf_counter()
    results = train.run_study(methods, seeds, cfg, combine=not args.no_combine)
    lrs = args.lr_check if args.lr_check is not None else []
    stability = lr_check(cfg, seeds, lrs) if lrs else []
    elapsed = time.perf_counter() - t0
    footer = (f"\n\n{cfg.model}, {cfg.steps} steps x batch {cfg.batch_size} per run, seeds "
              f"{' '.join(map(str, seeds))}; {elapsed:.0f} s in all on "
              f"{jax.default_backend()} ({platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs; load average {load0[0]:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end).")
    text = render(results, footer)
    for s in stability:
        text += (f"\nBCE at lr {s['learning_rate']:g}: test mAP "
                 + " ".join(f"{x:.3f}" for x in s["test_map"]))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": dataclasses.asdict(cfg), "seeds": seeds, "footer": footer,
                       "seconds": elapsed, "load_average_start": load0,
                       "load_average_end": os.getloadavg(), "results": results,
                       "stability": stability}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
