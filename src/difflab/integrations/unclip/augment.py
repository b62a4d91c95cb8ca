"""Noise-conditioning augmentation of an upsampler's low-resolution input (Ho et al. 2022,
cascaded diffusion, Section 3.2): the low-resolution image noised to a level s in [0, 1] of a
fixed cosine process, s drawn at random in training and fixed at sampling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.conditioning import Condition
from difflab.samplers.base import Generator, randn_like


def low_res(images: Tensor, size: int) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] averaged down to size x size (area: each low-resolution
    pixel is the mean of the pixels it covers)."""
    return F.interpolate(images, size=(size, size), mode="area")


def noise_augment(low: Tensor, s: Tensor, eps: Tensor) -> Tensor:
    """cos(pi s / 2) low + sin(pi s / 2) eps per row ([N] levels s): s = 0 is the clean image
    exactly, s = 1 pure noise."""
    angle = (s * (math.pi / 2)).to(low.dtype).view(-1, *(1,) * (low.ndim - 1))
    return torch.cos(angle) * low + torch.sin(angle) * eps


def low_res_condition(low: Tensor, s: Tensor, generator: Generator | None) -> Condition:
    """The upsampler's condition: low [N, C, h, w] augmented to levels s [N] with noise from
    generator (a torch.Generator, or a StackedGenerator's per-image streams)."""
    eps = randn_like(low, generator)
    return Condition(hint=noise_augment(low, s, eps), embedding=s.to(low.dtype)[:, None])
