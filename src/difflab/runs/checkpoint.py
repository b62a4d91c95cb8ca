"""Atomic checkpoints: run/checkpoints/step-000500/ with model.safetensors, ema.safetensors,
state.pt and a COMPLETE sha256 manifest written last; only folders with it count, and loading
runs no code unless trusted. Writing, loading and fallback: docs/runs.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from difflab.core.errors import CheckpointError
from difflab.core.file_modes import respect_umask
from difflab.core.hashing import file_sha256
from difflab.runs.files import WRITE_ERRORS, write_error

MARKER = "COMPLETE"
FILES = ("model.safetensors", "ema.safetensors", "state.pt")
_STEP_DIR = re.compile(r"^step-(\d+)$")
_TMP_PREFIX = ".tmp-"
TRUST_HINT = "pass --trust-checkpoint (trust_checkpoint=True) only if you trust its source"


class Weights(NamedTuple):
    """A weights file's tensors and safetensors metadata (runs/frozen.py's record), and path."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    file: Path


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    state: dict[str, Any]
    # the safetensors metadata of model.safetensors and ema.safetensors (runs/frozen.py's)
    model_meta: dict[str, str] = field(default_factory=dict)
    ema_meta: dict[str, str] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def weights(self, name: Literal["model", "ema"]) -> Weights:
        """model.safetensors' or ema.safetensors' tensors, metadata and path."""
        if name == "model":
            return Weights(self.model, self.model_meta, self.path / "model.safetensors")
        return Weights(self.ema, self.ema_meta, self.path / "ema.safetensors")


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _contiguous(tensors: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    out = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    for name, value in out.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"refusing to save non-finite {what} tensor {name!r}")
    return out


def _write_folder(tmp: Path, step: int, model, ema, state: dict[str, Any], metadata) -> None:
    """All files into tmp, each fsynced, then the manifest marker last."""
    model, ema = _contiguous(model, "model"), _contiguous(ema, "EMA")
    tmp.mkdir()
    save_file(model, tmp / "model.safetensors", metadata=metadata)
    save_file(ema, tmp / "ema.safetensors", metadata=metadata)
    torch.save({**state, "step": step}, tmp / "state.pt")
    respect_umask(tmp / "model.safetensors", tmp / "ema.safetensors")
    for name in FILES:
        fsync(tmp / name)
    manifest = {name: file_sha256(tmp / name) for name in FILES}
    (tmp / MARKER).write_text(json.dumps({"step": step, "sha256": manifest}, indent=1))
    fsync(tmp / MARKER)
    fsync(tmp)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename tmp to final; an existing final (same step saved again) is replaced."""
    old = final.with_name(f"{_TMP_PREFIX}old-{final.name}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    fsync(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    folder: Path,
    step: int,
    *,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write checkpoint `step` under folder atomically; keep the newest `keep` complete ones.
    metadata goes into both weights files (runs/frozen.py's record of a slim checkpoint).
    A failed write (OSError, SafetensorError, torch.save's RuntimeError) removes its temporary
    folder and raises CheckpointError naming the free space; no complete checkpoint changes."""
    final = folder / f"step-{step:06d}"
    tmp = folder / f"{_TMP_PREFIX}{final.name}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{_TMP_PREFIX}*"):  # left by a save that was killed
            shutil.rmtree(stale, ignore_errors=True)
        _write_folder(tmp, step, model, ema, state, metadata)
        _move_into_place(tmp, final)
    except CheckpointError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except WRITE_ERRORS as err:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(folder.parent)
        kept = f"; the newest complete checkpoint {previous} is intact" if previous else ""
        raise CheckpointError(f"{write_error(final, err, 'checkpoint ')}{kept}") from None
    _prune(folder, keep)
    return final


def _prune(folder: Path, keep: int) -> None:
    complete = _complete_steps(folder)
    for path in complete[:-keep]:
        (path / MARKER).unlink()  # first, so a prune cut short leaves no "complete" remains
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


def complete_checkpoints(run_dir: Path | str) -> list[Path]:
    """The checkpoint folders of a run that have a marker, oldest first (not verified)."""
    return _complete_steps(Path(run_dir) / "checkpoints")


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest checkpoint folder of a run that has a marker, or None (not verified)."""
    complete = complete_checkpoints(run_dir)
    return complete[-1] if complete else None


def _verify(path: Path) -> None:
    try:
        manifest = json.loads((path / MARKER).read_text())["sha256"]
        missing = [name for name in FILES if not isinstance(manifest.get(name), str)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointError(
            f"checkpoint marker {path / MARKER} is missing or unreadable"
        ) from None
    if missing:
        raise CheckpointError(f"checkpoint marker {path / MARKER} lists no hash for {missing}")
    for name in FILES:
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing")
        if file_sha256(file) != manifest[name]:
            raise CheckpointError(
                f"checkpoint file {file} is corrupt (sha256 mismatch: truncated or altered)"
            )


def read_weights(file: Path) -> Weights:
    """A safetensors file's tensors and metadata; CheckpointError naming it if unreadable."""
    try:
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
        return Weights(load_file(file), metadata, file)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"cannot read checkpoint file {file}: {err}") from None


