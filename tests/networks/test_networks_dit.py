"""DiT specifics: position embedding formula, patch order, and the paper's model sizes."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from difflab.networks import DiT, DiTConfig, build_network
from difflab.networks.dit import sincos_2d


def test_2d_position_embedding_matches_the_formula():
    dim, grid = 8, 3
    emb = sincos_2d(dim, grid)  # [9, 8]: rows in channels 0..3, columns in 4..7
    assert emb.shape == (grid * grid, dim)
    for row in range(grid):
        for col in range(grid):
            token = emb[row * grid + col]
            for i in range(2):
                w = 10000.0 ** (-i / 2)
                expected = [
                    (i, math.sin(row * w)),
                    (2 + i, math.cos(row * w)),
                    (4 + i, math.sin(col * w)),
                    (6 + i, math.cos(col * w)),
                ]
                for channel, value in expected:
                    assert token[channel].item() == pytest.approx(value, abs=1e-6)


def small_dit(channels: int, image_size: int) -> DiT:
    return DiT(
        DiTConfig(
            in_channels=channels,
            out_channels=channels,
            image_size=image_size,
            patch_size=2,
            hidden_size=8,
            depth=1,
            num_heads=1,
        )
    )


def test_unpatchify_puts_each_token_back_at_its_patch():
    net = small_dit(3, 8)
    x = torch.randn(2, 3, 8, 8)
    # token (row, col) holds pixel (row*p + i, col*p + j, channel c) at index (i*p + j)*C + c
    patches = x.reshape(2, 3, 4, 2, 4, 2).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 12)
    assert torch.equal(net.unpatchify(patches), x)


def test_patch_token_order_matches_the_position_embedding():
    """A conv patch embedding flattened row-major gives token row*G + col, as sincos_2d."""
    net = small_dit(1, 4)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 2, 0] = 1.0  # a pixel in patch (row 1, col 0) -> token 2
    tokens = (net.patch_embed(x) - net.patch_embed(torch.zeros_like(x))).flatten(2)
    assert tokens[0, :, 2].abs().sum() > 0
    assert tokens[0, :, [0, 1, 3]].abs().sum() == 0


@pytest.mark.parametrize(
    ("name", "params_m", "gmacs"),
    [("dit-s/2", 33.0, 6.06), ("dit-b/2", 130.5, 23.01)],
)
def test_paper_sizes(name, params_m, gmacs):
    """Peebles & Xie 2023, Table 4: 256x256 images as 32x32x4 latents, 1000 classes, learned
    sigma (8 output channels). Counted on the meta device, so nothing is computed."""
    with torch.device("meta"):
        net = build_network(
            name, in_channels=4, image_size=32, num_classes=1000, options={"out_channels": 8}
        )
        x, t = torch.empty(1, 4, 32, 32), torch.empty(1)
        with FlopCounterMode(display=False) as counter:
            net(x, t)
    params = sum(p.numel() for p in net.parameters()) + net.pos_embed.numel()
    assert params / 1e6 == pytest.approx(params_m, rel=0.01)
    assert counter.get_total_flops() / 2e9 == pytest.approx(gmacs, rel=0.01)
