"""cond.embedding (unCLIP's image embedding [N, E]) in every network preset: read when the network
is built with embedding_dim > 0 (null = zeros = no embedding), absent and ignored when it is 0."""

from dataclasses import replace

import pytest
import torch

from difflab.conditioning import Condition, drop_condition
from difflab.networks import ControlledUNet, DiTConfig, build_network
from difflab.networks.presets import MODELS

from .test_networks_contract import (
    IMAGE_SIZE,
    IN_CHANNELS,
    PRESETS,
    TINY,
    dead_parameters,
    inputs,
    perturb,
)
from .test_networks_contract import tiny as contract_tiny

E = 6


def tiny(name: str, embedding_dim: int, num_classes: int | None = None) -> torch.nn.Module:
    return contract_tiny(name, num_classes, embedding_dim)


def vectors(n: int, e: int = E) -> torch.Tensor:
    v = torch.randn(n, e)
    return v / v.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("name", PRESETS)
def test_embedding_network_starts_at_zero_and_trains_every_parameter(name):
    x, t = inputs()
    cond = Condition(embedding=vectors(4))
    assert torch.equal(tiny(name, E)(x, t, cond), torch.zeros_like(x))
    net = perturb(tiny(name, E, num_classes=3))
    cond = Condition(labels=torch.tensor([0, 1, 2, -1]), embedding=vectors(4))
    assert dead_parameters(net, net(x, t, cond)) == []


@pytest.mark.parametrize("name", PRESETS)
def test_embedding_changes_the_output_and_no_embedding_is_the_zero_vector(name):
    net = perturb(tiny(name, E)).eval()
    x, t = inputs(2)
    a, b = vectors(2), vectors(2)
    out_a = net(x, t, Condition(embedding=a))
    assert not torch.allclose(out_a, net(x, t, Condition(embedding=b)), atol=1e-5)
    null = net(x, t, Condition(embedding=a).null())
    assert torch.equal(null, net(x, t, Condition(embedding=torch.zeros(2, E))))
    assert torch.equal(net(x, t, None), null)
    assert torch.equal(net(x, t, Condition()), null)


@pytest.mark.parametrize("name", PRESETS)
def test_a_wrong_embedding_size_is_an_error_naming_both_sizes(name):
    net = tiny(name, E)
    x, t = inputs(2)
    with pytest.raises(ValueError, match=r"shape \(2, 5\).*embedding_dim=6"):
        net(x, t, Condition(embedding=torch.zeros(2, 5)))


@pytest.mark.parametrize("name", PRESETS)
def test_embedding_off_adds_no_parameters_and_ignores_the_embedding(name):
    plain = tiny(name, 0)
    with_embedding = MODELS[type(plain.config)](replace(plain.config, embedding_dim=E))
    extra = with_embedding.state_dict().keys() - plain.state_dict().keys()
    assert extra and all(key.startswith("vector_") for key in extra)
    assert not any("vector" in key for key in plain.state_dict())
    net = perturb(plain).eval()
    x, t = inputs(2)
    assert torch.equal(net(x, t, Condition(embedding=vectors(2))), net(x, t, None))


@pytest.mark.parametrize("name", ["unet-tiny", "unet-cifar10", "dit-tiny", "dit-s/2"])
def test_embedding_is_not_drowned_by_the_time_embedding_at_init(name):
    """Like the labels: the projected unit-norm embedding starts at least a third of the time
    embedding's scale, or the decoder learns its condition late."""
    torch.manual_seed(0)
    net = build_network(name, in_channels=3, image_size=32, num_classes=None, embedding_dim=64)
    time = net.time_embed(999 * torch.rand(256)).pow(2).mean().sqrt()
    vec = net.vector_embed(Condition(embedding=vectors(256, 64)), 256, "cpu")
    vec = vec - net.vector_embed.proj.bias
    assert vec.pow(2).mean().sqrt() > time / 3


def test_dit_embedding_tokens_are_read_without_the_time_path():
    """The extra tokens alone carry the embedding: with the projection into c zeroed, the
    embedding still changes the output; with embedding_tokens=0 it then does not."""
    x, t = inputs(2)
    for tokens, changes in ((4, True), (0, False)):
        net = perturb(tiny("dit-tiny", E) if tokens else _dit_without_tokens()).eval()
        with torch.no_grad():
            net.vector_embed.proj.weight.zero_()
        a = net(x, t, Condition(embedding=vectors(2)))
        b = net(x, t, Condition(embedding=vectors(2)))
        assert (not torch.allclose(a, b, atol=1e-5)) == changes


def _dit_without_tokens() -> torch.nn.Module:
    options = {**TINY[DiTConfig], "embedding_tokens": 0}
    return build_network(
        "dit-tiny",
        in_channels=IN_CHANNELS,
        image_size=IMAGE_SIZE,
        num_classes=None,
        options=options,
        embedding_dim=E,
    )


def test_controlnet_copies_the_embedding_projection_and_starts_as_the_base():
    base = perturb(tiny("unet-tiny", E, num_classes=3))
    model = ControlledUNet.from_unet(base, hint_channels=1)
    x, t = inputs(2)
    cond = Condition(labels=torch.tensor([0, 2]), embedding=vectors(2))
    plain = base(x, t, cond)
    hint = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    assert torch.equal(model(x, t, Condition(**vars(cond) | {"hint": hint})), plain)


def test_condition_dropout_nulls_the_embedding_per_sample():
    cond = Condition(labels=torch.tensor([1, 2]), embedding=vectors(2))
    dropped = drop_condition(cond, torch.tensor([True, False]))
    assert torch.equal(dropped.embedding[0], torch.zeros(E))
    assert torch.equal(dropped.embedding[1], cond.embedding[1])
    assert dropped.labels.tolist() == [-1, 2]
    both = cond.cat(cond.null())
    assert torch.equal(both.index(slice(2, 4)).embedding, torch.zeros(2, E))
    assert cond.cast(torch.float64).embedding.dtype == torch.float64


def test_dit_output_patches_come_from_the_image_tokens_not_the_embedding_tokens():
    """At init the blocks are the identity (adaLN-Zero gates at zero), so with a moved final
    layer each output patch is the final layer of its own image token: the K embedding tokens
    in front must be cut off before it."""
    net = tiny("dit-tiny", E).eval()
    perturb(net.final)
    x, t = inputs(2)
    cond = Condition(embedding=vectors(2))
    c = net.time_embed(t) + net.vector_embed(cond, 2, "cpu")
    tokens = net.patch_embed(x).flatten(2).transpose(1, 2) + net.pos_embed  # [N, T, D]
    expected = net.unpatchify(net.final(tokens, c))
    torch.testing.assert_close(net(x, t, cond), expected, atol=1e-6, rtol=1e-5)
