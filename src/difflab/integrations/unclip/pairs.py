"""A split's (caption, image) pairs encoded once by the frozen encoders into PriorPairs."""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.integrations.unclip.prior_data import PriorPairs, pad_tokens
from difflab.networks.prior import PriorConfig

ENCODE_BATCH = 256  # pairs per encoder call


@torch.no_grad()
def encode_pairs(
    captions: list[str], images: Tensor, text_encoder, image_encoder, device: torch.device
) -> PriorPairs:
    """Captions and their uint8 images [N, C, H, W] -> PriorPairs (on the CPU), in batches of
    ENCODE_BATCH; images reach the image encoder in [-1, 1]."""
    parts, pooled, embedded = [], [], []
    for start in range(0, len(captions), ENCODE_BATCH):
        text = text_encoder.encode(captions[start : start + ENCODE_BATCH])
        parts.append((text.tokens.cpu(), text.mask.cpu()))
        pooled.append(text.pooled.cpu())
        x = images[start : start + ENCODE_BATCH].to(device).float() / 127.5 - 1.0
        embedded.append(image_encoder.encode(x).float().cpu())
    tokens, mask = pad_tokens(parts)
    return PriorPairs(tokens=tokens, mask=mask, pooled=torch.cat(pooled), image=torch.cat(embedded))


def check_tokens(config: Config, pairs: PriorPairs) -> None:
    """The prior's model.options fit the encodings: token width and token count."""
    options = config.model.options
    _, length, dim = pairs.tokens.shape
    text_dim = options.get("text_dim", PriorConfig.text_dim)
    if text_dim != dim:
        raise ConfigError(
            f"config key 'model.options.text_dim' is {text_dim} but text encoder "
            f"{config.model.unclip.text_encoder!r} gives token states of {dim}"
        )
    most = options.get("max_text_tokens", PriorConfig.max_text_tokens)
    if most < length:
        raise ConfigError(
            f"config key 'model.options.max_text_tokens' is {most} but a caption has {length} "
            "tokens"
        )


def load_pairs(config: Config, split: str, device: torch.device) -> PriorPairs:
    """The pairs of the captioned dataset data.dataset's split, encoded by model.unclip's
    encoders on device."""
    raise ConfigError("unCLIP prior data need the captioned datasets and encoders (branch clip)")
