"""MFU inputs: the FLOPs of one training image, counted on the meta device, equal a count of a
real forward + backward and leave the RNG untouched; the peak is unknown on CPU."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from difflab.networks import build_network
from difflab.training.flops import mfu, peak_flops, train_flops_per_image


def attention_flops(length: int, channels: int) -> int:
    """QK^T and AV (2 L^2 C each) forward; the backward takes two products for each."""
    return 3 * (2 + 2) * length**2 * channels


def test_meta_count_equals_a_real_forward_backward_and_draws_no_random_numbers():
    net = build_network("unet-small", in_channels=1, image_size=28, num_classes=10)  # dropout
    state = torch.get_rng_state()
    counted = train_flops_per_image(net, (1, 28, 28))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(p.device.type == "cpu" and p.grad is None for p in net.parameters())
    x, t = torch.randn(1, 1, 28, 28), torch.tensor([500.0])
    with FlopCounterMode(display=False) as counter:
        net(x, t, None).square().mean().backward()
    # CPU's fused attention kernel has no FLOP formula: add its products by hand. unet-small
    # has 128 channels at 14x14 (2 encoder + 3 decoder blocks) and 7x7 (the middle block).
    attention = 5 * attention_flops(14 * 14, 128) + attention_flops(7 * 7, 128)
    assert counted == counter.get_total_flops() + attention


def test_mfu_is_achieved_over_peak_flops():
    assert mfu(37.5e9, 4341.0, 989e12) == 37.5e9 * 4341.0 / 989e12
    assert mfu(1e9, 1000.0, 1e12, devices=4) == 0.25
    assert peak_flops(torch.device("cpu")) is None
