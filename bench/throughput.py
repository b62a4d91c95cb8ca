"""Training and sampling throughput of difflab against diffusers on the same UNet (issue 5).

python bench/throughput.py [--device cuda|cpu] [--quick] [--part train|sample|all]
    [--batches 128 512] [--modes difflab:reduce-overhead diffusers:eager ...] [--json PATH]

Both libraries run in this one process on the same device: difflab's "unet-cifar10" and
diffusers' UNet2DModel in the google/ddpm-cifar10-32 layout (35.7M parameters each).
difflab trains through `difflab.training.step.train_step`, the function the trainer calls, on
the TrainState the trainer builds;
diffusers through the step of its unconditional training example (noise, random timesteps,
add_noise, forward, MSE, backward, clip, fused AdamW). Warm-up steps (and with them the
compilation) are timed separately; the timed steps end with a device synchronisation.
FLOPs are counted once per network with FlopCounterMode, outside the timed loops.
See bench/README.md ("Throughput") for the settings, the GPU commands and measured tables.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from difflab.networks import build_network
from difflab.training.flops import peak_flops

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput_steps import (  # noqa: E402  (bench/ is not a package)
    SAMPLE_BUILDERS,
    TRAIN_BUILDERS,
    Shape,
    diffusers_available,
    diffusers_network,
)

# "default" is difflab's own choice (the trainer's TrainState; sampling_network), difflab only.
TRAIN_MODES = ("default", "eager", "compile", "compile+cl", "reduce-overhead", "reduce-overhead+cl")
SAMPLE_MODES = ("default", "eager", "compile", "reduce-overhead", "reduce-overhead+cl")
DEFAULT_TRAIN = ("diffusers:eager", "diffusers:reduce-overhead", "difflab:default")
DEFAULT_SAMPLE = ("diffusers:eager", "difflab:default")
QUICK_MODES = ("diffusers:eager", "difflab:default")

FULL = Shape(base_channels=128, channel_mults=(1, 2, 2, 2), image_size=32)
QUICK = Shape(base_channels=32, channel_mults=(1, 2), image_size=16)


@dataclass
class Row:
    kind: str  # "train" or "sample"
    setting: str  # "library:mode"
    batch: int
    seconds: float = math.nan  # per training step, or per sampled batch
    images_per_s: float = math.nan
    gflop_per_image: float = math.nan
    mfu: float | None = None
    peak_mem_gib: float | None = None
    warmup_s: float = math.nan  # warm-up steps, compilation included
    ratio: float | None = None  # images/s over diffusers' best at this kind and batch
    error: str | None = None


@dataclass
class Bench:
    device: torch.device
    shape: Shape
    warmup: int
    steps: int
    sample_steps: int
    peak_flops: float | None
    repeats: int
    batches: int  # sampled batches per timed window
    interleave: bool
    rows: list[Row] = field(default_factory=list)
    flops: dict[str, float] = field(default_factory=dict)  # forward+backward FLOPs per image


def synchronize(device: torch.device) -> None:
    """Wait for the device: only ever called before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def network_flops(library: str, shape: Shape, device: torch.device) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs per image, counted on a batch of 2."""
    net = make_network(library, shape).to(device)
    x = torch.randn(2, 3, shape.image_size, shape.image_size, device=device)
    t = torch.full((2,), 500, device=device, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        out = net(x, t.float(), None) if library == "difflab" else net(x, t).sample
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        out = net(x, t.float(), None) if library == "difflab" else net(x, t).sample
        out.square().mean().backward()
    return forward / 2, counter.get_total_flops() / 2


def make_network(library: str, shape: Shape) -> nn.Module:
    if library == "diffusers":
        return diffusers_network(shape)
    options = {"base_channels": shape.base_channels, "channel_mults": shape.channel_mults}
    return build_network(
        "unet-cifar10", in_channels=3, image_size=shape.image_size, num_classes=None,
        options=options,
    )  # fmt: skip


def release(device: torch.device) -> None:
    """Forget compiled graphs and cached blocks between settings."""
    torch._dynamo.reset()  # also frees the CUDA-graph memory pools
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


@dataclass
class Trial:
    """One setting being measured: its row, its step (None once failed) and timed windows."""

    row: Row
    step: Callable[[int], None] | None = None
    index: int = 0  # the next step number
    windows: list[float] = field(default_factory=list)  # seconds per call in each window


def fail(trial: Trial, error: Exception) -> None:
    """A failing setting becomes a note in its row, never the end of the run."""
    trial.row.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    trial.step = None


# (bench, kind, setting, batch) -> the setting's step; bench/sd_speed.py passes its own.
Build = Callable[[Any, str, str, int], Callable[[int], Any]]


def build_step(bench: Bench, kind: str, setting: str, batch: int) -> Callable[[int], None]:
    """The setting's step on a network built from seed 0: the same weights in every setting."""
    library, mode = setting.split(":")
    torch.manual_seed(0)
    network = make_network(library, bench.shape).to(bench.device)
    builders = TRAIN_BUILDERS if kind == "train" else SAMPLE_BUILDERS
    return builders[library](network, mode, batch, bench)


