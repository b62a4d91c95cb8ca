"""Which NNCF post-training quantization settings keep a trained denoiser's INT8 samples near
FP32's? One run's EMA network is exported once, quantized under each setting (calibration feeds
as `difflab export --precision int8` makes them, 64, 256 or 1024 of them), each variant sampled
by difflab.deploy from the same noise and labels and scored by the evaluation classifier (FID in
its features against the test split, accuracy of the requested classes).

python bench/int8_settings.py --run RUN [--samples 500] [--steps 20] [--variants NAME ...]
    [--output-error N] [--per-step N]

--output-error N skips sampling: each variant's relative L2 error against the FP32 graph's
output on N held-out feeds (made as the calibration feeds are), median, mean and max.
--per-step N: the exporter's error per group of grid steps, as one graph and per time group.

See bench/README.md ("Deployment").
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
import torch
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
from nncf.quantization.range_estimator import RangeEstimatorParameters, RangeEstimatorParametersSet

from deploy_quality import sample, scorer
from difflab.deploy import openvino_core
from difflab.deploy.time_groups import TIME_GROUPS, step_groups, time_routed
from difflab.export import deploy_grid
from difflab.export.calibration import calibration_feeds, grouped_calibration
from difflab.export.graph import ExportedNetwork, example_inputs, export_onnx
from difflab.export.openvino import FLOAT_TYPES, conditioning_ops, end_layers, quantize
from difflab.runs.load import load_run


def ranges(estimator, overflow_fix: OverflowFix = OverflowFix.FIRST_LAYER) -> dict:
    """nncf.quantize's keyword for an activation range estimator (and the weights' overflow
    fix: FIRST_LAYER, NNCF's default, leaves 8-bit weights after the first layer; ENABLE makes
    every weight 7-bit)."""
    params = AdvancedQuantizationParameters(
        activations_range_estimator_params=estimator, overflow_fix=overflow_fix
    )
    return {"advanced_parameters": params}


def minmax7(**how) -> tuple[int, dict]:
    """256 feeds, min-max ranges, 7-bit weights (the exporter before it left the conditioning
    path and element-wise ops in float) with how's keywords added."""
    return 256, {**ranges(R.MINMAX, OverflowFix.ENABLE), **how}


R = RangeEstimatorParametersSet
E = OverflowFix.ENABLE
CONV_ONLY = nncf.IgnoredScope(types=["MatMul"])
ENDS = "ends"  # replaced by the model's first and last weighted layers (export/openvino.py)
CONDITIONING = "conditioning"  # replaced by the ops fed by no image input, and element-wise ops
EXPORTER = "exporter"  # difflab export --precision int8 itself (export/openvino.quantize)
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
    "NNCF's default ranges, 7-bit weights": (256, ranges(RangeEstimatorParameters(), E)),
    "min-max, 7-bit weights": minmax7(),
    "min-max, 7-bit, ends kept": minmax7(ignored_scope=ENDS),
    "min-max, 7-bit, convolutions only": minmax7(ignored_scope=CONV_ONLY),
    "min-max, 7-bit, mixed preset": minmax7(preset=nncf.QuantizationPreset.MIXED),
    "min-max, 7-bit, full bias correction": minmax7(fast_bias_correction=False),
    "min-max, 7-bit, no convolution or matrix product quantized": minmax7(
        ignored_scope=nncf.IgnoredScope(types=["Convolution", "MatMul"])
    ),
    "min-max, 7-bit, conditioning and element-wise in float": minmax7(ignored_scope=CONDITIONING),
    "difflab's exporter": (256, {EXPORTER: True}),
}


def quantized(model, feeds_of, name: str):
    """model quantized as VARIANTS[name] says (unchanged for FP32); feeds_of(num): the run's
    first num calibration feeds."""
    if VARIANTS[name] is None:
        return model
    num, how = VARIANTS[name]
    feeds = feeds_of(num)
    if how.get(EXPORTER):
        return quantize(model, feeds, keep_ends=False)
    if how.get("ignored_scope") == ENDS:
        how = {**how, "ignored_scope": nncf.IgnoredScope(names=end_layers(model))}
    if how.get("ignored_scope") == CONDITIONING:
        scope = nncf.IgnoredScope(names=conditioning_ops(model), types=FLOAT_TYPES, validate=False)
        how = {**how, "ignored_scope": scope}
    return nncf.quantize(model, nncf.Dataset(feeds), subset_size=num, **how)


