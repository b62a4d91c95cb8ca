"""LiT image encoders trained on demand and cached, one per dataset, text encoder and setting,
in <cache_root>/lit/<dataset>-<key> (the key hashes the training images, the text encoder's
name and the settings), beside the evaluation classifiers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import torch

from difflab.data import ImageDataset, load_dataset
from difflab.data.captions import captions_for
from difflab.encoders import TextEncoder, load_image_encoder
from difflab.encoders.image import LIT_CONFIG
from difflab.encoders.lit_encoder import LiTImageEncoder, save_lit
from difflab.evaluation.reference import images_sha256
from difflab.lit.retrieval import caption_table, retrieval_accuracy
from difflab.lit.training import LiTSettings, train_lit


def lit_dir(dataset: ImageDataset, text_encoder: str, settings: LiTSettings, cache: Path) -> Path:
    """cache/lit/<dataset>-<12 hex chars of sha256(name, split, images, text encoder, settings)>."""
    parts = [dataset.name, dataset.split, images_sha256(dataset.images), text_encoder]
    parts.append(sorted(dataclasses.asdict(settings).items()))
    key = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name)
    return cache / "lit" / f"{slug}-{key}"


def train_and_save(
    train: ImageDataset,
    test: ImageDataset | None,
    text_encoder: TextEncoder,
    settings: LiTSettings,
    folder: Path,
    device: torch.device | str = "cpu",
) -> tuple[LiTImageEncoder, dict[str, float]]:
    """Train LiT on train, score retrieval on test's images against the held-out templates
    (metric `retrieval_heldout`, with `chance`), save both to folder."""
    encoder = train_lit(train, text_encoder, settings, device=device)
    metrics: dict[str, float] = {"chance": 1 / train.num_classes}
    if test is not None:
        table = caption_table(text_encoder, captions_for(train.class_names), "eval")
        metrics["retrieval_heldout"] = retrieval_accuracy(encoder, test.images, test.labels, table)
        metrics["test_images"] = len(test)
    save_lit(encoder.tower, folder, metrics)
    return encoder, metrics


def cached_lit(
    dataset: str,
    root: str | Path | None,
    text_encoder: TextEncoder,
    settings: LiTSettings,
    cache: Path,
) -> Path:
    """The folder of the LiT encoder for dataset's train split: found in the cache, or trained
    now (scored on its test split) and saved there."""
    train = load_dataset(dataset, root=root, split="train")
    folder = lit_dir(train, text_encoder.name, settings, cache)
    if not (folder / LIT_CONFIG).is_file():
        test = load_dataset(dataset, root=root, split="test")
        train_and_save(train, test, text_encoder, settings, folder)
    load_image_encoder(folder)  # unreadable cache entries fail here, naming the file
    return folder