def start(bench: Any, kind: str, setting: str, batch: int, build: Build = build_step) -> Trial:
    """Build the setting's step and run its warm-up (compilation, CUDA-graph recording)."""
    trial = Trial(Row(kind=kind, setting=setting, batch=batch))
    try:
        trial.step = build(bench, kind, setting, batch)
        # A sampled batch is sample_steps network calls: one warms up CUDA graphs already.
        began = time.perf_counter()
        for _ in range(bench.warmup if kind == "train" else 1):
            trial.step(trial.index)
            trial.index += 1
        synchronize(bench.device)
        trial.row.warmup_s = time.perf_counter() - began
    except Exception as error:
        fail(trial, error)
    return trial


def run_window(bench: Bench, trial: Trial) -> None:
    """Time `steps` calls (or `batches` sampled batches), synchronising before the clock."""
    if trial.step is None:
        return
    calls = bench.steps if trial.row.kind == "train" else bench.batches
    try:
        began = time.perf_counter()
        for _ in range(calls):
            trial.step(trial.index)
            trial.index += 1
        synchronize(bench.device)
        trial.windows.append((time.perf_counter() - began) / calls)
    except Exception as error:
        fail(trial, error)


def finish(bench: Bench, trial: Trial, memory: bool) -> Row:
    """Seconds per call: the median window on CUDA; on a CPU shared with other work the
    fastest window, since interference only ever slows a window down."""
    row, windows = trial.row, sorted(trial.windows)
    trial.step = None
    if row.error is not None or not windows:
        return row
    row.seconds = windows[len(windows) // 2] if bench.device.type == "cuda" else windows[0]
    row.images_per_s = row.batch / row.seconds
    forward, train = bench.flops[row.setting.split(":")[0]]
    per_image = train if row.kind == "train" else forward * bench.sample_steps
    row.gflop_per_image = per_image / 1e9
    if bench.peak_flops is not None:
        row.mfu = per_image * row.images_per_s / bench.peak_flops
    row.peak_mem_gib = peak_memory(bench.device) if memory else None
    return row


def measure_group(
    bench: Any, kind: str, settings: list[str], batch: int, build: Build = build_step
) -> list[Row]:
    """Rows of the settings at one kind and batch. Interleaved: all are built, then their
    windows alternate, so that load from elsewhere hits each alike (peak memory is then not
    per setting). Otherwise one after the other, each on a freshly emptied device."""
    if bench.interleave:
        release(bench.device)
        trials = [start(bench, kind, setting, batch, build) for setting in settings]
        for _ in range(bench.repeats):
            for trial in trials:
                run_window(bench, trial)
        return [finish(bench, trial, memory=False) for trial in trials]
    rows = []
    for setting in settings:
        release(bench.device)
        trial = start(bench, kind, setting, batch, build)
        for _ in range(bench.repeats):
            run_window(bench, trial)
        rows.append(finish(bench, trial, memory=True))
    return rows


def add_ratios(rows: list[Row]) -> None:
    """images/s over the best diffusers setting of the same kind and batch."""
    for row in rows:
        peers = [
            r.images_per_s
            for r in rows
            if r.kind == row.kind and r.batch == row.batch and r.setting.startswith("diffusers")
            if r.error is None
        ]
        if peers and row.error is None:
            row.ratio = row.images_per_s / max(peers)


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "n/a" if value is None or math.isnan(value) else format(value * scale, spec)


def table(rows: list[Row]) -> str:
    lines = [
        "| kind | setting | batch | img/s | ms | x diffusers best | GFLOP/img | MFU | peak mem"
        " | warm-up s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r.error is not None:
            lines.append(f"| {r.kind} | {r.setting} | {r.batch} | failed: {r.error} |||||||")
            continue
        lines.append(
            f"| {r.kind} | {r.setting} | {r.batch} | {_fmt(r.images_per_s, ',.1f')}"
            f" | {_fmt(r.seconds, '.1f', 1e3)} | {_fmt(r.ratio, '.2f')}"
            f" | {_fmt(r.gflop_per_image, '.2f')} | {_fmt(r.mfu, '.1%')}"
            f" | {_fmt(r.peak_mem_gib, '.2f')} GiB | {_fmt(r.warmup_s, '.1f')} |"
        )
    return "\n".join(lines).replace("n/a GiB", "n/a")


def peak(device: torch.device, given_tflops: float | None) -> float | None:
    """FLOP/s for MFU: --peak-tflops, else the trainer's dense bf16 figure for the device."""
    return given_tflops * 1e12 if given_tflops is not None else peak_flops(device)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="small UNet, few steps: a smoke run")
    p.add_argument("--part", choices=("train", "sample", "all"), default="all")
    p.add_argument("--batches", type=int, nargs="+", help="training batches (128 512)")
    p.add_argument("--sample-batches", type=int, nargs="+", help="sampling batches (512 1)")
    p.add_argument("--steps", type=int, help="timed training steps per window (20; quick 5)")
    p.add_argument("--warmup", type=int, help="untimed warm-up steps (5; quick 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed windows of --steps each")
    p.add_argument("--sample-steps", type=int, help="DDIM steps (50; quick 5)")
    p.add_argument(
        "--modes", nargs="+", help=f"training settings library:mode, mode in {TRAIN_MODES}"
    )
    p.add_argument("--sample-modes", nargs="+", help=f"sampling settings, mode in {SAMPLE_MODES}")
    p.add_argument("--skip-diffusers", action="store_true")
    p.add_argument(
        "--interleave",
        action=argparse.BooleanOptionalAction,
        help="alternate the settings' timed windows (default on CPU)",
    )
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU (989 on H100)")
    p.add_argument("--threads", type=int, help="torch intra-op threads on CPU")
    p.add_argument("--json", type=Path, help="write the rows here")
    return p.parse_args(argv)


def check_modes(names: list[str], allowed: tuple[str, ...]) -> list[str]:
    for name in names:
        library, _, mode = name.partition(":")
        known = library == "difflab" or (library == "diffusers" and mode != "default")
        if not known or mode not in allowed:
            raise SystemExit(f"unknown setting {name!r}: expected difflab|diffusers:{allowed}")
    return names


def plan(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(kind, setting, batch) for every measurement, in order."""
    train = check_modes(
        args.modes or list(QUICK_MODES if args.quick else DEFAULT_TRAIN), TRAIN_MODES
    )
    sample = check_modes(
        args.sample_modes or list(QUICK_MODES if args.quick else DEFAULT_SAMPLE), SAMPLE_MODES
    )
    if args.skip_diffusers or not diffusers_available():
        if not args.skip_diffusers:
            print("diffusers is not installed: measuring difflab alone", file=sys.stderr)
        train = [m for m in train if m.startswith("difflab")]
        sample = [m for m in sample if m.startswith("difflab")]
    batches = args.batches or ([16, 32] if args.quick else [128, 512])
    sample_batches = args.sample_batches or ([8, 1] if args.quick else [512, 1])
    jobs = []
    if args.part in ("train", "all"):
        jobs += [("train", m, b) for b in batches for m in train]
    if args.part in ("sample", "all"):
        jobs += [("sample", m, b) for b in sample_batches for m in sample]
    return jobs


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    jobs = plan(args)
    bench = Bench(
        device=device,
        shape=QUICK if args.quick else FULL,
        warmup=args.warmup or (1 if args.quick else 5),
        steps=args.steps or (5 if args.quick else 20),
        sample_steps=args.sample_steps or (5 if args.quick else 50),
        peak_flops=peak(device, args.peak_tflops),
        repeats=args.repeats,
        batches=2 if not args.quick else 1,
        interleave=device.type == "cpu" if args.interleave is None else args.interleave,
    )
    for library in sorted({setting.split(":")[0] for _, setting, _ in jobs}):
        bench.flops[library] = network_flops(library, bench.shape, device)
    print(f"device {device} ({describe(device)}), torch {torch.__version__}, {bench.shape}")
    for kind, batch in dict.fromkeys((kind, batch) for kind, _, batch in jobs):
        settings = [s for k, s, b in jobs if (k, b) == (kind, batch)]
        for row in measure_group(bench, kind, settings, batch):
            bench.rows.append(row)
            print(progress_line(row), flush=True)
        add_ratios(bench.rows)
        if args.json is not None:  # after every group, so a run cut off keeps what it measured
            args.json.write_text(json.dumps([asdict(r) for r in bench.rows], indent=1))
    print(table(bench.rows))
    return bench.rows


def progress_line(row: Row) -> str:
    speed = f"{_fmt(row.images_per_s, ',.1f')} img/s, warm-up {_fmt(row.warmup_s, '.1f')} s"
    return f"{row.kind} {row.setting} batch {row.batch}: {speed} {row.error or ''}"


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
