"""A prior run on the bundled digits with a tiny random transformers CLIP folder as both
encoders: the real path from captions and images to pairs, and a few training steps."""

import numpy as np
import pytest
import torch

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.data import load_dataset
from difflab.encoders import load_text_encoder
from difflab.integrations.unclip.pairs import load_pairs
from difflab.runs.load import load_run
from difflab.training.loop import train
from encoders.tiny_clip import save_tiny_clip  # tests/encoders

PER_CLASS = {"train": 6 * 2, "test": 2 * 2}  # templates x synonyms (data/captions.py)


@pytest.fixture(scope="module")
def clip_config(tmp_path_factory):
    folder = save_tiny_clip(tmp_path_factory.mktemp("clip"))
    root = tmp_path_factory.mktemp("runs")
    return folder, [
        "model.embedding.text_encoder=clip",
        f"model.embedding.text_encoder_path={folder}",
        f"model.embedding.image_encoder={folder}",
        "model.options={text_dim: 16, max_text_tokens: 16, width: 16, depth: 1, num_heads: 2}",
        f"run.root={root}",
    ]


@pytest.mark.parametrize("split", ["train", "test"])
def test_pairs_caption_each_image_by_its_class(clip_config, split):
    folder, overrides = clip_config
    config = load_config("unclip-prior-digits", overrides)
    pairs = load_pairs(config, split, torch.device("cpu"), folder)
    dataset = load_dataset("digits", split=split)
    per_class = PER_CLASS[split]
    assert pairs.pooled.shape == (10 * per_class, 8) and pairs.image.shape == (len(dataset), 8)
    assert torch.equal(pairs.counts, torch.full((len(dataset),), per_class))
    assert torch.equal(pairs.choices // per_class, dataset.labels[:, None].expand(-1, per_class))
    torch.testing.assert_close(pairs.image.norm(dim=1), torch.ones(len(dataset)))
    text = load_text_encoder("clip", folder)
    caption = "a small sketch of a 7" if split == "test" else "a handwritten seven"
    row = int((pairs.pooled - text.encode([caption]).pooled).norm(dim=1).argmin())
    assert row // per_class == 7
    torch.testing.assert_close(
        pairs.pooled[row], text.encode([caption]).pooled[0], atol=1e-5, rtol=0
    )


def test_a_prior_run_trains_on_them(clip_config):
    _, overrides = clip_config
    steps = ["train.steps=2", "train.batch_size=16", "train.val_every=2", "train.progress=false"]
    run_dir = train(load_config("unclip-prior-digits", [*overrides, *steps]), tensorboard=False)
    loaded = load_run(run_dir)
    assert loaded.image_shape == (8, 1, 1) and loaded.step == 2


def test_cli_cascade_end_to_end(clip_config, tmp_path):
    """`difflab sample --prompt --cascade`: a prior, a decoder and an upsampler trained for a
    step each with the same CLIP folder, 8x8 digits upsampled to 16x16."""
    folder, overrides = clip_config
    quick = ["train.steps=1", "train.batch_size=8", "train.sample_every=0", "train.val_every=0"]
    quick += ["train.progress=false", "sample.steps=2", f"run.root={tmp_path}"]
    encoders = [o for o in overrides if o.startswith("model.embedding.")]
    small = "model.options={base_channels: 8, norm_groups: 4, attention_resolutions: []}"
    runs = {
        "prior": train(load_config("unclip-prior-digits", [*overrides, *quick]), tensorboard=False),
        "decoder": train(
            load_config("unclip-decoder-digits", [*encoders, small, *quick]), tensorboard=False
        ),
        "upsampler": train(
            load_config(
                "upsampler-digits", ["model.options={base_channels: 8, norm_groups: 4}", *quick]
            ),
            tensorboard=False,
        ),
    }
    cascade = tmp_path / "cascade"
    cascade.mkdir()
    lines = [f"{stage}: ../{path.name}" for stage, path in runs.items()]
    (cascade / "cascade.yaml").write_text("\n".join(lines) + "\n")
    out = tmp_path / "sevens.npz"
    argv = ["sample", "--prompt", "a handwritten seven", "--prompt", "the digit 3", "--num", "3"]
    assert main([*argv, "--cascade", str(cascade), "--out", str(out), "--device", "cpu"]) == 0
    images = np.load(out)["arr_0"]
    assert images.shape == (3, 16, 16, 1) and images.dtype == np.uint8
