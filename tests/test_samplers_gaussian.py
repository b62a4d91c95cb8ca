"""Samplers driven by the exact denoiser of Gaussian data N(mu, s^2)."""

import pytest
import torch

from difflab.parameterization import Prediction
from difflab.samplers import SAMPLERS, SamplingGrid
from difflab.samplers.ddim import sample_ddim
from difflab.samplers.ddpm import sample_ddpm
from difflab.schedules import make_schedule, uniform_grid

MU, S = 0.7, 0.4


def gaussian_denoiser(schedule):
    """E[x0 | x_t] = mu + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu): exact."""

    def denoise(x_t, t):
        a, sg = schedule.alpha(t).float(), schedule.sigma(t).float()
        x0 = MU + a * S**2 / (a**2 * S**2 + sg**2) * (x_t - a * MU)
        return Prediction(x0=x0, eps=(x_t - a * x0) / sg)

    return denoise


# N = 40000 samples: the standard error of the mean is s / 200 = 0.002 and of the std about
# s / 283 = 0.0014, so 0.01 is over 5 standard errors. DDIM and DDPM are first order: the std
# error falls from 0.03 at 50 steps to 0.004 at 1000 (measured), so 1000 steps are used.
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("steps", [None, 1000])
def test_sampler_reproduces_gaussian(sampler, steps):
    schedule = make_schedule("cosine", num_steps=steps)
    grid = SamplingGrid.build(schedule, uniform_grid(schedule, 1000))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40000, 1, generator=g)
    out = SAMPLERS.get(sampler)(gaussian_denoiser(schedule), x, grid, generator=g)
    assert abs(out.mean().item() - MU) < 0.01
    assert abs(out.std().item() - S) < 0.01


def test_ddpm_equals_ddim_eta_one():
    schedule = make_schedule("linear")
    grid = SamplingGrid.build(schedule, uniform_grid(schedule, 20))
    x = torch.randn(64, 3)
    a = sample_ddpm(
        gaussian_denoiser(schedule), x, grid, generator=torch.Generator().manual_seed(3)
    )
    b = sample_ddim(
        gaussian_denoiser(schedule), x, grid, generator=torch.Generator().manual_seed(3), eta=1.0
    )
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
