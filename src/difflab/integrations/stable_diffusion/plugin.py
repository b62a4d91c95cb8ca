"""Stable Diffusion as a network plug-in (`model.network: sd-unet`, config/plugins.py): its
network, its training run and its sample grids, as the trainer and load_run ask for them."""

from __future__ import annotations

from functools import partial

from difflab.config.schema import ModelConfig
from difflab.integrations.stable_diffusion.network import SDUNet, sd_network
from difflab.integrations.stable_diffusion.sampling import PROMPT_BATCH, text_images
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.training.periodic import GridDraw
from difflab.training.session import TrainingRun

open_training_run = open_sd_session


def build_network(model: ModelConfig, in_channels: int) -> SDUNet:
    """model.pretrained's UNet, for latents of in_channels channels, with model.lora's
    adapter."""
    return sd_network(str(model.pretrained), in_channels, model.lora)


def grid_draw(s: TrainingRun, rows: range) -> GridDraw:
    """The images of rows of a Stable Diffusion run: sample.prompts cycled, guided against the
    empty prompt, decoded by the run's VAE (stable_diffusion.sampling.text_images)."""
    sample = s.config.sample
    return partial(
        text_images,
        text=s.data.text,  # the session's CaptionedLatents: its frozen text encoder
        codec=s.codec,
        prompts=sample.prompts,
        rows=rows,
        seed=0,
        latent_shape=s.latent_shape,
        sample=sample,
        device=s.device,
        batch_size=PROMPT_BATCH,
    )
