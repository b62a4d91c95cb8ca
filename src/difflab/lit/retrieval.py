"""Image-to-caption retrieval accuracy: the share of images whose nearest caption (cosine) is
one of their own class's; chance is 1 / num_classes when classes have as many captions."""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.data.captions import CaptionSplit, ClassCaptions
from difflab.encoders import ImageEncoder, TextEncoder


def caption_table(
    text_encoder: TextEncoder, captions: ClassCaptions, split: CaptionSplit
) -> tuple[list[str], Tensor, Tensor]:
    """(captions, their pooled embeddings [M, E], their classes [M]) of every class in split."""
    texts, classes = [], []
    for label in range(captions.num_classes):
        own = captions.class_captions(label, split)
        texts += own
        classes += [label] * len(own)
    pooled = text_encoder.encode(texts).pooled.float().cpu()
    return texts, pooled, torch.tensor(classes)


@torch.no_grad()
def retrieval_accuracy(
    image_encoder: ImageEncoder,
    images: Tensor,
    labels: Tensor,
    table: tuple[list[str], Tensor, Tensor],
    *,
    batch_size: int = 256,
) -> float:
    """Top-1 image-to-caption retrieval over a caption_table, for uint8 images [N, C, H, W]."""
    _, pooled, classes = table
    hits = 0
    for chunk, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        emb = image_encoder.encode(chunk.float() / 127.5 - 1).float().cpu()  # [B, E]
        nearest = (emb @ pooled.T).argmax(dim=1)  # [B]
        hits += int((classes[nearest] == y.cpu()).sum())
    return hits / max(len(images), 1)
