"""ControlNet (Zhang, Rao & Agrawala 2023, "Adding Conditional Control to Text-to-Image
Diffusion Models"): a trainable copy of a UNet's encoder, fed the control image ("hint"),
whose zero-initialised 1x1 convolutions ("zero convolutions") add to the locked UNet's skip
connections and middle block output (Section 3.2, Figure 3).

At initialisation every zero convolution outputs exactly zero, so the controlled network equals
the base network for any hint; training moves the zero convolutions first, and only then do
gradients reach the copy's encoder and the hint encoder (Section 3.1, "zero convolution").
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from difflab.conditioning import Condition
from difflab.core.errors import DifflabError
from difflab.networks.layers import zero_init
from difflab.networks.unet import UNet, UNetConfig, down_path, embed_time_and_label, mid_path

# The modules ControlNet copies from the base UNet, by attribute name (same names in both).
COPIED = ("time_embed", "label_embed", "vector_embed", "conv_in", "down", "mid")


class HintEncoder(nn.Module):
    """Control image [N, hint_channels, H, W] -> features [N, out_channels, H, W]: 3x3
    convolutions with SiLU between them, the last one zero-initialised (the paper's small
    encoder E(c_i), Section 3.2, here at image resolution since difflab's UNets are pixel-space).
    """

    def __init__(self, hint_channels: int, out_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        channels = [hint_channels, *widths]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.SiLU()]
        layers.append(zero_init(nn.Conv2d(channels[-1], out_channels, 3, padding=1)))
        self.layers = nn.Sequential(*layers)

    def forward(self, hint: Tensor) -> Tensor:
        return self.layers(hint)


class ControlNet(nn.Module):
    """(x, t, cond) -> (skip_residuals, mid_residual) for a UNet of this config, from cond.hint.

    Build it with `ControlNet.from_unet(base, hint_channels=...)` to start from the base's
    weights; the constructor alone makes the same modules freshly initialised (for loading a
    state dict). A zero hint is a hint like any other: its residuals are whatever the network
    computes for a zero image (zero only at initialisation), not "no control": for no control,
    call the base network without a hint. The zero image is difflab's null hint, which condition
    dropout puts in with the null label (the paper drops only the text prompt and keeps the
    hint, Section 3.3).
    """

    def __init__(
        self, config: UNetConfig, hint_channels: int = 3, hint_widths: Sequence[int] = (16, 32)
    ) -> None:
        super().__init__()
        self.config = config
        self.hint_channels = hint_channels
        c = config.base_channels
        # Trainable copy of the base's input conv, embeddings, encoder and middle block.
        self.time_embed, self.label_embed = UNet._build_embed(config)
        self.vector_embed = UNet._build_vector_embed(config)
        self.conv_in = nn.Conv2d(config.in_channels, c, 3, padding=1)
        self.down, skip_channels = UNet._build_down(config)
        self.mid = UNet._build_mid(config)
        # New: the hint encoder and the zero convolutions.
        self.hint_encoder = HintEncoder(hint_channels, c, hint_widths)
        self.zero_convs = nn.ModuleList(zero_init(nn.Conv2d(ch, ch, 1)) for ch in skip_channels)
        width = c * config.channel_mults[-1]
        self.mid_zero_conv = zero_init(nn.Conv2d(width, width, 1))

    @classmethod
    def from_unet(
        cls, unet: UNet, hint_channels: int = 3, hint_widths: Sequence[int] = (16, 32)
    ) -> ControlNet:
        """A ControlNet whose copied modules start from `unet`'s weights (copies, not shared),
        on the unet's device and dtype."""
        p = next(unet.parameters())
        net = cls(unet.config, hint_channels, hint_widths).to(device=p.device, dtype=p.dtype)
        return net.copy_encoder(unet)

    def copy_encoder(self, unet: UNet) -> ControlNet:
        """Set the copied modules to `unet`'s weights (copied, not shared); return self."""
        for name in COPIED:
            module = getattr(unet, name)
            if module is not None:
                getattr(self, name).load_state_dict(module.state_dict())
        return self

    def forward(self, x: Tensor, t: Tensor, cond: Condition | None) -> tuple[list[Tensor], Tensor]:
        hint = self._check_hint(x, cond)
        emb = embed_time_and_label(
            self.time_embed, self.label_embed, t, cond, x.shape[0], self.vector_embed
        )
        h = self.conv_in(x) + self.hint_encoder(hint.to(x.dtype))
        h, skips = down_path(self.down, h, emb)
        h = mid_path(self.mid, h, emb)
        skip_residuals = [conv(s) for conv, s in zip(self.zero_convs, skips, strict=True)]
        return skip_residuals, self.mid_zero_conv(h)

    def _check_hint(self, x: Tensor, cond: Condition | None) -> Tensor:
        hint = cond.hint if cond is not None else None
        expected = (x.shape[0], self.hint_channels, *x.shape[2:])
        if hint is None or tuple(hint.shape) != expected:
            got = "no hint" if hint is None else f"hint of shape {tuple(hint.shape)}"
            raise DifflabError(f"ControlNet expects cond.hint of shape {expected}, got {got}")
        return hint


class ControlledUNet(nn.Module):
    """A network F(x, t, cond): the base UNet plus `scale` times the ControlNet's residuals.

    With no condition or no hint it is the base network alone. Labels reach both the base and
    the ControlNet, so class conditioning and control stack (and both go null together in
    classifier-free guidance: `cond.null()` has the null label and the zero hint).
    """

    def __init__(self, base: UNet, controlnet: ControlNet, scale: float = 1.0) -> None:
        super().__init__()
        if controlnet.config != base.config:
            raise DifflabError(
                f"ControlNet built for {controlnet.config}, but the base UNet is {base.config}"
            )
        self.base = base
        self.controlnet = controlnet
        self.scale = scale
        self.config = base.config

    @classmethod
    def from_unet(cls, base: UNet, hint_channels: int = 3, scale: float = 1.0) -> ControlledUNet:
        """The base with a ControlNet copied from it (ControlNet.from_unet)."""
        return cls(base, ControlNet.from_unet(base, hint_channels), scale)

    def forward(self, x: Tensor, t: Tensor, cond: Condition | None = None) -> Tensor:
        if cond is None or cond.hint is None:
            return self.base(x, t, cond)
        skip_residuals, mid_residual = self.controlnet(x, t, cond)
        return self.base(
            x,
            t,
            cond,
            skip_residuals=[self.scale * r for r in skip_residuals],
            mid_residual=self.scale * mid_residual,
        )

    def freeze_base(self) -> ControlledUNet:
        """Lock the base (the paper trains only the copy): no gradients for its parameters."""
        self.base.requires_grad_(False)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters that still require gradients: the ControlNet's after freeze_base()."""
        return [p for p in self.parameters() if p.requires_grad]
