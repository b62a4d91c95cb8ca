"""Sampling grids: every grid decreases from t_max to t_clean with the right spacing."""

import math

import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.samplers import SamplingGrid
from difflab.schedules import GRIDS, make_schedule

SCHEDULES = [(n, z) for n in (1000, None) for z in (False, True)]


@pytest.mark.parametrize("num_steps,zero_terminal", SCHEDULES)
@pytest.mark.parametrize("name", GRIDS.names())
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_grid_runs_from_t_max_to_t_clean(name, num_steps, zero_terminal, steps):
    schedule = make_schedule("cosine", num_steps=num_steps, zero_terminal_snr=zero_terminal)
    times = GRIDS.get(name)(schedule, steps)
    assert times.dtype == torch.float64 and len(times) == steps + 1
    assert times[0] == schedule.t_max and times[-1] == schedule.t_clean
    assert (times[1:] < times[:-1]).all()
    SamplingGrid.build(schedule, times)


@pytest.mark.parametrize("num_steps", [1000, None])
def test_logsnr_grid_is_uniform_in_logsnr(num_steps):
    schedule = make_schedule("linear", num_steps=num_steps)
    logsnr = schedule.logsnr(GRIDS.get("logsnr")(schedule, 8))
    inner = logsnr[:-1] if num_steps else logsnr  # the discrete clean end has logsnr = inf
    gaps = inner[1:] - inner[:-1]
    torch.testing.assert_close(gaps, gaps.mean().expand_as(gaps), atol=1e-6, rtol=1e-6)


def test_karras_grid_follows_eq_5():
    """sigma / alpha at the grid equals (s_max^(1/7) + i/(N-1) (s_min^(1/7) - s_max^(1/7)))^7."""
    schedule = make_schedule("cosine", num_steps=None)
    times = GRIDS.get("karras")(schedule, 10, sigma_min=0.002, sigma_max=80.0)
    s = (schedule.sigma(times) / schedule.alpha(times))[:-1]
    ramp = torch.linspace(0, 1, 10, dtype=torch.float64)
    want = (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(s, want, rtol=1e-6, atol=0)
    assert times[-1] == schedule.t_clean


def test_zero_terminal_grids_start_at_alpha_zero():
    schedule = make_schedule("scaled-linear", zero_terminal_snr=True)
    for name in GRIDS.names():
        grid = SamplingGrid.build(schedule, GRIDS.get(name)(schedule, 4))
        assert grid.alpha[0] == 0 and grid.sigma[-1] == 0
        assert math.isinf(grid.logsnr[0]) and math.isinf(grid.logsnr[-1])


def test_grid_at_logsnr_is_consistent():
    for num_steps in (1000, None):
        schedule = make_schedule("cosine", num_steps=num_steps)
        grid = SamplingGrid.build(schedule, GRIDS.get("uniform")(schedule, 4))
        t, alpha, sigma = grid.at_logsnr(1.5)
        assert abs(2 * math.log(alpha / sigma) - 1.5) < 1e-6
        assert abs(alpha - float(schedule.alpha(t))) < 1e-12


def test_bad_grid_input_is_rejected():
    schedule = make_schedule("linear")
    with pytest.raises(ConfigError, match="rho"):
        GRIDS.get("karras")(schedule, 4, rho=0)
    with pytest.raises(ConfigError, match="decrease"):
        SamplingGrid.build(schedule, torch.tensor([10.0, 20.0, -1.0]))
    with pytest.raises(ConfigError, match="steps"):
        GRIDS.get("logsnr")(schedule, 0)
