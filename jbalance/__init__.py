"""jbalance: class-imbalance remedies as composable JAX transforms.

Submodules:
  * `jbalance.losses`   -- class weights, weighted and focal cross-entropies.
  * `jbalance.augment`  -- MixUp, CutMix and Mosaic for classification and detection.
  * `jbalance.resample` -- the relaxed repeat-count solver and its baselines.
  * `jbalance.metrics`  -- macro/micro metrics that do not hide the minority classes.
  * `jbalance.io`       -- readers for COCO, YOLO, Pascal VOC, CSV and NumPy label sets.
  * `jbalance.report`   -- the imbalance report for exploratory analysis.
  * `jbalance.boxes`    -- box-format conversion and padding of detection labels.
  * `jbalance.sampling` -- class-balanced and repeat-factor samplers (plain loops, grain, PyTorch).
  * `jbalance.checks`   -- `checked`: the value checks under `jit`, through checkify.

Submodules load on first use (PEP 562), so ``import jbalance`` stays cheap and
``from jbalance import losses`` works as usual.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("augment", "boxes", "checks", "io", "losses", "metrics", "resample", "sampling",
               "sharding")
__all__ = [*_SUBMODULES, "report", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jbalance.{name}")
    if name == "report":
        from jbalance._src.report import report

        return report
    raise AttributeError(f"module 'jbalance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
