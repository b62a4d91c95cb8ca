"""UNet specifics: the time embedding, ControlNet residuals, fitting a batch, torch.compile, and
parameter/FLOP parity of the CIFAR-10 preset with diffusers' UNet2DModel."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from difflab.conditioning import Condition
from difflab.networks import UNet, UNetConfig, build_network
from difflab.networks.layers import sinusoidal_embedding

TINY = UNetConfig(
    in_channels=1,
    out_channels=1,
    image_size=8,
    base_channels=16,
    channel_mults=(1, 2),
    blocks_per_level=1,
    attention_resolutions=(4,),
    dropout=0.0,
    norm_groups=4,
    num_classes=10,
)


def perturbed_tiny() -> UNet:
    net = UNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def test_sinusoidal_embedding_matches_the_formula():
    t = torch.tensor([0.0, 3.0, 999.0])
    emb = sinusoidal_embedding(t, 8)
    for n, tn in enumerate(t.tolist()):
        for i in range(4):
            angle = tn * 10000.0 ** (-i / 4)
            assert emb[n, i].item() == pytest.approx(math.cos(angle), abs=1e-4)
            assert emb[n, 4 + i].item() == pytest.approx(math.sin(angle), abs=1e-4)


def test_skip_and_mid_residuals_are_added_where_a_controlnet_needs_them():
    net = perturbed_tiny().eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5.0, 700.0])
    cond = Condition(labels=torch.tensor([3, -1]))
    h, skips = net.encode(x, net.embed(t, cond, 2))
    assert [s.shape[1] for s in skips] == list(net.skip_channels)
    zeros = [torch.zeros_like(s) for s in skips]
    plain = net(x, t, cond)
    same = net(x, t, cond, skip_residuals=zeros, mid_residual=torch.zeros_like(h))
    torch.testing.assert_close(same, plain)
    for i in range(len(skips)):
        bumped = [z + (k == i) for k, z in enumerate(zeros)]
        assert not torch.allclose(net(x, t, cond, skip_residuals=bumped), plain)
    assert not torch.allclose(net(x, t, cond, mid_residual=torch.ones_like(h)), plain)
    with pytest.raises(ValueError):
        net(x, t, cond, skip_residuals=zeros[:-1])


def test_tiny_unet_overfits_one_batch():
    net = build_network("unet-tiny", in_channels=1, image_size=8, num_classes=10)
    x, target = torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8)
    t = torch.linspace(0.0, 999.0, 8)
    cond = Condition(labels=torch.arange(8) - 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net(x, t, cond), target)
        losses.append(loss.item())
        if losses[-1] <= losses[0] / 10:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] <= losses[0] / 10


@pytest.mark.slow  # compiling takes minutes on two shared cores
def test_compiled_forward_and_backward_match_eager():
    net = perturbed_tiny()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5.0, 700.0])
    cond = Condition(labels=torch.tensor([3, -1]))
    eager = net(x, t, cond)
    eager.square().sum().backward()
    eager_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    compiled = torch.compile(net)(x, t, cond)
    compiled.square().sum().backward()
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-4)
    for p, g in zip(net.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-4, rtol=1e-3)


def _flops(net: torch.nn.Module) -> int:
    x, t = torch.empty(1, 3, 32, 32), torch.empty(1)
    with FlopCounterMode(display=False) as counter:
        net(x, t)
    return counter.get_total_flops()


def test_cifar10_preset_matches_diffusers_ddpm_unet():
    """Same parameter count and FLOPs as diffusers' UNet2DModel in the google/ddpm-cifar10-32
    configuration; built on the meta device, so nothing is computed."""
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        reference = diffusers.UNet2DModel(
            sample_size=32,
            in_channels=3,
            out_channels=3,
            block_out_channels=(128, 256, 256, 256),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            layers_per_block=2,
            attention_head_dim=None,
            dropout=0.1,
        )
        net = build_network("unet-cifar10", in_channels=3, image_size=32, num_classes=None)
        flops, reference_flops = _flops(net), _flops(reference)
    count = sum(p.numel() for p in net.parameters())
    assert count == sum(p.numel() for p in reference.parameters()) == 35_746_307
    assert flops == reference_flops == 12_443_713_536
