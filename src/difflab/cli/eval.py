"""`difflab eval RUN_OR_SAMPLES --metric fid --metric kid --metric accuracy --metric hint [...]`.

RUN_OR_SAMPLES is a run folder (samples are generated from its EMA weights with the recipe's
`sample` section, overridden by the sampling flags of `difflab sample`, the noisy classifier
being --guidance-classifier; labels cycled over the classes; a ControlNet run's hints made
from --hint-image), a samples .npz
(arr_0 images, arr_1 labels) or a folder of images. The reference is the test split of the
run's dataset unless --reference names another. Features are Inception-v3's with
--inception, else the difflab classifier's (--classifier, or one trained on demand and
cached). The metrics are printed and written as JSON (a second evaluation at the same step
gets a -2, -3... suffix rather than replacing the first). Warnings: an FID of fewer samples than
it needs (fid_min_samples), and samples whose size differs from the reference's.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from difflab.cli.eval_hints import check_hint_run, conditioning, hint_scores, targets
from difflab.cli.sampling_args import add_sampling_arguments, hints_from_args, sample_config
from difflab.config.schema import Config, SampleConfig
from difflab.core.errors import ConfigError, DataError
from difflab.data import load_dataset
from difflab.evaluation import (
    ClassifierFeatures,
    EvalOptions,
    InceptionFeatures,
    evaluate,
    load_classifier,
)
from difflab.evaluation.classifier_cache import at_size, cache_root, cached_classifier
from difflab.evaluation.metrics import METRICS
from difflab.evaluation.samples import load_samples_folder, load_samples_npz
from difflab.parallel.distributed import resolve_device
from difflab.runs.files import write_text_atomic
from difflab.runs.load import load_run
from difflab.sampling.generation import generate


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="FID, KID and classifier accuracy of a run's samples or a samples file",
        description="e.g. `difflab eval runs/mnist --metric fid --metric accuracy --num 5000`",
    )
    p.add_argument("source", metavar="RUN_OR_SAMPLES", help="run folder, .npz or image folder")
    p.add_argument("--metric", action="append", choices=(*METRICS, "hint"), dest="metrics",
                   help="repeatable (default: fid, and accuracy for labelled samples); hint: "
                   "a ControlNet run's hint fidelity")  # fmt: skip
    p.add_argument("--reference", metavar="DATASET", help="default: the run's dataset")
    p.add_argument("--root", help="reference data folder (default: the run's data.root)")
    p.add_argument("--num", type=int, default=1000, help="samples to generate from a run")
    p.add_argument("--classifier", metavar="PATH", help="classifier folder (save_classifier)")
    p.add_argument("--classifier-steps", type=int, help="steps of an on-demand classifier")
    p.add_argument("--inception", metavar="PATH", help="inception-2015-12-05.pt for features")
    p.add_argument("--reextractor-steps", type=int, help="steps of an on-demand segmentation "
                   "or depth re-extractor (metric hint)")  # fmt: skip
    add_sampling_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    p.add_argument(
        "--weights",
        default="ema",
        help="ema (default), raw, or a .safetensors file of the network (e.g. `difflab ema`'s)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--out", help="JSON file (default: RUN/eval/eval-step-N.json or SAMPLES-eval.json)"
    )
    p.add_argument("--cache-dir", help="default: $DIFFLAB_CACHE or ~/.cache/difflab")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return p


@dataclass
class Samples:
    """Images to score, their requested labels, where to write the JSON and what to record."""

    images: Tensor  # [N, C, H, W] uint8
    labels: Tensor | None  # [N], None when unlabelled or unconditional
    out: Path
    reference: str | None  # dataset name
    root: str | None
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    hints: Tensor | None = None  # [N, C_hint, H, W]: each image's hint (metric hint)
    config: Config | None = None  # the run's (metric hint)


def samples_from_run(run_dir: Path, args: argparse.Namespace, device: torch.device) -> Samples:
    loaded = load_run(run_dir, weights=args.weights, device=device)
    sample = sample_config(args, loaded.config.sample)
    hinted = "hint" in (args.metrics or [])
    if hinted:
        check_hint_run(loaded, run_dir)
    hints, requested = (
        conditioning(args, loaded, args.num) if hinted else (hints_from_args(args, loaded), None)
    )
    images, labels = generate(
        loaded,
        num=args.num,
        labels=requested,
        sample=sample,
        seed=args.seed,
        batch_size=args.batch_size,
        device=device,
        hints=hints,
    )
    data = loaded.config.data
    info = {"run": str(run_dir), "step": loaded.step, "weights": args.weights, "seed": args.seed}
    info.update(sampler=sample.sampler, steps=sample.steps, guidance=sample.guidance)
    info["sample"] = {k: v for k, v in asdict(sample).items() if k != "num"}  # num: grids'
    return Samples(
        images=images,
        # Unconditional samples carry NULL_LABEL (< 0); classifier-guided ones their targets.
        labels=None if bool((labels < 0).any()) else labels,
        out=run_dir / "eval" / f"eval-step-{loaded.step:06d}.json",
        reference=data.dataset,
        root=data.root,
        options={**data.options, "channels": data.channels},
        info=info,
        hints=targets(hints, args.num) if hinted else None,
        config=loaded.config,
    )


def load_source(source: Path, args: argparse.Namespace, device: torch.device) -> Samples:
    if not source.exists():
        raise DataError(f"{source} does not exist (a run folder, samples .npz or image folder)")
    if (source / "config.yaml").is_file():
        return samples_from_run(source, args, device)
    if "hint" in (args.metrics or []):
        raise ConfigError(f"metric hint needs a ControlNet run folder (it draws samples under "
                          f"known hints); {source} holds samples already drawn")  # fmt: skip
    hinted = (args.hint_image, args.hint_map) != (None, None)
    if sample_config(args, SampleConfig()) != SampleConfig() or hinted:
        raise ConfigError(f"sampling flags (--sampler, --steps, --hint-image, ...) apply to a run "
                          f"folder; {source} holds samples already drawn")  # fmt: skip
    if source.suffix.lower() == ".npz":
        images, labels = load_samples_npz(source)
    elif source.is_dir():
        images, labels = load_samples_folder(source)
    else:
        raise DataError(f"{source} is neither a run folder, a samples .npz nor an image folder")
    if labels is not None and bool((labels < 0).any()):
        labels = None  # NULL_LABEL: unconditional samples
    out = source.with_name(source.stem + "-eval.json")
    return Samples(images, labels, out, None, None, info={"samples": str(source)})


def run(args: argparse.Namespace) -> int:
    if args.num < 2 or args.batch_size < 1:
        raise ConfigError(f"--num must be >= 2 and --batch-size >= 1, got {args.num}, "
                          f"{args.batch_size}")  # fmt: skip
    device = resolve_device(args.device)
    inception = _inception(args, device)  # checked before sampling or training a classifier
    samples = load_source(Path(args.source), args, device)
    metrics = args.metrics or (["fid", "accuracy"] if samples.labels is not None else ["fid"])
    if "accuracy" in metrics and samples.labels is None:
        raise ConfigError("metric accuracy needs labelled samples (a class-conditional run)")
    image_metrics = [m for m in metrics if m != "hint"]
    result = score(samples, image_metrics, args, device, inception) if image_metrics else {}
    if "hint" in metrics:
        assert samples.hints is not None and samples.config is not None  # samples_from_run's
        result.update(hint_scores(samples.images, samples.hints, samples.config, args, device))
    record = {**samples.info, **result, "metrics": metrics, "time": time.strftime("%FT%T%z")}
    out = Path(args.out) if args.out else unused_path(samples.out)
    write_text_atomic(out, json.dumps(record, indent=1) + "\n")
    print_result(result)
    print(f"wrote {out}")
    return 0


def _inception(args: argparse.Namespace, device: torch.device):
    """The --inception extractor (its file checked now), or None."""

    return InceptionFeatures(args.inception, device=device) if args.inception else None


def score(
    samples: Samples,
    metrics: list[str],
    args: argparse.Namespace,
    device: torch.device,
    inception=None,
) -> dict[str, Any]:
    """evaluate() with the reference, extractor (inception: --inception's, already loaded) and
    classifier the arguments ask for."""
    name = args.reference or samples.reference
    if name is None:
        raise ConfigError(f"{args.source} is no run folder: name the dataset with --reference")
    root = args.root if args.root is not None else samples.root
    size = samples.images.shape[-1]
    options = samples.options if args.reference is None else {}

    def split(which: str):
        dataset = load_dataset(name, root=root, split=which, **options)
        if args.reference is not None:
            warn_resized(dataset, samples.images)
        return at_size(dataset, size)

    cache = cache_root(args.cache_dir)
    reference = split("test") if {"fid", "kid"} & set(metrics) else None
    needs_classifier = "accuracy" in metrics or (reference is not None and not args.inception)
    classifier, source = (
        load_classifier_for(args, split, cache, device) if needs_classifier else (None, None)
    )
    extractor = None
    if reference is not None:
        extractor = inception or ClassifierFeatures(
            classifier, batch_size=args.batch_size, device=device
        )
    result = evaluate(
        samples.images,
        samples.labels,
        reference=reference,
        metrics=metrics,
        extractor=extractor,
        classifier=classifier,
        cache_dir=cache / "reference",
        options=EvalOptions(batch_size=args.batch_size, seed=args.seed, device=str(device)),
    )
    return {**result, "classifier": source}


def load_classifier_for(args, split, cache: Path, device: torch.device):
    """(classifier, its folder as text): --classifier, or one trained on the train split."""
    if args.classifier:
        return load_classifier(args.classifier, device), args.classifier
    classifier, folder, trained = cached_classifier(
        split("train"), cache=cache, steps=args.classifier_steps, device=device
    )
    if trained:
        print(f"trained the evaluation classifier: {folder}")
    return classifier, str(folder)


def unused_path(path: Path) -> Path:
    """path, or path with the first free suffix -2, -3... before its extension."""
    free, k = path, 1
    while free.exists():
        k += 1
        free = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return free


def warn_resized(dataset, images: Tensor) -> None:
    """Warn when the samples' size differs from the reference dataset's own."""
    have, native = tuple(images.shape[-2:]), tuple(dataset.images.shape[-2:])
    if have != native:
        warnings.warn(
            f"samples are {have[0]}x{have[1]} but {dataset.name} images are "
            f"{native[0]}x{native[1]}: the reference (and any classifier trained on demand) is "
            f"{dataset.name} resized to {have[0]}x{have[1]}, comparable only at that size",
            stacklevel=2,
        )


def print_result(result: dict[str, Any]) -> None:
    if "fid" in result:
        print(f"fid: {result['fid']:.4f} ({result['features']} features, {result['reference']})")
        if result["num_samples"] < result["fid_min_samples"]:
            warnings.warn(
                f"FID of {result['num_samples']} samples: an estimate needs at least "
                f"{result['fid_min_samples']} ({result['num_features']} features; FID's bias "
                f"falls as 1/N), so compare FIDs only at equal sample counts",
                stacklevel=2,
            )
    if "kid_mean" in result:
        std = result["kid_std"]
        spread = "std unavailable: one subset" if std is None else f"+- {std:.6f}"
        print(f"kid: {result['kid_mean']:.6f} ({spread}, subsets of {result['kid_subset_size']})")
    if "accuracy" in result:
        print(f"accuracy: {result['accuracy']:.4f}")
    if "hint_fidelity" in result:
        print(f"hint {result['hint_metric']}: {result['hint_fidelity']:.4f} ({result['hint']})")
