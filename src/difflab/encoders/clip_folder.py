"""A local transformers CLIP folder (`CLIPModel.save_pretrained` plus its tokenizer): the text
tower and projection as a TextEncoder, the vision tower and projection as an ImageEncoder.
Nothing is downloaded: the folder must hold the weights and the tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.encoders.image import IMAGE_ENCODERS
from difflab.encoders.text import TEXT_ENCODERS, TextEncoding, l2_normalize

# CLIP's image normalisation (OpenAI CLIP, preprocessor_config.json image_mean / image_std).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_clip_model(folder: Path):
    """CLIPModel from a local folder, frozen, in eval mode."""
    from transformers import CLIPModel

    if not (folder / "config.json").is_file():
        raise DataError(f"CLIP folder {folder} has no config.json")
    try:
        model = CLIPModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise DataError(f"CLIP folder {folder}: {str(err).splitlines()[0]}") from None
    return model.eval().requires_grad_(False)


class CLIPTextEncoder:
    """CLIP's text tower: tokens are its last hidden states, pooled is the projected end
    token (CLIPModel.get_text_features), L2-normalised."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer

        self.model = load_clip_model(folder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as err:
            raise DataError(f"CLIP folder {folder}: no tokenizer ({err})") from None
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self.name = f"clip:{folder.resolve()}"
        self.dim = int(self.model.config.projection_dim)
        self.token_dim = int(self.model.config.text_config.hidden_size)

    def to(self, device: torch.device | str) -> CLIPTextEncoder:
        self.model.to(device)
        return self

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEncoding:
        device = self.model.text_projection.weight.device
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(device)
        out = self.model.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        pooled = self.model.text_projection(out.pooler_output)
        mask = batch["attention_mask"].bool()
        return TextEncoding(out.last_hidden_state.float(), mask, l2_normalize(pooled.float()))


class CLIPImageEncoder:
    """CLIP's vision tower: images in [-1, 1] resized (bicubic) to its input size, grey
    images repeated to RGB, normalised by CLIP's mean and std, projected, L2-normalised."""

    def __init__(self, folder: Path) -> None:
        self.model = load_clip_model(folder)
        self.size = int(self.model.config.vision_config.image_size)
        self.mean, self.std = _preprocessor_stats(folder)
        self.name = f"clip:{folder.resolve()}"
        self.dim = int(self.model.config.projection_dim)

    def to(self, device: torch.device | str) -> CLIPImageEncoder:
        self.model.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """[N, C, H, W] in [-1, 1] (C = 1 or 3) -> [N, E] of unit norm."""
        weight = self.model.visual_projection.weight
        x = (images.to(weight.device, torch.float32) + 1) / 2  # [0, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[1] != 3:
            raise ConfigError(
                f"CLIP image encoder {self.name}: expected 1 or 3 channels, got {x.shape[1]}"
            )
        x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False)
        mean = torch.tensor(self.mean, device=x.device)[:, None, None]
        std = torch.tensor(self.std, device=x.device)[:, None, None]
        out = self.model.vision_model(pixel_values=((x - mean) / std).to(weight.dtype))
        return l2_normalize(self.model.visual_projection(out.pooler_output).float())


def _preprocessor_stats(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """image_mean / image_std of the folder's preprocessor_config.json, else CLIP's."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return CLIP_MEAN, CLIP_STD
    config = json.loads(path.read_text())
    return tuple(config.get("image_mean", CLIP_MEAN)), tuple(config.get("image_std", CLIP_STD))


@TEXT_ENCODERS.register("clip")
def clip_text(path: Path | None) -> CLIPTextEncoder:
    if path is None:
        raise ConfigError("text encoder 'clip' needs a local CLIP folder (text_encoder_path)")
    return CLIPTextEncoder(path)


IMAGE_ENCODERS.register("clip")(CLIPImageEncoder)
