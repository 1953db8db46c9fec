"""Command line for the long-tailed digits study (the logic lives in `train.py`).

  python -m examples.long_tail.main                  # full study: every method, 3 seeds
  python -m examples.long_tail.main --smoke          # a few steps, one seed (CI)
  python -m examples.long_tail.main --seeds 0 1 2 3 4 --methods ce focal --out results.md
  python -m examples.long_tail.main --table-from results.json   # re-render a saved run
"""

import argparse
import dataclasses
import json
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
                   help="seeds (data split, init, batches); default 0 1 2 (smoke: 0)")
    p.add_argument("--methods", nargs="+", default=list(train.METHODS),
                   choices=list(train.METHODS), help="methods to compare (default: all)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--out", default=None, help="write the markdown table to this file")
    p.add_argument("--json", default=None, help="write every run's metrics to this file")
    p.add_argument("--table-from", default=None, metavar="RESULTS_JSON",
                   help="print the table of a saved --json file instead of training")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        print(train.markdown_table(saved["results"]))
        return 0
    cfg = train.Config()
    if args.smoke:
        cfg = train.SMOKE
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.batch_size is not None:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    seeds = args.seeds if args.seeds is not None else ([0] if args.smoke else [0, 1, 2])
    t0 = time.perf_counter()
    results = train.run_study(args.methods, seeds, cfg)
    table = train.markdown_table(results)
    elapsed = time.perf_counter() - t0
    footer = (f"\n\n{cfg.steps} steps x batch {cfg.batch_size} per run, seeds "
              f"{' '.join(map(str, seeds))}; {elapsed:.0f} s in all on "
              f"{jax.default_backend()} ({platform.processor() or platform.machine()}).")
    print(table + footer)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + footer + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": dataclasses.asdict(cfg), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
