"""`difflab finetune-sd RECIPE [key.sub=value ...] [--dry-run] [--resume RUN]`: fine-tune a
Stable Diffusion UNet (or a LoRA of it) with the trainer, then export the EMA UNet with the
frozen parts as a diffusers pipeline folder (runs/NAME/diffusers/), or the EMA adapter as
runs/NAME/lora/pytorch_lora_weights.safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

from difflab.cli import train as train_command
from difflab.config.schema import Config
from difflab.core.errors import ConfigError
from difflab.integrations.stable_diffusion import export_run
from difflab.integrations.stable_diffusion.controlnet import SD_CONTROLNET
from difflab.integrations.stable_diffusion.lora import LORA_FILE
from difflab.integrations.stable_diffusion.network import SD_NETWORK


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "finetune-sd",
        help="fine-tune Stable Diffusion from a local diffusers folder, export it for diffusers",
        description="Fine-tune a Stable Diffusion v1.x UNet on COCO captions, e.g. `difflab "
        "finetune-sd sd-v1-4-coco model.pretrained=/weights/stable-diffusion-v1-4 "
        "data.root=/data/coco`. Weights and data are local folders; nothing downloads. Needs "
        "pip install 'difflab[sd]'.",
    )
    return train_command.add_run_arguments(p)


def run(args: argparse.Namespace) -> int:
    config = train_command.resolve(args)
    if config.model.network not in (SD_NETWORK, SD_CONTROLNET):
        raise ConfigError(
            f"finetune-sd takes a Stable Diffusion recipe (model.network {SD_NETWORK!r} or "
            f"{SD_CONTROLNET!r}, e.g. sd-v1-4-coco); use `difflab train` for this one"
        )
    if args.dry_run:
        print(config.to_yaml(), end="")
        return 0
    status, run_dir = train_command.train_and_report(config, args.trust_checkpoint)
    if run_dir is not None:
        out = export_run(run_dir)
        print(f"diffusers {_exported(config, out)}")
    return status


def _exported(config: Config, out: Path) -> str:
    """What export_run wrote to `out` for the run's config, and where."""
    if config.model.network == SD_CONTROLNET:
        return f"ControlNet: {out}"
    return f"LoRA: {out / LORA_FILE}" if config.model.lora.rank > 0 else f"pipeline: {out}"
