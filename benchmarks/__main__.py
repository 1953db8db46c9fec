"""``python -m benchmarks``: every benchmark module, one table, optionally into RESULTS.md."""

import argparse
import datetime
import importlib
import os
import pathlib
import shlex
import sys
import traceback

from benchmarks import _harness

MODULES = ("losses", "augment", "segmentation", "resample", "io", "sampling", "metrics")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--full", action="store_true",
                        help="also the huge opt-in cases (1M/10M-image solver, exact LP at "
                             "1M x 1000, DataEval interclass): tens of minutes")
    parser.add_argument("--only", default=",".join(MODULES),
                        help=f"comma-separated subset of {', '.join(MODULES)}")
    parser.add_argument("--write", metavar="PATH",
                        help="also append the tables to this markdown file (e.g. "
                             "benchmarks/RESULTS.md) with the command that produced them")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(MODULES)}")
    if args.full:
        os.environ["JBALANCE_BENCH_FULL"] = "1"  # read by the modules that have huge cases
    machine = _harness.machine_line()
    print(machine, flush=True)
    sections, failed = [], False
    for name in names:
        print(f"\n## {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            table = _harness.render(module.run(args.quick))
        except Exception:  # One broken case must not hide the others' results.
            failed = True
            table = "benchmark failed:\n```\n" + traceback.format_exc() + "```"
        print(table, flush=True)
        sections.append(f"### {name}\n\n{table}\n")
    if args.write:
        cmd = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = (f"\n## Run of {stamp}\n\nCommand: `{cmd}`\n\nMachine: {machine}\n\n"
                + "\n".join(sections))
        path = pathlib.Path(args.write)
        with path.open("a") as f:
            f.write(text)
        print(f"\nappended to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
