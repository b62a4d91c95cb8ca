"""`difflab train-clip DATASET [option=value ...] [--root PATH] [--text-encoder minilm]`.

Trains difflab's LiT image encoder (unCLIP's image side when no CLIP folder is given) on the
dataset's train split against the locked text encoder, with captions from the training
templates; prints image-to-caption retrieval accuracy on the test split with the held-out
templates. Without --out it goes to the cache, where unCLIP decoder runs find it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from difflab.cli.train_classifier import add_dataset_args, add_output_args, load_splits
from difflab.encoders import load_text_encoder
from difflab.evaluation.classifier_cache import cache_root
from difflab.lit import LiTSettings, lit_dir
from difflab.lit.cache import train_and_save
from difflab.parallel.distributed import resolve_device


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train-clip",
        help="train the LiT image encoder of unCLIP against a locked text encoder",
        description="Train difflab's small image encoder contrastively (InfoNCE, learned "
        "temperature) against a frozen text encoder on DATASET's templated captions, save it "
        "and print its held-out-template retrieval accuracy, e.g. `difflab train-clip digits`.",
    )
    add_dataset_args(p)
    p.add_argument("--text-encoder", default="minilm", help="minilm (packaged) or clip")
    p.add_argument("--text-encoder-path", help="local folder of the text encoder (clip)")
    defaults = LiTSettings()
    for field in dataclasses.fields(LiTSettings):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        p.add_argument(flag, type=type(default), default=default, help=f"default: {default}")
    add_output_args(p, "the LiT cache")
    return p


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    train, test = load_splits(args)
    text_encoder = load_text_encoder(args.text_encoder, args.text_encoder_path).to(device)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(LiTSettings)}
    settings = LiTSettings(**values)
    cache = cache_root(args.cache_dir)
    out = Path(args.out) if args.out else lit_dir(train, text_encoder.name, settings, cache)
    _, metrics = train_and_save(train, test, text_encoder, settings, out, device)
    print(
        f"image-to-caption retrieval on held-out templates: {metrics['retrieval_heldout']:.4f} "
        f"(chance {metrics['chance']:.4f}; {len(test)} {test.name}/{test.split} images)"
    )
    print(f"image encoder: {out}")
    return 0
