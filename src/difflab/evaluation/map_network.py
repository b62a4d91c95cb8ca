"""The re-extractor of segmentation and depth hint fidelity: a small fully convolutional
network that predicts a per-pixel map (class logits, or depth in (0, 1)) from an image.

A two-level encoder-decoder (3x3 convolutions, GroupNorm, SiLU; 2x2 average pooling down,
nearest upsampling and skip concatenation up). Weights are saved as safetensors beside a JSON
config; `load_map_network` raises CheckpointError naming the file that is missing or unreadable.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from difflab.core.errors import CheckpointError, ConfigError
from difflab.evaluation.module_folder import save_module_folder

WEIGHTS_FILE = "map_network.safetensors"
CONFIG_FILE = "map_network.json"
FORMAT = "difflab-map-network"
MapTask = Literal["segmentation", "depth"]


@dataclass(frozen=True)
class MapNetworkConfig:
    """The task (segmentation: num_classes logits; depth: one channel), input channels, width."""

    dataset: str
    task: MapTask
    in_channels: int
    num_classes: int = 1
    width: int = 32

    def __post_init__(self) -> None:
        if self.task not in ("segmentation", "depth"):
            raise ConfigError(f"map network task={self.task!r}: 'segmentation' or 'depth'")
        if self.in_channels < 1 or self.num_classes < 1 or self.width < 8 or self.width % 8:
            raise ConfigError(f"map network: bad shape {self}")

    @property
    def out_channels(self) -> int:
        return self.num_classes if self.task == "segmentation" else 1


def block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by GroupNorm(8) and SiLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
    )  # fmt: skip


class MapNetwork(nn.Module):
    """images in [-1, 1] [N, C, H, W] -> maps [N, out_channels, H, W] (logits or raw depth)."""

    def __init__(self, config: MapNetworkConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.enc1, self.enc2, self.mid = (
            block(config.in_channels, w),
            block(w, 2 * w),
            block(2 * w, 2 * w),
        )
        self.dec2, self.dec1 = block(4 * w, 2 * w), block(3 * w, w)
        self.out = nn.Conv2d(w, config.out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)  # [N, w, H, W]
        e2 = self.enc2(F.avg_pool2d(e1, 2, ceil_mode=True))  # [N, 2w, H/2, W/2]
        m = self.mid(F.avg_pool2d(e2, 2, ceil_mode=True))  # [N, 2w, H/4, W/4]
        d2 = self.dec2(torch.cat([F.interpolate(m, size=e2.shape[-2:]), e2], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:]), e1], dim=1))
        return self.out(d1)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Class map long [N, H, W] (segmentation) or depth in (0, 1) [N, H, W] (depth)."""
        out = self(x)
        return out.argmax(1) if self.config.task == "segmentation" else torch.sigmoid(out[:, 0])


def save_map_network(network: MapNetwork, folder: str | Path) -> None:
    """Write folder/map_network.safetensors, then folder/map_network.json (each atomically)."""
    meta = {"format": FORMAT, "version": 1, "config": dataclasses.asdict(network.config)}
    save_module_folder(network, meta, folder, WEIGHTS_FILE, CONFIG_FILE)


def load_map_network(folder: str | Path, device: torch.device | str = "cpu") -> MapNetwork:
    """A network saved by save_map_network, in eval mode on device."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        network = MapNetwork(MapNetworkConfig(**meta["config"]))
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"map network config {path} is missing or invalid: {err}") from err
    weights = folder / WEIGHTS_FILE
    try:
        network.load_state_dict(load_file(str(weights)))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"map network weights {weights} are missing or unreadable: {err}"
        ) from err
    return network.to(device).eval()
