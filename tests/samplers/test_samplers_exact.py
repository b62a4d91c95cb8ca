"""Every sampler, driven by the exact denoiser of a Gaussian mixture, reproduces the mixture."""

import pytest
import torch

from difflab.samplers import SAMPLERS, SamplingGrid
from difflab.schedules import GRIDS, make_schedule

from .gaussian_mixture import standard_scores, two_dim_mixture

N = 4_000
# Steps at which each sampler's discretisation bias is well inside the tolerance below. Measured
# max |z| over the 15 statistics at these counts: ddpm 1.4, ddim/euler 2.5, heun 2.3, dpmpp-2m
# 2.4, dpmpp-2s 2.2 (at ~0.7x these counts: 2.0 to 3.8). First order needs ~4x the steps.
STEPS = {"ddpm": 200, "ddim": 120, "euler": 120, "heun": 32, "dpmpp-2m": 32, "dpmpp-2s": 20}


# Stochastic variants: their injected noise must have the right variance too.
CHURN = {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0}
# Churn adds discretisation error: measured max |z| of Euler 5.4 at 120 steps, 3.1 at 300;
# of Heun 4.3 at 32, 2.2 at 64; of DDIM eta = 0.5 3.4 at 120, 2.2 at 200. Churn noise 0.7x too
# small gives ~20.
CASES = [(name, {}, STEPS[name]) for name in sorted(STEPS)] + [
    ("ddim", {"eta": 0.5}, 200),
    ("euler", CHURN, 300),
    ("heun", CHURN, 64),
]


def test_every_sampler_has_a_step_count():
    assert set(STEPS) == set(SAMPLERS.names())


@pytest.mark.parametrize(
    "name,options,steps", CASES, ids=[f"{n}-{'-'.join(o) or 'default'}" for n, o, _ in CASES]
)
def test_sampler_reproduces_gaussian_mixture(name, options, steps):
    """Weights, means and stds of the 3 components of a 2-D mixture from N = 4000 samples, from
    x_T drawn from the exact marginal at t_0. Each of the 15 statistics must lie within 4.5
    standard errors (for an unbiased sampler P(any |z| > 4.5) ~ 15 * 7e-6 = 1e-4; the seed is
    fixed); a sampler with a wrong coefficient misses by tens of SEs (measured: 20 to 40 SE at
    12 steps for the second order ones)."""
    mixture, schedule = two_dim_mixture(), make_schedule("cosine", num_steps=None)
    times = GRIDS.get("karras")(schedule, steps, sigma_min=0.002, sigma_max=80.0)
    grid = SamplingGrid.build(schedule, times)
    g = torch.Generator().manual_seed(0)
    x0, _ = mixture.sample(N, g)
    alpha, sigma = grid.alpha_sigma(0)
    x = alpha * x0 + sigma * torch.randn(x0.shape, generator=g)
    out = SAMPLERS.get(name)(mixture.denoiser(schedule), x, grid, generator=g, **options)
    z = standard_scores(mixture, out)
    assert z.abs().max() < 4.5, z.abs().max()


@pytest.mark.parametrize("name", sorted(STEPS))
def test_sampler_from_zero_terminal_snr(name):
    """Zero terminal SNR (Lin et al. 2024): the first step starts at alpha = 0 from pure noise
    x_T ~ N(0, I), which is then the exact marginal; discrete schedule, so the last step lands
    on sigma = 0. Same tolerance (measured max |z| 2.6 to 3.3 on this log-SNR grid)."""
    mixture, schedule = two_dim_mixture(), make_schedule("scaled-linear", zero_terminal_snr=True)
    grid = SamplingGrid.build(schedule, GRIDS.get("logsnr")(schedule, STEPS[name]))
    assert grid.alpha[0] == 0 and grid.sigma[-1] == 0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 2, generator=g)
    out = SAMPLERS.get(name)(mixture.denoiser(schedule), x, grid, generator=g)
    z = standard_scores(mixture, out)
    assert z.abs().max() < 4.5, z.abs().max()


@pytest.mark.parametrize("name", sorted(STEPS))
def test_sampler_on_the_uniform_grid_of_a_continuous_schedule(name):
    """The uniform grid of continuous time ends where the schedule clamps log-SNR (20), not at
    sigma = 0, so the last step is finite but huge (log-SNR 8.5 -> 20 at 32 steps). Same
    steps and tolerance as above; DPM-Solver++(2M) extrapolating its last step from the
    previous x0 (before "lower order final") missed by 27 SE at 25 steps, 10 at 50."""
    mixture, schedule = two_dim_mixture(), make_schedule("cosine", num_steps=None)
    grid = SamplingGrid.build(schedule, GRIDS.get("uniform")(schedule, STEPS[name]))
    g = torch.Generator().manual_seed(0)
    x0, _ = mixture.sample(N, g)
    alpha, sigma = grid.alpha_sigma(0)
    x = alpha * x0 + sigma * torch.randn(x0.shape, generator=g)
    out = SAMPLERS.get(name)(mixture.denoiser(schedule), x, grid, generator=g)
    z = standard_scores(mixture, out)
    assert z.abs().max() < 4.5, z.abs().max()
