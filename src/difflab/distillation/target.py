"""The progressive distillation target (Salimans & Ho 2022, "Progressive Distillation for Fast
Sampling of Diffusion Models", Algorithm 2): two deterministic DDIM steps of the teacher,
t -> t_mid -> t_next, give z_next; the student's target is the x0 that one DDIM step
t -> t_next of the student must predict to land on that same z_next.
"""

from __future__ import annotations

from torch import Tensor

from difflab.conditioning import DenoiseFn
from difflab.parameterization.denoiser import alpha_sigma
from difflab.samplers.ddim import ddim_step
from difflab.schedules import NoiseSchedule


def distillation_target(
    denoise: DenoiseFn,
    z_t: Tensor,
    t: Tensor,
    t_mid: Tensor,
    t_next: Tensor,
    schedule: NoiseSchedule,
) -> Tensor:
    """x~ = (z_next - (sigma_next / sigma_t) z_t) / (alpha_next - (sigma_next / sigma_t) alpha_t)
    with z_next the teacher's two DDIM steps t -> t_mid -> t_next from z_t (Algorithm 2).

    Times are scalars or [N] (one per sample), t > t_mid > t_next; at a clean t_next
    (sigma_next = 0) the formula is x~ = z_next / alpha_next = z_next. The denominator is never
    0: log-SNR increases from t to t_next, so alpha_next sigma_t > alpha_t sigma_next."""
    alpha, sigma = alpha_sigma(schedule, t, z_t)
    alpha_mid, sigma_mid = alpha_sigma(schedule, t_mid, z_t)
    alpha_next, sigma_next = alpha_sigma(schedule, t_next, z_t)
    z_mid = ddim_step(denoise(z_t, t), alpha_mid, sigma_mid)
    z_next = ddim_step(denoise(z_mid, t_mid), alpha_next, sigma_next)
    ratio = sigma_next / sigma
    return (z_next - ratio * z_t) / (alpha_next - ratio * alpha)


def target_eps(z_t: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """eps = (z_t - alpha_t x0) / sigma_t: the noise that, with x0 = x~, makes
    alpha_t x0 + sigma_t eps = z_t, so the denoising loss sees the teacher's z_t and every
    parameterization's target (eps, x0, v) agrees with x~ (Salimans & Ho 2022, Algorithm 2)."""
    return (z_t - alpha * x0) / sigma
