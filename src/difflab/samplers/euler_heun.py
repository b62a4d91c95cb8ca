"""Euler and Heun samplers of Karras et al. 2022 (Algorithm 2), with optional churn:
dx~/ds = (x~ - D(x~; s)) / s in x~ = x / alpha, s = sigma / alpha; Heun corrects only steps
with s_hat / s_next <= max_ratio (derivation and the threshold: docs/samplers.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.parameterization.prediction import DenoiseFn
from difflab.samplers.base import SAMPLERS, Generator, SamplingGrid, StepCallback, randn_like
from difflab.samplers.ddim import ddim_step

MAX_RATIO = 3.0  # Heun's default largest s_hat / s_next for a second-order step


@dataclass(frozen=True)
class Churn:
    """Stochastic churn of Algorithm 2: raise s to s_hat = s (1 + gamma) by fresh noise,
    gamma = min(s_churn / N, sqrt(2) - 1) where s_tmin <= s <= s_tmax (in s = sigma / alpha),
    noise scaled by s_noise. s_churn = 0 (default) is the deterministic sampler."""

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0

    def __post_init__(self) -> None:
        if self.s_churn < 0 or self.s_noise < 0 or self.s_tmin > self.s_tmax:
            raise ConfigError(
                f"churn needs s_churn >= 0, s_noise >= 0 and s_tmin <= s_tmax; got {self}"
            )

    def gamma(self, s: float, steps: int) -> float:
        if self.s_churn == 0.0 or not self.s_tmin <= s <= self.s_tmax or math.isinf(s):
            return 0.0
        return min(self.s_churn / steps, math.sqrt(2) - 1)


def scaled_sigma(alpha: float, sigma: float) -> float:
    """s = sigma / alpha, +inf at alpha = 0."""
    return sigma / alpha if alpha > 0 else math.inf


def add_churn(
    x: Tensor, grid: SamplingGrid, i: int, churn: Churn, generator: Generator | None
) -> tuple[Tensor, Tensor, float, float]:
    """(x_hat, t_hat, alpha_hat, sigma_hat) after raising the noise level of x at grid point i:
    x~_hat = x~ + sqrt(s_hat^2 - s^2) s_noise z (Algorithm 2, lines 5-6), taken at the
    schedule's time of s_hat (clamped to its range)."""
    alpha, sigma = grid.alpha_sigma(i)
    s = scaled_sigma(alpha, sigma)
    gamma = churn.gamma(s, grid.steps)
    if gamma == 0.0:
        return x, grid.t[i], alpha, sigma
    t_hat, alpha_hat, sigma_hat = grid.at_logsnr(-2 * math.log(s * (1 + gamma)))
    alpha_hat, sigma_hat = float(alpha_hat), float(sigma_hat)
    std = math.sqrt(max(scaled_sigma(alpha_hat, sigma_hat) ** 2 - s**2, 0.0))
    noise = std * churn.s_noise * randn_like(x, generator)
    return alpha_hat * (x / alpha + noise), t_hat, alpha_hat, sigma_hat


def sample_karras(
    denoise: DenoiseFn,
    x: Tensor,
    grid: SamplingGrid,
    *,
    max_ratio: float,
    churn: Churn,
    generator: Generator | None,
    callback: StepCallback | None,
) -> Tensor:
    """Algorithm 2 of Karras et al. 2022 with the second-order correction
    x~_next = x~_hat + (s_next - s_hat) (d + d') / 2 (lines 9-11) on the steps where
    s_hat / s_next <= max_ratio (written without division: s = inf or s_next = 0 never
    qualify); max_ratio = 0 is Euler throughout."""
    x = x.float()
    for i, t, t_next in grid.pairs():
        x_hat, t_hat, alpha_hat, sigma_hat = add_churn(x, grid, i, churn, generator)
        pred = denoise(x_hat, t_hat)
        alpha_n, sigma_n = grid.alpha_sigma(i + 1)
        # Euler in x~ = x / alpha: x~_next = x~ + (s_next - s) eps_hat (Algorithm 2, lines 7-8),
        # which is x_next = alpha_next x0_hat + sigma_next eps_hat: the DDIM update
        x = ddim_step(pred, alpha_n, sigma_n)
        if sigma_hat * alpha_n <= max_ratio * sigma_n * alpha_hat:
            d_next = denoise(x, t_next).eps
            step = sigma_n / alpha_n - sigma_hat / alpha_hat
            x = x + alpha_n * step * (d_next - pred.eps) / 2
        if callback is not None:
            callback(i, t, x, pred)
    return x


@SAMPLERS.register("euler")
def sample_euler(
    denoise: DenoiseFn,
    x: Tensor,
    grid: SamplingGrid,
    *,
    generator: Generator | None = None,
    callback: StepCallback | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> Tensor:
    """Euler (first order); churn options as in `Churn`."""
    churn = Churn(s_churn, s_tmin, s_tmax, s_noise)
    return sample_karras(
        denoise, x, grid, max_ratio=0.0, churn=churn, generator=generator, callback=callback
    )


@SAMPLERS.register("heun")
def sample_heun(
    denoise: DenoiseFn,
    x: Tensor,
    grid: SamplingGrid,
    *,
    generator: Generator | None = None,
    callback: StepCallback | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    max_ratio: float = MAX_RATIO,
) -> Tensor:
    """Heun (second order, two denoiser calls per step where s_hat / s_next <= max_ratio, one
    on the others, see the module docstring); churn options as in `Churn`."""
    if not max_ratio >= 1:
        raise ConfigError(f"heun needs max_ratio >= 1 (1 is Euler throughout), got {max_ratio}")
    churn = Churn(s_churn, s_tmin, s_tmax, s_noise)
    return sample_karras(
        denoise, x, grid, max_ratio=max_ratio, churn=churn, generator=generator, callback=callback
    )
