"""`difflab distill RUN [distill.key=value ...] [--dry-run]`: progressive distillation of a
trained run into a new run folder (RUN-distilled beside it) that samples with DDIM at
distill.target_steps steps."""

from __future__ import annotations

import argparse
from pathlib import Path

from difflab.errors import ConfigError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "distill",
        help="progressive distillation of a trained run to fewer sampling steps",
        description="Progressive distillation (Salimans & Ho 2022) of a trained run's EMA model: "
        "halving rounds from distill.teacher_steps DDIM steps to distill.target_steps, e.g. "
        "`difflab distill runs/digits distill.teacher_steps=256 distill.target_steps=4`. The "
        "new run folder samples with DDIM at the student's step count by default.",
    )
    p.add_argument("run", metavar="RUN", help="the teacher's run folder")
    p.add_argument("overrides", nargs="*", metavar="distill.key=value")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings and exit")
    return p


def run(args: argparse.Namespace) -> int:
    from difflab.distillation import build_distill_settings, distill
    from difflab.training.distributed import is_main, shutdown

    settings = build_distill_settings(args.overrides)
    if args.dry_run:
        print(settings.to_yaml(), end="")
        return 0
    if not (Path(args.run) / "config.yaml").is_file():
        raise ConfigError(f"{args.run} is not a difflab run folder (no config.yaml there)")
    finished = False
    try:
        run_dir = distill(args.run, settings.distill)
        finished = True
    finally:
        main = is_main()  # before leaving the process group (torchrun), as `difflab train`
        shutdown(finished)
    if main:
        print(f"run folder: {run_dir}")
    return 0
