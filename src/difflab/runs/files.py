"""Files written atomically: into a temporary sibling, then renamed into place, so a write
that fails (disk full) leaves the previous file as it was and no temporary behind, and ends in
one line naming the file and the free space there (RunFileError)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from difflab.core.errors import CheckpointError, ConfigError, RunFileError

# What a write raises when the disk is full or the path cannot be written: OSError from Python
# and PIL, SafetensorError from safetensors, RuntimeError from torch.save's zip writer.
WRITE_ERRORS = (OSError, SafetensorError, RuntimeError)


def free_space(path: Path) -> str:
    """The space left on the file system of path (its nearest existing parent), readable."""
    for folder in (path, *path.parents):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        return f"{free / 2**30:.1f} GiB" if free >= 2**30 else f"{free / 2**20:.1f} MiB"
    return "unknown space"


def write_error(path: Path, err: BaseException, what: str = "") -> RunFileError:
    """The one-line error of a failed write of path (what: e.g. "checkpoint "): the reason and
    the free space there."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    reason = " ".join(reason.split())  # torch's and safetensors' messages span lines
    free = free_space(path.parent)
    return RunFileError(f"cannot write {what}{path}: {reason} ({free} free there)")


def write_atomic(path: Path | str, write: Callable[[Path], None]) -> Path:
    """write(tmp) into a temporary sibling with path's suffix, then rename it to path.
    RunFileError on failure, the temporary removed and any previous file untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except WRITE_ERRORS as err:
        raise write_error(path, err) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    """write_atomic of a UTF-8 text file."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def require_run_folder(path: Path | str) -> Path:
    """path when it is a difflab run folder (config.yaml and model.json); ConfigError
    otherwise, so nothing is written into a folder that is not a run."""
    path = Path(path)
    missing = [name for name in ("config.yaml", "model.json") if not (path / name).is_file()]
    if missing:
        raise ConfigError(f"{path} is not a difflab run folder (no {' or '.join(missing)})")
    return path


# model.json's sizes: far above any network difflab builds, far below what cannot be allocated
# (in_channels of a vector network, unCLIP's prior, is its embedding's size)
MODEL_INFO_BOUNDS = {"in_channels": (1, 8192), "image_size": (1, 8192), "num_classes": (0, 10**6)}


def read_model_info(run_dir: Path | str) -> dict[str, Any]:
    """A run's model.json, checked: a JSON object whose sizes are integers within
    MODEL_INFO_BOUNDS; CheckpointError naming the file and the key otherwise."""
    path = Path(run_dir) / "model.json"
    try:
        info = json.loads(path.read_text())
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not a {type(info).__name__}")
    for key, (low, high) in MODEL_INFO_BOUNDS.items():
        value = info.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CheckpointError(
                f"{path}: key {key!r} must be an integer from {low} to {high}, got {value!r}"
            )
    if not isinstance(info.get("latent", {}), dict):
        raise CheckpointError(f"{path}: key 'latent' must be a JSON object")
    return info
