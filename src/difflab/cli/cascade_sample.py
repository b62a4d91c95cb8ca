"""`difflab sample --prompt TEXT --cascade FOLDER`: unCLIP's prior -> decoder -> upsampler, the
runs named by FOLDER/cascade.yaml (integrations/unclip/cascade.py), in one process."""

from __future__ import annotations

import argparse

import torch

from difflab.cli.prompt_args import prompts_of
from difflab.conditioning import NULL_LABEL
from difflab.core.errors import ConfigError
from difflab.integrations.unclip.cascade import cascade_images, load_cascade
from difflab.parallel.distributed import setup_device


def cascade_sample(args: argparse.Namespace, labels: list[int] | None):
    """(uint8 images [num, C, H, W], null labels) of the prompts through the cascade."""
    if args.run is not None:
        raise ConfigError(f"give a RUN or --cascade FOLDER, not both (RUN {args.run})")
    if labels is not None:
        raise ConfigError("--labels does not apply to --cascade; use --prompt")
    given = (args.negative_prompt, args.height, args.width, args.hint_image, args.hint_map)
    if any(value is not None for value in given):
        raise ConfigError("--cascade takes --prompt or --prompt-file; its runs set the rest")
    prompts = prompts_of(args, [])
    if not prompts:
        raise ConfigError("--cascade needs --prompt TEXT (or --prompt-file)")
    device = setup_device(args.device)
    cascade = load_cascade(args.cascade, device)
    images = cascade_images(
        cascade, prompts, num=args.num, seed=args.seed, batch_size=args.batch_size, device=device
    )
    return images, torch.full((args.num,), NULL_LABEL, dtype=torch.long)
