"""Heun's max_ratio rule: the second-order correction only on steps with s_hat / s_next <=
max_ratio, so Heun stays accurate on grids with huge steps in s = sigma / alpha (the first
step of the uniform grid on the cosine schedule goes from s = 2e4 to s = 6)."""

import functools

import pytest
import torch

from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.parameterization import Denoiser, Prediction
from difflab.samplers import SAMPLERS, SamplingGrid
from difflab.samplers.options import sampler_kwargs
from difflab.schedules import GRIDS, make_schedule

from .gaussian_mixture import MixtureNetwork, standard_scores, two_dim_mixture

MIXTURE = two_dim_mixture()
SCHEDULE = make_schedule("cosine")  # discrete, T = 1000: the default recipes' schedule


def uniform(steps):
    return SamplingGrid.build(SCHEDULE, GRIDS.get("uniform")(SCHEDULE, steps))


def from_marginal(n, seed):
    """x at the grid's first time, drawn from the exact marginal of the mixture."""
    g = torch.Generator().manual_seed(seed)
    x0, _ = MIXTURE.sample(n, g)
    alpha, sigma = uniform(1).alpha_sigma(0)
    return alpha * x0 + sigma * torch.randn(x0.shape, generator=g)


def test_heun_step_weights_the_two_denoised_estimates():
    """The algebra behind the rule: one Heun step with r = s / s_next is
    x~_next = x~ / r + (r - 1)(2 - r) / (2 r) D + (r - 1) / 2 D', D and D' the denoiser's x0 at
    the start and at the Euler point. Here r = 3.2, where the weight of D is negative."""
    schedule = make_schedule("cosine", num_steps=None)
    grid = SamplingGrid.build(schedule, torch.tensor([0.9, 0.7], dtype=torch.float64))
    (alpha, sigma), (alpha_n, sigma_n) = grid.alpha_sigma(0), grid.alpha_sigma(1)
    r = sigma / alpha / (sigma_n / alpha_n)
    x0s = [torch.tensor([[1.5]]), torch.tensor([[-0.7]])]

    def denoise(x_t, t):
        x0 = x0s.pop(0)
        return Prediction(x0=x0, eps=(x_t - schedule.alpha(t) * x0) / schedule.sigma(t))

    x = torch.tensor([[0.3]])
    expected = x / alpha / r + (r - 1) * (2 - r) / (2 * r) * 1.5 + (r - 1) / 2 * -0.7
    out = SAMPLERS.get("heun")(denoise, x, grid, max_ratio=4.0)
    assert 3 < r < 4 and not x0s
    torch.testing.assert_close(out / alpha_n, expected, rtol=1e-5, atol=1e-5)


def counted(denoise):
    calls = []

    def wrapped(x_t, t):
        calls.append(float(t))
        return denoise(x_t, t)

    return wrapped, calls


def test_heun_corrects_only_the_steps_within_max_ratio():
    """On the 10-step uniform grid, s runs 2.0e4, 6.4, 3.1, ..., 0.17, 0: the first step
    (r = 3.2e3) and the step into clean data (r = inf) take one call, the other 8 two.
    max_ratio = 1 is Euler exactly; without a limit the first step is corrected too."""
    x, grid = from_marginal(8, 0), uniform(10)
    denoise, calls = counted(MIXTURE.denoiser(SCHEDULE))
    SAMPLERS.get("heun")(denoise, x, grid)
    assert len(calls) == 18 and calls[:2] == [999.0, 899.0]
    calls.clear()
    SAMPLERS.get("heun")(denoise, x, grid, max_ratio=1e9)
    assert len(calls) == 19
    euler = SAMPLERS.get("euler")(MIXTURE.denoiser(SCHEDULE), x, grid)
    torch.testing.assert_close(SAMPLERS.get("heun")(denoise, x, grid, max_ratio=1.0), euler)


def test_max_ratio_is_a_heun_option():
    assert sampler_kwargs(SampleConfig(sampler="heun", sampler_options={"max_ratio": 5})) == {
        "max_ratio": 5.0
    }
    with pytest.raises(ConfigError, match="'euler' has no option 'max_ratio'"):
        sampler_kwargs(SampleConfig(sampler="euler", sampler_options={"max_ratio": 5}))
    with pytest.raises(ConfigError, match="max_ratio >= 1"):
        SAMPLERS.get("heun")(
            MIXTURE.denoiser(SCHEDULE), from_marginal(2, 0), uniform(2), max_ratio=0.5
        )


@functools.cache
def ode_solution(n, seed):
    """(x_T, the probability-flow ODE's clean end from it): DPM-Solver++(2M) with the exact
    denoiser over 200 log-SNR steps from the same t_max (its mean distance to 1000 steps:
    7e-4, 15x below the smallest error compared with it here)."""
    x = from_marginal(n, seed)
    grid = SamplingGrid.build(SCHEDULE, GRIDS.get("logsnr")(SCHEDULE, 200))
    return x, SAMPLERS.get("dpmpp-2m")(MIXTURE.denoiser(SCHEDULE), x, grid).double()


@pytest.mark.parametrize("steps", [5, 10])
@pytest.mark.parametrize("kind", ["eps", "v"])
def test_heun_follows_the_ode_on_the_uniform_grid(kind, steps):
    """Few steps of the default grid (uniform, trailing, cosine T = 1000), a network in the eps
    or v parameterization that outputs the mixture's exact target: Heun's mean distance to the
    ODE's solution is at most 0.75 of Euler's on the same grid (Euler is first order and stable,
    so the floor; measured over 3 seeds: 0.60-0.64 at 5 steps, 0.30-0.33 at 10). Heun with
    the correction on every step (before max_ratio) misses by 385 (5 steps) and 54 (10 steps),
    1300 and 350 times Euler's error."""
    x, exact = ode_solution(1000, 0)
    denoise = Denoiser(MixtureNetwork(MIXTURE, SCHEDULE, kind), SCHEDULE, kind)
    errors = {
        name: (SAMPLERS.get(name)(denoise, x, uniform(steps)).double() - exact).norm(dim=1).mean()
        for name in ("heun", "euler")
    }
    assert errors["heun"] <= 0.75 * errors["euler"], errors


def test_heun_reproduces_the_mixture_on_the_uniform_grid():
    """25 steps of the uniform grid reproduce the mixture's 15 statistics within 4.5 standard
    errors, the tolerance of test_samplers_exact.py (measured max |z| 2.3; Heun correcting
    every step: 350; Euler at 25 steps: 4.8)."""
    out = SAMPLERS.get("heun")(MIXTURE.denoiser(SCHEDULE), from_marginal(4000, 0), uniform(25))
    z = standard_scores(MIXTURE, out)
    assert z.abs().max() < 4.5, z.abs().max()
