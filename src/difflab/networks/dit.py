"""Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers"):
patchify, fixed 2-D sin-cos positions, adaLN-Zero blocks, a linear decoder back to patches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difflab.conditioning import Condition
from difflab.networks.config_check import check_types, require
from difflab.networks.layers import LabelEmbedding, TimestepEmbedding, VectorEmbedding


@dataclass(frozen=True)
class DiTConfig:
    in_channels: int = 4
    out_channels: int = 4
    image_size: int = 32
    patch_size: int = 2
    hidden_size: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_classes: int | None = None  # None: unconditional
    freq_dim: int = 256  # sinusoidal features of t before the time MLP
    embedding_dim: int = 0  # E of cond.embedding [N, E]; 0: none
    embedding_tokens: int = 4  # extra tokens cond.embedding is projected to (unCLIP: 4)

    def __post_init__(self) -> None:
        check_types(self)
        require(self.embedding_dim >= 0, self, "embedding_dim", "expected >= 0 (0: none)")
        require(self.embedding_tokens >= 0, self, "embedding_tokens", "expected >= 0")
        for key in ("in_channels", "out_channels", "patch_size", "depth", "num_heads"):
            require(getattr(self, key) >= 1, self, key, "expected a positive integer")
        require(self.mlp_ratio > 0, self, "mlp_ratio", "expected > 0")
        require(self.num_classes is None or self.num_classes >= 1, self, "num_classes", ">= 1")
        require(self.freq_dim >= 2 and self.freq_dim % 2 == 0, self, "freq_dim", "even, >= 2")
        require(
            self.image_size >= 1 and self.image_size % self.patch_size == 0,
            self,
            "image_size",
            f"expected a multiple of patch_size={self.patch_size}",
        )
        require(
            self.hidden_size % 4 == 0 and self.hidden_size % self.num_heads == 0,
            self,
            "hidden_size",
            f"expected a multiple of 4 and of num_heads={self.num_heads}",
        )

    @property
    def grid_size(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size


def sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """[P] positions -> [P, dim] as [sin(pos * w_i), cos(pos * w_i)], w_i = 10000^(-2i/dim)
    (Vaswani et al. 2017; MAE / DiT `get_1d_sincos_pos_embed_from_grid`)."""
    omega = 1.0 / 10000.0 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = pos.double()[:, None] * omega[None]  # [P, dim/2]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid_size: int) -> Tensor:
    """Fixed 2-D position embedding [grid_size**2, dim]: half the channels encode the row,
    half the column (DiT `get_2d_sincos_pos_embed`); tokens are in row-major order."""
    coords = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # [G, G] each
    emb_rows = sincos_1d(dim // 2, rows.flatten())
    emb_cols = sincos_1d(dim // 2, cols.flatten())
    return torch.cat([emb_rows, emb_cols], dim=1).float()


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """Adaptive layer norm's affine part: x * (1 + scale) + shift, per sample."""
    return x * (1 + scale[:, None]) + shift[:, None]


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens with scaled_dot_product_attention."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).view(n, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x [N, heads, L, D/heads]
        out = F.scaled_dot_product_attention(q, k, v)  # [N, heads, L, D/heads]
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning (Peebles & Xie 2023, Section 3.2):
    shift, scale and a zero-initialised gate for both the attention and the MLP branch."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """adaLN then a linear map from each token to its patch's output pixels."""

    def __init__(self, dim: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """F(x, t, cond) -> tensor shaped [N, out_channels, H, W]; the output starts at zero."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        dim, p = config.hidden_size, config.patch_size
        self.patch_embed = nn.Conv2d(config.in_channels, dim, kernel_size=p, stride=p)
        self.register_buffer("pos_embed", sincos_2d(dim, config.grid_size), persistent=False)
        self.time_embed = TimestepEmbedding(config.freq_dim, dim)
        has_labels = config.num_classes is not None
        self.label_embed = LabelEmbedding(config.num_classes, dim) if has_labels else None
        self.vector_embed, self.vector_tokens = self._build_vector_embed(config)
        self.blocks = nn.ModuleList(
            DiTBlock(dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.final = FinalLayer(dim, p, config.out_channels)
        self.initialize()

    def initialize(self) -> None:
        """DiT's initialisation: Xavier-uniform linears and patch embedding, N(0, 0.02) time MLP
        (labels keep LabelEmbedding's N(0, 0.02)), and adaLN-Zero: every modulation and the
        output layer start at zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.config.hidden_size, -1))
        nn.init.zeros_(self.patch_embed.bias)
        for layer in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in [*self.blocks, self.final]:
            nn.init.zeros_(block.modulation[1].weight)
            nn.init.zeros_(block.modulation[1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)
        if self.vector_embed is not None:
            self.vector_embed.reset(std=0.02)  # the labels' scale
        if self.vector_tokens is not None:
            self.vector_tokens.reset(std=1.0)  # the scale of the position embeddings

    @staticmethod
    def _build_vector_embed(
        config: DiTConfig,
    ) -> tuple[VectorEmbedding | None, VectorEmbedding | None]:
        """cond.embedding projected into the conditioning vector c and to embedding_tokens extra
        tokens (unCLIP's decoder, Ramesh et al. 2022, Section 2.1); None, None when off."""
        e, dim, k = config.embedding_dim, config.hidden_size, config.embedding_tokens
        if e == 0:
            return None, None
        tokens = VectorEmbedding(e, k * dim, std=1.0) if k > 0 else None
        return VectorEmbedding(e, dim, std=0.02), tokens

    def forward(self, x: Tensor, t: Tensor, cond: Condition | None = None) -> Tensor:
        n = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # [N, T, D]
        tokens = tokens + self.pos_embed.to(tokens.dtype)
        c = self.time_embed(t.expand(n))  # [N, D]
        if self.label_embed is not None:
            c = c + self.label_embed(cond, n, x.device)
        if self.vector_embed is not None:
            c = c + self.vector_embed(cond, n, x.device)
        extra = 0
        if self.vector_tokens is not None:
            extra = self.config.embedding_tokens
            vector = self.vector_tokens(cond, n, x.device).view(n, extra, -1)  # [N, K, D]
            tokens = torch.cat([vector.to(tokens.dtype), tokens], dim=1)  # [N, K + T, D]
        for block in self.blocks:
            tokens = block(tokens, c)
        return self.unpatchify(self.final(tokens[:, extra:], c))

    def unpatchify(self, patches: Tensor) -> Tensor:
        """[N, T, p*p*C] -> [N, C, H, W], T = (H/p) * (W/p) in row-major order."""
        n, g, p = patches.shape[0], self.config.grid_size, self.config.patch_size
        c = self.config.out_channels
        x = patches.reshape(n, g, g, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)  # [N, C, G, p, G, p]
        return x.reshape(n, c, g * p, g * p)
