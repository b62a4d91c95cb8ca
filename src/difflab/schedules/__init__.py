"""Forward processes, sampling grids and training noise levels."""

from difflab.schedules.grids import GRIDS, discrete_timesteps, uniform_grid
from difflab.schedules.noise import (
    SCHEDULE_NAMES,
    ContinuousSchedule,
    DiscreteSchedule,
    NoiseSchedule,
    make_schedule,
)

__all__ = [
    "GRIDS",
    "SCHEDULE_NAMES",
    "ContinuousSchedule",
    "DiscreteSchedule",
    "NoiseSchedule",
    "discrete_timesteps",
    "make_schedule",
    "uniform_grid",
]
