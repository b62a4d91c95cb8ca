"""Helpers of the 2-process tests: torchrun jobs (gloo on CPU), 1-process runs in this process,
and comparisons of their losses and checkpoints."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from difflab.config.build import build_config
from difflab.config.recipes import read_yaml
from difflab.runs.checkpoint import load_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("dist.yaml")
# Of weights and losses compared in float64 (dist.yaml): rounding in sums of another order gives
# ~1e-14, a wrong batch, noise draw or gradient average ~1e-1.
TOLERANCE = 1e-9
DIT = [
    "model.network=dit-tiny",
    "model.options={hidden_size: 32, depth: 2, num_heads: 2, freq_dim: 16}",
]


def torchrun(*args: str, nproc: int = 2, perturb: str | None = None) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node nproc -m difflab ARGS`, checked. perturb: run
    perturbed_rank.py instead, with that perturbation of rank 1's batches."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    target = ["-m", "difflab"]
    if perturb is not None:
        env["DIFFLAB_TEST_PERTURB"] = perturb
        target = [str(Path(__file__).with_name("perturbed_rank.py"))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(nproc), *target, *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def train_one_process(root: Path, overrides: list[str]) -> Path:
    config = build_config(read_yaml(CONFIG), [f"run.root={root}", *overrides])
    return train(config, tensorboard=False)


def train_two_processes(root: Path, overrides: list[str], perturb: str | None = None) -> Path:
    torchrun("train", str(CONFIG), f"run.root={root}", *overrides, perturb=perturb)
    return root / "dist"


def resume_one_process(run_dir: Path) -> Path:
    config = build_config(read_yaml(run_dir / "config.yaml"))
    config.train.resume = str(run_dir)
    return train(config, tensorboard=False)


def resume_two_processes(run_dir: Path) -> Path:
    torchrun("train", "--resume", str(run_dir))
    return run_dir


def copy_at_step(run_dir: Path, step: int, dest: Path) -> Path:
    """A copy of run_dir whose newest checkpoint is `step` (later ones removed)."""
    shutil.copytree(run_dir, dest)
    for path in (dest / "checkpoints").iterdir():
        if int(path.name.split("-")[1]) > step:
            shutil.rmtree(path)
    return dest


def losses(run_dir: Path) -> dict[int, float]:
    """Loss per step; a resumed run's records replace the earlier ones."""
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "loss" in r}


def weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    """Raw and EMA weights of checkpoint `step`, keys prefixed model./ema."""
    ckpt = load_checkpoint(run_dir / "checkpoints" / f"step-{step:06d}", with_state=False)
    out = {f"model.{k}": v for k, v in ckpt.model.items()}
    return out | {f"ema.{k}": v for k, v in ckpt.ema.items()}


def max_relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """max over tensors of ||a - b|| / ||a|| (L2 norms; a tensor of zeros compares absolutely).

    Per tensor, not per element: Adam moves a weight whose gradient is ~0 by g / (|g| + eps),
    so rounding in near-zero gradients (summed in another order over 2 ranks) is amplified
    elementwise in zero-initialised layers (in float32 to ~1e-4 of their largest entry)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for k in a:
        diff = float((a[k].double() - b[k].double()).norm())
        worst = max(worst, diff / max(float(a[k].double().norm()), 1e-12))
    return worst


def loss_difference(a: dict[int, float], b: dict[int, float]) -> float:
    assert a.keys() == b.keys()
    return max(abs(a[k] - b[k]) / abs(a[k]) for k in a)
