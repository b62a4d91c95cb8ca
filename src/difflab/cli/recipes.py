"""`difflab recipes`: the recipes shipped with difflab, one line each."""

from __future__ import annotations

import argparse

from difflab.config.recipes import recipe_description, recipe_names


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("recipes", help="list the shipped training recipes")


def run(args: argparse.Namespace) -> int:
    names = recipe_names()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {recipe_description(name)}")
    return 0
