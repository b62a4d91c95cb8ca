"""A network exported once per group of noise levels (INT8 graphs, each calibrated with the
activation ranges of its own times: the ranges of high-noise inputs are far wider than those of
low-noise ones), run as one graph that sends each row to the graph of its time input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from difflab.core.errors import ConfigError
from difflab.deploy.backends import Graph, open_graph
from difflab.deploy.spec import ExportSpec

TIME_GROUPS = 4  # difflab export's default number of int8 graphs


def time_routed(graphs: Sequence[Graph], bounds: Sequence[float]) -> Graph:
    """One graph over `graphs`, ordered by ascending time: row i goes to graphs[k], k the
    number of bounds <= t_i (len(graphs) - 1 ascending bounds in the network's time input).
    Rows of one graph run as one batch; the output keeps the feeds' row order."""
    edges = np.asarray(bounds, dtype=np.float64)
    if len(edges) != len(graphs) - 1 or np.any(np.diff(edges) <= 0):
        raise ConfigError(
            f"export.json: {len(graphs)} time-grouped graphs need {len(graphs) - 1} ascending "
            f"time bounds, got {list(bounds)}"
        )

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        group = np.searchsorted(edges, np.asarray(feeds["t"], np.float64).reshape(-1), "right")
        if np.all(group == group[0]):
            return graphs[group[0]](feeds)
        out = None
        for k in np.unique(group):
            rows = np.flatnonzero(group == k)
            part = graphs[k]({name: value[rows] for name, value in feeds.items()})
            if out is None:
                out = np.empty((len(group), *part.shape[1:]), part.dtype)
            out[rows] = part
        return out

    return run


def step_groups(network_t: np.ndarray, groups: int) -> tuple[list[np.ndarray], list[float]]:
    """The noisy steps 0..S-1 of a grid (network_t [S + 1], descending) in `groups` contiguous
    runs ordered by ascending time, and the bounds between them (midway between neighbours'
    times), as time_routed takes them."""
    steps = len(network_t) - 1
    if not 1 <= groups <= steps:
        raise ConfigError(f"int8 time groups must be 1..{steps} (the grid's steps), got {groups}")
    runs = np.array_split(np.arange(steps), groups)[::-1]
    t = np.asarray(network_t, dtype=np.float64)
    bounds = [
        float(t[low[0]] + t[high[-1]]) / 2 for low, high in zip(runs[:-1], runs[1:], strict=True)
    ]
    return runs, bounds


def open_network(spec: ExportSpec, backend: str, *, threads: int | None = None) -> Graph:
    """The export's network graph under backend at its precision: its one file, or its
    time-grouped files routed by time."""
    precision = spec.data["precision"]
    graphs = [open_graph(p, backend, precision=precision, threads=threads)
              for p in spec.paths("network")]  # fmt: skip
    return graphs[0] if len(graphs) == 1 else time_routed(graphs, spec.time_bounds)
