"""Batches by index from a dataset held on the device; no DataLoader, no host work per step.

Micro-batch m (= step * grad_accum + k) is slice m % B of the permutation of epoch
m // B (B = batches per epoch, the last partial batch dropped), the permutation drawn from a
generator seeded by (seed, epoch). The data position is thus a function of the step alone.
With several processes, train.batch_size is the global batch and rank r takes the r-th equal
part of each slice. Every rank transforms the whole micro-batch (cheap GPU work) before
taking its part, so augmentation, like the batch order, does not depend on the world size.
With a latent codec the split is held as its latents, encoded once (training/latent_data.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.conditioning import Condition
from difflab.config.schema import Config, DataConfig
from difflab.core.errors import ConfigError
from difflab.data import (
    BatchTransform,
    Compose,
    ImageDataset,
    RandomHorizontalFlip,
    Resize,
    ToSymmetric,
)
from difflab.latents import Codec, IdentityCodec
from difflab.parallel.distributed import rank, world_size
from difflab.runs.controlnet import training_hint
from difflab.runs.latents import RandomOrientation, encode_split
from difflab.runs.rng import seeded_generator
from difflab.training.step import MicroBatch


def make_transform(data: DataConfig, *, train: bool, hint: BatchTransform | None = None) -> Compose:
    """uint8 -> [-1, 1], optional resize, the control hint (a ControlNet's), optional flips
    (training only; the hint turns with its image)."""
    transforms: list[BatchTransform] = [ToSymmetric()]
    if data.image_size is not None:
        transforms.append(Resize(data.image_size))
    if hint is not None:
        transforms.append(hint)
    if train and data.flip:
        transforms.append(RandomHorizontalFlip(0.5))
    return Compose(transforms)


def _held(
    dataset: ImageDataset,
    data: DataConfig,
    device: torch.device,
    train: bool,
    seed: int,
    hint: BatchTransform | None,
    codec: Codec | None,
) -> tuple[Tensor, BatchTransform]:
    """(what the device holds of the split, the per-batch transform): the uint8 images and
    make_transform; with a codec, the latents of the deterministically transformed images (both
    orientations when training with data.flip) and the flip that picks one."""
    if codec is None or isinstance(codec, IdentityCodec):
        return dataset.images.to(device), make_transform(data, train=train, hint=hint)
    flip = train and data.flip
    latents = encode_split(
        codec,
        dataset.images,
        make_transform(data, train=False),
        both_orientations=flip,
        generator=seeded_generator(seed, "encode", int(train), device),
        device=device,
    )
    return latents, RandomOrientation() if flip else Compose([])


class DeviceData:
    """A dataset split on the device, cut into micro-batches of `batch_size` by index; with a
    codec (latent diffusion) the split's latents, x0 of every batch being latents."""

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        data: DataConfig,
        batch_size: int,
        seed: int,
        class_conditional: bool,
        device: torch.device,
        train: bool = True,
        hint: BatchTransform | None = None,
        codec: Codec | None = None,
        embeddings: Tensor | None = None,
    ) -> None:
        if batch_size > len(dataset):
            raise ConfigError(
                f"config key 'train.batch_size' ({batch_size}) exceeds the {len(dataset)} images "
                f"of {dataset.name}/{dataset.split}"
            )
        # [N, C, H, W] uint8, or the latents with a codec
        self.images, self.transform = _held(dataset, data, device, train, seed, hint, codec)
        self.labels = dataset.labels.to(device)  # [N] long
        # [N, E] an unCLIP decoder's image embeddings (of the unflipped images), else None
        self.embeddings = embeddings
        # the paired per-pixel maps that hints read ("depth", ...); pixel-space runs only
        pixels = codec is None or isinstance(codec, IdentityCodec)
        self.maps = {k: m.to(device) for k, m in dataset.maps.items()} if pixels else {}
        self.batch_size = batch_size
        self.rank, self.world = rank(), world_size()
        if train and batch_size % self.world:
            raise ConfigError(
                f"config key 'train.batch_size' ({batch_size}) must divide by the world size "
                f"({self.world})"
            )
        self.seed = seed
        self.class_conditional = class_conditional
        self.batches_per_epoch = len(dataset) // batch_size
        self._epoch, self._perm = -1, torch.empty(0)

    def position(self, micro_index: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of micro-batch number micro_index."""
        return divmod(micro_index, self.batches_per_epoch)

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = seeded_generator(self.seed, "epoch", epoch, self.images.device)
            n = self.images.shape[0]
            self._perm = torch.randperm(n, generator=g, device=self.images.device)
            self._epoch = epoch
        return self._perm

    def indices(self, micro_index: int) -> Tensor:
        """The dataset rows of micro-batch micro_index (all ranks' parts)."""
        epoch, j = self.position(micro_index)
        return self._permutation(epoch)[j * self.batch_size : (j + 1) * self.batch_size]

    def take(self, index: Tensor, generator: torch.Generator | None) -> MicroBatch:
        """The images at `index`, transformed with randomness from generator."""
        maps = {key: m[index] for key, m in self.maps.items()}
        out = self.transform({"image": self.images[index], **maps}, generator=generator)
        labels = self.labels[index] if self.class_conditional else None
        embedding = self.embeddings[index] if self.embeddings is not None else None
        cond = Condition(labels=labels, hint=out.get("hint"), embedding=embedding)
        return MicroBatch(x0=out["image"], cond=None if cond.is_empty() else cond)

    def micro_batch(self, micro_index: int, generator: torch.Generator) -> MicroBatch:
        """This rank's part of micro-batch micro_index."""
        return self.take(self.indices(micro_index), generator).part(self.rank, self.world)


def dataset_hints(
    config: Config, images: Tensor, num: int, maps: dict[str, Tensor] | None = None
) -> Tensor | None:
    """The hints of the first min(num, N) images of a split (uint8 [N, C, H, W], with their
    paired maps) through the run's evaluation pipeline (make_transform without flips, with the
    hint transform); None for a run that is not a ControlNet run."""
    hint = training_hint(config)
    if hint is None:
        return None
    transform = make_transform(config.data, train=False, hint=hint)
    paired = {key: m[:num] for key, m in (maps or {}).items()}
    return transform({"image": images[:num], **paired})["hint"]
