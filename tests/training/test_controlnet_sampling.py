"""Sampling a ControlNet run: hints reach every image (cycled, whatever the batch), the run
refuses to sample without them, `difflab sample --hint-image` makes them from image files, and
the training grids and in-training evaluation are drawn under the held-out images' hints."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.cli.main import main
from difflab.conditioning import NULL_LABEL, Condition, conditioned
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.data import BlurHint, load_dataset
from difflab.evaluation import Classifier, ClassifierConfig, save_classifier
from difflab.parallel import distributed
from difflab.runs.load import load_run
from difflab.runs.metrics import read_metrics
from difflab.sampling import sharded as sharded_generation
from difflab.sampling.generation import generate, guided_denoise
from difflab.sampling.hints import hint_maps_from_files, hints_from_files
from difflab.training import periodic as hooks
from difflab.training import sample_eval
from difflab.training.loop import train

TINY = str(Path(__file__).with_name("tiny.yaml"))
QUIET = ["train.sample_every=0", "train.val_every=0", "train.checkpoint_every=100"]


def _blur(uint8: torch.Tensor) -> torch.Tensor:
    """The run's hint (blur, factor 2) of uint8 images [N, C, H, W]."""
    return BlurHint(factor=2)({"image": uint8.float() / 127.5 - 1.0})["hint"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, dict[str, list]]:
    """(base run, ControlNet run with a grid and an evaluation at step 2, the hints its grids
    and its evaluation were drawn with)."""
    root = tmp_path_factory.mktemp("cn-sampling")
    base = train(
        load_config(TINY, [f"run.root={root}", "run.name=base", "train.steps=2", *QUIET]),
        tensorboard=False,
    )
    save_classifier(Classifier(ClassifierConfig("digits", 1, 8, 10)), root / "classifier")
    seen: dict[str, list] = {"grid": [], "eval": []}

    def spy(real, key):
        def record(*args, hints=None, **kwargs):
            seen[key].append(hints)
            return real(*args, hints=hints, **kwargs)

        return record

    overrides = [f"run.root={root}", "run.name=cn", "train.steps=2"]
    overrides += [f"model.controlnet.base_run={base}", "model.controlnet.hint_options={factor: 2}"]
    overrides += ["train.eval_every=2", "train.eval_samples=5"]
    overrides += [f"train.eval_classifier={root / 'classifier'}"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIFFLAB_CACHE", str(root / "cache"))
        patch.setattr(hooks, "sample_images", spy(hooks.sample_images, "grid"))
        patch.setattr(sample_eval, "generate", spy(sample_eval.generate, "eval"))
        run_dir = train(load_config(TINY, overrides), tensorboard=False)
    return base, run_dir, seen


def _load(run_dir: Path):
    run = load_run(run_dir, weights="raw")
    return replace(run, config=replace(run.config, sample=replace(run.config.sample, steps=2)))


@pytest.fixture(scope="module")
def cn(runs):
    return _load(runs[1])


@pytest.fixture(scope="module")
def strong(runs):
    """The ControlNet run with every zero-initialised convolution (the ControlNet's and the
    base's output) drawn at random: two training steps leave the network's output and its
    control too faint to change uint8 images, and the plumbing of the hints, not the training,
    is under test here."""
    run = _load(runs[1])
    network = run.denoiser.network
    c = network.controlnet
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for conv in [
            *c.zero_convs,
            c.mid_zero_conv,
            c.hint_encoder.layers[-1],
            network.base.conv_out,
        ]:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.3)
    return run


def test_different_hints_give_different_images_the_same_hint_the_same(strong):
    dark, light = torch.full((1, 1, 8, 8), -1.0), torch.full((1, 1, 8, 8), 1.0)
    a, _ = generate(strong, num=3, hints=dark)
    b, _ = generate(strong, num=3, hints=light)
    again, _ = generate(strong, num=3, hints=dark.clone())
    assert torch.equal(a, again)
    assert not torch.equal(a, b)


