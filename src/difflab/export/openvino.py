"""ONNX -> OpenVINO IR: fp32 keeps fp32 weights (ov.save_model compresses to fp16 unless told
not to), fp16 compresses them, int8 is NNCF post-training quantization on calibration feeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab.deploy.backends import require


def save_openvino(
    onnx_path: Path, xml_path: Path, precision: str, calibration: list[dict[str, np.ndarray]] | None
) -> None:
    """Convert onnx_path and save it as xml_path (+ .bin) at precision."""
    ov = require("openvino")
    model = ov.convert_model(str(onnx_path))
    if precision == "int8":
        model = quantize(model, calibration or [])
    ov.save_model(model, str(xml_path), compress_to_fp16=precision == "fp16")


def quantize(model, calibration: list[dict[str, np.ndarray]]):
    """NNCF post-training quantization (8-bit weights and activations) on the feeds given."""
    nncf = require("nncf")
    dataset = nncf.Dataset(calibration)
    return nncf.quantize(model, dataset, subset_size=len(calibration))
