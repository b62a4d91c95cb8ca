"""The training data of unCLIP's prior: (caption encoding, image embedding) pairs, encoded once
by the frozen encoders and held on the device, cut into micro-batches as DeviceData cuts
images (a permutation per epoch, so resume is exact)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.conditioning import Condition
from difflab.core.errors import ConfigError
from difflab.parallel.distributed import rank, world_size
from difflab.training.batches import DeviceData
from difflab.training.step import MicroBatch


@dataclass(frozen=True)
class PriorPairs:
    """N captions' encodings and their images' embeddings, one row per pair."""

    tokens: Tensor  # [N, L, D] text token states (padded)
    mask: Tensor  # [N, L] bool, True for real tokens
    pooled: Tensor  # [N, E] unit-norm text embeddings
    image: Tensor  # [N, E] unit-norm image embeddings

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        shapes = (self.tokens.shape[0], self.mask.shape[0], self.pooled.shape[0])
        if shapes != (n, n, n) or self.pooled.shape[1] != self.image.shape[1]:
            raise ConfigError(
                f"the text encoder gives pooled embeddings of {self.pooled.shape[1]} values, the "
                f"image encoder {self.image.shape[1]}: unCLIP needs one joint space (a CLIP "
                "folder, or a LiT encoder trained against this text encoder)"
            )

    def __len__(self) -> int:
        return self.image.shape[0]


def embedding_scale(dim: int) -> float:
    """sqrt(E): a unit-norm embedding times this has unit variance per value, the scale the
    noise schedules are made for (DALLE2-pytorch's image_embed_scale)."""
    return math.sqrt(dim)


def to_unit(x0: Tensor) -> Tensor:
    """The prior's samples [N, E] back to unit-norm embeddings."""
    return F.normalize(x0.float(), dim=-1)


def pad_tokens(parts: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Batches of (tokens [n, L_i, D], mask [n, L_i]) -> one [N, max L_i, D] and its mask, the
    padding masked."""
    length = max(tokens.shape[1] for tokens, _ in parts)
    padded = [F.pad(tokens, (0, 0, 0, length - tokens.shape[1])) for tokens, _ in parts]
    masks = [F.pad(mask, (0, length - mask.shape[1]), value=False) for _, mask in parts]
    return torch.cat(padded), torch.cat(masks)


class PairData(DeviceData):
    """A split's pairs on the device: micro-batch m is x0 = sqrt(E) * image embedding [B, E]
    with Condition(text, text_mask, embedding = pooled text)."""

    def __init__(
        self,
        pairs: PriorPairs,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        train: bool = True,
    ) -> None:
        if batch_size > len(pairs):
            raise ConfigError(
                f"config key 'train.batch_size' ({batch_size}) exceeds the {len(pairs)} pairs"
            )
        self.rank, self.world = rank(), world_size()
        if train and batch_size % self.world:
            raise ConfigError(
                f"config key 'train.batch_size' ({batch_size}) must divide by the world size "
                f"({self.world})"
            )
        dim = pairs.image.shape[1]
        self.images = (pairs.image * embedding_scale(dim)).to(device)  # x0 [N, E]
        self.tokens, self.mask = pairs.tokens.to(device), pairs.mask.to(device)
        self.pooled = pairs.pooled.to(device)
        self.maps: dict[str, Tensor] = {}
        self.batch_size, self.seed = batch_size, seed
        self.batches_per_epoch = len(pairs) // batch_size
        self._epoch, self._perm = -1, torch.empty(0)

    def take(self, index: Tensor, generator: torch.Generator | None) -> MicroBatch:
        """The pairs at `index` (no augmentation: generator is not drawn from)."""
        text, mask, pooled = self.tokens[index], self.mask[index], self.pooled[index]
        cond = Condition(text=text, text_mask=mask, embedding=pooled)
        return MicroBatch(x0=self.images[index], cond=cond)
