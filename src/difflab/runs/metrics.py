"""Run reporting: metrics as JSON lines, TensorBoard scalars and sample grids, optionally W&B
(rank 0); a progress bar."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from difflab.runs.wandb_log import WandbLog


class MetricsLog:
    """run/metrics.jsonl (one JSON object per record), TensorBoard scalars and images in
    run/tb/, and the same on W&B when given a WandbLog."""

    def __init__(
        self,
        run_dir: Path,
        *,
        tensorboard: bool = True,
        enabled: bool = True,
        wandb: WandbLog | None = None,
    ) -> None:
        self.path = run_dir / "metrics.jsonl"
        self._file = self.path.open("a") if enabled else None
        self._tb = None
        if tensorboard and enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tb"))
        self._wandb = wandb if enabled else None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._tb.add_scalar(key, value, record["step"])
        if self._wandb is not None:
            self._wandb.log(record)

    def image(self, key: str, path: Path, step: int) -> None:
        """A PNG already written (a sample grid), shown under key at step."""
        if self._tb is not None:
            hwc = np.asarray(Image.open(path).convert("RGB"))
            self._tb.add_image(key, hwc, step, dataformats="HWC")
        if self._wandb is not None:
            self._wandb.image(key, path, step)

    def close(self, failed: bool = False) -> None:
        """failed: the run ended by an exception (the W&B run is marked failed)."""
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.close(exit_code=1 if failed else 0)


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
