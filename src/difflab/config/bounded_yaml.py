"""YAML read with bounds, before any object is built: a document over MAX_BYTES, or one whose
aliases expand to more than MAX_NODES nodes ("billion laughs": a few lines that expand to
billions of strings), is refused, so no config file can hang or exhaust memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from difflab.core.errors import ConfigError

MAX_BYTES = 1 << 20  # far above any config; a recipe is about 1 KiB
MAX_NODES = 100_000  # nodes after alias expansion


def expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes the document under node holds with every alias expanded (memoised per
    node, so a shared node is counted once per reference without walking it again)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # an alias to an enclosing node expands without end
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    memo[key] = 1 + sum(expanded_nodes(child, memo) for child in children)
    return memo[key]


def read_bounded(path: Path) -> str:
    """The text of path, reading at most MAX_BYTES + 1 bytes (a link to /dev/zero ends)."""
    with path.open("rb") as f:
        return f.read(MAX_BYTES + 1).decode("utf-8", errors="replace")


def load_bounded(text: str, source: str) -> Any:
    """yaml.safe_load(text) within MAX_BYTES and MAX_NODES; ConfigError naming source."""
    if len(text.encode()) > MAX_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_BYTES} bytes; not a config")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = expanded_nodes(node, {})
        if nodes > MAX_NODES:
            raise ConfigError(
                f"{source} expands to more than {MAX_NODES} YAML nodes through its aliases "
                "(&anchor/*alias); not a config"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be a config") from None
    finally:
        loader.dispose()
