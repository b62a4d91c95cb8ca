"""The README's Python example runs as written (with fewer training steps)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert '"train.steps=500"' in block
    fast = '"train.steps=2", "train.sample_every=0", "train.val_every=0", "train.progress=false"'
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(block.replace('"train.steps=500"', fast), scope)  # noqa: S102
    images, labels = scope["images"], scope["labels"]
    assert images.dtype == torch.uint8 and images.shape == (20, 1, 8, 8)
    assert labels.tolist() == [3] * 20
    assert scope["sample"].guidance == 2.0
    exported, network = scope["unet"].state_dict(), scope["run"].denoiser.network.state_dict()
    assert all(torch.equal(exported[k], v) for k, v in network.items())


def test_sd_flag_table_names_config_keys_that_exist():
    from difflab.config.schema import Config

    text = README.read_text()
    section = text.split("### From diffusers' `train_text_to_image.py`")[1].split("\n\n`difflab")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `--")]
    key = r"`((?:data|model|train|sample|run)\.[a-z_0-9]+)"
    keys = {k for row in rows for k in re.findall(key, row.split("|")[2])}
    assert len(rows) > 30 and len(keys) > 30
    config = Config()
    for key in keys:
        section_name, field = key.split(".")
        assert hasattr(getattr(config, section_name), field), key
