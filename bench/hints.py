"""Hint fidelity per hint type: how much of the gap between a base run's samples (the floor)
and real images (the ceiling) does a ControlNet close?

python bench/hints.py --prepare                 # base run, classifier, re-extractors (cached)
python bench/hints.py --hint canny              # one row group (hough, scribble,
                                                #   segmentation, depth likewise)
python bench/hints.py --table                   # the markdown table of the finished groups
    [--dataset shapes|mnist] [--mnist-root ../shared/data/mnist]
    [--folder /tmp/difflab-bench/hints] [--steps 500] [--num 200] [--no-train] [--quick]

--dataset shapes (the default): the base run is the shapes recipe at 16x16 (unet-tiny, 1500
steps; every hint type uses the same one). --dataset mnist: the mnist recipe at 28x28 with
the same network, for the edge-like hints (canny, hough, scribble); skipped when
--mnist-root holds no MNIST. For each hint a ControlNet is trained on it (--steps, batch 32).
Test image i (of the first --num) gives sample i its hint, its label and seed i; the base run
gets the same labels and seeds and no hint. Rows: ControlNet samples, base samples (the
floor), the test images themselves (the ceiling), each scored by `evaluation.hint_fidelity`
against the hints and by the cached evaluation classifier. Each group's result is kept in
FOLDER/results/ (shapes: HINT.json, mnist: mnist-HINT.json); --no-train scores the runs'
newest checkpoints as they are.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from difflab.data import ImageDataset, load_dataset
from difflab.evaluation import (
    HintSetting,
    cached_classifier,
    cached_map_network,
    classifier_accuracy,
    hint_fidelity,
)
from difflab.runs.load import load_run
from difflab.sampling.generation import generate
from difflab.training.batches import dataset_hints
from run_training import train_run

HINTS = {
    "canny": {},
    "hough": {"min_length": 4, "threshold": 4, "max_gap": 2},  # as measured (bench/README.md)
    "scribble": {},
    "segmentation": {"source": "labels"},
    "depth": {},
}
MNIST_HINTS = {"canny": {}, "hough": HINTS["hough"], "scribble": {}}  # hough as at 16x16
MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
DATA = ["data.options={resolution: 16, max_objects: 2}"]
MODEL = ["model.network=unet-tiny", "model.options={base_channels: 16, attention_resolutions: []}"]
MNIST_MODEL = [*MODEL]  # the shapes base's network at 28x28 (timings in bench/README.md)
BASE = [
    "train.lr=2e-3",
    "train.warmup_steps=50",
    "train.ema_decay=0.995",
    "train.ema_start=100",
    "train.sample_every=500",
    "train.val_every=500",
    "train.checkpoint_every=500",
    "train.cpu_threads=1",
    "train.progress=false",
]


@dataclass(frozen=True)
class Suite:
    """A dataset's benchmark: its recipe (and dataset name), the data, model and sampling
    overrides of the base run and its ControlNets, its hint types, its base run's name, its
    results' file prefix and its evaluation classifier's steps (None: train_classifier's)."""

    recipe: str
    data: tuple[str, ...]
    hints: dict[str, dict]
    base_name: str
    prefix: str
    classifier_steps: int | None
    options: dict = field(default_factory=dict)  # load_dataset's


SUITES = {
    "shapes": Suite("shapes", (*DATA, *MODEL), HINTS, "shapes16", "", 500,
                    {"resolution": 16, "max_objects": 2}),
    "mnist": Suite("mnist", ("sample.steps=30", *MNIST_MODEL), MNIST_HINTS, "mnist28",
                   "mnist-", None),
}  # fmt: skip


def suite_of(args: argparse.Namespace) -> Suite:
    """The --dataset's Suite, with --mnist-root as MNIST's data.root."""
    s = SUITES[args.dataset]
    if args.dataset != "mnist":
        return s
    root = str(args.mnist_root)
    return Suite(s.recipe, (f"data.root={root}", *s.data), s.hints, s.base_name, s.prefix,
                 s.classifier_steps, {"root": root})  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/difflab-bench/hints"))
    parser.add_argument("--dataset", choices=sorted(SUITES), default="shapes")
    parser.add_argument("--mnist-root", type=Path, default=MNIST)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--hint", choices=sorted(HINTS))
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--base-steps", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=500, help="ControlNet training steps")
    parser.add_argument("--num", type=int, default=200, help="samples (one per test image)")
    parser.add_argument("--classifier-steps", type=int, help="default: shapes 500, mnist 1500")
    parser.add_argument("--reextractor-steps", type=int, default=1000)
    parser.add_argument("--no-train", action="store_true",
                        help="score the newest checkpoints as they are (no training)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a smoke test; numbers mean nothing")
    args = parser.parse_args(argv)
    if args.hint is not None and args.hint not in SUITES[args.dataset].hints:
        parser.error(
            f"--hint {args.hint}: --dataset {args.dataset} has {sorted(SUITES[args.dataset].hints)}"
        )
    if args.classifier_steps is None:
        args.classifier_steps = SUITES[args.dataset].classifier_steps
    if args.quick:
        args.base_steps, args.steps, args.num = 2, 2, 6
        args.classifier_steps, args.reextractor_steps = 2, 2
    return args


def base_run(args: argparse.Namespace) -> Path:
    s = suite_of(args)
    name = s.base_name if args.base_steps == 1500 else f"{s.base_name}-{args.base_steps}"
    if args.no_train:
        return args.folder / "runs" / name
    quick = ["train.sample_every=0", "train.val_every=0"] if args.quick else []
    steps = f"train.steps={args.base_steps}"
    return train_run(args.folder / "runs" / name, s.recipe, [*s.data, *BASE, steps, *quick])


def controlnet_run(args: argparse.Namespace, base: Path, hint: str) -> Path:
    if args.no_train:
        return args.folder / "runs" / f"{base.name}-{hint}-{args.steps}"
    s = suite_of(args)
    overrides = [
        *s.data,
        f"model.controlnet.base_run={base}",
        f"model.controlnet.hint={hint}",
        f"model.controlnet.hint_options={json.dumps(s.hints[hint])}",
        f"train.steps={args.steps}",
        "train.batch_size=32",
        "train.cpu_threads=1",
        "train.progress=false",
        "train.sample_every=0",
        "train.val_every=0",
        f"train.checkpoint_every={args.steps}",
    ]
    return train_run(args.folder / "runs" / f"{base.name}-{hint}-{args.steps}", s.recipe, overrides)


def splits(args: argparse.Namespace) -> tuple[ImageDataset, ImageDataset]:
    s = suite_of(args)
    return (
        load_dataset(s.recipe, split="train", **s.options),
        load_dataset(s.recipe, split="test", **s.options),
    )


def setting(args: argparse.Namespace, hint: str, train_split: ImageDataset) -> HintSetting:
    return HintSetting(
        hint,
        suite_of(args).hints[hint],
        train_split=lambda: train_split,
        cache=args.folder / "cache",
        steps=args.reextractor_steps,
    )


def prepare(args: argparse.Namespace) -> None:
    """The base run, the evaluation classifier and the suite's re-extractors, trained and
    cached."""
    base_run(args)
    train_split, _ = splits(args)
    cache = args.folder / "cache"
    cached_classifier(train_split, cache=cache, steps=args.classifier_steps)
    for task in sorted({"segmentation", "depth"} & set(suite_of(args).hints)):
        cached_map_network(train_split, task, cache=cache, steps=args.reextractor_steps)


def group(args: argparse.Namespace, hint: str) -> dict:
    """The three rows of one hint type: ControlNet, base run (floor), test scenes (ceiling)."""
    base = base_run(args)
    controlnet = load_run(controlnet_run(args, base, hint))
    train_split, test = splits(args)
    classifier, _, _ = cached_classifier(
        train_split, cache=args.folder / "cache", steps=args.classifier_steps
    )
    hints = dataset_hints(controlnet.config, test.images, args.num, test.maps)
    assert hints is not None  # a ControlNet run
    labels = test.labels[: args.num]
    rows = {}
    for name, run, run_hints in (("controlnet", controlnet, hints), ("base", load_run(base), None)):
        start = time.perf_counter()
        images, _ = generate(run, num=args.num, labels=labels.tolist(), hints=run_hints)
        rows[name] = score(args, hint, images, hints, labels, train_split, classifier)
        rows[name]["seconds"] = time.perf_counter() - start
    real = test.images[: args.num]
    rows["real"] = score(args, hint, real, hints, labels, train_split, classifier)
    return {"hint": hint, "steps": controlnet.step, "num": args.num, "rows": rows}


def score(args, hint, images, hints, labels, train_split, classifier) -> dict:
    result = hint_fidelity(images, hints, setting(args, hint, train_split))
    keep = {k: result[k] for k in ("hint_metric", "hint_fidelity")}
    return {**keep, "accuracy": classifier_accuracy(classifier, images, labels)}


def gap_closed(rows: dict) -> float:
    """(ControlNet - floor) / (ceiling - floor) of the fidelity (either direction of better)."""
    floor, ceiling = rows["base"]["hint_fidelity"], rows["real"]["hint_fidelity"]
    return (rows["controlnet"]["hint_fidelity"] - floor) / (ceiling - floor)


def result_path(folder: Path, dataset: str, hint: str) -> Path:
    return folder / "results" / f"{SUITES[dataset].prefix}{hint}.json"


def table(folder: Path) -> list[str]:
    """Markdown rows of every finished group in folder/results, shapes' then mnist's."""
    lines = [
        "| data | hint | metric | CN steps | samples | ControlNet | base (floor) "
        "| real (ceiling) | gap closed | accuracy CN / base / real |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset, suite in SUITES.items():
        for hint in suite.hints:
            path = result_path(folder, dataset, hint)
            if path.is_file():
                lines.append(table_row(dataset, hint, json.loads(path.read_text())))
    return lines


def table_row(dataset: str, hint: str, g: dict) -> str:
    r = g["rows"]
    acc = " / ".join(f"{r[k]['accuracy']:.3f}" for k in ("controlnet", "base", "real"))
    values = " | ".join(f"{r[k]['hint_fidelity']:.3f}" for k in ("controlnet", "base", "real"))
    metric = r["real"]["hint_metric"]
    cells = f"{dataset} | {hint} | {metric} | {g['steps']} | {g['num']} | {values}"
    return f"| {cells} | {gap_closed(r):.0%} | {acc} |"


def has_mnist(root: Path) -> bool:
    """root holds the four MNIST IDX files (gzipped or not)."""
    names = [f"{split}-{kind}" for split in ("train", "t10k")
             for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]  # fmt: skip
    return all((root / n).is_file() or (root / f"{n}.gz").is_file() for n in names)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    skip = args.dataset == "mnist" and not has_mnist(args.mnist_root)
    if skip and (args.prepare or args.hint):
        print(f"no MNIST IDX files in {args.mnist_root} (--mnist-root): skipped")
    if args.prepare and not skip:
        prepare(args)
    if args.hint and not skip:
        result = group(args, args.hint)
        path = result_path(args.folder, args.dataset, args.hint)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    if args.table or args.hint:
        print("\n".join(table(args.folder)))


if __name__ == "__main__":
    main()
