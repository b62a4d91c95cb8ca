"""Atomic checkpoints: run/checkpoints/step-000500/ with model.safetensors, ema.safetensors,
state.pt and a COMPLETE marker written last.

A checkpoint is written into a temporary sibling folder, every file fsynced, then renamed into
place; COMPLETE holds a JSON manifest of the sha256 of every other file. Only folders with a
valid marker count, so a save killed half-way is ignored, and older checkpoints are deleted
only after the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from difflab.errors import CheckpointError

MARKER = "COMPLETE"
FILES = ("model.safetensors", "ema.safetensors", "state.pt")
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def save_checkpoint(
    folder: Path,
    step: int,
    *,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step` under folder atomically; keep the newest `keep` complete ones."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}"
    tmp = folder / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_contiguous(model), tmp / "model.safetensors")
    save_file(_contiguous(ema), tmp / "ema.safetensors")
    torch.save({**state, "step": step}, tmp / "state.pt")
    for name in FILES:
        _fsync(tmp / name)
    manifest = {name: _sha256(tmp / name) for name in FILES}
    (tmp / MARKER).write_text(json.dumps({"step": step, "sha256": manifest}, indent=1))
    _fsync(tmp / MARKER)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync(folder)
    _prune(folder, keep)
    return final


def _prune(folder: Path, keep: int) -> None:
    complete = _complete_steps(folder)
    for path in complete[:-keep]:
        shutil.rmtree(path)


def _complete_steps(folder: Path) -> list[Path]:
    """Checkpoint folders with a marker, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / MARKER).is_file():
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest checkpoint folder of a run that has a marker, or None."""
    complete = _complete_steps(Path(run_dir) / "checkpoints")
    return complete[-1] if complete else None


def _verify(path: Path) -> None:
    try:
        manifest = json.loads((path / MARKER).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(
            f"checkpoint marker {path / MARKER} is missing or unreadable"
        ) from None
    for name, digest in manifest.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(f"checkpoint file {file} is corrupt (sha256 mismatch)")


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(file)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"cannot read checkpoint file {file}: {err}") from None


def load_checkpoint(path: Path | str, *, with_state: bool = True) -> Checkpoint:
    """Load a checkpoint folder after checking its manifest; CheckpointError names the file."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    _verify(path)
    state: dict[str, Any] = {}
    if with_state:
        try:
            state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a bad pickle
            raise CheckpointError(
                f"cannot read checkpoint file {path / 'state.pt'}: {err}"
            ) from None
    return Checkpoint(
        path=path,
        model=_load_tensors(path / "model.safetensors"),
        ema=_load_tensors(path / "ema.safetensors"),
        state=state,
    )
