"""Image variations of an unCLIP decoder run (Ramesh et al. 2022, Section 3.1): images are
encoded by the run's recorded image encoder and the decoder samples from their embeddings;
image i of a generation gets embedding i % M."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from difflab.runs.image_embedding import recorded_encoder
from difflab.runs.load import LoadedRun
from difflab.sampling.hints import images_from_files


def variation_embeddings(
    path: str | Path, run: LoadedRun, run_name: str, device: torch.device | str
) -> Tensor:
    """Embeddings [M, E] of the image file or folder `path`, decoded at the run's image shape
    and encoded by the run's image encoder; one-line errors name a missing or mismatched
    encoder (runs/image_embedding.recorded_encoder) or a bad image file."""
    return image_file_embeddings(
        path, run.image_encoder, run.embedding_dim, run.image_shape, run_name, device
    )


@torch.no_grad()
def image_file_embeddings(
    path: str | Path,
    image_encoder: str | None,
    embedding_dim: int,
    image_shape: tuple[int, int, int],
    run_name: str,
    device: torch.device | str,
) -> Tensor:
    """variation_embeddings from what a run records (model.json, an export's export.json): the
    encoder's folder, E and the images' shape (C, H, W)."""
    encoder = recorded_encoder(image_encoder, embedding_dim, run_name).to(device)
    images = images_from_files(path, image_shape, "--variations")
    return encoder.encode(images.to(device)).float()
