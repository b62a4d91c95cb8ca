"""One contract run over every registered image network preset, shrunk by options to a tiny
size (unCLIP's prior and upsampler have their own: tests/unclip)."""

import pytest
import torch

from difflab.conditioning import Condition
from difflab.networks import NETWORKS, DiTConfig, UNetConfig, build_network

IMAGE_SIZE = 8
IN_CHANNELS = 2
NUM_CLASSES = 3

# Options that shrink each family to a few thousand parameters; presets keep their layout.
TINY = {
    UNetConfig: {"base_channels": 8, "norm_groups": 4, "num_heads": 1, "blocks_per_level": 1},
    DiTConfig: {"hidden_size": 16, "depth": 2, "num_heads": 2, "freq_dim": 16},
}


def tiny(name: str, num_classes: int | None, embedding_dim: int = 0) -> torch.nn.Module:
    family = type(NETWORKS.get(name)(IN_CHANNELS, IMAGE_SIZE, num_classes))
    return build_network(
        name,
        in_channels=IN_CHANNELS,
        image_size=IMAGE_SIZE,
        num_classes=num_classes,
        options=TINY[family],
        embedding_dim=embedding_dim,
    )


def perturb(net: torch.nn.Module) -> torch.nn.Module:
    """Move every parameter off its (partly zero) initialisation."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def inputs(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    t = torch.linspace(0.0, 999.0, n)
    return x, t


def labels(*values: int) -> Condition:
    return Condition(labels=torch.tensor(values, dtype=torch.long))


PRESETS = [n for n in NETWORKS.names() if n not in ("prior", "upsampler")]
CLASSES = [None, NUM_CLASSES]


@pytest.mark.parametrize("num_classes", CLASSES)
@pytest.mark.parametrize("name", PRESETS)
def test_initial_output_is_exactly_zero_with_input_shape(name, num_classes):
    net = tiny(name, num_classes)
    x, t = inputs()
    out = net(x, t, labels(0, 1, 2, -1) if num_classes else None)
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert torch.equal(out, torch.zeros_like(x))


@pytest.mark.parametrize("num_classes", CLASSES)
@pytest.mark.parametrize("name", PRESETS)
def test_gradient_reaches_every_parameter(name, num_classes):
    net = perturb(tiny(name, num_classes))
    x, t = inputs()
    out = net(x, t, labels(0, 1, 2, -1) if num_classes else None)
    assert torch.isfinite(out).all()
    assert dead_parameters(net, out) == []


def dead_parameters(net: torch.nn.Module, out: torch.Tensor) -> list[str]:
    """The parameters a random projection of out sends no gradient to."""
    (out * torch.randn_like(out)).sum().backward()
    return [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]


@pytest.mark.parametrize("name", PRESETS)
def test_labels_change_the_output_and_null_is_the_default(name):
    net = perturb(tiny(name, NUM_CLASSES)).eval()
    x, t = inputs(1)
    outs = [net(x, t, labels(k)) for k in (0, 1, 2, -1)]
    for i in range(len(outs)):
        for j in range(i):
            assert not torch.allclose(outs[i], outs[j], atol=1e-5)
    assert torch.equal(net(x, t, None), outs[-1])
    assert torch.equal(net(x, t, Condition()), outs[-1])
    for bad in (NUM_CLASSES, -2):  # out of range: an error, never silently the null row
        with pytest.raises(IndexError):
            net(x, t, labels(bad))


@pytest.mark.parametrize("name", PRESETS)
def test_unconditional_network_ignores_labels(name):
    net = perturb(tiny(name, None)).eval()
    x, t = inputs(2)
    assert torch.equal(net(x, t, labels(0, 1)), net(x, t, None))


@pytest.mark.parametrize("name", PRESETS)
def test_time_changes_the_output_and_a_scalar_time_broadcasts(name):
    net = perturb(tiny(name, None)).eval()
    x, _ = inputs(2)
    early = net(x, torch.full((2,), 10.0))
    assert not torch.allclose(early, net(x, torch.full((2,), 900.0)), atol=1e-5)
    assert torch.allclose(early, net(x, torch.tensor(10.0)), atol=1e-6)


@pytest.fixture(params=PRESETS)
def trained(request):
    """A perturbed class-conditional net, its inputs and its float32 output."""
    net = perturb(tiny(request.param, NUM_CLASSES)).eval()
    x, t = inputs()
    cond = labels(0, 1, 2, -1)
    return net, (x, t, cond), net(x, t, cond)


def test_channels_last_input_gives_the_same_output(trained):
    net, (x, t, cond), expected = trained
    net = net.to(memory_format=torch.channels_last)
    out = net(x.to(memory_format=torch.channels_last), t, cond)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_runs_and_stays_close(trained):
    net, (x, t, cond), expected = trained
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, t, cond)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert (out.float() - expected).abs().max() < 0.1 * expected.abs().max()


@pytest.mark.parametrize("name", ["unet-tiny", "dit-tiny"])
def test_traces_as_one_graph_for_torch_compile(name):
    """No graph breaks (no .item(), no Python branches on tensor values): dynamo captures the
    whole forward. The eager backend skips code generation, so this stays fast."""
    net = perturb(tiny(name, NUM_CLASSES))
    x, t = inputs()
    cond = labels(0, 1, 2, -1)
    compiled = torch.compile(net, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, t, cond), net(x, t, cond))


@pytest.mark.parametrize("name", ["unet-tiny", "unet-cifar10", "dit-tiny", "dit-s/2"])
def test_labels_are_not_drowned_by_the_time_embedding_at_init(name):
    """The class embedding joins the time embedding; at init it must be at least a third of
    its scale, or class conditioning is learned late (issue 15: UNet labels at N(0, 0.02))."""
    torch.manual_seed(0)
    net = build_network(name, in_channels=3, image_size=32, num_classes=10, options={})
    time = net.time_embed(999 * torch.rand(256)).pow(2).mean().sqrt()
    labels = net.label_embed.table.weight[1:].pow(2).mean().sqrt()
    assert labels > time / 3
