"""Distillation of a trained run into a sampler of fewer steps: progressive distillation
(Salimans & Ho 2022)."""

from difflab.distillation.config import (
    DistillConfig,
    DistillSettings,
    build_distill_settings,
    student_steps,
)
from difflab.distillation.loss import DistillationLoss
from difflab.distillation.progressive import distill, resume_distill, round_grids
from difflab.distillation.target import distillation_target, target_eps

__all__ = [
    "DistillConfig",
    "DistillSettings",
    "DistillationLoss",
    "build_distill_settings",
    "distill",
    "distillation_target",
    "resume_distill",
    "round_grids",
    "student_steps",
    "target_eps",
]
