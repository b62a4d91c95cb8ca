"""From the `sample` config section to a sampler call: the sampler's keyword options and the
grid's times.

Each sampler declares its own options as keyword-only parameters (eta, s_churn, ...), so the
valid names are read from its signature and an unknown one is an error naming the sampler and
listing its options. `eta` is the one shared setting: it goes to samplers that take it.
"""

from __future__ import annotations

import inspect
import math
from typing import Protocol

from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.samplers.base import SAMPLERS
from difflab.schedules import GRIDS
from difflab.schedules.noise import NoiseSchedule


class SamplingSettings(Protocol):
    """The sampling settings read here; config.schema.SampleConfig is one."""

    sampler: str
    eta: float
    sampler_options: dict[str, float]
    grid: str
    steps: int
    spacing: str
    rho: float
    sigma_max: float | None


NOT_OPTIONS = ("generator", "callback")  # keywords every sampler takes, set by the caller


def keyword_options(fn) -> list[str]:
    """Names of a sampler's or grid's keyword-only options."""
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in NOT_OPTIONS]


def sampler_kwargs(sample: SamplingSettings) -> dict[str, float]:
    """The keyword options of sample.sampler: eta where it takes one, then sampler_options."""
    known = keyword_options(SAMPLERS.get(sample.sampler))
    out = {"eta": sample.eta} if "eta" in known else {}
    for key, value in sample.sampler_options.items():
        if key not in known:
            listed = ", ".join(known) if known else "none"
            raise ConfigError(
                f"sampler {sample.sampler!r} has no option {key!r}; its options: {listed}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ConfigError(f"sampler option {key!r} must be a number, got {value!r}")
        out[key] = float(value)
    return out


def grid_times(schedule: NoiseSchedule, sample: SamplingSettings) -> Tensor:
    """The grid sample.grid with sample.steps steps; `spacing` goes to grids that take it
    (uniform), `rho` and `sigma_max` to those that take them (karras)."""
    make = GRIDS.get(sample.grid)
    known = keyword_options(make)
    given = {"spacing": sample.spacing, "rho": sample.rho, "sigma_max": sample.sigma_max}
    return make(schedule, sample.steps, **{k: v for k, v in given.items() if k in known})
