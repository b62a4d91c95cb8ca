"""Sampling unCLIP's prior: image embeddings [N, E] from a text condition, with any sampler,
grid and schedule, classifier-free guidance against the null text, and the paper's option of
drawing several candidates and keeping the one closest to the text (Ramesh et al. 2022,
Section 2.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.conditioning import Condition, DenoiseFn, classifier_free_guidance
from difflab.config.schema import SampleConfig
from difflab.parameterization import Denoiser
from difflab.samplers import SAMPLERS, SamplingGrid, StackedGenerator
from difflab.samplers.options import grid_times, sampler_kwargs


def guided_prior(denoiser: Denoiser, cond: Condition, scale: float) -> DenoiseFn:
    """Classifier-free guidance of the prior on its text against the null text (no tokens,
    zero pooled embedding), as condition dropout trained it."""
    return classifier_free_guidance(denoiser, cond, cond.null(), scale)


def closest_to_text(candidates: Tensor, text: Tensor) -> Tensor:
    """Per row, the candidate with the largest cosine to the text embedding: candidates
    [K, N, E], text [N, E] -> [N, E] (ties: the first)."""
    cosine = F.cosine_similarity(candidates, text[None].to(candidates), dim=-1)  # [K, N]
    best = cosine.argmax(dim=0)  # [N]
    return candidates[best, torch.arange(candidates.shape[1], device=candidates.device)]


def candidate_seeds(seeds: list[int], k: int, num: int) -> list[int]:
    """The seeds of candidate k of num: seed * num + k, distinct for every (seed, k)."""
    return [seed * num + k for seed in seeds]


@torch.no_grad()
def sample_prior(
    denoiser: Denoiser,
    cond: Condition,
    *,
    seeds: list[int],
    sample: SampleConfig,
    device: torch.device | str,
) -> Tensor:
    """Image embeddings [N, E] as the prior's x0 (in its training scale), one seed per row;
    with sample.prior_candidates K > 1, K draws per row (candidate_seeds) and the one with the
    largest cosine to the pooled text embedding cond.embedding [N, E]."""
    cond = cond.to(device)
    dim = denoiser.network.config.in_channels
    denoise = guided_prior(denoiser, cond, sample.guidance)
    grid = SamplingGrid.build(denoiser.schedule, grid_times(denoiser.schedule, sample))
    sampler = SAMPLERS.get(sample.sampler)
    num = sample.prior_candidates
    draws = []
    for k in range(num):
        generator = StackedGenerator(candidate_seeds(seeds, k, num), device)
        x = generator.randn((len(seeds), dim), device=device)
        draws.append(sampler(denoise, x, grid, generator=generator, **sampler_kwargs(sample)))
    if num == 1:
        return draws[0]
    return closest_to_text(torch.stack(draws), cond.embedding)
