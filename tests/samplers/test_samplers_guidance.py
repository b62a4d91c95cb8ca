"""Classifier guidance, classifier-free guidance on every channel, thresholding."""

import torch

from difflab.cli.commands import build_parser
from difflab.cli.sampling_args import sample_config
from difflab.conditioning import Condition, classifier_free_guidance, classifier_guidance
from difflab.config.build import build_config
from difflab.config.schema import SampleConfig
from difflab.parameterization import Denoiser, Prediction
from difflab.samplers import SAMPLERS, SamplingGrid, thresholded
from difflab.sampling.generation import guided_denoise, threshold_kind
from difflab.schedules import GRIDS, make_schedule

from .gaussian_mixture import GaussianMixture, MixtureNetwork, two_dim_mixture

MIXTURE = two_dim_mixture()


def test_classifier_guidance_scale_zero_is_no_guidance():
    schedule = make_schedule("linear")
    denoise = MIXTURE.denoiser(schedule)
    x, t = torch.randn(6, 2), torch.tensor(500.0, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    guided = classifier_guidance(
        denoise, MIXTURE.classifier(schedule), labels, scale=0.0, schedule=schedule
    )
    want, got = denoise(x, t), guided(x, t)
    assert torch.equal(got.x0, want.x0) and torch.equal(got.eps, want.eps)


def conditional_denoiser(mixture, k, schedule):
    """Exact denoiser of component k alone: the true conditional E[x0 | x_t, y = k]."""
    alone = GaussianMixture(
        torch.ones(1, dtype=torch.float64), mixture.means[k : k + 1], mixture.stds[k : k + 1]
    )
    return alone.denoiser(schedule)


def test_exact_classifier_at_scale_one_gives_the_conditional_denoiser():
    """Bayes: grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t), so guidance at scale 1
    with the exact classifier is the exact conditional denoiser (eps and x0), under no_grad."""
    schedule = make_schedule("cosine", num_steps=None)
    x, t = 2 * torch.randn(5, 2), torch.tensor(0.5, dtype=torch.float64)
    for k in range(3):
        labels = torch.full((5,), k)
        guided = classifier_guidance(
            MIXTURE.denoiser(schedule),
            MIXTURE.classifier(schedule),
            labels,
            scale=1.0,
            schedule=schedule,
        )
        with torch.no_grad():
            got = guided(x, t)
        want = conditional_denoiser(MIXTURE, k, schedule)(x, t)
        torch.testing.assert_close(got.eps, want.eps, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got.x0, want.x0, atol=1e-4, rtol=1e-4)


def sample_guided(scale, labels, schedule, steps=30):
    grid = SamplingGrid.build(schedule, GRIDS.get("logsnr")(schedule, steps))
    denoise = classifier_guidance(
        MIXTURE.denoiser(schedule),
        MIXTURE.classifier(schedule),
        labels,
        scale=scale,
        schedule=schedule,
    )
    x = torch.randn(len(labels), 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return SAMPLERS.get("dpmpp-2m")(denoise, x, grid)


def test_guided_samples_land_in_the_requested_component():
    """Component 2 has weight 0.2: unguided, ~20% of 2000 samples land there (SE 0.9%);
    guided at scale 1 (exact conditional) nearly all, and at scale 3 as well."""
    schedule = make_schedule("linear")
    labels = torch.full((2000,), 2)
    hit = {
        s: (MIXTURE.component_of(sample_guided(s, labels, schedule)) == 2).float().mean()
        for s in (0.0, 1.0, 3.0)
    }
    assert 0.16 < hit[0.0] < 0.24
    assert hit[1.0] > 0.99 and hit[3.0] > 0.99


def test_classifier_guidance_composes_with_classifier_free_guidance():
    """Wrapping the CFG denoise function adds -scale sigma grad to its eps, on every channel."""

    class LabelNet(torch.nn.Module):
        def forward(self, x, t, cond):
            return 0.3 * x + 0.1 * cond.labels.float().view(-1, 1) * torch.arange(2.0)

    schedule = make_schedule("linear")
    denoiser = Denoiser(LabelNet(), schedule, "eps")
    cond = Condition(labels=torch.tensor([0, 1, 2]))
    cfg = classifier_free_guidance(denoiser, cond, cond.null(), 2.5)
    x, t = torch.randn(3, 2), torch.tensor(300.0, dtype=torch.float64)
    both = classifier_guidance(
        cfg, MIXTURE.classifier(schedule), cond.labels, scale=2.0, schedule=schedule
    )
    x_req = x.clone().requires_grad_(True)
    log_p = torch.log_softmax(MIXTURE.classifier(schedule)(x_req, t.float().expand(3)), 1)
    grad = torch.autograd.grad(log_p.gather(1, cond.labels.view(-1, 1)).sum(), x_req)[0]
    sigma = float(schedule.sigma(t))
    torch.testing.assert_close(both(x, t).eps, cfg(x, t).eps - 2.0 * sigma * grad.float())


def test_static_clipping_and_consistent_eps():
    schedule = make_schedule("linear")
    t = torch.tensor(200.0, dtype=torch.float64)
    alpha, sigma = float(schedule.alpha(t)), float(schedule.sigma(t))
    x0 = torch.tensor([[2.0, -0.5], [-3.0, 0.9]])

    def wild(x_t, t):
        return Prediction(x0=x0, eps=(x_t - alpha * x0) / sigma)

    x_t = torch.randn(2, 2)
    out = thresholded(wild, schedule=schedule, kind="static")(x_t, t)
    torch.testing.assert_close(out.x0, torch.tensor([[1.0, -0.5], [-1.0, 0.9]]))
    torch.testing.assert_close(alpha * out.x0 + sigma * out.eps, x_t)


def test_dynamic_threshold_scales_by_the_percentile():
    """Imagen sec. 2.3: s = max(1, quantile(|x0|, p)); x0 <- clip(x0, -s, s) / s per sample;
    samples already inside [-1, 1] are unchanged."""
    schedule = make_schedule("linear")
    t = torch.tensor(200.0, dtype=torch.float64)
    x0 = torch.stack([torch.linspace(-4, 4, 101), torch.linspace(-0.5, 0.5, 101)])  # [2, 101]

    def denoise(x_t, t):
        return Prediction(x0=x0, eps=torch.zeros_like(x0))

    out = thresholded(denoise, schedule=schedule, percentile=0.9)(torch.zeros(2, 101), t)
    s = torch.quantile(x0[0].abs(), 0.9)
    torch.testing.assert_close(out.x0[0], x0[0].clamp(-s, s) / s)
    torch.testing.assert_close(out.x0[1], x0[1])
    assert out.x0.abs().max() <= 1.0


def test_thresholded_denoiser_drives_every_sampler_into_range():
    """With static clipping, the last step into sigma = 0 returns a clipped x0: every sample lies
    in [-1, 1] (the mixture itself reaches |x| ~ 3.5)."""
    schedule = make_schedule("linear")
    grid = SamplingGrid.build(schedule, GRIDS.get("uniform")(schedule, 8))
    denoise = thresholded(MIXTURE.denoiser(schedule), schedule=schedule, kind="static")
    for name in SAMPLERS.names():
        x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
        out = SAMPLERS.get(name)(denoise, x, grid, generator=torch.Generator().manual_seed(1))
        assert out.abs().max() <= 1.0 + 1e-6, name


def test_static_threshold_is_the_default_under_classifier_guidance():
    """generate's denoise function (the CLI's too): with a classifier at a positive scale and no
    threshold set, x0 is clipped to [-1, 1] (the exact mixture predicts |x0| up to ~3.5 here);
    explicitly "off", without a classifier, or at classifier scale 0 it is not; an explicit
    kind is kept."""
    schedule = make_schedule("cosine")
    denoiser = Denoiser(MixtureNetwork(MIXTURE, schedule, "eps"), schedule, "eps")
    x, t = 3 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), torch.tensor(50.0)
    labels = torch.arange(64) % 3

    def largest_x0(classifier=None, **options):
        sample = SampleConfig(classifier="clf" if classifier else None, **options)
        denoise = guided_denoise(denoiser, None, sample, "cpu", classifier, labels)
        return denoise(x, t).x0.abs().max()

    clf = MIXTURE.classifier(schedule)
    assert largest_x0(clf) <= 1 and largest_x0(clf, threshold="static") <= 1
    assert largest_x0(clf, threshold="off") > 2 and largest_x0() > 2
    assert largest_x0(clf, classifier_scale=0.0) > 2
    assert threshold_kind(SampleConfig(threshold="dynamic"), guided=True) == "dynamic"
    assert threshold_kind(SampleConfig(), guided=False) is None


def test_threshold_off_from_the_command_line_and_the_config():
    """`--threshold off` and `sample.threshold=off` (YAML 1.1 reads a bare off as false) both
    give "off", which overrides the classifier-guidance default; no flag keeps the recipe's."""

    def threshold(flags, recipe=None):
        args = build_parser().parse_args(["sample", "RUN", "--out", "s.npz", *flags])
        return sample_config(args, SampleConfig(threshold=recipe)).threshold

    assert threshold(["--threshold", "off"]) == threshold(["--threshold", "off"], "static") == "off"
    assert threshold([]) is None and threshold([], "dynamic") == "dynamic"
    assert build_config({}, ["sample.threshold=off"]).sample.threshold == "off"
    assert build_config({"sample": {"threshold": False}}).sample.threshold == "off"
