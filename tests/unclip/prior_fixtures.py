"""A tiny prior and random text conditions for the unCLIP tests."""

import torch

from difflab.conditioning import Condition
from difflab.integrations.unclip.prior_data import PriorPairs
from difflab.networks import build_network
from difflab.parameterization import Denoiser
from difflab.schedules import make_schedule

E, D, L = 8, 6, 5  # embedding size, token width, tokens
TINY = {"text_dim": D, "width": 16, "depth": 2, "num_heads": 2, "freq_dim": 16}


def tiny_prior(**options) -> torch.nn.Module:
    return build_network(
        "prior", in_channels=E, image_size=1, num_classes=None, options={**TINY, **options}
    )


def perturb(net: torch.nn.Module) -> torch.nn.Module:
    """Move every parameter off its (partly zero) initialisation."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def text_condition(n: int, seed: int = 0, real: int = L) -> Condition:
    """Random token states [n, L, D] of which the first `real` are real, and a unit pooled
    embedding [n, E]."""
    g = torch.Generator().manual_seed(seed)
    pooled = torch.nn.functional.normalize(torch.randn(n, E, generator=g), dim=1)
    mask = torch.zeros(n, L, dtype=torch.bool)
    mask[:, :real] = True
    return Condition(text=torch.randn(n, L, D, generator=g), text_mask=mask, embedding=pooled)


def x0_denoiser(net: torch.nn.Module) -> Denoiser:
    return Denoiser(net, make_schedule("cosine"), "x0")


def random_pairs(n: int, seed: int, k: int = 5) -> PriorPairs:
    """n images, k captions; image i may take captions i % k and (i + 1) % k, or only the
    first for even i."""
    g = torch.Generator().manual_seed(seed)
    unit = lambda m: torch.nn.functional.normalize(torch.randn(m, E, generator=g), dim=1)  # noqa: E731
    mask = torch.arange(L)[None] < torch.randint(1, L + 1, (k, 1), generator=g)
    i = torch.arange(n)
    choices = torch.stack([i % k, (i + 1) % k], dim=1)
    counts = 1 + i % 2
    return PriorPairs(torch.randn(k, L, D, generator=g), mask, unit(k), unit(n), choices, counts)
