"""Optional Weights & Biases logging (`run.wandb: online | offline`, the `wandb` extra).

The W&B run mirrors metrics.jsonl (numbers only, at the record's step) and the sample grids.
Its id is kept in the run folder (wandb_id.txt), so a resumed run continues the same W&B run;
W&B ignores records of steps it already has, which a run killed after its last checkpoint
logs again on resume.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from difflab.config.build import require_wandb

ID_FILE = "wandb_id.txt"


def _run_id(run_dir: Path) -> str:
    """The W&B id of this run folder, made on first use."""
    path = run_dir / ID_FILE
    if not path.is_file():
        path.write_text(secrets.token_hex(8))
    return path.read_text().strip()


class WandbLog:
    """One W&B run for one difflab run folder."""

    def __init__(self, run_dir: Path, *, mode: str, project: str, config: dict[str, Any]) -> None:
        require_wandb(mode)
        import wandb  # optional heavy dependency (the `wandb` extra)

        self._wandb = wandb
        self._run = wandb.init(
            project=project,
            name=run_dir.name,
            dir=str(run_dir),
            config=config,
            mode=mode,
            id=_run_id(run_dir),
            resume="allow",
        )

    def log(self, record: dict[str, Any]) -> None:
        numbers = {
            k: v
            for k, v in record.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
        }
        if numbers:
            self._run.log(numbers, step=record["step"])

    def image(self, key: str, path: Path, step: int) -> None:
        self._run.log({key: self._wandb.Image(str(path))}, step=step)

    def close(self, exit_code: int = 0) -> None:
        """Finish the W&B run: exit_code 0 marks it finished, any other failed."""
        self._run.finish(exit_code=exit_code)
