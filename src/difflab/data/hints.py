"""Control hints made from a batch's images, as batch transforms: each adds batch["hint"]
([N, C_hint, H, W] in [-1, 1]) from batch["image"] (float in [-1, 1], i.e. after ToSymmetric)
and keeps the other keys. The ControlNet paper's hints (Zhang et al. 2023, Section 4) include
Canny edges; a blurred image is a dependency-free hint for tests and demos.

Chosen by name from HINTS with `make_hint(name, **options)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.core.errors import ConfigError, DataError, DifflabError
from difflab.core.registry import Registry
from difflab.data.transforms import Batch, BatchTransform, to_uint8


class Hint(BatchTransform, Protocol):
    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        ...


HINTS: Registry[type[Hint]] = Registry("hint")

# ITU-R BT.601 luma weights for RGB -> grey.
LUMA = (0.299, 0.587, 0.114)


def _is_number(value: Any, kind: type) -> bool:
    """An int (kind int) or a finite int or float (kind float); booleans are not numbers here."""
    allowed = (int,) if kind is int else (int, float)
    return isinstance(value, allowed) and not isinstance(value, bool) and math.isfinite(value)


def _image(batch: Batch) -> Tensor:
    x = batch["image"]
    if not x.is_floating_point() or x.ndim != 4:
        raise DataError(
            f"hints need batch['image'] as float [N, C, H, W] in [-1, 1] (after ToSymmetric), "
            f"got {x.dtype} of shape {tuple(x.shape)}"
        )
    return x


def grey(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, 1, H, W]: luma for RGB, the channel mean otherwise."""
    if x.shape[1] == 3:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


@HINTS.register("blur")
@dataclass(frozen=True)
class BlurHint:
    """The image average-pooled by `factor` and interpolated back to full size: a coarse
    layout to control (the same channels as the image). Averages of values in [-1, 1] stay there.
    """

    factor: int = 4
    mode: Literal["nearest", "bilinear"] = "bilinear"

    def __post_init__(self) -> None:
        if not _is_number(self.factor, int) or self.factor < 1:
            raise ConfigError(f"blur hint factor={self.factor!r}: expected an integer >= 1")
        if self.mode not in ("nearest", "bilinear"):
            raise ConfigError(f"blur hint mode={self.mode!r}: expected 'nearest' or 'bilinear'")

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        x = _image(batch)
        h, w = x.shape[-2:]
        small = F.adaptive_avg_pool2d(x, (max(1, h // self.factor), max(1, w // self.factor)))
        extra = {"align_corners": False} if self.mode == "bilinear" else {}
        hint = F.interpolate(small, size=(h, w), mode=self.mode, **extra)
        return {**batch, "hint": hint.clamp(-1.0, 1.0)}

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return image_channels


def require_cv2() -> ModuleType:
    """OpenCV, or an error that says how to install it (it is the optional `hints` extra)."""
    try:
        import cv2  # optional heavy dependency (the `hints` extra)
    except ImportError:
        raise DifflabError(
            "Canny hints need OpenCV, which is not installed: pip install 'difflab[hints]'"
        ) from None
    return cv2


@HINTS.register("canny")
@dataclass(frozen=True)
class CannyHint:
    """Canny edges of the grey image (cv2.Canny with hysteresis thresholds on uint8 gradients,
    the ControlNet annotator's defaults 100 and 200): one channel, 1 on edges and -1 elsewhere.

    Runs on the CPU, one image at a time (a host round trip for device batches).
    """

    low_threshold: float = 100.0
    high_threshold: float = 200.0

    def __post_init__(self) -> None:
        require_cv2()
        low, high = self.low_threshold, self.high_threshold
        if not (_is_number(low, float) and _is_number(high, float) and 0 <= low <= high):
            raise ConfigError(
                f"canny thresholds low={self.low_threshold!r}, high={self.high_threshold!r}: "
                "expected 0 <= low <= high"
            )

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        cv2 = require_cv2()
        x = _image(batch)
        images = to_uint8(grey(x))[:, 0].cpu().numpy()  # [N, H, W] uint8
        edges = [cv2.Canny(im, self.low_threshold, self.high_threshold) for im in images]
        hint = torch.stack([torch.from_numpy(e) for e in edges])[:, None]  # [N, 1, H, W]
        hint = hint.to(device=x.device, dtype=x.dtype) / 127.5 - 1.0  # {0, 255} -> {-1, 1}
        return {**batch, "hint": hint}

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return 1


def make_hint(name: str, **options: Any) -> Hint:
    """The hint transform `name` with its options (unknown options raise ConfigError).

    >>> make_hint("blur", factor=2)
    BlurHint(factor=2, mode='bilinear')
    """
    cls = HINTS.get(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise ConfigError(f"hint {name!r}: bad options {sorted(options)}: {e}") from None
