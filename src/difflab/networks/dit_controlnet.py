"""ControlNet for a DiT (Chen et al. 2024, PixArt-delta's ControlNet-Transformer; Zhang et al.
2023): a trainable copy of the first `depth` DiT blocks (with the patch, time and label
embeddings), fed the base's tokens plus the hint's patch tokens through a zero-initialised
linear ("before_proj"), each copied block's output added to the matching base block's output
through its own zero-initialised linear ("after_proj"). At initialisation every residual is
exactly zero, so the controlled DiT equals the base for any hint.

The hint is at the images' resolution, which with a latent codec is `hint_factor` times the
tokens' input (the latents): its patch embedding strides patch_size * hint_factor pixels.
"""

from __future__ import annotations

from torch import Tensor, nn

from difflab.conditioning import Condition
from difflab.core.errors import DifflabError
from difflab.networks.controlnet import CONTROLNETS, check_hint
from difflab.networks.dit import DiT, DiTBlock, DiTConfig
from difflab.networks.layers import LabelEmbedding, TimestepEmbedding, zero_init

# The modules the ControlNet copies from the base DiT (same names in both).
COPIED = ("patch_embed", "time_embed", "label_embed")


class DiTControlNet(nn.Module):
    """(x, t, cond) -> one residual [N, T, D] per copied block, from cond.hint."""

    def __init__(
        self,
        config: DiTConfig,
        hint_channels: int = 3,
        depth: int | None = None,
        hint_factor: int = 1,
    ) -> None:
        super().__init__()
        self.config, self.hint_channels, self.hint_factor = config, hint_channels, hint_factor
        depth = max(1, config.depth // 2) if depth is None else depth
        if not 1 <= depth <= config.depth:
            raise DifflabError(f"DiT ControlNet depth {depth}: expected 1..{config.depth}")
        dim, p = config.hidden_size, config.patch_size
        # Trainable copy of the base's embeddings and first blocks.
        self.patch_embed = nn.Conv2d(config.in_channels, dim, kernel_size=p, stride=p)
        self.time_embed = TimestepEmbedding(config.freq_dim, dim)
        has_labels = config.num_classes is not None
        self.label_embed = LabelEmbedding(config.num_classes, dim) if has_labels else None
        self.blocks = nn.ModuleList(
            DiTBlock(dim, config.num_heads, config.mlp_ratio) for _ in range(depth)
        )
        # New: the hint's patch tokens and the zero-initialised projections.
        stride = p * hint_factor
        self.hint_embed = nn.Conv2d(hint_channels, dim, kernel_size=stride, stride=stride)
        self.before_proj = zero_init(nn.Linear(dim, dim))
        self.after_proj = nn.ModuleList(zero_init(nn.Linear(dim, dim)) for _ in range(depth))

    def copy_encoder(self, base: DiT) -> DiTControlNet:
        """Set the copied modules to `base`'s weights (copied, not shared); return self."""
        for name in COPIED:
            module = getattr(base, name)
            if module is not None:
                getattr(self, name).load_state_dict(module.state_dict())
        for mine, theirs in zip(self.blocks, base.blocks, strict=False):
            mine.load_state_dict(theirs.state_dict())
        return self

    def forward(self, x: Tensor, t: Tensor, cond: Condition | None, pos: Tensor) -> list[Tensor]:
        size = (x.shape[-2] * self.hint_factor, x.shape[-1] * self.hint_factor)
        hint = check_hint(cond, x.shape[0], self.hint_channels, size)
        n = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + pos  # [N, T, D]
        hint_tokens = self.hint_embed(hint.to(x.dtype)).flatten(2).transpose(1, 2)  # [N, T, D]
        h = tokens + self.before_proj(hint_tokens)
        c = self.time_embed(t.expand(n))  # [N, D]
        if self.label_embed is not None:
            c = c + self.label_embed(cond, n, x.device)
        residuals = []
        for block, proj in zip(self.blocks, self.after_proj, strict=True):
            h = block(h, c)
            residuals.append(proj(h))
        return residuals


class ControlledDiT(nn.Module):
    """A network F(x, t, cond): the base DiT plus `scale` times the ControlNet's residuals
    after its first blocks; without a hint, the base alone."""

    def __init__(self, base: DiT, controlnet: DiTControlNet, scale: float = 1.0) -> None:
        super().__init__()
        if controlnet.config != base.config:
            raise DifflabError(
                f"ControlNet built for {controlnet.config}, but the base DiT is {base.config}"
            )
        self.base, self.controlnet, self.scale = base, controlnet, scale
        self.config = base.config

    @classmethod
    def from_base(
        cls, base: DiT, hint_channels: int = 3, scale: float = 1.0, hint_factor: int = 1
    ) -> ControlledDiT:
        """The base with a ControlNet copied from it, on the base's device and dtype."""
        p = next(base.parameters())
        net = DiTControlNet(base.config, hint_channels, hint_factor=hint_factor)
        return cls(base, net.to(device=p.device, dtype=p.dtype).copy_encoder(base), scale)

    def forward(self, x: Tensor, t: Tensor, cond: Condition | None = None) -> Tensor:
        if cond is None or cond.hint is None:
            return self.base(x, t, cond)
        pos = self.base.pos_embed.to(x.dtype)
        residuals = self.controlnet(x, t, cond, pos)
        return self.base(x, t, cond, block_residuals=[self.scale * r for r in residuals])

    def freeze_base(self) -> ControlledDiT:
        """Lock the base: no gradients for its parameters."""
        self.base.requires_grad_(False)
        return self


CONTROLNETS.register("DiT")(ControlledDiT.from_base)
