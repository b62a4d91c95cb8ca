"""`difflab sample`'s options of a Stable Diffusion run, as diffusers' pipeline takes them:
--prompt (repeatable), --prompt-file, --negative-prompt, --height and --width."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompt",
        action="append",
        help="text prompt of a Stable Diffusion run; repeat for several, cycled over the images "
        "(default: the run's sample.prompts)",
    )
    p.add_argument(
        "--prompt-file",
        help="a text file of prompts, one a line (blank lines skipped), after --prompt",
    )
    p.add_argument(
        "--negative-prompt",
        help="what guidance steers away from (default: the run's sample.negative_prompt, '')",
    )
    p.add_argument("--height", type=int, help="image height in pixels (default: the run's)")
    p.add_argument("--width", type=int, help="image width in pixels (default: the run's)")


def asks_for_text(args: argparse.Namespace) -> bool:
    """Whether any text-to-image option is given (only a Stable Diffusion run takes them)."""
    given = (args.prompt, args.prompt_file, args.negative_prompt, args.height, args.width)
    return any(value is not None for value in given)


def read_prompt_file(path: str) -> list[str]:
    """The non-blank lines of a prompt file, stripped; a ConfigError naming it when unreadable."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read --prompt-file {path}: {err}") from err
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise ConfigError(f"--prompt-file {path} holds no prompt")
    return prompts


def prompts_of(args: argparse.Namespace, default: list[str]) -> list[str]:
    """--prompt then --prompt-file's lines; `default` (the run's) when neither is given."""
    prompts = list(args.prompt or [])
    if args.prompt_file is not None:
        prompts += read_prompt_file(args.prompt_file)
    return prompts or list(default)


def image_size(args: argparse.Namespace, run_size: tuple[int, int]) -> tuple[int, int]:
    """(H, W): --height and --width, each defaulting to the run's."""
    size = (args.height or run_size[0], args.width or run_size[1])
    for flag, value in (("--height", args.height), ("--width", args.width)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    return size


def with_negative_prompt(args: argparse.Namespace, sample: SampleConfig) -> SampleConfig:
    if args.negative_prompt is None:
        return sample
    return replace(sample, negative_prompt=args.negative_prompt)
