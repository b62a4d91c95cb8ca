"""Shared set-up of the deployment benchmarks that time one recipe's network (deploy_ratio.py,
deploy_profile.py; deploy.py for the shapes and the export): their common arguments, the
recipe's network with its initial (random) weights (a graph's speed does not depend on them)
and its ONNX export.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from difflab.config.recipes import load_config
from difflab.config.schema import Config
from difflab.export.graph import ExportedNetwork, example_inputs, export_onnx
from difflab.parameterization import Denoiser
from difflab.runs.load import build_denoiser

SHAPES = {"mnist": (1, 28, 10), "cifar10": (3, 32, 10)}  # channels, size, classes


def network_parser(doc: str, batch: int, batch_help: str, repeats: int) -> argparse.ArgumentParser:
    """A parser described by doc's first line with --recipe, --batch, --threads and --repeats
    (these defaults for batch and repeats)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--recipe", default="mnist", choices=list(SHAPES))
    p.add_argument("--batch", type=int, default=batch, help=batch_help)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=repeats)
    return p


def recipe_network(recipe: str) -> tuple[Config, Denoiser]:
    """(the recipe's config, its denoiser with initial weights in eval mode) at SHAPES[recipe]."""
    config = load_config(recipe)
    c, size, classes = SHAPES[recipe]
    denoiser = build_denoiser(config, in_channels=c, image_size=size, num_classes=classes)
    return config, denoiser.eval()


def export_network(network: torch.nn.Module, shape: tuple[int, int, int], path: Path) -> Path:
    """network (labels, no hint; shape = channels, size, classes) exported as ONNX to path."""
    c, size, _ = shape
    inputs = example_inputs((c, size, size), labels=True, hint_shape=None)
    with torch.no_grad():
        export_onnx(ExportedNetwork(network).eval(), inputs, "out", path, "torchscript")
    return path
