"""`difflab distill RUN [distill.key=value ...] [--dry-run]`: progressive distillation of a
trained run into a new run folder (RUN-distilled beside it) that samples with DDIM at
distill.target_steps steps. `difflab distill --resume RUN-distilled` continues one that was
stopped, from its newest complete checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from difflab.cli.train import run_and_report
from difflab.core.errors import ConfigError
from difflab.distillation import build_distill_settings, distill, resume_distill
from difflab.distillation.config import DistillSettings, read_settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "distill",
        help="progressive distillation of a trained run to fewer sampling steps",
        description="Progressive distillation (Salimans & Ho 2022) of a trained run's EMA model: "
        "halving rounds from distill.teacher_steps DDIM steps to distill.target_steps, e.g. "
        "`difflab distill runs/digits distill.teacher_steps=256 distill.target_steps=4`. The "
        "new run folder samples with DDIM at the student's step count by default.",
    )
    p.add_argument("run", nargs="?", metavar="RUN", help="the teacher's run folder")
    p.add_argument("overrides", nargs="*", metavar="distill.key=value")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings and exit")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue the distilled run in this folder with the settings it recorded",
    )
    return p


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        return _resume(args)
    if args.run is None:
        raise ConfigError("expected the teacher's run folder (or --resume RUN-distilled)")
    settings = build_distill_settings(args.overrides)
    if args.dry_run:
        print(settings.to_yaml(), end="")
        return 0
    if not (Path(args.run) / "config.yaml").is_file():
        raise ConfigError(f"{args.run} is not a difflab run folder (no config.yaml there)")
    status, _ = run_and_report(lambda: distill(args.run, settings.distill))
    return status


def _resume(args: argparse.Namespace) -> int:
    """--resume RUN: the recorded settings only (no teacher run, no overrides)."""
    given = [item for item in (args.run, *args.overrides) if item is not None]
    if given:
        raise ConfigError(
            f"--resume continues {args.resume} with the settings it recorded; drop {given[0]!r}"
        )
    _, d = read_settings(Path(args.resume))
    if args.dry_run:
        print(DistillSettings(d).to_yaml(), end="")
        return 0
    status, _ = run_and_report(lambda: resume_distill(args.resume))
    return status
