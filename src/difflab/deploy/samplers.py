"""numpy samplers over an explicit Grid, the same update rules as difflab.samplers (DDIM,
DPM-Solver++(2M), Euler without churn) written for arrays, in the same operation order so that
float32 results match the torch samplers'. `denoise(x, i)` returns (x0, eps) at grid point i."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from difflab.core.errors import ConfigError
from difflab.deploy.spec import Grid

DenoiseAt = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
NoiseFn = Callable[[tuple[int, ...]], np.ndarray]  # standard normal float32 of a shape


def alpha_sigma(grid: Grid, i: int) -> tuple[float, float]:
    """(alpha_i, sigma_i) as Python floats (weak scalars: float32 arrays stay float32)."""
    return float(grid.alpha[i]), float(grid.sigma[i])


def ddim_noise_std(alpha: float, sigma: float, alpha_next: float, sigma_next: float, eta: float):
    """sigma_eta = eta (sigma_n / sigma) sqrt(1 - alpha^2 / alpha_n^2) (Song et al. 2021,
    eq. 16)."""
    if eta == 0.0 or sigma_next == 0.0:
        return 0.0
    return eta * (sigma_next / sigma) * math.sqrt(max(0.0, 1.0 - (alpha / alpha_next) ** 2))


def sample_ddim(
    denoise: DenoiseAt, x: np.ndarray, grid: Grid, *, noise: NoiseFn | None = None, eta=0.0
) -> np.ndarray:
    """x_n = alpha_n x0 + sqrt(sigma_n^2 - s^2) eps + s z, s the eta noise (Song et al. 2021,
    eq. 12); eta > 0 draws z from `noise`."""
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"eta must lie in [0, 1], got {eta}")
    x = x.astype(np.float32)
    for i in range(grid.steps):
        x0, eps = denoise(x, i)
        alpha, sigma = alpha_sigma(grid, i)
        alpha_n, sigma_n = alpha_sigma(grid, i + 1)
        s = ddim_noise_std(alpha, sigma, alpha_n, sigma_n, eta)
        x = alpha_n * x0 + math.sqrt(max(sigma_n**2 - s**2, 0.0)) * eps
        if s > 0:
            if noise is None:
                raise ConfigError("DDIM with eta > 0 needs a noise source")
            x = x + s * noise(x.shape)
    return x


def sample_euler(
    denoise: DenoiseAt, x: np.ndarray, grid: Grid, *, noise: NoiseFn | None = None
) -> np.ndarray:
    """Euler in x~ = x / alpha, s = sigma / alpha (Karras et al. 2022, Algorithm 2 without churn):
    x_next = alpha_next x0 + sigma_next eps. Deterministic: `noise` is unused."""
    x = x.astype(np.float32)
    for i in range(grid.steps):
        x0, eps = denoise(x, i)
        alpha_n, sigma_n = alpha_sigma(grid, i + 1)
        x = alpha_n * x0 + sigma_n * eps
    return x


def half_logsnr(grid: Grid) -> list[float]:
    """lambda_i = log(alpha_i / sigma_i), +-inf where sigma or alpha is 0."""
    with np.errstate(divide="ignore"):
        logsnr = 2 * (np.log(grid.alpha) - np.log(grid.sigma))
    return [float(v) / 2 for v in logsnr]


def sample_dpmpp_2m(
    denoise: DenoiseAt, x: np.ndarray, grid: Grid, *, noise: NoiseFn | None = None
) -> np.ndarray:
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2) as difflab.samplers.dpm_solver: first
    order on the first and last steps and where h or h_prev is 0 or infinite. Deterministic."""
    x = x.astype(np.float32)
    lam = half_logsnr(grid)
    x0_prev, h_prev = None, math.inf
    for i in range(grid.steps):
        x0, _ = denoise(x, i)
        h = lam[i + 1] - lam[i]
        d = x0
        finite = 0.0 < h < math.inf and 0.0 < h_prev < math.inf
        if x0_prev is not None and i != grid.steps - 1 and finite:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        _, sigma = alpha_sigma(grid, i)
        alpha_n, sigma_n = alpha_sigma(grid, i + 1)
        x = (sigma_n / sigma) * x - alpha_n * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x


DEPLOY_SAMPLERS: dict[str, Callable[..., np.ndarray]] = {
    "ddim": sample_ddim,
    "dpmpp-2m": sample_dpmpp_2m,
    "euler": sample_euler,
}

# each sampler's keyword options (its torch twin's options that difflab.deploy implements)
SAMPLER_OPTIONS: dict[str, tuple[str, ...]] = {"ddim": ("eta",), "dpmpp-2m": (), "euler": ()}
