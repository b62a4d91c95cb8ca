"""Shared set-up of the sampling benchmarks: a trained run (by default the digits recipe, trained
once), its dataset's splits, a noisy classifier for classifier guidance and an independent
clean classifier for evaluation, cached in a folder.

The evaluation classifier is trained on clean images with another seed than the noisy one, so
a sample the guiding classifier merely fools is not counted as correct.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from difflab.config.recipes import load_config
from difflab.data import ImageDataset, load_dataset
from difflab.evaluation import (
    Classifier,
    classifier_accuracy,
    load_classifier,
    save_classifier,
    train_classifier,
)
from difflab.evaluation.classifier_cache import at_size
from difflab.runs.load import LoadedRun, load_run
from difflab.training.loop import train

NOISY_SEED, EVAL_SEED = 1, 2


def trained_run(run_dir: Path | None, cache: Path, device: str = "cpu") -> LoadedRun:
    """The run at run_dir, or the digits recipe trained into cache/runs/digits once."""
    if run_dir is None:
        run_dir = cache / "runs" / "digits"
        if not (run_dir / "model.json").is_file():
            config = load_config("digits", [f"run.root={cache / 'runs'}", "train.progress=false"])
            run_dir = train(config, tensorboard=False)
    return load_run(run_dir, device=device)


def run_splits(run: LoadedRun, root: Path | None) -> tuple[ImageDataset, ImageDataset]:
    """(training split, held-out split) of the run's dataset at the run's image size; root
    replaces the run's data.root (a relative one is relative to where it trained)."""
    d = run.config.data
    root = root if root is not None else d.root
    options = dict(root=root, max_bad_fraction=d.max_bad_fraction, **d.options)
    train_split = load_dataset(d.dataset, split=d.split, **options)
    test_split = load_dataset(d.dataset, split=d.val_split or "test", **options)
    size = run.image_shape[-1]
    return at_size(train_split, size), at_size(test_split, size)


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


def evaluation_classifier_dir(cache: Path, data: ImageDataset) -> Path:
    """Where the evaluation classifier of this dataset and image size is cached."""
    return cache / f"eval-classifier-{data.name}-{data.images.shape[-1]}"


def evaluation_classifier(data: ImageDataset, test: ImageDataset, cache: Path) -> Classifier:
    """A clean-image classifier independent of the guiding one (one per dataset and image
    size); prints its test accuracy."""
    folder = evaluation_classifier_dir(cache, data)
    classifier = cached_classifier(folder, lambda: train_classifier(data, seed=EVAL_SEED))
    accuracy = classifier_accuracy(classifier, test.images, test.labels)
    name = f"{test.name}/{test.split}"
    print(f"evaluation classifier: test accuracy {accuracy:.3f} on {len(test)} images of {name}")
    return classifier


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--run, --root, --num, --cache, --threads and --device, as both sampling benchmarks take
    them."""
    parser.add_argument("--run", type=Path, help="trained run (default: train digits once)")
    parser.add_argument("--root", type=Path, help="the run's data folder (default: its data.root)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/difflab-bench"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where the run samples: cpu or cuda")


def prepare(args: argparse.Namespace) -> tuple[ImageDataset, ImageDataset, LoadedRun, Classifier]:
    """(the run's training split, held-out split, the trained run, the evaluation classifier)
    for parsed args."""
    set_threads(args.threads)
    run = trained_run(args.run, args.cache, args.device)
    data, test = run_splits(run, args.root)
    return data, test, run, evaluation_classifier(data, test, args.cache)


def seed_quick_cache(cache: Path) -> None:
    """A 2-step digits run and a 2-step evaluation classifier where prepare() looks: the
    smoke runs of the benchmarks (their numbers mean nothing)."""
    if not (cache / "runs" / "digits" / "model.json").is_file():
        items = [f"run.root={cache / 'runs'}", "train.steps=2", "train.progress=false"]
        items += ["train.sample_every=0", "train.val_every=0"]
        train(load_config("digits", items), tensorboard=False)
    data = load_dataset("digits", split="train")
    cached_classifier(
        evaluation_classifier_dir(cache, data),
        lambda: train_classifier(data, steps=2, seed=EVAL_SEED),
    )
