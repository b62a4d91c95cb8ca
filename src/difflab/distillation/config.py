"""Typed settings of `difflab distill`: the one place for their defaults, validated before
anything runs. Overrides are `distill.key=value`; everything else (network, data, precision,
condition dropout) comes from the teacher run's config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from difflab.config.parsing import from_dict, set_override
from difflab.config.recipes import read_yaml
from difflab.core.errors import ConfigError
from difflab.runs.files import write_text_atomic

SETTINGS_FILE = "distill.yaml"  # the distillation settings and teacher run, in the run folder


@dataclass
class DistillConfig:
    """Progressive distillation (Salimans & Ho 2022, Algorithm 2): halving rounds from the
    teacher's DDIM step count down to target_steps."""

    teacher_steps: int = 256  # DDIM steps of the first teacher (2N of round 1)
    target_steps: int = 4  # steps of the last student; teacher_steps / target_steps = 2^k
    steps_per_round: int = 500  # optimizer steps of each halving round
    batch_size: int = 64
    lr: float = 5e-4  # constant within a round
    ema_decay: float = 0.99  # the student's EMA, which becomes the next round's teacher
    teacher_guidance: float = 1.0  # classifier-free guidance inside the target; 1 is none
    seed: int = 0
    log_every: int = 50
    device: Literal["auto", "cpu", "cuda"] = "auto"
    name: str | None = None  # run folder name; None: <teacher run>-distilled beside it


@dataclass
class DistillSettings:
    """The sections `difflab distill` takes overrides for."""

    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)


def build_distill_settings(overrides: list[str] | tuple[str, ...] = ()) -> DistillSettings:
    """Validated settings from `distill.key=value` overrides; ConfigError names the key."""
    merged: dict[str, Any] = {}
    for item in overrides:
        set_override(merged, item)
    settings = from_dict(DistillSettings, merged, prefix="")
    check_distill(settings.distill)
    return settings


def _require(ok: bool, key: str, constraint: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"config key 'distill.{key}' must be {constraint}, got {value!r}")


def check_distill(d: DistillConfig) -> None:
    """Impossible values, each named by its key; the step counts must halve down exactly."""
    for key in ("teacher_steps", "target_steps", "steps_per_round", "batch_size", "log_every"):
        _require(getattr(d, key) >= 1, key, ">= 1", getattr(d, key))
    _require(d.lr > 0, "lr", "> 0", d.lr)
    _require(0 <= d.ema_decay < 1, "ema_decay", "in [0, 1)", d.ema_decay)
    _require(d.teacher_guidance >= 0, "teacher_guidance", ">= 0", d.teacher_guidance)
    ratio, rest = divmod(d.teacher_steps, d.target_steps)
    if d.target_steps >= d.teacher_steps or rest or ratio & (ratio - 1):
        raise ConfigError(
            f"config keys 'distill.teacher_steps' and 'distill.target_steps' must halve down "
            f"exactly (teacher_steps / target_steps = 2, 4, 8, ...), got teacher_steps="
            f"{d.teacher_steps}, target_steps={d.target_steps}"
        )


def student_steps(d: DistillConfig) -> list[int]:
    """The student's step count of each round: teacher_steps / 2, / 4, ..., target_steps."""
    out = [d.teacher_steps // 2]
    while out[-1] > d.target_steps:
        out.append(out[-1] // 2)
    return out


def write_settings(run_dir: Path, teacher_dir: Path, d: DistillConfig) -> None:
    """distill.yaml, written when the distilled run's folder is made: it marks the folder as a
    distillation and holds what `difflab distill --resume` continues with."""
    settings = {"teacher_run": str(teacher_dir), "distill": asdict(d)}
    write_text_atomic(run_dir / SETTINGS_FILE, yaml.safe_dump(settings, sort_keys=False))


def is_distilled(run_dir: Path) -> bool:
    return (run_dir / SETTINGS_FILE).is_file()


def read_settings(run_dir: Path) -> tuple[str, DistillConfig]:
    """(teacher run, validated settings) a distilled run recorded; ConfigError (one line)
    when run_dir is not a distilled run."""
    if not is_distilled(run_dir):
        kind = "a training run" if (run_dir / "config.yaml").is_file() else "no difflab run"
        raise ConfigError(
            f"{run_dir} is not a distilled run (no {SETTINGS_FILE} there; it is {kind}); "
            "`difflab distill --resume` continues a run that `difflab distill` made"
        )
    recorded = read_yaml(run_dir / SETTINGS_FILE)  # ConfigError naming the file
    if not isinstance(recorded.get("distill"), dict):
        raise ConfigError(f"{run_dir / SETTINGS_FILE} holds no 'distill' settings mapping")
    settings = from_dict(DistillSettings, {"distill": recorded.get("distill")}, prefix="")
    check_distill(settings.distill)
    return str(recorded.get("teacher_run")), settings.distill
