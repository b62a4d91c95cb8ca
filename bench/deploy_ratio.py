"""OpenVINO FP32 against PyTorch eager, as a ratio measured in one process: one guided DDIM
step (both CFG halves in one batch) of a recipe's network, the backends timed in turn, repeat
after repeat, so that the load of a shared CPU falls on all of them alike (issue 18's target:
OpenVINO at least 2x PyTorch eager at batch 64).

python bench/deploy_ratio.py [--recipe mnist] [--batch 64] [--threads 1] [--repeats 5]
    [--calls 1] [--configs NAME ...]

Each OpenVINO row is one set of compile properties (all infer in f32: INFERENCE_PRECISION_HINT
f32, as difflab.deploy sets for an FP32 export; bf16 would not be FP32's accuracy; the int8 row
is the graph quantized as `difflab export --precision int8` does, on random feeds), with
INFERENCE_NUM_THREADS equal to torch's threads. "static" reshapes the graph to the batch first.
Prints seconds per step and torch's time over each backend's in the same repeat (medians
over repeats). See
bench/README.md ("Deployment").
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from deploy import torch_step
from deploy_setup import SHAPES, export_network, network_parser, recipe_network
from difflab.deploy import openvino_core
from difflab.deploy.generate import guided
from difflab.export import deploy_grid
from difflab.export.openvino import quantize

LATENCY = {"PERFORMANCE_HINT": "LATENCY"}
CONFIGS = {
    "openvino default": {},
    "openvino LATENCY": LATENCY,
    "openvino THROUGHPUT": {"PERFORMANCE_HINT": "THROUGHPUT"},
    "openvino LATENCY, 1 stream": {**LATENCY, "NUM_STREAMS": "1"},
    "openvino LATENCY, no pinning": {**LATENCY, "ENABLE_CPU_PINNING": "NO"},
    "openvino LATENCY, static": {**LATENCY, "static": True},
    "openvino LATENCY, static, no pinning": {**LATENCY, "ENABLE_CPU_PINNING": "NO", "static": True},
    "openvino int8, LATENCY, static": {**LATENCY, "static": True, "int8": True},
    "openvino fp16, LATENCY, static": {**LATENCY, "static": True, "fp16": True},
}
CALIBRATION = 16  # random feeds: a graph's speed does not depend on its calibration


def openvino_call(model: ov.Model, config: dict, threads: int, batch: int, shape):
    """A numpy function of the graph compiled with config (+ f32 and the thread count); returns
    (the function, the compiled model's INFERENCE_NUM_THREADS)."""
    config = dict(config)
    if config.pop("int8", False):
        model = quantize(model, random_feeds(shape), keep_ends=False)
    if config.pop("static", False):
        c, size, _ = shape
        model = model.clone()
        model.reshape({"x": [batch, c, size, size], "t": [batch], "labels": [batch]})
    if not config.pop("fp16", False):  # an fp16 export infers at the CPU's default precision
        config["INFERENCE_PRECISION_HINT"] = "f32"
    config["INFERENCE_NUM_THREADS"] = str(threads)
    compiled = openvino_core().compile_model(model, "CPU", config)
    output = compiled.output(0)
    request = compiled.create_infer_request()

    def run(feeds):
        return request.infer(feeds)[output]

    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    return run, f"{compiled.get_property('INFERENCE_NUM_THREADS')}, precision {precision}"


def random_feeds(shape) -> list[dict[str, np.ndarray]]:
    """Calibration feeds of batch 1 with random images, times and labels (-1 included)."""
    c, size, classes = shape
    rng = np.random.default_rng(0)
    return [
        {
            "x": rng.standard_normal((1, c, size, size), np.float32),
            "t": rng.uniform(0, 1000, (1,)).astype(np.float32),  # as example_inputs
            "labels": rng.integers(-1, classes, (1,)),
        }
        for _ in range(CALIBRATION)
    ]


def main() -> None:
    p = network_parser(__doc__, 64, "images (the network sees twice that)", repeats=5)
    p.add_argument("--calls", type=int, default=1, help="steps per timing")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = p.parse_args()
    config, denoiser = recipe_network(args.recipe)
    torch.set_num_threads(args.threads)
    c, size, classes = SHAPES[args.recipe]
    sample = replace(config.sample, steps=50)
    grid = deploy_grid(denoiser.schedule, sample)
    labels = np.arange(args.batch) % classes
    x = np.random.default_rng(1).standard_normal((args.batch, c, size, size), np.float32)
    steps = {"torch eager": torch_step(denoiser, torch.from_numpy(labels), sample.guidance, grid)}
    print(f"torch threads {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_network(denoiser.network, SHAPES[args.recipe], Path(tmp) / "network.onnx")
        model = ov.convert_model(str(path))
    for name in args.configs:
        props = CONFIGS[name]
        shape = SHAPES[args.recipe]
        graph, threads = openvino_call(model, props, args.threads, 2 * args.batch, shape)
        print(f"{name}: INFERENCE_NUM_THREADS {threads}")
        steps[name] = guided(graph, grid, config.model.parameterization, labels=labels,
                             hints=None, guidance=sample.guidance)  # fmt: skip
    for step in steps.values():
        step(x, 0)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for i in range(1, args.calls + 1):
                step(x, i)
            times[name].append((time.perf_counter() - start) / args.calls)
        print(f"repeat {r}: " + ", ".join(f"{v[-1]:.2f}" for v in times.values()), flush=True)
    base = times["torch eager"]
    print(f"\n| backend | s per step (median of {args.repeats}) | torch eager / backend |")
    print("| --- | --- | --- |")
    for name, values in times.items():
        ratio = statistics.median(b / v for b, v in zip(base, values, strict=True))
        print(f"| {name} | {statistics.median(values):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
