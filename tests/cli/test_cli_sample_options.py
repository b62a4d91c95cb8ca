"""`difflab sample` exposes every sampler, grid, thresholding and classifier guidance;
`difflab eval` of a run takes the same flags."""

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from difflab.cli.commands import build_parser
from difflab.cli.main import main
from difflab.cli.sampling_args import sample_config
from difflab.conditioning import NULL_LABEL
from difflab.config.recipes import load_config
from difflab.config.schema import SampleConfig
from difflab.core.errors import ConfigError
from difflab.evaluation import Classifier, ClassifierConfig, save_classifier
from difflab.runs.load import load_run
from difflab.samplers import SAMPLERS
from difflab.samplers.options import grid_times, sampler_kwargs
from difflab.sampling import generation
from difflab.sampling.generation import generate, sample_images
from difflab.schedules import GRIDS, make_schedule
from difflab.schedules.grids import karras_grid, uniform_grid
from difflab.training.loop import train

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", TINY, f"run.root={root}", "train.steps=2", "train.sample_every=0"]) == 0
    return root / "tiny"


def _images(run_dir, out, *flags) -> np.ndarray:
    args = ["sample", str(run_dir), "--num", "3", "--steps", "2", "--out", str(out), *flags]
    assert main(args) == 0
    return np.load(out)["arr_0"]


def _fails(capsys, argv, *words) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("difflab: error: "), err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler(run_dir, tmp_path, name):
    images = _images(run_dir, tmp_path / "s.npz", "--sampler", name)
    assert images.shape == (3, 8, 8, 1)


@pytest.mark.parametrize("name", GRIDS.names())
def test_every_grid(run_dir, tmp_path, name):
    assert _images(run_dir, tmp_path / "s.npz", "--grid", name).shape == (3, 8, 8, 1)


def test_sigma_max_reaches_the_karras_grid(run_dir, tmp_path):
    out = tmp_path / "s.npz"
    full = _images(run_dir, out, "--grid", "karras", "--sampler", "heun")
    capped = _images(run_dir, out, "--grid", "karras", "--sampler", "heun", "--sigma-max", "80")
    assert not np.array_equal(full, capped)


@pytest.mark.parametrize("command", ["sample", "eval"])
@pytest.mark.parametrize("flag,kind", [("--sampler", SAMPLERS), ("--grid", GRIDS)])
def test_bad_name_lists_the_valid_ones(run_dir, tmp_path, capsys, command, flag, kind):
    argv = [command, str(run_dir), flag, "nope", "--out", str(tmp_path / "s.npz")]
    _fails(capsys, argv, flag, "'nope'", *kind.names())


def test_unknown_sampler_option_names_the_sampler_and_its_options(run_dir, tmp_path, capsys):
    argv = ["sample", str(run_dir), "--sampler", "euler", "--sampler-option", "eta=0.5"]
    argv += ["--out", str(tmp_path / "s.npz")]
    _fails(capsys, argv, "'euler'", "'eta'", "s_churn, s_tmin, s_tmax, s_noise")
    bad = ["sample", str(run_dir), "--sampler-option", "eta", "--out", str(tmp_path / "s.npz")]
    _fails(capsys, bad, "--sampler-option 'eta'", "KEY=NUMBER")


def test_sampler_options_reach_the_sampler(run_dir, tmp_path):
    """Churn and eta add noise, so they change the images; eta=0 as an option is the default."""
    out = tmp_path / "s.npz"
    euler = _images(run_dir, out, "--sampler", "euler")
    churned = _images(run_dir, out, "--sampler", "euler", "--churn", "40")
    assert not np.array_equal(euler, churned)
    again = _images(run_dir, out, "--sampler", "euler", "--sampler-option", "s_churn=40")
    np.testing.assert_array_equal(churned, again)
    ddim = _images(run_dir, out, "--sampler", "ddim", "--sampler-option", "eta=0")
    assert not np.array_equal(ddim, _images(run_dir, out, "--sampler", "ddim", "--eta", "1"))


def test_grid_options_reach_the_grid():
    schedule = make_schedule("cosine")
    karras = SampleConfig(grid="karras", steps=5, rho=3.0)
    torch.testing.assert_close(grid_times(schedule, karras), karras_grid(schedule, 5, rho=3.0))
    capped = replace(karras, sigma_max=80.0)
    expected = karras_grid(schedule, 5, rho=3.0, sigma_max=80.0)
    torch.testing.assert_close(grid_times(schedule, capped), expected)
    assert not torch.equal(expected, grid_times(schedule, karras))
    leading = SampleConfig(grid="uniform", steps=5, spacing="leading")
    expected = uniform_grid(schedule, 5, spacing="leading")
    torch.testing.assert_close(grid_times(schedule, leading), expected)
    assert not torch.equal(expected, uniform_grid(schedule, 5))


