"""Batch transforms on dicts of tensors, run on the batch's device (GPU augmentation).

Each transform is called as `transform(batch, *, generator=None) -> new batch`: it returns a
new dict and never changes the caller's tensors; per-sample randomness comes from `generator`
so augmentation is reproducible. Keys a transform lists but the batch lacks are left alone,
so a flip turns an image and its control hint ("hint") together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.core.errors import DataError

Batch = dict[str, Tensor]
IMAGE_KEYS = ("image", "hint")


class BatchTransform(Protocol):
    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch: ...


@dataclass(frozen=True)
class ToSymmetric:
    """uint8 [0, 255] -> float32 [-1, 1]: x = u / 127.5 - 1 (the inverse of to_uint8)."""

    key: str = "image"

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        u = batch[self.key]
        if u.dtype != torch.uint8:
            raise DataError(f"ToSymmetric expects uint8 batch[{self.key!r}], got {u.dtype}")
        return {**batch, self.key: u.float() / 127.5 - 1.0}


def to_uint8(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> uint8 [0, 255], clamped and rounded (the inverse of ToSymmetric)."""
    return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Resize:
    """Resize to `size` (int: square) with F.interpolate; antialiased when downscaling.

    "nearest" is nearest-exact (pixel centres aligned), right for label maps. uint8 stays uint8
    (interpolated in float32, then rounded).
    """

    size: int | tuple[int, int]
    mode: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    keys: tuple[str, ...] = IMAGE_KEYS

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        out = dict(batch)
        for key in self.keys:
            if key in batch:
                out[key] = self._resize(batch[key])
        return out

    def _resize(self, x: Tensor) -> Tensor:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        if tuple(x.shape[-2:]) == size:
            return x
        if self.mode == "nearest":
            return F.interpolate(x, size=size, mode="nearest-exact")
        down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        y = F.interpolate(x.float(), size=size, mode=self.mode, align_corners=False, antialias=down)
        if x.dtype == torch.uint8:
            return y.round().clamp(0, 255).to(torch.uint8)
        return y.to(x.dtype)


@dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirror each sample left-right with probability p (one draw per sample, all keys)."""

    p: float = 0.5
    keys: tuple[str, ...] = IMAGE_KEYS

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        present = [k for k in self.keys if k in batch]
        if not present:
            return dict(batch)
        first = batch[present[0]]
        device = generator.device if generator is not None else first.device
        flip = torch.rand(first.shape[0], generator=generator, device=device) < self.p
        flip = flip.to(first.device).view(-1, 1, 1, 1)  # [N, 1, 1, 1]
        out = dict(batch)
        for key in present:
            out[key] = torch.where(flip, batch[key].flip(-1), batch[key])
        return out


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order, each drawing from the same generator."""

    transforms: Sequence[BatchTransform]

    def __call__(self, batch: Batch, *, generator: torch.Generator | None = None) -> Batch:
        out = dict(batch)
        for transform in self.transforms:
            out = transform(out, generator=generator)
        return out
