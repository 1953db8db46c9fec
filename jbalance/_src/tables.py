"""Plain-text tables, JSON cleaning and balance statistics shared by the report and the CLI."""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """NumPy/JAX values, NamedTuples and dataclasses to plain Python for strict JSON.

    Non-finite floats become ``None`` (``json.dumps(..., allow_nan=False)`` then works).
    """
    if hasattr(value, "_asdict"):
        return {k: jsonable(v) for k, v in value._asdict().items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fmt(x: float | None, digits: int = 2) -> str:
    """A number for a table: ``inf`` for +inf, ``n/a`` for None/NaN/-inf."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "inf" if x is not None and x > 0 else "n/a"
    return f"{x:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *,
          align: str | None = None) -> str:
    """A fixed-width text table; ``align`` holds one ``<`` or ``>`` per column (default:
    first column left, the rest right)."""
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    align = align or "<" + ">" * (len(header) - 1)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths)).rstrip()
             for r in cells]
    return "\n".join(lines)


def balance_stats(totals: Any) -> tuple[float, float]:
    """``(max/min ratio, coefficient of variation)`` of per-class totals: the one rule.

    The ratio is ``inf`` when some class total is 0 and another is not, and 1 when all are
    0 (nothing to balance). The CV is the population standard deviation over the mean, and
    0 when all totals are 0.
    """
    t = np.asarray(totals, dtype=np.float64)
    if t.size == 0:
        return 1.0, 0.0
    lo, hi = float(t.min()), float(t.max())
    ratio = hi / lo if lo > 0 else (math.inf if hi > 0 else 1.0)
    mean = float(t.mean())
    cv = float(t.std() / mean) if mean > 0 else 0.0
    return ratio, cv
