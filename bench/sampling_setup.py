"""Shared set-up of the sampling benchmarks: a trained digits run, a noisy classifier for
classifier guidance and an independent clean classifier for evaluation, cached in a folder.

The evaluation classifier is trained on clean images with another seed than the noisy one, so
a sample the guiding classifier merely fools is not counted as correct.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from difflab.data import ImageDataset, load_dataset
from difflab.evaluation import (
    Classifier,
    classifier_accuracy,
    load_classifier,
    save_classifier,
    train_classifier,
)
from difflab.generation import LoadedRun, load_run
from difflab.training.loop import train
from difflab.training.recipes import load_config

NOISY_SEED, EVAL_SEED = 1, 2


def trained_run(run_dir: Path | None, cache: Path) -> LoadedRun:
    """The run at run_dir, or the digits recipe trained into cache/runs/digits once."""
    if run_dir is None:
        run_dir = cache / "runs" / "digits"
        if not (run_dir / "model.json").is_file():
            config = load_config("digits", [f"run.root={cache / 'runs'}", "train.progress=false"])
            run_dir = train(config, tensorboard=False)
    return load_run(run_dir)


def cached_classifier(folder: Path, make) -> Classifier:
    """load_classifier(folder), or make() saved there first."""
    if not (folder / "classifier.json").is_file():
        save_classifier(make(), folder)
    return load_classifier(folder)


def noisy_classifier_dir(run: LoadedRun, data: ImageDataset, cache: Path) -> Path:
    """Folder of a time-conditioned classifier on the run's schedule (for --classifier)."""
    folder = cache / "noisy-classifier"
    schedule = run.denoiser.schedule
    cached_classifier(
        folder, lambda: train_classifier(data, noisy=True, schedule=schedule, seed=NOISY_SEED)
    )
    return folder


def evaluation_classifier(data: ImageDataset, test: ImageDataset, cache: Path) -> Classifier:
    """A clean-image classifier independent of the guiding one; prints its test accuracy."""
    classifier = cached_classifier(
        cache / "eval-classifier", lambda: train_classifier(data, seed=EVAL_SEED)
    )
    accuracy = classifier_accuracy(classifier, test.images, test.labels)
    print(f"evaluation classifier: test accuracy {accuracy:.3f} on {len(test)} digits")
    return classifier


def digits() -> tuple[ImageDataset, ImageDataset]:
    """(train, test) splits of the bundled digits."""
    return load_dataset("digits", split="train"), load_dataset("digits", split="test")


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--run, --num, --cache and --threads, as both sampling benchmarks take them."""
    parser.add_argument("--run", type=Path, help="trained run (default: train digits once)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/difflab-bench"))
    parser.add_argument("--threads", type=int, default=1)


def prepare(args: argparse.Namespace) -> tuple[ImageDataset, ImageDataset, LoadedRun, Classifier]:
    """(digits train, test, the trained run, the evaluation classifier) for parsed args."""
    set_threads(args.threads)
    data, test = digits()
    run = trained_run(args.run, args.cache)
    return data, test, run, evaluation_classifier(data, test, args.cache)
