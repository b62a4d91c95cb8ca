"""Samplers: pure functions over an explicit grid, registered by name."""

from difflab.samplers import ddim, ddpm  # noqa: F401  (register)
from difflab.samplers.base import (
    SAMPLERS,
    DenoiseFn,
    Sampler,
    SamplingGrid,
    StackedGenerator,
    randn_like,
)

__all__ = ["SAMPLERS", "DenoiseFn", "Sampler", "SamplingGrid", "StackedGenerator", "randn_like"]
