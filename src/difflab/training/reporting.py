"""Run reporting: metrics as JSON lines and TensorBoard scalars (rank 0), a progress bar."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm


class MetricsLog:
    """run/metrics.jsonl (one JSON object per record) and TensorBoard scalars in run/tb/."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = True, enabled: bool = True) -> None:
        self.path = run_dir / "metrics.jsonl"
        self._file = self.path.open("a") if enabled else None
        self._tb = None
        if tensorboard and enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tb"))

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def progress_bar(total: int, initial: int, *, enabled: bool) -> tqdm:
    """A tqdm bar over steps, shown only when enabled and stderr is a terminal."""
    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        dynamic_ncols=True,
        disable=not (enabled and sys.stderr.isatty()),
    )


def trim_metrics(run_dir: Path, step: int) -> None:
    """Keep the records of steps <= `step` (a resumed run's checkpoint): a run killed after
    its last checkpoint logged steps that the resumed run logs again. A line cut short by the
    kill is dropped too. The file is replaced atomically."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)
