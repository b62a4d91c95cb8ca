"""Learning-rate schedules as pure functions of the step: the factor that multiplies train.lr
(and, for one-cycle, Adam's beta1), so a resumed run recomputes them from its step alone.

constant and cosine have a linear warm-up over `warmup` steps, (step + 1) / warmup, so the first
step already moves the weights; one-cycle's rise is its own (torch's OneCycleLR).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from difflab.core.errors import ConfigError

LrSchedule = Callable[[int, int, int], float]

# torch.optim.lr_scheduler.OneCycleLR's defaults (Smith & Topin 2018)
ONE_CYCLE_DIV = 25.0  # starts at lr / 25
ONE_CYCLE_FINAL_DIV = 1e4  # ends at (lr / 25) / 1e4
ONE_CYCLE_PCT_START = 0.3  # share of the steps that rise when warmup is 0
ONE_CYCLE_BETA1 = (0.95, 0.85)  # beta1 at the ends and at the peak


def constant(step: int, total: int, warmup: int) -> float:
    """1 after warm-up."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def cosine(step: int, total: int, warmup: int) -> float:
    """Warm-up, then 0.5 (1 + cos(pi p)) with p the fraction of the remaining steps done
    (Loshchilov & Hutter 2017, SGDR without restarts), reaching 0 at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup - 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0)))


def _cos_anneal(start: float, end: float, pct: float) -> float:
    """From `start` (pct 0) to `end` (pct 1) along half a cosine (OneCycleLR's 'cos')."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _one_cycle_phase(step: int, total: int, warmup: int) -> tuple[bool, float]:
    """(rising, pct): OneCycleLR's two phases end at float(pct_start * total) - 1 and at
    total - 1, pct_start = warmup / total (0.3 when warmup is 0). A phase of no length is done."""
    pct_start = warmup / total if warmup > 0 else ONE_CYCLE_PCT_START
    rise_end = float(pct_start * total) - 1
    rising = step <= rise_end
    start, end = (0.0, rise_end) if rising else (rise_end, float(total - 1))
    pct = (step - start) / (end - start) if end > start else 1.0
    return rising, min(pct, 1.0)


def one_cycle(step: int, total: int, warmup: int) -> float:
    """torch.optim.lr_scheduler.OneCycleLR with its defaults (Smith & Topin 2018): cosine from
    1/25 to 1 over `warmup` steps (30% of training when warmup is 0), then cosine to
    1/25/1e4 at the last step."""
    rising, pct = _one_cycle_phase(step, total, warmup)
    initial = 1.0 / ONE_CYCLE_DIV
    if rising:
        return _cos_anneal(initial, 1.0, pct)
    return _cos_anneal(1.0, initial / ONE_CYCLE_FINAL_DIV, pct)


def one_cycle_beta1(step: int, total: int, warmup: int) -> float:
    """OneCycleLR's momentum cycle for Adam: beta1 from 0.95 down to 0.85 while the lr rises,
    back to 0.95 while it falls (cosine)."""
    rising, pct = _one_cycle_phase(step, total, warmup)
    outer, inner = ONE_CYCLE_BETA1
    return _cos_anneal(outer, inner, pct) if rising else _cos_anneal(inner, outer, pct)


LR_SCHEDULES: dict[str, LrSchedule] = {
    "constant": constant,
    "cosine": cosine,
    "one-cycle": one_cycle,
}


def lr_factor(name: str, step: int, total: int, warmup: int) -> float:
    if name not in LR_SCHEDULES:
        raise ConfigError(f"unknown lr_schedule {name!r}; expected one of {list(LR_SCHEDULES)}")
    return LR_SCHEDULES[name](step, total, warmup)


BETA1_SCHEDULES: dict[str, LrSchedule] = {"one-cycle": one_cycle_beta1}


def beta1_at(name: str, step: int, total: int, warmup: int) -> float | None:
    """Adam's beta1 at `step` for a schedule that cycles it, else None (train.betas holds)."""
    schedule = BETA1_SCHEDULES.get(name)
    return None if schedule is None else schedule(step, total, warmup)
