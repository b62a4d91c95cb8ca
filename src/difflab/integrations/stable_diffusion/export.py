"""Export a fine-tuned UNet with the frozen parts it was trained with as a diffusers pipeline
folder, so that `StableDiffusionPipeline.from_pretrained(folder)` loads it.

The frozen components (vae/, text_encoder/, tokenizer/, scheduler/ and any other the source's
model_index.json names) are copies of the source's files, unchanged. Not hard links:
diffusers and transformers save configs over themselves in place (safetensors before 0.8
weights too), which through a link would change the pretrained folder. unet/ is written
from the given weights with safetensors. The folder is written beside its destination and
renamed into place, so a reader never sees a half-written export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import Tensor

from difflab.config.build import build_config
from difflab.config.schema import LoraConfig
from difflab.core.errors import CheckpointError
from difflab.core.file_modes import respect_umask
from difflab.integrations.stable_diffusion.controlnet import (
    CONTROLNET_FOLDER,
    SD_CONTROLNET,
    export_controlnet,
)
from difflab.integrations.stable_diffusion.folder import (
    UNET_FILES,
    component_folder,
    import_diffusers,
    move_into_place,
    pipeline_folder,
)
from difflab.integrations.stable_diffusion.lora import LORA_FOLDER, save_lora
from difflab.integrations.stable_diffusion.network import adapted_network
from difflab.integrations.stable_diffusion.scheduler import write_prediction_type
from difflab.parameterization.prediction import Parameterization
from difflab.runs.checkpoint import Weights, load_latest_checkpoint
from difflab.runs.frozen import load_trained
from difflab.runs.load import MODEL_INFO

MODEL_INDEX = "model_index.json"
EXPORT_FOLDER = "diffusers"  # runs/NAME/diffusers/


def export_pipeline(
    pretrained: str | Path,
    unet_weights: dict[str, Tensor],
    out: str | Path,
    prediction: Parameterization | None = None,
):
    """Write `out`: the pipeline of folder `pretrained` with its UNet's weights replaced by
    `unet_weights` (a UNet2DConditionModel state dict), its scheduler's prediction_type set to
    `prediction`'s unless None. Returns out as a Path."""
    source, out = pipeline_folder(pretrained), Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        shutil.copy2(_model_index(source), tmp / MODEL_INDEX)
        for name in _frozen_components(source):
            shutil.copytree(source / name, tmp / name)
        _write_unet(source, unet_weights, tmp / "unet")
        if prediction is not None:
            write_prediction_type(tmp / "scheduler", prediction)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no half-written copy left beside out
        raise
    return move_into_place(tmp, out)


def export_run(run_dir: str | Path) -> Path:
    """Export a fine-tune's newest checkpoint's EMA UNet with its pretrained folder's frozen
    parts to run_dir/diffusers/, a LoRA run's EMA adapter to run_dir/lora/ (its
    pytorch_lora_weights.safetensors), or a ControlNet run's EMA ControlNet to
    run_dir/controlnet/ (a ControlNetModel folder); returns that folder."""
    from difflab.config.recipes import read_run_yaml

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / MODEL_INFO).is_file():
        raise CheckpointError(f"{run_dir} is not a difflab run folder (no config.yaml/model.json)")
    config = build_config(read_run_yaml(run_dir))
    if config.model.pretrained is None:
        raise CheckpointError(f"{run_dir} is not a Stable Diffusion fine-tune (model.pretrained)")
    ema = load_latest_checkpoint(run_dir, with_state=False).weights("ema")
    m = config.model
    if m.network == SD_CONTROLNET:
        return export_controlnet(m.pretrained, m.controlnet, ema, run_dir / CONTROLNET_FOLDER)
    if m.lora.rank > 0:
        return export_lora(m.pretrained, m.lora, ema, run_dir / LORA_FOLDER)
    weights = {k.removeprefix("unet."): v for k, v in ema.tensors.items()}  # SDUNet's `unet`
    prediction = m.parameterization if m.override_prediction_type else None
    return export_pipeline(m.pretrained, weights, run_dir / EXPORT_FOLDER, prediction)


def export_lora(
    pretrained: str | Path, lora: LoraConfig, weights: Weights, out: str | Path
) -> Path:
    """Write out/pytorch_lora_weights.safetensors: the adapters of `weights` (a checkpoint
    file's state of pretrained's SDUNet with lora's adapters, `unet.` and `text_encoder.`
    keys: full, or the adapters alone over the frozen part, runs/frozen.py)."""
    network = adapted_network(pretrained, lora)
    load_trained(network, *weights)
    return save_lora(network.unet, out, network.text_encoder)


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
    respect_umask(folder)
