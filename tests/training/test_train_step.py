import pytest
import torch
from torch import nn

from difflab.conditioning import Condition
from difflab.config.schema import TrainConfig
from difflab.losses import DenoisingLoss
from difflab.schedules import make_schedule
from difflab.training.ema import EMA
from difflab.training.optim import build_optimizer
from difflab.training.precision import resolve_precision
from difflab.training.step import MicroBatch, TrainState, micro_batch_loss, train_step


class TinyNet(nn.Module):
    """A small conditional conv net; records the autocast state of each call."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, channels)
        self.inp = nn.Conv2d(1, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, 1, 3, padding=1)
        self.seen: list[tuple[bool, torch.dtype]] = []

    def forward(self, x, t_net, cond):
        self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        h = self.inp(x) + (t_net / 1000).view(-1, 1, 1, 1)
        if cond is not None:
            h = h + self.embed(cond.labels + 1)[:, :, None, None]
        return self.out(torch.nn.functional.silu(h))


def make_state(net, *, precision="fp32", lr=1e-2, cond_dropout=0.0, nan=False) -> TrainState:
    cfg = TrainConfig(lr=lr, precision=precision, ema_decay=0.5)
    schedule = make_schedule("cosine", num_steps=100)
    device = torch.device("cpu")
    return TrainState(
        model=net,
        forward=net,
        optimizer=build_optimizer(net, cfg, device),
        ema=EMA(net, cfg.ema_decay),
        precision=resolve_precision(precision, device),
        loss_fn=DenoisingLoss(schedule, "eps"),
        grad_clip=1.0,
        cond_dropout=cond_dropout,
    )


def batch(n=8) -> MicroBatch:
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(n, 1, 4, 4, generator=g) * 2 - 1
    return MicroBatch(x0=x0, cond=Condition(labels=torch.arange(n) % 3))


def test_autocast_is_really_entered_in_the_step():
    net = TinyNet()
    state = make_state(net, precision="bf16")
    loss, skipped = train_step(state, [batch()], torch.Generator().manual_seed(0), 0)
    assert skipped.item() == 0.0 and torch.isfinite(loss)
    assert net.seen == [(True, torch.bfloat16)]
    net.seen.clear()
    train_step(make_state(net, precision="fp32"), [batch()], torch.Generator().manual_seed(0), 0)
    assert net.seen[0][0] is False


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    net = TinyNet(32)
    state = make_state(net, lr=3e-3)
    b = batch(4)
    losses = []
    for step in range(150):
        g = torch.Generator().manual_seed(0)  # the same t and eps every step
        loss, _ = train_step(state, [b], g, step)
        losses.append(float(loss))
    assert losses[-1] < 0.1 * losses[0]


def test_non_finite_loss_skips_the_step():
    net = TinyNet()
    state = make_state(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bad = MicroBatch(x0=torch.full((2, 1, 4, 4), float("nan")), cond=None)
    with pytest.warns(UserWarning, match="non-finite loss at step 3"):
        loss, skipped = train_step(state, [bad], torch.Generator().manual_seed(0), 3)
    assert skipped.item() == 1.0 and not torch.isfinite(loss)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert state.optimizer.state == {} or all(
        "step" not in s for s in state.optimizer.state.values()
    )


def test_condition_dropout_uses_the_null_label():
    net = TinyNet()
    seen = []
    net.embed.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    state = make_state(net, cond_dropout=1.0)
    train_step(state, [batch()], torch.Generator().manual_seed(0), 0)
    assert torch.equal(seen[0], torch.zeros(8, dtype=torch.long))  # NULL_LABEL + 1


def test_precision_policy():
    cpu = torch.device("cpu")
    auto = resolve_precision("auto", cpu)
    assert auto.name == "fp32" and not auto.scaler.is_enabled()
    assert resolve_precision("bf16", cpu).dtype == torch.bfloat16
    from difflab.core.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16"):
        resolve_precision("fp16", cpu)


def test_noise_offset_adds_one_draw_per_sample_and_channel_to_eps_and_its_target():
    state = make_state(TinyNet())
    state.noise_offset = 0.1
    seen = []

    def recorded(network, x0, t, eps, cond):
        seen.append(eps)
        return eps.sum()

    state.loss_fn = Recorder(state.loss_fn.sample_training_t, recorded)
    micro_batch_loss(state, batch(), torch.Generator().manual_seed(5), 0.0)
    g = torch.Generator().manual_seed(5)
    state.loss_fn.sample_training_t(8, generator=g, device=torch.device("cpu"))
    eps = torch.randn(8, 1, 4, 4, generator=g)
    offset = 0.1 * torch.randn(8, 1, 1, 1, generator=g)
    torch.testing.assert_close(seen[0], eps + offset, rtol=0, atol=0)


class Recorder:
    """A loss with the real training-t draw that calls `loss` instead of the network."""

    def __init__(self, sample_training_t, loss) -> None:
        self.sample_training_t, self.loss = sample_training_t, loss

    def __call__(self, network, x0, t, eps, cond):
        return self.loss(network, x0, t, eps, cond)
