"""Stable Diffusion fine-tuning and sampling speed, difflab against diffusers, side by side.

python bench/sd_speed.py [--device cuda|cpu] [--tiny] [--part train|sample|all] [--batch N]
    [--steps N] [--repeats N] [--sample-steps N] [--modes ...] [--sample-modes ...]

Both libraries run SD v1's UNet2DConditionModel (its unet/config.json, 860M parameters) with
the same random weights in this one process on the same device, on the same
precomputed latents and text embeddings (see sd_speed_steps.py for the steps). Timing, FLOP
counts, the table and the ratios against diffusers' best are bench/throughput.py's. After the
sampling rows, both libraries sample the same latents in float32 eager and the largest
difference is printed: the two computed the same thing. See bench/README.md ("Stable Diffusion
speed").
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sd_speed_steps import (  # noqa: E402  (bench/ is not a package)
    BUILDERS,
    FULL,
    TINY,
    SDSize,
    Step,
    make_unet,
    unet_flops,
)
from throughput import (  # noqa: E402
    SAMPLE_MODES,
    TRAIN_MODES,
    Row,
    add_ratios,
    check_modes,
    describe,
    measure_group,
    peak,
    progress_line,
    table,
)
from throughput_steps import diffusers_available  # noqa: E402

CPU_MODES = ("diffusers:eager", "difflab:default")
CUDA_TRAIN = (
    "diffusers:eager", "diffusers:compile", "diffusers:reduce-overhead", "difflab:default"
)  # fmt: skip
CUDA_SAMPLE = ("diffusers:eager", "diffusers:reduce-overhead", "difflab:default")
CHECK_BATCH = 2  # images of the float32 agreement check


@dataclass
class SDBench:
    """What throughput.py's measuring functions read (its Bench), for the SD UNet."""

    device: torch.device
    size: SDSize
    warmup: int
    steps: int
    sample_steps: int
    peak_flops: float | None
    repeats: int
    interleave: bool
    batches: int = 1  # sampled batches per timed window
    fp32: bool = False  # sample in float32 whatever the device (the agreement check)
    flops: dict[str, tuple[float, float]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    max_abs_diff: float = math.nan  # |difflab - diffusers| of the float32 sampled latents


def build_step(bench: SDBench, kind: str, setting: str, batch: int) -> Step:
    library, mode = setting.split(":")
    return BUILDERS[kind, library](make_unet(bench.size, bench.device), mode, batch, bench)


def agreement(bench: SDBench) -> float:
    """max |difflab - diffusers| of the latents both sample, eager float32, from the same
    weights, initial latents and embeddings."""
    exact = replace(bench, fp32=True)
    with torch.no_grad():
        ours, theirs = (
            build_step(exact, "sample", f"{library}:eager", CHECK_BATCH)(0)
            for library in ("difflab", "diffusers")
        )
        return (ours - theirs).abs().max().item()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="the tests' tiny SD UNet: a smoke run")
    p.add_argument("--part", choices=("train", "sample", "all"), default="all")
    p.add_argument("--batch", type=int, help="images per step and sampled batch (8; tiny 4)")
    p.add_argument("--steps", type=int, help="timed training steps per window (10; tiny 3)")
    p.add_argument("--warmup", type=int, help="untimed warm-up training steps (3; tiny 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed windows per setting")
    p.add_argument("--sample-steps", type=int, help="DDIM steps (50; tiny 5)")
    p.add_argument("--modes", nargs="+", help=f"training settings library:mode, {TRAIN_MODES}")
    p.add_argument("--sample-modes", nargs="+", help=f"sampling settings, mode in {SAMPLE_MODES}")
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU (989 on H100)")
    p.add_argument("--threads", type=int, help="torch intra-op threads on CPU")
    return p.parse_args(argv)


def make_bench(args: argparse.Namespace) -> SDBench:
    device = torch.device(args.device)
    tiny = args.tiny
    return SDBench(
        device=device,
        size=TINY if tiny else FULL,
        warmup=args.warmup or (1 if tiny else 3),
        steps=args.steps or (3 if tiny else 10),
        sample_steps=args.sample_steps or (5 if tiny else 50),
        peak_flops=peak(device, args.peak_tflops),
        repeats=args.repeats,
        interleave=device.type == "cpu",
    )


def plan(args: argparse.Namespace, device: torch.device) -> list[tuple[str, list[str]]]:
    """(kind, settings) of each part to measure."""
    cuda = device.type == "cuda"
    parts = []
    if args.part in ("train", "all"):
        train = args.modes or list(CUDA_TRAIN if cuda else CPU_MODES)
        parts.append(("train", check_modes(train, TRAIN_MODES)))
    if args.part in ("sample", "all"):
        sample = args.sample_modes or list(CUDA_SAMPLE if cuda else CPU_MODES)
        parts.append(("sample", check_modes(sample, SAMPLE_MODES)))
    return parts


def main(argv: list[str] | None = None) -> SDBench:
    args = parse_args(argv)
    if not diffusers_available():
        print("bench/sd_speed.py compares against diffusers: install it (difflab[sd])")
        raise SystemExit(2)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    bench = make_bench(args)
    batch = args.batch or (4 if args.tiny else 8)
    parts = plan(args, bench.device)
    flops = unet_flops(bench.size, bench.device)
    bench.flops = {"difflab": flops, "diffusers": flops}
    print(f"device {bench.device} ({describe(bench.device)}), torch {torch.__version__}")
    print(f"{bench.size.name}; DDIM {bench.sample_steps} steps, guidance 7.5")
    for kind, settings in parts:
        for row in measure_group(bench, kind, settings, batch, build=build_step):
            bench.rows.append(row)
            print(progress_line(row), flush=True)
    add_ratios(bench.rows)
    print(table(bench.rows))
    if args.part != "train":
        bench.max_abs_diff = agreement(bench)
        print(agreement_table(bench))
    return bench


def agreement_table(bench: SDBench) -> str:
    return "\n".join([
        "",
        "| same computation? (float32 eager, same weights, noise and embeddings) | value |",
        "| --- | ---: |",
        f"| sampled latents, batch {CHECK_BATCH}, DDIM {bench.sample_steps} steps, guidance 7.5:"
        f" max abs(difflab - diffusers) | {bench.max_abs_diff:.2e} |",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
