"""Calibration inputs for INT8 post-training quantization: the inputs the denoiser sees when
sampling, i.e. training images noised to times of the run's sampling grid,
x_t = alpha(t) x0 + sigma(t) eps, with their labels and, as classifier-free guidance feeds,
the null label (and an unCLIP decoder's null embedding) for every other sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from difflab.data import load_dataset
from difflab.deploy.spec import Grid
from difflab.deploy.time_groups import step_groups
from difflab.export.manifest import deploy_grid
from difflab.runs.controlnet import hint_transform
from difflab.runs.image_embedding import recorded_encoder
from difflab.runs.load import LoadedRun
from difflab.training.batches import make_transform

CALIBRATION_SIZE = 256  # samples, one feed each (NNCF's subset_size)


def clean_batch(run: LoadedRun, num: int) -> dict[str, Tensor]:
    """The first num training images of a fixed permutation, as the run's evaluation pipeline
    gives them (x0 in [-1, 1], its latents for a latent run), with labels, hints and an unCLIP
    decoder's image embeddings (of the images, by the run's recorded encoder)."""
    d = run.config.data
    root = None if d.root is None else Path(d.root)
    data = load_dataset(d.dataset, root=root, split="train", download=d.download, **d.options)
    pick = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(0))[:num]
    hint = hint_transform(run.config.model.controlnet)
    batch = make_transform(d, train=False, hint=hint)({"image": data.images[pick]})
    with torch.no_grad():
        if run.embedding_dim:
            encoder = recorded_encoder(
                run.image_encoder, run.embedding_dim, str(run.config.run.name)
            )
            batch["embedding"] = encoder.encode(batch["image"]).float()
        batch["image"] = run.codec.encode(batch["image"])
    batch["labels"] = data.labels[pick]
    return batch


def calibration_feeds(
    run: LoadedRun, inputs: dict[str, Tensor], num: int = CALIBRATION_SIZE
) -> list[dict[str, np.ndarray]]:
    """num feeds of batch 1 with the graph's input names (those of `inputs`): noised images at
    the noisy times of the default grid, cycled, and labels and embeddings (null for odd i)."""
    grid = deploy_grid(run.denoiser.schedule, run.config.sample)
    return noised_feeds(clean_batch(run, num), grid, np.arange(num) % grid.steps, inputs)


def grouped_calibration(
    run: LoadedRun, inputs: dict[str, Tensor], groups: int, num: int = CALIBRATION_SIZE
) -> tuple[list[list[dict[str, np.ndarray]]], list[float]]:
    """Calibration feeds for a network quantized once per time group (deploy.time_groups):
    about num feeds per group, each at the times of its group's grid steps, and the bounds
    between the groups; one group is calibration_feeds' set."""
    grid = deploy_grid(run.denoiser.schedule, run.config.sample)
    runs, bounds = step_groups(grid.network_t, groups)
    batch = clean_batch(run, num * groups)
    size = max(1, len(batch["image"]) // groups)  # images per group, each its own
    step = np.concatenate([np.resize(r, size) for r in runs])
    feeds = noised_feeds(batch, grid, step, inputs)
    return [feeds[k * size : (k + 1) * size] for k in range(len(runs))], bounds


def noised_feeds(
    batch: dict[str, Tensor], grid: Grid, step: np.ndarray, inputs: dict[str, Tensor]
) -> list[dict[str, np.ndarray]]:
    """One feed of batch 1 per step[i] (and image i of clean_batch's batch): x_t = alpha x0 +
    sigma eps at grid step step[i], its label and embedding (null for odd i) and hint."""
    num = min(len(step), len(batch["image"]))
    x0, step = batch["image"][:num].float(), step[:num]
    alpha = torch.from_numpy(grid.alpha[step]).float().view(-1, 1, 1, 1)
    sigma = torch.from_numpy(grid.sigma[step]).float().view(-1, 1, 1, 1)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    feeds = {"x": alpha * x0 + sigma * eps, "t": torch.from_numpy(grid.network_t[step]).float()}
    if "labels" in inputs:
        feeds["labels"] = torch.where(torch.arange(num) % 2 == 1, -1, batch["labels"][:num])
    if "hint" in inputs:
        feeds["hint"] = batch["hint"][:num]
    if "embedding" in inputs:
        null = (torch.arange(num) % 2 == 1).view(-1, 1)
        feeds["embedding"] = torch.where(null, 0.0, batch["embedding"][:num])
    return [{k: v[i : i + 1].numpy() for k, v in feeds.items()} for i in range(num)]
