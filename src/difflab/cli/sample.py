"""`difflab sample RUN --num N --labels 0-9 --guidance W --out PATH [--format png|folder|npz]`
with sampler, grid, thresholding and classifier-guidance flags (`--sampler dpmpp-2m --steps 20
--grid karras --threshold static --classifier PATH --classifier-scale 2`), and for a ControlNet
run `--hint-image PATH` (an image or a folder of images: image i gets hint i % M) or
`--hint-map PATH` (ready-made hint maps), for an unCLIP decoder run `--variations PATH` (an
image or a folder: image i decodes the embedding of image i % M), and for a
Stable Diffusion run `--prompt TEXT` (repeatable: image i gets prompt i % M; default: the run's
sample.prompts), `--prompt-file`, `--negative-prompt`, `--height`, `--width` (prompt_args.py).
`difflab sample --prompt TEXT --cascade FOLDER --out PATH` runs unCLIP's prior, decoder and
upsampler named by FOLDER/cascade.yaml instead of a RUN (cascade_sample.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from difflab.cli.cascade_sample import cascade_sample
from difflab.cli.prompt_args import (
    add_prompt_arguments,
    asks_for_text,
    image_size,
    prompts_of,
    with_negative_prompt,
)
from difflab.cli.sampling_args import add_sampling_arguments, hints_from_args, sample_config
from difflab.conditioning import NULL_LABEL
from difflab.config.plugins import network_plugin
from difflab.core.errors import ConfigError
from difflab.evaluation.samples import save_samples_npz
from difflab.parallel.distributed import is_main, setup_device, shutdown
from difflab.runs.load import load_run
from difflab.sampling.images import write_png_folder, write_png_grid
from difflab.sampling.sharded import generate_sharded
from difflab.sampling.variations import variation_embeddings

FORMATS = ("png", "folder", "npz")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sample",
        help="generate images from a trained run",
        description="Generate images from a trained run. A sampling flag left out keeps the "
        "run's `sample` config section (sampler, steps, grid, eta, sampler_options, spacing, "
        "rho, sigma_max, threshold, classifier, classifier_scale).",
    )
    p.add_argument(
        "run",
        metavar="RUN",
        nargs="?",
        help="run folder (or --cascade); with --backend, also an export folder (export.json)",
    )
    p.add_argument(
        "--cascade",
        metavar="FOLDER",
        help="unCLIP: sample --prompt through the prior, decoder and upsampler runs that "
        "FOLDER/cascade.yaml names (keys prior, decoder, upsampler)",
    )
    # -n as well: under torchrun, --num is taken for an abbreviation of its --numa-binding.
    p.add_argument("-n", "--num", type=int, default=64, help="number of images")
    p.add_argument("--labels", help="class labels, cycled: 3, 0-9 or 1,4,7 (default: all)")
    p.add_argument(
        "--variations",
        metavar="IMAGE",
        help="an unCLIP decoder run: variations of this image (or folder of images), decoded "
        "from its embedding by the run's image encoder",
    )
    add_prompt_arguments(p)
    add_sampling_arguments(p, classifier_flags=("--classifier", "--guidance-classifier"))
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    p.add_argument("--out", required=True, help="output .png grid, .npz file, or folder")
    p.add_argument("--format", choices=FORMATS, help="default: from the --out suffix")
    p.add_argument(
        "--weights",
        default="ema",
        help="ema (default), raw, or a .safetensors file of the network (e.g. `difflab ema`'s)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "openvino"),
        default="torch",
        help="onnxruntime/openvino: sample the run's export (difflab export) on the CPU with "
        "difflab.deploy; same images as torch for the same seeds",
    )
    p.add_argument("--export-dir", help="the export to sample (default: RUN/export/FORMAT)")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load a checkpoint whose state.pt needs full pickle (runs code: trusted files only)",
    )
    return p


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

    labels = parse_labels(args.labels)
    out = Path(args.out)
    fmt = output_format(out, args.format)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.cascade is not None:
        images, y = cascade_sample(args, labels)
        return write_images(images, y, out, fmt, by_class=0)
    if args.run is None:
        raise ConfigError("difflab sample needs a RUN folder (or --cascade FOLDER)")
    if args.backend != "torch":
        from difflab.cli.deploy_sample import deployed_images

        images, y, num_classes = deployed_images(args, labels)
        return write_images(images, y, out, fmt, by_class=num_classes if labels is None else 0)
    device = setup_device(args.device)  # joins torchrun's process group, if any
    loaded = load_run(
        args.run, weights=args.weights, device=device, trust_checkpoint=args.trust_checkpoint
    )
    from_text = getattr(network_plugin(loaded.config.model.network), "prompt_images", None)
    if asks_for_text(args) or from_text is not None:
        result = _prompt_images(args, loaded, labels, device, from_text)
    else:
        result = generate_sharded(
            loaded,
            num=args.num,
            labels=labels,
            sample=sample_config(args, loaded.config.sample),
            seed=args.seed,
            batch_size=args.batch_size,
            device=device,
            hints=hints_from_args(args, loaded),
            embeddings=_variations(args, loaded, device),
        )
    shutdown(finished=True)
    if result is None:  # not rank 0: rank 0 writes
        return 0
    images, y = result
    return write_images(images, y, out, fmt, by_class=loaded.num_classes if labels is None else 0)


def _variations(args: argparse.Namespace, loaded, device) -> torch.Tensor | None:
    """The image embeddings of --variations for an unCLIP decoder run, None without it."""
    if args.variations is None:
        return None
    return variation_embeddings(args.variations, loaded, args.run, device)


def write_images(images, y, out: Path, fmt: str, *, by_class: int) -> int:
    """Write uint8 images [N, C, H, W] with labels y as fmt; by_class: the number of classes to
    lay a png grid out by (a row per class), 0 for none."""

    if fmt == "png":
        write_png_grid(images, out, ncol=by_class if 0 < by_class <= 16 else None)
    elif fmt == "folder":
        write_png_folder(images, y, out)
    else:
        save_samples_npz(out, images, y)
    print(f"wrote {len(images)} images to {out}")
    return 0


def _prompt_images(args: argparse.Namespace, loaded, labels: list[int] | None, device, from_text):
    """(images, null labels) of a text-prompted run's prompts (from_text: its plug-in's
    prompt_images; config/plugins.py), on rank 0 (not sharded)."""
    if from_text is None:
        raise ConfigError(
            "--prompt needs a run whose network samples from text (a Stable Diffusion run); "
            f"{args.run} has model.network {loaded.config.model.network!r}"
        )
    if labels is not None:
        raise ConfigError("--labels does not apply to a Stable Diffusion run; use --prompt")
    sample = with_negative_prompt(args, sample_config(args, loaded.config.sample))
    if not is_main():
        return None
    prompts = prompts_of(args, loaded.config.sample.prompts)  # default: the run's grid prompts
    size = image_size(args, loaded.image_shape[1:])
    images = from_text(loaded, prompts, num=args.num, sample=sample, seed=args.seed,
                       batch_size=args.batch_size, device=device, size=size,
                       hints=hints_from_args(args, loaded))  # fmt: skip
    null = torch.full((args.num,), NULL_LABEL, dtype=torch.long)
    return images, null
