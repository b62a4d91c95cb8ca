"""A diffusers scheduler config (scheduler/scheduler_config.json) read into difflab's terms.

The forward process becomes one of difflab's named schedules and the prediction type its
parameterization; a setting difflab cannot reproduce is refused, naming the key. SD v1 is the
"scaled-linear" schedule: sqrt(beta) linear from sqrt(0.00085) to sqrt(0.012) over 1000 steps.

Sampling grids: diffusers' DDIMScheduler visits its timesteps and then steps to
`final_alpha_cumprod`, which is alpha_bar at t = 0 when `set_alpha_to_one` is false (SD v1's
configs), not clean data. `diffusers_ddim_times` is that grid made explicit: its timesteps,
then t = 0 (or t = -1, clean, with set_alpha_to_one). difflab's own uniform grids end at
clean data; the two differ only in the last step (x0 itself against x0 noised to t = 0).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion.folder import (
    SCHEDULER_FILE,
    component_folder,
    pipeline_folder,
    read_json,
)
from difflab.parameterization.prediction import Parameterization
from difflab.schedules import NoiseSchedule, discrete_timesteps, make_schedule
from difflab.schedules.grids import Spacing
from difflab.schedules.noise import ScheduleName

PREDICTION_TYPES: dict[str, Parameterization] = {"epsilon": "eps", "v_prediction": "v"}
SPACINGS: tuple[Spacing, ...] = ("leading", "trailing", "linspace")
# beta_schedule -> (difflab schedule, (beta_start, beta_end) it fixes for T = 1000, or None)
BETA_SCHEDULES: dict[str, tuple[ScheduleName, tuple[float, float] | None]] = {
    "scaled_linear": ("scaled-linear", (0.00085, 0.012)),
    "linear": ("linear", (1e-4, 0.02)),
    "squaredcos_cap_v2": ("cosine", None),
}


@dataclass(frozen=True)
class SchedulerSettings:
    """The parts of a diffusers scheduler config that difflab reproduces."""

    schedule: ScheduleName
    num_steps: int
    zero_terminal_snr: bool
    parameterization: Parameterization
    spacing: Spacing
    steps_offset: int
    set_alpha_to_one: bool

    def make_schedule(self) -> NoiseSchedule:
        return make_schedule(
            self.schedule, num_steps=self.num_steps, zero_terminal_snr=self.zero_terminal_snr
        )


def read_scheduler(path: str | Path) -> SchedulerSettings:
    """The scheduler settings of a pipeline folder (scheduler/scheduler_config.json)."""
    file = component_folder(pipeline_folder(path), "scheduler", (SCHEDULER_FILE,)) / SCHEDULER_FILE
    return scheduler_settings(read_json(file), source=str(file))


def write_prediction_type(scheduler_folder: Path, parameterization: Parameterization) -> None:
    """Set the prediction_type of a copied scheduler/scheduler_config.json to the one that
    diffusers names `parameterization` (a run trained with model.override_prediction_type)."""
    file = scheduler_folder / SCHEDULER_FILE
    names = {ours: theirs for theirs, ours in PREDICTION_TYPES.items()}
    if parameterization not in names:
        raise ConfigError(
            f"diffusers has no prediction_type for parameterization {parameterization!r}"
        )
    config = json.loads(file.read_text())
    file.write_text(json.dumps({**config, "prediction_type": names[parameterization]}, indent=2))


def scheduler_settings(
    config: dict[str, Any], *, source: str = "scheduler config"
) -> SchedulerSettings:
    """SchedulerSettings of a diffusers scheduler config dict; ConfigError naming the key that
    difflab cannot reproduce."""
    T = int(config.get("num_train_timesteps", 1000))
    if config.get("trained_betas") is not None:
        raise _refuse(source, "trained_betas", config["trained_betas"], "null")
    return SchedulerSettings(
        schedule=_schedule_name(config, T, source),
        num_steps=T,
        zero_terminal_snr=bool(config.get("rescale_betas_zero_snr", False)),
        parameterization=_lookup(config, "prediction_type", "epsilon", PREDICTION_TYPES, source),
        spacing=_lookup(config, "timestep_spacing", "leading", {s: s for s in SPACINGS}, source),
        steps_offset=int(config.get("steps_offset", 0)),
        set_alpha_to_one=bool(config.get("set_alpha_to_one", True)),
    )


def _schedule_name(config: dict[str, Any], T: int, source: str) -> ScheduleName:
    """difflab's schedule of the config's beta_schedule, when its betas are difflab's."""
    beta_schedule = config.get("beta_schedule", "linear")
    choices = {k: k for k in BETA_SCHEDULES}
    name, betas = BETA_SCHEDULES[_lookup(config, "beta_schedule", "linear", choices, source)]
    if betas is not None:
        scale = 1000 / T if beta_schedule == "linear" else 1.0
        for key, expected in zip(("beta_start", "beta_end"), betas, strict=True):
            value = float(config.get(key, expected))
            if not math.isclose(value, scale * expected, rel_tol=1e-9):
                raise _refuse(source, key, value, f"{scale * expected:g} for {beta_schedule}")
    return name


def _lookup(config: dict[str, Any], key: str, default: str, table: dict[str, Any], source: str):
    value = config.get(key, default)
    if value not in table:
        raise _refuse(source, key, value, "one of " + ", ".join(table))
    return table[value]


def _refuse(source: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{source}: key '{key}' is {value!r}; difflab reproduces only {expected}")


def diffusers_ddim_times(settings: SchedulerSettings, steps: int) -> Tensor:
    """The explicit grid of diffusers' DDIMScheduler with these settings and `steps` steps:
    its timesteps (difflab's spacing, plus steps_offset for "leading" as diffusers adds it
    there only), then its final alpha_bar's time:
    t = -1 (clean) with set_alpha_to_one, else t = 0. A last timestep already at t = 0 is a
    step that leaves x unchanged (x0 re-noised to its own level), so the grid ends there.

    diffusers steps from t to t - T // steps, which is the next timestep only for "leading"
    spacing (and "trailing" when steps divides T); other spacings are refused."""
    if settings.spacing == "linspace" or (
        settings.spacing == "trailing" and settings.num_steps % steps
    ):
        raise ConfigError(
            f"diffusers' DDIM with timestep_spacing {settings.spacing!r} and {steps} steps does "
            "not step between its own timesteps; difflab does not copy that"
        )
    times = discrete_timesteps(settings.num_steps, steps, settings.spacing)
    if settings.spacing == "leading":
        times = times + settings.steps_offset
    end = -1.0 if settings.set_alpha_to_one else 0.0
    if times[-1] != end:
        times = torch.cat([times, torch.tensor([end], dtype=torch.float64)])
    return times
