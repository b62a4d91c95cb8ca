"""SamplingNetwork: same function as the network it wraps, in float32 fresh tensors, and the
caller's network untouched; the schedule table is copied to a device once."""

from dataclasses import replace

import pytest
import torch

from difflab.conditioning import Condition
from difflab.networks import build_network
from difflab.parameterization import Denoiser
from difflab.samplers import SAMPLERS, SamplingGrid
from difflab.samplers.compiled import SamplingNetwork, sampling_network
from difflab.schedules import make_schedule, uniform_grid


def _net():
    torch.manual_seed(0)
    net = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=None)
    for p in net.parameters():  # the zero-initialised output layer would hide every difference
        p.data.normal_(0, 0.05)
    return net


def test_same_output_as_the_network_in_a_fresh_float32_tensor():
    net = _net()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10.0, 700.0])
    fast = SamplingNetwork(net)
    out = fast(x, t)
    torch.testing.assert_close(out, net(x, t), rtol=0, atol=0)
    assert out.dtype == torch.float32 and not out.requires_grad
    assert out.data_ptr() != fast(x, t).data_ptr()


def test_bf16_channels_last_close_and_the_callers_network_untouched():
    net = _net()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10.0, 700.0])
    out = SamplingNetwork(net, dtype=torch.bfloat16, channels_last=True)(x, t)
    reference = net(x, t)
    assert out.dtype == torch.float32
    assert (out - reference).norm() / reference.norm() < 2e-2
    assert all(p.dtype == torch.float32 and p.requires_grad for p in net.parameters())
    assert net.conv_in.weight.is_contiguous()


def test_the_condition_reaches_the_network_in_its_dtype():
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, t, cond):
            seen.append(cond)
            return x * self.w

    cond = Condition(labels=torch.tensor([1, 2]), text=torch.randn(2, 3, 4), hint=torch.randn(2, 1))
    cond = replace(cond, text_mask=torch.ones(2, 3, dtype=torch.bool))
    SamplingNetwork(Recorder(), dtype=torch.bfloat16)(torch.randn(2, 1, 8, 8), torch.ones(2), cond)
    (got,) = seen
    assert got.text.dtype == got.hint.dtype == torch.bfloat16
    assert got.labels.dtype == torch.long and got.text_mask.dtype == torch.bool
    torch.testing.assert_close(got.text.float(), cond.text, rtol=1e-2, atol=1e-2)
    assert cond.text.dtype == torch.float32  # the caller's condition untouched


def test_ddim_through_a_sampling_network_matches_the_plain_denoiser():
    net, schedule = _net(), make_schedule("linear", num_steps=1000)
    grid = SamplingGrid.build(schedule, uniform_grid(schedule, 4))
    x = torch.randn(2, 1, 8, 8)
    ddim = SAMPLERS.get("ddim")
    fast = ddim(Denoiser(sampling_network(net, torch.device("cpu")), schedule, "eps"), x, grid)
    plain = ddim(Denoiser(net, schedule, "eps"), x, grid)
    torch.testing.assert_close(fast, plain.detach())


@pytest.mark.slow
def test_compiled_sampling_network_matches_eager():
    """torch.compile (inductor on CPU) computes the same function."""
    net = _net()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10.0, 700.0])
    out = SamplingNetwork(net, mode="default")(x, t)
    torch.testing.assert_close(out, net(x, t).detach(), rtol=1e-4, atol=1e-5)


def test_discrete_schedule_table_is_copied_to_a_device_once():
    schedule = make_schedule("linear", num_steps=1000)
    t = torch.tensor([0.0, 499.5, 999.0], device="meta")
    assert schedule.alpha(t).device.type == "meta"
    table = schedule._table_on(torch.device("meta"))
    assert schedule._table_on(torch.device("meta")) is table
