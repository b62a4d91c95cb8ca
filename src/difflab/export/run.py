"""`export_run`: a run's denoiser network (and a latent run's VAE decoder) as ONNX or OpenVINO
graphs plus export.json, written to a temporary folder renamed into place."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from difflab.config.plugins import network_plugin
from difflab.core.errors import ConfigError
from difflab.deploy.backends import require
from difflab.deploy.spec import EXPORT_JSON
from difflab.deploy.time_groups import TIME_GROUPS
from difflab.export.calibration import CALIBRATION_SIZE
from difflab.export.graph import ExportedNetwork, example_inputs, export_onnx, onnx_files
from difflab.export.manifest import manifest
from difflab.latents import IdentityCodec
from difflab.runs.load import LoadedRun, load_run
from difflab.sampling.hints import hint_shape

Format = Literal["onnx", "openvino"]
Precision = Literal["fp32", "fp16", "int8"]
FORMATS: tuple[str, ...] = ("onnx", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


class Decoder(nn.Module):
    """A latent run's codec.decode: latents z [N, c, h, w] -> images [N, C, H, W]."""

    def __init__(self, codec: nn.Module) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, z: Tensor) -> Tensor:
        return self.codec.decode(z)


def check_exportable(run: LoadedRun, fmt: str, precision: str) -> None:
    """ConfigError naming the part of the run or the option that cannot be exported."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")
    plugin = network_plugin(run.config.model.network)
    if plugin is not None and not hasattr(plugin, "export_graphs"):
        raise ConfigError(f"cannot export a run of model.network {run.config.model.network!r}")
    if precision != "fp32" and fmt != "openvino":
        raise ConfigError(f"--precision {precision} needs --format openvino")


def write_graph(
    module: nn.Module, inputs: dict[str, Tensor], output: str, folder: Path, name: str, **how
) -> tuple[str | list[str], str]:
    """module as folder/name.onnx (for openvino, converted to folder/name.xml; at int8, one
    graph per calibration set of how["calibration"], folder/name.tK.xml when there are several
    time groups); returns (the file's name or names, the ONNX exporter used)."""
    onnx_path = folder / f"{name}.onnx"
    with torch.no_grad():
        used = export_onnx(module.eval(), inputs, output, onnx_path, how["exporter"])
    if how["fmt"] == "onnx":
        return onnx_path.name, used
    from difflab.export.openvino import save_openvino

    sets = how["calibration"] if how["precision"] == "int8" else [None]
    files = [f"{name}.xml"] if len(sets) == 1 else [f"{name}.t{k}.xml" for k in range(len(sets))]
    for file, feeds in zip(files, sets, strict=True):
        save_openvino(onnx_path, folder / file, how["precision"], feeds, how["keep_ends"])
    for path in onnx_files(onnx_path):  # the graph and its external weights
        path.unlink()
    return (files[0] if len(files) == 1 else files), used


def export_run(
    run_dir: Path | str,
    *,
    fmt: Format = "onnx",
    precision: Precision = "fp32",
    out: Path | str | None = None,
    weights: str = "ema",
    exporter: str = "dynamo",
    keep_ends: bool = False,
    time_groups: int = TIME_GROUPS,
    calibration_size: int = CALIBRATION_SIZE,
) -> Path:
    """Export the run's network (and VAE decoder) to out (default RUN/export/FORMAT); returns
    the folder. An existing export there is replaced only once the new one is complete.
    keep_ends: int8 keeps the first and last weighted layers in floating point; time_groups:
    int8 quantizes the network once per contiguous group of the default grid's noise levels,
    each with its own activation ranges (deploy.time_groups; 1: one graph), calibrated on
    calibration_size feeds each."""
    for module in ("onnx", "onnxscript", *("openvino",) * (fmt == "openvino"),
                   *("nncf",) * (precision == "int8")):  # fmt: skip
        require(module)  # before any work: a missing extra is a one-line error
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "export" / fmt
    run = load_run(run_dir, weights=weights)
    check_exportable(run, fmt, precision)
    if time_groups < 1 or calibration_size < 1:
        raise ConfigError(
            f"--int8-time-groups and --int8-calibration must be at least 1, got {time_groups} "
            f"and {calibration_size}"
        )
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        graphs, used, fields = _write_graphs(
            run, tmp, fmt=fmt, precision=precision, exporter=exporter, keep_ends=keep_ends,
            time_groups=time_groups, calibration_size=calibration_size,
        )  # fmt: skip
        data = manifest(run_dir, run, graphs, format=fmt, precision=precision, weights=weights,
                        exporter=used)  # fmt: skip
        data.update(fields)
        (tmp / EXPORT_JSON).write_text(json.dumps(data, indent=1))
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_graphs(run: LoadedRun, folder: Path, **how) -> tuple[dict[str, str | None], str, dict]:
    """({"network": file, "decoder": file or None}, the exporter used for the network, no more
    export.json fields), or what a network plug-in's export_graphs writes and returns."""
    plugin = network_plugin(run.config.model.network)
    if plugin is not None:
        return plugin.export_graphs(run, folder, **how)
    hints = hint_shape(run.config, run.image_shape)
    inputs = example_inputs(run.latent_shape, labels=run.num_classes > 0, hint_shape=hints,
                            embedding_dim=run.embedding_dim)  # fmt: skip
    fields = {}
    if how["precision"] == "int8":
        from difflab.export.calibration import grouped_calibration

        how["calibration"], bounds = grouped_calibration(
            run, inputs, how["time_groups"], how["calibration_size"]
        )
        if bounds:
            fields["time_bounds"] = bounds
    network, used = write_graph(
        ExportedNetwork(run.denoiser.network), inputs, "out", folder, "network", **how
    )
    decoder = None
    if not isinstance(run.codec, IdentityCodec):
        z = {"z": inputs["x"]}
        how = {**how, "precision": "fp32" if how["precision"] == "int8" else how["precision"]}
        decoder, _ = write_graph(Decoder(run.codec), z, "images", folder, "decoder", **how)
    return {"network": network, "decoder": decoder}, used, fields


def _replace(tmp: Path, out: Path) -> None:
    """Rename tmp to out; an existing out is moved aside first and removed after."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
