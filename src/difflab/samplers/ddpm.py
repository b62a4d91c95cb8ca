"""DDPM ancestral sampling: draw x_s ~ q(x_s | x_t, x0_hat) for each grid pair (t, s)
(Ho et al. 2020, eq. 7; in alpha/sigma form, Kingma et al. 2021, eq. 32-33)."""

from __future__ import annotations

import math

from torch import Tensor

from difflab.parameterization.prediction import DenoiseFn
from difflab.samplers.base import SAMPLERS, Generator, SamplingGrid, StepCallback, randn_like


def posterior_coefficients(alpha: float, sigma: float, alpha_s: float, sigma_s: float):
    """q(x_s | x_t, x0) = N(c_x * x_t + c_0 * x0, var) with alpha_{t|s} = alpha_t / alpha_s and
    sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2:
    c_x = alpha_{t|s} sigma_s^2 / sigma_t^2, c_0 = alpha_s sigma_{t|s}^2 / sigma_t^2,
    var = sigma_{t|s}^2 sigma_s^2 / sigma_t^2."""
    alpha_ts = alpha / alpha_s
    var_ts = max(sigma**2 - alpha_ts**2 * sigma_s**2, 0.0)
    c_x = alpha_ts * sigma_s**2 / sigma**2
    c_0 = alpha_s * var_ts / sigma**2
    return c_x, c_0, var_ts * sigma_s**2 / sigma**2


@SAMPLERS.register("ddpm")
def sample_ddpm(
    denoise: DenoiseFn,
    x: Tensor,
    grid: SamplingGrid,
    *,
    generator: Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Ancestral sampling over the grid; the last step (to clean data) returns x0_hat."""
    x = x.float()
    for i, t, _ in grid.pairs():
        pred = denoise(x, t)
        c_x, c_0, var = posterior_coefficients(*grid.alpha_sigma(i), *grid.alpha_sigma(i + 1))
        x = c_x * x + c_0 * pred.x0
        if var > 0:
            x = x + math.sqrt(var) * randn_like(x, generator)
        if callback is not None:
            callback(i, t, x, pred)
    return x
