"""Stable Diffusion's UNet2DConditionModel as a difflab network F(x, t_net, cond), with the
CLIP text encoder inside it when that trains (model.lora.text_encoder)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from difflab.config.schema import LoraConfig
from difflab.core.condition import Condition
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion.folder import (
    TEXT_ENCODER_FILES,
    UNET_FILES,
    load_clip,
    load_unet,
    weights_files,
)
from difflab.integrations.stable_diffusion.lora import add_lora, add_text_encoder_lora
from difflab.runs.frozen import declare_frozen

SD_NETWORK = "sd-unet"  # model.network of a Stable Diffusion fine-tune: model.pretrained's UNet


class SDUNet(nn.Module):
    """F(x [N, 4, h, w], t_net [N], cond with text) -> the UNet's output [N, 4, h, w].

    t_net is the timestep index (difflab's discrete network time); cond.text is the UNet's
    cross-attention context: the CLIP text encoder's last hidden states [N, L, D], or, with a
    text_encoder (one that trains), token ids [N, L] that it encodes. SD attends to every
    token (padding included), so cond.text_mask is not used.
    """

    def __init__(self, unet: nn.Module, text_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder

    def forward(self, x: Tensor, t_net: Tensor, cond: Condition | None) -> Tensor:
        context = self.context(self.text_of(cond))
        return self.unet(x, t_net, encoder_hidden_states=context, return_dict=False)[0]

    @staticmethod
    def text_of(cond: Condition | None) -> Tensor:
        """cond.text, or a ConfigError: a Stable Diffusion UNet needs text."""
        if cond is None or cond.text is None:
            raise ConfigError("the Stable Diffusion UNet needs a text condition (cond.text)")
        return cond.text

    def context(self, text: Tensor) -> Tensor:
        """The UNet's context [N, L, D]: text itself, or its token ids [N, L] encoded."""
        ids = not text.is_floating_point()
        if ids != (self.text_encoder is not None):
            expected = "token ids [N, L]" if self.text_encoder is not None else "embeddings"
            raise ConfigError(f"this Stable Diffusion network takes cond.text as {expected}")
        return self.text_encoder(text)[0] if ids else text

    @classmethod
    def checked(cls, unet: nn.Module, folder: str | Path, in_channels: int) -> SDUNet:
        """SDUNet(unet), after checking that unet (of folder) takes in_channels channels."""
        check_channels(unet, folder, in_channels)
        return cls(unet)


def sd_network(folder: str | Path, in_channels: int, lora: LoraConfig | None = None) -> SDUNet:
    """The UNet of a pipeline folder as a network for data of in_channels channels (the VAE's
    latent channels); frozen, with trainable LoRA adapters, when lora.rank > 0."""
    network = adapted_network(folder, lora)
    check_channels(network.unet, folder, in_channels)
    return network


def check_channels(unet: nn.Module, folder: str | Path, in_channels: int) -> None:
    """A ConfigError unless unet (of folder) takes in_channels channels."""
    if unet.config.in_channels != in_channels:
        raise ConfigError(
            f"the UNet of {folder} takes {unet.config.in_channels} channels, but the latents "
            f"have {in_channels} (model.pretrained)"
        )


def adapted_network(folder: str | Path, lora: LoraConfig | None) -> SDUNet:
    """The folder's UNet with lora's adapter (none with rank 0), and its text encoder with
    one when lora.text_encoder (A drawn from the global torch RNG, UNet's first); the frozen
    weights are declared (runs/frozen.py), so checkpoints hold the adapters alone."""
    unet = load_unet(folder)
    if lora is None or lora.rank == 0:
        return SDUNet(unet)
    add_lora(unet, lora)
    files = weights_files(folder, "unet", UNET_FILES[1])
    text_encoder = None
    if lora.text_encoder:
        text_encoder = add_text_encoder_lora(load_clip(folder)[1], lora)
        files += weights_files(folder, "text_encoder", TEXT_ENCODER_FILES[1])
    return declare_frozen(SDUNet(unet, text_encoder), folder, files)
