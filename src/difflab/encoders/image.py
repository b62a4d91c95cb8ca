"""Frozen image encoders for unCLIP: images [N, C, H, W] in [-1, 1] -> one L2-normalised
embedding [N, E] each. A folder holds either a transformers CLIP model (its vision tower and
projection) or difflab's own LiT encoder; `load_image_encoder` tells them apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from difflab.core.errors import DataError
from difflab.core.registry import Registry


class ImageEncoder(Protocol):
    """A frozen image encoder. `name` identifies its weights, `dim` is E."""

    name: str
    dim: int

    def encode(self, images: Tensor) -> Tensor: ...

    def to(self, device: torch.device | str) -> ImageEncoder: ...


# folder kind -> loader(folder); the kind is read from the folder by `folder_kind`.
IMAGE_ENCODERS: Registry[Callable[[Path], ImageEncoder]] = Registry("image encoder")
LIT_CONFIG = "lit_encoder.json"  # marks a folder saved by difflab's LiT training


def folder_kind(folder: Path) -> str:
    """'lit' for a LiT encoder folder, 'clip' for a transformers CLIPModel folder."""
    if not folder.is_dir():
        raise DataError(f"image encoder folder {folder} does not exist")
    if (folder / LIT_CONFIG).is_file():
        return "lit"
    config = folder / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (OSError, ValueError) as err:
            raise DataError(f"image encoder {config}: not readable JSON ({err})") from None
        if model_type == "clip":
            return "clip"
    raise DataError(
        f"image encoder folder {folder} holds neither a LiT encoder ({LIT_CONFIG}) "
        "nor a transformers CLIP model (config.json with model_type 'clip')"
    )


def load_image_encoder(path: str | Path) -> ImageEncoder:
    """The frozen image encoder saved in folder `path` (LiT or CLIP), in eval mode on the CPU."""
    folder = Path(path).expanduser()
    return IMAGE_ENCODERS.get(folder_kind(folder))(folder)
