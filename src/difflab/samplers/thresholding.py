"""Static clipping and dynamic thresholding of the predicted x0 (Saharia et al. 2022, "Imagen",
sec. 2.3), as a wrapper of a denoise function. Off unless a denoise function is wrapped."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.parameterization.conversions import eps_from_x0
from difflab.parameterization.denoiser import alpha_sigma
from difflab.parameterization.prediction import DenoiseFn, Prediction
from difflab.schedules.noise import NoiseSchedule

ThresholdKind = Literal["dynamic", "static"]


def dynamic_threshold(x0: Tensor, percentile: float) -> Tensor:
    """Per sample, s = max(1, the `percentile` quantile of |x0|); x0 <- clip(x0, -s, s) / s
    (Saharia et al. 2022, sec. 2.3)."""
    flat = x0.abs().flatten(1)  # [N, D]
    s = torch.quantile(flat, percentile, dim=1).clamp_min(1.0)  # [N]
    s = s.view((-1,) + (1,) * (x0.ndim - 1))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def thresholded(
    denoise: DenoiseFn,
    *,
    schedule: NoiseSchedule,
    percentile: float = 0.995,
    kind: ThresholdKind = "dynamic",
) -> DenoiseFn:
    """The denoise function with its x0 clipped to [-1, 1] ("static") or dynamically
    thresholded, and eps recomputed from it, eps = (x_t - alpha x0) / sigma, so the two stay
    consistent. Where sigma = 0 (never evaluated by the samplers) eps is left as predicted."""
    if kind not in ("dynamic", "static"):
        raise ConfigError(f"unknown threshold kind {kind!r}; expected 'dynamic' or 'static'")
    if not 0.0 < percentile <= 1.0:
        raise ConfigError(f"percentile must lie in (0, 1], got {percentile}")

    def denoise_thresholded(x_t: Tensor, t: Tensor) -> Prediction:
        pred = denoise(x_t, t)
        if kind == "static":
            x0 = pred.x0.clamp(-1.0, 1.0)
        else:
            x0 = dynamic_threshold(pred.x0, percentile)
        alpha, sigma = alpha_sigma(schedule, t, x_t)
        eps = eps_from_x0(x_t=x_t, x0=x0, alpha=alpha, sigma=sigma)
        return Prediction(x0=x0, eps=torch.where(sigma > 0, eps, pred.eps))

    return denoise_thresholded
