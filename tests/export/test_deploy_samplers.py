"""difflab.deploy's numpy samplers with classifier-free guidance give the torch samplers'
result on the same denoiser, for each parameterization, sampler and guidance scale."""

import numpy as np
import pytest
import torch

from difflab.conditioning import Condition, classifier_free_guidance
from difflab.config.schema import SampleConfig
from difflab.deploy import draw
from difflab.export import deploy_grid
from difflab.parameterization import Denoiser
from difflab.samplers import SAMPLERS, SamplingGrid, StackedGenerator
from difflab.samplers.options import grid_times
from difflab.schedules import make_schedule


class Net(torch.nn.Module):
    """F(x, t, labels, hint) = tanh(0.7 x + 0.002 t + 0.1 (labels + 1) + 0.3 hint): nonlinear
    in each input (the hint term only where there is a hint)."""

    def forward(self, x, t, cond):
        y = cond.labels.view(-1, 1, 1, 1).float() + 1
        h = 0.0 if cond.hint is None else 0.3 * cond.hint
        return torch.tanh(0.7 * x + 0.002 * t.view(-1, 1, 1, 1) + 0.1 * y + h)


def numpy_net(feeds):
    x, t, y = feeds["x"], feeds["t"], feeds["labels"].astype(np.float32) + 1
    h = 0.0 if "hint" not in feeds else 0.3 * feeds["hint"]
    return np.tanh(0.7 * x + 0.002 * t[:, None, None, None] + 0.1 * y[:, None, None, None] + h)


@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
@pytest.mark.parametrize(
    ("sampler", "options"),
    [("ddim", {"eta": 0.0}), ("ddim", {"eta": 0.5}), ("dpmpp-2m", {}), ("euler", {})],
)
@pytest.mark.parametrize(("num_steps", "guidance"), [(1000, 2.5), (None, 0.0), (1000, 1.0)])
def test_deploy_sampler_equals_torch(parameterization, sampler, options, num_steps, guidance):
    schedule = make_schedule("cosine", num_steps=num_steps)
    sample = SampleConfig(sampler=sampler, steps=6)
    seeds, labels = [3, 4, 5], torch.tensor([0, 2, -1])
    gen = StackedGenerator(seeds)
    x_T = gen.randn((3, 1, 4, 4), device="cpu")
    denoiser = Denoiser(Net(), schedule, parameterization)
    cond = Condition(labels=labels)
    denoise = classifier_free_guidance(denoiser, cond, cond.null(), guidance)
    grid = SamplingGrid.build(schedule, grid_times(schedule, sample))
    want = SAMPLERS.get(sampler)(denoise, x_T, grid, generator=gen, **options).numpy()

    gen = StackedGenerator(seeds)
    x_T = gen.randn((3, 1, 4, 4), device="cpu").numpy()
    got = draw(numpy_net, deploy_grid(schedule, sample), x_T, parameterization=parameterization,
               sampler=sampler, labels=labels.numpy(), guidance=guidance, options=options,
               noise=lambda shape: gen.randn(shape, device="cpu").numpy())  # fmt: skip
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_deploy_guidance_nulls_the_hint_with_the_label(guidance):
    """A ControlNet run's guidance mixes with the null label and the zero hint (cond.null())."""
    schedule = make_schedule("cosine", num_steps=1000)
    sample = SampleConfig(steps=4)
    labels = torch.tensor([0, 2])
    hint = torch.linspace(-1, 1, 2 * 16).view(2, 1, 4, 4)
    x_T = StackedGenerator([0, 1]).randn((2, 1, 4, 4), device="cpu")
    cond = Condition(labels=labels, hint=hint)
    denoise = classifier_free_guidance(Denoiser(Net(), schedule, "v"), cond, cond.null(), guidance)
    grid = SamplingGrid.build(schedule, grid_times(schedule, sample))
    want = SAMPLERS.get("ddim")(denoise, x_T, grid).numpy()
    got = draw(numpy_net, deploy_grid(schedule, sample), x_T.numpy(), parameterization="v",
               labels=labels.numpy(), hints=hint.numpy(), guidance=guidance)  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
