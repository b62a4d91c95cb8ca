"""A small CNN image classifier that difflab trains itself, for accuracy and feature metrics.

The network is a 3x3 convolution at full resolution, then two stages of two 3x3 convolutions
(GroupNorm, SiLU) each after 2x2 max pooling, global average pooling and a two-layer head.
`features(x)` is the penultimate layer (the FID/KID feature space "difflab-<dataset>"),
`logits(x)` the class scores. Any image size of at least 4x4 and any channel count work:
8x8 digits, 28x28 MNIST, 32x32 CIFAR.

A noisy classifier (config.noisy) also takes the network time t_net = schedule.network_time(t)
and adds a per-channel bias from its sinusoidal embedding to each stage, as the time
conditioning of classifier guidance (Dhariwal & Nichol 2021, section 4).

Weights are saved as safetensors beside a JSON config; `load_classifier` raises
CheckpointError naming the file when either is missing or unreadable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from difflab.core.errors import CheckpointError, ConfigError, DataError
from difflab.evaluation.module_folder import save_module_folder

WEIGHTS_FILE = "classifier.safetensors"
CONFIG_FILE = "classifier.json"
FORMAT = "difflab-classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of a classifier: its input images, classes, width and time conditioning."""

    dataset: str
    in_channels: int
    image_size: int
    num_classes: int
    class_names: tuple[str, ...] = ()
    width: int = 16
    noisy: bool = False

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.image_size < 4 or self.num_classes < 2:
            raise ConfigError(
                "classifier needs in_channels >= 1, image_size >= 4 and num_classes >= 2; got "
                f"{self.in_channels}, {self.image_size}, {self.num_classes}"
            )
        if self.width < 8 or self.width % 8:
            raise ConfigError(
                f"classifier width must be a positive multiple of 8, got {self.width}"
            )

    @property
    def feature_dim(self) -> int:
        return 4 * self.width


class ConvStage(nn.Module):
    """conv3x3 -> GroupNorm -> SiLU (+ time bias) -> conv3x3 -> GroupNorm -> SiLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, c_out)

    def forward(self, x: Tensor, time_bias: Tensor | None) -> Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        if time_bias is not None:
            h = h + time_bias[:, :, None, None]  # [N, C] -> [N, C, 1, 1]
        return F.silu(self.norm2(self.conv2(h)))


def timestep_embedding(t_net: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding [N, dim] of network times (Vaswani et al. 2017, section 3.5)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t_net.device) / half)
    angles = t_net.float()[:, None] * freqs[None, :]  # [N, half]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class Classifier(nn.Module):
    """CNN classifier; call `logits(x, t_net)` or `features(x, t_net)` with x in [-1, 1]."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stem = nn.Conv2d(config.in_channels, w, 3, padding=1)
        self.stem_norm = nn.GroupNorm(8, w)
        self.stages = nn.ModuleList([ConvStage(w, 2 * w), ConvStage(2 * w, 4 * w)])
        self.head = nn.Linear(4 * w, config.feature_dim)
        self.out = nn.Linear(config.feature_dim, config.num_classes)
        self.time_mlp = None
        if config.noisy:
            self.time_mlp = nn.Sequential(nn.Linear(w, 4 * w), nn.SiLU(), nn.Linear(4 * w, 6 * w))

    def _time_biases(self, t_net: Tensor | None, n: int) -> list[Tensor | None]:
        if self.time_mlp is None:
            if t_net is not None:
                raise ConfigError(
                    "this classifier is not time-conditioned (noisy=False); pass no t"
                )
            return [None] * len(self.stages)
        if t_net is None or t_net.shape != (n,):
            raise ConfigError(f"a noisy classifier needs t_net of shape [{n}], got {t_net}")
        biases = self.time_mlp(timestep_embedding(t_net, self.config.width))  # [N, 6w]
        return list(biases.split([s.conv1.out_channels for s in self.stages], dim=1))

    def features(self, x: Tensor, t_net: Tensor | None = None) -> Tensor:
        """Penultimate-layer features [N, 4 * width] of images x [N, C, H, W] in [-1, 1]."""
        h = F.silu(self.stem_norm(self.stem(x)))  # full resolution
        for stage, bias in zip(self.stages, self._time_biases(t_net, len(x)), strict=True):
            h = stage(F.max_pool2d(h, 2), bias)
        return F.silu(self.head(h.mean(dim=(2, 3))))  # [N, C, H, W] -> [N, C] -> [N, 4w]

    def logits(self, x: Tensor, t_net: Tensor | None = None) -> Tensor:
        """Class scores [N, num_classes]."""
        return self.out(self.features(x, t_net))

    def forward(self, x: Tensor, t_net: Tensor | None = None) -> Tensor:
        return self.logits(x, t_net)


def images_to_input(images: Tensor, config: ClassifierConfig) -> Tensor:
    """uint8 images [N, C, H, W] -> float32 in [-1, 1], after checking they fit the classifier."""
    expected = (config.in_channels, config.image_size, config.image_size)
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise DataError(
            f"classifier for {config.dataset!r} expects uint8 images [N, {expected[0]}, "
            f"{expected[1]}, {expected[2]}], got {images.dtype} {tuple(images.shape)}"
        )
    return images.float() / 127.5 - 1.0


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 (hex, 16 chars) of a module's state dict: names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def save_classifier(classifier: Classifier, folder: str | Path) -> None:
    """Write folder/classifier.safetensors, then folder/classifier.json (each atomically)."""
    meta = {"format": FORMAT, "version": 1, "config": dataclasses.asdict(classifier.config)}
    save_module_folder(classifier, meta, folder, WEIGHTS_FILE, CONFIG_FILE)


def load_classifier(folder: str | Path, device: torch.device | str = "cpu") -> Classifier:
    """Load a classifier saved by save_classifier, in eval mode on device."""
    folder = Path(folder)
    classifier = Classifier(_read_config(folder / CONFIG_FILE))
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"classifier weights {weights_path} are missing")
    try:
        classifier.load_state_dict(load_file(str(weights_path)))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"classifier weights {weights_path} are unreadable: {err}") from err
    return classifier.to(device).eval()


def _read_config(path: Path) -> ClassifierConfig:
    if not path.is_file():
        raise CheckpointError(f"classifier config {path} is missing")
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        fields = dict(meta["config"])
        fields["class_names"] = tuple(fields.get("class_names", ()))
        return ClassifierConfig(**fields)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"classifier config {path} is invalid: {err}") from err
