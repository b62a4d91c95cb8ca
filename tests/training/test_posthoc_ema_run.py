"""A run with the power-function EMA writes snapshots; `difflab ema` rebuilds its EMA from them
and `difflab sample --weights` samples the result."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.core.errors import ConfigError
from difflab.runs.checkpoint import latest_checkpoint
from difflab.runs.ema_snapshots import list_snapshots
from difflab.training.loop import train
from difflab.training.posthoc_ema import gamma_from_sigma_rel

TINY = str(Path(__file__).with_name("tiny.yaml"))
COMMON = ["train.sample_every=0", "train.val_every=0", "train.ema_sigma_rel=0.1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = load_config(
        TINY, [*COMMON, f"run.root={root}", "train.ema_start=1", "train.ema_snapshot_every=1"]
    )
    return train(config, tensorboard=False)


def test_snapshots_record_the_averaged_steps_and_gamma(run_dir):
    snaps = list_snapshots(run_dir)
    assert [s.averaged for s in snaps] == [1, 2, 3]  # steps 2, 3, 4 with ema_start 1
    assert all(s.gamma == pytest.approx(gamma_from_sigma_rel(0.1)) for s in snaps)
    final = latest_checkpoint(run_dir)
    last = load_file(str(snaps[-1].path))
    ema = load_file(str(final / "ema.safetensors"))
    assert all(torch.equal(last[k], ema[k]) for k in ema)  # the last snapshot is the final EMA


def test_posthoc_ema_of_the_runs_own_profile_is_its_ema(run_dir, tmp_path, capsys):
    assert main(["ema", str(run_dir), "--sigma-rel", "0.1", "0.2", "--out", str(tmp_path)]) == 0
    ema = load_file(str(latest_checkpoint(run_dir) / "ema.safetensors"))
    same = load_file(str(tmp_path / "step-000004-sigma_rel-0.100.safetensors"))
    for key, value in ema.items():
        torch.testing.assert_close(same[key], value, rtol=1e-5, atol=1e-6)
    other = load_file(str(tmp_path / "step-000004-sigma_rel-0.200.safetensors"))
    assert any(not torch.allclose(other[k], ema[k]) for k in ema if ema[k].is_floating_point())
    out = tmp_path / "x.png"
    weights = str(tmp_path / "step-000004-sigma_rel-0.200.safetensors")
    args = ["sample", str(run_dir), "--num", "2", "--weights", weights, "--out", str(out)]
    assert main(args) == 0
    assert out.is_file()


def test_bad_ema_settings_are_named(tmp_path, capsys):
    with pytest.raises(ConfigError, match="train.ema_snapshot_every"):
        load_config(TINY, ["train.ema_snapshot_every=2"])  # needs the power-function EMA
    with pytest.raises(ConfigError, match="train.ema_sigma_rel"):
        load_config(TINY, ["train.ema_sigma_rel=0.4"])
    run = train(load_config(TINY, [*COMMON, f"run.root={tmp_path}"]), tensorboard=False)
    assert main(["ema", str(run), "--sigma-rel", "0.1"]) == 2
    assert "has no EMA snapshots" in capsys.readouterr().err
    out = str(tmp_path / "x.png")
    assert main(["sample", str(run), "--weights", "missing.safetensors", "--out", out]) == 2
    assert "weights must be 'ema', 'raw' or a .safetensors file" in capsys.readouterr().err
