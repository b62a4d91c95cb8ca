"""What `difflab sample --backend onnxruntime|openvino` does for every export: find it (RUN's,
or an export folder given itself), check it, and draw each batch's starting noise with
difflab's per-sample torch generators (seed + i for image i), so that difflab.deploy, which is
torch-free and takes the noise as arrays, draws the images of `--backend torch`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from difflab.cli.sampling_args import sample_config
from difflab.config.build import check_sample
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError, TrainingError
from difflab.deploy import EXPORT_JSON, ExportSpec, read_spec, to_uint8
from difflab.deploy.samplers import NoiseFn
from difflab.export import check_fresh
from difflab.samplers import StackedGenerator
from difflab.sampling.generation import threshold_kind
from difflab.schedules import make_schedule
from difflab.schedules.noise import NoiseSchedule


def export_folder(args: argparse.Namespace) -> Path:
    """--export-dir, else RUN/export/openvino for openvino when there is one, else
    RUN/export/onnx."""
    if args.export_dir is not None:
        return Path(args.export_dir)
    ov = Path(args.run) / "export" / "openvino"
    return ov if args.backend == "openvino" and ov.is_dir() else Path(args.run) / "export" / "onnx"


def deploy_sample_config(args: argparse.Namespace, base: SampleConfig) -> SampleConfig:
    """The sampling settings (base with the flags), refusing what difflab.deploy does not do."""
    sample = sample_config(args, base)
    check_sample(sample)
    if sample.classifier is not None:
        raise ConfigError(f"--backend {args.backend} does not do classifier guidance")
    if threshold_kind(sample, guided=False) is not None:
        raise ConfigError(f"--backend {args.backend} does not do x0 thresholding")
    return sample


def open_export(args: argparse.Namespace) -> tuple[ExportSpec, Path | None]:
    """(the export to sample, its run folder): RUN's export (export_folder), checked fresh and
    of --weights; or RUN itself where it is an export folder (holds export.json), with no run
    folder to check against."""
    given = Path(args.run)
    if (given / EXPORT_JSON).is_file() and args.export_dir is None:
        return read_spec(given), None
    spec = read_spec(export_folder(args))
    check_fresh(given, spec)
    if spec.data["weights"] != args.weights:
        raise ConfigError(
            f"export {spec.folder} holds the {spec.data['weights']} weights, not --weights "
            f"{args.weights}; export with --weights {args.weights}"
        )
    return spec, given


def spec_schedule(spec: ExportSpec) -> NoiseSchedule:
    """The noise schedule export.json names (the run's model.schedule)."""
    s = spec.data["schedule"]
    return make_schedule(
        s["name"], num_steps=s["num_steps"], zero_terminal_snr=s["zero_terminal_snr"]
    )


def noise_batches(
    args: argparse.Namespace, latent_shape: tuple[int, ...]
) -> Iterator[tuple[range, np.ndarray, NoiseFn]]:
    """(rows, x_T [len(rows), *latent_shape], the sampler's noise source) of each batch of
    --batch-size images: image i's noise from difflab's generator of seed + i, as torch's."""
    for start in range(0, args.num, args.batch_size):
        rows = range(start, min(args.num, start + args.batch_size))
        gen = StackedGenerator([args.seed + i for i in rows])
        x_T = gen.randn((len(rows), *latent_shape), device="cpu").numpy()
        yield rows, x_T, lambda shape, gen=gen: gen.randn(shape, device="cpu").numpy()


def checked_uint8(x0: np.ndarray) -> torch.Tensor:
    """Images in [-1, 1] as uint8; TrainingError when any value is not finite."""
    if not np.isfinite(x0).all():
        raise TrainingError("generated images contain non-finite values")
    return torch.from_numpy(to_uint8(x0))
