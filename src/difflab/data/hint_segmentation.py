"""Segmentation hints: a map of regions, each filled with one colour (Zhang et al. 2023 use
ADE20K-style label maps). From a dataset's ground-truth class map (batch["segmentation"],
0 = background) coloured with a fixed palette, or, where there is none, a classical region map:
Felzenszwalb-Huttenlocher graph segments (scikit-image) filled with their mean colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.data.hints import HINTS, batch_image, is_number, optional_module, paired_map
from difflab.data.transforms import Batch, to_uint8

NUM_COLOURS = 256


def palette() -> np.ndarray:
    """The PASCAL VOC palette, uint8 [256, 3]: label bits spread over the high bits of R, G, B,
    so the 256 colours are distinct and label 0 is black."""
    labels = np.arange(NUM_COLOURS)
    colours = np.zeros((NUM_COLOURS, 3), np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (labels >> (3 * shift + channel)) & 1
            colours[:, channel] |= bit << (7 - shift)
    return colours.astype(np.uint8)


def colour_labels(labels: Tensor) -> Tensor:
    """Class maps (integers in 0..255, any shape [...]) -> their palette colours uint8 [..., 3]."""
    if labels.is_floating_point() or labels.min() < 0 or labels.max() >= NUM_COLOURS:
        raise DataError(f"segmentation labels must be integers in 0..{NUM_COLOURS - 1}")
    return torch.from_numpy(palette()).to(labels.device)[labels.long()]


def labels_from_colours(colours: Tensor) -> Tensor:
    """The inverse of colour_labels: uint8 [..., 3] palette colours -> long [...] labels."""
    table = torch.from_numpy(palette()).to(colours.device)  # [256, 3]
    match = (colours[..., None, :] == table).all(dim=-1)  # [..., 256]
    if not match.any(dim=-1).all():
        raise DataError("segmentation colours outside the palette")
    return match.long().argmax(dim=-1)


@HINTS.register("segmentation")
@dataclass(frozen=True)
class SegmentationHint:
    """source "labels": batch["segmentation"] (integers [N, 1, H, W]) in palette colours, three
    channels; source "regions": skimage.segmentation.felzenszwalb(scale, sigma, min_size)
    regions of each image filled with their mean colour (the image's channels)."""

    source: Literal["regions", "labels"] = "regions"
    scale: float = 50.0
    sigma: float = 0.5
    min_size: int = 8

    def __post_init__(self) -> None:
        if self.source not in ("regions", "labels"):
            raise ConfigError(f"segmentation hint source={self.source!r}: 'regions' or 'labels'")
        if not (is_number(self.scale, float) and is_number(self.sigma, float)):
            raise ConfigError(f"segmentation hint scale={self.scale!r}, sigma={self.sigma!r}")
        if not is_number(self.min_size, int) or self.min_size < 1:
            raise ConfigError(f"segmentation hint min_size={self.min_size!r}: expected >= 1")
        if self.source == "regions":
            optional_module("skimage.segmentation", "segmentation region hints")

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        x = batch_image(batch)
        if self.source == "labels":
            colours = colour_labels(paired_map(batch, "segmentation", x)[:, 0])  # [N, H, W, 3]
            hint = colours.permute(0, 3, 1, 2).to(x.dtype) / 127.5 - 1.0
        else:
            images = to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()  # [N, H, W, C]
            regions = np.stack([self.regions(im) for im in images])
            hint = torch.from_numpy(regions).permute(0, 3, 1, 2).to(x.device, x.dtype)
        return {**batch, "hint": hint}

    def regions(self, image: np.ndarray) -> np.ndarray:
        """uint8 [H, W, C] -> float [H, W, C] in [-1, 1]: each region's mean colour."""
        seg = optional_module("skimage.segmentation", "segmentation region hints")
        values = image.astype(np.float64) / 127.5 - 1.0
        segments = seg.felzenszwalb(
            values, scale=self.scale, sigma=self.sigma, min_size=self.min_size, channel_axis=-1
        )
        counts = np.bincount(segments.ravel())[:, None]  # [R, 1]
        flat = values.reshape(-1, values.shape[-1])
        sums = np.stack([np.bincount(segments.ravel(), c) for c in flat.T], axis=1)  # [R, C]
        return (sums / counts)[segments].astype(np.float32)

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return 3 if self.source == "labels" else image_channels
