"""Frozen text encoders for unCLIP: captions -> token states, their mask, and one pooled,
L2-normalised embedding per caption. Encoders are found by name in TEXT_ENCODERS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.core.registry import Registry


@dataclass(frozen=True)
class TextEncoding:
    """What a text encoder gives for N captions."""

    tokens: Tensor  # [N, L, D] float: the last hidden states
    mask: Tensor  # [N, L] bool: True for real tokens
    pooled: Tensor  # [N, E] float, unit L2 norm: the caption's embedding

    def to(self, device: torch.device | str) -> TextEncoding:
        return TextEncoding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


class TextEncoder(Protocol):
    """A frozen text encoder. `name` identifies its weights (recorded by runs that use it),
    `dim` is E, the size of `pooled`, and `token_dim` is D."""

    name: str
    dim: int
    token_dim: int

    def encode(self, texts: list[str]) -> TextEncoding: ...

    def to(self, device: torch.device | str) -> TextEncoder: ...


# name -> factory(path): path is the encoder's local folder (None: its packaged default).
TextEncoderFactory = Callable[["Path | None"], TextEncoder]
TEXT_ENCODERS: Registry[TextEncoderFactory] = Registry("text encoder")


def load_text_encoder(name: str, path: str | Path | None = None) -> TextEncoder:
    """The registered text encoder `name`, from the local folder `path` where it needs one."""
    return TEXT_ENCODERS.get(name)(Path(path).expanduser() if path is not None else None)


def mean_pool(tokens: Tensor, mask: Tensor) -> Tensor:
    """Masked mean of token states [N, L, D] -> [N, D] (sentence-transformers' Pooling)."""
    weights = mask.to(tokens.dtype)[:, :, None]  # [N, L, 1]
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def l2_normalize(x: Tensor) -> Tensor:
    """x / ||x|| along the last axis (sentence-transformers' Normalize, CLIP's embeddings)."""
    return F.normalize(x, dim=-1)
