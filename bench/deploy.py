"""Sampling speed of an exported network: images/s of DDIM sampling with classifier-free
guidance under PyTorch eager, ONNX Runtime, OpenVINO FP32 and OpenVINO INT8 (issue 18).

python bench/deploy.py [--recipes mnist cifar10] [--batches 1 64] [--steps 50]
    [--timed-steps 3] [--threads N]

Each recipe's network with its initial (random) weights, so no data or training is needed:
the speed of a graph does not depend on its weights. INT8 is NNCF post-training quantization
calibrated on random images noised to the grid's times. Each backend runs the recipe's DDIM
grid (`--steps`) at the recipe's guidance scale (both CFG halves in one batch); after one
untimed step it times the first `--timed-steps` steps of that grid and reports images/s of the
whole grid, batch / (steps x seconds per step). See bench/README.md ("Deployment").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from deploy_setup import SHAPES, export_network, recipe_network
from difflab.conditioning import Condition, classifier_free_guidance
from difflab.deploy import Grid, open_graph
from difflab.deploy.generate import guided
from difflab.export import deploy_grid
from difflab.export.openvino import quantize


def time_steps(step, x, steps: int) -> float:
    """Seconds per call of step(x, i) over grid points 1..steps, after one untimed call."""
    step(x, 0)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(x, i)
    return (time.perf_counter() - start) / steps


def torch_step(denoiser, labels: torch.Tensor, guidance: float, grid: Grid):
    cond = Condition(labels=labels)
    denoise = classifier_free_guidance(denoiser, cond, cond.null(), guidance)
    t = torch.from_numpy(grid.t)

    def step(x, i):
        with torch.no_grad():
            return denoise(torch.from_numpy(x), t[i])

    return step


def graphs(denoiser, shape, grid: Grid, folder: Path) -> dict[str, Path]:
    """network.onnx, its OpenVINO FP32 IR and its INT8 IR (random calibration) in folder."""
    import openvino as ov

    c, size, _ = shape
    onnx_path = export_network(denoiser.network, shape, folder / "network.onnx")
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(folder / "fp32.xml"), compress_to_fp16=False)
    rng = np.random.default_rng(0)
    feeds = []
    for i in range(32):
        k = i % grid.steps
        x = grid.alpha[k] * rng.uniform(-1, 1, (1, c, size, size))
        x += grid.sigma[k] * rng.standard_normal((1, c, size, size))
        feeds.append({"x": x.astype(np.float32), "t": np.float32([grid.network_t[k]]),
                      "labels": np.int64([i % 10 if i % 2 else -1])})  # fmt: skip
    ov.save_model(quantize(model, feeds, keep_ends=False), str(folder / "int8.xml"))
    return {"onnxruntime": onnx_path, "openvino fp32": folder / "fp32.xml",
            "openvino int8": folder / "int8.xml"}  # fmt: skip


def bench_recipe(name: str, args: argparse.Namespace) -> list[str]:
    """Table rows of one recipe: images/s per backend at each batch size."""
    config, denoiser = recipe_network(name)
    c, size, classes = SHAPES[name]
    params = sum(p.numel() for p in denoiser.parameters()) / 1e6
    sample = replace(config.sample, steps=args.steps)
    grid = deploy_grid(denoiser.schedule, sample)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = graphs(denoiser, SHAPES[name], grid, Path(tmp))
        for batch in args.batches:
            x = np.random.default_rng(1).standard_normal((batch, c, size, size), np.float32)
            labels = np.arange(batch) % classes
            steps = {"torch eager": torch_step(denoiser, torch.from_numpy(labels),
                                               sample.guidance, grid)}  # fmt: skip
            for kind, path in paths.items():
                backend, _, precision = kind.partition(" ")
                graph = open_graph(path, backend, precision=precision or "fp32",
                                   threads=args.threads)  # fmt: skip
                steps[kind] = guided(graph, grid, config.model.parameterization, labels=labels,
                                     hints=None, guidance=sample.guidance)  # fmt: skip
            speed = [batch / (args.steps * time_steps(s, x, args.timed_steps)) for s in
                     steps.values()]  # fmt: skip
            rows.append(f"| {name} | {params:.1f}M | {batch} | "
                        + " | ".join(f"{v:.3g}" for v in speed) + " |")  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["mnist", "cifar10"], choices=list(SHAPES))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of the grid")
    p.add_argument("--timed-steps", type=int, default=3)
    p.add_argument("--threads", type=int, help="threads of every backend (default: theirs)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    header = "| recipe | parameters | batch | torch eager | onnxruntime | openvino fp32 | " \
             "openvino int8 |"  # fmt: skip
    print(f"images/s of DDIM-{args.steps} with CFG\n\n{header}\n" + "| --- " * 7 + "|")
    for name in args.recipes:
        bench_recipe(name, args)


if __name__ == "__main__":
    main()
