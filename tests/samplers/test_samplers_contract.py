"""One contract, run over every registered sampler."""

import pytest
import torch

from difflab.parameterization import PARAMETERIZATIONS, Denoiser
from difflab.samplers import SAMPLERS, SamplingGrid, StackedGenerator
from difflab.samplers.ddim import sample_ddim
from difflab.samplers.ddpm import sample_ddpm
from difflab.schedules import GRIDS, make_schedule

from .gaussian_mixture import MixtureNetwork, two_dim_mixture

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run

MIXTURE = two_dim_mixture()
# Options that make each sampler stochastic where it can be, so determinism and batch
# independence are tested on the noise path too.
NOISY = {"ddim": {"eta": 1.0}, "euler": {"s_churn": 5.0}, "heun": {"s_churn": 5.0}}
SCHEDULES = [(steps, zero) for steps in (1000, None) for zero in (False, True)]


def run(name, x, *, schedule=None, grid="uniform", steps=6, generator=None, **options):
    schedule = schedule or make_schedule("cosine")
    grid = SamplingGrid.build(schedule, GRIDS.get(grid)(schedule, steps))
    return SAMPLERS.get(name)(MIXTURE.denoiser(schedule), x, grid, generator=generator, **options)


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_shape_dtype_and_determinism(name):
    x = torch.randn(5, 2)
    opts = NOISY.get(name, {})
    a = run(name, x, generator=torch.Generator().manual_seed(7), **opts)
    b = run(name, x, generator=torch.Generator().manual_seed(7), **opts)
    assert a.shape == x.shape and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_sample_depends_on_its_seed_not_its_batch(name):
    """Per-sample generators: seed b gives the same sample in batch [a, b, c] and alone."""
    opts = NOISY.get(name, {})
    seeds = [11, 22, 33]
    x = StackedGenerator(seeds).randn((3, 2), device="cpu")
    batch = run(name, x, generator=StackedGenerator(seeds), **opts)
    alone = run(name, x[1:2], generator=StackedGenerator(seeds[1:2]), **opts)
    # a batch of 3 and of 1 may take other vector kernels: float rounding apart, ~1e-7
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("grid", GRIDS.names())
@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_grid(name, grid):
    out = run(name, torch.randn(4, 2), grid=grid, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", PARAMETERIZATIONS)
@pytest.mark.parametrize("num_steps,zero_terminal", SCHEDULES)
@pytest.mark.parametrize("name", SAMPLERS.names())
def test_no_nan_at_either_end(name, num_steps, zero_terminal, kind):
    """Discrete schedules end at sigma = 0 (logsnr = +inf); zero terminal SNR starts at alpha = 0
    (logsnr = -inf). Every sampler and parameterization stays finite, except eps-prediction at
    alpha = 0, where x0 = (x_t - sigma eps) / alpha has no value (Lin et al. 2024 use v there)."""
    if zero_terminal and kind == "eps":
        pytest.skip("eps-prediction cannot give x0 at alpha = 0")
    schedule = make_schedule("cosine", num_steps=num_steps, zero_terminal_snr=zero_terminal)
    denoiser = Denoiser(MixtureNetwork(MIXTURE, schedule, kind), schedule, kind)
    for grid_name in GRIDS.names():
        grid = SamplingGrid.build(schedule, GRIDS.get(grid_name)(schedule, 5))
        opts = NOISY.get(name, {})
        x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(1)
        out = SAMPLERS.get(name)(lambda x_t, t: denoiser(x_t, t), x, grid, generator=g, **opts)
        assert torch.isfinite(out).all(), grid_name


def test_callback_sees_every_step():
    seen = []
    run("heun", torch.randn(3, 2), steps=4, callback=lambda i, t, x, pred: seen.append(i))
    assert seen == [0, 1, 2, 3]


def test_ddpm_equals_ddim_eta_one():
    schedule = make_schedule("linear")
    grid = SamplingGrid.build(schedule, GRIDS.get("uniform")(schedule, 20))
    x = torch.randn(64, 2)
    denoise = MIXTURE.denoiser(schedule)
    a = sample_ddpm(denoise, x, grid, generator=torch.Generator().manual_seed(3))
    b = sample_ddim(denoise, x, grid, generator=torch.Generator().manual_seed(3), eta=1.0)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_euler_is_ddim():
    """Euler in x / alpha and sigma / alpha is DDIM with eta = 0 (Karras et al. 2022, sec. 3)."""
    x = torch.randn(8, 2)
    torch.testing.assert_close(run("euler", x, grid="karras"), run("ddim", x, grid="karras"))


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_step_inside_a_clamped_logsnr_region(name):
    """Continuous schedules clamp log-SNR at 20: t = 1e-9 and t = 0 share it, so the last step
    has h = 0 in log-SNR. Every sampler must pass it without dividing by zero."""
    schedule = make_schedule("linear", num_steps=None)
    grid = SamplingGrid.build(schedule, torch.tensor([1.0, 0.5, 0.1, 1e-9, 0.0]))
    assert grid.logsnr[-1] == grid.logsnr[-2]
    g = torch.Generator().manual_seed(0)
    out = SAMPLERS.get(name)(MIXTURE.denoiser(schedule), torch.randn(4, 2), grid, generator=g)
    assert torch.isfinite(out).all()
