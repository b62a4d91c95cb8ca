"""A frozen CLIP text encoder: captions -> Condition(text=...), and the null text (or the
captions' token ids alone, for a network whose text encoder trains).

As in Stable Diffusion, a caption is tokenized to the tokenizer's model_max_length (77),
padded with the tokenizer's pad token (SD v1: the end token, SD 2.x: "!") and truncated, and
its embedding is the text model's last hidden state [N, 77, D]. The null text, used by
caption dropout and classifier-free guidance, is the empty prompt's embedding (SD's
convention), not zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from difflab.config.schema import ModelConfig
from difflab.core.condition import Condition
from difflab.integrations.stable_diffusion.folder import load_clip, load_tokenizer


class TextEncoder(nn.Module):
    """A frozen tokenizer + CLIP text model. Move it with .to(device)."""

    def __init__(self, tokenizer, text_model: nn.Module) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.text_model = text_model.eval().requires_grad_(False)
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

    @property
    def max_length(self) -> int:
        """The tokens per caption: the tokenizer's model_max_length (77)."""
        return int(self.tokenizer.model_max_length)

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> Tensor:
        """Captions -> last hidden states [N, max_length, D] (float32)."""
        hidden = self.text_model(tokenize(self.tokenizer, captions).to(self.device))[0]
        return hidden.float()

    def condition(self, captions: Sequence[str]) -> Condition:
        return Condition(text=self.encode(captions))

    @property
    def null_text(self) -> Tensor:
        """The empty prompt's embedding [1, max_length, D], computed once per device."""
        if self._null_text is None or self._null_text.device != self.device:
            self._null_text = self.encode([""])
        return self._null_text


class CaptionTokens:
    """Captions -> Condition(text=token ids [N, max_length]), for a network that encodes them
    with a text encoder that trains (SDUNet with model.lora.text_encoder); null_text is the
    empty prompt's ids [1, max_length], encoded by that network as every caption is."""

    def __init__(self, tokenizer, device: torch.device | str = "cpu") -> None:
        self.tokenizer, self.device = tokenizer, torch.device(device)

    def to(self, device: torch.device | str) -> CaptionTokens:
        return CaptionTokens(self.tokenizer, device)

    def encode(self, captions: Sequence[str]) -> Tensor:
        return tokenize(self.tokenizer, captions).to(self.device)

    def condition(self, captions: Sequence[str]) -> Condition:
        return Condition(text=self.encode(captions))

    @property
    def null_text(self) -> Tensor:
        return self.encode([""])


def tokenize(tokenizer, captions: Sequence[str]) -> Tensor:
    """Token ids [N, model_max_length] (long): SD's padding (the tokenizer's pad token) and
    truncation."""
    return tokenizer(
        list(captions),
        padding="max_length",
        max_length=int(tokenizer.model_max_length),
        truncation=True,
        return_tensors="pt",
    ).input_ids


def caption_text(model: ModelConfig) -> CaptionText:
    """What turns a run's captions into its condition: model.pretrained's frozen text encoder,
    or its tokenizer alone when the network holds a text encoder that trains (LoRA)."""
    if model.lora.rank > 0 and model.lora.text_encoder:
        return CaptionTokens(load_tokenizer(str(model.pretrained)))
    return TextEncoder.from_folder(str(model.pretrained))


CaptionText = TextEncoder | CaptionTokens  # captions -> Condition(text=...), and null_text
