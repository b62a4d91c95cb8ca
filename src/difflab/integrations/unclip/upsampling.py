"""Sampling an upsampler: high-resolution images from low-resolution ones, the low-resolution
input augmented to a fixed level s (model.unclip.aug_sample), one seed per image."""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.conditioning import conditioned
from difflab.config.schema import SampleConfig
from difflab.integrations.unclip.augment import low_res_condition
from difflab.parameterization import Denoiser
from difflab.samplers import SAMPLERS, SamplingGrid, StackedGenerator
from difflab.samplers.options import grid_times, sampler_kwargs


@torch.no_grad()
def upsample(
    denoiser: Denoiser,
    low: Tensor,
    *,
    seeds: list[int],
    sample: SampleConfig,
    level: float,
    device: torch.device | str,
) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] (H the network's image_size) from low [N, C, h, w] in
    [-1, 1]; image i draws x_T, then its augmentation noise, from seed i."""
    config = denoiser.network.config
    n = low.shape[0]
    generator = StackedGenerator(seeds, device)
    x = generator.randn(
        (n, config.in_channels, config.image_size, config.image_size), device=device
    )
    s = torch.full((n,), float(level), device=device)
    cond = low_res_condition(low.to(device).float(), s, generator)
    grid = SamplingGrid.build(denoiser.schedule, grid_times(denoiser.schedule, sample))
    sampler = SAMPLERS.get(sample.sampler)
    denoise = conditioned(denoiser, cond)
    return sampler(denoise, x, grid, generator=generator, **sampler_kwargs(sample))
