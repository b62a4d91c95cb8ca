"""LiT training: a LiTImageTower learns to put each image next to its caption's embedding under
a locked text encoder (InfoNCE, learned temperature, AdamW, cosine LR).

Captions are drawn per image from its class's training templates (data/captions.py); the
text embeddings of all of them are computed once. Weights, batches and captions come from
generators seeded by `seed`, so a run is reproducible on one device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.core.progress import progress
from difflab.data import ImageDataset
from difflab.data.captions import captions_for
from difflab.encoders import TextEncoder
from difflab.encoders.lit_encoder import LiTConfig, LiTImageEncoder, LiTImageTower
from difflab.lit.loss import info_nce
from difflab.lit.retrieval import caption_table


@dataclass(frozen=True)
class LiTSettings:
    """LiT training settings; they name the cache folder."""

    steps: int = 300
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ConfigError(
                f"LiT training needs steps >= 1, batch_size >= 2, lr > 0; got {self.steps}, "
                f"{self.batch_size}, {self.lr}"
            )


def cosine_lr(step: int, steps: int, lr: float) -> float:
    """Cosine decay from lr to 0 over `steps` (Loshchilov & Hutter 2017), no warm-up."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * step / steps))


def train_lit(
    dataset: ImageDataset,
    text_encoder: TextEncoder,
    settings: LiTSettings = LiTSettings(),  # noqa: B008  (frozen)
    *,
    device: torch.device | str = "cpu",
) -> LiTImageEncoder:
    """Train an image tower on dataset (uint8 images, labels) against text_encoder's pooled
    embeddings of its classes' training captions; returned frozen, in eval mode."""
    images = _check(dataset)
    captions = captions_for(dataset.class_names)
    texts, pooled, _ = caption_table(text_encoder, captions, "train")
    row = {text: i for i, text in enumerate(texts)}
    pooled = pooled.to(device)
    _, c, size, _ = images.shape
    config = LiTConfig(c, size, text_encoder.dim, text_encoder.name, settings.width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        tower = LiTImageTower(config).to(device)
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(tower.parameters(), lr=settings.lr, weight_decay=1e-4)
    images, labels = images.to(device), dataset.labels
    bar = progress(settings.steps, f"LiT image encoder on {dataset.name}", unit="step")
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, settings.steps, settings.lr)
        idx = torch.randint(0, len(images), (settings.batch_size,), generator=generator)
        drawn = captions.draw(labels[idx], generator)
        text = pooled[torch.tensor([row[t] for t in drawn], device=device)]  # [B, E]
        x = images[idx.to(device)].float() / 127.5 - 1
        loss = info_nce(tower(x), text, tower.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
    bar.close()
    return LiTImageEncoder(tower.cpu(), f"lit:{dataset.name}")


def _check(dataset: ImageDataset) -> Tensor:
    images = dataset.images
    if images.ndim != 4 or images.shape[2] != images.shape[3] or len(images) < 2:
        raise DataError(
            f"LiT needs at least 2 square images [N, C, H, W] in {dataset.name!r}, got "
            f"{tuple(images.shape)}"
        )
    return images
