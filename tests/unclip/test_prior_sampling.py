"""Sampling the prior: guidance identities, and the paper's keep-the-closer-of-two option."""

import dataclasses

import pytest
import torch

from difflab.config.build import build_config
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.parameterization import Denoiser
from difflab.samplers import SAMPLERS
from difflab.sampling.prior import candidate_seeds, closest_to_text, guided_prior, sample_prior
from difflab.schedules import GRIDS, make_schedule

from .prior_fixtures import E, perturb, text_condition, tiny_prior, x0_denoiser


@pytest.fixture(scope="module")
def denoiser():
    torch.manual_seed(0)
    return x0_denoiser(perturb(tiny_prior())).eval()


def test_guidance_scale_one_is_the_conditional_and_zero_the_unconditional(denoiser):
    cond = text_condition(3)
    x, t = torch.randn(3, E), torch.tensor([0.2, 0.5, 0.9])
    c, u = denoiser(x, t, cond), denoiser(x, t, cond.null())
    for scale, expected in ((1.0, c), (0.0, u)):
        out = guided_prior(denoiser, cond, scale)(x, t)
        assert torch.equal(out.x0, expected.x0) and torch.equal(out.eps, expected.eps)
    # the null text is no text: what the prior sees unconditionally
    torch.testing.assert_close(u.x0, denoiser(x, t, None).x0, rtol=0, atol=1e-5)
    assert not torch.allclose(c.x0, u.x0, atol=1e-3)
    w = guided_prior(denoiser, cond, 3.0)(x, t)  # both halves as one batch
    torch.testing.assert_close(w.x0, u.x0 + 3.0 * (c.x0 - u.x0), rtol=1e-4, atol=1e-5)


def test_closest_to_text_keeps_the_candidate_with_the_larger_cosine():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    first = torch.tensor([[2.0, 0.1], [1.0, 0.0], [-1.0, 1.0]])  # closer for row 0 only
    second = torch.tensor([[0.1, 2.0], [0.2, 5.0], [3.0, 2.0]])  # longer is not closer: cosine
    out = closest_to_text(torch.stack([first, second]), text)
    assert torch.equal(out, torch.stack([first[0], second[1], second[2]]))


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_two_candidates_give_the_closer_of_the_two_single_draws(denoiser, sampler):
    cond = text_condition(4, seed=2)
    seeds = [5, 6, 7, 8]
    one = SampleConfig(sampler=sampler, steps=3, guidance=2.0)
    two = dataclasses.replace(one, prior_candidates=2)
    out = sample_prior(denoiser, cond, seeds=seeds, sample=two, device="cpu")
    draws = []
    for k in range(2):
        picked = candidate_seeds(seeds, k, 2)
        draws.append(sample_prior(denoiser, cond, seeds=picked, sample=one, device="cpu"))
    cosine = [torch.nn.functional.cosine_similarity(d, cond.embedding, dim=1) for d in draws]
    expected = torch.where((cosine[1] > cosine[0])[:, None], draws[1], draws[0])
    assert out.shape == (4, E) and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert not torch.equal(draws[0], draws[1])


def test_candidate_seeds_are_distinct():
    seeds = list(range(10))
    drawn = [s for k in range(3) for s in candidate_seeds(seeds, k, 3)]
    assert len(set(drawn)) == len(drawn)


def test_prior_candidates_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="sample.prior_candidates"):
        build_config({"sample": {"prior_candidates": 0}})


@pytest.mark.parametrize("kind", ["eps", "x0", "v"])
@pytest.mark.parametrize(
    "schedule,num_steps", [("cosine", 1000), ("linear", None), ("sigmoid", 50)]
)
def test_vectors_sample_with_every_schedule_and_parameterization(schedule, num_steps, kind):
    torch.manual_seed(0)
    denoiser = Denoiser(perturb(tiny_prior()), make_schedule(schedule, num_steps=num_steps), kind)
    for grid in GRIDS.names():
        sample = SampleConfig(sampler="dpmpp-2m", steps=3, grid=grid, guidance=2.0)
        out = sample_prior(
            denoiser.eval(), text_condition(2), seeds=[0, 1], sample=sample, device="cpu"
        )
        assert out.shape == (2, E) and torch.isfinite(out).all(), grid
