"""unCLIP decoder runs: a tiny random transformers CLIP folder stands in for MiniLM + LiT as the
image encoder, the run records it, resumes exactly, samples variations of an image, and a
missing or mismatched encoder is a one-line error naming it."""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError, DataError
from difflab.data import load_dataset
from difflab.encoders import load_image_encoder
from difflab.runs.checkpoint import latest_checkpoint, load_checkpoint
from difflab.runs.load import load_run
from difflab.runs.metrics import read_metrics
from difflab.sampling.generation import generate
from difflab.sampling.variations import variation_embeddings
from difflab.training.loop import train
from difflab.training.session import open_training_run
from encoders.tiny_clip import save_tiny_clip

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
QUIET = ["train.sample_every=0", "train.val_every=0", "train.checkpoint_every=100"]


def _decoder(clip: Path) -> list[str]:
    return [f"model.embedding.image_encoder={clip}", "model.class_conditional=false"]


def _run(root: Path, name: str, steps: int, *extra: str, stop_at: int | None = None) -> Path:
    overrides = [f"run.root={root}", f"run.name={name}", f"train.steps={steps}", *QUIET]
    return train(load_config(TINY, [*overrides, *extra]), tensorboard=False, stop_at=stop_at)


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(root, the CLIP folder, a 3-step decoder run on its embeddings)."""
    root = tmp_path_factory.mktemp("unclip")
    clip = save_tiny_clip(root / "clip", projection_dim=8)
    return root, clip, _run(root, "decoder", 3, *_decoder(clip))


def _digit_png(folder: Path, index: int) -> Path:
    image = load_dataset("digits", split="test").images[index, 0].numpy()
    path = folder / f"digit{index}.png"
    Image.fromarray(image).save(path)
    return path


def test_decoder_records_its_encoder_and_drops_the_embedding_for_guidance(decoder):
    root, clip, run_dir = decoder
    loaded = load_run(run_dir)
    assert loaded.embedding_dim == 8 and loaded.image_encoder == str(clip.resolve())
    assert loaded.denoiser.network.vector_embed.in_dim == 8
    assert loaded.num_classes == 0
    config = load_config(TINY, [f"run.root={root}", "run.name=probe", *QUIET, *_decoder(clip)])
    session = open_training_run(config)
    assert session.state.cond_dropout == config.train.cond_dropout > 0
    index = torch.tensor([5, 0, 7])
    batch = session.data.take(index, None)  # each image with its own embedding
    images = load_dataset("digits", split="train").images[index].float() / 127.5 - 1
    expected = load_image_encoder(clip).encode(images)
    torch.testing.assert_close(batch.cond.embedding, expected, atol=1e-6, rtol=0)


def test_decoder_resumes_to_the_same_losses_and_weights(decoder):
    root, clip, run_dir = decoder
    first = _run(root, "resumed", 3, *_decoder(clip), "train.checkpoint_every=2", stop_at=2)
    assert _run(root, "resumed", 3, *_decoder(clip), f"train.resume={first}") == first
    assert _losses(first) == _losses(run_dir) and len(_losses(first)) == 3
    resumed = load_checkpoint(latest_checkpoint(first)).model
    expected = load_checkpoint(latest_checkpoint(run_dir)).model
    assert all(torch.equal(resumed[k], v) for k, v in expected.items())


def test_variations_decode_the_embedding_of_the_given_image(decoder, tmp_path):
    """Raw weights after 3 steps, at a high guidance scale, so that the embedding shows in the
    uint8 images: another image's embedding gives other images from the same seeds, and the
    CLI's images are generate's with the embedding of the decoded file."""
    _, _, run_dir = decoder
    outs = []
    for index in (0, 1):
        out = tmp_path / f"var{index}.npz"
        args = ["sample", str(run_dir), "--variations", str(_digit_png(tmp_path, index))]
        flags = ["--num", "2", "--steps", "2", "--guidance", "30", "--weights", "raw"]
        assert main([*args, *flags, "--out", str(out)]) == 0
        outs.append(np.load(out)["arr_0"])
    assert outs[0].shape == (2, 8, 8, 1)
    assert not np.array_equal(outs[0], outs[1])
    loaded = load_run(run_dir, weights="raw")
    embedding = variation_embeddings(tmp_path / "digit1.png", loaded, str(run_dir), "cpu")
    sample = replace(loaded.config.sample, steps=2, guidance=30.0)
    images, _ = generate(loaded, num=2, sample=sample, embeddings=embedding)
    assert np.array_equal(images.permute(0, 2, 3, 1).numpy(), outs[1])
    unguided, _ = generate(loaded, num=2, sample=sample)
    assert not torch.equal(unguided, images)


def _cli_error(argv: list[str], capsys) -> str:
    """The one line `difflab ARGV` prints on failing."""
    capsys.readouterr()
    assert main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_or_mismatched_encoders_are_one_line_errors_naming_them(decoder, tmp_path, capsys):
    root, clip, run_dir = decoder
    other = save_tiny_clip(tmp_path / "clip4", projection_dim=4)
    with pytest.raises(ConfigError, match=rf"clip:{other}.* 4-d .*resumed run.*=8"):
        _run(root, "decoder", 4, *_decoder(other), f"train.resume={run_dir}")
    moved = shutil.copytree(run_dir, tmp_path / "moved")
    (moved / "model.json").write_text(
        (moved / "model.json").read_text().replace(str(clip.resolve()), str(tmp_path / "gone"))
    )
    image = _digit_png(tmp_path, 0)
    argv = ["sample", str(moved), "--variations", str(image), "--out", str(tmp_path / "x.png")]
    assert f"image encoder folder {tmp_path / 'gone'} does not exist" in _cli_error(argv, capsys)
    with pytest.raises(DataError, match=f"image encoder folder {tmp_path / 'absent'} does not"):
        _run(root, "bad", 1, *_decoder(tmp_path / "absent"))
    plain = _run(root, "plain", 1)
    argv[1] = str(plain)
    assert f"run {plain} is not an unCLIP decoder" in _cli_error(argv, capsys)
