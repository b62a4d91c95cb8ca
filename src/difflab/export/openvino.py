"""ONNX -> OpenVINO IR: fp32 keeps fp32 weights (ov.save_model compresses to fp16 unless told
not to), fp16 compresses them, int8 is NNCF post-training quantization on calibration feeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab.deploy.backends import require

Feeds = list[dict[str, np.ndarray]]
WEIGHTED_OPS = ("Convolution", "MatMul")


def save_openvino(
    onnx_path: Path, xml_path: Path, precision: str, calibration: Feeds | None, keep_ends: bool
) -> None:
    """Convert onnx_path and save it as xml_path (+ .bin) at precision."""
    ov = require("openvino")
    model = ov.convert_model(str(onnx_path))
    if precision == "int8":
        model = quantize(model, calibration or [], keep_ends=keep_ends)
    ov.save_model(model, str(xml_path), compress_to_fp16=precision == "fp16")


def end_layers(model) -> list[str]:
    """The names of the first and last weighted ops (convolution or matrix product)."""
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() in WEIGHTED_OPS]
    return sorted({ops[0].get_friendly_name(), ops[-1].get_friendly_name()}) if ops else []


def quantize(model, calibration: Feeds, *, keep_ends: bool):
    """NNCF post-training quantization calibrated on the feeds: 8-bit activations, each one's
    range its min and max over all feeds (NNCF's default clips the large activations of some
    noise levels); every weight in 7 bits, so that CPUs without VNNI (AVX2: u8*s8 pairs summed
    in saturating int16) compute what VNNI does; keep_ends leaves the end layers in float."""
    nncf = require("nncf")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    ignored = nncf.IgnoredScope(names=end_layers(model)) if keep_ends else nncf.IgnoredScope()
    ranges = RangeEstimatorParametersSet.MINMAX
    return nncf.quantize(
        model,
        nncf.Dataset(calibration),
        subset_size=len(calibration),
        ignored_scope=ignored,
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=ranges, overflow_fix=OverflowFix.ENABLE
        ),
    )
