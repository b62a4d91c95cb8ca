"""ControlNet hint fidelity on the digits model: do samples follow the hint they are given?

python bench/controlnet.py [--folder /tmp/difflab-bench/controlnet] [--base-steps 1500]
    [--steps 1000] [--lr 1e-3] [--num 594] [--guidance 2] [--threads 1] [--quick]

Trains the digits recipe (the base run) and a ControlNet on it with the blur hint (both kept
in --folder/runs, named by their settings, and reused when present), then samples --num
images, image i under the hint of test image i % 297 with that image's label and seed i: with
the ControlNet run, with the same run at ControlNet scale 0 (which must be the base), and with
the base run (which ignores hints).
Hint fidelity is the mean squared error, in [-1, 1] pixels, between the hint transform of each
sample and the hint it was given. The "random pairing" row is the same error between the hint
of each test image and the hint of another test image of the same label: what a sample that
is a real digit of the right class, but ignores the hint, would score. Accuracy is that of an
evaluation classifier trained on the clean training digits. --quick trains and samples a few
steps (a smoke test, seconds; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from difflab.config.schema import SampleConfig
from difflab.data import ImageDataset, ToSymmetric, load_dataset
from difflab.evaluation import Classifier, classifier_accuracy, train_classifier
from difflab.runs.controlnet import hint_transform
from difflab.runs.load import LoadedRun, load_run
from difflab.sampling.generation import generate
from difflab.training.batches import dataset_hints
from run_training import train_run
from sampling_setup import EVAL_SEED, cached_classifier


@dataclass
class Row:
    name: str
    mse: float  # mean over images of the per-image hint MSE
    stderr: float  # its standard error over images
    accuracy: float
    seconds: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/difflab-bench/controlnet"))
    parser.add_argument("--base-steps", type=int, help="base run steps (default: the recipe's)")
    parser.add_argument("--steps", type=int, default=1000, help="ControlNet training steps")
    parser.add_argument("--lr", type=float, default=1e-3, help="ControlNet learning rate")
    parser.add_argument("--hint-factor", type=int, default=4, help="the blur hint's factor")
    parser.add_argument("--num", type=int, default=594, help="samples (2 per test digit)")
    parser.add_argument("--guidance", type=float, help="CFG scale (default: the recipe's)")
    parser.add_argument("--sample-steps", type=int, help="sampler steps (default: the recipe's)")
    parser.add_argument("--classifier-steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.base_steps, args.steps, args.num = 4, 4, 8
        args.sample_steps, args.classifier_steps = 2, 2
    return args


def train_runs(args: argparse.Namespace) -> tuple[Path, Path]:
    """(base run, ControlNet run) folders under args.folder/runs, named by their settings, each
    trained unless present."""
    root = args.folder / "runs"
    common = ["train.progress=false"]
    if args.quick:
        common += ["train.sample_every=0", "train.val_every=0", "train.checkpoint_every=0"]
    base = root / ("digits" if args.base_steps is None else f"digits-{args.base_steps}")
    steps = [] if args.base_steps is None else [f"train.steps={args.base_steps}"]
    train_run(base, "digits", [*common, *steps])
    name = f"{base.name}-controlnet-blur{args.hint_factor}-{args.steps}-lr{args.lr:g}"
    controlnet = root / name
    overrides = [
        *common,
        f"model.controlnet.base_run={base}",
        "model.controlnet.hint=blur",
        f"model.controlnet.hint_options={{factor: {args.hint_factor}}}",
        f"train.steps={args.steps}",
        f"train.lr={args.lr}",
    ]
    train_run(controlnet, "digits", overrides)
    return base, controlnet


def hint_mse(run: LoadedRun, images: Tensor, hints: Tensor) -> Tensor:
    """Per-image MSE [N] between the run's hint transform of uint8 images [N, C, H, W] and
    hints [N, C_hint, H, W]."""
    transform = hint_transform(run.config.model.controlnet)
    assert transform is not None  # a ControlNet run
    x = ToSymmetric()({"image": images})["image"]
    return (transform({"image": x})["hint"] - hints).square().flatten(1).mean(1)


def same_label_partner(labels: Tensor, generator: torch.Generator) -> Tensor:
    """For each image, the index of a random other image with the same label [N]."""
    partner = torch.empty_like(labels)
    for y in labels.unique().tolist():
        members = (labels == y).nonzero().flatten()
        # a random derangement within the class: shift a random permutation by one
        order = members[torch.randperm(len(members), generator=generator)]
        partner[order] = order.roll(1)
    return partner


def evaluation_classifier(folder: Path, train_split: ImageDataset, steps: int) -> Classifier:
    """The clean-image evaluation classifier of steps steps, cached in folder."""
    path = folder / f"eval-classifier-{steps}"
    return cached_classifier(
        path, lambda: train_classifier(train_split, steps=steps, seed=EVAL_SEED)
    )


def sampled_row(
    name: str, run: LoadedRun, ctx: dict, hints: Tensor | None, sample: SampleConfig
) -> tuple[Row, Tensor]:
    """Samples of run with the test labels (and hints, if given) cycled, scored as a Row."""
    start = time.perf_counter()
    images, labels = generate(
        run, num=ctx["num"], labels=ctx["labels"], sample=sample, hints=hints, batch_size=600
    )
    seconds = time.perf_counter() - start
    mse = hint_mse(ctx["controlnet"], images, ctx["targets"])
    accuracy = classifier_accuracy(ctx["classifier"], images, labels)
    return Row(name, mse.mean().item(), _stderr(mse), accuracy, seconds), images


def _stderr(values: Tensor) -> float:
    return (values.std() / len(values) ** 0.5).item() if len(values) > 1 else float("nan")


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    base_dir, cn_dir = train_runs(args)
    base, controlnet = load_run(base_dir), load_run(cn_dir)
    train_split, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    classifier = evaluation_classifier(args.folder, train_split, args.classifier_steps)
    hints = dataset_hints(controlnet.config, test.images, len(test))  # [297, 1, 8, 8]
    assert hints is not None  # a ControlNet run
    index = torch.arange(args.num) % len(test)
    ctx = {
        "num": args.num,
        "labels": test.labels.tolist(),
        "controlnet": controlnet,
        "targets": hints[index],
        "classifier": classifier,
    }
    sample = replace(
        controlnet.config.sample,
        **({} if args.guidance is None else {"guidance": args.guidance}),
        **({} if args.sample_steps is None else {"steps": args.sample_steps}),
    )
    rows = []
    row, base_images = sampled_row("base run (ignores the hint)", base, ctx, None, sample)
    rows.append(row)
    row, _ = sampled_row("ControlNet", controlnet, ctx, hints, sample)
    rows.append(row)
    controlnet.denoiser.network.scale = 0.0
    row, zero_images = sampled_row("ControlNet at scale 0", controlnet, ctx, hints, sample)
    rows.append(row)
    controlnet.denoiser.network.scale = 1.0
    rows.append(random_pairing(hints, test, classifier))
    print_table(args, sample, rows)
    diff = (zero_images.int() - base_images.int()).abs().max().item()
    print(f"\nscale 0 vs base run: largest pixel difference {diff} (of 255)")
    return rows


def random_pairing(hints: Tensor, test: ImageDataset, classifier: Classifier) -> Row:
    """Hint MSE between each test digit's hint and that of another test digit of its label."""
    partner = same_label_partner(test.labels, torch.Generator().manual_seed(0))
    mse = (hints[partner] - hints).square().flatten(1).mean(1)
    accuracy = classifier_accuracy(classifier, test.images, test.labels)
    name = "random pairing (a test digit of the same label)"
    return Row(name, mse.mean().item(), _stderr(mse), accuracy, 0.0)


def print_table(args: argparse.Namespace, sample: SampleConfig, rows: list[Row]) -> None:
    print(
        f"{args.num} samples, {sample.sampler} {sample.steps} steps, CFG {sample.guidance:g}; "
        f"blur hint factor {args.hint_factor}; ControlNet {args.steps} steps at lr {args.lr:g}"
    )
    print("| samples | hint MSE | ± s.e. | accuracy | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.name} | {r.mse:.4f} | {r.stderr:.4f} | {r.accuracy:.3f} | {r.seconds:.0f} |")


if __name__ == "__main__":
    main()
