"""Sampling: class-balanced probabilities, a jittable sampler, and epoch samplers.

See ``docs/sampling.md``. Decoupled sampling (Kang et al., ICLR 2020):
`class_balanced_probs` (``q`` = 1 instance-, 1/2 square-root, 0 class-balanced) and
`progressive_probs`; class-aware sampling for multi-label counts (Shen et al., 2016):
`class_aware_probs`; `sample_indices` draws from them under `jit`. Host-side epochs:
`epoch_indices` (repeat factors rounded afresh each epoch, or probabilities; sharded), the
schedules `progressive_schedule` and `deferred_schedule`, and the adapters `GrainSampler`
(grain's ``Sampler`` protocol) and `TorchSampler` (a ``torch.utils.data.Sampler``). grain
and torch are imported only when their sampler is used.
"""

from typing import Any

from jbalance._src.sampling.adapters import GrainSampler as GrainSampler
from jbalance._src.sampling.epochs import deferred_schedule as deferred_schedule
from jbalance._src.sampling.epochs import epoch_indices as epoch_indices
from jbalance._src.sampling.epochs import progressive_schedule as progressive_schedule
from jbalance._src.sampling.probs import class_aware_probs as class_aware_probs
from jbalance._src.sampling.probs import class_balanced_probs as class_balanced_probs
from jbalance._src.sampling.probs import progressive_probs as progressive_probs
from jbalance._src.sampling.probs import sample_indices as sample_indices

__all__ = [
    "GrainSampler",
    "TorchSampler",  # noqa: F822 (built on first access, see __getattr__)
    "class_aware_probs",
    "class_balanced_probs",
    "deferred_schedule",
    "epoch_indices",
    "progressive_probs",
    "progressive_schedule",
    "sample_indices",
]


def __getattr__(name: str) -> Any:
    # `TorchSampler` subclasses torch's Sampler, so it is built (and torch imported) on
    # first access only: `import jbalance.sampling` does not import torch.
    if name == "TorchSampler":
        from jbalance._src.sampling.adapters import torch_sampler_class

        return torch_sampler_class()
    raise AttributeError(f"module 'jbalance.sampling' has no attribute {name!r}")
