"""`difflab export` of a Stable Diffusion run (the plug-in's `export_graphs` hook): the frozen
text encoder, the run's UNet and the frozen VAE's decoder as ONNX graphs in the layout of
optimum's ONNX export (text_encoder/model.onnx, unet/model.onnx, vae_decoder/model.onnx, each
beside its config.json, with the inputs and outputs named as optimum names them), plus copies
of tokenizer/ and scheduler/; with --format openvino, optimum-intel's layout
(<part>/openvino_model.xml and .bin), the UNet at --precision (int8: NNCF, calibration.py) and
the others at fp32 (fp16 with fp16). tokenizer/tokenizer.json, which pads and truncates to the
tokenizer's model_max_length, lets difflab.deploy.text tokenize with `tokenizers` alone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from difflab.deploy.text import PIPELINE, UNET_INPUTS
from difflab.export.graph import export_onnx, onnx_files
from difflab.integrations.stable_diffusion.folder import import_transformers, pipeline_folder
from difflab.integrations.stable_diffusion.scheduler import write_prediction_type
from difflab.integrations.stable_diffusion.text import TextEncoder
from difflab.runs.load import LoadedRun

TOKENIZER_JSON = "tokenizer/tokenizer.json"
OPENVINO_XML = "openvino_model.xml"  # optimum-intel's file name in each part's folder


class TextEncoderGraph(nn.Module):
    """input_ids [N, L] int64 -> the CLIP text model's last hidden states [N, L, D]."""

    def __init__(self, text_model: nn.Module) -> None:
        super().__init__()
        self.text_model = text_model

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.text_model(input_ids)[0]


