"""Stable Diffusion as a network plug-in (`model.network: sd-unet`, config/plugins.py): its
config check, network, training run, sample grids, text-prompted sampling, report rows and ONNX
export, as the config, trainer, load_run, `difflab sample`, report.html and `difflab export` ask
for them."""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import Tensor

from difflab.config.schema import ModelConfig
from difflab.integrations.stable_diffusion.checks import check_config
from difflab.integrations.stable_diffusion.network import SDUNet, sd_network
from difflab.integrations.stable_diffusion.onnx_export import export_graphs
from difflab.integrations.stable_diffusion.sampling import PROMPT_BATCH, prompt_images, text_images
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.training.periodic import GridDraw
from difflab.training.session import TrainingRun

open_training_run = open_sd_session
__all__ = [
    "build_network",
    "check_config",
    "conditioning",
    "export_graphs",
    "grid_draw",
    "open_training_run",
    "prompt_images",
    "report_rows",
]


def build_network(model: ModelConfig, in_channels: int, image_size: int) -> SDUNet:
    """model.pretrained's UNet, for latents of in_channels channels (of any image_size), with
    model.lora's adapter."""
    return sd_network(str(model.pretrained), in_channels, model.lora)


def grid_draw(s: TrainingRun, rows: range, hints: Tensor | None = None) -> GridDraw:
    """The images of rows of a Stable Diffusion run: sample.prompts (and a ControlNet's hints)
    cycled, guided against the empty prompt, decoded by the run's VAE
    (stable_diffusion.sampling.text_images)."""
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
        hints=hints,
    )


def report_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows report.html's "kind of run" table adds for a run's config.yaml (as parsed)."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    return [("Stable Diffusion", f"fine-tune of {model.get('pretrained')}")]


def conditioning(guidance: Any) -> str:
    """The conditioning report.html names for a run sampled with guidance."""
    return f"text (CLIP captions), guidance {guidance}"
