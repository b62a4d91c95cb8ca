"""Property tests: any config dict, override or command line ends as a Config or a
ConfigError; through the CLI, as exit 0 or one line `difflab: error: ...` with exit 2."""

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from difflab.cli.main import main
from difflab.config.build import build_config
from difflab.config.parsing import known_keys
from difflab.config.schema import Config
from difflab.core.errors import ConfigError

LEAVES = [k for k in known_keys(Config) if "." in k]
SECTIONS = [k for k in known_keys(Config) if "." not in k]
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
keys = st.sampled_from(LEAVES) | st.text(min_size=1, max_size=15)


def _nested(items: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in items.items():
        section, _, leaf = key.partition(".")
        if leaf and isinstance(out.setdefault(section, {}), dict):
            out[section][leaf] = value  # type: ignore[index]
        else:
            out[key] = value
    return out


@FAST
@given(st.dictionaries(keys, values, max_size=4))
def test_build_config_returns_a_config_or_raises_config_error(items):
    try:
        config = build_config(_nested(items))
    except ConfigError as err:
        assert str(err)
        return
    assert isinstance(config, Config)
    assert math.isfinite(config.train.lr) and config.train.steps > 0


@FAST
@given(st.sampled_from(SECTIONS), values.filter(lambda v: not isinstance(v, dict)))
def test_a_section_that_is_not_a_mapping_is_named(section, value):
    if value is None:  # an empty section means the defaults
        return
    with pytest.raises(ConfigError, match=f"'{section}' must be a mapping"):
        build_config({section: value})


INVALID = {
    "train.steps": [0, -1, 1.5, ".inf"],
    "train.batch_size": [0, -5, 2.5],
    "train.lr": [0, -1, "-1", ".inf", ".nan", "-.inf"],
    "train.grad_accum": [0, -1, 1.5],
    "train.grad_clip": [0, -1, ".inf"],
    "train.ema_decay": [1, 1.5, -0.5, ".nan"],
    "train.cond_dropout": [-0.1, 1.01],
    "train.max_nonfinite_steps": [0, -1, 1.5],
    "train.keep_checkpoints": [0, -1],
    "data.max_bad_fraction": [-0.5, 1.5, 2, ".inf"],
    "sample.eta": [-0.5, 1.5, ".nan"],
}


@pytest.mark.parametrize(
    ("key", "raw"), [(key, raw) for key, raws in INVALID.items() for raw in raws]
)
def test_out_of_range_numbers_are_config_errors_naming_the_key(key, raw):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config({}, [f"{key}={raw}"])


override_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20
)
overrides = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(LEAVES), override_text),
    st.builds(lambda k, v: f"{k}={v}", override_text, override_text),
    override_text.filter(lambda s: not s.startswith("-")),
)


@FAST
@given(st.lists(overrides, max_size=3))
@example(["train.steps=2024-13-45"])  # YAML reads a date and raised ValueError
@example(["train.a\nb=1"])  # a key with a newline made a two-line error
@example(["train.lr=.inf"])  # accepted before non-finite numbers were refused
def test_cli_never_shows_a_traceback(capsys, argv_items):
    argv = ["train", *argv_items, "--dry-run"]
    status = main(argv)
    out, err = capsys.readouterr()
    if status == 0:
        assert err == "" and "train:" in out
    else:
        assert status == 2, err
        assert err.count("\n") == 1 and err.startswith("difflab: error: "), err
