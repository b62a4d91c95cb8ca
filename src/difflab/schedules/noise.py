"""Variance-preserving forward processes: x_t = alpha(t) * x0 + sigma(t) * eps, with
alpha_bar = alpha^2 = 1 - sigma^2, in float64. Discrete t in [0, T-1] (t = -1: clean data) or
continuous t in [0, 1]: docs/schedules.md."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from difflab.core.errors import ConfigError

ScheduleName = Literal["linear", "scaled-linear", "cosine", "sigmoid"]
SCHEDULE_NAMES: tuple[str, ...] = ("linear", "scaled-linear", "cosine", "sigmoid")

# Continuous schedules keep log-SNR inside this range (except an exact zero-terminal end):
# beyond it alpha or sigma underflow in float32 and the time <-> log-SNR map is flat.
LOGSNR_MIN, LOGSNR_MAX = -20.0, 20.0


class NoiseSchedule:
    """A forward process: alpha(t), sigma(t), logsnr(t) and the inverse t(logsnr)."""

    discrete: bool
    t_min: float  # least-noisy time a network sees
    t_max: float  # most-noisy time; sampling starts here
    t_clean: float  # time of clean data; every sampling grid ends here

    def alpha_bar(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def t_from_alpha_bar(self, alpha_bar: Tensor) -> Tensor:
        raise NotImplementedError

    def alpha(self, t: Tensor) -> Tensor:
        """alpha(t) = sqrt(alpha_bar(t))."""
        return self.alpha_bar(t).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        """sigma(t) = sqrt(1 - alpha_bar(t)) (variance preserving)."""
        return (1.0 - self.alpha_bar(t)).clamp_min(0.0).sqrt()

    def logsnr(self, t: Tensor) -> Tensor:
        """logsnr(t) = log(alpha^2 / sigma^2); +inf at clean data, -inf at zero terminal SNR."""
        ab = self.alpha_bar(t)
        return ab.log() - (1.0 - ab).log()

    def t_from_logsnr(self, logsnr: Tensor) -> Tensor:
        """Inverse of logsnr(t): alpha_bar = sigmoid(logsnr)."""
        return self.t_from_alpha_bar(torch.sigmoid(torch.as_tensor(logsnr, dtype=torch.float64)))

    def network_time(self, t: Tensor) -> Tensor:
        """The time value fed to a network: the timestep index, or 1000 * t in continuous time."""
        raise NotImplementedError

    def sample_training_t(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Training noise levels: uniform over timesteps (discrete) or over [0, 1] (continuous)."""
        raise NotImplementedError

    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """x_t = alpha(t) x0 + sigma(t) eps (Ho et al. 2020, eq. 4), t of shape [N]."""
        shape = (-1,) + (1,) * (x0.ndim - 1)
        alpha = self.alpha(t).to(x0.dtype).view(shape)
        sigma = self.sigma(t).to(x0.dtype).view(shape)
        return alpha * x0 + sigma * eps


# ----------------------------------------------------------------------------------------
# Discrete time (T timesteps)


