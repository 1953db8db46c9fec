r"""Class balance before and after a plan (`summary`).

Repeat factors, stochastic rounding and the index list live with the samplers, in
``jbalance/_src/sampling/repeats.py``: everything that turns weights into indices is there.
"""

from typing import NamedTuple

import numpy as np

from jbalance._src import checks, tables
from jbalance._src.resample.problem import class_totals as _class_totals
from jbalance._src.resample.problem import objects as _objects
from jbalance._src.typing import Num


class Summary(NamedTuple):
    r"""Class balance before and after resampling (see `summary`); ``._asdict()`` is JSON-ready."""

    totals_before: np.ndarray
    totals_after: np.ndarray
    ratio_before: float
    ratio_after: float
    cv_before: float
    cv_after: float
    dropped: int
    duplicated: int
    size_before: int
    size_after: int
    erased: tuple[int, ...]


def summary(counts: Num[" n *c"], repeats: Num[" n"]) -> Summary:
    r"""Class totals and balance statistics before and after applying ``repeats``.

    Args:
      counts: ``[N, C]`` counts (dense, BCOO or scipy.sparse).
      repeats: ``[N]`` non-negative repeat counts (e.g. ``solve(...).repeats``).

    Returns:
      A `Summary`: ``totals_before``/``totals_after`` (float64 ``[C]``),
      ``ratio_before``/``ratio_after`` (max/min class total; ``inf`` when a class total is
      0 and another is not, 1 when all are 0), ``cv_before``/``cv_after`` (population
      standard deviation / mean of the class totals, 0 when all are 0; the same rule as
      `jbalance.report`),
      ``dropped`` (images with ``r = 0``), ``duplicated`` (``r > 1``),
      ``size_before``/``size_after`` (number of images), ``erased`` (classes whose total
      went from > 0 to 0). Plain Python/NumPy values: ``._asdict()`` is JSON-ready after
      ``.tolist()`` of the two arrays.

    Raises:
      ValueError: bad ``counts``, or ``repeats`` of the wrong shape or negative.

    Examples:
      >>> from jbalance import resample
      >>> s = resample.summary([[1, 0], [1, 0], [0, 1]], [1, 0, 2])
      >>> s.totals_after.tolist(), s.ratio_before, s.ratio_after
      ([1.0, 2.0], 2.0, 2.0)

    .. versionadded:: 0.1.0
    """
    obj = _objects(counts)
    r = np.asarray(repeats)
    checks.check_shape(r, (obj.num_images,), "repeats", "([num_images])")
    if not np.issubdtype(r.dtype, np.number) or not np.isfinite(r).all() or (r < 0).any():
        raise ValueError("`repeats` must be finite and non-negative (e.g. "
                         "`solve(...).repeats`).")
    before = _class_totals(obj)
    after = _class_totals(obj, r)
    rb, cb = tables.balance_stats(before)
    ra, ca = tables.balance_stats(after)
    erased = tuple(int(c) for c in np.flatnonzero((before > 0) & (after <= 0)))
    return Summary(totals_before=before, totals_after=after, ratio_before=rb, ratio_after=ra,
                   cv_before=cb, cv_after=ca, dropped=int((r == 0).sum()),
                   duplicated=int((r > 1).sum()), size_before=int(obj.num_images),
                   size_after=int(np.asarray(r, np.int64).sum()), erased=erased)
