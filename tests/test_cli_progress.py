"""What `difflab train` (the README's first command) prints with its output piped, and the
progress of long work on a terminal that reports no size."""

import os
import subprocess
import sys
import time
from pathlib import Path

from difflab.config.recipes import load_config
from difflab.core import progress as progress_module
from difflab.core.progress import LogLines, progress
from difflab.data import load_dataset
from difflab.evaluation.classifier_training import train_classifier
from difflab.runs.load import load_run
from difflab.sampling.generation import generate
from difflab.training.loop import train

TINY = str(Path(__file__).parent / "training" / "tiny.yaml")


def test_train_piped_prints_the_run_folder_first_then_progress_lines(tmp_path):
    items = ["train.steps=4", "train.log_every=2", "train.sample_every=0", "train.val_every=0"]
    out = subprocess.run(
        [sys.executable, "-m", "difflab", "train", f"run.root={tmp_path}", *items],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: the lines in the order they were written
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout
    lines = out.stdout.splitlines()
    assert lines[0] == f"run folder: {tmp_path / 'digits'}"
    steps = [line.split(",")[0] for line in lines if line.startswith("train: ")]
    assert steps == ["train: 2/4 step (50%)", "train: 4/4 step (100%)"]
    assert "loss=" in lines[1] and "img_s=" in lines[1]
    assert lines[-1] == f"finished: {tmp_path / 'digits'}"


def test_a_terminal_of_no_columns_still_shows_the_bar(monkeypatch):
    controller, terminal = os.openpty()  # a new pty reports 0 columns and 0 rows
    assert os.get_terminal_size(terminal).columns == 0
    with os.fdopen(terminal, "w") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        bar = progress(10, "sampling", unit="img")
        bar.update(10)
        bar.close()
    shown = _read_all(controller)
    os.close(controller)
    assert "sampling" in shown and "10/10" in shown


def _read_all(controller: int) -> str:
    """Everything written to a pty whose terminal side is closed: one read may return only
    the first frames."""
    chunks = []
    while True:
        try:
            data = os.read(controller, 4096)
        except OSError:  # EIO: the terminal side is closed and all was read
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode()


def test_log_lines_come_every_interval_and_at_close(capsys, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    lines = LogLines(5, "validation", unit="img", interval=30.0)
    for seconds, n in [(1.0, 1), (31.0, 1), (40.0, 1), (62.0, 1), (63.0, 1)]:
        now[0] = seconds
        lines.update(n)
    lines.close()
    err = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in err] == [
        "validation: 2/5 img (40%)",  # 31 s after the start
        "validation: 4/5 img (80%)",  # 31 s after that line
        "validation: 5/5 img (100%)",  # at close
    ]


def test_sampling_and_classifier_training_report_progress_when_piped(tmp_path, monkeypatch, capfd):
    run_dir = train(load_config(TINY, [f"run.root={tmp_path}", "train.steps=1"]), tensorboard=False)
    capfd.readouterr()
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)  # a line at every update
    generate(load_run(run_dir), num=6, batch_size=4)
    train_classifier(load_dataset("digits", split="train"), steps=2, batch_size=8)
    lines = [line.split(",")[0] for line in capfd.readouterr().err.splitlines()]
    assert lines == [
        "sampling: 4/6 img (67%)",
        "sampling: 6/6 img (100%)",
        "classifier on digits: 1/2 step (50%)",
        "classifier on digits: 2/2 step (100%)",
    ]
