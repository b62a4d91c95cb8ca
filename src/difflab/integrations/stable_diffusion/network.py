"""Stable Diffusion's UNet2DConditionModel as a difflab network F(x, t_net, cond)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from difflab.config.schema import LoraConfig
from difflab.core.condition import Condition
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion.folder import load_unet
from difflab.integrations.stable_diffusion.lora import add_lora

SD_NETWORK = "sd-unet"  # model.network of a Stable Diffusion fine-tune: model.pretrained's UNet


class SDUNet(nn.Module):
    """F(x [N, 4, h, w], t_net [N], cond with text [N, L, D]) -> the UNet's output [N, 4, h, w].

    t_net is the timestep index (difflab's discrete network time); cond.text is the CLIP text
    encoder's last hidden states, the UNet's cross-attention context. SD v1 attends to every
    token (padding included), so cond.text_mask is not used.
    """

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor, t_net: Tensor, cond: Condition | None) -> Tensor:
        text = self.text_of(cond)
        return self.unet(x, t_net, encoder_hidden_states=text, return_dict=False)[0]

    @staticmethod
    def text_of(cond: Condition | None) -> Tensor:
        """cond.text, or a ConfigError: a Stable Diffusion UNet needs text."""
        if cond is None or cond.text is None:
            raise ConfigError("the Stable Diffusion UNet needs a text condition (cond.text)")
        return cond.text

    @classmethod
    def checked(cls, unet: nn.Module, folder: str | Path, in_channels: int) -> SDUNet:
        """SDUNet(unet), after checking that unet (of folder) takes in_channels channels."""
        if unet.config.in_channels != in_channels:
            raise ConfigError(
                f"the UNet of {folder} takes {unet.config.in_channels} channels, but the latents "
                f"have {in_channels} (model.pretrained)"
            )
        return cls(unet)


def sd_network(folder: str | Path, in_channels: int, lora: LoraConfig | None = None) -> SDUNet:
    """The UNet of a pipeline folder as a network for data of in_channels channels (the VAE's
    latent channels); frozen, with a trainable LoRA adapter, when lora.rank > 0."""
    network = SDUNet.checked(load_unet(folder), folder, in_channels)
    if lora is not None and lora.rank > 0:
        add_lora(network.unet, lora)
    return network
