"""bench/quality.py --quick: both libraries train, sample and are scored on digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_quality_bench_quick_prints_one_row_per_library(tmp_path):
    pytest.importorskip("diffusers")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DIFFLAB_CACHE": str(tmp_path)}
    command = [sys.executable, str(REPO / "bench" / "quality.py"), "--quick", "--device", "cpu"]
    done = subprocess.run(
        [*command, "--threads", "1"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout.split("\n\n")[-1].splitlines()
    assert table[0].startswith("| recipe | library | params |")
    rows = [line.split("|")[1:-1] for line in table[2:]]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("digits", "difflab"),
        ("digits", "diffusers"),
    ]
    for row in rows:
        assert row[6].strip() == "ddim 2 steps, w=2.0" and int(row[7]) == 20
        assert float(row[8]) >= 0 and 0 <= float(row[9]) <= 1
        assert int(row[4]) > 0 and int(row[5]) == 16 * int(row[4])  # images seen, batch 16
    assert rows[0][2] == rows[1][2]  # the same parameter count