class DiscreteSchedule(NoiseSchedule):
    """T timesteps with a table of alpha_bar; t = -1 is clean data (alpha_bar = 1)."""

    discrete = True
    t_clean = -1.0

    def __init__(self, alphas_cumprod: Tensor) -> None:
        ab = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        if ab.ndim != 1 or len(ab) < 2:
            raise ConfigError("alphas_cumprod must be a 1-D table of at least 2 timesteps")
        if (ab[1:] > ab[:-1]).any() or ab.max() > 1 or ab.min() < 0:
            raise ConfigError("alphas_cumprod must decrease within [0, 1]")
        self.num_steps = len(ab)
        self.t_min, self.t_max = 0.0, float(self.num_steps - 1)
        # table[k] = alpha_bar at t = k - 1, so that t = -1 (clean) is table[0] = 1.
        self._table = torch.cat([torch.ones(1, dtype=torch.float64), ab])
        self._tables: dict[torch.device, Tensor] = {self._table.device: self._table}

    @property
    def alphas_cumprod(self) -> Tensor:
        return self._table[1:]

    def _table_on(self, device: torch.device) -> Tensor:
        """The table on `device`, copied there once: a host-to-device copy on every call would
        make every call a host synchronisation."""
        if device not in self._tables:
            self._tables[device] = self._table.to(device)
        return self._tables[device]

    def alpha_bar(self, t: Tensor) -> Tensor:
        pos = (torch.as_tensor(t, dtype=torch.float64) + 1.0).clamp(0.0, float(self.num_steps))
        table = self._table_on(pos.device)
        lo = pos.floor().long().clamp(max=self.num_steps - 1)
        frac = pos - lo
        return table[lo] * (1 - frac) + table[lo + 1] * frac

    def t_from_alpha_bar(self, alpha_bar: Tensor) -> Tensor:
        target = torch.as_tensor(alpha_bar, dtype=torch.float64)
        table = self._table_on(target.device)
        # The table decreases; searchsorted needs an increasing sequence.
        rev = table.flip(0)
        hi_rev = torch.searchsorted(rev, target.contiguous()).clamp(1, len(rev) - 1)
        lo_rev = hi_rev - 1
        a, b = rev[lo_rev], rev[hi_rev]
        frac = torch.where(b > a, (target - a) / (b - a), torch.zeros_like(target))
        pos_rev = lo_rev + frac.clamp(0, 1)
        return (len(rev) - 1 - pos_rev) - 1.0

    def network_time(self, t: Tensor) -> Tensor:
        return t.to(torch.float32)

    def sample_training_t(self, n, *, generator=None, device="cpu"):
        return torch.randint(0, self.num_steps, (n,), generator=generator, device=device).double()


def betas_for_alpha_bar(fn: Callable[[Tensor], Tensor], steps: int, max_beta=0.999) -> Tensor:
    """beta_i = min(1 - fn((i+1)/T) / fn(i/T), max_beta) (Nichol & Dhariwal 2021, eq. 17)."""
    u = torch.arange(steps + 1, dtype=torch.float64) / steps
    ab = fn(u)
    return (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)


def discrete_alphas_cumprod(name: str, steps: int) -> Tensor:
    """alpha_bar table of a named schedule with T = steps."""
    if name == "linear":  # Ho et al. 2020, scaled so that beta_T / beta_1 matches T = 1000
        scale = 1000 / steps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    elif name == "scaled-linear":  # Stable Diffusion v1: sqrt(beta) linear in t
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, steps, dtype=torch.float64) ** 2
    elif name == "cosine":
        betas = betas_for_alpha_bar(cosine_alpha_bar, steps)
    elif name == "sigmoid":
        betas = betas_for_alpha_bar(sigmoid_alpha_bar, steps)
    else:
        raise ConfigError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULE_NAMES)}")
    return torch.cumprod(1 - betas, dim=0)


# ----------------------------------------------------------------------------------------
# Continuous time, t in [0, 1]


def cosine_alpha_bar(t: Tensor, s: float = 0.008) -> Tensor:
    """alpha_bar(t) = cos^2((t + s) / (1 + s) * pi / 2) / cos^2(s / (1 + s) * pi / 2)
    (Nichol & Dhariwal 2021, eq. 17)."""
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (f / math.cos(s / (1 + s) * math.pi / 2) ** 2).clamp(0.0, 1.0)


def sigmoid_alpha_bar(t: Tensor, start=-3.0, end=3.0, tau=1.0) -> Tensor:
    """alpha_bar(t) = (sigmoid(end/tau) - sigmoid((t (end - start) + start) / tau))
    / (sigmoid(end/tau) - sigmoid(start/tau)) (Jabri et al. 2022, Algorithm 1)."""
    v_start, v_end = _sigmoid(start / tau), _sigmoid(end / tau)  # Python floats: float64
    v = torch.sigmoid((t * (end - start) + start) / tau)
    return ((v_end - v) / (v_end - v_start)).clamp(0.0, 1.0)


