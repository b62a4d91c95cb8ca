"""A local Stable Diffusion v1.x or 2.x folder in diffusers' pipeline layout, read offline.

The layout is what `StableDiffusionPipeline.save_pretrained` writes: model_index.json and one
sub-folder per component (unet/, vae/, text_encoder/, tokenizer/, scheduler/). Weights are read
from safetensors only (never pickles) and with `local_files_only=True`; a missing folder or
file is a one-line DataError naming it, an unreadable one a CheckpointError.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import ModuleType

from difflab.core.errors import CheckpointError, ConfigError, DataError

UNET_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
TEXT_ENCODER_FILES = ("config.json", "model.safetensors")
SCHEDULER_FILE = "scheduler_config.json"
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError)


def import_diffusers() -> ModuleType:
    try:
        import diffusers  # optional heavy dependency (the `sd` extra)
    except ImportError as err:
        raise ConfigError("Stable Diffusion needs diffusers: pip install 'difflab[sd]'") from err
    return diffusers


def import_transformers() -> ModuleType:
    try:
        import transformers  # optional heavy dependency (the `sd` extra)
    except ImportError as err:
        raise ConfigError("Stable Diffusion needs transformers: pip install 'difflab[sd]'") from err
    return transformers


def pipeline_folder(path: str | Path) -> Path:
    """The pipeline folder itself; DataError when it does not exist."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"Stable Diffusion folder not found: {root} (model.pretrained)")
    return root


def component_folder(root: Path, name: str, files: tuple[str, ...] = ()) -> Path:
    """root/name, checked to hold `files` (a weights file may be sharded: its .index.json)."""
    folder = root / name
    if not folder.is_dir():
        raise DataError(f"the Stable Diffusion folder {root} has no {name}/ folder")
    for file in files:
        sharded = file.endswith(".safetensors") and (folder / f"{file}.index.json").is_file()
        if not (folder / file).is_file() and not sharded:
            raise DataError(f"the Stable Diffusion folder {folder} has no {file}")
    return folder


def weights_files(path: str | Path, name: str, file: str) -> tuple[str, ...]:
    """The files, relative to the pipeline folder, that component `name`'s weights `file` is
    read from: name/file, or its .index.json and the shards it names."""
    folder = component_folder(pipeline_folder(path), name, (file,))
    if (folder / file).is_file():
        return (f"{name}/{file}",)
    index = folder / f"{file}.index.json"
    shards = read_json(index).get("weight_map", {})
    if not isinstance(shards, dict):
        raise DataError(f"{index} has no weight_map of tensor names to files")
    return (f"{name}/{index.name}", *(f"{name}/{s}" for s in sorted(set(shards.values()))))


def check_text_width(path: str | Path) -> None:
    """ConfigError naming both files unless the UNet attends to the text encoder's width:
    unet/config.json's cross_attention_dim is text_encoder/config.json's hidden_size (SD v1:
    768, SD 2.x: 1024), so a folder that mixes components fails before anything loads."""
    root = pipeline_folder(path)
    unet_file = component_folder(root, "unet", ("config.json",)) / "config.json"
    text_file = component_folder(root, "text_encoder", ("config.json",)) / "config.json"
    width = read_json(text_file).get("hidden_size")
    attends = read_json(unet_file).get("cross_attention_dim")
    if any(dim != width for dim in (attends if isinstance(attends, list) else [attends])):
        raise ConfigError(
            f"the UNet ({unet_file}: cross_attention_dim {attends}) cannot attend to the text "
            f"encoder ({text_file}: hidden_size {width}) (model.pretrained)"
        )


def read_json(file: Path) -> dict:
    """A JSON file's contents; DataError naming the file when it cannot be read."""
    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read {file}: {err}") from err


def load_unet(path: str | Path):
    """The UNet2DConditionModel of a pipeline folder (unet/), in float32."""
    folder = component_folder(pipeline_folder(path), "unet", UNET_FILES)
    diffusers = import_diffusers()
    try:
        # low_cpu_mem_usage=False: the saving needs accelerate, which diffusers asks for otherwise
        return diffusers.UNet2DConditionModel.from_pretrained(
            folder, local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False
        )
    except LOAD_ERRORS as err:
        raise CheckpointError(f"cannot load the UNet in {folder}: {err}") from err


def load_tokenizer(path: str | Path):
    """The CLIPTokenizer of a pipeline folder (tokenizer/)."""
    tokenizer_folder = component_folder(pipeline_folder(path), "tokenizer")
    transformers = import_transformers()
    try:
        return transformers.CLIPTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    except LOAD_ERRORS as err:
        raise CheckpointError(f"cannot load the tokenizer in {tokenizer_folder}: {err}") from err


def load_clip(path: str | Path):
    """(tokenizer, CLIP text model) of a pipeline folder (tokenizer/, text_encoder/), the
    model in float32 as the UNet (transformers 5 would keep a float16 folder's float16)."""
    tokenizer = load_tokenizer(path)
    encoder_folder = component_folder(pipeline_folder(path), "text_encoder", TEXT_ENCODER_FILES)
    transformers = import_transformers()
    try:
        encoder = transformers.CLIPTextModel.from_pretrained(
            encoder_folder, local_files_only=True, use_safetensors=True
        )
    except LOAD_ERRORS as err:
        raise CheckpointError(f"cannot load the text encoder in {encoder_folder}: {err}") from err
    return tokenizer, encoder.float()


def move_into_place(tmp: Path, out: Path) -> Path:
    """Replace folder `out` by the finished folder `tmp` (written beside it) with renames, so a
    reader sees the old folder or the new one, never half of one. Returns out."""
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)  # an interrupted export's, out is newer
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out
