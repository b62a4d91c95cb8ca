"""Text-to-image sampling of a Stable Diffusion fine-tune: prompts -> images.

Image i uses seed + i (its own generator) and prompt i % len(prompts); classifier-free guidance
at sample.guidance mixes the prompt's prediction with the negative prompt's (sample.negative_prompt;
empty: the empty prompt's, SD's null text), as diffusers' pipeline does, and
the sampled latents are decoded by the run's VAE. A ControlNet run's image i gets hint i % M
of its hints [M, C_hint, H, W], in both branches of guidance (the negative prompt's too), as
diffusers' StableDiffusionControlNetPipeline applies its control image by default. The grid is
sample.grid with its spacing, which ends at clean data (see scheduler.py for how it relates to
diffusers' DDIM grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from difflab.conditioning import classifier_free_guidance
from difflab.config.build import check_sample
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError, TrainingError
from difflab.core.progress import progress
from difflab.data import to_uint8
from difflab.integrations.stable_diffusion.controlnet import SD_CONTROLNET
from difflab.integrations.stable_diffusion.network import SD_NETWORK
from difflab.integrations.stable_diffusion.text import CaptionText, caption_text
from difflab.latents import Codec
from difflab.parameterization import Denoiser
from difflab.runs.load import LoadedRun
from difflab.samplers import SAMPLERS, SamplingGrid, StackedGenerator
from difflab.samplers.options import grid_times, sampler_kwargs
from difflab.sampling.hints import cycled

PROMPT_BATCH = 8  # images sampled at once: prompt_images' default and the training grids'


@torch.no_grad()
def sample_text_latents(
    denoiser: Denoiser,
    text: CaptionText,
    prompts: Sequence[str],
    *,
    seeds: Sequence[int],
    latent_shape: tuple[int, int, int],
    sample: SampleConfig,
    device: torch.device | str,
    hints: Tensor | None = None,
) -> Tensor:
    """Latents [N, c, h, w] of prompts[i] from the noise of seeds[i] (and hints[i], a
    ControlNet's, kept in the null condition), guided at sample.guidance against
    sample.negative_prompt (Ho & Salimans 2022)."""
    cond = replace(text.condition(prompts), hint=None if hints is None else hints.to(device))
    negative = sample.negative_prompt
    null = text.encode([negative]) if negative else text.null_text  # [1, L, D]
    null_cond = cond.null(null, keep_hint=True)
    denoise = classifier_free_guidance(denoiser, cond, null_cond, sample.guidance)
    generator = StackedGenerator(seeds, device)
    x = generator.randn((len(seeds), *latent_shape), device=device)
    grid = SamplingGrid.build(denoiser.schedule, grid_times(denoiser.schedule, sample))
    sampler = SAMPLERS.get(sample.sampler)
    return sampler(denoise, x, grid, generator=generator, **sampler_kwargs(sample))


def prompt_images(
    run: LoadedRun,
    prompts: Sequence[str],
    *,
    num: int,
    sample: SampleConfig | None = None,
    seed: int = 0,
    batch_size: int = PROMPT_BATCH,
    device: torch.device | str = "cpu",
    size: tuple[int, int] | None = None,
    hints: Tensor | None = None,
) -> Tensor:
    """uint8 images [num, 3, H, W] of a Stable Diffusion run: image i from seed + i,
    prompts[i % len(prompts)] and a ControlNet run's hints[i % M] ([M, C_hint, H, W]);
    `sample` defaults to the run's sample section, (H, W) = `size` to the run's image size
    (sides divisible by the VAE's downsampling)."""
    sample = _checked(run, prompts, num, sample)
    c = run.image_shape[0]
    size = run.image_shape[1:] if size is None else size
    _check_hints(run, hints, size)
    latent_shape = run.codec.latent_shape((c, *size))
    text = caption_text(run.config.model).to(device)
    x0 = text_images(
        run.denoiser,
        text,
        run.codec,
        prompts,
        range(num),
        seed=seed,
        latent_shape=latent_shape,
        sample=sample,
        device=device,
        batch_size=batch_size,
        hints=hints,
    )
    if not torch.isfinite(x0).all():
        raise TrainingError("generated images contain non-finite values")
    return to_uint8(x0).cpu()


def text_images(
    denoiser: Denoiser,
    text: CaptionText,
    codec: Codec,
    prompts: Sequence[str],
    rows: range,
    *,
    seed: int,
    latent_shape: tuple[int, int, int],
    sample: SampleConfig,
    device: torch.device | str,
    batch_size: int,
    hints: Tensor | None = None,
) -> Tensor:
    """Decoded images [len(rows), 3, H, W] in [-1, 1]: row i from seed + i,
    prompts[i % len(prompts)] and hints[i % M], sampled batch_size rows at a time (also the
    training grids)."""
    chunks = []
    bar = progress(len(rows), "sampling", unit="img", leave=False)
    for start in range(rows.start, rows.stop, batch_size):
        chunk = range(start, min(rows.stop, start + batch_size))
        z = sample_text_latents(
            denoiser,
            text,
            [prompts[i % len(prompts)] for i in chunk],
            seeds=[seed + i for i in chunk],
            latent_shape=latent_shape,
            sample=sample,
            device=device,
            hints=cycled(hints, chunk),
        )
        chunks.append(codec.decode(z))
        bar.update(len(chunk))
    bar.close()
    return torch.cat(chunks)


def _check_hints(run: LoadedRun, hints: Tensor | None, size: tuple[int, int]) -> None:
    """A ControlNet run samples with hints of the images' size, any other run without."""
    controlled = run.config.model.network == SD_CONTROLNET
    if not controlled and hints is not None:
        raise ConfigError("this Stable Diffusion run has no ControlNet: it takes no hints")
    if controlled and hints is None:
        raise ConfigError(
            "this run is a Stable Diffusion ControlNet run: pass its control with --hint-map "
            "PATH (ready-made maps) or --hint-image PATH"
        )
    if hints is not None and tuple(hints.shape[2:]) != tuple(size):
        raise ConfigError(
            f"the hints are {tuple(hints.shape[2:])} but the images {tuple(size)} (--height, "
            "--width): give hints of the images' size"
        )


def _checked(
    run: LoadedRun, prompts: Sequence[str], num: int, sample: SampleConfig | None
) -> SampleConfig:
    if run.config.model.network not in (SD_NETWORK, SD_CONTROLNET):
        raise ConfigError("text prompts need a Stable Diffusion run (model.pretrained)")
    if not prompts:
        raise ConfigError(
            "a Stable Diffusion run samples from text: give at least one --prompt (or set the "
            "run's sample.prompts)"
        )
    if num < 1:
        raise ConfigError(f"--num must be at least 1, got {num}")
    sample = run.config.sample if sample is None else sample
    check_sample(sample)
    if sample.classifier is not None:
        raise ConfigError("classifier guidance needs a pixel run with classes, not text prompts")
    if sample.threshold not in (None, "off"):
        raise ConfigError("x0 thresholding is not applied to latents: use --threshold off")
    return sample
