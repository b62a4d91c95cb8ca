"""Where one forward of a recipe's network spends its time, PyTorch eager against OpenVINO FP32
(issue 18's 2x target): torch's profiler (self CPU time per op) and OpenVINO's per-node counters
(PERF_COUNT), each summed into the same op groups. The last line is the most OpenVINO FP32 could
gain at this batch if everything but its convolutions took no time: torch's total over
OpenVINO's convolution time.

python bench/deploy_profile.py [--recipe mnist] [--batch 128] [--threads 1] [--repeats 2]

The network (random weights: speed does not depend on them) sees --batch rows, i.e. a guided
step of batch/2 images; the OpenVINO graph is reshaped to that static batch and infers in f32,
as difflab.deploy compiles an FP32 export. See bench/README.md ("Deployment").
"""

from __future__ import annotations

import collections
import tempfile
import time
from pathlib import Path

import torch

from deploy_setup import SHAPES, export_network, network_parser, recipe_network
from difflab.deploy.backends import openvino_config, openvino_core
from difflab.export.graph import ExportedNetwork

# (group, substrings of torch op names, substrings of OpenVINO node types); first match wins
GROUPS = [
    ("convolution", ("convolution",), ("Convolution",)),
    ("attention", ("attention", "softmax", "bmm"), ("ScaledDotProductAttention", "Softmax")),
    ("matrix products", ("mm", "linear", "matmul"), ("FullyConnected", "MatMul")),
    ("normalisation", ("norm",), ("MVN", "GroupNormalization")),
    ("layout (copies, reorders)", ("copy", "cat", "contiguous"), ("Reorder", "Transpose",
                                                                   "Concat", "Reshape")),
]  # fmt: skip
OTHER = "elementwise and other"


def group(name: str, torch_op: bool) -> str:
    for label, torch_keys, ov_keys in GROUPS:
        if any(k in name for k in (torch_keys if torch_op else ov_keys)):
            return label
    return OTHER


def seconds(f, repeats: int) -> float:
    f()
    start = time.perf_counter()
    for _ in range(repeats):
        f()
    return (time.perf_counter() - start) / repeats


def torch_profile(net, feeds: dict) -> dict[str, float]:
    with torch.no_grad(), torch.profiler.profile() as prof:
        net(**feeds)
    totals: dict[str, float] = collections.Counter()
    for event in prof.key_averages():
        totals[group(event.key, True)] += event.self_cpu_time_total / 1e6
    return totals


def openvino_profile(path: Path, feeds: dict, threads: int, repeats: int):
    """(s per forward, {group: s}) of the static-batch f32 graph."""
    core = openvino_core()  # one Core per process (difflab.deploy.openvino_core)
    model = core.read_model(str(path))
    model.reshape({k: list(v.shape) for k, v in feeds.items()})
    config = {**openvino_config(threads, "fp32"), "PERF_COUNT": "YES"}  # as difflab.deploy
    request = core.compile_model(model, "CPU", config).create_infer_request()
    arrays = {k: v.numpy() for k, v in feeds.items()}
    wall = seconds(lambda: request.infer(arrays), repeats)
    totals: dict[str, float] = collections.Counter()
    for info in request.profiling_info:
        totals[group(info.node_type, False)] += info.real_time.total_seconds()
    return wall, totals


def main() -> None:
    args = network_parser(__doc__, 128, "rows the network sees", repeats=2).parse_args()
    _, denoiser = recipe_network(args.recipe)
    torch.set_num_threads(args.threads)
    c, size, classes = SHAPES[args.recipe]
    net = ExportedNetwork(denoiser.network).eval()
    gen = torch.Generator().manual_seed(0)
    feeds = {"x": torch.randn((args.batch, c, size, size), generator=gen),
             "t": torch.rand(args.batch, generator=gen) * 1000,
             "labels": torch.arange(args.batch) % classes}  # fmt: skip
    with torch.no_grad():
        torch_s = seconds(lambda: net(**feeds), args.repeats)
    torch_groups = torch_profile(net, feeds)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_network(denoiser.network, SHAPES[args.recipe], Path(tmp) / "network.onnx")
        ov_s, ov_groups = openvino_profile(path, feeds, args.threads, args.repeats)
    print(
        f"{args.recipe}, batch {args.batch}, {args.threads} thread(s): torch eager "
        f"{torch_s:.3f} s, OpenVINO FP32 {ov_s:.3f} s per forward ({torch_s / ov_s:.2f}x)\n"
    )
    t_all, o_all = sum(torch_groups.values()), sum(ov_groups.values())
    print("| op group | torch eager s | share | OpenVINO FP32 s | share |")
    print("| --- | --- | --- | --- | --- |")
    for label in [g[0] for g in GROUPS] + [OTHER]:
        t, o = torch_groups.get(label, 0.0), ov_groups.get(label, 0.0)
        print(f"| {label} | {t:.3f} | {t / t_all:.0%} | {o:.3f} | {o / o_all:.0%} |")
    print(f"| total (profiled) | {t_all:.3f} | | {o_all:.3f} | |")
    bound = torch_s / (ov_groups["convolution"] * ov_s / o_all)
    print(f"\nbound: torch eager / OpenVINO's convolutions alone = {bound:.2f}x")


if __name__ == "__main__":
    main()
