"""A diffusion upsampler (Saharia et al. 2021, SR3; Ho et al. 2022, cascaded diffusion): a UNet
whose input is the noised high-resolution image concatenated with the low-resolution image
upsampled to its size, told the low-resolution image's noise-augmentation level s."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difflab.conditioning import Condition
from difflab.networks.config_check import require
from difflab.networks.layers import sinusoidal_embedding
from difflab.networks.unet import UNet, UNetConfig

AUG_FEATURES = 32  # sinusoidal features of 1000 * s, the inner UNet's cond.embedding


@dataclass(frozen=True)
class UpsamplerConfig(UNetConfig):
    """A UNetConfig whose in_channels (= out_channels) are the image's; the inner UNet takes
    twice as many (the low-resolution image's too) and embeds s in its time embedding."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.embedding_dim == 0, self, "embedding_dim", "0: the upsampler embeds s")
        require(self.num_classes is None, self, "num_classes", "None: no labels")

    def inner(self) -> UNetConfig:
        """The UNet's config: image and low-resolution channels in, AUG_FEATURES embedded."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(UNetConfig)}
        fields.update(in_channels=2 * self.in_channels, embedding_dim=AUG_FEATURES)
        return UNetConfig(**fields)


def aug_features(s: Tensor) -> Tensor:
    """[N] levels s in [0, 1] -> [N, AUG_FEATURES] sinusoidal features of 1000 s, scaled to
    unit norm (the size of the L2-normalised embeddings the UNet's projection is made for)."""
    return sinusoidal_embedding(1000.0 * s, AUG_FEATURES) / (AUG_FEATURES / 2) ** 0.5


class Upsampler(nn.Module):
    """F(x, t, cond) -> [N, C, H, W] for images x [N, C, H, W]; cond.hint [N, C, h, w] is the
    (noise-augmented) low-resolution image, resized bilinearly to H x W, and cond.embedding
    [N, 1] its augmentation level s. No condition: a zero image at s = 0."""

    def __init__(self, config: UpsamplerConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(config.inner())

    def forward(self, x: Tensor, t: Tensor, cond: Condition | None = None) -> Tensor:
        n, c, h, w = x.shape
        low = cond.hint if cond is not None else None
        s = cond.embedding if cond is not None else None
        low = x.new_zeros(n, c, h, w) if low is None else low.to(x.dtype)
        s = x.new_zeros(n) if s is None else s.reshape(n)
        up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        inner = Condition(embedding=aug_features(s).to(x.dtype))
        return self.unet(torch.cat([x, up], dim=1), t, inner)