def output_errors(onnx_path: Path, feeds_of, names: list[str], num: int) -> None:
    """Print each variant's relative L2 error against the FP32 graph's output on num held-out
    feeds (made as calibration feeds, after the largest calibration set's)."""
    feeds = feeds_of(1024 + num)[1024:]
    core = openvino_core()
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    reference = core.compile_model(ov.convert_model(str(onnx_path)), "CPU", f32)
    expected = [reference(f)[0] for f in feeds]
    print("| variant | median error | mean | max |\n| --- | --- | --- | --- |", flush=True)
    for name in names:
        graph = core.compile_model(quantized(ov.convert_model(str(onnx_path)), feeds_of, name),
                                   "CPU", f32)  # fmt: skip
        errors = [np.linalg.norm(graph(f)[0] - e) / np.linalg.norm(e)
                  for f, e in zip(feeds, expected, strict=True)]  # fmt: skip
        print(f"| {name} | {np.median(errors):.3f} | {np.mean(errors):.3f} | "
              f"{np.max(errors):.3f} |", flush=True)  # fmt: skip


def per_step_errors(run, onnx_path: Path, feeds_of, inputs, num: int) -> None:
    """Print the exporter's INT8 output error against FP32's per group of grid steps (0: the
    noisiest), as one graph and as TIME_GROUPS graphs routed by time, on num held-out feeds
    (made as calibration feeds, after the largest calibration set's, steps cycled)."""
    feeds = feeds_of(1024 + num)[1024:]
    grid = deploy_grid(run.denoiser.schedule, run.config.sample)
    step = (1024 + np.arange(num)) % grid.steps
    runs, _ = step_groups(grid.network_t, TIME_GROUPS)
    core, f32 = openvino_core(), {"INFERENCE_PRECISION_HINT": "f32"}

    def graph(model):
        compiled = core.compile_model(model, "CPU", f32)
        return lambda feed: compiled(feed)[0]

    def int8(feeds):
        return graph(quantize(ov.convert_model(str(onnx_path)), feeds, keep_ends=False))

    expected = [graph(ov.convert_model(str(onnx_path)))(f) for f in feeds]
    sets, bounds = grouped_calibration(run, inputs, TIME_GROUPS)
    variants = {
        "one graph": int8(feeds_of(256)),
        f"{TIME_GROUPS} time groups": time_routed([int8(f) for f in sets], bounds),
    }
    heads = [f"steps {r[0]}-{r[-1]}" for r in runs[::-1]]
    print("| quantization | " + " | ".join(heads) + " | mean |\n" + "| --- " * (len(runs) + 2)
          + "|", flush=True)  # fmt: skip
    for name, run_graph in variants.items():
        errors = np.array([np.linalg.norm(run_graph(f) - e) / np.linalg.norm(e)
                           for f, e in zip(feeds, expected, strict=True)])  # fmt: skip
        cells = [f"{errors[np.isin(step, r)].mean():.3f}" for r in runs[::-1]]
        print(f"| {name} | " + " | ".join(cells) + f" | {errors.mean():.3f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a class-conditional run")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--output-error", type=int, default=0, metavar="N",
                   help="instead of sampling: output errors on N held-out feeds")  # fmt: skip
    p.add_argument("--per-step", type=int, default=0, metavar="N",
                   help="instead of sampling: the exporter's output error per group of grid "
                   "steps, one graph against time groups, on N held-out feeds")  # fmt: skip
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
    # the calibration feeds of each size, made once (each reads the training split)
    feeds_of = functools.cache(lambda num: calibration_feeds(run, inputs, num=num))
    if args.per_step:
        return per_step_errors(run, onnx_path, feeds_of, inputs, args.per_step)
    if args.output_error:
        names = [v for v in args.variants if v != "fp32"]
        return output_errors(onnx_path, feeds_of, names, args.output_error)
    score = scorer(run)
    print("| variant | FID | FID / FP32's | accuracy | pixels differing from FP32 | quantize s |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    fp32 = None
    for i, name in enumerate(["fp32", *(v for v in args.variants if v != "fp32")]):
        start = time.perf_counter()
        model = quantized(ov.convert_model(str(onnx_path)), feeds_of, name)
        seconds = time.perf_counter() - start
        xml = work / f"variant-{i}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        precision = "fp32" if VARIANTS[name] is None else "int8"
        images, labels, _ = sample(run, ([xml], []), precision, args.samples, 1)
        result = score(images, labels)
        fp32 = fp32 or (images, result["fid"])
        print(f"| {name} | {result['fid']:.3f} | {result['fid'] / fp32[1]:.3f} | "
              f"{result['accuracy']:.3f} | {(images != fp32[0]).mean():.3f} | {seconds:.0f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
