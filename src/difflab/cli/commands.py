"""The `difflab` subcommands: one module each, with add_parser(subparsers) and run(args)."""

from __future__ import annotations

import argparse
from types import ModuleType

from difflab import __version__
from difflab.cli import (
    distill,
    ema,
    export,
    finetune_sd,
    recipes,
    report,
    sample,
    train,
    train_classifier,
    train_clip,
)
from difflab.cli import eval as eval_command
from difflab.core.errors import ConfigError

SUBCOMMANDS: list[ModuleType] = [
    train,
    sample,
    eval_command,
    distill,
    ema,
    train_classifier,
    train_clip,
    finetune_sd,
    export,
    report,
    recipes,
]


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors raise ConfigError, so the CLI prints them as one line and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        command = self.prog.removeprefix("difflab").strip()
        raise ConfigError(f"{command}: {message}" if command else message)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="difflab", description="Train and sample diffusion models.")
    parser.add_argument("--version", action="version", version=f"difflab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers).set_defaults(handler=module.run)
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
