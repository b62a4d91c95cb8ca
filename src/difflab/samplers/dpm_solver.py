"""DPM-Solver++ (Lu et al. 2022b) in lambda = log(alpha / sigma) with the x0 prediction D:
x_next = (sigma_next / sigma) x - alpha_next (exp(-h) - 1) D, h = lambda_next - lambda
(first order, = DDIM); a step with h = inf (either end of the grid) is first order
(docs/samplers.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from difflab.parameterization.prediction import DenoiseFn
from difflab.samplers.base import SAMPLERS, Generator, SamplingGrid, StepCallback


def first_order_update(
    x: Tensor, x0: Tensor, sigma: float, alpha_next: float, sigma_next: float, h: float
) -> Tensor:
    """x_next = (sigma_next / sigma) x - alpha_next (exp(-h) - 1) x0 (Lu et al. 2022b, eq. 5;
    expm1 keeps it exact for small h and -expm1(-inf) = 1 handles h = inf)."""
    return (sigma_next / sigma) * x - alpha_next * math.expm1(-h) * x0


def half_logsnr(grid: SamplingGrid) -> list[float]:
    """lambda_i = logsnr_i / 2 for each grid time, +-inf at the ends where alpha or sigma is 0."""
    return [float(v) / 2 for v in grid.logsnr]


def finite_step(h: float) -> bool:
    """A step a second-order formula can use: 0 < h < inf. h is infinite at alpha = 0 or
    sigma = 0, and 0 where the schedule clamps log-SNR (no second point to use there)."""
    return 0.0 < h < math.inf


def midpoints(grid: SamplingGrid) -> tuple[Tensor, Tensor, Tensor]:
    """(t, alpha, sigma) at the log-SNR midpoint of each step, [S] each, found in one
    vectorised call; steps with an infinite end get a placeholder (logsnr 0), never used."""
    logsnr = (grid.logsnr[:-1] + grid.logsnr[1:]) / 2  # [S]
    return grid.at_logsnr(torch.where(logsnr.isfinite(), logsnr, torch.zeros_like(logsnr)))


@SAMPLERS.register("dpmpp-2m")
def sample_dpmpp_2m(
    denoise: DenoiseFn,
    x: Tensor,
    grid: SamplingGrid,
    *,
    generator: Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): with r = h_prev / h,
    D = (1 + 1 / (2r)) x0_hat_i - 1 / (2r) x0_hat_{i-1}. The first step, and any step with an
    infinite or zero h at either end, is first order. So is the last step ("lower order
    final"): into clean data its h is infinite on a discrete grid, and huge where a continuous
    schedule clamps log-SNR (h = 8.9 after h_prev = 2.2 at 5 uniform steps of the continuous
    cosine schedule), where 1 / (2r) would amplify the gap between the two x0 predictions
    several times over. Deterministic: `generator` is unused."""
    x = x.float()
    lam = half_logsnr(grid)
    x0_prev, h_prev = None, math.inf
    for i, t, _ in grid.pairs():
        pred = denoise(x, t)
        h = lam[i + 1] - lam[i]
        d = pred.x0
        last = i == grid.steps - 1
        if x0_prev is not None and not last and finite_step(h) and finite_step(h_prev):
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * pred.x0 - (1 / (2 * r)) * x0_prev
        _, sigma = grid.alpha_sigma(i)
        x = first_order_update(x, d, sigma, *grid.alpha_sigma(i + 1), h)
        x0_prev, h_prev = pred.x0, h
        if callback is not None:
            callback(i, t, x, pred)
    return x


@SAMPLERS.register("dpmpp-2s")
def sample_dpmpp_2s(
    denoise: DenoiseFn,
    x: Tensor,
    grid: SamplingGrid,
    *,
    generator: Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022b, Algorithm 1, r1 = 1/2): a first-order step to the
    time s with lambda_s = lambda + h / 2 gives u, then D = (1 - 1/(2r)) x0_hat(x, t)
    + 1/(2r) x0_hat(u, s), with r the ratio actually reached (1/2 unless the schedule clamps).
    Steps with an infinite or zero h are first order. Two denoiser calls per finite step."""
    x = x.float()
    lam = half_logsnr(grid)
    t_mid, alpha_mid, sigma_mid = midpoints(grid)
    for i, t, _ in grid.pairs():
        pred = denoise(x, t)
        h = lam[i + 1] - lam[i]
        _, sigma = grid.alpha_sigma(i)
        d = pred.x0
        if finite_step(h):
            alpha_s, sigma_s = float(alpha_mid[i]), float(sigma_mid[i])
            r = (math.log(alpha_s / sigma_s) - lam[i]) / h
            u = first_order_update(x, pred.x0, sigma, alpha_s, sigma_s, r * h)
            d = (1 - 1 / (2 * r)) * pred.x0 + (1 / (2 * r)) * denoise(u, t_mid[i]).x0
        x = first_order_update(x, d, sigma, *grid.alpha_sigma(i + 1), h)
        if callback is not None:
            callback(i, t, x, pred)
    return x
