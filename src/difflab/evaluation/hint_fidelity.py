"""Hint fidelity of a ControlNet's samples: re-extract the hint from each sample and compare it
with the hint the sample was conditioned on (Zhang et al. 2023 measure it the same way).

One metric per hint type, registered in HINT_METRICS by the hint's name (`edge_f1.py`:
canny, hough, scribble; `mean_iou.py`: segmentation; `depth_error.py`: depth). A metric is
`metric(images, hints, setting) -> {"hint_metric": name, "hint_fidelity": value, ...}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.core.registry import Registry
from difflab.data import ImageDataset, ToSymmetric


@dataclass(frozen=True)
class HintSetting:
    """What a metric needs beyond the images: the hint type and options (the run's
    `model.controlnet.hint`, `hint_options`), the training split whose exact maps train a
    re-extractor network (segmentation, depth; loaded only when a metric needs it), the cache
    folder, the re-extractor's training steps (None: train_map_network's default)."""

    hint: str
    options: dict[str, Any] = field(default_factory=dict)
    train_split: Callable[[], ImageDataset] | None = None
    cache: Path = Path("~/.cache/difflab")
    steps: int | None = None
    device: str = "cpu"


class HintMetric(Protocol):
    def __call__(self, images: Tensor, hints: Tensor, setting: HintSetting) -> dict[str, Any]:
        """The fidelity of uint8 images [N, C, H, W] to their hints [N, C_hint, H, W]."""
        ...


HINT_METRICS: Registry[HintMetric] = Registry("hint fidelity metric")


def hint_fidelity(images: Tensor, hints: Tensor, setting: HintSetting) -> dict[str, Any]:
    """HINT_METRICS[setting.hint] of images (uint8 [N, C, H, W]) against the hints they were
    conditioned on ([N, C_hint, H, W] in [-1, 1], one per image); ConfigError for a hint type
    without a metric, DataError for mismatched shapes."""
    if setting.hint not in HINT_METRICS:
        raise ConfigError(
            f"hint type {setting.hint!r} has no fidelity metric (metric hint covers "
            f"{', '.join(HINT_METRICS.names())})"
        )
    if images.dtype != torch.uint8 or images.ndim != 4 or hints.ndim != 4:
        raise DataError(
            f"hint fidelity needs uint8 images [N, C, H, W] and hints [N, C, H, W], got "
            f"{images.dtype} {tuple(images.shape)}, {tuple(hints.shape)}"
        )
    if len(hints) != len(images) or hints.shape[-2:] != images.shape[-2:]:
        raise DataError(
            f"{len(images)} images {tuple(images.shape[-2:])} but hints of shape "
            f"{tuple(hints.shape)}: one hint of the images' size per image"
        )
    scores = HINT_METRICS.get(setting.hint)(images, hints.cpu(), setting)
    return {"hint": setting.hint, "num_samples": len(images), **scores}


def symmetric(images: Tensor) -> Tensor:
    """uint8 images [N, C, H, W] -> float in [-1, 1], as the hint transforms take them."""
    return ToSymmetric()({"image": images.cpu()})["image"]
