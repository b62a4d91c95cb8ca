"""A frozen CLIP text encoder: captions -> Condition(text=...), and the null text.

As in Stable Diffusion, a caption is tokenized to the tokenizer's model_max_length (77),
padded with the end token and truncated, and its embedding is the text model's last hidden
state [N, 77, D]. The null text, used by caption dropout and classifier-free guidance, is
the empty prompt's embedding (SD's convention), not zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from difflab.core.condition import Condition
from difflab.integrations.stable_diffusion.folder import load_clip


class TextEncoder(nn.Module):
    """A frozen tokenizer + CLIP text model. Move it with .to(device)."""

    def __init__(self, tokenizer, text_model: nn.Module) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.text_model = text_model.eval().requires_grad_(False)
        self.max_length = int(tokenizer.model_max_length)
        self.register_buffer("_null_text", None, persistent=False)

    @classmethod
    def from_folder(cls, path: str | Path) -> TextEncoder:
        """The tokenizer/ and text_encoder/ of a local pipeline folder."""
        return cls(*load_clip(path))

    @property
    def device(self) -> torch.device:
        return next(self.text_model.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.text_model.config.hidden_size)

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> Tensor:
        """Captions -> last hidden states [N, max_length, D] (float32)."""
        tokens = self.tokenizer(
            list(captions),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        )
        hidden = self.text_model(tokens.input_ids.to(self.device))[0]
        return hidden.float()

    def condition(self, captions: Sequence[str]) -> Condition:
        return Condition(text=self.encode(captions))

    @property
    def null_text(self) -> Tensor:
        """The empty prompt's embedding [1, max_length, D], computed once per device."""
        if self._null_text is None or self._null_text.device != self.device:
            self._null_text = self.encode([""])
        return self._null_text
