"""One code path: world size 1 without a process group, and torchrun with two CPU processes."""

import os
import subprocess
import sys
from pathlib import Path

from difflab.parallel import distributed
from difflab.runs.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def test_rank_helpers_without_a_process_group():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.broadcast_from_main("x") == "x"
    distributed.barrier()


def test_torchrun_two_processes_share_one_run_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    command += ["-m", "difflab", "train", str(REPO / "tests" / "training" / "tiny.yaml")]
    command += [f"run.root={tmp_path}", "train.steps=3", "train.sample_every=0"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("run folder:") == 1
    run_dir = tmp_path / "tiny"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]
    assert [r["step"] for r in read_metrics(run_dir) if "loss" in r] == [1, 2, 3]
    assert (run_dir / "checkpoints" / "step-000003" / "COMPLETE").is_file()
