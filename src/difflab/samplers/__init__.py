"""Samplers: pure functions over an explicit grid, registered by name."""

from difflab.parameterization.prediction import DenoiseFn
from difflab.samplers import ddim, ddpm, dpm_solver, euler_heun  # noqa: F401  (register)
from difflab.samplers.base import SAMPLERS, Sampler, SamplingGrid, StackedGenerator, randn_like
from difflab.samplers.thresholding import ThresholdKind, thresholded

__all__ = [
    "SAMPLERS",
    "DenoiseFn",
    "Sampler",
    "SamplingGrid",
    "StackedGenerator",
    "ThresholdKind",
    "randn_like",
    "thresholded",
]
