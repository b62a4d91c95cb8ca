"""A Stable Diffusion UNet under PyTorch eager, ONNX Runtime, OpenVINO FP32 and OpenVINO INT8,
timed in one process: one classifier-free-guided step (both halves in one batch of 2N, as
difflab.deploy.text runs it), the backends in turn, repeat after repeat, so the load of a
shared CPU falls on all alike; ratios are torch's time over each backend's in the same repeat.

python bench/sd_deploy.py [--size tiny|small|half|full] [--batch 1] [--threads 1] [--repeats 5]
    [--steps 50] [--no-int8] [--calibration 64] [--pinned]

The UNet has random weights (diffusers' UNet2DConditionModel, seed 0): speed only. The graphs
are what `difflab export --format onnx|openvino` writes for an SD run's UNet (ONNX by the
TorchScript exporter, IR with f32 weights, run by difflab.deploy's open_graph: f32 inference,
static shapes); INT8 is NNCF calibrated on --calibration feeds of random latents and text
states at times of the grid (a real export calibrates on captioned training latents: its
accuracy is not measured here). Seconds per image: --steps UNet steps over N images, text
encoder and VAE decoder left out; --size full is SD v1's UNet (860M parameters), --size half
its layout, heads and latents at half its widths. --pinned adds the FP32 graph compiled with
OpenVINO's default CPU pinning (difflab.deploy turns it off). See bench/README.md
("Deployment").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from difflab.deploy import open_graph
from difflab.deploy.backends import openvino_config, openvino_core
from difflab.deploy.text import UNET_INPUTS
from difflab.export.graph import export_onnx
from difflab.export.openvino import save_openvino
from difflab.integrations.stable_diffusion.onnx_export import UNetGraph

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sd_speed_steps import FULL, TINY, SDSize, make_unet  # noqa: E402  (bench/ is not a package)

TOKENS = 77
# a mid-size UNet: SD v1's block layout at a quarter of its widths, latents 4x16x16
SMALL = SDSize(
    "small SD UNet (SD v1's layout, widths 64-256), latents 4x16x16, text 77x192",
    dict(
        sample_size=16, block_out_channels=(64, 128, 256, 256), cross_attention_dim=192,
        attention_head_dim=8, layers_per_block=1,
    ),
    latent_size=16,
    text_dim=192,
)  # fmt: skip
# SD v1's layout, heads (8), latents (4x64x64) and text states at half its widths (220M)
HALF = SDSize(
    "half SD UNet (SD v1's layout, widths 160-640), latents 4x64x64, text 77x768",
    dict(sample_size=64, block_out_channels=(160, 320, 640, 640), cross_attention_dim=768),
    latent_size=64,
    text_dim=768,
)
SIZES = {"tiny": TINY, "small": SMALL, "half": HALF, "full": FULL}


def feeds(size: SDSize, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Random UNet inputs of batch rows by optimum's names."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, 4, size.latent_size, size.latent_size), np.float32)
    t = rng.uniform(0, 999, batch).astype(np.float32)
    text = rng.standard_normal((batch, TOKENS, size.text_dim), np.float32)
    return dict(zip(UNET_INPUTS, (z, t, text), strict=True))


def graphs(
    unet: nn.Module, size: SDSize, folder: Path, threads: int, int8: int, pinned: bool = False
) -> dict:
    """{backend name: numpy function of the feeds} for the exported and converted UNet."""
    holder = nn.Module()
    holder.unet = unet
    onnx_path = folder / "unet.onnx"
    example = {k: torch.from_numpy(v) for k, v in feeds(size, 2, 0).items()}
    with torch.no_grad():
        export_onnx(UNetGraph(holder).eval(), example, "out_sample", onnx_path, "torchscript")
    out = {"onnxruntime": open_graph(onnx_path, "onnxruntime", threads=threads)}
    save_openvino(onnx_path, folder / "fp32.xml", "fp32", None, keep_ends=False)
    out["openvino fp32"] = open_graph(folder / "fp32.xml", "openvino", threads=threads)
    if pinned:
        out["openvino fp32, pinned"] = pinned_graph(folder / "fp32.xml", threads)
    if int8:
        calibration = [feeds(size, 1, seed) for seed in range(int8)]
        save_openvino(onnx_path, folder / "int8.xml", "int8", calibration, keep_ends=False)
        out["openvino int8"] = open_graph(folder / "int8.xml", "openvino", precision="int8",
                                          threads=threads)  # fmt: skip
    return out


def pinned_graph(xml: Path, threads: int):
    """The FP32 graph compiled as difflab.deploy does (static shapes: the first feeds') but with
    OpenVINO's CPU pinning on."""
    core, compiled = openvino_core(), []

    def run(x: dict[str, np.ndarray]) -> np.ndarray:
        if not compiled:
            model = core.read_model(str(xml))
            model.reshape({k: list(v.shape) for k, v in x.items()})
            config = {**openvino_config(threads, "fp32"), "ENABLE_CPU_PINNING": "YES"}
            compiled.append(core.compile_model(model, "CPU", config))
        return compiled[0](x)[compiled[0].output(0)]

    return run


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=list(SIZES), default="small")
    p.add_argument("--batch", type=int, default=1, help="images N (the UNet sees 2N)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=50, help="UNet steps per image")
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--calibration", type=int, default=64, help="INT8 calibration feeds")
    p.add_argument("--pinned", action="store_true", help="add the FP32 graph with CPU pinning")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = SIZES[args.size]
    unet = make_unet(size, torch.device("cpu")).eval()
    x = feeds(size, 2 * args.batch, 1)
    tensors = {k: torch.from_numpy(v) for k, v in x.items()}

    def torch_step(_feeds):
        with torch.no_grad():
            return unet(*tensors.values(), return_dict=False)[0]

    with tempfile.TemporaryDirectory() as tmp:
        int8 = 0 if args.no_int8 else args.calibration
        steps = {"torch eager": torch_step, **graphs(unet, size, Path(tmp), args.threads, int8,
                                                   args.pinned)}  # fmt: skip
        times = timed(steps, x, args.repeats)
    print(f"{size.name}; batch {args.batch} (UNet batch {2 * args.batch}), {args.threads} thread")
    table(times, args.steps / args.batch)
    return times


def timed(steps: dict, x: dict[str, np.ndarray], repeats: int) -> dict[str, list[float]]:
    """Seconds of one call of each step, per repeat, the steps interleaved (after a warm-up)."""
    for step in steps.values():
        step(x)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step(x)
            times[name].append(time.perf_counter() - start)
        print(f"repeat {r}: " + ", ".join(f"{v[-1]:.4f}" for v in times.values()), flush=True)
    return times


def table(times: dict[str, list[float]], steps_per_image: float) -> None:
    """Medians over repeats: s per guided UNet step, s per image, torch's time / backend's."""
    base = times["torch eager"]
    print("\n| backend | s per UNet step | s per image | torch eager / backend |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        ratio = statistics.median(b / v for b, v in zip(base, values, strict=True))
        step = statistics.median(values)
        print(f"| {name} | {step:.4f} | {step * steps_per_image:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
