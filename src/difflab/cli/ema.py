"""`difflab ema RUN --sigma-rel S [S ...]`: post-hoc EMA (EDM2) of a run trained with
train.ema_sigma_rel and train.ema_snapshot_every, for averaging lengths chosen after training."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from difflab.core.errors import ConfigError
from difflab.core.file_modes import respect_umask
from difflab.runs.ema_snapshots import list_snapshots, load_snapshot
from difflab.runs.files import require_run_folder, write_atomic
from difflab.training.posthoc_ema import (
    combine,
    gamma_from_sigma_rel,
    posthoc_coefficients,
    power_profile,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ema",
        help="post-hoc EMA: EMA weights of any averaging length from a run's snapshots",
        description="Combine a run's EMA snapshots (train.ema_sigma_rel with "
        "train.ema_snapshot_every) into the power-function EMA of each --sigma-rel (Karras et "
        "al. 2024), at the last snapshot's step or --step. Writes "
        "RUN/ema-posthoc/step-N-sigma_rel-S.safetensors; sample it with "
        "`difflab sample RUN --weights FILE`.",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--sigma-rel", type=float, nargs="+", required=True, metavar="S")
    p.add_argument("--step", type=int, help="optimizer step of the average (default: last)")
    p.add_argument("--out", help="output folder (default: RUN/ema-posthoc)")
    return p


def run(args: argparse.Namespace) -> int:
    run_dir = require_run_folder(args.run)
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        raise ConfigError(
            f"{run_dir} has no EMA snapshots: train it with train.ema_sigma_rel and "
            "train.ema_snapshot_every"
        )
    gammas = [gamma_from_sigma_rel(s) for s in args.sigma_rel]  # ValueError names the range
    offset = _step_offset(run_dir, snapshots)
    end = snapshots[-1].averaged if args.step is None else args.step - offset
    usable = [s for s in snapshots if s.averaged <= end]
    if end < 1 or not usable:
        raise ConfigError(f"--step {args.step} is before the run's first EMA snapshot")
    states = [load_snapshot(s) for s in usable]
    out = Path(args.out) if args.out else run_dir / "ema-posthoc"
    n = np.arange(1, end + 1)
    frozen = usable[-1].frozen or None  # slim snapshots: their record (runs/frozen.py)
    for sigma_rel, gamma in zip(args.sigma_rel, gammas, strict=True):
        profiles = [(s.averaged, s.gamma) for s in usable]
        x = posthoc_coefficients(profiles, (end, gamma))
        fitted = sum(xi * power_profile(g, k, n) for xi, (k, g) in zip(x, profiles, strict=True))
        wanted = power_profile(gamma, end, n)
        error = np.linalg.norm(fitted - wanted) / np.linalg.norm(wanted)
        path = out / f"step-{end + offset:06d}-sigma_rel-{sigma_rel:.3f}.safetensors"
        tensors = combine(states, x)
        write_atomic(path, lambda tmp, t=tensors: save_file(t, str(tmp), metadata=frozen))
        respect_umask(path)
        print(f"sigma_rel {sigma_rel:.3f}: {len(usable)} snapshots, profile error {error:.2%}")
        print(f"wrote {path}")
    return 0


def _step_offset(run_dir: Path, snapshots: list) -> int:
    """Optimizer step minus averaged steps (train.ema_start), read from a snapshot's name."""
    first = snapshots[0]
    return int(first.path.stem.removeprefix("step-")) - first.averaged
