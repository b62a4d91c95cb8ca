"""Networks F(x, t, cond): UNet, DiT, their ControlNets, named presets built by
`build_network`."""

from difflab.networks.controlnet import CONTROLNETS, ControlledUNet, ControlNet, HintEncoder
from difflab.networks.dit import DiT, DiTConfig
from difflab.networks.dit_controlnet import ControlledDiT, DiTControlNet
from difflab.networks.presets import NETWORKS, build_network
from difflab.networks.unet import UNet, UNetConfig

__all__ = [
    "CONTROLNETS",
    "NETWORKS",
    "ControlledDiT",
    "ControlNet",
    "ControlledUNet",
    "DiT",
    "DiTConfig",
    "DiTControlNet",
    "HintEncoder",
    "UNet",
    "UNetConfig",
    "build_network",
]
