"""The two sides of every Stable Diffusion equivalence test: difflab's DDIM with classifier-free
guidance against the empty prompt on diffusers' grid, and diffusers' pipeline's latents."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from difflab.conditioning import classifier_free_guidance
from difflab.integrations.stable_diffusion import (
    SchedulerSettings,
    SDUNet,
    TextEncoder,
    diffusers_ddim_times,
    load_unet,
    read_scheduler,
)
from difflab.parameterization import Denoiser
from difflab.samplers import SAMPLERS, SamplingGrid


@torch.no_grad()
def difflab_ddim(
    denoiser: Denoiser,
    text: TextEncoder,
    settings: SchedulerSettings,
    prompts: Sequence[str],
    noise: Tensor,
    *,
    guidance: float,
    steps: int,
) -> Tensor:
    """difflab's DDIM latents from `noise` on the grid of diffusers' DDIMScheduler."""
    cond = text.condition(prompts)
    denoise = classifier_free_guidance(denoiser, cond, cond.null(text.null_text), guidance)
    grid = SamplingGrid.build(denoiser.schedule, diffusers_ddim_times(settings, steps))
    return SAMPLERS.get("ddim")(denoise, noise, grid)


def pipeline_latents(
    pipe, prompts: Sequence[str], noise: Tensor, *, guidance: float, steps: int
) -> Tensor:
    """StableDiffusionPipeline's latents (output_type="latent") from `noise`."""
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        list(prompts),
        num_inference_steps=steps,
        guidance_scale=guidance,
        latents=noise.clone(),
        output_type="latent",
    ).images


def folder_and_pipeline_latents(
    folder: Path, pipe, prompts: Sequence[str], latent_size: int, *, guidance: float, steps: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(difflab's latents on the folder's UNet, text encoder and scheduler, the pipeline's,
    the noise both started from)."""
    settings = read_scheduler(folder)
    denoiser = Denoiser(
        SDUNet(load_unet(folder)), settings.make_schedule(), settings.parameterization
    )
    text = TextEncoder.from_folder(folder)
    noise = torch.randn(2, 4, latent_size, latent_size, generator=torch.Generator().manual_seed(3))
    args = dict(guidance=guidance, steps=steps)
    ours = difflab_ddim(denoiser, text, settings, prompts, noise, **args)
    return ours, pipeline_latents(pipe, prompts, noise, **args), noise
