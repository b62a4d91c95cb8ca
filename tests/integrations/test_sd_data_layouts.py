"""A Stable Diffusion fine-tune trains on each captioned layout found from data.root alone
(OTX folder, diffusers' metadata.jsonl, WebDataset shards), and a WebDataset run stopped and
resumed repeats the uninterrupted run's losses (so its order is the same)."""

from __future__ import annotations

import pytest

from difflab.runs.metrics import read_metrics
from difflab.training.loop import train

from .test_sd_training import losses, sd_config
from .tiny_captioned import write_image_folder, write_otx, write_shards

pytest.importorskip("diffusers")

LAYOUTS = {
    "otx": lambda root: write_otx(root, count=4),
    "metadata-jsonl": lambda root: write_image_folder(root / "f", count=4, column="caption"),
    "webdataset": lambda root: write_shards(root / "w", count=4, per_shard=3),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_trains_from_its_root(sd_folder, tmp_path, layout):
    root = LAYOUTS[layout](tmp_path / "data")
    config = sd_config(sd_folder, root, tmp_path, "train.steps=2", "data.caption_column=caption")
    run = train(config, tensorboard=False)
    assert len(losses(run)) == 2
    assert not [r for r in read_metrics(run) if "data_skipped" in r]


def test_webdataset_resume_repeats_the_losses(sd_folder, tmp_path):
    root = str(write_shards(tmp_path / "w", count=5, per_shard=2) / "shard-{000..002}.tar")
    extra = ("data.dataset=webdataset", "data.crop=random", "data.flip=true")
    straight = train(sd_config(sd_folder, root, tmp_path / "a", *extra), tensorboard=False)
    config = sd_config(sd_folder, root, tmp_path / "b", *extra)
    stopped = train(config, tensorboard=False, stop_at=2)
    config.train.resume = str(stopped)
    resumed = train(config, tensorboard=False)
    assert len(losses(straight)) == 4
    assert losses(resumed) == losses(straight)
