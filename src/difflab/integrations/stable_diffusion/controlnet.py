"""ControlNet on a frozen Stable Diffusion v1 UNet (Zhang et al. 2023), as diffusers' own
`ControlNetModel`: `from_unet` copies the UNet's encoder and middle block, adds the hint
encoder (`controlnet_cond_embedding`, strided to the latents' size) and zero convolutions.

`SDControlledUNet` is the network F(x, t_net, cond): the ControlNet's residuals of
(x, t_net, cond.text, cond.hint), times `scale`, added to the UNet's skips and middle block,
as `StableDiffusionControlNetPipeline` adds them. difflab's hints are [-1, 1] with 1 or 3
channels; the ControlNet sees what the pipeline feeds it, an RGB control image in [0, 1]
(control_image: (hint + 1) / 2, grey repeated to RGB), so the exported folder works there.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from torch import Tensor, nn

from difflab.config.schema import ControlNetConfig
from difflab.core.condition import Condition
from difflab.core.errors import ConfigError, DataError
from difflab.core.file_modes import respect_umask
from difflab.integrations.stable_diffusion.folder import (
    UNET_FILES,
    component_folder,
    import_diffusers,
    load_unet,
    move_into_place,
    pipeline_folder,
    weights_files,
)
from difflab.integrations.stable_diffusion.network import SDUNet
from difflab.runs.checkpoint import Weights
from difflab.runs.frozen import declare_frozen, load_trained

SD_CONTROLNET = "sd-controlnet"  # model.network: model.pretrained's UNet with a ControlNet
CONTROLNET_FOLDER = "controlnet"  # runs/NAME/controlnet/: the exported ControlNetModel
# diffusers' conditioning embedding widths (SD v1's ControlNets); one stride-2 conv per width
# after the first, so the first log2(factor) + 1 of them reach the VAE's downsampling factor.
EMBEDDING_WIDTHS = (16, 32, 96, 256)


def control_image(hint: Tensor) -> Tensor:
    """difflab hint [N, 1 or 3, H, W] in [-1, 1] -> the pipeline's control image [N, 3, H, W]
    in [0, 1] (diffusers' control image processor converts to RGB and does not normalise)."""
    if hint.shape[1] not in (1, 3):
        raise DataError(
            f"a Stable Diffusion ControlNet takes 1- or 3-channel hints, got {hint.shape[1]}"
        )
    return ((hint + 1) / 2).expand(-1, 3, -1, -1)


class SDControlledUNet(nn.Module):
    """F(x [N, 4, h, w], t_net [N], cond with text and hint [N, C, H, W]): the frozen UNet plus
    `scale` times the ControlNet's residuals; without cond.hint, the UNet alone."""

    def __init__(self, unet: nn.Module, controlnet: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.unet = unet.requires_grad_(False)  # the paper locks the base
        self.controlnet = controlnet
        self.scale = scale

    def forward(self, x: Tensor, t_net: Tensor, cond: Condition | None) -> Tensor:
        text = SDUNet.text_of(cond)
        if cond is None or cond.hint is None:
            return self.unet(x, t_net, encoder_hidden_states=text, return_dict=False)[0]
        down, mid = self.controlnet(
            x,
            t_net,
            encoder_hidden_states=text,
            controlnet_cond=control_image(cond.hint.to(x.dtype)),
            conditioning_scale=self.scale,
            return_dict=False,
        )
        return self.unet(
            x,
            t_net,
            encoder_hidden_states=text,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]


def vae_downsampling(folder: str | Path) -> int:
    """The VAE's downsampling factor 2^(len(block_out_channels) - 1), from vae/config.json."""
    file = component_folder(pipeline_folder(folder), "vae", ("config.json",)) / "config.json"
    try:
        widths = json.loads(file.read_text())["block_out_channels"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"cannot read block_out_channels from {file}: {err}") from err
    return 2 ** (len(widths) - 1)


def embedding_widths(factor: int) -> tuple[int, ...]:
    """diffusers' conditioning embedding widths for hints `factor` times the latents' size."""
    steps = round(math.log2(factor))
    if 2**steps != factor or steps >= len(EMBEDDING_WIDTHS):
        raise ConfigError(f"no ControlNet hint encoder for a VAE downsampling by {factor}")
    return EMBEDDING_WIDTHS[: steps + 1]


def sd_controlnet_network(
    folder: str | Path, in_channels: int | None, cn: ControlNetConfig
) -> SDControlledUNet:
    """The UNet of a pipeline folder (checked to take in_channels unless None), frozen, with a
    ControlNet copied from it (`ControlNetModel.from_unet`, zero convolutions as diffusers makes
    them); the hint encoder's other weights from the global torch RNG. The UNet is declared
    frozen (runs/frozen.py), so checkpoints hold the ControlNet alone."""
    diffusers = import_diffusers()
    unet = load_unet(folder)
    if in_channels is not None:
        SDUNet.checked(unet, folder, in_channels)
    widths = embedding_widths(vae_downsampling(folder))
    controlnet = diffusers.ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=widths
    )
    files = weights_files(folder, "unet", UNET_FILES[1])
    return declare_frozen(SDControlledUNet(unet, controlnet, cn.scale), folder, files)


def save_controlnet(controlnet: nn.Module, out: Path) -> Path:
    """Write `out` as diffusers' ControlNetModel folder (config.json, safetensors weights),
    beside it first and renamed into place."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        controlnet.save_pretrained(tmp, safe_serialization=True)
        respect_umask(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no half-written copy left beside out
        raise
    return move_into_place(tmp, out)


def export_controlnet(
    pretrained: str | Path, cn: ControlNetConfig, weights: Weights, out: Path
) -> Path:
    """Write out/ (a ControlNetModel folder) from `weights`, an SDControlledUNet's state dict
    (full, or slim over pretrained's UNet: runs/frozen.py), as a checkpoint file holds it."""
    network = sd_controlnet_network(pretrained, None, cn)
    load_trained(network, *weights)
    return save_controlnet(network.controlnet, out)
