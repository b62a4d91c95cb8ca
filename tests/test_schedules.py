import math

import pytest
import torch

from difflab.core.errors import ConfigError
from difflab.schedules import SCHEDULE_NAMES, discrete_timesteps, make_schedule, uniform_grid

ALL = [(n, T, z) for n in SCHEDULE_NAMES for T in (1000, None) for z in (False, True)]


def _times(s, n=101):
    return torch.linspace(s.t_min, s.t_max, n, dtype=torch.float64)


@pytest.mark.parametrize("name,steps,zero", ALL)
def test_variance_preserving(name, steps, zero):
    s = make_schedule(name, num_steps=steps, zero_terminal_snr=zero)
    t = _times(s)
    torch.testing.assert_close(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t))


@pytest.mark.parametrize("name,steps,zero", ALL)
def test_logsnr_decreases(name, steps, zero):
    s = make_schedule(name, num_steps=steps, zero_terminal_snr=zero)
    lam = s.logsnr(_times(s))
    assert (lam[1:] <= lam[:-1]).all()
    assert lam[0] > lam[-1] + 5


@pytest.mark.parametrize("name,steps", [(n, T) for n in SCHEDULE_NAMES for T in (1000, None)])
def test_zero_terminal_snr_ends_at_zero(name, steps):
    base = make_schedule(name, num_steps=steps)
    s = make_schedule(name, num_steps=steps, zero_terminal_snr=True)
    t_max = torch.tensor(s.t_max, dtype=torch.float64)
    assert s.alpha(t_max) == 0 and s.logsnr(t_max) == -float("inf")
    # The first step keeps its value (Lin et al. 2024, Algorithm 1).
    t0 = torch.tensor(s.t_min, dtype=torch.float64)
    torch.testing.assert_close(s.alpha(t0), base.alpha(t0))


@pytest.mark.parametrize("name,steps,zero", ALL)
def test_t_from_logsnr_inverts(name, steps, zero):
    s = make_schedule(name, num_steps=steps, zero_terminal_snr=zero)
    t = _times(s, 37)[1:-1]  # ends may sit in a clamped, flat region
    lam = s.logsnr(t)
    inside = lam.abs() < 19.9
    torch.testing.assert_close(s.t_from_logsnr(lam)[inside], t[inside], atol=1e-6, rtol=1e-6)


def test_stable_diffusion_table():
    # diffusers' scaled_linear with beta_start=0.00085, beta_end=0.012, 1000 steps.
    s = make_schedule("scaled-linear")
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    torch.testing.assert_close(s.alphas_cumprod, torch.cumprod(1 - betas, 0))


def test_discrete_clean_end_and_interpolation():
    s = make_schedule("linear")
    assert s.alpha(torch.tensor(-1.0)) == 1 and s.sigma(torch.tensor(-1.0)) == 0
    mid = s.alpha_bar(torch.tensor(10.5))
    torch.testing.assert_close(mid, (s.alphas_cumprod[10] + s.alphas_cumprod[11]) / 2)


def test_add_noise_is_gaussian():
    s = make_schedule("cosine")
    x0 = torch.full((20000, 4), 0.5)
    t = torch.full((20000,), 500.0, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    x_t = s.add_noise(x0, eps, t)
    a, sg = float(s.alpha(t[:1])), float(s.sigma(t[:1]))
    # 80,000 draws: the mean's standard error is sigma / 283 < 0.0025, the std's < 0.002
    assert abs(x_t.mean().item() - 0.5 * a) < 0.01
    assert abs(x_t.std().item() - sg) < 0.01


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_grid_spacings(spacing):
    ts = discrete_timesteps(1000, 10, spacing)
    assert len(ts) == 10 and (ts[1:] < ts[:-1]).all()
    assert ts.max() <= 999 and ts.min() >= 0
    expected_first = {"leading": 900, "trailing": 999, "linspace": 999}[spacing]
    assert ts[0] == expected_first
    grid = uniform_grid(make_schedule("linear"), 10, spacing=spacing)
    assert grid[-1] == -1 and len(grid) == 11


def test_bad_schedule_names_the_value():
    with pytest.raises(ConfigError, match="'quadratic'"):
        make_schedule("quadratic")
    with pytest.raises(ConfigError, match="steps"):
        uniform_grid(make_schedule("linear"), 0)


@pytest.mark.parametrize("T", [2, 3, 7, 100, 1000])
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_every_step_count_gives_that_many_decreasing_timesteps(T, spacing):
    """Each count 1..T: `steps` distinct integer timesteps in [0, T - 1], decreasing, so the
    grid ends at the clean -1 after exactly `steps` steps (T = 1000 as the recipes ship)."""
    for steps in range(1, T + 1):
        ts = discrete_timesteps(T, steps, spacing)
        assert len(ts) == steps, (T, steps)
        assert (ts[1:] < ts[:-1]).all() and ts[-1] >= 0 and ts[0] <= T - 1, (T, steps)
        assert (ts == ts.round()).all(), (T, steps)
        if spacing != "leading":
            assert ts[0] == T - 1, (T, steps)


def test_uniform_grid_steps_61_of_1000():
    """The count that made 62 times ending in -1 before the clean end was appended."""
    from difflab.samplers import SamplingGrid

    schedule = make_schedule("cosine")
    grid = uniform_grid(schedule, 61)
    assert len(grid) == 62 and grid[-2] >= 0
    assert len(SamplingGrid.build(schedule, grid).t) == 62  # "grid times must decrease" before


def _sigmoid_alpha_bar_reference(u: float, start=-3.0, end=3.0, tau=1.0) -> float:
    """Jabri et al. 2022, Algorithm 1, in Python floats (float64)."""
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    v_start, v_end = sig(start / tau), sig(end / tau)
    return (v_end - sig((u * (end - start) + start) / tau)) / (v_end - v_start)


def test_sigmoid_schedule_is_float64():
    """alpha_bar(t) and the discrete table against the float64 formula (the constants were
    float32: 2.6e-5 relative off, alpha_bar(1) = 7.8e-9)."""
    from difflab.schedules.noise import discrete_alphas_cumprod, sigmoid_alpha_bar

    u = [i / 1000 for i in range(1001)]
    ref = torch.tensor([_sigmoid_alpha_bar_reference(x) for x in u], dtype=torch.float64)
    ours = sigmoid_alpha_bar(torch.tensor(u, dtype=torch.float64))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-15)
    assert ours[-1] == 0.0
    betas = (1 - ref[1:] / ref[:-1]).clamp(max=0.999)
    table = discrete_alphas_cumprod("sigmoid", 1000)
    torch.testing.assert_close(table, torch.cumprod(1 - betas, 0), rtol=1e-12, atol=1e-15)
