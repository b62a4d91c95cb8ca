"""Edge F1 with a pixel tolerance, the hint fidelity of canny, hough and scribble hints.

A predicted edge pixel is a match when a target edge pixel lies within `tolerance` pixels of it
in x and y (a (2 tolerance + 1)-pixel square), and a target edge pixel is recalled when a
predicted one lies within it. Counts are summed over all images (one precision, recall and F1
for the set). Canny and Hough re-extract with the run's own hint transform; scribble, whose
maps are broken and dilated at random, with the deterministic skeleton it is made from
(ScribbleHint.skeleton: the thinned soft edges, no breaks, no dilation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.data import make_hint
from difflab.data.hints import grey_uint8
from difflab.evaluation.hint_fidelity import HINT_METRICS, HintSetting, symmetric


def within(mask: Tensor, tolerance: int) -> Tensor:
    """Bool [N, H, W]: pixels with a pixel of mask within `tolerance` in x and y."""
    k = 2 * tolerance + 1
    grown = F.max_pool2d(mask[:, None].float(), k, stride=1, padding=tolerance)
    return grown[:, 0] > 0


def edge_f1(predicted: Tensor, target: Tensor, tolerance: int = 1) -> dict[str, float]:
    """Precision, recall and F1 of bool edge maps [N, H, W] against target maps [N, H, W].

    F1 = 2 P R / (P + R); with no predicted or no target edge pixels it is 0 (1 when neither
    has any)."""
    predicted, target = predicted.bool(), target.bool()
    n_pred, n_target = int(predicted.sum()), int(target.sum())
    if n_pred == 0 or n_target == 0:
        f1 = 1.0 if n_pred == n_target else 0.0
        return {"precision": f1, "recall": f1, "f1": f1}
    precision = int((predicted & within(target, tolerance)).sum()) / n_pred
    recall = int((target & within(predicted, tolerance)).sum()) / n_target
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


def edges_of(images: Tensor, setting: HintSetting) -> Tensor:
    """Bool edge maps [N, H, W] re-extracted from uint8 images [N, C, H, W]."""
    hint = make_hint(setting.hint, **setting.options)
    x = symmetric(images)
    if setting.hint == "scribble":
        maps = np.stack([hint.skeleton(im) for im in grey_uint8(x)])  # type: ignore[attr-defined]
        return torch.from_numpy(maps)
    return hint({"image": x})["hint"][:, 0] > 0


def edge_fidelity(images: Tensor, hints: Tensor, setting: HintSetting) -> dict[str, Any]:
    """Edge F1 (tolerance 1) of the samples' re-extracted edges against their hints' edges."""
    scores = edge_f1(edges_of(images, setting), hints[:, 0] > 0, tolerance=1)
    return {
        "hint_metric": "edge_f1",
        "hint_fidelity": scores["f1"],
        "hint_precision": scores["precision"],
        "hint_recall": scores["recall"],
        "hint_tolerance": 1,
    }


for _name in ("canny", "hough", "scribble"):
    HINT_METRICS.register(_name)(edge_fidelity)
