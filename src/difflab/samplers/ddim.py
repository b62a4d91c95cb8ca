"""DDIM (Song et al. 2021, eq. 12), eta = 0 deterministic, eta = 1 ancestral."""

from __future__ import annotations

import math

from torch import Tensor

from difflab.parameterization.prediction import DenoiseFn, Prediction
from difflab.samplers.base import SAMPLERS, Generator, SamplingGrid, StepCallback, randn_like


def ddim_noise_std(alpha: float, sigma: float, alpha_next: float, sigma_next: float, eta: float):
    """sigma_eta = eta * (sigma_n / sigma) * sqrt(1 - alpha^2 / alpha_n^2) (Song et al. 2021,
    eq. 16, with alpha_bar = alpha^2 and 1 - alpha_bar = sigma^2)."""
    if eta == 0.0 or sigma_next == 0.0:
        return 0.0
    return eta * (sigma_next / sigma) * math.sqrt(max(0.0, 1.0 - (alpha / alpha_next) ** 2))


def ddim_step(pred: Prediction, alpha_next: Tensor | float, sigma_next: Tensor | float) -> Tensor:
    """x_next = alpha_next x0_hat + sigma_next eps_hat: the deterministic DDIM update (eq. 12
    with eta = 0); alpha_next, sigma_next are floats or tensors that broadcast (per sample)."""
    return alpha_next * pred.x0 + sigma_next * pred.eps


@SAMPLERS.register("ddim")
def sample_ddim(
    denoise: DenoiseFn,
    x: Tensor,
    grid: SamplingGrid,
    *,
    generator: Generator | None = None,
    callback: StepCallback | None = None,
    eta: float = 0.0,
) -> Tensor:
    """x_n = alpha_n x0 + sqrt(sigma_n^2 - s^2) eps + s z with s the eta noise (eq. 12)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    x = x.float()
    for i, t, _ in grid.pairs():
        pred = denoise(x, t)
        alpha, sigma = grid.alpha_sigma(i)
        alpha_n, sigma_n = grid.alpha_sigma(i + 1)
        s = ddim_noise_std(alpha, sigma, alpha_n, sigma_n, eta)
        x = ddim_step(pred, alpha_n, math.sqrt(max(sigma_n**2 - s**2, 0.0)))
        if s > 0:
            x = x + s * randn_like(x, generator)
        if callback is not None:
            callback(i, t, x, pred)
    return x
