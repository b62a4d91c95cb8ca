"""`difflab train` on an image folder with a truncated JPEG and a zero-byte PNG: it trains,
names both files in a warning and in metrics.jsonl, and counts them; above
data.max_bad_fraction it stops with one line naming the files."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difflab.cli.main import main
from difflab.runs.metrics import read_metrics

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


@pytest.fixture
def folder(tmp_path) -> tuple[Path, list[Path]]:
    """8 good 8x8 RGB images in two classes, a truncated JPEG and an empty PNG."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    bad = [root / "cat" / "broken.jpg", root / "dog" / "empty.png"]
    bad[0].write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    bad[1].write_bytes(b"")
    return root, bad


def _args(tmp_path, root, fraction):
    return [
        "train",
        TINY,
        f"run.root={tmp_path}",
        "data.dataset=image-folder",
        f"data.root={root}",
        "data.val_split=null",
        f"data.max_bad_fraction={fraction}",
        "train.steps=2",
        "train.batch_size=4",
        "train.sample_every=0",
    ]


def test_bad_files_are_skipped_named_and_counted(tmp_path, folder, capsys):
    root, bad = folder
    with pytest.warns(UserWarning, match="skipped 2 of 10 unreadable images") as caught:
        assert main(_args(tmp_path, root, 0.25)) == 0
    message = str(caught[0].message)
    assert all(str(path) in message for path in bad)
    records = read_metrics(tmp_path / "tiny")
    assert records[0] == {"step": 0, "data_skipped": 2, "data_skipped_files": sorted(map(str, bad))}
    assert [r["step"] for r in records if "loss" in r] == [1, 2]


def test_too_many_bad_files_stop_with_one_line(tmp_path, folder, capsys):
    root, bad = folder
    assert main(_args(tmp_path, root, 0.1)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("difflab: error: 2 of 10 images")
    assert "data.max_bad_fraction=0.1" in err and all(str(path) in err for path in bad)
    assert not (tmp_path / "tiny").exists()


def test_resume_records_the_skipped_files_once_and_then_their_changes(tmp_path, folder):
    """Resuming twice from the step-2 checkpoint with the same bad files adds no record; once
    the files are mended, a resume records from its start step that none are skipped."""
    root, bad = folder
    with pytest.warns(UserWarning, match="skipped 2 of 10"):
        assert main(_args(tmp_path, root, 0.25)) == 0
    run = tmp_path / "tiny"
    resume = ["train", "--resume", str(run), "train.steps=2"]
    for _ in range(2):
        with pytest.warns(UserWarning, match="skipped 2 of 10"):
            assert main(resume) == 0
    named = sorted(map(str, bad))
    skipped = [r for r in read_metrics(run) if "data_skipped" in r]
    assert skipped == [{"step": 0, "data_skipped": 2, "data_skipped_files": named}]
    for path in bad:
        path.unlink()
    for _ in range(2):
        assert main(resume) == 0
    skipped = [r for r in read_metrics(run) if "data_skipped" in r]
    mended = {"step": 2, "data_skipped": 0, "data_skipped_files": []}
    assert skipped == [{"step": 0, "data_skipped": 2, "data_skipped_files": named}, mended]
