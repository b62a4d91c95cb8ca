"""Sampling grids: which times a sampler visits, from most noisy to clean.

A grid is a float64 tensor [t_0 > t_1 > ... > t_N] with t_N = schedule.t_clean, so a sampler
with S steps takes the S pairs (t_i, t_{i+1}). Grids are separate from the training
noise-level distribution (NoiseSchedule.sample_training_t).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.core.registry import Registry
from difflab.schedules.noise import LOGSNR_MIN, NoiseSchedule

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
        first = 0 if steps > 1 else T - 1  # one step starts from the noisiest timestep, not 0
        ts = torch.linspace(first, T - 1, steps, dtype=torch.float64).round()
    elif spacing == "leading":
        ts = torch.arange(steps, dtype=torch.float64) * (T // steps)
    elif spacing == "trailing":
        # T - i T / steps for i < steps: one time per step (arange(T, 0, -T / steps) makes
        # steps + 1 times for some counts, its float stop landing just above 0)
        i = torch.arange(steps, dtype=torch.float64)
        ts = ((T - i * (T / steps)).round() - 1).flip(0)
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


def _logsnr_range(schedule: NoiseSchedule) -> tuple[float, float]:
    """(least, greatest) finite log-SNR a network sees: at t_max and t_min. A zero-terminal
    schedule's -inf end is replaced by its next level: timestep T - 2, or LOGSNR_MIN."""
    lo = float(schedule.logsnr(torch.tensor(schedule.t_max, dtype=torch.float64)))
    hi = float(schedule.logsnr(torch.tensor(schedule.t_min, dtype=torch.float64)))
    if not math.isfinite(lo):
        lo = LOGSNR_MIN
        if schedule.discrete:
            lo = float(schedule.logsnr(torch.tensor(schedule.t_max - 1, dtype=torch.float64)))
    return lo, hi


def _level_count(schedule: NoiseSchedule, steps: int, reaches_t_min: bool) -> int:
    """How many noise levels come before t_clean is appended: a continuous schedule's t_min is
    its t_clean, so a grid that reaches t_min has its last level there."""
    _check_steps(steps)
    return steps + 1 if reaches_t_min and not schedule.discrete else steps


def _grid_from_logsnr(
    schedule: NoiseSchedule, logsnr: Tensor, steps: int, from_t_max: bool
) -> Tensor:
    """Times at the given decreasing log-SNR levels, ending exactly at t_clean after `steps`
    steps, and starting exactly at t_max (alpha = 0 for zero terminal SNR) if `from_t_max`.
    Discrete schedules get fractional timesteps (alpha_bar interpolates linearly)."""
    times = schedule.t_from_logsnr(logsnr)
    if from_t_max:
        times[0] = schedule.t_max
    if len(times) == steps + 1:
        times[-1] = schedule.t_clean
        return times
    return _with_clean_end(schedule, times)


@GRIDS.register("logsnr")
def logsnr_grid(schedule: NoiseSchedule, steps: int) -> Tensor:
    """Uniform in log-SNR between the schedule's ends (equal steps h in lambda = logsnr / 2,
    the variable of DPM-Solver, Lu et al. 2022)."""
    lo, hi = _logsnr_range(schedule)
    logsnr = torch.linspace(lo, hi, _level_count(schedule, steps, True), dtype=torch.float64)
    return _grid_from_logsnr(schedule, logsnr, steps, True)


@GRIDS.register("karras")
def karras_grid(
    schedule: NoiseSchedule,
    steps: int,
    *,
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
) -> Tensor:
    """s_i = (s_max^(1/rho) + i / (N - 1) (s_min^(1/rho) - s_max^(1/rho)))^rho in the scaled
    noise level s = sigma / alpha (Karras et al. 2022, eq. 5). s_min and s_max default to the
    schedule's ends (EDM uses 0.002 and 80); the grid still starts at t_max and ends at
    t_clean."""
    if rho <= 0:
        raise ConfigError(f"rho must be positive, got {rho}")
    lo, hi = _logsnr_range(schedule)
    s_max, s_min = math.exp(-lo / 2), math.exp(-hi / 2)  # s = sigma / alpha = exp(-logsnr / 2)
    from_t_max = sigma_max is None or sigma_max >= s_max
    s_max = s_max if from_t_max else sigma_max
    s_min = s_min if sigma_min is None else max(sigma_min, s_min)
    if not s_min < s_max:
        raise ConfigError(f"karras grid needs sigma_min < sigma_max, got {s_min} and {s_max}")
    levels = _level_count(schedule, steps, sigma_min is None or s_min == math.exp(-hi / 2))
    ramp = torch.linspace(0, 1, levels, dtype=torch.float64)
    s = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return _grid_from_logsnr(schedule, -2 * s.log(), steps, from_t_max)
