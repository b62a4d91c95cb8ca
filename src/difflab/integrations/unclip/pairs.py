"""A labelled split's (caption, image) pairs, encoded once by the frozen encoders: every
distinct caption of every class (data/captions.py: templates x synonyms) by the text encoder,
every image by the image encoder (PriorPairs)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.data import BatchTransform, load_dataset
from difflab.data.captions import captions_for
from difflab.encoders import load_image_encoder, load_text_encoder
from difflab.integrations.unclip.prior_data import PriorPairs, pad_tokens
from difflab.networks.prior import PriorConfig
from difflab.runs.image_embedding import image_embeddings
from difflab.training.batches import make_transform

ENCODE_BATCH = 256  # captions or images per encoder call


@torch.no_grad()
def encode_captions(captions: list[str], text_encoder) -> tuple[Tensor, Tensor, Tensor]:
    """(tokens [K, L, D], mask [K, L], pooled [K, E]) of K captions, on the CPU."""
    parts, pooled = [], []
    for start in range(0, len(captions), ENCODE_BATCH):
        text = text_encoder.encode(captions[start : start + ENCODE_BATCH])
        parts.append((text.tokens.float().cpu(), text.mask.cpu()))
        pooled.append(text.pooled.float().cpu())
    tokens, mask = pad_tokens(parts)
    return tokens, mask, torch.cat(pooled)


def class_choices(labels: Tensor, per_class: list[list[int]]) -> tuple[Tensor, Tensor]:
    """(choices [N, M], counts [N]): image i may take the caption rows of its class, padded
    to M = the most captions of a class by repeating the class's first."""
    most = max(len(rows) for rows in per_class)
    table = torch.tensor([rows + rows[:1] * (most - len(rows)) for rows in per_class])
    counts = torch.tensor([len(rows) for rows in per_class])
    return table[labels], counts[labels]


def labelled_pairs(
    images: Tensor,
    labels: Tensor,
    class_captions: list[list[str]],
    text_encoder,
    image_encoder,
    transform: BatchTransform,
    device: torch.device,
) -> PriorPairs:
    """The pairs of uint8 images [N, C, H, W] with labels [N], class c captioned by any of
    class_captions[c]; the image encoder sees transform's images (the run's, in [-1, 1])."""
    captions = [caption for group in class_captions for caption in group]
    if not all(class_captions):
        raise ConfigError("unCLIP pairs: a class has no captions")
    tokens, mask, pooled = encode_captions(captions, text_encoder)
    first = torch.tensor([0, *(len(g) for g in class_captions)]).cumsum(0).tolist()
    per_class = [list(range(first[c], first[c + 1])) for c in range(len(class_captions))]
    choices, counts = class_choices(labels.cpu(), per_class)
    image = image_embeddings(image_encoder, images, transform, device).cpu()
    return PriorPairs(tokens, mask, pooled, image, choices, counts)


def check_tokens(config: Config, pairs: PriorPairs) -> None:
    """The prior's model.options fit the encodings: token width and token count."""
    options = config.model.options
    _, length, dim = pairs.tokens.shape
    text_dim = options.get("text_dim", PriorConfig.text_dim)
    if text_dim != dim:
        raise ConfigError(
            f"config key 'model.options.text_dim' is {text_dim} but text encoder "
            f"{config.model.embedding.text_encoder!r} gives token states of {dim}"
        )
    most = options.get("max_text_tokens", PriorConfig.max_text_tokens)
    if most < length:
        raise ConfigError(
            f"config key 'model.options.max_text_tokens' is {most} but a caption has {length} "
            "tokens"
        )


def load_pairs(config: Config, split: str, device: torch.device, encoder: Path) -> PriorPairs:
    """The pairs of data.dataset's split, captioned by its class templates (data.split: the
    training templates; any other split: the held-out ones), encoded by model.embedding's
    text encoder and the image encoder in folder `encoder` (runs/image_embedding
    .encoder_folder), the images through the run's evaluation pipeline (data.image_size)."""
    d, e = config.data, config.model.embedding
    dataset = load_dataset(
        d.dataset,
        root=Path(d.root) if d.root else None,
        split=split,
        download=d.download,
        max_bad_fraction=d.max_bad_fraction,
        channels=d.channels,
        **d.options,
    )
    text = load_text_encoder(e.text_encoder, e.text_encoder_path).to(device)
    image = load_image_encoder(encoder).to(device)
    transform = make_transform(d, train=False)
    captions = captions_for(dataset.class_names)
    part = "train" if split == d.split else "eval"
    groups = [captions.class_captions(c, part) for c in range(captions.num_classes)]
    return labelled_pairs(dataset.images, dataset.labels, groups, text, image, transform, device)
