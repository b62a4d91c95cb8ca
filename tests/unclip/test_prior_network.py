"""unCLIP's prior network: shapes, masks, the null condition, gradients, and that it fits."""

import dataclasses

import pytest
import torch

from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.losses import DenoisingLoss
from difflab.networks.prior import attention_mask
from difflab.sampling.prior import sample_prior
from difflab.training.flops import train_flops_per_image

from .prior_fixtures import E, L, perturb, text_condition, tiny_prior, x0_denoiser


def test_output_is_a_vector_per_row_and_starts_at_zero():
    net = tiny_prior()
    x, t = torch.randn(3, E), torch.tensor([0.0, 500.0, 999.0])
    out = net(x, t, text_condition(3))
    assert out.shape == (3, E)
    assert torch.equal(out, torch.zeros_like(out))


def test_gradient_reaches_every_parameter():
    net = perturb(tiny_prior())
    out = net(torch.randn(3, E), torch.tensor([1.0, 2.0, 3.0]), text_condition(3))
    (out * torch.randn_like(out)).sum().backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert dead == []


@pytest.mark.parametrize("causal", [True, False])
def test_masked_tokens_are_ignored_and_the_null_condition_is_no_condition(causal):
    net = perturb(tiny_prior(causal=causal)).eval()
    x, t = torch.randn(2, E), torch.tensor([10.0, 700.0])
    cond = text_condition(2, real=3)
    scrambled = dataclasses.replace(cond, text=cond.text.clone())
    scrambled.text[:, 3:] = 100.0  # the masked (padding) tokens
    out = net(x, t, cond)
    torch.testing.assert_close(net(x, t, scrambled), out, rtol=0, atol=1e-6)
    assert not torch.allclose(net(x, t, text_condition(2, seed=1, real=3)), out, atol=1e-4)
    torch.testing.assert_close(net(x, t, cond.null()), net(x, t, None), rtol=0, atol=1e-6)


def test_every_text_part_and_time_change_the_output():
    net = perturb(tiny_prior()).eval()
    x, t = torch.randn(1, E), torch.tensor([300.0])
    cond = text_condition(1)
    out = net(x, t, cond)
    for changed in (
        dataclasses.replace(cond, text=cond.text + 1.0),
        dataclasses.replace(cond, embedding=-cond.embedding),
    ):
        assert not torch.allclose(net(x, t, changed), out, atol=1e-4)
    assert not torch.allclose(net(x, torch.tensor([900.0]), cond), out, atol=1e-4)


def test_causal_mask_hides_later_and_padding_tokens_but_never_a_whole_row():
    mask = attention_mask(torch.tensor([[True, False]]), fixed=2, causal=True, num_heads=1)[0]
    hidden = torch.tensor(
        [  # keys: text0, text1 (padding), fixed0, fixed1
            [False, True, True, True],
            [False, False, True, True],  # padding is hidden as a key, and sees itself
            [False, True, False, True],
            [False, True, False, False],
        ]
    )
    assert torch.equal(mask, hidden)


def test_too_many_tokens_and_labels_are_errors():
    net = tiny_prior(max_text_tokens=L - 1)
    with pytest.raises(ValueError, match="max_text_tokens=4"):
        net(torch.randn(1, E), torch.tensor([1.0]), text_condition(1))
    from difflab.networks import build_network

    with pytest.raises(ConfigError, match="no class labels"):
        build_network("prior", in_channels=E, image_size=1, num_classes=10)


def test_prior_overfits_a_handful_of_pairs():
    """Four (text, image embedding) pairs: after a few hundred steps the sampled embedding of
    each text has cosine near 1 to its own image embedding (and not to the others')."""
    torch.manual_seed(0)
    denoiser = x0_denoiser(tiny_prior(width=32))
    cond = text_condition(4, seed=3)
    target = torch.nn.functional.normalize(torch.randn(4, E), dim=1) * E**0.5  # unit variance
    loss_fn = DenoisingLoss(denoiser.schedule, "x0")
    optimizer = torch.optim.Adam(denoiser.network.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        t = loss_fn.sample_training_t(4, generator=g, device="cpu")
        eps = torch.randn(4, E, generator=g)
        optimizer.zero_grad()
        loss_fn(denoiser.network, target, t, eps, cond).backward()
        optimizer.step()
    sample = SampleConfig(sampler="ddim", steps=20)
    out = sample_prior(denoiser.eval(), cond, seeds=[0, 1, 2, 3], sample=sample, device="cpu")
    cosine = torch.nn.functional.cosine_similarity(out[:, None], target[None], dim=-1)  # [4, 4]
    assert cosine.diagonal().min() > 0.95
    off = cosine - torch.eye(4) * 10
    assert (cosine.diagonal() > off.max(dim=1).values).all()


def test_an_embedding_shaped_as_an_image_gives_the_same_output_and_flops_count():
    """A run's image_shape is (E, 1, 1): the loop counts training FLOPs (on CUDA) on it."""
    net = perturb(tiny_prior()).eval()
    x, t, cond = torch.randn(2, E), torch.tensor([5.0, 50.0]), text_condition(2)
    image = net(x[:, :, None, None], t, cond)
    assert image.shape == (2, E, 1, 1)
    torch.testing.assert_close(image[:, :, 0, 0], net(x, t, cond), rtol=0, atol=1e-6)
    assert train_flops_per_image(net, (E, 1, 1), text_condition(1)) > 0
