"""The denoising loss: E_t,eps [ w(t) |F(x_t, t, c) - target|^2 ] (Ho et al. 2020, eq. 14)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.core.condition import Condition
from difflab.losses.weighting import Weighting, loss_weight
from difflab.parameterization.denoiser import alpha_sigma, working_dtype
from difflab.parameterization.prediction import Parameterization, training_target
from difflab.schedules.noise import NoiseSchedule


@dataclass(frozen=True)
class DenoisingLoss:
    schedule: NoiseSchedule
    parameterization: Parameterization
    weighting: Weighting = "uniform"
    min_snr_gamma: float = 5.0

    def sample_training_t(
        self, n: int, *, generator: torch.Generator | None, device: torch.device | str
    ) -> Tensor:
        """The noise levels t of n training samples: the schedule's training distribution
        (a distillation loss draws from its student's grid instead)."""
        return self.schedule.sample_training_t(n, generator=generator, device=device)

    def per_sample(
        self, network: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, cond: Condition | None
    ) -> Tensor:
        """Weighted squared error of each sample, averaged over its elements ([N])."""
        data_dtype, dtype = x0.dtype, working_dtype(x0)
        alpha, sigma = alpha_sigma(self.schedule, t, x0)
        x0, eps = x0.to(dtype), eps.to(dtype)
        x_t = (alpha * x0 + sigma * eps).to(data_dtype)
        output = network(x_t, self.schedule.network_time(t), cond)
        target = training_target(self.parameterization, x0=x0, eps=eps, alpha=alpha, sigma=sigma)
        err = (output.to(dtype) - target).square().flatten(1).mean(dim=1)
        logsnr = self.schedule.logsnr(t).to(err.device, dtype)
        return err * loss_weight(
            self.weighting, self.parameterization, logsnr, gamma=self.min_snr_gamma
        )

    def __call__(
        self, network: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, cond: Condition | None
    ) -> Tensor:
        return self.per_sample(network, x0, t, eps, cond).mean()