def test_sample_section_keys_are_checked():
    assert sampler_kwargs(SampleConfig(sampler="heun", sampler_options={"s_churn": 2})) == {
        "s_churn": 2.0
    }
    assert sampler_kwargs(SampleConfig(sampler="ddim", eta=0.3)) == {"eta": 0.3}
    with pytest.raises(ConfigError, match="sampler 'ddpm' has no option 's_churn'"):
        load_config(TINY, ["sample.sampler=ddpm", "sample.sampler_options={s_churn: 1}"])
    with pytest.raises(ConfigError, match="sample.threshold"):
        load_config(TINY, ["sample.threshold=hard"])
    config = load_config(TINY, ["sample.threshold=static", "sample.rho=5"])
    assert config.sample.threshold == "static" and config.sample.rho == 5.0


def test_static_threshold_keeps_samples_in_range(run_dir, tmp_path):
    """A network scaled to predict far outside [-1, 1]: without thresholding the samples leave
    the range, with static thresholding every sampler's output stays in it."""
    run = load_run(run_dir)
    with torch.no_grad():
        for p in run.denoiser.network.parameters():
            p.mul_(3.0)
    labels = torch.arange(4)
    for name in SAMPLERS.names():
        sample = replace(run.config.sample, sampler=name, steps=3, guidance=3.0)
        kwargs = dict(image_shape=run.image_shape, labels=labels, seeds=[0, 1, 2, 3], device="cpu")
        wild = sample_images(run.denoiser, sample=sample, **kwargs)
        assert wild.abs().max() > 1.5, name
        clipped = sample_images(run.denoiser, sample=replace(sample, threshold="static"), **kwargs)
        assert clipped.abs().max() <= 1.0 + 1e-6, name
    assert _images(run_dir, tmp_path / "s.npz", "--threshold", "static").shape == (3, 8, 8, 1)


def _noisy_classifier(folder: Path, noisy: bool = True) -> Path:
    config = ClassifierConfig("digits", in_channels=1, image_size=8, num_classes=10, noisy=noisy)
    torch.manual_seed(0)
    save_classifier(Classifier(config), folder)
    return folder


def test_classifier_guidance_scale_zero_is_no_guidance(run_dir, tmp_path):
    """Same seeds: scale 0 gives the unguided images bit for bit, with and without CFG; a
    positive scale changes them."""
    folder, out = _noisy_classifier(tmp_path / "clf"), tmp_path / "s.npz"
    for cfg in ("0", "2"):
        plain = _images(run_dir, out, "--guidance", cfg)
        zero = _images(run_dir, out, "--guidance", cfg, "--classifier", str(folder),
                       "--classifier-scale", "0")  # fmt: skip
        np.testing.assert_array_equal(plain, zero)
        guided = _images(run_dir, out, "--guidance", cfg, "--classifier", str(folder),
                         "--classifier-scale", "500")  # fmt: skip
        assert not np.array_equal(plain, guided)


def test_classifier_guidance_errors(run_dir, tmp_path, capsys):
    out = ["--out", str(tmp_path / "s.npz")]
    clean = _noisy_classifier(tmp_path / "clean", noisy=False)
    _fails(capsys, ["sample", str(run_dir), "--classifier", str(clean), *out], "noisy=False")
    needs = "--classifier-scale needs --guidance-classifier PATH"
    _fails(capsys, ["sample", str(run_dir), "--classifier-scale", "2", *out], needs)
    missing = str(tmp_path / "none")
    _fails(capsys, ["sample", str(run_dir), "--classifier", missing, *out], missing)


def test_classifier_guidance_of_an_unconditional_model(tmp_path):
    """Labels cycle over the classifier's classes; scale 0 is the unguided model."""
    overrides = [f"run.root={tmp_path}", "train.steps=1", "train.sample_every=0"]
    config = load_config(TINY, [*overrides, "train.val_every=0", "model.class_conditional=false"])
    run = load_run(train(config, tensorboard=False))
    folder = _noisy_classifier(tmp_path / "clf")
    plain, none = generate(run, num=3, sample=replace(run.config.sample, steps=2))
    zero = replace(run.config.sample, steps=2, classifier=str(folder), classifier_scale=0.0)
    images, labels = generate(run, num=12, sample=zero)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert none.tolist() == [NULL_LABEL] * 3
    torch.testing.assert_close(images[:3], plain, rtol=0, atol=0)


