"""Train the map re-extractor on a dataset's exact per-pixel maps (`ImageDataset.maps`, e.g.
the `shapes` dataset's "segmentation" and "depth"), and cache it as the evaluation classifier is
cached: cache/map-networks/<dataset>-<key>, the key hashing the images and the settings.

Every random choice (initial weights, batches) comes from generators seeded by `seed`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.data import ImageDataset
from difflab.evaluation.classifier_cache import classifier_dir
from difflab.evaluation.classifier_training import fit
from difflab.evaluation.hint_fidelity import HintSetting, symmetric
from difflab.evaluation.map_network import (
    CONFIG_FILE,
    MapNetwork,
    MapNetworkConfig,
    MapTask,
    load_map_network,
    save_map_network,
)


def task_maps(dataset: ImageDataset, task: MapTask) -> Tensor:
    """The dataset's maps for the task, [N, 1, H, W] of its images' size, or a DataError."""
    maps = dataset.maps.get(task) if dataset.maps else None
    if maps is None:
        raise DataError(f"dataset {dataset.name!r} has no {task!r} maps to train a {task} "
                        "re-extractor on (a dataset with exact maps, e.g. 'shapes')")  # fmt: skip
    if maps.shape != (len(dataset.images), 1, *dataset.images.shape[-2:]):
        raise DataError(f"dataset {dataset.name!r}: {task} maps of shape {tuple(maps.shape)} "
                        f"for images {tuple(dataset.images.shape)}")  # fmt: skip
    return maps


def map_loss(network: MapNetwork, x: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of class logits, or the L1 error of sigmoid depth, against target [N, H, W]."""
    out = network(x)
    if network.config.task == "segmentation":
        return F.cross_entropy(out, target.long())
    return (torch.sigmoid(out[:, 0]) - target).abs().mean()


def train_map_network(
    dataset: ImageDataset,
    task: MapTask,
    *,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    width: int = 32,
    device: torch.device | str = "cpu",
) -> MapNetwork:
    """A MapNetwork trained (AdamW, warm-up then cosine LR) to predict dataset.maps[task] from
    its images; eval mode on return."""
    if steps < 1 or batch_size < 1:
        raise ConfigError(
            f"map network training needs steps, batch_size >= 1: {steps}, {batch_size}"
        )
    maps = task_maps(dataset, task)[:, 0].to(device)
    images = (dataset.images.float() / 127.5 - 1.0).to(device)  # [N, C, H, W] in [-1, 1]
    classes = max(int(maps.max()) + 1, dataset.num_classes + 1) if task == "segmentation" else 1
    config = MapNetworkConfig(dataset.name, task, images.shape[1], classes, width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = MapNetwork(config).to(device)
    generator = torch.Generator().manual_seed(seed)

    def batch_loss() -> Tensor:
        idx = torch.randint(0, len(images), (batch_size,), generator=generator).to(device)
        return map_loss(network, images[idx], maps[idx])

    fit(network, batch_loss, steps=steps, lr=lr, what=f"{task} re-extractor on {dataset.name}")
    return network.eval()


def cached_map_network(
    dataset: ImageDataset,
    task: MapTask,
    *,
    cache: Path,
    steps: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[MapNetwork, Path, bool]:
    """(network, its folder, whether it was trained now): loaded from
    cache/map-networks/<dataset>-<key>, or trained (train_map_network's defaults, or `steps`)
    and saved there."""
    settings = {"task": task, **({} if steps is None else {"steps": steps})}
    folder = classifier_dir(dataset, settings, cache, kind="map-networks")
    if (folder / CONFIG_FILE).is_file():
        return load_map_network(folder, device), folder, False
    network = train_map_network(
        dataset, task, device=device, **({} if steps is None else {"steps": steps})
    )
    save_map_network(network, folder)
    return network, folder, True


def reextracted_maps(images: Tensor, setting: HintSetting, task: MapTask) -> tuple[Tensor, Path]:
    """The cached task network's maps [N, H, W] of uint8 images [N, C, H, W] (on the CPU), and
    the network's folder; trained on setting.train_split first when not cached."""
    if setting.train_split is None:
        raise ConfigError(f"metric hint for {task} needs the training split (its {task} maps)")
    network, folder, _ = cached_map_network(
        setting.train_split(), task, cache=setting.cache, steps=setting.steps, device=setting.device
    )
    chunks = symmetric(images).split(256)
    return torch.cat([network.predict(x.to(setting.device)).cpu() for x in chunks]), folder