def _unsafe_reason(err: Exception) -> str | None:
    """What torch's weights_only loader refused (e.g. "Unsupported global: GLOBAL io.open"),
    or None when the error is damage, not an unsafe pickle."""
    text = str(err)
    if "Weights only load failed" not in text:
        return None
    for line in text.splitlines():
        _, found, reason = line.partition("WeightsUnpickler error:")
        if found:
            return reason.strip().split(" was not", 1)[0].split(". ", 1)[0]
    return "objects other than tensors and plain containers"


def _load_state(file: Path, trust: bool) -> dict[str, Any]:
    """state.pt with weights_only=True; full pickle only when trusted."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        reason = _unsafe_reason(err)
        if reason is None:
            raise CheckpointError(f"cannot read checkpoint file {file}: {err}") from None
        if not trust:
            raise CheckpointError(
                f"checkpoint file {file} needs full pickle to load ({reason}), which can run "
                f"arbitrary code, so it was refused; {TRUST_HINT}"
            ) from None
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint file {file}: {err}") from None


def require_state(ckpt: Checkpoint, keys: tuple[str, ...]) -> None:
    """CheckpointError naming state.pt and the first of keys it lacks (a hand-edited file)."""
    missing = next((key for key in keys if key not in ckpt.state), None)
    if missing is not None:
        raise CheckpointError(f"checkpoint file {ckpt.path / 'state.pt'} has no {missing!r} entry")


def check_shapes(
    model: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    file: Path,
    frozen: frozenset[str] = frozenset(),
) -> None:
    """CheckpointError naming file and the first tensor that the model and the checkpoint do
    not share with one shape (a sharded model's tensors count at their full shape); names in
    `frozen` may be absent (a slim checkpoint's, runs/frozen.py)."""
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    for name, shape in expected.items():
        if name not in tensors and name in frozen:
            continue
        if name not in tensors:
            raise CheckpointError(f"checkpoint file {file} has no tensor {name!r} of the model")
        found = tuple(tensors[name].shape)
        if found != shape:
            raise CheckpointError(
                f"checkpoint file {file}: tensor {name!r} is {list(found)} but the model's is "
                f"{list(shape)} (the model's config differs from the checkpoint's)"
            )
    extra = next((name for name in tensors if name not in expected), None)
    if extra is not None:
        raise CheckpointError(f"checkpoint file {file} has a tensor {extra!r} the model lacks")


def load_checkpoint(
    path: Path | str, *, with_state: bool = True, trust: bool = False
) -> Checkpoint:
    """Load a checkpoint folder after checking its manifest; CheckpointError names the file.

    trust=True lets state.pt use full pickle (only for checkpoints from a trusted source)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    _verify(path)
    state = _load_state(path / "state.pt", trust) if with_state else {}
    if with_state and not isinstance(state, dict):
        raise CheckpointError(f"checkpoint file {path / 'state.pt'} is not a mapping")
    if with_state and not isinstance(state.get("step"), int):
        raise CheckpointError(f"checkpoint file {path / 'state.pt'} holds no integer 'step'")
    model, model_meta, _ = read_weights(path / "model.safetensors")
    ema, ema_meta, _ = read_weights(path / "ema.safetensors")
    return Checkpoint(path, model, ema, state, model_meta=model_meta, ema_meta=ema_meta)


def load_latest_checkpoint(
    run_dir: Path | str, *, with_state: bool = True, trust: bool = False
) -> Checkpoint:
    """The newest checkpoint of a run that loads; a bad one (corrupt, truncated, refused) is
    skipped with a warning naming it and the next older one tried."""
    run_dir = Path(run_dir)
    candidates = _complete_steps(run_dir / "checkpoints")
    errors: list[str] = []
    for path in reversed(candidates):
        try:
            ckpt = load_checkpoint(path, with_state=with_state, trust=trust)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        for error in errors:
            warnings.warn(f"falling back to checkpoint {path}: {error}", stacklevel=2)
        return ckpt
    if not candidates:
        raise CheckpointError(f"run folder {run_dir} has no complete checkpoint")
    raise CheckpointError(
        f"no checkpoint of {run_dir} loads ({len(errors)} tried); newest: {errors[0]}"
    )


def discard_failed_start(run_dir: Path) -> bool:
    """Remove run_dir, a run this start created, when it failed before training a step (no
    checkpoint, no loss logged), so the next try gets its name; whether it was removed."""
    metrics = run_dir / "metrics.jsonl"
    logged = metrics.is_file() and '"loss"' in metrics.read_text(errors="replace")
    if latest_checkpoint(run_dir) is not None or logged:
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True
