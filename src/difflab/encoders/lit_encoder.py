"""difflab's own image encoder for unCLIP when no CLIP is given: a small CNN whose unit-norm
output is aligned with a frozen text encoder's embeddings by LiT (Zhai et al. 2022, "LiT:
Zero-Shot Transfer with Locked-image text Tuning", here with the text side locked).

Saved as lit_encoder.safetensors beside lit_encoder.json (config, the text encoder it was
aligned to, its retrieval accuracy), each written atomically; loading executes no code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from difflab.core.errors import CheckpointError, ConfigError
from difflab.core.file_modes import save_weights
from difflab.encoders.image import IMAGE_ENCODERS, LIT_CONFIG
from difflab.encoders.text import l2_normalize

WEIGHTS_FILE = "lit_encoder.safetensors"
FORMAT = "difflab-lit-encoder"


@dataclass(frozen=True)
class LiTConfig:
    """Input images, output size (the text encoder's E) and width of the image tower."""

    in_channels: int
    image_size: int
    dim: int
    text_encoder: str  # TextEncoder.name of the locked text tower
    width: int = 32

    def __post_init__(self) -> None:
        if min(self.in_channels, self.dim) < 1 or self.image_size < 4 or self.width % 8:
            raise ConfigError(
                "LiT encoder needs in_channels, dim >= 1, image_size >= 4 and width a multiple "
                f"of 8; got {self.in_channels}, {self.dim}, {self.image_size}, {self.width}"
            )


def conv_norm(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (stride 1 or 2) -> GroupNorm(8) -> SiLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()
    )


class LiTImageTower(nn.Module):
    """CNN [N, C, H, W] in [-1, 1] -> unit-norm embedding [N, dim], plus CLIP's learned
    temperature: logit_scale = log(1 / tau), starting at log(1 / 0.07) (Radford et al. 2021)."""

    def __init__(self, config: LiTConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            conv_norm(config.in_channels, w),
            conv_norm(w, 2 * w, stride=2),
            conv_norm(2 * w, 2 * w),
            conv_norm(2 * w, 4 * w, stride=2),
            conv_norm(4 * w, 4 * w),
        )
        self.head = nn.Sequential(nn.Linear(4 * w, 4 * w), nn.SiLU(), nn.Linear(4 * w, config.dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, x: Tensor) -> Tensor:
        h = self.body(x).mean(dim=(2, 3))  # [N, 4w, h, w] -> [N, 4w]
        return l2_normalize(self.head(h))


class LiTImageEncoder:
    """A trained LiTImageTower as a frozen ImageEncoder."""

    def __init__(self, tower: LiTImageTower, name: str) -> None:
        self.tower = tower.eval().requires_grad_(False)
        self.name = name
        self.dim = tower.config.dim
        self.text_encoder = tower.config.text_encoder

    def to(self, device: torch.device | str) -> LiTImageEncoder:
        self.tower.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """[N, C, H, W] in [-1, 1] -> [N, E]; other sizes are resized (bilinear, antialiased)."""
        c, size = self.tower.config.in_channels, self.tower.config.image_size
        if images.ndim != 4 or images.shape[1] != c:
            raise ConfigError(
                f"image encoder {self.name} takes [N, {c}, H, W] images, got {tuple(images.shape)}"
            )
        x = images.to(self.tower.logit_scale.device, torch.float32)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return self.tower(x)


def save_lit(tower: LiTImageTower, folder: str | Path, metrics: dict[str, Any]) -> Path:
    """Write folder/lit_encoder.safetensors then folder/lit_encoder.json, each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(tower, folder / WEIGHTS_FILE)
    meta = {"format": FORMAT, "config": dataclasses.asdict(tower.config), "metrics": metrics}
    tmp = folder / (LIT_CONFIG + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, folder / LIT_CONFIG)
    return folder


def read_lit_meta(folder: Path) -> dict[str, Any]:
    """lit_encoder.json of a LiT folder; CheckpointError naming it if missing or malformed."""
    path = folder / LIT_CONFIG
    try:
        meta = json.loads(path.read_text())
        LiTConfig(**meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"LiT encoder {path} is missing or malformed: {err}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"LiT encoder {path}: format {meta.get('format')!r}, not {FORMAT}")
    return meta


@IMAGE_ENCODERS.register("lit")
def load_lit(folder: Path) -> LiTImageEncoder:
    """The LiT encoder saved in folder, frozen, on the CPU."""
    tower = LiTImageTower(LiTConfig(**read_lit_meta(folder)["config"]))
    path = folder / WEIGHTS_FILE
    try:
        tower.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"LiT encoder weights {path} are unreadable: {err}") from None
    return LiTImageEncoder(tower, f"lit:{folder.resolve()}")
