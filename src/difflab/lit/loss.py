"""The contrastive loss of CLIP and LiT."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips the learned temperature at 1 / 100


def info_nce(images: Tensor, texts: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE of unit-norm pairs [N, E] x [N, E]: the mean of the cross-entropies of
    the logits exp(s) I T^T over rows and columns, the diagonal being the pairs (Radford et al.
    2021, Figure 3); s is clamped at log 100."""
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * images @ texts.T  # [N, N]
    target = torch.arange(len(images), device=images.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
