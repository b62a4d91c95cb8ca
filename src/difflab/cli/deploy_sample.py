"""`difflab sample --backend onnxruntime|openvino`: the run's export sampled by difflab.deploy.

difflab.deploy is torch-free, but to draw the same images as `--backend torch` for the same
seeds, the starting noise (and DDIM's eta noise) comes from difflab's per-sample torch
generators (StackedGenerator, seed + i for image i), drawn here and passed in as arrays. The
grid is built here too from the run's schedule and the sampling flags, as the torch sampler
builds it; the export's own export.json grid is for torch-free callers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from difflab.cli.sampling_args import sample_config
from difflab.config.recipes import read_yaml
from difflab.config.schema import Config, SampleConfig, build_config, check_sample
from difflab.core.errors import ConfigError, TrainingError
from difflab.deploy import draw, open_graph, read_spec, to_uint8
from difflab.export import check_fresh, deploy_grid
from difflab.samplers import StackedGenerator
from difflab.samplers.options import sampler_kwargs
from difflab.sampling.generation import labels_or_null, resolve_labels, threshold_kind
from difflab.schedules import make_schedule


def export_folder(args: argparse.Namespace) -> Path:
    """--export-dir, else RUN/export/openvino for openvino when there is one, else
    RUN/export/onnx."""
    if args.export_dir is not None:
        return Path(args.export_dir)
    ov = Path(args.run) / "export" / "openvino"
    return ov if args.backend == "openvino" and ov.is_dir() else Path(args.run) / "export" / "onnx"


def deploy_sample_config(args: argparse.Namespace, config: Config) -> SampleConfig:
    """The sampling settings, refusing what difflab.deploy does not do."""
    sample = sample_config(args, config.sample)
    check_sample(sample)
    if sample.classifier is not None:
        raise ConfigError(f"--backend {args.backend} does not do classifier guidance")
    if threshold_kind(sample, guided=False) is not None:
        raise ConfigError(f"--backend {args.backend} does not do x0 thresholding")
    return sample


def deployed_images(
    args: argparse.Namespace, labels: list[int] | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(uint8 images [N, C, H, W], labels [N] or null, the export's number of classes)."""
    run_dir = Path(args.run)
    spec = read_spec(export_folder(args))
    if "pipeline" in spec.data:  # a Stable Diffusion export: prompts, difflab.deploy.text
        raise ConfigError(
            f"--backend {args.backend} does not sample the {spec.data['pipeline']} export "
            f"{spec.folder}; use difflab.deploy.text.PromptPipeline"
        )
    check_fresh(run_dir, spec)
    if spec.data["weights"] != args.weights:
        raise ConfigError(
            f"export {spec.folder} holds the {spec.data['weights']} weights, not --weights "
            f"{args.weights}; export with --weights {args.weights}"
        )
    config = build_config(read_yaml(run_dir / "config.yaml"))
    sample = deploy_sample_config(args, config)
    m = config.model
    schedule = make_schedule(
        m.schedule, num_steps=m.num_steps, zero_terminal_snr=m.zero_terminal_snr
    )
    grid = deploy_grid(schedule, sample)
    y = resolve_labels(labels, args.num, spec.num_classes)
    hints = _hints(args, spec, config)
    embeddings = _embeddings(args, spec, run_dir)
    precision = spec.data["precision"]
    graphs = {k: spec.path(k) for k in ("network", "decoder")}
    network = open_graph(graphs["network"], args.backend, precision=precision)
    decoder = None if graphs["decoder"] is None else open_graph(graphs["decoder"], args.backend)
    chunks = []
    for start in range(0, args.num, args.batch_size):
        rows = range(start, min(args.num, start + args.batch_size))
        gen = StackedGenerator([args.seed + i for i in rows])
        x_T = gen.randn((len(rows), *spec.latent_shape), device="cpu").numpy()
        x0 = draw(
            network, grid, x_T, parameterization=spec.data["parameterization"],
            sampler=sample.sampler, guidance=sample.guidance, options=sampler_kwargs(sample),
            labels=None if y is None else y[start : rows.stop].numpy(),
            hints=_cycled(hints, rows), embeddings=_cycled(embeddings, rows),
            null_embedding=spec.null_embedding,
            noise=lambda shape, gen=gen: gen.randn(shape, device="cpu").numpy(), decoder=decoder,
        )  # fmt: skip
        if not np.isfinite(x0).all():
            raise TrainingError("generated images contain non-finite values")
        chunks.append(torch.from_numpy(to_uint8(x0)))
    return torch.cat(chunks), labels_or_null(y, args.num), spec.num_classes


def _cycled(rows_of: np.ndarray | None, rows: range) -> np.ndarray | None:
    """Row i % M of rows_of [M, ...] for each i of rows (as sampling.hints.cycled)."""
    return None if rows_of is None else rows_of[[i % len(rows_of) for i in rows]]


def _hints(args: argparse.Namespace, spec, config: Config) -> np.ndarray | None:
    """The --hint-image hints [M, C_hint, H, W] of a ControlNet export (required there, refused
    elsewhere), made as `--backend torch` makes them."""
    from difflab.sampling.hints import hints_from_files

    if spec.data["hint"] is None:
        if args.hint_image is not None:
            raise ConfigError("--hint-image: this run is not a ControlNet run; it takes no hints")
        return None
    if args.hint_image is None:
        raise ConfigError("this ControlNet run needs --hint-image PATH (its control images)")
    shape = tuple(spec.data["image_shape"])
    return hints_from_files(args.hint_image, config, shape).numpy()


def _embeddings(args: argparse.Namespace, spec, run_dir: Path) -> np.ndarray | None:
    """The --variations embeddings [M, E] of an unCLIP decoder export, made by the image encoder
    export.json records (torch, as `--backend torch` makes them); None without --variations.
    An export of a decoder run made before graphs took embeddings is refused."""
    from difflab.runs.load import MODEL_INFO
    from difflab.sampling.variations import image_file_embeddings

    record = spec.data.get("embedding")
    info = json.loads((run_dir / MODEL_INFO).read_text())
    if record is None and info.get("embedding_dim"):
        raise ConfigError(
            f"export {spec.folder} has no embedding input (made before difflab exported unCLIP "
            f"decoders); rerun difflab export {run_dir}"
        )
    if args.variations is None:
        return None
    encoder, dim = (None, 0) if record is None else (record["image_encoder"], record["dim"])
    shape = tuple(spec.data["image_shape"])
    found = image_file_embeddings(args.variations, encoder, dim, shape, str(run_dir), "cpu")
    return found.numpy()
