"""The trainer's own kind of run (open_run's source): an ImageDataset in memory and its
validation split, a preset network (a ControlNet starts from its base run), model.latent's
codec, and an unCLIP decoder's image encoder with the embeddings of the images."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.data import ImageDataset, load_dataset
from difflab.encoders import ImageEncoder, load_image_encoder
from difflab.latents import Codec
from difflab.parameterization import Denoiser
from difflab.runs.checkpoint import Checkpoint
from difflab.runs.controlnet import training_hint, with_paired_hints
from difflab.runs.files import read_model_info
from difflab.runs.image_embedding import check_dim, image_embeddings, shared_encoder_folder
from difflab.runs.latents import latent_shape_of
from difflab.runs.load import build_denoiser, load_run, start_from_base
from difflab.training.batches import DeviceData, make_transform
from difflab.training.memory import check_network_fits


def _load(config: Config, split: str) -> ImageDataset:
    d = config.data
    root = Path(d.root) if d.root is not None else None
    dataset = load_dataset(
        d.dataset,
        root=root,
        split=split,
        download=d.download,
        max_bad_fraction=d.max_bad_fraction,
        channels=d.channels,
        **d.options,
    )
    return with_paired_hints(config, dataset)


VAL_BATCH = 256  # validation runs without gradients, so in larger batches


def _device_data(
    config: Config,
    dataset: ImageDataset,
    device,
    codec: Codec,
    *,
    train: bool,
    embeddings: Tensor | None = None,
) -> DeviceData:
    return DeviceData(
        dataset,
        data=config.data,
        batch_size=config.train.batch_size if train else min(VAL_BATCH, len(dataset)),
        seed=config.train.seed,
        class_conditional=config.model.class_conditional,
        device=device,
        train=train,
        hint=training_hint(config),
        codec=codec,
        embeddings=embeddings,
    )


def _model_info(
    config: Config, dataset: ImageDataset, codec: Codec
) -> tuple[tuple[int, int, int], dict]:
    """(the images' (C, H, W), the network's data shape: in_channels, image_size (of the
    latents with a VAE codec, which refuses images it cannot encode), num_classes)."""
    c, h, _ = dataset.image_shape
    size = config.data.image_size or h
    image_shape = (c, size, size)
    latent_c, latent_size, _ = latent_shape_of(codec, image_shape)
    num_classes = dataset.num_classes if config.model.class_conditional else 0
    return image_shape, {
        "in_channels": latent_c,
        "image_size": latent_size,
        "num_classes": num_classes,
        "embedding_dim": 0,
    }


def _build_denoiser(
    config: Config, info: dict, image_shape: tuple[int, int, int], device: torch.device
) -> Denoiser:
    """build_denoiser for the data's shape on device, once its size is known to fit; a
    network that cannot take a latent run's latents says which latents, since its image_size
    is not the images'."""
    shape = {k: info[k] for k in ("in_channels", "image_size", "num_classes", "embedding_dim")}
    try:
        check_network_fits(config, info, device)
        return build_denoiser(config, **shape, image_shape=image_shape).to(device)
    except ConfigError as err:
        if config.model.latent.vae is None:
            raise
        latent = (info["in_channels"], info["image_size"], info["image_size"])
        raise ConfigError(
            f"{err} (model.latent.vae makes latents {latent} of the images {image_shape}; "
            "data.image_size sets the images' size)"
        ) from err


class ImageSource:
    """The trainer's own run: an ImageDataset in memory (and its validation split), a preset
    network (a ControlNet starts from its base run), model.latent's codec; an unCLIP decoder's
    image encoder (model.embedding) and the embeddings of the images (runs/image_embedding)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dataset = _load(config, config.data.split)
        use_val = config.data.val_split is not None and config.train.val_every > 0
        self.val = _load(config, config.data.val_split) if use_val else None
        self.latent = config.model.latent
        self.class_names = self.dataset.class_names
        self.encoder_folder, self.encoder = None, None

    def open_encoder(self) -> ImageEncoder:
        """An unCLIP decoder's image encoder, checked against a resumed run's embedding_dim;
        rank 0 resolves it first ('lit' may train it into the cache the other ranks read)."""
        config = self.config
        self.encoder_folder = shared_encoder_folder(config)
        self.encoder = load_image_encoder(self.encoder_folder)
        if config.train.resume:
            recorded = read_model_info(config.train.resume).get("embedding_dim", 0)
            check_dim(self.encoder, recorded, f"the resumed run {config.train.resume}")
        return self.encoder

    def embeddings(self, dataset: ImageDataset, device: torch.device) -> Tensor | None:
        """[N, E] of dataset's images for an unCLIP decoder, None otherwise."""
        if self.encoder is None:
            return None
        transform = make_transform(self.config.data, train=False)
        return image_embeddings(self.encoder, dataset.images, transform, device)

    def null_text(self, device: torch.device) -> None:
        return None

    def denoiser(self, device: torch.device, codec: Codec, checkpoint: Checkpoint | None):
        config = self.config
        image_shape, info = _model_info(config, self.dataset, codec)
        if config.model.embedding.image_encoder is not None:
            encoder = self.open_encoder()
            info.update(embedding_dim=encoder.dim, image_encoder=str(self.encoder_folder))
        torch.manual_seed(config.train.seed)
        denoiser = _build_denoiser(config, info, image_shape, device)
        base_run = config.model.controlnet.base_run
        if base_run is not None and checkpoint is None:
            start_from_base(denoiser.network, load_run(base_run, device=device), config, info)
        return denoiser, image_shape, info

    def data(self, device: torch.device, codec: Codec):
        embed = self.embeddings(self.dataset, device)
        data = _device_data(self.config, self.dataset, device, codec, train=True, embeddings=embed)
        val = self.val
        if val is not None:
            embed = self.embeddings(val, device)
            val = _device_data(self.config, val, device, codec, train=False, embeddings=embed)
        return data, val

    def skipped(self) -> dict:
        return {"data_skipped": list(self.dataset.skipped)}
