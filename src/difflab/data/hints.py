"""Control hints made from a batch's images, as batch transforms: each adds batch["hint"]
([N, C_hint, H, W] in [-1, 1]) from batch["image"] (float in [-1, 1], i.e. after ToSymmetric)
and keeps the other keys. The ControlNet paper's hints (Zhang et al. 2023, Section 4) include
Canny edges; a blurred image is a dependency-free hint for tests and demos.

Chosen by name from HINTS with `make_hint(name, **options)`.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np
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


def is_number(value: Any, kind: type) -> bool:
    """An int (kind int) or a finite int or float (kind float); booleans are not numbers here."""
    allowed = (int,) if kind is int else (int, float)
    return isinstance(value, allowed) and not isinstance(value, bool) and math.isfinite(value)


def check_range(
    hint: str, key: str, value: Any, kind: type, low: float, high: float = math.inf
) -> None:
    """value is a number of `kind` (int or float) in [low, high], or a ConfigError naming the
    hint, the key and the value."""
    if not is_number(value, kind) or not low <= value <= high:
        raise ConfigError(
            f"{hint} hint {key}={value!r}: expected {kind.__name__} in [{low}, {high}]"
        )


def batch_image(batch: Batch) -> Tensor:
    """batch["image"], checked to be float [N, C, H, W] (after ToSymmetric)."""
    x = batch["image"]
    if not x.is_floating_point() or x.ndim != 4:
        raise DataError(
            f"hints need batch['image'] as float [N, C, H, W] in [-1, 1] (after ToSymmetric), "
            f"got {x.dtype} of shape {tuple(x.shape)}"
        )
    return x


def paired_map(batch: Batch, key: str, x: Tensor) -> Tensor:
    """batch[key], a per-pixel map [N, 1, H, W] paired with images x, or a one-line error."""
    if key not in batch:
        raise DataError(
            f"this hint needs batch[{key!r}] (a dataset with {key} maps, e.g. 'shapes'), "
            f"the batch has {sorted(batch)}"
        )
    m = batch[key]
    if m.shape != (x.shape[0], 1, *x.shape[2:]):
        raise DataError(
            f"batch[{key!r}] has shape {tuple(m.shape)}, expected "
            f"{(x.shape[0], 1, *x.shape[2:])} to pair with the images (resized separately?)"
        )
    return m


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
        if not is_number(self.factor, int) or self.factor < 1:
            raise ConfigError(f"blur hint factor={self.factor!r}: expected an integer >= 1")
        if self.mode not in ("nearest", "bilinear"):
            raise ConfigError(f"blur hint mode={self.mode!r}: expected 'nearest' or 'bilinear'")

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        x = batch_image(batch)
        h, w = x.shape[-2:]
        small = F.adaptive_avg_pool2d(x, (max(1, h // self.factor), max(1, w // self.factor)))
        extra = {"align_corners": False} if self.mode == "bilinear" else {}
        hint = F.interpolate(small, size=(h, w), mode=self.mode, **extra)
        return {**batch, "hint": hint.clamp(-1.0, 1.0)}

    def channels(self, image_channels: int) -> int:
        """Channels of the hint made from images with image_channels channels."""
        return image_channels


def optional_module(name: str, what: str) -> ModuleType:
    """The module `name` of the optional `hints` extra, or an error saying `what` needs it and
    how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise DifflabError(
            f"{what} need {name}, which is not installed: pip install 'difflab[hints]'"
        ) from None


def require_cv2() -> ModuleType:
    """OpenCV, or an error that says how to install it (it is the optional `hints` extra)."""
    return optional_module("cv2", "Canny, Hough and scribble hints")


def grey_uint8(x: Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> the grey images as uint8 [N, H, W] on the host."""
    return to_uint8(grey(x))[:, 0].cpu().numpy()


def canny_edges(x: Tensor, low: float, high: float) -> np.ndarray:
    """cv2.Canny of each grey image of x ([N, C, H, W] in [-1, 1]): uint8 [N, H, W], 255 on
    edges."""
    cv2 = require_cv2()
    return np.stack([cv2.Canny(im, low, high) for im in grey_uint8(x)])


def mask_hint(masks: np.ndarray, like: Tensor) -> Tensor:
    """Boolean maps [N, H, W] -> a one-channel hint [N, 1, H, W]: 1 on the mask, -1 elsewhere,
    on like's device and dtype."""
    hint = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    return (hint * 2.0 - 1.0).to(device=like.device, dtype=like.dtype)


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
        if not (is_number(low, float) and is_number(high, float) and 0 <= low <= high):
            raise ConfigError(
                f"canny thresholds low={self.low_threshold!r}, high={self.high_threshold!r}: "
                "expected 0 <= low <= high"
            )

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        x = batch_image(batch)
        edges = canny_edges(x, self.low_threshold, self.high_threshold)
        return {**batch, "hint": mask_hint(edges != 0, x)}

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
