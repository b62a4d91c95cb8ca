import pytest

from difflab.config.build import build_config
from difflab.config.recipes import load_config, recipe_names
from difflab.config.schema import Config
from difflab.core.errors import ConfigError


def test_defaults_and_overrides_parse_yaml_values():
    c = build_config({}, ["train.lr=1e-3", "train.betas=[0.8, 0.95]", "model.num_steps=null"])
    assert c.train.lr == 1e-3 and isinstance(c.train.lr, float)
    assert c.train.betas == (0.8, 0.95)
    assert c.model.num_steps is None
    assert c.train.cond_dropout == Config().train.cond_dropout == 0.1


def test_override_beats_file_value():
    c = build_config({"train": {"steps": 10}}, ["train.steps=7", "model.options.base_channels=8"])
    assert c.train.steps == 7
    assert c.model.options == {"base_channels": 8}


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'train.stpes' \(did you mean "
        r"'train.steps'\?\)",
    ):
        build_config({}, ["train.stpes=5"])
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        build_config({"trian": {"steps": 5}})


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.steps=ten", ["train.steps", "an integer", "'ten'"]),
        ("train.steps=1.5", ["train.steps", "an integer", "1.5"]),
        ("train.flip=1", ["train.flip", "unknown"]),
        ("data.flip=yes please", ["data.flip", "a boolean", "'yes please'"]),
        ("train.precision=fp8", ["train.precision", "'bf16'", "'fp8'"]),
        ("train.betas=[0.9]", ["train.betas", "a list of 2 numbers"]),
    ],
)
def test_wrong_type_names_key_expected_type_and_value(override, words):
    with pytest.raises(ConfigError) as err:
        build_config({}, [override])
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    ("override", "key", "constraint"),
    [
        ("train.lr=0", "train.lr", "> 0"),
        ("train.lr=-1e-4", "train.lr", "> 0"),
        ("train.batch_size=0", "train.batch_size", "> 0"),
        ("train.ema_decay=1.0", "train.ema_decay", "in [0, 1)"),
        ("train.ema_decay=-0.1", "train.ema_decay", "in [0, 1)"),
        ("train.grad_accum=0", "train.grad_accum", ">= 1"),
        ("train.cond_dropout=1.5", "train.cond_dropout", "in [0, 1]"),
        ("model.zero_terminal_snr=true", "model.zero_terminal_snr", "parameterization 'eps'"),
        ("sample.sampler=nope", "sample.sampler", "ddim"),
    ],
)
def test_impossible_values_name_key_and_constraint(override, key, constraint):
    with pytest.raises(ConfigError) as err:
        build_config({"model": {"parameterization": "eps"}}, [override])
    assert key in str(err.value) and constraint in str(err.value)


def test_zero_terminal_snr_is_fine_with_v():
    c = build_config({}, ["model.parameterization=v", "model.zero_terminal_snr=true"])
    assert c.model.zero_terminal_snr


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key.sub=value"):
        build_config({}, ["steps=5"])


def test_recipes_load_and_name_the_run(tmp_path):
    assert recipe_names() == [
        "cifar10",
        "digits",
        "mnist",
        "sd-controlnet-coco",
        "sd-v1-4-coco",
        "shapes",
        "unclip-decoder-digits",
        "unclip-decoder-mnist",
        "unclip-prior-digits",
        "unclip-prior-mnist",
        "upsampler-digits",
    ]
    sd = ["model.pretrained=/weights/sd", "data.root=/data/coco"]
    required = {"sd-v1-4-coco": sd, "sd-controlnet-coco": sd}
    for name in recipe_names():
        assert load_config(name, required.get(name, [])).run.name == name
    assert load_config(None).data.dataset == "digits"
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  steps: 3\n")
    c = load_config(str(path), ["train.batch_size=4"])
    assert (c.run.name, c.train.steps, c.train.batch_size) == ("mine", 3, 4)
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        load_config("nope")


def test_the_sd_recipe_states_the_seeds_defaults():
    """MSE on the noise, AdamW lr 1e-5, betas 0.9/0.999, weight decay 0.01, epsilon 1e-8:
    written in the recipe itself, so a change of TrainConfig's defaults leaves them as they are."""
    from difflab.config.recipes import read_yaml, recipe_path

    seed = {"loss_weighting": "uniform", "lr": 1e-5, "betas": [0.9, 0.999]}
    seed |= {"weight_decay": 0.01, "adam_eps": 1e-8}
    recipe = read_yaml(recipe_path("sd-v1-4-coco"))
    assert {key: recipe["train"][key] for key in seed} == seed
    assert recipe["model"]["parameterization"] == "eps"
    t = load_config("sd-v1-4-coco", ["model.pretrained=/weights/sd", "data.root=/c"]).train
    assert (t.loss_weighting, t.lr, t.betas) == ("uniform", 1e-5, (0.9, 0.999))
    assert (t.weight_decay, t.adam_eps) == (0.01, 1e-8)


def test_config_round_trips_through_yaml():
    import yaml

    c = load_config("mnist", ["train.steps=5"])
    assert build_config(yaml.safe_load(c.to_yaml())) == c


def test_the_pixel_recipes_default_to_the_power_function_ema():
    for name in ("digits", "mnist", "cifar10", "shapes"):
        assert load_config(name).train.ema_sigma_rel == 0.1, name


def test_ema_decay_and_sigma_rel_are_alternatives_the_override_wins():
    power = {"train": {"ema_sigma_rel": 0.1}}
    fixed = build_config(power, ["train.ema_decay=0.9"]).train
    assert (fixed.ema_decay, fixed.ema_sigma_rel) == (0.9, None)
    back = build_config({"train": {"ema_decay": 0.9}}, ["train.ema_sigma_rel=0.05"]).train
    assert back.ema_sigma_rel == 0.05
    assert load_config("mnist", ["train.ema_decay=0.99"]).train.ema_sigma_rel is None
    saved = build_config({"train": {"ema_decay": 0.9, "ema_sigma_rel": 0.1}})  # a config.yaml
    assert build_config(saved.to_dict(), ["train.lr=0.1"]).train.ema_sigma_rel == 0.1
