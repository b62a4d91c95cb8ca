"""Scale-invariant log RMSE (Eigen et al. 2014, Eq. 1 with lambda = 1), the hint fidelity of
depth hints: per image, d_i = log y_i - log y*_i over its pixels and
err = sqrt(mean(d^2) - mean(d)^2), the RMSE of log depth after the best global scale; the mean
over images. Depths are clamped below at MIN_DEPTH before the log.

The conditioning depth is read back from the hint (depth = (1 - hint) / 2); each sample's
depth comes from the map re-extractor (`map_network.py`) trained on the dataset's exact depths.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from difflab.core.errors import ConfigError, DataError
from difflab.evaluation.hint_fidelity import HINT_METRICS, HintSetting
from difflab.evaluation.map_network_training import reextracted_maps

MIN_DEPTH = 1e-3


def scale_invariant_log_rmse(predicted: Tensor, target: Tensor) -> Tensor:
    """Per-image scale-invariant log RMSE [N] of positive depths [N, ...] against target."""
    if predicted.shape != target.shape:
        raise DataError(f"depth error: predicted {tuple(predicted.shape)} vs {tuple(target.shape)}")
    d = predicted.double().clamp_min(MIN_DEPTH).log() - target.double().clamp_min(MIN_DEPTH).log()
    d = d.flatten(1)  # [N, pixels]
    return (d.square().mean(1) - d.mean(1).square()).clamp_min(0).sqrt()


def depth_fidelity(images: Tensor, hints: Tensor, setting: HintSetting) -> dict[str, Any]:
    """Scale-invariant log RMSE of the re-extractor's depth of the samples against their hints'
    depth (lower is better)."""
    if setting.options.get("source", "map") != "map":
        raise ConfigError("metric hint for depth needs hint_options source: map (the dataset's "
                          "exact depths train the re-extractor)")  # fmt: skip
    predicted, folder = reextracted_maps(images, setting, "depth")
    errors = scale_invariant_log_rmse(predicted, (1.0 - hints[:, 0]) / 2.0)
    stderr = float(errors.std() / len(errors) ** 0.5) if len(errors) > 1 else float("nan")
    return {"hint_metric": "silog_rmse", "hint_fidelity": float(errors.mean()),
            "hint_fidelity_stderr": stderr, "hint_reextractor": str(folder)}  # fmt: skip


HINT_METRICS.register("depth")(depth_fidelity)
