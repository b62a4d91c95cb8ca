"""Sampling grids: which times a sampler visits, from most noisy to clean.

A grid is a float64 tensor [t_0 > t_1 > ... > t_N] with t_N = schedule.t_clean, so a sampler
with S steps takes the S pairs (t_i, t_{i+1}). Grids are separate from the training
noise-level distribution (NoiseSchedule.sample_training_t).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from difflab.errors import ConfigError
from difflab.registry import Registry
from difflab.schedules.noise import NoiseSchedule

Spacing = Literal["leading", "trailing", "linspace"]

GRIDS: Registry = Registry("grid")


def _with_clean_end(schedule: NoiseSchedule, times: Tensor) -> Tensor:
    return torch.cat([times.double(), torch.tensor([schedule.t_clean], dtype=torch.float64)])


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")


def discrete_timesteps(num_train_steps: int, steps: int, spacing: Spacing) -> Tensor:
    """Timestep indices of a discrete sampler, decreasing (the spacings of Lin et al. 2024,
    Table 2: "linspace", "leading" (DDIM), "trailing")."""
    T = num_train_steps
    if steps > T:
        raise ConfigError(f"steps ({steps}) exceeds the schedule's {T} timesteps")
    if spacing == "linspace":
        ts = torch.linspace(0, T - 1, steps, dtype=torch.float64).round()
    elif spacing == "leading":
        ts = torch.arange(steps, dtype=torch.float64) * (T // steps)
    elif spacing == "trailing":
        ts = (torch.arange(T, 0, -T / steps, dtype=torch.float64).round() - 1).flip(0)
    else:
        raise ConfigError(f"unknown spacing {spacing!r}; expected leading, trailing or linspace")
    return ts.flip(0)


@GRIDS.register("uniform")
def uniform_grid(schedule: NoiseSchedule, steps: int, *, spacing: Spacing = "trailing") -> Tensor:
    """Evenly spaced times: discrete timesteps by `spacing`, or linspace(1, 0) in continuous
    time."""
    _check_steps(steps)
    if schedule.discrete:
        times = discrete_timesteps(schedule.num_steps, steps, spacing)
        return _with_clean_end(schedule, times)
    return torch.linspace(schedule.t_max, schedule.t_clean, steps + 1, dtype=torch.float64)
