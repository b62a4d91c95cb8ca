"""Files difflab writes get the mode a new file gets under the process umask (0o666 & ~umask):
safetensors and tempfile.mkstemp create theirs owner-only (0o600), which keeps a run's
checkpoints from the group that shares its folder on a cluster."""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import save_file
from torch import nn


def current_umask() -> int:
    """The process umask, read by setting one and putting it back (0o077 meanwhile, so a file
    another thread creates in between is private rather than too open)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def respect_umask(*paths: Path) -> None:
    """chmod each file, and each file under each folder, to 0o666 & ~umask."""
    mode = 0o666 & ~current_umask()
    for path in paths:
        files = [p for p in Path(path).rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            os.chmod(file, mode)


def save_weights(module: nn.Module, path: Path) -> None:
    """A module's state dict as safetensors at path, written beside it and renamed into place,
    with the umask's mode."""
    weights = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(weights, str(tmp))
    respect_umask(tmp)
    os.replace(tmp, path)
