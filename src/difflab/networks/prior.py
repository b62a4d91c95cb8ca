"""unCLIP's diffusion prior (Ramesh et al. 2022, Section 2.2): a transformer over the sequence
[text token states, pooled text embedding, time embedding, noised image embedding, output
token] whose output token's final state is the prediction for the image embedding [N, E]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.conditioning import Condition
from difflab.networks.config_check import check_types, require
from difflab.networks.layers import TimestepEmbedding, zero_init

FIXED_TOKENS = 4  # pooled text, time, noised embedding, output


@dataclass(frozen=True)
class PriorConfig:
    in_channels: int = 384  # E: the image embedding's size (the pooled text embedding's too)
    text_dim: int = 384  # D of the text token states cond.text [N, L, D]
    width: int = 256
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    max_text_tokens: int = 77  # text token positions learned
    causal: bool = True  # the paper's causal attention mask; False: full attention
    freq_dim: int = 256  # sinusoidal features of t before the time MLP
    # E of cond.embedding, the pooled text embedding: the image embedding's (one joint space,
    # which the candidates' cosine to the text needs); 0 says the same
    embedding_dim: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        joint = f"0 or in_channels={self.in_channels} (text and image share one space)"
        require(self.embedding_dim in (0, self.in_channels), self, "embedding_dim", joint)
        for key in ("in_channels", "text_dim", "depth", "num_heads", "max_text_tokens"):
            require(getattr(self, key) >= 1, self, key, "expected a positive integer")
        require(self.mlp_ratio > 0, self, "mlp_ratio", "expected > 0")
        require(self.freq_dim >= 2 and self.freq_dim % 2 == 0, self, "freq_dim", "even, >= 2")
        require(
            self.width >= 1 and self.width % self.num_heads == 0,
            self,
            "width",
            f"expected a positive multiple of num_heads={self.num_heads}",
        )


def attention_mask(text_mask: Tensor, fixed: int, causal: bool, num_heads: int) -> Tensor:
    """[N * heads, S, S] bool, True where query i may NOT attend to key j (nn.Transformer's
    convention); S = L + fixed. Masked text tokens are hidden from every other token, each
    token always sees itself (so no row is all masked), causal hides later tokens."""
    n, length = text_mask.shape
    size = length + fixed
    real = torch.cat([text_mask, text_mask.new_ones(n, fixed)], dim=1)  # [N, S]
    allowed = real[:, None, :].expand(n, size, size)  # [N, S(query), S(key)]
    if causal:
        allowed = allowed & torch.ones(size, size, dtype=torch.bool, device=real.device).tril()
    allowed = allowed | torch.eye(size, dtype=torch.bool, device=real.device)
    return (~allowed).repeat_interleave(num_heads, dim=0)  # [N * heads, S, S]


class DiffusionPrior(nn.Module):
    """F(x, t, cond) -> x's shape for noised image embeddings x [N, E] (or [N, E, 1, 1]);
    cond.text [N, L, D] with cond.text_mask [N, L] and cond.embedding [N, E] (the pooled text
    embedding). Missing text is the null condition: no tokens, zero pooled embedding. The
    output starts at zero."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.text_proj = nn.Linear(config.text_dim, w)
        self.pooled_proj = nn.Linear(config.in_channels, w)
        self.x_proj = nn.Linear(config.in_channels, w)
        self.time_embed = TimestepEmbedding(config.freq_dim, w)
        self.text_pos = nn.Parameter(torch.randn(config.max_text_tokens, w) * 0.02)
        self.fixed_pos = nn.Parameter(torch.randn(FIXED_TOKENS, w) * 0.02)
        self.out_token = nn.Parameter(torch.randn(w) * 0.02)
        layer = nn.TransformerEncoderLayer(
            w,
            config.num_heads,
            int(w * config.mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(w)
        self.out_proj = zero_init(nn.Linear(w, config.in_channels))

    def forward(self, x: Tensor, t: Tensor, cond: Condition | None = None) -> Tensor:
        shape, n = x.shape, x.shape[0]
        x = x.reshape(n, -1)  # [N, E]: also an [N, E, 1, 1] "image" (a run's image_shape)
        text, text_mask, pooled = self._text(cond, x)  # [N, L, W], [N, L], [N, W]
        fixed = torch.stack(
            [
                pooled,
                self.time_embed(t.expand(n)).to(x.dtype),
                self.x_proj(x),
                self.out_token.to(x.dtype).expand(n, -1),
            ],
            dim=1,
        )  # [N, 4, W]
        tokens = torch.cat([text, fixed + self.fixed_pos.to(x.dtype)], dim=1)  # [N, L + 4, W]
        mask = attention_mask(text_mask, FIXED_TOKENS, self.config.causal, self.config.num_heads)
        tokens = self.blocks(tokens, mask=mask)
        return self.out_proj(self.norm_out(tokens[:, -1])).view(shape)  # [N, E]

    def _text(self, cond: Condition | None, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(projected token states + positions [N, L, W], their mask [N, L], projected pooled
        embedding [N, W]); no tokens and a zero pooled embedding where cond has none."""
        n, c = x.shape[0], self.config
        text = cond.text if cond is not None else None
        pooled = cond.embedding if cond is not None else None
        if pooled is None:
            pooled = x.new_zeros(n, c.in_channels)
        if text is None:
            text = x.new_zeros(n, 0, c.text_dim)
        length = text.shape[1]
        if length > c.max_text_tokens:
            raise ValueError(
                f"cond.text has {length} tokens; this prior was built for max_text_tokens="
                f"{c.max_text_tokens}"
            )
        mask = cond.text_mask if cond is not None and cond.text_mask is not None else None
        if mask is None:
            mask = torch.ones(n, length, dtype=torch.bool, device=x.device)
        tokens = self.text_proj(text.to(x.dtype)) + self.text_pos[:length].to(x.dtype)
        return tokens, mask.to(torch.bool), self.pooled_proj(pooled.to(x.dtype))
