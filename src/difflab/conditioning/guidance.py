"""Guidance wraps the denoiser, never the network."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from difflab.core.condition import Condition
from difflab.parameterization.prediction import DenoiseFn, Prediction

ConditionalDenoiser = Callable[[Tensor, Tensor, Condition | None], Prediction]


def conditioned(denoiser: ConditionalDenoiser, cond: Condition | None) -> DenoiseFn:
    """The denoiser with its condition bound, as samplers call it."""

    def denoise(x_t: Tensor, t: Tensor) -> Prediction:
        return denoiser(x_t, t, cond)

    return denoise


def mix(uncond: Prediction, cond: Prediction, scale: float) -> Prediction:
    """D_w = D_u + w (D_c - D_u) on every output (Ho & Salimans 2022, eq. 6); linear in the
    output, so x0 and eps stay consistent."""
    return Prediction(
        x0=uncond.x0 + scale * (cond.x0 - uncond.x0),
        eps=uncond.eps + scale * (cond.eps - uncond.eps),
    )


def classifier_free_guidance(
    denoiser: ConditionalDenoiser, cond: Condition, null_cond: Condition, scale: float
) -> DenoiseFn:
    """Classifier-free guidance: scale 1 is the conditional denoiser, 0 the unconditional one.
    Other scales run both halves as one batch."""
    if scale == 1.0:
        return conditioned(denoiser, cond)
    if scale == 0.0:
        return conditioned(denoiser, null_cond)
    both = cond.cat(null_cond)

    def denoise(x_t: Tensor, t: Tensor) -> Prediction:
        t2 = torch.cat([t, t]) if t.ndim == 1 else t
        pred = denoiser(torch.cat([x_t, x_t]), t2, both)
        c_x0, u_x0 = pred.x0.chunk(2)
        c_eps, u_eps = pred.eps.chunk(2)
        return mix(Prediction(u_x0, u_eps), Prediction(c_x0, c_eps), scale)

    return denoise
