"""The image embeddings of an unCLIP decoder run (Ramesh et al. 2022, Section 2.1): the frozen
image encoder of model.embedding (a LiT or CLIP folder, or 'lit': the cached LiT encoder of
data.dataset, trained on demand), and the embeddings [N, E] of a split, computed once when the
session opens (the encoder is frozen, so a resumed run gets the same ones). model.json records
the encoder's folder and E; sampling (--variations) loads that folder and checks E.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.data import BatchTransform
from difflab.encoders import ImageEncoder, load_image_encoder, load_text_encoder
from difflab.evaluation.classifier_cache import cache_root
from difflab.lit import LiTSettings, cached_lit
from difflab.parallel.distributed import barrier, is_main

ENCODE_BATCH = 256


def encoder_folder(config: Config) -> Path:
    """The folder of model.embedding.image_encoder; for 'lit', the cached LiT encoder of
    data.dataset's train split against model.embedding.text_encoder (trained if missing)."""
    e = config.model.embedding
    if e.image_encoder is None:
        raise ConfigError("model.embedding.image_encoder is null: this run has no embeddings")
    if e.image_encoder != "lit":
        return Path(e.image_encoder).expanduser().resolve()
    text = load_text_encoder(e.text_encoder, e.text_encoder_path)
    return cached_lit(config.data.dataset, config.data.root, text, LiTSettings(), cache_root())


def shared_encoder_folder(config: Config) -> Path:
    """encoder_folder on every rank of a process group, rank 0 first ('lit' may train the
    encoder into the cache that the other ranks then read)."""
    folder = encoder_folder(config) if is_main() else None
    barrier()
    return folder or encoder_folder(config)


def check_dim(encoder: ImageEncoder, embedding_dim: int, where: str) -> None:
    """ConfigError naming the encoder and `where` when its E is not the network's."""
    if encoder.dim != embedding_dim:
        raise ConfigError(
            f"image encoder {encoder.name} gives {encoder.dim}-d embeddings but {where} was "
            f"built for embedding_dim={embedding_dim}"
        )


def recorded_encoder(image_encoder: str | None, embedding_dim: int, run: str) -> ImageEncoder:
    """The image encoder a run recorded (model.json), checked against its embedding_dim; a run
    without one is refused."""
    if image_encoder is None or embedding_dim == 0:
        raise ConfigError(
            f"run {run} is not an unCLIP decoder (model.embedding.image_encoder was null): it "
            "takes no image embeddings (--variations)"
        )
    encoder = load_image_encoder(image_encoder)
    check_dim(encoder, embedding_dim, f"run {run}")
    return encoder


@torch.no_grad()
def image_embeddings(
    encoder: ImageEncoder,
    images: Tensor,
    transform: BatchTransform,
    device: torch.device | str,
) -> Tensor:
    """[N, E] float32 on device: encoder of transform({"image": uint8 [N, C, H, W]}), the
    run's deterministic pipeline (to [-1, 1], resize), in batches."""
    encoder.to(device)
    chunks = [
        encoder.encode(transform({"image": chunk.to(device)})["image"]).float()
        for chunk in images.split(ENCODE_BATCH)
    ]
    return torch.cat(chunks).to(device)
