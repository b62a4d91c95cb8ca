"""Sample quality of OpenVINO FP16 and INT8 against FP32 (issue 18: INT8 within 5% of FP32's
FID): the mnist recipe's small network trained briefly (bench/quality.py's difflab trainer,
by process time), exported as ONNX and converted to OpenVINO FP32, FP16 (compressed weights)
and INT8 (NNCF, calibrated as `difflab export --precision int8` calibrates; --keep-ends: also
with the first and last layers kept in float), each sampled with difflab.deploy from the same
noise and labels and scored with the evaluation classifier (FID in its feature space against the
test split, and the accuracy of the requested classes).

python bench/deploy_quality.py [--budget-s 120] [--samples 500] [--steps 20] [--threads 1]
    [--keep-ends] [--set KEY=VALUE] [--run RUN] [--recipe mnist|cifar10] [--work DIR]
    [--int8-f32]

--recipe picks the recipe (its `--small` network, as bench/quality.py trains it); --run scores
an existing class-conditional run's EMA network instead of training one. --int8-f32 infers an
INT8 graph's float ops in f32 (as a CPU without bf16 does; under DNNL_MAX_CPU_ISA emulation
OpenVINO still picks bf16 on a bf16 CPU).

See bench/README.md ("Deployment").
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from difflab.data import load_dataset
from difflab.deploy import draw, open_graph, to_uint8
from difflab.deploy.time_groups import TIME_GROUPS, time_routed
from difflab.evaluation import ClassifierFeatures, EvalOptions, evaluate
from difflab.evaluation.classifier_cache import cache_root, cached_classifier
from difflab.export import deploy_grid
from difflab.export.calibration import grouped_calibration
from difflab.export.graph import ExportedNetwork, example_inputs, export_onnx
from difflab.export.openvino import save_openvino
from difflab.runs.load import load_run
from difflab.samplers import StackedGenerator
from quality import CLOCKS, DATA, Budgets, data_root, recipe_config, train_difflab

# (row name, precision, int8 keeps the first and last layers in float, int8 time groups)
VARIANTS = [("fp32", "fp32", False, 1), ("fp16", "fp16", False, 1),
            ("int8, one graph", "int8", False, 1), (f"int8, {TIME_GROUPS} time groups", "int8",
            False, TIME_GROUPS), ("int8, ends kept", "int8", True, 1)]  # fmt: skip
BATCH = 250


def export_variants(run, folder: Path, variants) -> dict[str, tuple[list[Path], list[float]]]:
    """The run's network as OpenVINO IR at each variant's precision, by row name: its files (one
    per time group) and the time bounds between them, as `difflab export` writes them."""
    inputs = example_inputs(run.latent_shape, labels=True, hint_shape=None)
    onnx_path = folder / "network.onnx"
    with torch.no_grad():
        export_onnx(ExportedNetwork(run.denoiser.network).eval(), inputs, "out", onnx_path,
                    "torchscript")  # fmt: skip
    paths, calibration = {}, functools.cache(lambda g: grouped_calibration(run, inputs, g))
    for name, precision, keep_ends, groups in variants:
        sets, bounds = calibration(groups)
        stem = name.replace(", ", "-").replace(" ", "-")
        files = [folder / f"{stem}.t{k}.xml" for k in range(len(sets))]
        for file, feeds in zip(files, sets, strict=True):
            save_openvino(onnx_path, file, precision, feeds, keep_ends)
        paths[name] = (files, bounds)
    return paths


def sample(run, graphs: tuple[list[Path], list[float]], precision: str, num: int, threads: int):
    """uint8 images [num, C, H, W] and labels i % 10 from seeds 0..num-1, and seconds taken."""
    files, bounds = graphs
    graph = time_routed([open_graph(f, "openvino", precision=precision, threads=threads)
                         for f in files], bounds)  # fmt: skip
    grid = deploy_grid(run.denoiser.schedule, run.config.sample)
    labels = np.arange(num) % run.num_classes
    chunks, start = [], time.perf_counter()
    for first in range(0, num, BATCH):
        rows = range(first, min(num, first + BATCH))
        x_T = StackedGenerator(list(rows)).randn((len(rows), *run.latent_shape), device="cpu")
        x0 = draw(graph, grid, x_T.numpy(), parameterization=run.config.model.parameterization,
                  labels=labels[first : rows.stop],
                  guidance=run.config.sample.guidance)  # fmt: skip
        chunks.append(to_uint8(x0))
    return np.concatenate(chunks), labels, time.perf_counter() - start


def scorer(run):
    """A function of (uint8 images, labels) -> FID and accuracy against the run's test split
    (the splits and the cached classifier loaded once)."""
    d = run.config.data
    train_set, test_set = (load_dataset(d.dataset, root=d.root, split=s) for s in ("train", "test"))
    classifier, _, _ = cached_classifier(train_set, cache=cache_root(), device="cpu")
    return lambda images, labels: evaluate(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        reference=test_set,
        metrics=["fid", "accuracy"],
        extractor=ClassifierFeatures(classifier, device="cpu"),
        classifier=classifier,
        cache_dir=cache_root() / "reference",
        options=EvalOptions(),
    )


def trained_run(args: argparse.Namespace, ns: argparse.Namespace):
    """args.run's EMA weights sampling with --steps, or args.recipe trained for --budget-s
    (bench/quality.py's options ns)."""
    if args.run is not None:
        run = load_run(args.run, weights="ema")
        run.config.sample = replace(run.config.sample, steps=args.steps)
        print(f"{args.run}: step {run.step}", flush=True)
        return run
    config = recipe_config(args.recipe, ns, data_root(args.recipe, ns))
    trained = next(train_difflab(config, Budgets([args.budget_s], [], CLOCKS["process"])))
    print(f"trained {trained.steps} steps in {trained.seconds:.0f} CPU-s", flush=True)
    return trained.run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-s", type=float, default=120.0, help="training CPU seconds")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--keep-ends", action="store_true", help="add the INT8 row with ends kept")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run", type=Path, help="a trained run to export instead of training one")
    p.add_argument("--recipe", choices=("mnist", "cifar10"), default="mnist")
    p.add_argument("--work", type=Path, help="keep the trained run and exports here")
    p.add_argument("--int8-f32", action="store_true", help="INT8 graphs' float ops in f32")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ns = argparse.Namespace(device="cpu", small=True, quick=False, set=args.set,
                            sample_steps=args.steps, seed=0)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ns.work = str(work)
        ns.data = DATA
        run = trained_run(args, ns)
        variants = VARIANTS if args.keep_ends else VARIANTS[:4]
        paths = export_variants(run, Path(work), variants)
        score = scorer(run)
        print("| variant | samples | FID (difflab features) | FID / FP32's | accuracy | "
              "pixels differing from FP32 | sample s |\n" + "| --- " * 7 + "|")  # fmt: skip
        fp32 = None
        for name, precision, _, _ in variants:
            hint = "fp32" if args.int8_f32 and precision == "int8" else precision
            images, labels, seconds = sample(run, paths[name], hint, args.samples, args.threads)
            result = score(images, labels)
            fp32 = fp32 or (images, result["fid"])
            differ = (images != fp32[0]).mean()
            print(f"| {name} | {len(images)} | {result['fid']:.3f} | "
                  f"{result['fid'] / fp32[1]:.3f} | {result['accuracy']:.3f} | {differ:.3f} | "
                  f"{seconds:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
