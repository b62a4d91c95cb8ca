"""EMA snapshots for post-hoc EMA: `RUN/ema-snapshots/step-NNNNNN.safetensors` holds the
power-function EMA's weights after `averaged` steps, its exponent gamma in the file's metadata
(`training/posthoc_ema.py` combines them); a network with a declared frozen part's are slim,
its record in the metadata too (runs/frozen.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from difflab.core.errors import CheckpointError
from difflab.core.file_modes import respect_umask
from difflab.runs.files import write_atomic
from difflab.runs.frozen import FROZEN_KEY

SNAPSHOTS = "ema-snapshots"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    averaged: int  # optimizer steps averaged (1-based: step - train.ema_start + 1)
    gamma: float  # the power-function profile's exponent
    frozen: dict[str, str] = field(default_factory=dict)  # runs/frozen.py's record, if slim


def write_snapshot(
    run_dir: Path,
    step: int,
    tensors: dict[str, Tensor],
    *,
    averaged: int,
    gamma: float,
    frozen: dict[str, str] | None = None,
) -> Path:
    """The snapshot after optimizer step `step`, written atomically; frozen: slim_state's
    metadata for slim tensors."""
    path = Path(run_dir) / SNAPSHOTS / f"step-{step:06d}.safetensors"
    metadata = {**(frozen or {}), "averaged_steps": str(averaged), "gamma": repr(float(gamma))}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    respect_umask(path)
    return path


def list_snapshots(run_dir: Path | str) -> list[Snapshot]:
    """The run's snapshots, oldest first; CheckpointError naming a file that is not one."""
    snapshots = []
    for path in sorted((Path(run_dir) / SNAPSHOTS).glob("step-*.safetensors")):
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            frozen = {k: v for k, v in meta.items() if k == FROZEN_KEY}
            averaged, gamma = int(meta["averaged_steps"]), float(meta["gamma"])
            snapshots.append(Snapshot(path, averaged, gamma, frozen))
        except (OSError, SafetensorError, KeyError, ValueError) as err:
            raise CheckpointError(f"{path} is not an EMA snapshot: {err}") from None
    return snapshots


def load_snapshot(snapshot: Snapshot) -> dict[str, Tensor]:
    return load_file(str(snapshot.path))
