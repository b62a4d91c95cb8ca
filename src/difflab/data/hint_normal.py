"""Normal-map hints (Zhang et al. 2023 derive them from MiDaS depth): surface normals of the
depth map by finite differences, three channels in [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.data.hint_depth import DepthSource, check_source, depth_of
from difflab.data.hints import HINTS, is_number
from difflab.data.transforms import Batch


def normals(depth: Tensor, scale: float) -> Tensor:
    """Unit normals [N, 3, H, W] of the surface z = scale * depth ([N, 1, H, W]; x right, y down,
    in pixels): n = (scale dd/dx, scale dd/dy, 1) / |.|, facing the camera; dd/dx and dd/dy by
    torch.gradient (central differences, one-sided at the border: exact for planes)."""
    dy, dx = torch.gradient(depth[:, 0] * scale, dim=(1, 2))  # [N, H, W] each
    n = torch.stack([dx, dy, torch.ones_like(dx)], dim=1)  # [N, 3, H, W]
    return n / n.norm(dim=1, keepdim=True)


@HINTS.register("normal")
@dataclass(frozen=True)
class NormalHint:
    """Normals of the depth (see data.hint_depth for `source` and `model`), with depth 0..1
    spanning `scale` pixels (None: the image width)."""

    source: DepthSource = "map"
    model: str | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        check_source("normal", self.source, self.model)
        if self.scale is not None and (not is_number(self.scale, float) or self.scale <= 0):
            raise ConfigError(f"normal hint scale={self.scale!r}: expected a number > 0")

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        depth = depth_of(batch, self.source, self.model)
        scale = float(depth.shape[-1]) if self.scale is None else float(self.scale)
        return {**batch, "hint": normals(depth, scale)}

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return 3
