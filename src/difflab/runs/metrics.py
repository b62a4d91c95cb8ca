"""Run reporting: metrics as JSON lines, TensorBoard scalars and sample grids, optionally W&B
(rank 0)."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from difflab.runs.files import write_error, write_text_atomic
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
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as err:  # disk full: one line naming the file and the free space
            raise write_error(self.path, err) from None
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
            with contextlib.suppress(OSError):  # a full disk was reported at the write
                self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.close(exit_code=1 if failed else 0)


def parse_record(line: str, path: Path) -> dict[str, Any] | None:
    """A line of metrics.jsonl as a record: a JSON object with an integer step. None for a line
    cut short by a kill; a hand-edited line (a non-numeric step) is also None, with a warning."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("step"), int):
        return record
    warnings.warn(
        f"{path}: ignoring a line that is not a record with an integer 'step': {line[:80]}",
        stacklevel=3,
    )
    return None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of run_dir/metrics.jsonl (parse_record); [] when there is none."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [r for r in (parse_record(line, path) for line in lines) if r is not None]


def trim_metrics(run_dir: Path, step: int) -> None:
    """Keep the records of steps <= `step` (a resumed run's checkpoint): a run killed after
    its last checkpoint logged steps that the resumed run logs again. A line cut short by the
    kill is dropped too. The file is replaced atomically."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        record = parse_record(line, path)
        if record is not None and record["step"] <= step:
            kept.append(line + "\n")
    write_text_atomic(path, "".join(kept))
