"""What every sampler shares: the grid, per-sample noise, the registry. A sampler is
`sampler(denoise, x, grid, *, generator=None, callback=None, **options) -> x0` over the grid's
explicit times t_0 > ... > t_S = clean, with no state between calls (docs/samplers.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.core.registry import Registry
from difflab.parameterization.prediction import DenoiseFn, Prediction
from difflab.schedules.noise import NoiseSchedule

# callback(step index, t, x after the step, prediction used for the step)
StepCallback = Callable[[int, Tensor, Tensor, Prediction], None]


@dataclass(frozen=True)
class SamplingGrid:
    """Times t_0 > t_1 > ... > t_S (float64) with alpha and sigma at each, and the schedule
    they come from, for samplers that visit times between grid points (DPM-Solver++(2S),
    Euler/Heun churn): `at_logsnr` gives such a time."""

    t: Tensor
    alpha: Tensor
    sigma: Tensor
    schedule: NoiseSchedule

    @classmethod
    def build(cls, schedule: NoiseSchedule, times: Tensor) -> SamplingGrid:
        times = torch.as_tensor(times, dtype=torch.float64)
        if times.ndim != 1 or len(times) < 2 or (times[1:] >= times[:-1]).any():
            raise ConfigError(f"grid times must decrease, at least 2 of them; got {times.tolist()}")
        alpha, sigma = schedule.alpha(times), schedule.sigma(times)
        return cls(t=times, alpha=alpha, sigma=sigma, schedule=schedule)

    @property
    def steps(self) -> int:
        return len(self.t) - 1

    @property
    def logsnr(self) -> Tensor:
        """lambda = log(alpha^2 / sigma^2): +inf at clean data."""
        return 2 * (self.alpha.log() - self.sigma.log())

    def pairs(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        """(i, t_i, t_{i+1}) for each step."""
        for i in range(self.steps):
            yield i, self.t[i], self.t[i + 1]

    def alpha_sigma(self, i: int) -> tuple[float, float]:
        """(alpha_i, sigma_i) as Python floats."""
        return float(self.alpha[i]), float(self.sigma[i])

    def at_logsnr(self, logsnr: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
        """(t, alpha, sigma) of the schedule's times with these log-SNRs (float64, vectorised).
        alpha and sigma are those of the t found, consistent where the schedule clamps."""
        t = self.schedule.t_from_logsnr(torch.as_tensor(logsnr, dtype=torch.float64))
        return t, self.schedule.alpha(t), self.schedule.sigma(t)


class StackedGenerator:
    """One torch.Generator per sample, so a sample depends on its seed alone, not on the batch
    it is drawn in (EDM's StackedRandomGenerator idea)."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]

    def randn(self, shape: Sequence[int], *, device, dtype=torch.float32) -> Tensor:
        if shape[0] != len(self.generators):
            raise ValueError(f"batch of {shape[0]} for {len(self.generators)} per-sample seeds")
        return torch.stack(
            [
                torch.randn(shape[1:], generator=g, device=device, dtype=dtype)
                for g in self.generators
            ]
        )


Generator = torch.Generator | StackedGenerator


def randn_like(x: Tensor, generator: Generator | None) -> Tensor:
    """Standard normal noise shaped like x, drawn from the injected generator."""
    if isinstance(generator, StackedGenerator):
        return generator.randn(x.shape, device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class Sampler(Protocol):
    def __call__(
        self,
        denoise: DenoiseFn,
        x: Tensor,
        grid: SamplingGrid,
        *,
        generator: Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor: ...


SAMPLERS: Registry[Sampler] = Registry("sampler")
