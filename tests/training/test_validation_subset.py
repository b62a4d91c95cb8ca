"""Validation takes the first train.val_images held-out images, and stops when halted."""

from pathlib import Path

import pytest

from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.training.periodic import validation_loss, validation_size
from difflab.training.session import open_training_run

TINY = str(Path(__file__).with_name("tiny.yaml"))


def test_validation_uses_the_first_val_images(tmp_path):
    items = [f"run.root={tmp_path}", "data.val_split=test", "train.val_images=5"]
    s = open_training_run(load_config(TINY, items))
    assert validation_size(s) == 5
    subset = validation_loss(s)
    assert validation_loss(s, halt=lambda: True) is None
    s.config.train.val_images = None
    whole = validation_loss(s)
    s.val.images = s.val.images[:5]  # the split cut to its first 5 images, validated whole
    assert validation_size(s) == 5
    assert validation_loss(s) == subset != whole


def test_val_images_must_be_positive_or_null():
    with pytest.raises(ConfigError, match="train.val_images"):
        load_config(TINY, ["train.val_images=0"])
