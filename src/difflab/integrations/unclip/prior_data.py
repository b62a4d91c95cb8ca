"""The training data of unCLIP's prior: (caption encoding, image embedding) pairs, encoded once
by the frozen encoders and held on the device, cut into micro-batches as DeviceData cuts
images (a permutation per epoch, so resume is exact)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

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
    """N images' embeddings and, per image, the captions it may be paired with: rows of a
    table of K distinct captions' encodings (a class's templates and synonyms, encoded once).
    A micro-batch draws one of each image's captions from the step's generator."""

    tokens: Tensor  # [K, L, D] text token states (padded)
    mask: Tensor  # [K, L] bool, True for real tokens
    pooled: Tensor  # [K, E] unit-norm text embeddings
    image: Tensor  # [N, E] unit-norm image embeddings
    choices: Tensor  # [N, M] long: caption rows of image i, the first counts[i] real
    counts: Tensor  # [N] long, >= 1

    def __post_init__(self) -> None:
        if self.pooled.shape[1] != self.image.shape[1]:
            raise ConfigError(
                f"the text encoder gives pooled embeddings of {self.pooled.shape[1]} values, the "
                f"image encoder {self.image.shape[1]}: unCLIP needs one joint space (a CLIP "
                "folder, or a LiT encoder trained against this text encoder)"
            )

    def __len__(self) -> int:
        return self.image.shape[0]

    def caption_rows(self, index: Tensor, generator: torch.Generator | None) -> Tensor:
        """[B] caption rows for the images at index, each uniform over the image's captions
        (one draw of B numbers)."""
        counts = self.counts[index]
        u = torch.rand(len(index), generator=generator, device=counts.device)
        pick = (u * counts).long().clamp(max=counts - 1)  # [B]
        return self.choices[index, pick]

    def to(self, device: torch.device) -> PriorPairs:
        return PriorPairs(*(getattr(self, f.name).to(device) for f in fields(self)))


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
    with Condition(text, text_mask, embedding = pooled text) of a caption drawn per image."""

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
        self.pairs = pairs.to(device)
        self.images = self.pairs.image * embedding_scale(dim)  # x0 [N, E]
        self.maps: dict[str, Tensor] = {}
        self.batch_size, self.seed = batch_size, seed
        self.batches_per_epoch = len(pairs) // batch_size
        self._epoch, self._perm = -1, torch.empty(0)

    def take(self, index: Tensor, generator: torch.Generator | None) -> MicroBatch:
        """The images at `index`, each with one of its captions drawn from generator."""
        rows, p = self.pairs.caption_rows(index, generator), self.pairs
        cond = Condition(text=p.tokens[rows], text_mask=p.mask[rows], embedding=p.pooled[rows])
        return MicroBatch(x0=self.images[index], cond=cond)
