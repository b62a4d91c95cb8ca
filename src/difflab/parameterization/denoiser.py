"""The Denoiser: a network F(x_t, t, cond) plus a schedule and a parameterization."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from difflab.core.condition import Condition
from difflab.parameterization.prediction import (
    Parameterization,
    Prediction,
    check_parameterization,
    prediction_from_output,
)
from difflab.schedules.noise import NoiseSchedule


def broadcast_time(t: Tensor, x: Tensor) -> Tensor:
    """A time given as a scalar or [N] tensor, as an [N] tensor on x's device."""
    # Host to device without waiting for the device's queue (device to host always blocks).
    t = t.to(x.device, non_blocking=x.device.type != "cpu")
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def working_dtype(x: Tensor) -> torch.dtype:
    """The dtype conversions run in: float64 for float64 x (train.precision fp64), else float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def alpha_sigma(schedule: NoiseSchedule, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """alpha(t), sigma(t) in working_dtype(x), of shape [N, 1, ..., 1] that broadcast against x."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    t = broadcast_time(t, x)
    dtype = working_dtype(x)
    return schedule.alpha(t).to(dtype).view(shape), schedule.sigma(t).to(dtype).view(shape)


class Denoiser(nn.Module):
    """D(x_t, t, cond) -> Prediction(x0, eps), whatever the network predicts.

    The network sees schedule.network_time(t) and never the schedule itself. Conversions run
    in float32 whatever precision the network ran in (float64 for a float64 x_t).
    """

    def __init__(
        self, network: nn.Module, schedule: NoiseSchedule, parameterization: Parameterization
    ) -> None:
        super().__init__()
        check_parameterization(parameterization)
        self.network = network
        self.schedule = schedule
        self.parameterization = parameterization

    def forward(self, x_t: Tensor, t: Tensor, cond: Condition | None = None) -> Prediction:
        t = broadcast_time(t, x_t)
        dtype = working_dtype(x_t)
        output = self.network(x_t, self.schedule.network_time(t), cond).to(dtype)
        alpha, sigma = alpha_sigma(self.schedule, t, x_t)
        return prediction_from_output(
            self.parameterization, output, x_t=x_t.to(dtype), alpha=alpha, sigma=sigma
        )
