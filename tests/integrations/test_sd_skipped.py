"""A Stable Diffusion run that meets an unreadable COCO image while streaming records it in
metrics.jsonl as data_skipped (as the in-memory datasets do), once, at the step it was met."""

from __future__ import annotations

import pytest

from difflab.runs.metrics import read_metrics
from difflab.training.loop import train

from .test_sd_training import sd_config
from .tiny_coco import write_tiny_coco

pytest.importorskip("diffusers")


def test_an_unreadable_streamed_image_is_recorded_as_data_skipped(sd_folder, tmp_path):
    coco = write_tiny_coco(tmp_path / "coco", count=6)
    bad = sorted((coco / "train2017").iterdir())[1]
    bad.write_bytes(b"not a jpeg")
    config = sd_config(sd_folder, coco, tmp_path, "data.max_bad_fraction=0.5")
    with pytest.warns(UserWarning, match="replaced unreadable images"):
        run = train(config, tensorboard=False)
    records = [r for r in read_metrics(run) if "data_skipped" in r]
    assert [(r["data_skipped"], r["data_skipped_files"]) for r in records] == [(1, [str(bad)])]
    first_loss = min(r["step"] for r in read_metrics(run) if "loss" in r)
    assert records[0]["step"] >= first_loss  # logged with the steps, not before them
