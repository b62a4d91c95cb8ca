"""`difflab train-classifier DATASET [option=value ...] [--root PATH] [--steps N] [--noisy]`.

Trains the evaluation classifier (or, with --noisy, the time-conditioned classifier for
classifier guidance) on the dataset's train split, saves it, and prints its test accuracy.
Without --out it goes to the classifier cache, where `difflab eval` finds it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from difflab.core.errors import ConfigError
from difflab.data import ImageDataset, load_dataset
from difflab.evaluation import classifier_accuracy, noisy_accuracy, save_classifier
from difflab.evaluation.classifier_cache import cache_root, classifier_dir
from difflab.evaluation.classifier_training import train_classifier
from difflab.parallel.distributed import resolve_device
from difflab.schedules import make_schedule


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train-classifier",
        help="train the evaluation (or --noisy guidance) classifier on a dataset",
        description="Train difflab's classifier on DATASET's train split, save it and print "
        "its test accuracy, e.g. `difflab train-classifier mnist --root /data/mnist`. "
        "option=value items are the dataset's own options (e.g. image_size=32).",
    )
    add_dataset_args(p)
    p.add_argument("--steps", type=int, help="training steps (default: train_classifier's)")
    p.add_argument("--batch-size", type=int, help="default: train_classifier's")
    p.add_argument("--width", type=int, help="channels of the first stage (default: 16)")
    p.add_argument("--seed", type=int, help="default: 0")
    p.add_argument("--noisy", action="store_true", help="time-conditioned, for guidance")
    p.add_argument("--schedule", default="cosine", help="noise schedule of --noisy")
    p.add_argument("--num-steps", type=int, default=1000, help="0: continuous time")
    add_output_args(p, "the classifier cache")
    return p


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """DATASET, its option=value items and --root."""
    p.add_argument("dataset", metavar="DATASET", help="digits, mnist, image-folder, ...")
    p.add_argument("options", nargs="*", metavar="option=value", help="dataset options")
    p.add_argument("--root", help="data folder (mnist, image-folder)")


def add_output_args(p: argparse.ArgumentParser, cache: str) -> None:
    """--out (default: the cache), --cache-dir and --device."""
    p.add_argument("--out", help=f"folder to save it in (default: {cache})")
    p.add_argument("--cache-dir", help="default: $DIFFLAB_CACHE or ~/.cache/difflab")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def parse_options(items: list[str]) -> dict[str, Any]:
    """['image_size=32'] -> {'image_size': 32} (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"dataset option {item!r} must look like key=value")
        out[key] = yaml.safe_load(value) if value else None
    return out


def training_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that differ from train_classifier's defaults; they name the cache folder."""
    chosen = {"steps": args.steps, "batch_size": args.batch_size, "width": args.width}
    settings = {k: v for k, v in {**chosen, "seed": args.seed}.items() if v is not None}
    if args.noisy:
        settings.update(noisy=True, schedule=args.schedule, num_steps=args.num_steps or None)
    return settings


def load_splits(args: argparse.Namespace) -> tuple[ImageDataset, ImageDataset]:
    """The train and test splits of the command's DATASET, options and --root."""
    options = parse_options(args.options)
    train = load_dataset(args.dataset, root=args.root, split="train", **options)
    return train, load_dataset(args.dataset, root=args.root, split="test", **options)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    train, test = load_splits(args)
    settings = training_settings(args)
    fit = {k: v for k, v in settings.items() if k not in ("schedule", "num_steps")}
    schedule = None
    if args.noisy:
        schedule = make_schedule(args.schedule, num_steps=settings["num_steps"])
    classifier = train_classifier(train, device=device, schedule=schedule, **fit)
    out = (
        Path(args.out) if args.out else classifier_dir(train, settings, cache_root(args.cache_dir))
    )
    save_classifier(classifier, out)
    if schedule is None:
        accuracy = classifier_accuracy(classifier, test.images, test.labels, device=device)
        kind = "test accuracy"
    else:
        accuracy = noisy_accuracy(classifier, test.images, test.labels, schedule, device=device)
        kind = "test accuracy on x_t at training noise levels"
    print(f"{kind}: {accuracy:.4f} ({len(test)} {test.name}/{test.split} images)")
    print(f"classifier: {out}")
    return 0
