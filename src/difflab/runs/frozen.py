"""Slim checkpoints of networks with a frozen part read from files (a Stable Diffusion LoRA's or
ControlNet's pretrained UNet): model.safetensors and ema.safetensors hold the other tensors,
and their metadata a record of the frozen part (its folder, the sha256 of the weights files it
was read from, a digest of its tensors' names and shapes). Loading rebuilds the network (the
frozen part from its folder), checks the record against it and loads the saved tensors over it.

A network declares its frozen part with `declare_frozen` once its frozen parameters have
requires_grad False; buffers are always saved (training may change them). The files' sha256
come from runs/hash_cache.py, which reads a file again only when its stat stamp changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from difflab.core.errors import CheckpointError
from difflab.runs.checkpoint import check_shapes
from difflab.runs.hash_cache import cached_sha256

FROZEN_KEY = "difflab.frozen"  # the record's key in a safetensors file's metadata
_ATTRIBUTE = "_difflab_frozen"


@dataclass(frozen=True)
class FrozenPart:
    folder: Path  # where the frozen tensors come from (model.pretrained)
    files: tuple[str, ...]  # their weights files, relative to folder
    names: frozenset[str]  # their state-dict keys
    digest: str  # sha256 over the sorted "name shape" lines
    sha256: dict[str, str]  # file -> its sha256 when the network was built


def declare_frozen(module: nn.Module, folder: str | Path, files: tuple[str, ...]) -> nn.Module:
    """Record on module that its parameters with requires_grad False were just read from
    `files` under `folder` (and are rebuilt from them on loading), with the files' sha256;
    returns module."""
    state = module.state_dict(keep_vars=True)
    names = {k for k, v in state.items() if isinstance(v, nn.Parameter) and not v.requires_grad}
    lines = "\n".join(f"{k} {list(state[k].shape)}" for k in sorted(names))
    digest = hashlib.sha256(lines.encode()).hexdigest()
    hashes = _file_hashes(Path(folder), tuple(files)) if names else {}
    part = FrozenPart(Path(folder), tuple(files), frozenset(names), digest, hashes)
    setattr(module, _ATTRIBUTE, part)
    return module


def frozen_part(module: nn.Module) -> FrozenPart | None:
    """module's declared frozen part, or None (every tensor is saved)."""
    part = getattr(module, _ATTRIBUTE, None)
    return part if part is not None and part.names else None


def _file_hashes(folder: Path, files: tuple[str, ...]) -> dict[str, str]:
    """file -> sha256 of folder/file; CheckpointError naming one that cannot be read."""
    hashes = {}
    for name in files:
        try:
            hashes[name] = cached_sha256(folder / name)
        except OSError as err:
            raise CheckpointError(
                f"cannot read the frozen weights file {folder / name} (model.pretrained "
                f"{folder}): {err.strerror}"
            ) from None
    return hashes


def slim_state(
    module: nn.Module, tensors: dict[str, Tensor]
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors without module's frozen part, the metadata that records it); tensors and no
    metadata for a module without one. tensors: module's full state dict (or its EMA's)."""
    part = frozen_part(module)
    if part is None:
        return tensors, {}
    record = {
        "folder": str(part.folder),
        "sha256": part.sha256,
        "tensors": len(part.names),
        "digest": part.digest,
    }
    kept = {k: v for k, v in tensors.items() if k not in part.names}
    return kept, {FROZEN_KEY: json.dumps(record, sort_keys=True)}


def check_trained(
    module: nn.Module, tensors: dict[str, Tensor], metadata: dict[str, str], file: Path
) -> bool:
    """Whether `tensors` (of `file`, with its metadata) are a slim state of module, to be
    loaded over its frozen part; CheckpointError naming the file or the frozen folder unless
    they fit: a full state the model's shapes, a slim one the frozen part it was saved with."""
    if FROZEN_KEY not in metadata:
        check_shapes(module, tensors, file)
        return False
    record = _read_record(metadata[FROZEN_KEY], file)
    part = frozen_part(module)
    if part is None or record["digest"] != part.digest:
        raise CheckpointError(
            f"checkpoint file {file} holds the trained tensors of a network whose frozen part "
            f"(from {record['folder']}) differs in names or shapes from this model's"
        )
    if set(record["sha256"]) != set(part.files):
        raise CheckpointError(
            f"checkpoint file {file} was trained on the frozen weights {sorted(record['sha256'])}"
            f" of {record['folder']}, this model reads {list(part.files)} from {part.folder}"
        )
    changed = [k for k, v in part.sha256.items() if record["sha256"][k] != v]
    if changed:
        raise CheckpointError(
            f"the frozen weights {changed} in {part.folder} differ from those checkpoint file "
            f"{file} was trained on (sha256 mismatch): restore that folder (model.pretrained)"
        )
    check_shapes(module, tensors, file, frozen=part.names)
    return True


def _read_record(text: str, file: Path) -> dict:
    try:
        record = json.loads(text)
        texts = [record["folder"], record["digest"], *dict(record["sha256"]).values()]
        if all(isinstance(v, str) for v in texts):
            return record
    except (ValueError, KeyError, TypeError):
        pass
    raise CheckpointError(f"checkpoint file {file} has an unreadable {FROZEN_KEY!r} record")


def load_trained(
    module: nn.Module, tensors: dict[str, Tensor], metadata: dict[str, str], file: Path
) -> None:
    """Load a full or slim state (check_trained) into an unsharded module: a slim one over the
    frozen part it was built with."""
    slim = check_trained(module, tensors, metadata, file)
    module.load_state_dict(tensors, strict=not slim)
