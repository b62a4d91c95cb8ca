"""Mean intersection over union, the hint fidelity of segmentation hints.

The conditioning hint's palette colours are read back into class labels; each sample's labels
come from the map re-extractor (`map_network.py`) trained on the dataset's exact class maps.
IoU_c = |pred = c and target = c| / |pred = c or target = c| over all pixels of all images;
mIoU is its mean over the classes present in either (background, class 0, included).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.data.hint_segmentation import labels_from_colours
from difflab.data.transforms import to_uint8
from difflab.evaluation.hint_fidelity import HINT_METRICS, HintSetting
from difflab.evaluation.map_network_training import reextracted_maps


def mean_iou(predicted: Tensor, target: Tensor) -> dict[str, Any]:
    """mIoU of integer label maps predicted against target (same shape): {"miou", "iou": per
    class (None for a class in neither)}."""
    if predicted.shape != target.shape:
        raise DataError(f"mean_iou: predicted {tuple(predicted.shape)} vs {tuple(target.shape)}")
    classes = int(max(predicted.max(), target.max())) + 1
    iou: list[float | None] = []
    for c in range(classes):
        p, t = predicted == c, target == c
        union = int((p | t).sum())
        iou.append(int((p & t).sum()) / union if union else None)
    present = [v for v in iou if v is not None]
    return {"miou": sum(present) / len(present), "iou": iou}


def segmentation_labels(hints: Tensor) -> Tensor:
    """Palette-coloured hints [N, 3, H, W] in [-1, 1] -> class labels long [N, H, W]."""
    return labels_from_colours(to_uint8(hints).permute(0, 2, 3, 1))


def segmentation_fidelity(images: Tensor, hints: Tensor, setting: HintSetting) -> dict[str, Any]:
    """mIoU of the re-extractor's class maps of the samples against their hints' class maps."""
    if setting.options.get("source") != "labels":
        raise ConfigError(
            "metric hint for segmentation needs hint_options source: labels (class maps); "
            "region maps (source: regions) have no classes to compare"
        )
    predicted, folder = reextracted_maps(images, setting, "segmentation")
    scores = mean_iou(predicted, segmentation_labels(hints))
    return {"hint_metric": "miou", "hint_fidelity": scores["miou"], "hint_iou": scores["iou"],
            "hint_reextractor": str(folder)}  # fmt: skip


HINT_METRICS.register("segmentation")(segmentation_fidelity)
