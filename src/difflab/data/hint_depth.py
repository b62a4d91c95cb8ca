"""Depth hints: a per-pixel depth map, near bright (Zhang et al. 2023 use MiDaS, whose weights
must be downloaded). The depth comes from a dataset's paired maps (batch["depth"], in [0, 1],
1 = farthest, e.g. the 'shapes' dataset) or from a local depth model file given by path,
TorchScript (.pt, .pth), torch.export (.pt2) or ONNX (.onnx); difflab never downloads one.

A model takes the images, float [N, C, H, W] in [-1, 1], and returns depth [N, 1, H, W]
(larger = farther), normalised here per image to [0, 1].
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.data.hints import HINTS, batch_image, optional_module, paired_map
from difflab.data.transforms import Batch

DepthSource = Literal["map", "model"]


@functools.lru_cache(maxsize=4)
def load_depth_model(path: str) -> Callable[[Tensor], Tensor]:
    """The depth model in file `path` (TorchScript, torch.export or ONNX), on the CPU."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"depth model {path}: no such file")
    if file.suffix == ".onnx":
        ort = optional_module("onnxruntime", "ONNX depth models")
        session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.float().numpy()})[0])
    try:
        if file.suffix == ".pt2":
            module = torch.export.load(str(file)).module()
        else:
            module = torch.jit.load(str(file), map_location="cpu").eval()
    except (RuntimeError, ValueError, KeyError) as e:
        raise ConfigError(f"depth model {path}: not a {file.suffix} model file ({e})") from None
    return lambda x: module(x.float())


def normalised(depth: Tensor) -> Tensor:
    """Each map of depth [N, 1, H, W] scaled to [0, 1] by its own min and max (flat maps: 0)."""
    lo = depth.amin(dim=(1, 2, 3), keepdim=True)
    hi = depth.amax(dim=(1, 2, 3), keepdim=True)
    return (depth - lo) / (hi - lo).clamp_min(torch.finfo(depth.dtype).tiny)


def depth_of(batch: Batch, source: DepthSource, model: str | None) -> Tensor:
    """The depth [N, 1, H, W] in [0, 1] of batch["image"]: paired maps or the model's."""
    x = batch_image(batch)
    if source == "map":
        depth = paired_map(batch, "depth", x).to(x.dtype)
        if depth.min() < 0 or depth.max() > 1:
            raise DataError("batch['depth'] must hold depths in [0, 1] (1 = farthest)")
        return depth
    with torch.no_grad():
        out = load_depth_model(str(model))(x.detach().cpu())
    if out.ndim == 3:
        out = out[:, None]
    if tuple(out.shape) != (x.shape[0], 1, *x.shape[2:]):
        raise DataError(f"depth model {model}: output {tuple(out.shape)} for {tuple(x.shape)}")
    return normalised(out.to(device=x.device, dtype=x.dtype))


def check_source(kind: str, source: str, model: str | None) -> None:
    """A depth source and its model path agree: "model" needs `model`, "map" takes none."""
    if source not in ("map", "model"):
        raise ConfigError(f"{kind} hint source={source!r}: expected 'map' or 'model'")
    if (source == "model") != (model is not None):
        raise ConfigError(f"{kind} hint: model=PATH is needed with source 'model' and only then")
    if model is not None:
        load_depth_model(str(model))


@HINTS.register("depth")
@dataclass(frozen=True)
class DepthHint:
    """One channel, 1 - 2 depth: near +1, farthest -1 (the paper's inverse-depth look)."""

    source: DepthSource = "map"
    model: str | None = None

    def __post_init__(self) -> None:
        check_source("depth", self.source, self.model)

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        return {**batch, "hint": 1.0 - 2.0 * depth_of(batch, self.source, self.model)}

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return 1
