"""A ControlNet on Stable Diffusion as a network plug-in (`model.network: sd-controlnet`,
config/plugins.py): the fine-tune's plug-in (plugin.py) with model.pretrained's UNet frozen
under a trainable diffusers ControlNetModel (controlnet.py), captioned batches that carry
model.controlnet.hint's hint (or data.hints' ready-made maps, paired by file name), and sample
grids controlled by the first items' hints."""

from __future__ import annotations

from typing import Any

import torch

from difflab.config.build import require
from difflab.config.schema import Config, ModelConfig
from difflab.integrations.stable_diffusion import plugin
from difflab.integrations.stable_diffusion.checks import check_config as check_sd_config
from difflab.integrations.stable_diffusion.controlnet import (
    SDControlledUNet,
    sd_controlnet_network,
)
from difflab.integrations.stable_diffusion.sampling import prompt_images as prompt_images
from difflab.integrations.stable_diffusion.session import open_sd_session
from difflab.training.periodic import GridDraw
from difflab.training.session import TrainingRun

CONTROLNET = True  # the run samples with hints (sampling/hints.py: hint_shape)
GRID_HINTS = 8  # the grids' controls: the hints of the first items, cycled over the rows
open_training_run = open_sd_session


def check_config(c: Config) -> None:
    """A fine-tune's keys (checks.check_config) and no LoRA."""
    check_sd_config(c)
    require(c.model.lora.rank == 0, "model.lora.rank", "0 with a ControlNet", c.model.lora.rank)


def build_network(model: ModelConfig, in_channels: int, image_size: int) -> SDControlledUNet:
    """model.pretrained's UNet, frozen, with a ControlNet copied from it (any image_size)."""
    return sd_controlnet_network(str(model.pretrained), in_channels, model.controlnet)


def grid_draw(s: TrainingRun, rows: range) -> GridDraw:
    """The fine-tune's grids (plugin.grid_draw), row i controlled by the hint of item
    i % GRID_HINTS of the training data."""
    count = min(GRID_HINTS, len(s.data.stream.dataset))
    return plugin.grid_draw(s, rows, hints=s.data.hints(torch.arange(count)))


def report_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """report.html's "kind of run" rows: the pretrained folder and the hint."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    cn = model.get("controlnet") if isinstance(model.get("controlnet"), dict) else {}
    hint = cn.get("hint", "blur")
    return [("Stable Diffusion ControlNet", f"{hint} hints on {model.get('pretrained')}")]


def conditioning(guidance: Any) -> str:
    """The conditioning report.html names: text guided, the hint in both branches."""
    return f"text (CLIP captions) and a control hint in both branches, guidance {guidance}"
