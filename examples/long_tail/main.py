"""Command line for the long-tailed digits study (the logic lives in `train.py`).

  python -m examples.long_tail.main                  # full study: every method, 5 seeds
  python -m examples.long_tail.main --smoke          # a few steps, one seed (CI)
  python -m examples.long_tail.main --seeds 0 1 2 --methods ce logit_adjusted --out results.md
  python -m examples.long_tail.main --table-from results.json   # re-render a saved run
"""

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import jax

from examples.long_tail import train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m examples.long_tail.main",
                                description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny run (a few steps, one seed): checks that everything runs")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds (data split, init, batches); default 0 1 2 3 4 (smoke: 0)")
    p.add_argument("--methods", nargs="+", default=list(train.METHODS),
                   choices=list(train.METHODS), help="methods to compare (default: all)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--out", default=None, help="write the markdown tables to this file")
    p.add_argument("--json", default=None, help="write every run's metrics to this file")
    p.add_argument("--table-from", default=None, metavar="RESULTS_JSON",
                   help="print the tables of a saved --json file instead of training")
    return p.parse_args(argv)


def render(results: list, footer: str = "") -> str:
    return (train.markdown_table(results) + "\n\nKnob candidates (mean macro F1 on the balanced "
            "validation split; bold: chosen):\n\n" + train.validation_table(results) + footer)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        print(render(saved["results"], saved.get("footer", "")))
        return 0
    cfg = train.SMOKE if args.smoke else train.Config()
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.batch_size is not None:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    seeds = args.seeds if args.seeds is not None else ([0] if args.smoke else [0, 1, 2, 3, 4])
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    results = train.run_study(args.methods, seeds, cfg)
    elapsed = time.perf_counter() - t0
    footer = (f"\n\n{cfg.steps} steps x batch {cfg.batch_size} per run, seeds "
              f"{' '.join(map(str, seeds))}; {elapsed:.0f} s in all on "
              f"{jax.default_backend()} ({platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs; load average {load0:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end).")
    text = render(results, footer)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": dataclasses.asdict(cfg), "seeds": seeds, "footer": footer,
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
