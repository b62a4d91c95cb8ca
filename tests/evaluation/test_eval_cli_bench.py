"""bench/quality.py --quick: both libraries train, sample and are scored on digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_quality_bench_quick_prints_one_row_per_library_and_budget(tmp_path):
    pytest.importorskip("diffusers")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DIFFLAB_CACHE": str(tmp_path)}
    command = [sys.executable, str(REPO / "bench" / "quality.py"), "--quick", "--device", "cpu"]
    done = subprocess.run(
        [*command, "--threads", "1", "--budget-steps", "3", "1", "--seed", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout.split("\n\n")[-1].splitlines()
    assert table[0].startswith("| recipe | library | seed | params |")
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table[2:]]
    # one run per library, scored at each budget in order: a learning curve
    assert [(r[0], r[1], r[2], r[5]) for r in rows] == [
        ("digits", "difflab", "4", "1"),
        ("digits", "difflab", "4", "3"),
        ("digits", "diffusers", "4", "1"),
        ("digits", "diffusers", "4", "3"),
    ]
    for row in rows:
        assert row[7] == "ddim 2 steps, w=2.0" and int(row[8]) == 20
        assert float(row[9]) >= 0 and 0 <= float(row[10]) <= 1
        assert int(row[6]) == 16 * int(row[5])  # images seen, batch 16
    assert rows[0][3] == rows[2][3]  # the same parameter count
