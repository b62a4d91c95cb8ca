"""Export a fine-tuned UNet with the frozen parts it was trained with as a diffusers pipeline
folder, so that `StableDiffusionPipeline.from_pretrained(folder)` loads it.

The frozen components (vae/, text_encoder/, tokenizer/, scheduler/ and any other the source's
model_index.json names) are hard-linked from the source folder where the file system allows
(copied otherwise): they are the source's files, unchanged. unet/ is written from the given
weights with safetensors. The folder is written beside its destination and renamed into
place, so a reader never sees a half-written export.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from torch import Tensor

from difflab.errors import CheckpointError
from difflab.integrations.stable_diffusion.folder import (
    UNET_FILES,
    component_folder,
    import_diffusers,
    pipeline_folder,
)

MODEL_INDEX = "model_index.json"


def export_pipeline(pretrained: str | Path, unet_weights: dict[str, Tensor], out: str | Path):
    """Write `out`: the pipeline of folder `pretrained` with its UNet's weights replaced by
    `unet_weights` (a UNet2DConditionModel state dict). Returns out as a Path."""
    source, out = pipeline_folder(pretrained), Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(_model_index(source), tmp / MODEL_INDEX)
    for name in _frozen_components(source):
        shutil.copytree(source / name, tmp / name, copy_function=_link_or_copy)
    _write_unet(source, unet_weights, tmp / "unet")
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def _model_index(source: Path) -> Path:
    file = source / MODEL_INDEX
    if not file.is_file():
        raise CheckpointError(f"the Stable Diffusion folder {source} has no {MODEL_INDEX}")
    return file


def _frozen_components(source: Path) -> list[str]:
    """The component folders model_index.json names (those with a class), the UNet aside."""
    index = json.loads(_model_index(source).read_text())
    named = [k for k, v in index.items() if isinstance(v, list) and v and v[0] is not None]
    return [name for name in named if name != "unet" and (source / name).is_dir()]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_unet(source: Path, weights: dict[str, Tensor], folder: Path) -> None:
    diffusers = import_diffusers()
    unet_folder = component_folder(source, "unet", UNET_FILES)
    config = diffusers.UNet2DConditionModel.load_config(unet_folder, local_files_only=True)
    unet = diffusers.UNet2DConditionModel.from_config(config)
    try:
        unet.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"the weights do not fit the UNet of {unet_folder}: {err}") from err
    unet.save_pretrained(folder, safe_serialization=True)
