"""Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis",
sec. 4 and Algorithm 2): a wrapper of a denoise function, so it composes with classifier-free
guidance (wrap the CFG denoise function)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from difflab.parameterization.prediction import DenoiseFn, Prediction
from difflab.schedules.noise import NoiseSchedule

# classifier(x_t [N, ...], t_net [N]) -> logits [N, K], t_net = schedule.network_time(t).
Classifier = Callable[[Tensor, Tensor], Tensor]


def log_prob_grad(classifier: Classifier, x_t: Tensor, t_net: Tensor, labels: Tensor) -> Tensor:
    """grad_x log p(y | x_t, t) of each sample's own label, computed with gradients on even
    under torch.no_grad (sampling), and detached from the caller's graph."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        log_p = torch.log_softmax(classifier(x, t_net).float(), dim=-1)  # [N, K]
        chosen = log_p.gather(1, labels.view(-1, 1).to(log_p.device)).sum()
        (grad,) = torch.autograd.grad(chosen, x)
    return grad


def classifier_guidance(
    denoise: DenoiseFn,
    classifier: Classifier,
    labels: Tensor,
    *,
    scale: float,
    schedule: NoiseSchedule,
) -> DenoiseFn:
    """eps <- eps - scale * sigma * grad_x log p(y | x_t, t) (Dhariwal & Nichol 2021, eq. 14 and
    Algorithm 2), with x0 moved consistently: x0 <- x0 + scale * sigma^2 / alpha * grad.
    With scale 1 and an exact classifier this is exactly the conditional denoiser (Bayes:
    grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t)); scale 0 is no guidance.
    Where alpha = 0 (zero terminal SNR) x_t carries no information about y and the prediction
    is left unguided."""

    def denoise_guided(x_t: Tensor, t: Tensor) -> Prediction:
        pred = denoise(x_t, t)
        t = t.to(x_t.device).expand(x_t.shape[0])  # [N]
        grad = log_prob_grad(classifier, x_t, schedule.network_time(t), labels)
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        alpha, sigma = schedule.alpha(t).float().view(shape), schedule.sigma(t).float().view(shape)
        informative = alpha > 0
        safe_alpha = torch.where(informative, alpha, torch.ones_like(alpha))
        eps = pred.eps - scale * sigma * grad
        x0 = pred.x0 + scale * sigma**2 / safe_alpha * grad
        return Prediction(
            x0=torch.where(informative, x0, pred.x0), eps=torch.where(informative, eps, pred.eps)
        )

    return denoise_guided
