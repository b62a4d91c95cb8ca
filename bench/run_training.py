"""Training a benchmark's runs into its folder: each run is trained once, named by its
settings, and an interrupted one is finished where it stopped (hints.py, controlnet.py,
unclip.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from difflab.config.recipes import load_config
from difflab.training.loop import train


def train_run(run_dir: Path, recipe: str, overrides: list[str]) -> Path:
    """The recipe with overrides trained into run_dir, or resumed there (which finishes an
    interrupted run and does nothing to a finished one); returns run_dir."""
    where = [f"run.root={run_dir.parent}", f"run.name={run_dir.name}"]
    if (run_dir / "model.json").is_file():
        where.append(f"train.resume={run_dir}")
    start = time.perf_counter()
    train(load_config(recipe, [*where, *overrides]), tensorboard=False)
    print(f"{run_dir.name}: trained or resumed in {time.perf_counter() - start:.0f} s")
    return run_dir
