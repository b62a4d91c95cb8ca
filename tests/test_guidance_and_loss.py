import torch

from difflab.conditioning import NULL_LABEL, Condition, classifier_free_guidance, drop_condition
from difflab.losses import DenoisingLoss
from difflab.parameterization import PARAMETERIZATIONS, Denoiser
from difflab.schedules import make_schedule


class LabelNet(torch.nn.Module):
    """Output depends on x, t and the label on every channel."""

    def forward(self, x, t, cond):
        lab = cond.labels.float().view(-1, 1, 1, 1)
        return (
            0.3 * x
            + 0.001 * t.view(-1, 1, 1, 1)
            + 0.1 * lab * torch.arange(x.shape[1]).view(1, -1, 1, 1)
        )


def test_guidance_identities_on_every_channel():
    d = Denoiser(LabelNet(), make_schedule("linear"), "eps")
    x, t = torch.randn(4, 3, 2, 2), torch.tensor(400.0, dtype=torch.float64)
    cond = Condition(labels=torch.tensor([0, 1, 2, 3]))
    null = cond.null()
    assert (null.labels == NULL_LABEL).all()
    c, u = d(x, t, cond), d(x, t, null)
    for scale, want in [(1.0, c), (0.0, u)]:
        got = classifier_free_guidance(d, cond, null, scale)(x, t)
        torch.testing.assert_close(got.eps, want.eps)
    got = classifier_free_guidance(d, cond, null, 3.0)(x, t)
    torch.testing.assert_close(got.eps, u.eps + 3 * (c.eps - u.eps))
    torch.testing.assert_close(got.x0, u.x0 + 3 * (c.x0 - u.x0))


def test_condition_dropout_per_sample():
    cond = Condition(labels=torch.tensor([4, 5, 6]))
    out = drop_condition(cond, torch.tensor([True, False, True]))
    assert out.labels.tolist() == [NULL_LABEL, 5, NULL_LABEL]
    assert cond.labels.tolist() == [4, 5, 6]  # the caller's condition is untouched


class ConstNet(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, t, cond):
        return self.out


def test_min_snr_weight_is_the_same_x0_space_loss():
    """min(SNR, gamma) |x0_hat - x0|^2 for every parameterization (diffusers #5654)."""
    schedule = make_schedule("linear")
    x0, eps = torch.randn(6, 2, 3, 3), torch.randn(6, 2, 3, 3)
    t = torch.tensor([0.0, 10, 100, 400, 800, 999], dtype=torch.float64)
    x0_hat = x0 + 0.1 * torch.randn_like(x0)
    a = schedule.alpha(t).float().view(-1, 1, 1, 1)
    s = schedule.sigma(t).float().view(-1, 1, 1, 1)
    x_t = a * x0 + s * eps
    eps_hat = (x_t - a * x0_hat) / s
    outputs = {"x0": x0_hat, "eps": eps_hat, "v": a * eps_hat - s * x0_hat}
    snr = schedule.logsnr(t).exp().float()
    want = snr.clamp(max=5.0) * (x0_hat - x0).square().flatten(1).mean(1)
    for kind in PARAMETERIZATIONS:
        loss = DenoisingLoss(schedule, kind, "min-snr", 5.0)
        got = loss.per_sample(ConstNet(outputs[kind]), x0, t, eps, None)
        torch.testing.assert_close(got, want, rtol=2e-3, atol=1e-6)
