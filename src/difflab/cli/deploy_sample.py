"""`difflab sample RUN|EXPORT --backend onnxruntime|openvino`: the run's export (or an export
folder given itself) sampled by difflab.deploy; a Stable Diffusion export from --prompt
(deploy_prompt.py).

difflab.deploy is torch-free, but to draw the same images as `--backend torch` for the same
seeds, the starting noise (and DDIM's eta noise) comes from difflab's per-sample torch
generators (deploy_export.noise_batches), passed in as arrays. The grid is built here too from
the run's schedule and the sampling flags, as the torch sampler builds it; the export's own
export.json grid is for torch-free callers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from difflab.cli.deploy_export import (
    checked_uint8,
    deploy_sample_config,
    noise_batches,
    open_export,
    spec_schedule,
)
from difflab.cli.deploy_prompt import deployed_prompt_images
from difflab.cli.prompt_args import asks_for_text
from difflab.config.build import build_config
from difflab.config.recipes import read_yaml
from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.deploy import draw, open_graph, open_network
from difflab.export import deploy_grid
from difflab.samplers.options import sampler_kwargs
from difflab.sampling.generation import labels_or_null, resolve_labels


def deployed_images(
    args: argparse.Namespace, labels: list[int] | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(uint8 images [N, C, H, W], labels [N] or null, the export's number of classes)."""
    spec, run_dir = open_export(args)
    if "pipeline" in spec.data:  # a Stable Diffusion export: prompts, difflab.deploy.text
        return deployed_prompt_images(args, labels, spec, run_dir), _null(args.num), 0
    if run_dir is None:
        raise ConfigError(
            f"{spec.folder} is an export folder; difflab sample --backend takes its RUN folder "
            "(and --export-dir for an export elsewhere)"
        )
    if asks_for_text(args):
        raise ConfigError(f"--prompt needs a Stable Diffusion export; {spec.folder} is not one")
    config = build_config(read_yaml(run_dir / "config.yaml"))
    sample = deploy_sample_config(args, config.sample)
    grid = deploy_grid(spec_schedule(spec), sample)
    y = resolve_labels(labels, args.num, spec.num_classes)
    hints = _hints(args, spec, config)
    embeddings = _embeddings(args, spec, run_dir)
    network = open_network(spec, args.backend)
    decoder_path = spec.path("decoder")
    decoder = None if decoder_path is None else open_graph(decoder_path, args.backend)
    chunks = []
    for rows, x_T, noise in noise_batches(args, spec.latent_shape):
        x0 = draw(
            network, grid, x_T, parameterization=spec.data["parameterization"],
            sampler=sample.sampler, guidance=sample.guidance, options=sampler_kwargs(sample),
            labels=None if y is None else y[rows.start : rows.stop].numpy(),
            hints=_cycled(hints, rows), embeddings=_cycled(embeddings, rows),
            null_embedding=spec.null_embedding, noise=noise, decoder=decoder,
        )  # fmt: skip
        chunks.append(checked_uint8(x0))
    return torch.cat(chunks), labels_or_null(y, args.num), spec.num_classes


def _null(num: int) -> torch.Tensor:
    """num null labels: the labels of images drawn from prompts."""
    return labels_or_null(None, num)


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
