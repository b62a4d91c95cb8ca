"""Networks F(x, t, cond): UNet, DiT, ControlNet, and named presets built by `build_network`."""

from difflab.networks.controlnet import ControlledUNet, ControlNet, HintEncoder
from difflab.networks.dit import DiT, DiTConfig
from difflab.networks.presets import NETWORKS, build_network
from difflab.networks.unet import UNet, UNetConfig

__all__ = [
    "NETWORKS",
    "ControlNet",
    "ControlledUNet",
    "DiT",
    "DiTConfig",
    "HintEncoder",
    "UNet",
    "UNetConfig",
    "build_network",
]