def test_image_i_gets_hint_i_mod_m_whatever_the_batch(strong):
    hints = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1).expand(3, 1, 8, 8)
    guided = replace(strong.config.sample, guidance=3.0)  # conditional and null halves batched
    options = {"labels": [2, 7], "sample": guided, "seed": 4}
    whole, labels = generate(strong, num=5, hints=hints, batch_size=5, **options)
    batched, _ = generate(strong, num=5, hints=hints, batch_size=2, **options)
    assert torch.equal(whole, batched) and labels.tolist() == [2, 7, 2, 7, 2]
    # Image 4 (seed 8, label 2) alone: the same with hint 4 % 3 = 1, not with hint 2.
    options.update(labels=[2], seed=8)
    assert torch.equal(generate(strong, num=1, hints=hints[1:2], **options)[0][0], whole[4])
    assert not torch.equal(generate(strong, num=1, hints=hints[2:3], **options)[0][0], whole[4])


def test_sharded_generation_gives_image_i_hint_i_mod_m_on_every_rank(strong, monkeypatch):
    hints = torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 8, 8)
    images, _ = generate(strong, num=5, hints=hints, seed=1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(sharded_generation, "gather_rows", lambda x, num: x)  # the rank's part
    parts = []
    for r in (0, 1):  # rows 0-2 and 3-5 (5: padding); rank 1's rows 3, 4 take hints 1, 0
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        parts.append(sharded_generation.generate_sharded(strong, num=5, hints=hints, seed=1)[0])
    assert torch.equal(torch.cat(parts)[:5], images)


def test_guidance_zero_is_the_null_label_with_the_zero_hint(strong):
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([400.0, 700.0])
    labels, hints = torch.tensor([3, 5]), torch.rand(2, 1, 8, 8) * 2 - 1
    sample = replace(strong.config.sample, guidance=0.0)
    guided = guided_denoise(strong.denoiser, labels, sample, "cpu", hints=hints)(x, t)
    null = Condition(labels=torch.full((2,), NULL_LABEL), hint=torch.zeros(2, 1, 8, 8))
    assert torch.equal(guided.x0, conditioned(strong.denoiser, null)(x, t).x0)


def test_a_controlnet_run_needs_hints_and_others_take_none(runs, cn):
    with pytest.raises(ConfigError, match="ControlNet run.*--hint-image PATH"):
        generate(cn, num=1)
    with pytest.raises(ConfigError, match=r"hints must be \[M, 1, 8, 8\].*\(1, 3, 8, 8\)"):
        generate(cn, num=1, hints=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ConfigError, match="not a ControlNet run"):
        generate(load_run(runs[0]), num=1, hints=torch.zeros(1, 1, 8, 8))


def _write(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def _red(h: int, w: int) -> np.ndarray:
    red = np.zeros((h, w, 3), np.uint8)
    red[..., 0] = 255
    return red


def _sample_with(flag: str, read, runs, cn, tmp_path) -> tuple[list[str], Path]:
    """Samples `difflab sample` draws with `flag FOLDER` (two grey files) equal generate's under
    read(FOLDER); returns (the command without flag and out, FOLDER)."""
    folder = tmp_path / "hints"
    folder.mkdir()
    for k in range(2):
        _write(folder / f"{k}.png", np.full((8, 8), 60 + 120 * k, np.uint8))
    out = tmp_path / "s.npz"
    argv = ["sample", str(runs[1]), "-n", "3", "--steps", "2", "--weights", "raw"]
    assert main([*argv, flag, str(folder), "--out", str(out)]) == 0
    expected, _ = generate(cn, num=3, hints=read(folder, cn.config, cn.image_shape))
    assert np.array_equal(np.load(out)["arr_0"], expected.permute(0, 2, 3, 1).numpy())
    return argv, folder


def _symmetric(uint8: torch.Tensor) -> torch.Tensor:
    return uint8.float() / 127.5 - 1.0


@pytest.mark.parametrize(
    "read, red_size, made",
    [(hints_from_files, (12, 20), _blur), (hint_maps_from_files, (8, 8), _symmetric)],
    ids=["hint-image: resized, through the blur", "hint-map: as they are"],
)
def test_hint_files_are_read(read, red_size, made, cn, tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    one = read(_write(tmp_path / "a.png", grey), cn.config, cn.image_shape)
    assert torch.allclose(one, made(torch.from_numpy(grey)[None, None]))
    # An RGB picture (another size for --hint-image): luma 0.299 R + 0.587 G + 0.114 B.
    _write(tmp_path / "b.png", _red(*red_size))
    both = read(tmp_path, cn.config, cn.image_shape)  # a.png, b.png
    assert both.shape == (2, 1, 8, 8) and torch.equal(both[0], one[0])
    assert torch.allclose(both[1], torch.full((1, 8, 8), 0.299 - 0.587 - 0.114), atol=1e-3)


def test_cli_sample_with_hint_images(runs, cn, tmp_path, capsys):
    argv, folder = _sample_with("--hint-image", hints_from_files, runs, cn, tmp_path)
    (folder / "bad.png").write_bytes(b"not a png")
    for flag, named in [([], "--hint-image PATH"), ([str(tmp_path / "gone.png")], "gone.png"),
                        ([str(folder)], "bad.png")]:  # fmt: skip
        hint_flag = ["--hint-image", *flag] if flag else []
        assert main([*argv, *hint_flag, "--out", str(tmp_path / "x.npz")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err, err
    samples = tmp_path / "drawn.npz"
    np.savez(samples, np.zeros((2, 8, 8, 1), np.uint8))
    refused = ["eval", str(samples), "--reference", "digits", "--hint-image", str(folder)]
    assert main(refused) == 2 and "apply to a run folder" in capsys.readouterr().err


def test_cli_sample_with_hint_maps_and_their_one_line_errors(runs, cn, tmp_path, capsys):
    argv, folder = _sample_with("--hint-map", hint_maps_from_files, runs, cn, tmp_path)
    _write(folder / "big.png", np.zeros((12, 8), np.uint8))
    for flag, named in [
        (["--hint-map", str(tmp_path / "gone.png")], "--hint-map " + str(tmp_path / "gone.png")),
        (["--hint-map", str(folder)], "big.png: a 12x8 map for 8x8 images"),
        (["--hint-map", str(folder), "--hint-image", str(folder)], "pass one of them"),
    ]:
        assert main([*argv, *flag, "--out", str(tmp_path / "x.npz")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err, err


def test_training_grids_and_evaluation_use_the_held_out_images_hints(runs):
    _, run_dir, seen = runs
    test_split = load_dataset("digits", split="test").images  # data.val_split
    assert len(seen["grid"]) == 2  # EMA and raw grids at step 2, sample.num 4
    for hints in seen["grid"]:
        assert torch.allclose(hints, _blur(test_split[:4]))
    shown = Image.open(run_dir / "samples" / "hints.png")
    assert shown.size == Image.open(run_dir / "samples" / "step-000002-ema.png").size
    assert len(seen["eval"]) == 1 and torch.allclose(seen["eval"][0], _blur(test_split[:5]))
    assert [r["step"] for r in read_metrics(run_dir) if "eval_fid" in r] == [2]


def test_cli_eval_of_a_controlnet_run_takes_hint_images(runs, tmp_path, capsys):
    _write(tmp_path / "a.png", np.full((8, 8), 200, np.uint8))
    argv = ["eval", str(runs[1]), "--num", "3", "--steps", "2", "--metric", "fid"]
    argv += ["--classifier", str(runs[1].parent / "classifier"), "--cache-dir", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "x.json")]) == 2
    assert "--hint-image PATH" in capsys.readouterr().err
    assert (
        main([*argv, "--hint-image", str(tmp_path / "a.png"), "--out", str(tmp_path / "e.json")])
        == 0
    )
    assert "fid" in json.loads((tmp_path / "e.json").read_text())
