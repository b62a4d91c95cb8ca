"""Progressive distillation as the same loss with a different target (Salimans & Ho 2022,
Algorithm 2): the denoising loss at z_t = alpha_t x0 + sigma_t eps of a data x0, with x0
replaced by the teacher's two-step target x~ and eps by the noise that keeps z_t."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.conditioning import Condition, DenoiseFn, classifier_free_guidance, conditioned
from difflab.conditioning.guidance import ConditionalDenoiser
from difflab.distillation.target import distillation_target, target_eps
from difflab.losses import DenoisingLoss
from difflab.parameterization.denoiser import alpha_sigma


@dataclass(frozen=True, kw_only=True, eq=False)
class DistillationLoss(DenoisingLoss):
    """DenoisingLoss whose x0 and eps come from a frozen teacher.

    teacher_times is the teacher's grid [2N + 1] (float64, t_0 > ... > t_2N = clean); the
    student's grid is every other time, t_0, t_2, ..., t_2N, and training times are its noisy
    times t_0 ... t_{2N-2}, each with t_mid = t_{2i+1} and t_next = t_{2i+2}. The teacher sees
    the (dropped) condition the student sees, so a null label distills the teacher's
    unconditional path; teacher_guidance != 1 applies classifier-free guidance in the target,
    against the null condition (with null_text [1, L, D], the empty prompt's embedding, as the
    null text)."""

    teacher: ConditionalDenoiser
    teacher_times: Tensor
    teacher_guidance: float = 1.0
    null_text: Tensor | None = None

    def sample_training_t(
        self, n: int, *, generator: torch.Generator | None, device: torch.device | str
    ) -> Tensor:
        """n noisy times of the student's grid, uniformly (Algorithm 2: t = i / N)."""
        student = self.teacher_times[:-1:2].to(device)  # [N]
        i = torch.randint(0, len(student), (n,), generator=generator, device=device)
        return student[i]

    def per_sample(
        self, network: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, cond: Condition | None
    ) -> Tensor:
        """The denoising loss of (x~, eps~) at t, from z_t = alpha_t x0 + sigma_t eps; t must be
        times of sample_training_t (they are looked up in the teacher's grid)."""
        alpha, sigma = alpha_sigma(self.schedule, t, x0)
        z_t = alpha * x0.float() + sigma * eps.float()
        times = self.teacher_times.to(t.device)
        k = torch.searchsorted(-times, -t)  # t = times[k], found without a host sync
        with torch.no_grad():
            x_tilde = distillation_target(
                self._teacher_denoise(cond), z_t, t, times[k + 1], times[k + 2], self.schedule
            )
        eps_tilde = target_eps(z_t, x_tilde, alpha, sigma)
        return super().per_sample(network, x_tilde, t, eps_tilde, cond)

    def _teacher_denoise(self, cond: Condition | None) -> DenoiseFn:
        if self.teacher_guidance == 1.0 or cond is None:
            return conditioned(self.teacher, cond)
        null = cond.null(self.null_text)
        return classifier_free_guidance(self.teacher, cond, null, self.teacher_guidance)