def test_eval_scores_the_guided_labels_of_an_unconditional_run(tmp_path):
    """Classifier guidance gives an unconditional run's samples target classes: eval scores
    accuracy against them (without guidance there is nothing to score)."""
    overrides = [f"run.root={tmp_path}", "train.steps=1", "train.sample_every=0"]
    config = load_config(TINY, [*overrides, "train.val_every=0", "model.class_conditional=false"])
    run_dir = train(config, tensorboard=False)
    guide = str(_noisy_classifier(tmp_path / "guide"))
    scorer = str(_noisy_classifier(tmp_path / "scorer", noisy=False))
    argv = ["eval", str(run_dir), "--num", "4", "--steps", "2", "--classifier", scorer]
    argv += ["--cache-dir", str(tmp_path), "--metric", "accuracy"]
    out = tmp_path / "guided.json"
    flags = ["--guidance-classifier", guide, "--classifier-scale", "1"]
    assert main([*argv, *flags, "--out", str(out)]) == 0
    assert 0 <= json.loads(out.read_text())["accuracy"] <= 1
    assert main([*argv, "--out", str(tmp_path / "plain.json")]) == 2  # no labels to score


SAMPLING_FLAGS = ["--sampler", "dpmpp-2m", "--steps", "3", "--grid", "karras", "--rho", "5"]
SAMPLING_FLAGS += ["--sigma-max", "80", "--threshold", "static", "--guidance", "2"]
SAMPLING_FLAGS += ["--sampler-option", "s_noise=1.5", "--classifier-scale", "0.5"]


def test_sample_and_eval_resolve_the_same_flags_alike(run_dir):
    base = load_run(run_dir).config.sample
    expected = replace(base, sampler="dpmpp-2m", steps=3, grid="karras", rho=5.0, sigma_max=80.0)
    expected = replace(expected, threshold="static", guidance=2.0, classifier="c")
    expected = replace(expected, sampler_options={"s_noise": 1.5}, classifier_scale=0.5)
    for command, flag in [("sample", "--classifier"), ("sample", "--guidance-classifier"),
                          ("eval", "--guidance-classifier")]:  # fmt: skip
        argv = [command, "RUN", *SAMPLING_FLAGS, flag, "c", "--out", "o.npz"]
        assert sample_config(build_parser().parse_args(argv), base) == expected, argv


def test_eval_of_a_run_samples_with_the_flags_and_records_them(run_dir, tmp_path, monkeypatch):
    """The SampleConfig that reaches generation is the flags' one, and the JSON records it."""
    drawn = []

    def spy(*args, sample, **kwargs):
        drawn.append(sample)
        return real(*args, sample=sample, **kwargs)

    real = generation.sample_images
    monkeypatch.setattr(generation, "sample_images", spy)
    guide = str(_noisy_classifier(tmp_path / "guide"))
    scorer = str(_noisy_classifier(tmp_path / "scorer", noisy=False))
    flags = ["--sampler", "dpmpp-2m", "--steps", "3", "--grid", "karras", "--threshold", "static"]
    flags += ["--guidance-classifier", guide, "--classifier-scale", "0.5"]
    out = tmp_path / "eval.json"
    argv = ["eval", str(run_dir), "--num", "3", "--metric", "accuracy", "--classifier", scorer]
    assert main([*argv, *flags, "--cache-dir", str(tmp_path), "--out", str(out)]) == 0
    base = load_run(run_dir).config.sample
    expected = replace(base, sampler="dpmpp-2m", steps=3, grid="karras", threshold="static")
    expected = replace(expected, classifier=guide, classifier_scale=0.5)
    assert drawn == [expected]
    record = json.loads(out.read_text())
    assert record["sample"] == {k: v for k, v in asdict(expected).items() if k != "num"}
    assert (record["sampler"], record["steps"], record["classifier"]) == ("dpmpp-2m", 3, scorer)


def test_eval_of_samples_refuses_sampling_flags(tmp_path, capsys):
    npz = tmp_path / "s.npz"
    np.savez(npz, np.zeros((2, 8, 8, 1), np.uint8))
    argv = ["eval", str(npz), "--reference", "digits", "--sampler", "dpmpp-2m"]
    _fails(capsys, argv, "sampling flags", "apply to a run folder", str(npz))
