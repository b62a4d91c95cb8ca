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


# Element-wise and normalisation ops stay in float: quantizing their inputs adds error for little
# speed (the convolutions and matrix products are quantized).
FLOAT_TYPES = ["Add", "Subtract", "Multiply", "Divide", "Concat", "MVN", "GroupNormalization",
               "Interpolate", "ScaledDotProductAttention"]  # fmt: skip


def conditioning_ops(model) -> list[str]:
    """The names of the ops that depend on no image input (rank 4: x, a hint, SD's sample):
    the time, label, text and embedding paths, small per row, where 8 bits would lose the time
    step's resolution (t in [0, 1000) in 256 levels). A ShapeOf depends on no data."""
    deps: dict[str, bool] = {}  # name -> depends on an image input
    names = []
    for op in model.get_ordered_ops():
        kind, name = op.get_type_name(), op.get_friendly_name()
        if kind == "Parameter":
            rank = op.get_output_partial_shape(0).rank
            deps[name] = rank.is_dynamic or rank.get_length() == 4  # unknown: an image
            continue
        inputs = [v.get_node().get_friendly_name() for v in op.input_values()]
        deps[name] = kind != "ShapeOf" and any(deps.get(i, False) for i in inputs)
        if inputs and not deps[name] and kind not in ("Constant", "ShapeOf"):
            names.append(name)
    return names


def quantize(model, calibration: Feeds, *, keep_ends: bool):
    """NNCF post-training quantization of the image path's convolutions and matrix products,
    calibrated on the feeds: 8-bit asymmetric activations (the mixed preset), each range its min
    and max over all feeds (NNCF's default clips the large activations of some noise levels);
    7-bit weights, so that CPUs without VNNI (u8*s8 pairs summed in saturating int16) compute
    what VNNI does; the conditioning path, element-wise ops and (keep_ends) the end layers in
    float."""
    nncf = require("nncf")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    names = conditioning_ops(model) + (end_layers(model) if keep_ends else [])
    ignored = nncf.IgnoredScope(names=names, types=FLOAT_TYPES, validate=False)
    return nncf.quantize(
        model,
        nncf.Dataset(calibration),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(calibration),
        ignored_scope=ignored,
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
            overflow_fix=OverflowFix.ENABLE,
        ),
    )
