"""Type checks for the network config dataclasses, so a bad recipe value fails with a message
naming the field instead of deep inside a layer constructor."""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any, get_args, get_origin, get_type_hints

from difflab.core.errors import ConfigError


def _matches(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in get_args(hint))
    if origin is typing.Literal:
        return value in get_args(hint)
    if origin is tuple:
        (item, _) = get_args(hint)  # only tuple[X, ...] is used in configs
        return isinstance(value, tuple) and all(_matches(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def check_types(config: Any) -> None:
    """Raise ConfigError naming the first field of a dataclass whose value has the wrong type."""
    hints = get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        if not _matches(value, hints[f.name]):
            raise ConfigError(
                f"{type(config).__name__}.{f.name}: expected {hints[f.name]}, got {value!r}"
            )


def require(condition: bool, config: Any, key: str, expected: str) -> None:
    """Raise ConfigError naming `key` and its value unless `condition` holds."""
    if not condition:
        value = getattr(config, key)
        raise ConfigError(f"{type(config).__name__}.{key}={value!r}: {expected}")
