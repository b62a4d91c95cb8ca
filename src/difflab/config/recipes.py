"""Recipes: YAML configs shipped in difflab/recipes, and loading a config from a recipe or file.

A recipe's first line is a comment `# <one-line description>`.
"""

from __future__ import annotations

from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from difflab.config.bounded_yaml import load_bounded, read_bounded
from difflab.config.build import build_config
from difflab.config.schema import Config
from difflab.core.errors import ConfigError

DEFAULT_RECIPE = "digits"


def _recipe_dir() -> Path:
    return Path(str(resources.files("difflab") / "recipes"))


def recipe_names() -> list[str]:
    return sorted(p.stem for p in _recipe_dir().glob("*.yaml"))


def recipe_description(name: str) -> str:
    first = recipe_path(name).read_text().splitlines()[0]
    return first.lstrip("#").strip()


def recipe_path(name: str) -> Path:
    path = _recipe_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}; expected one of: {', '.join(recipe_names())}")
    return path


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = load_bounded(read_bounded(path), f"config file {path}")
    except ConfigError:  # a ValueError too: already names the file
        raise
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except (yaml.YAMLError, ValueError) as err:  # ValueError: a bad date such as 2024-13-45
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data


def read_run_yaml(run_dir: Path) -> dict[str, Any]:
    """A run folder's config.yaml; ConfigError "not a difflab run" when none of its top-level
    keys is a difflab section (another tool's config.yaml, not an edited difflab one)."""
    path = run_dir / "config.yaml"
    data = read_yaml(path)
    sections = {f.name for f in fields(Config)}
    if data and not sections & data.keys():
        keys = ", ".join(map(str, list(data)[:5]))
        raise ConfigError(
            f"{run_dir} is not a difflab run: its config.yaml has keys {keys}, none of difflab's "
            f"sections ({', '.join(sorted(sections))})"
        )
    return data


def resolve_source(source: str | None) -> tuple[Path, str]:
    """(YAML path, default run name) of a recipe name or a YAML file path."""
    source = source or DEFAULT_RECIPE
    if source.endswith((".yaml", ".yml")) or Path(source).is_file():
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path, path.stem
    return recipe_path(source), source


def load_config(source: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The validated Config of a recipe name or YAML file (default: the digits recipe) with
    `key.sub=value` overrides applied; run.name defaults to the recipe's or file's name."""
    path, name = resolve_source(source)
    config = build_config(read_yaml(path), overrides)
    if config.run.name is None:
        config.run.name = name
    return config
