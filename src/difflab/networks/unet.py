"""The DDPM UNet (Ho et al. 2020, Appendix B), laid out like diffusers' UNet2DModel so the
CIFAR-10 preset has the same parameters: residual blocks with the time (+ label) embedding,
self-attention at chosen resolutions and in the middle, skip connections between the levels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difflab.conditioning import Condition
from difflab.networks.config_check import check_types, require
from difflab.networks.layers import (
    AttentionBlock,
    Downsample,
    LabelEmbedding,
    ResBlock,
    TimestepEmbedding,
    Upsample,
    VectorEmbedding,
    zero_init,
)


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    image_size: int = 32
    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)  # level i has base_channels * mults[i]
    blocks_per_level: int = 2
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes with self-attention
    dropout: float = 0.1
    num_heads: int = 1
    norm_groups: int = 32
    num_classes: int | None = None  # None: unconditional
    embedding_dim: int = 0  # E of cond.embedding [N, E] added to the time embedding; 0: none

    def __post_init__(self) -> None:
        check_types(self)
        require(self.embedding_dim >= 0, self, "embedding_dim", "expected >= 0 (0: none)")
        for key in ("in_channels", "out_channels", "base_channels", "num_heads", "norm_groups"):
            require(getattr(self, key) >= 1, self, key, "expected a positive integer")
        require(self.blocks_per_level >= 1, self, "blocks_per_level", "expected >= 1")
        require(0.0 <= self.dropout < 1.0, self, "dropout", "expected 0 <= dropout < 1")
        require(self.num_classes is None or self.num_classes >= 1, self, "num_classes", ">= 1")
        require(
            len(self.channel_mults) >= 1 and min(self.channel_mults) >= 1,
            self,
            "channel_mults",
            "expected a non-empty tuple of positive integers",
        )
        self._check_divisibility()

    def _check_divisibility(self) -> None:
        factor = 2 ** (len(self.channel_mults) - 1)
        require(
            self.image_size >= factor and self.image_size % factor == 0,
            self,
            "image_size",
            f"expected a multiple of the downsampling factor {factor}",
        )
        widths = [self.base_channels * m for m in self.channel_mults]
        require(
            all(w % self.norm_groups == 0 for w in widths),
            self,
            "norm_groups",
            f"must divide every level's channels {widths}",
        )
        require(
            set(self.attention_resolutions) <= set(self.resolutions()),
            self,
            "attention_resolutions",
            f"expected feature-map sizes among {self.resolutions()}",
        )
        require(
            all(w % self.num_heads == 0 for w in widths),
            self,
            "num_heads",
            f"must divide every level's channels {widths}",
        )

    def resolutions(self) -> list[int]:
        """Feature-map size at each level."""
        return [self.image_size // 2**i for i in range(len(self.channel_mults))]


class UNetBlock(nn.Module):
    """A residual block, followed by self-attention at the attention resolutions."""

    def __init__(self, config: UNetConfig, in_ch: int, out_ch: int, attention: bool) -> None:
        super().__init__()
        emb_dim = 4 * config.base_channels
        groups = config.norm_groups
        self.res = ResBlock(in_ch, out_ch, emb_dim, config.dropout, groups)
        self.attn = AttentionBlock(out_ch, config.num_heads, groups) if attention else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNetLevel(nn.Module):
    """The blocks at one resolution and the resampling that leaves it (None at the end)."""

    def __init__(self, blocks: list[UNetBlock], resample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.resample = resample


class UNet(nn.Module):
    """F(x, t, cond) -> tensor shaped like x; the output starts at exactly zero.

    `skip_residuals` (one per skip connection, in encoder order) and `mid_residual` are added to
    the skip connections and to the middle block's output: the hook a ControlNet uses.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        self.time_embed, self.label_embed = self._build_embed(config)
        self.vector_embed = self._build_vector_embed(config)
        self.conv_in = nn.Conv2d(config.in_channels, c, 3, padding=1)
        self.down, skip_channels = self._build_down(config)
        self.skip_channels = tuple(skip_channels)
        self.mid = self._build_mid(config)
        self.up = self._build_up(config, skip_channels)
        self.norm_out = nn.GroupNorm(config.norm_groups, c, eps=1e-6)
        self.conv_out = zero_init(nn.Conv2d(c, config.out_channels, 3, padding=1))

    @staticmethod
    def _build_embed(config: UNetConfig) -> tuple[TimestepEmbedding, LabelEmbedding | None]:
        """Time embedding, and the label embedding for class-conditional networks. The labels
        start N(0, 1) (nn.Embedding's, as diffusers' UNet2DModel): at DiT's N(0, 0.02) they are
        7x weaker than this time MLP's output, and class conditioning is learned late."""
        dim = 4 * config.base_channels
        time_embed = TimestepEmbedding(config.base_channels, dim)
        if config.num_classes is None:
            return time_embed, None
        return time_embed, LabelEmbedding(config.num_classes, dim, std=1.0)

    @staticmethod
    def _build_vector_embed(config: UNetConfig) -> VectorEmbedding | None:
        """The projection of cond.embedding into the time embedding (unCLIP's decoder, Ramesh
        et al. 2022, Section 2.1), at the labels' N(0, 1) scale; None when embedding_dim is 0."""
        if config.embedding_dim == 0:
            return None
        return VectorEmbedding(config.embedding_dim, 4 * config.base_channels, std=1.0)

    @staticmethod
    def _build_down(config: UNetConfig) -> tuple[nn.ModuleList, list[int]]:
        ch = config.base_channels
        skip_channels = [ch]
        levels = []
        for i, (mult, res) in enumerate(
            zip(config.channel_mults, config.resolutions(), strict=True)
        ):
            out_ch = config.base_channels * mult
            attention = res in config.attention_resolutions
            blocks = []
            for _ in range(config.blocks_per_level):
                blocks.append(UNetBlock(config, ch, out_ch, attention))
                ch = out_ch
                skip_channels.append(ch)
            last = i == len(config.channel_mults) - 1
            levels.append(UNetLevel(blocks, None if last else Downsample(ch)))
            if not last:
                skip_channels.append(ch)
        return nn.ModuleList(levels), skip_channels

    @staticmethod
    def _build_mid(config: UNetConfig) -> nn.ModuleList:
        width = config.base_channels * config.channel_mults[-1]
        return nn.ModuleList(
            [UNetBlock(config, width, width, True), UNetBlock(config, width, width, False)]
        )

    @staticmethod
    def _build_up(config: UNetConfig, skip_channels: list[int]) -> nn.ModuleList:
        skips = list(skip_channels)
        ch = config.base_channels * config.channel_mults[-1]
        levels = []
        for i in reversed(range(len(config.channel_mults))):
            out_ch = config.base_channels * config.channel_mults[i]
            attention = config.resolutions()[i] in config.attention_resolutions
            blocks = []
            for _ in range(config.blocks_per_level + 1):
                blocks.append(UNetBlock(config, ch + skips.pop(), out_ch, attention))
                ch = out_ch
            levels.append(UNetLevel(blocks, Upsample(ch) if i > 0 else None))
        return nn.ModuleList(levels)

    def embed(self, t: Tensor, cond: Condition | None, batch: int) -> Tensor:
        """Time embedding, plus the label and vector embeddings the network was built for."""
        return embed_time_and_label(
            self.time_embed, self.label_embed, t, cond, batch, self.vector_embed
        )

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        cond: Condition | None = None,
        *,
        skip_residuals: list[Tensor] | None = None,
        mid_residual: Tensor | None = None,
    ) -> Tensor:
        emb = self.embed(t, cond, x.shape[0])
        h, skips = self.encode(x, emb)
        if skip_residuals is not None:
            skips = [s + r for s, r in zip(skips, skip_residuals, strict=True)]
        h = mid_path(self.mid, h, emb)
        if mid_residual is not None:
            h = h + mid_residual
        h = self.decode(h, skips, emb)
        return self.conv_out(F.silu(self.norm_out(h)))

    def encode(self, x: Tensor, emb: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Down path: the lowest-resolution features and every skip connection."""
        return down_path(self.down, self.conv_in(x), emb)

    def decode(self, h: Tensor, skips: list[Tensor], emb: Tensor) -> Tensor:
        """Up path: each block takes the newest unused skip, concatenated on channels."""
        skips = list(skips)
        for level in self.up:
            for block in level.blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if level.resample is not None:
                h = level.resample(h)
        return h


def embed_time_and_label(
    time_embed: TimestepEmbedding,
    label_embed: LabelEmbedding | None,
    t: Tensor,
    cond: Condition | None,
    batch: int,
    vector_embed: VectorEmbedding | None = None,
) -> Tensor:
    """The embedding every block sees: time, plus the label for class-conditional networks,
    plus the projected cond.embedding for networks with embedding_dim > 0."""
    emb = time_embed(t.expand(batch))
    if label_embed is not None:
        emb = emb + label_embed(cond, batch, emb.device)
    if vector_embed is not None:
        emb = emb + vector_embed(cond, batch, emb.device)
    return emb


def down_path(levels: nn.ModuleList, h: Tensor, emb: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Encoder from the input conv's features h: the lowest-resolution features and every skip
    connection (h itself first). Shared by the UNet and its ControlNet copy."""
    skips = [h]
    for level in levels:
        for block in level.blocks:
            h = block(h, emb)
            skips.append(h)
        if level.resample is not None:
            h = level.resample(h)
            skips.append(h)
    return h, skips


def mid_path(blocks: nn.ModuleList, h: Tensor, emb: Tensor) -> Tensor:
    """The middle blocks at the lowest resolution."""
    for block in blocks:
        h = block(h, emb)
    return h
