"""train.precision=fp64: the step computes in float64 end to end (weights, optimizer state,
EMA, data, noise, loss), and an fp64 run samples, resumes and loads like any other."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_train_step import TinyNet, batch, make_state

from difflab.config.recipes import load_config
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint
from difflab.runs.load import load_run
from difflab.sampling.generation import generate
from difflab.training.loop import train
from difflab.training.step import train_step

pytestmark = pytest.mark.numerics  # run again under other CPU kernels by .ci/run

TINY = str(Path(__file__).with_name("tiny.yaml"))


def reference_loss(net, state, b, seed):
    """The eps-prediction loss of b written out in float64 (Ho et al. 2020, eq. 14), with the
    draws train_step makes: t, then eps, from a generator seeded `seed`."""
    g = torch.Generator().manual_seed(seed)
    schedule = state.loss_fn.schedule
    t = schedule.sample_training_t(len(b.x0), generator=g, device="cpu")
    eps = torch.randn(b.x0.shape, generator=g, dtype=torch.float64)
    x0 = b.x0.double()
    alpha, sigma = (f(t).double().view(-1, 1, 1, 1) for f in (schedule.alpha, schedule.sigma))
    out = net(alpha * x0 + sigma * eps, schedule.network_time(t).double(), b.cond)
    return (out - eps).square().mean()


def test_the_step_computes_in_float64():
    torch.manual_seed(0)
    net = TinyNet()
    state = make_state(net, precision="fp64")
    state.precision.prepare(net)
    b = batch(4)
    with torch.no_grad():
        expected = reference_loss(net, state, b, seed=3)
    loss, skipped = train_step(state, [b], torch.Generator().manual_seed(3), 0)
    assert loss.dtype == torch.float64 and skipped.item() == 0.0
    # float32 anywhere on the way (alpha, x_t, the error) is off by 1e-10 or more
    assert abs(float(loss) - float(expected)) < 1e-12 * float(expected)
    moments = [v for s in state.optimizer.state.values() for v in s.values() if v.ndim > 0]
    tensors = [*net.parameters(), *moments]
    assert tensors and all(p.dtype == torch.float64 for p in tensors)


def test_an_fp64_run_samples_resumes_and_loads(tmp_path):
    common = [f"run.root={tmp_path}", "train.precision=fp64", "train.val_every=0"]
    run_dir = train(load_config(TINY, [*common, "train.steps=2"]), tensorboard=False)
    assert (run_dir / "samples" / "step-000002-ema.png").exists()
    resumed = load_config(TINY, [*common, "train.steps=4"])
    resumed.train.resume = str(run_dir)
    train(resumed, tensorboard=False)
    ckpt = load_checkpoint(latest_checkpoint(run_dir))
    assert ckpt.step == 4
    assert all(v.dtype == torch.float64 for v in [*ckpt.model.values(), *ckpt.ema.values()])
    run = load_run(run_dir)  # a float32 network: the weights are cast as they load
    images, _ = generate(run, num=2, sample=replace(run.config.sample, steps=2), seed=1)
    assert images.shape == (2, 1, 8, 8)
