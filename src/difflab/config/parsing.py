"""Turning nested dicts into typed config dataclasses: keys, types and overrides checked.

Every error names the dotted key; an unknown key suggests the nearest known one.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from difflab.core.errors import ConfigError


def known_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of a config dataclass, sections included."""
    out = []
    for f in fields(cls):
        key = prefix + f.name
        out.append(key)
        hint = get_type_hints(cls)[f.name]
        if is_dataclass(hint):
            out += known_keys(hint, key + ".")
    return out


def unknown_key_error(key: str, root: type) -> ConfigError:
    """The error for key, suggesting the nearest key of its own section (never the section)."""
    section, _, name = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in known_keys(root) if k.rpartition(".")[0] == section]
    close = difflib.get_close_matches(name, siblings, n=1, cutoff=0.6)
    hint = f" (did you mean '{section + '.' if section else ''}{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def from_dict(cls: type, data: Any, *, prefix: str, root: type | None = None) -> Any:
    """An instance of the dataclass cls from a dict, each value checked against its type."""
    root = root or cls
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "the config"
        raise ConfigError(f"config key '{where}' must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key in data:
        if key not in names:
            raise unknown_key_error(prefix + str(key), root)
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if is_dataclass(hint):
            values[name] = from_dict(hint, value, prefix=f"{prefix}{name}.", root=root)
        else:
            values[name] = check_type(prefix + name, hint, value)
    return cls(**values)


def check_type(key: str, hint: Any, value: Any) -> Any:
    """value converted to the type hint (int -> float, list -> tuple), or ConfigError."""
    ok, converted = _convert(hint, value)
    if not ok:
        raise ConfigError(
            f"config key '{key}' expects {_describe(hint)}, got {value!r} ({type(value).__name__})"
        )
    return converted


def _convert(hint: Any, value: Any) -> tuple[bool, Any]:
    origin = get_origin(hint)
    if origin is Literal:
        if value is False and "off" in get_args(hint):  # YAML 1.1 reads a bare off as false
            value = "off"
        return value in get_args(hint), value
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(hint):
            ok, converted = _convert(arg, value)
            if ok:
                return True, converted
        return False, value
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            return False, value
        items = [_convert(a, v) for a, v in zip(args, value, strict=True)]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if origin is list:
        if not isinstance(value, list):
            return False, value
        items = [_convert(get_args(hint)[0], v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    return _convert_scalar(hint, value)


def _convert_scalar(hint: Any, value: Any) -> tuple[bool, Any]:
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:  # finite numbers only: no config value means inf or nan
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                number = float(value)
            except ValueError:
                return False, value
            return math.isfinite(number), number
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok and math.isfinite(value), float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin is tuple:
        return f"a list of {len(get_args(hint))} numbers"
    if origin is list:
        return f"a list, each item {_describe(get_args(hint)[0])}"
    if origin is dict or hint is dict:
        return "a mapping"
    if hint is type(None):
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a finite number", str: "a string"}.get(
        hint, str(hint)
    )


def set_override(data: dict[str, Any], item: str) -> None:
    """Apply one `key.sub=value` override (value parsed as YAML) to a nested dict in place."""
    key, sep, raw = item.partition("=")
    if not sep or not key or "." not in key:
        raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. train.steps=100)")
    try:
        value = yaml.safe_load(raw) if raw else None
    except (yaml.YAMLError, ValueError):  # ValueError: a bad date such as 2024-13-45
        value = raw
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{key}': '{section}' is not a section")
        node = child
    node[leaf] = value