class UNetGraph(nn.Module):
    """(sample [N, 4, h, w], timestep [N] float32, encoder_hidden_states [N, L, D]) -> the
    run's UNet output [N, 4, h, w] (the difflab network SDUNet, LoRA included)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, sample: Tensor, timestep: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        unet = self.network.unet
        return unet(sample, timestep, encoder_hidden_states=encoder_hidden_states)[0]


class VAEDecoderGraph(nn.Module):
    """latent_sample [N, 4, h, w] (the VAE's own scale) -> sample [N, 3, H, W] in [-1, 1]."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample: Tensor) -> Tensor:
        return self.vae.decode(latent_sample, return_dict=False)[0]


def export_graphs(
    run: LoadedRun, folder: Path, *, fmt: str, precision: str, exporter: str, **how: Any
) -> tuple[dict[str, str | None], str, dict[str, Any]]:
    """Write the three graphs and the copies into folder; returns (the graphs' files, the ONNX
    exporter used, export.json's Stable Diffusion fields). OpenVINO: each ONNX graph converted
    to `<part>/openvino_model.xml` (optimum-intel's layout) at graph_precisions'."""
    source = pipeline_folder(run.config.model.pretrained)
    text = TextEncoder.from_folder(source)
    precisions = graph_precisions(precision)
    graphs, used = {}, []
    for name, module, inputs, output in _graph_parts(run, text):
        (folder / name).mkdir()
        onnx_path = folder / name / "model.onnx"
        with torch.no_grad():
            used.append(export_onnx(module.eval(), inputs, output, onnx_path, exporter))
        graphs[name] = f"{name}/model.onnx"
        if fmt == "openvino":
            graphs[name] = _to_openvino(run, text, onnx_path, precisions[name], how)
    _copy_configs(run, source, folder)
    _write_tokenizer(source, folder, text.max_length)
    fields = _fields(run, text.max_length)
    fields["precisions"] = precisions
    return graphs, used[1], fields


def graph_precisions(precision: str) -> dict[str, str]:
    """Each graph's precision: fp32 and fp16 for all three; int8 quantizes the UNet alone (the
    text encoder runs once per prompt, the VAE decoder once per image), the others stay fp32."""
    others = "fp32" if precision == "int8" else precision
    return {"text_encoder": others, "unet": precision, "vae_decoder": others}


def _to_openvino(
    run: LoadedRun, text: TextEncoder, onnx_path: Path, precision: str, how: dict[str, Any]
) -> str:
    """onnx_path converted to openvino_model.xml beside it (the ONNX file and its external
    weights removed), with the UNet's calibration feeds at int8; returns its path relative to
    the export folder."""
    from difflab.export.openvino import save_openvino

    calibration = None
    if precision == "int8":
        from difflab.integrations.stable_diffusion.calibration import unet_calibration_feeds

        calibration = unet_calibration_feeds(run, text, how["calibration_size"])
    xml = onnx_path.parent / OPENVINO_XML
    save_openvino(onnx_path, xml, precision, calibration, how.get("keep_ends", False))
    for path in onnx_files(onnx_path):  # the graph and its external weights
        path.unlink()
    return f"{onnx_path.parent.name}/{OPENVINO_XML}"


def _graph_parts(run: LoadedRun, text: TextEncoder) -> list[tuple[str, nn.Module, dict, str]]:
    """(folder, module, example inputs of batch 2, output name) of each graph."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn((2, *run.latent_shape), generator=gen)
    ids = text.tokenizer(["a photo", ""], padding="max_length", max_length=text.max_length,
                         truncation=True, return_tensors="pt").input_ids  # fmt: skip
    hidden = torch.randn((2, text.max_length, text.dim), generator=gen)
    unet_inputs = dict(zip(UNET_INPUTS, (z, torch.tensor([10.0, 500.0]), hidden), strict=True))
    return [
        ("text_encoder", TextEncoderGraph(text.text_model), {"input_ids": ids},
         "last_hidden_state"),
        ("unet", UNetGraph(run.denoiser.network), unet_inputs, "out_sample"),
        ("vae_decoder", VAEDecoderGraph(run.codec.vae), {"latent_sample": z}, "sample"),
    ]  # fmt: skip


def _copy_configs(run: LoadedRun, source: Path, folder: Path) -> None:
    """model_index.json, tokenizer/, scheduler/ (prediction_type set for a run that overrode
    it) and each graph's config.json (vae/'s for vae_decoder/), copied from the source."""
    if (source / "model_index.json").is_file():
        shutil.copy2(source / "model_index.json", folder / "model_index.json")
    for name in ("tokenizer", "scheduler"):
        shutil.copytree(source / name, folder / name)
    m = run.config.model
    if m.override_prediction_type:
        write_prediction_type(folder / "scheduler", m.parameterization)
    for part, config in (("text_encoder", "text_encoder"), ("unet", "unet"),
                         ("vae_decoder", "vae")):  # fmt: skip
        shutil.copy2(source / config / "config.json", folder / part / "config.json")


def _write_tokenizer(source: Path, folder: Path, max_length: int) -> None:
    """tokenizer/tokenizer.json: the source's CLIP tokenizer as a fast tokenizer, padding with
    its pad token and truncating to max_length as TextEncoder.encode does."""
    transformers = import_transformers()
    fast = transformers.CLIPTokenizerFast.from_pretrained(source / "tokenizer",
                                                          local_files_only=True)  # fmt: skip
    backend = fast.backend_tokenizer
    backend.enable_truncation(max_length)
    backend.enable_padding(length=max_length, pad_id=fast.pad_token_id, pad_token=fast.pad_token)
    backend.save(str(folder / TOKENIZER_JSON))


def _fields(run: LoadedRun, max_length: int) -> dict[str, Any]:
    """export.json's fields for difflab.deploy.text (they replace the core's inputs)."""
    return {
        "pipeline": PIPELINE,
        "inputs": {
            "text_encoder": ["input_ids"],
            "unet": list(UNET_INPUTS),
            "vae_decoder": ["latent_sample"],
        },  # fmt: skip
        "tokenizer": TOKENIZER_JSON,
        "max_length": max_length,
        "negative_prompt": run.config.sample.negative_prompt,
        "prompts": list(run.config.sample.prompts),
        "vae": {"scaling_factor": run.codec.scaling_factor, "shift_factor": run.codec.shift_factor},
    }
