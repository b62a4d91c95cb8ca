"""Which NNCF post-training quantization settings keep a trained denoiser's INT8 samples near
FP32's? One run's EMA network is exported once, quantized under each setting (calibration feeds
as `difflab export --precision int8` makes them, 64, 256 or 1024 of them), each variant sampled
by difflab.deploy from the same noise and labels and scored by the evaluation classifier (FID in
its features against the test split, accuracy of the requested classes).

python bench/int8_settings.py --run RUN [--samples 500] [--steps 20] [--variants NAME ...]

See bench/README.md ("Deployment").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nncf
import openvino as ov
import torch
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
from nncf.quantization.range_estimator import RangeEstimatorParametersSet

from deploy_quality import sample, scorer
from difflab.export.calibration import calibration_feeds
from difflab.export.graph import ExportedNetwork, example_inputs, export_onnx
from difflab.export.openvino import end_layers
from difflab.runs.load import load_run


def ranges(estimator, overflow_fix: OverflowFix = OverflowFix.FIRST_LAYER) -> dict:
    """nncf.quantize's keyword for an activation range estimator (and the weights' overflow
    fix: FIRST_LAYER, NNCF's default, leaves 8-bit weights after the first layer; ENABLE makes
    every weight 7-bit)."""
    params = AdvancedQuantizationParameters(
        activations_range_estimator_params=estimator, overflow_fix=overflow_fix
    )
    return {"advanced_parameters": params}


def difflabs(**how) -> tuple[int, dict]:
    """difflab's settings (export/openvino.quantize: 256 feeds, min-max ranges, 7-bit weights)
    with how's keywords added."""
    return 256, {**ranges(R.MINMAX, OverflowFix.ENABLE), **how}


R = RangeEstimatorParametersSet
CONV_ONLY = nncf.IgnoredScope(types=["MatMul"])
ENDS = "ends"  # replaced by the model's first and last weighted layers (export/openvino.py)
# row name -> (calibration feeds, nncf.quantize keywords); None: FP32
VARIANTS: dict[str, tuple[int, dict] | None] = {
    "fp32": None,
    "int8 (NNCF defaults, 64 feeds)": (64, {}),
    "256 feeds": (256, {}),
    "1024 feeds": (1024, {}),
    "mixed preset": (64, {"preset": nncf.QuantizationPreset.MIXED}),
    "convolutions only": (64, {"ignored_scope": CONV_ONLY}),
    "full bias correction": (64, {"fast_bias_correction": False}),
    "256 feeds, mixed, convolutions only": (
        256,
        {"preset": nncf.QuantizationPreset.MIXED, "ignored_scope": CONV_ONLY},
    ),
    "256 feeds, mean quantile ranges": (256, ranges(R.MEAN_QUANTILE)),
    "256 feeds, mean min-max without outliers": (256, ranges(R.MEAN_NO_OUTLIERS_MINMAX)),
    "256 feeds, min-max ranges (session 6)": (256, ranges(R.MINMAX)),
    "difflab's (min-max, 7-bit weights)": difflabs(),
    "difflab's, ends kept": difflabs(ignored_scope=ENDS),
    "difflab's, convolutions only": difflabs(ignored_scope=CONV_ONLY),
    "difflab's, mixed preset": difflabs(preset=nncf.QuantizationPreset.MIXED),
    "difflab's, full bias correction": difflabs(fast_bias_correction=False),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a class-conditional run")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = p.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run, weights="ema")
    run.config.sample = replace(run.config.sample, steps=args.steps)
    work = Path(tempfile.mkdtemp())
    inputs = example_inputs(run.latent_shape, labels=True, hint_shape=None)
    onnx_path = work / "network.onnx"
    with torch.no_grad():
        network = ExportedNetwork(run.denoiser.network).eval()
        export_onnx(network, inputs, "out", onnx_path, "torchscript")
    score = scorer(run)
    print("| variant | FID | FID / FP32's | accuracy | pixels differing from FP32 | quantize s |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    fp32 = None
    for i, name in enumerate(["fp32", *(v for v in args.variants if v != "fp32")]):
        model, start = ov.convert_model(str(onnx_path)), time.perf_counter()
        if VARIANTS[name] is not None:
            num, how = VARIANTS[name]
            if how.get("ignored_scope") == ENDS:
                how = {**how, "ignored_scope": nncf.IgnoredScope(names=end_layers(model))}
            feeds = calibration_feeds(run, inputs, num=num)
            model = nncf.quantize(model, nncf.Dataset(feeds), subset_size=num, **how)
        seconds = time.perf_counter() - start
        xml = work / f"variant-{i}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        precision = "fp32" if VARIANTS[name] is None else "int8"
        images, labels, _ = sample(run, xml, precision, args.samples, 1)
        result = score(images, labels)
        fp32 = fp32 or (images, result["fid"])
        print(f"| {name} | {result['fid']:.3f} | {result['fid'] / fp32[1]:.3f} | "
              f"{result['accuracy']:.3f} | {(images != fp32[0]).mean():.3f} | {seconds:.0f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
