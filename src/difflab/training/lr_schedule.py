"""Learning-rate schedules as pure functions of the step: the factor that multiplies train.lr.

Each has a linear warm-up over `warmup` steps, (step + 1) / warmup, so the first step already
moves the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from difflab.core.errors import ConfigError

LrSchedule = Callable[[int, int, int], float]

ONE_CYCLE_START = 1 / 25  # one-cycle starts (and warms up from) lr / 25 (Smith 2018)


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


def one_cycle(step: int, total: int, warmup: int) -> float:
    """Linear rise from 1/25 to 1 over `warmup` steps (30% of training when warmup is 0),
    then cosine annealing to 0 (Smith & Topin 2018)."""
    rise = warmup if warmup > 0 else max(1, int(0.3 * total))
    if step < rise:
        return ONE_CYCLE_START + (1 - ONE_CYCLE_START) * step / rise
    return cosine(step - rise, total - rise, 0)


LR_SCHEDULES: dict[str, LrSchedule] = {
    "constant": constant,
    "cosine": cosine,
    "one-cycle": one_cycle,
}


def lr_factor(name: str, step: int, total: int, warmup: int) -> float:
    if name not in LR_SCHEDULES:
        raise ConfigError(f"unknown lr_schedule {name!r}; expected one of {list(LR_SCHEDULES)}")
    return LR_SCHEDULES[name](step, total, warmup)
