"""Networks F(x, t, cond): UNet, DiT, and named presets built by `build_network`."""

from difflab.networks.dit import DiT, DiTConfig
from difflab.networks.presets import NETWORKS, build_network
from difflab.networks.unet import UNet, UNetConfig

__all__ = ["NETWORKS", "DiT", "DiTConfig", "UNet", "UNetConfig", "build_network"]
