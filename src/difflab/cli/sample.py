"""`difflab sample RUN --num N --labels 0-9 --guidance W --out PATH [--format png|folder|npz]`
with sampler, grid, thresholding and classifier-guidance flags (`--sampler dpmpp-2m --steps 20
--grid karras --threshold static --classifier PATH --classifier-scale 2`)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from difflab.errors import ConfigError
from difflab.training.config import SampleConfig

FORMATS = ("png", "folder", "npz")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sample",
        help="generate images from a trained run",
        description="Generate images from a trained run. A sampling flag left out keeps the "
        "run's `sample` config section (sampler, steps, grid, eta, sampler_options, spacing, "
        "rho, sigma_max, threshold, classifier, classifier_scale).",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    # -n as well: under torchrun, --num is taken for an abbreviation of its --numa-binding.
    p.add_argument("-n", "--num", type=int, default=64, help="number of images")
    p.add_argument("--labels", help="class labels, cycled: 3, 0-9 or 1,4,7 (default: all)")
    p.add_argument("--guidance", type=float, help="CFG scale (default: the recipe's)")
    add_sampling_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    p.add_argument("--out", required=True, help="output .png grid, .npz file, or folder")
    p.add_argument("--format", choices=FORMATS, help="default: from the --out suffix")
    p.add_argument("--weights", choices=("ema", "raw"), default="ema")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load a checkpoint whose state.pt needs full pickle (runs code: trusted files only)",
    )
    return p


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """Sampler, grid, thresholding and classifier guidance. A flag left out keeps the run's
    `sample` config section (defaults in training.config.SampleConfig)."""
    from difflab.samplers import SAMPLERS
    from difflab.schedules import GRIDS

    p.add_argument("--sampler", choices=SAMPLERS.names(), help="default: the recipe's")
    p.add_argument("--steps", type=int, help="sampling steps (default: the recipe's)")
    p.add_argument("--grid", choices=GRIDS.names(), help="sampling grid (default: the recipe's)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the recipe's)")
    p.add_argument("--churn", type=float, help="Euler/Heun stochastic churn s_churn")
    p.add_argument(
        "--sampler-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a sampler keyword option, e.g. s_noise=1.003 (repeatable)",
    )
    p.add_argument(
        "--spacing", choices=("leading", "trailing", "linspace"), help="uniform grid spacing"
    )
    p.add_argument("--rho", type=float, help="karras grid's exponent")
    p.add_argument("--sigma-max", type=float, help="karras grid's largest sigma / alpha, e.g. 80")
    p.add_argument(
        "--threshold",
        choices=("dynamic", "static", "off"),
        help="x0 thresholding (default: the recipe's; where it sets none, static with "
        "--classifier, else off)",
    )
    p.add_argument("--classifier", metavar="PATH", help="noisy classifier for classifier guidance")
    p.add_argument("--classifier-scale", type=float, help="classifier guidance scale")


def sample_config(args: argparse.Namespace, base: SampleConfig) -> SampleConfig:
    """The run's `sample` section with the flags given on the command line."""
    options = dict(base.sampler_options)
    if args.churn is not None:
        options["s_churn"] = args.churn
    for item in args.sampler_option:
        key, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not key.strip() or number is None:
            raise ConfigError(f"bad --sampler-option {item!r}; expected KEY=NUMBER, e.g. eta=0.5")
        options[key.strip()] = number
    given = {
        "guidance": args.guidance,
        "sampler": args.sampler,
        "steps": args.steps,
        "grid": args.grid,
        "eta": args.eta,
        "spacing": args.spacing,
        "rho": args.rho,
        "sigma_max": args.sigma_max,
        "classifier": args.classifier,
        "classifier_scale": args.classifier_scale,
    }
    sample = replace(base, sampler_options=options)
    sample = replace(sample, **{k: v for k, v in given.items() if v is not None})
    if args.threshold is not None:
        sample = replace(sample, threshold=args.threshold)
    if args.classifier_scale is not None and sample.classifier is None:
        raise ConfigError("--classifier-scale needs --classifier PATH (a noisy classifier)")
    return sample


def parse_labels(text: str | None) -> list[int] | None:
    """'3' -> [3]; '0-9' -> [0..9]; '1,4-6' -> [1, 4, 5, 6]."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if last < first:
                raise ValueError
            out += range(first, last + 1)
    except ValueError:
        raise ConfigError(f"bad --labels {text!r}; expected e.g. 3, 0-9 or 1,4,7") from None
    return out


def output_format(out: Path, given: str | None) -> str:
    if given is not None:
        return given
    suffix = out.suffix.lower()
    if suffix in (".png", ".npz"):
        return suffix[1:]
    if suffix == "":
        return "folder"
    raise ConfigError(
        f"cannot tell the format of --out {out}; use .png, .npz, a folder or --format"
    )


def run(args: argparse.Namespace) -> int:
    from difflab.evaluation.samples import save_samples_npz
    from difflab.generation import load_run, write_png_folder, write_png_grid
    from difflab.sharded_generation import generate_sharded
    from difflab.training.distributed import setup_device, shutdown

    labels = parse_labels(args.labels)
    out = Path(args.out)
    fmt = output_format(out, args.format)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = setup_device(args.device)  # joins torchrun's process group, if any
    loaded = load_run(
        args.run, weights=args.weights, device=device, trust_checkpoint=args.trust_checkpoint
    )
    result = generate_sharded(
        loaded,
        num=args.num,
        labels=labels,
        sample=sample_config(args, loaded.config.sample),
        seed=args.seed,
        batch_size=args.batch_size,
        device=device,
    )
    shutdown()
    if result is None:  # not rank 0: rank 0 writes
        return 0
    images, y = result
    if fmt == "png":
        by_class = labels is None and 0 < loaded.num_classes <= 16
        write_png_grid(images, out, ncol=loaded.num_classes if by_class else None)
    elif fmt == "folder":
        write_png_folder(images, y, out)
    else:
        save_samples_npz(out, images, y)
    print(f"wrote {len(images)} images to {out}")
    return 0