def linear_alpha_bar(t: Tensor, beta_0=0.1, beta_1=20.0) -> Tensor:
    """alpha_bar(t) = exp(-(beta_0 t + (beta_1 - beta_0) t^2 / 2)) (VP SDE; Song et al. 2021)."""
    return torch.exp(-(beta_0 * t + 0.5 * (beta_1 - beta_0) * t**2))


def scaled_linear_alpha_bar(t: Tensor, b0=0.00085**0.5, b1=0.012**0.5, steps=1000) -> Tensor:
    """alpha_bar(t) = exp(-T * integral_0^t (b0 + (b1 - b0) u)^2 du): continuous SD schedule."""
    return torch.exp(-steps * ((b0 + (b1 - b0) * t) ** 3 - b0**3) / (3 * (b1 - b0)))


CONTINUOUS_ALPHA_BAR: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": linear_alpha_bar,
    "scaled-linear": scaled_linear_alpha_bar,
    "cosine": cosine_alpha_bar,
    "sigmoid": sigmoid_alpha_bar,
}


class ContinuousSchedule(NoiseSchedule):
    """t in [0, 1] with alpha_bar given by a function; log-SNR kept in [-20, 20]
    unless the schedule ends exactly at zero SNR."""

    discrete = False
    t_min, t_max, t_clean = 0.0, 1.0, 0.0

    def __init__(self, fn: Callable[[Tensor], Tensor], *, zero_terminal: bool = False) -> None:
        self._fn = fn
        self.zero_terminal = zero_terminal
        self._ab_min = 0.0 if zero_terminal else _sigmoid(LOGSNR_MIN)
        self._ab_max = _sigmoid(LOGSNR_MAX)

    def alpha_bar(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0.0, 1.0)
        return self._fn(t).clamp(self._ab_min, self._ab_max)

    def t_from_alpha_bar(self, alpha_bar: Tensor) -> Tensor:
        """Bisection on the decreasing alpha_bar(t): 60 halvings reach float64 resolution."""
        target = torch.as_tensor(alpha_bar, dtype=torch.float64)
        lo, hi = torch.zeros_like(target), torch.ones_like(target)
        for _ in range(60):
            mid = (lo + hi) / 2
            above = self.alpha_bar(mid) > target
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        return (lo + hi) / 2

    def network_time(self, t: Tensor) -> Tensor:
        return (t * 1000.0).to(torch.float32)

    def sample_training_t(self, n, *, generator=None, device="cpu"):
        return torch.rand(n, generator=generator, device=device, dtype=torch.float64)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ----------------------------------------------------------------------------------------
# Zero terminal SNR (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
# Flawed", Algorithm 1): shift and scale sqrt(alpha_bar) so that it ends at exactly 0 and
# keeps its first value.


def rescale_zero_terminal_snr(alpha_sqrt: Tensor, first: Tensor, last: Tensor) -> Tensor:
    """alpha' = (alpha - alpha_T) * alpha_0 / (alpha_0 - alpha_T)."""
    return (alpha_sqrt - last) * first / (first - last)


def make_schedule(
    name: str, *, num_steps: int | None = 1000, zero_terminal_snr: bool = False
) -> NoiseSchedule:
    """A named schedule; num_steps=None gives continuous time (docs/schedules.md)."""
    if name not in SCHEDULE_NAMES:
        raise ConfigError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULE_NAMES)}")
    if num_steps is not None:
        if num_steps < 2:
            raise ConfigError(f"num_steps must be at least 2, got {num_steps}")
        ab = discrete_alphas_cumprod(name, num_steps)
        if zero_terminal_snr:
            a = ab.sqrt()
            ab = rescale_zero_terminal_snr(a, a[0], a[-1]) ** 2
        return DiscreteSchedule(ab)
    fn = CONTINUOUS_ALPHA_BAR[name]
    if zero_terminal_snr:
        first = fn(torch.zeros((), dtype=torch.float64)).sqrt()
        last = fn(torch.ones((), dtype=torch.float64)).sqrt()
        base = fn

        def fn(t: Tensor) -> Tensor:
            return rescale_zero_terminal_snr(base(t).sqrt(), first, last).clamp_min(0) ** 2

    return ContinuousSchedule(fn, zero_terminal=zero_terminal_snr)
