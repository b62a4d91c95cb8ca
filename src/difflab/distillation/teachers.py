"""The teacher of each distillation round on disk: run/teachers/round-R.safetensors (R from 1),
the student's weights at the round's start, written atomically when the round starts. A resumed
round reads its teacher from here, exactly as the uninterrupted run had it, whatever checkpoints
were pruned since; safetensors holds tensors only, so loading one runs no code."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from difflab.core.errors import CheckpointError
from difflab.core.file_modes import respect_umask
from difflab.runs.checkpoint import fsync

FOLDER = "teachers"


def teacher_file(run_dir: Path, r: int) -> Path:
    """The file of round r's teacher (r 0-based; the file is named from 1)."""
    return run_dir / FOLDER / f"round-{r + 1}.safetensors"


def save_teacher(run_dir: Path, r: int, weights: dict[str, torch.Tensor]) -> Path:
    """Write round r's teacher: into a temporary file, fsynced, renamed into place."""
    final = teacher_file(run_dir, r)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}")
    tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    try:
        save_file(tensors, tmp)
        respect_umask(tmp)
        fsync(tmp)
        os.replace(tmp, final)
        fsync(final.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write teacher {final}: {err.strerror or err}") from None
    return final


def load_teacher(run_dir: Path, r: int) -> dict[str, torch.Tensor]:
    """Round r's teacher weights; CheckpointError naming the file when it is missing or bad."""
    file = teacher_file(run_dir, r)
    try:
        return load_file(file)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"cannot read round {r + 1}'s teacher {file}: {err}") from None
