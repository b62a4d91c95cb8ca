"""Per-noise-level loss weights, expressed in the space of the training target."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from difflab.core.errors import ConfigError

Weighting = Literal["uniform", "min-snr"]
WEIGHTINGS: tuple[str, ...] = ("uniform", "min-snr")


def target_space_factor(parameterization: str, snr: Tensor) -> Tensor:
    """|target error|^2 / |x0 error|^2 at fixed x_t: 1 for x0, SNR for eps, SNR + 1 for v
    (eps = (x_t - alpha x0) / sigma and x0 = alpha x_t - sigma v)."""
    if parameterization == "x0":
        return torch.ones_like(snr)
    if parameterization == "eps":
        return snr
    if parameterization == "v":
        return snr + 1
    raise ConfigError(f"unknown parameterization {parameterization!r}")


def loss_weight(
    weighting: str, parameterization: str, logsnr: Tensor, *, gamma: float = 5.0
) -> Tensor:
    """Weight of each sample's MSE on its training target.

    min-snr: the x0-space weight min(SNR, gamma) (Hang et al. 2023, eq. 13) divided by the
    target-space factor: min(SNR, gamma) / SNR for eps, min(SNR, gamma) / (SNR + 1) for v.
    """
    if weighting == "uniform":
        return torch.ones_like(logsnr)
    if weighting == "min-snr":
        snr = logsnr.exp()
        return snr.clamp(max=gamma) / target_space_factor(parameterization, snr).clamp_min(1e-20)
    raise ConfigError(f"unknown loss weighting {weighting!r}; expected one of {WEIGHTINGS}")
