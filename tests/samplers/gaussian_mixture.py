"""An exact denoiser and classifier for data from a Gaussian mixture, to test samplers against.

Data x0 ~ sum_k w_k N(mu_k, diag(s_k^2)). Under x_t = alpha x0 + sigma eps each component stays
Gaussian, x_t | k ~ N(alpha mu_k, diag(alpha^2 s_k^2 + sigma^2)), so everything is closed form:

    r_k(x_t)          = w_k N(x_t; alpha mu_k, alpha^2 s_k^2 + sigma^2) / sum_j (same for j)
                        (= p(k | x_t), the exact classifier)
    E[x0 | x_t, k]    = mu_k + alpha s_k^2 / (alpha^2 s_k^2 + sigma^2) (x_t - alpha mu_k)
    E[x0 | x_t]       = sum_k r_k(x_t) E[x0 | x_t, k]      (the exact denoiser)
    eps_hat           = (x_t - alpha E[x0 | x_t]) / sigma

(the same construction as the toy example of Karras et al. 2024, NVlabs/edm2 toy_example.py).
Arithmetic runs in float64; predictions are returned in x_t's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.parameterization import Prediction, training_target
from difflab.schedules import NoiseSchedule


@dataclass(frozen=True)
class GaussianMixture:
    weights: Tensor  # [K], summing to 1
    means: Tensor  # [K, D]
    stds: Tensor  # [K, D]

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(x0 [n, D] float32, component index [n])."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k] * z).float(), k

    def log_joint(self, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """log w_k + log N(x_t; alpha mu_k, alpha^2 s_k^2 + sigma^2), [N, K]; alpha, sigma [N]."""
        a, s = alpha.view(-1, 1, 1), sigma.view(-1, 1, 1)
        var = a**2 * self.stds**2 + s**2  # [N, K, D]
        diff = x_t.double().unsqueeze(1) - a * self.means  # [N, K, D]
        log_n = -0.5 * (diff**2 / var + var.log() + math.log(2 * math.pi)).sum(-1)
        return self.weights.log() + log_n

    def posterior_mean(self, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """E[x0 | x_t] = sum_k r_k E[x0 | x_t, k], float64 [N, D]."""
        r = torch.softmax(self.log_joint(x_t, alpha, sigma), dim=1).unsqueeze(-1)  # [N, K, 1]
        a, s = alpha.view(-1, 1, 1), sigma.view(-1, 1, 1)
        gain = a * self.stds**2 / (a**2 * self.stds**2 + s**2)  # [N, K, D]
        mean_k = self.means + gain * (x_t.double().unsqueeze(1) - a * self.means)
        return (r * mean_k).sum(1)

    def denoiser(self, schedule: NoiseSchedule):
        """The exact denoise(x_t, t) -> Prediction for this schedule."""

        def denoise(x_t: Tensor, t: Tensor) -> Prediction:
            alpha, sigma = _coef(schedule, t, x_t)
            x0 = self.posterior_mean(x_t, alpha, sigma)
            eps = (x_t.double() - alpha.view(-1, 1) * x0) / sigma.view(-1, 1)
            return Prediction(x0=x0.to(x_t.dtype), eps=eps.to(x_t.dtype))

        return denoise

    def classifier(self, schedule: NoiseSchedule):
        """The exact classifier(x_t, t_net) -> logits log p(k | x_t) + const, differentiable."""

        def classify(x_t: Tensor, t_net: Tensor) -> Tensor:
            t = t_net.double() if schedule.discrete else t_net.double() / 1000
            return self.log_joint(x_t, schedule.alpha(t), schedule.sigma(t))

        return classify

    def component_of(self, x0: Tensor) -> Tensor:
        """The most probable component of each clean sample, [N]."""
        ones = torch.ones(len(x0), dtype=torch.float64)
        return self.log_joint(x0, ones, 0 * ones).argmax(1)


def standard_scores(mixture, out):
    """(estimate - truth) / standard error of each statistic of each component k, with n_k
    samples assigned to k: weight n_k / N (SE sqrt(w (1 - w) / N)), per-axis mean (SE s / sqrt(n_k))
    and per-axis std (SE s / sqrt(2 n_k), the Gaussian sample std)."""
    comp = mixture.component_of(out)
    scores = []
    for k, (w, mu, s) in enumerate(zip(mixture.weights, mixture.means, mixture.stds, strict=True)):
        sel = out[comp == k].double()
        n = len(sel)
        scores.append((n / len(out) - w) / (w * (1 - w) / len(out)) ** 0.5)
        scores.extend((sel.mean(0) - mu) / (s / n**0.5))
        scores.extend((sel.std(0) - s) / (s / (2 * n) ** 0.5))
    return torch.stack([torch.as_tensor(z) for z in scores])


def _coef(schedule: NoiseSchedule, t: Tensor, x_t: Tensor) -> tuple[Tensor, Tensor]:
    t = torch.as_tensor(t, dtype=torch.float64).expand(x_t.shape[0])
    return schedule.alpha(t), schedule.sigma(t)


class MixtureNetwork(nn.Module):
    """A "network" net(x, t_net, cond) that outputs the exact eps, x0 or v target, so that
    Denoiser(MixtureNetwork(...), schedule, kind) is the exact denoiser in that
    parameterization. t is recovered from t_net (t_net = t, or 1000 t in continuous time)."""

    def __init__(self, mixture: GaussianMixture, schedule: NoiseSchedule, kind: str) -> None:
        super().__init__()
        self.mixture, self.schedule, self.kind = mixture, schedule, kind

    def forward(self, x: Tensor, t_net: Tensor, cond: object) -> Tensor:
        t = t_net.double() if self.schedule.discrete else t_net.double() / 1000
        alpha, sigma = _coef(self.schedule, t, x)
        x0 = self.mixture.posterior_mean(x, alpha, sigma)
        a, s = alpha.view(-1, 1), sigma.view(-1, 1)
        eps = (x.double() - a * x0) / s
        return training_target(self.kind, x0=x0, eps=eps, alpha=a, sigma=s).float()


def two_dim_mixture() -> GaussianMixture:
    """Three well separated components in 2-D (distinct weights, means and per-axis stds)."""
    return GaussianMixture(
        weights=torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
        means=torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64),
        stds=torch.tensor([[0.3, 0.5], [0.4, 0.3], [0.5, 0.4]], dtype=torch.float64),
    )
