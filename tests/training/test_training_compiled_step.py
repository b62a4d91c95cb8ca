"""train_step through a torch.compile'd network gives the loss and the parameter update of the
eager step: aot_eager (functionalization and autograd of the compiled graph) always, inductor
(the generated kernels, as the trainer compiles on GPU) in the slow set. In float64: AdamW moves
a weight by ~lr whatever the size of its gradient, so a compiled kernel's float32 rounding of a
near-zero gradient would make differences of ~lr that depend on the CPU."""

import copy

import pytest
import torch

from difflab.config.schema import Config, ModelConfig, TrainConfig
from difflab.networks import build_network
from difflab.parameterization import Denoiser
from difflab.runs.rng import seeded_generator
from difflab.schedules import make_schedule
from difflab.training.session import build_train_state
from difflab.training.step import MicroBatch, TrainState, train_step

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run

CPU = torch.device("cpu")


def _state(network: torch.nn.Module, backend: str | None) -> TrainState:
    """The trainer's TrainState, its network compiled with `backend` (None: eager)."""
    train = TrainConfig(compile="off", precision="fp64")
    config = Config(model=ModelConfig(class_conditional=False), train=train)
    denoiser = Denoiser(network, make_schedule("cosine", num_steps=1000), "eps")
    state = build_train_state(config, denoiser, CPU)
    if backend is not None:
        state.forward = torch.compile(network, backend=backend)
    return state


def _run(state: TrainState, x0: torch.Tensor, steps: int) -> list[float]:
    losses = []
    for step in range(steps):
        generator = seeded_generator(0, "step", step, CPU)
        loss, skipped = train_step(state, [MicroBatch(x0=x0, cond=None)], generator, step)
        assert skipped.item() == 0.0
        losses.append(float(loss))
    return losses


def _compare(backend: str, rtol: float, atol: float) -> None:
    torch.manual_seed(0)
    network = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=None)
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    eager, compiled = _state(copy.deepcopy(network), None), _state(network, backend)
    start = [p.detach().clone() for p in network.parameters()]
    torch.testing.assert_close(_run(compiled, x0, 2), _run(eager, x0, 2), rtol=rtol, atol=atol)
    pairs = zip(compiled.model.parameters(), eager.model.parameters(), start, strict=True)
    moved = 0
    for p_compiled, p_eager, p0 in pairs:
        torch.testing.assert_close(p_compiled - p0, p_eager - p0, rtol=rtol, atol=atol)
        moved += int(not torch.equal(p_eager, p0))
    assert moved > 0  # the comparison saw real updates


def test_aot_eager_step_matches_eager():
    _compare("aot_eager", rtol=1e-9, atol=1e-10)


@pytest.mark.slow
def test_inductor_step_matches_eager():
    _compare("inductor", rtol=1e-9, atol=1e-10)
