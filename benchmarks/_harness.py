"""Shared timing harness for the benchmark modules.

Every ``benchmarks/bench_<name>.py`` module exposes ``run(quick: bool) -> list[Row]`` and may
be run on its own (``python -m benchmarks.bench_<name>``) or from ``python -m benchmarks``.
Timings are medians of repeated calls after warm-up (compilation excluded unless a row says
otherwise); JAX outputs are blocked on, so asynchronous dispatch is not mistaken for speed.
A peer that cannot be imported becomes a skipped row, never a failure.
"""

import argparse
import dataclasses
import gc
import importlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


@dataclasses.dataclass
class Row:
    """One measurement: ``seconds`` is None for a skipped peer (``note`` says why).

    ``baseline`` marks the row the other rows of the same case are compared with (usually
    jbalance's); ``unit`` lets a row report something other than time (e.g. ``"GiB"``).
    """

    case: str
    impl: str
    seconds: float | None
    note: str = ""
    baseline: bool = False
    unit: str = "s"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def block(x: Any) -> Any:
    """Waits for every JAX array in ``x`` (a pytree) to be computed."""
    try:
        import jax

        return jax.block_until_ready(x)
    except ImportError:  # pragma: no cover - the harness also times NumPy-only peers.
        return x


def time_fn(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 2,
            min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        block(fn())
    times = []
    start_all = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start_all) < min_time:
        gc.disable()
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
        gc.enable()
        if len(times) >= 10 * repeats:
            break
    return statistics.median(times)


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call (for compile-inclusive or very long cases) and its result."""
    t0 = time.perf_counter()
    out = block(fn())
    return time.perf_counter() - t0, out


def try_import(name: str) -> tuple[Any, str]:
    """Imports a peer module; returns ``(module, "")`` or ``(None, reason)``."""
    try:
        return importlib.import_module(name), ""
    except Exception as e:  # Peers may fail with ImportError, OSError, RuntimeError, ...
        return None, f"{name} not importable ({type(e).__name__}: {str(e).splitlines()[0][:80]})"


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux ``ru_maxrss`` is KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine_line() -> str:
    """CPU model, core count, Python and JAX backend, for the header of every table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [f"CPU: {cpu}", f"{os.cpu_count()} cores", f"Python {platform.python_version()}"]
    try:
        import jax

        dev = jax.devices()[0]
        parts.append(f"JAX {jax.__version__} backend={jax.default_backend()} "
                     f"device={getattr(dev, 'device_kind', dev.platform)} x{len(jax.devices())}")
    except Exception as e:  # pragma: no cover
        parts.append(f"JAX unavailable ({e})")
    return " | ".join(parts)


def _fmt_value(row: Row) -> str:
    if row.seconds is None:
        return "skipped"
    if row.unit != "s":
        return f"{row.seconds:.3g} {row.unit}"
    s = row.seconds
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def render(rows: Sequence[Row]) -> str:
    """A markdown table; ``ratio`` is this row's value over the case's baseline row."""
    lines = ["| case | implementation | median | ratio to jbalance | note |",
             "|---|---|---|---|---|"]
    baselines = {r.case: r for r in rows if r.baseline and r.seconds}
    for r in rows:
        base = baselines.get(r.case)
        ratio = ""
        if base is not None and r.seconds is not None and r.unit == base.unit:
            ratio = "1.00 (baseline)" if r is base else f"{r.seconds / base.seconds:.2f}x"
        lines.append(f"| {r.case} | {r.impl} | {_fmt_value(r)} | {ratio} | {r.note} |")
    return "\n".join(lines)


def main(run: Callable[[bool], list[Row]], argv: Sequence[str] | None = None) -> None:
    """Command line for a single benchmark module."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke runs")
    args = parser.parse_args(argv)
    print(machine_line())
    print(render(run(args.quick)))
    sys.stdout.flush()
