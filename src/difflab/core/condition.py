"""Condition: what a batch is conditioned on (class labels, text, control hint, embedding).

Each kind has a null value so that condition dropout and classifier-free guidance work for
every kind: the null label is NULL_LABEL (-1), the null text is the empty prompt's embedding
(zeros unless the text encoder gives one), the null hint is a zero image, the null embedding
is a zero vector.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

NULL_LABEL = -1


@dataclass(frozen=True)
class Condition:
    labels: Tensor | None = None  # [N] long; NULL_LABEL means "no label"
    text: Tensor | None = None  # [N, L, D] token embeddings
    text_mask: Tensor | None = None  # [N, L] bool, True for real tokens
    hint: Tensor | None = None  # [N, C, H, W] control image in [-1, 1]
    embedding: Tensor | None = None  # [N, E] an L2-normalised image or text embedding (unCLIP)

    def _items(self) -> dict[str, Tensor]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    @property
    def batch_size(self) -> int | None:
        items = self._items()
        return next(iter(items.values())).shape[0] if items else None

    def is_empty(self) -> bool:
        return not self._items()

    def to(self, device: torch.device | str) -> Condition:
        return replace(self, **{k: v.to(device) for k, v in self._items().items()})

    def cast(self, dtype: torch.dtype) -> Condition:
        """The floating-point parts (text embeddings, hint, embedding) in dtype; labels and masks as
        they are."""
        items = self._items().items()
        return replace(self, **{k: v.to(dtype) for k, v in items if v.is_floating_point()})

    def null(self, null_text: Tensor | None = None) -> Condition:
        """The null condition of the same kinds and batch size."""
        out: dict[str, Tensor] = {}
        for k, v in self._items().items():
            if k == "labels":
                out[k] = torch.full_like(v, NULL_LABEL)
            elif k == "text" and null_text is not None:
                out[k] = null_text.to(v).expand_as(v)
            elif k == "text_mask" and null_text is not None:
                out[k] = torch.ones_like(v)
            else:
                out[k] = torch.zeros_like(v)
        return replace(self, **out)

    def where(self, keep: Tensor, other: Condition) -> Condition:
        """Per sample: this condition where keep[i], else other's ([N] bool)."""
        out = {}
        for k, v in self._items().items():
            o = getattr(other, k)
            mask = keep.to(v.device).view((-1,) + (1,) * (v.ndim - 1))
            out[k] = torch.where(mask, v, o)
        return replace(self, **out)

    def cat(self, other: Condition) -> Condition:
        """Concatenate two conditions of the same kinds along the batch."""
        return replace(
            self, **{k: torch.cat([v, getattr(other, k)]) for k, v in self._items().items()}
        )

    def index(self, idx: Tensor | slice) -> Condition:
        return replace(self, **{k: v[idx] for k, v in self._items().items()})


def drop_condition(cond: Condition, drop: Tensor, null_text: Tensor | None = None) -> Condition:
    """Condition dropout for classifier-free guidance: the null condition where drop[i]
    (Ho & Salimans 2022, Algorithm 1)."""
    return cond.null(null_text).where(drop, cond) if not cond.is_empty() else cond
