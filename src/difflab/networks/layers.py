"""Building blocks shared by the networks: time and label embeddings, the UNet's residual,
attention and resampling blocks (Ho et al. 2020, Appendix B; layout of diffusers' UNet2DModel)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difflab.conditioning import NULL_LABEL, Condition


def frequencies(half: int, max_period: float, dtype: torch.dtype, device=None) -> Tensor:
    """f_i = max_period^(-i / half) for i < half [half], as exp(-log(max_period) i / half) in
    dtype (diffusers' float32 time features compute the same table)."""
    i = torch.arange(half, device=device, dtype=dtype)
    return torch.exp(-math.log(max_period) * i / half)


def sinusoidal_embedding(
    t: Tensor, dim: int, max_period: float = 10000.0, freqs: Tensor | None = None
) -> Tensor:
    """Transformer position encoding of a float time (Vaswani et al. 2017, Section 3.5).

    [N] -> [N, dim] as [cos(t * f_i), sin(t * f_i)], f_i = max_period^(-i / (dim / 2)).
    Computed in float32 whatever the autocast dtype, since t reaches ~1000 (in float64 for a
    float64 t: train.precision fp64). `freqs`: the float32 table, precomputed.
    """
    half = dim // 2
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    if freqs is None or dtype == torch.float64:
        freqs = frequencies(half, max_period, dtype, t.device)  # [dim/2]
    angles = t.to(dtype)[:, None] * freqs.to(dtype)[None]  # [N, dim/2]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters so its branch starts as the identity / zero output."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of t followed by a two-layer SiLU MLP."""

    def __init__(self, freq_dim: int, dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        # the float32 table as a buffer, not ops: an exported graph then holds torch's very
        # table (an exporter that folds exp() itself may land a last bit apart, which t ~ 1000
        # turns into a phase change far above float noise); not saved in checkpoints
        table = frequencies(freq_dim // 2, 10000.0, torch.float32)
        self.register_buffer("freqs", table, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        # [N, freq_dim] float32
        features = sinusoidal_embedding(t, self.freq_dim, freqs=self.freqs)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class LabelEmbedding(nn.Module):
    """Class-label embedding with one extra row (row 0) for the null label NULL_LABEL = -1, used
    by classifier-free guidance (Ho & Salimans 2022). No condition at all means the null label.
    Rows start N(0, std^2): std sets the labels' weight against the time embedding they join."""

    def __init__(self, num_classes: int, dim: int, std: float = 0.02) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)
        nn.init.normal_(self.table.weight, std=std)

    def forward(self, cond: Condition | None, batch: int, device: torch.device) -> Tensor:
        labels = cond.labels if cond is not None else None
        if labels is None:
            labels = torch.full((batch,), NULL_LABEL, dtype=torch.long, device=device)
        # Row 0 is the null label; out-of-range labels fail the lookup instead of aliasing it.
        return self.table(labels - NULL_LABEL)  # NULL_LABEL -> row 0


class VectorEmbedding(nn.Module):
    """A condition vector cond.embedding [N, E] (L2-normalised; unCLIP's image embedding) ->
    [N, dim] by one linear map; no condition is the null vector, zeros. Weights start
    N(0, std^2), so a unit-norm input gives outputs of std `std`, set like LabelEmbedding's."""

    def __init__(self, in_dim: int, dim: int, std: float) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.proj = nn.Linear(in_dim, dim)
        self.reset(std)

    def reset(self, std: float) -> None:
        nn.init.normal_(self.proj.weight, std=std)
        nn.init.zeros_(self.proj.bias)

    def forward(self, cond: Condition | None, batch: int, device: torch.device) -> Tensor:
        vector = cond.embedding if cond is not None else None
        if vector is None:
            vector = torch.zeros(batch, self.in_dim, device=device)
        if tuple(vector.shape) != (batch, self.in_dim):
            raise ValueError(
                f"cond.embedding has shape {tuple(vector.shape)}; this network was built for "
                f"embedding_dim={self.in_dim} (expected ({batch}, {self.in_dim}))"
            )
        return self.proj(vector.to(self.proj.weight.dtype))


class ResBlock(nn.Module):
    """DDPM residual block: GN-SiLU-conv, + projected time embedding, GN-SiLU-dropout-conv,
    plus a 1x1 shortcut when channels change. The last conv starts at zero."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=1e-6)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        # residual branch
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]  # [N, C, 1, 1]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        # main branch
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Spatial multi-head self-attention with a residual connection (DDPM), computed with
    scaled_dot_product_attention. The output projection starts at zero."""

    def __init__(self, channels: int, num_heads: int, groups: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = zero_init(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [N, HW, C]
        q, k, v = (self._heads(proj(tokens)) for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v)  # [N, heads, HW, C/heads]
        out = self.to_out(out.transpose(1, 2).reshape(n, h * w, c))  # [N, HW, C]
        return x + out.transpose(1, 2).reshape(n, c, h, w)

    def _heads(self, tokens: Tensor) -> Tensor:
        n, length, c = tokens.shape
        # [N, L, C] -> [N, heads, L, C/heads]
        return tokens.view(n, length, self.num_heads, c // self.num_heads).transpose(1, 2)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour interpolation then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
