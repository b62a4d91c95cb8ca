"""export.json: what a sampler needs besides the graph (parameterization, grid, guidance, shapes,
classes, hint transform, embedding input), read without torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from difflab.core.errors import ConfigError

EXPORT_JSON = "export.json"
GRID_KEYS = ("t", "network_t", "alpha", "sigma")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Grid:
    """Sampling times t_0 > ... > t_S (clean), the network's time input at each, and alpha and
    sigma there (float64)."""

    t: np.ndarray
    network_t: np.ndarray
    alpha: np.ndarray
    sigma: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.t) - 1

    def to_json(self) -> dict[str, list[float]]:
        return {k: [float(v) for v in getattr(self, k)] for k in GRID_KEYS}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Grid:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in GRID_KEYS}
        if len({len(a) for a in arrays.values()}) != 1 or len(arrays["t"]) < 2:
            raise ConfigError("export.json: grid t, network_t, alpha, sigma differ in length")
        return cls(**arrays)


@dataclass(frozen=True)
class ExportSpec:
    """The parsed export.json of an export folder."""

    folder: Path
    data: dict[str, Any]

    @property
    def grid(self) -> Grid:
        return Grid.from_json(self.data["grid"])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return tuple(self.data["latent_shape"])

    @property
    def num_classes(self) -> int:
        return int(self.data["num_classes"])

    @property
    def null_embedding(self) -> np.ndarray | None:
        """An unCLIP decoder's null embedding [E] float32 (what the network sees with the
        embedding dropped), None for a graph without an embedding input."""
        record = self.data.get("embedding")
        return None if record is None else np.asarray(record["null"], dtype=np.float32)

    def path(self, key: str) -> Path | None:
        """The file of graph `key` ("network" or "decoder"), None where there is none; a
        time-grouped network has several (paths, deploy.open_network)."""
        paths = self.paths(key)
        if len(paths) > 1:
            raise ConfigError(f"{self.folder}: {key} is {len(paths)} time-grouped graphs")
        return paths[0] if paths else None

    def paths(self, key: str) -> list[Path]:
        """The files of graph `key`: one, one per time group (time_bounds between them), or
        none."""
        names = self.data["graphs"].get(key)
        names = [] if names is None else [names] if isinstance(names, str) else names
        return [self.folder / name for name in names]

    @property
    def time_bounds(self) -> list[float]:
        """The network's time inputs between its time-grouped graphs (deploy.time_groups)."""
        return [float(b) for b in self.data.get("time_bounds", [])]


def read_spec(folder: Path | str) -> ExportSpec:
    """The export.json of folder; ConfigError naming the file if it is missing or not ours."""
    file = Path(folder) / EXPORT_JSON
    if not file.is_file():
        raise ConfigError(f"{file} does not exist; run `difflab export RUN` first")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{file} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{file}: format_version must be {FORMAT_VERSION}")
    return ExportSpec(folder=Path(folder), data=data)
