"""Hand-edited or damaged run files (with manifests that match: anyone can rehash) give a
fallback with a warning or one line naming the file and the key, never a traceback."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from difflab.cli.main import main
from difflab.config.recipes import load_config
from difflab.core.errors import CheckpointError
from difflab.core.hashing import file_sha256
from difflab.runs.checkpoint import FILES, MARKER, load_latest_checkpoint
from difflab.runs.load import load_run
from difflab.runs.metrics import read_metrics, trim_metrics
from difflab.runs.report import write_report
from difflab.training.loop import train

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    overrides = [f"run.root={root}", "train.sample_every=0", "train.val_every=0"]
    return train(load_config(TINY, overrides), tensorboard=False)  # checkpoints at 2 and 4


@pytest.fixture
def run(clean_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(clean_run, copy)
    return copy


def _rehash(ckpt: Path) -> None:
    manifest = {name: file_sha256(ckpt / name) for name in FILES}
    step = int(ckpt.name.split("-")[1])
    (ckpt / MARKER).write_text(json.dumps({"step": step, "sha256": manifest}))


def _edit_state(run: Path, edit) -> Path:
    ckpt = run / "checkpoints" / "step-000004"
    torch.save(edit(torch.load(ckpt / "state.pt", weights_only=True)), ckpt / "state.pt")
    _rehash(ckpt)
    return ckpt


def _one_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_state_without_optimizer_is_one_line_naming_it(run, capsys):
    ckpt = _edit_state(run, lambda state: {k: v for k, v in state.items() if k != "optimizer"})
    err = _one_line(capsys, ["train", "--resume", str(run), "train.steps=6"])
    assert f"{ckpt / 'state.pt'} has no 'optimizer' entry" in err


def test_a_state_that_is_not_a_mapping_falls_back_with_a_warning(run):
    _edit_state(run, lambda state: [state["step"]])
    with pytest.warns(UserWarning, match=r"step-000004/state.pt is not a mapping"):
        assert load_latest_checkpoint(run).step == 2


def test_tensor_shapes_that_differ_from_the_model_name_the_tensor(run):
    ckpt = run / "checkpoints" / "step-000004"
    tensors = load_file(ckpt / "ema.safetensors")
    name = next(iter(tensors))
    tensors[name] = torch.zeros(3, 5)
    save_file(tensors, ckpt / "ema.safetensors")
    _rehash(ckpt)
    with pytest.raises(CheckpointError, match=f"ema.safetensors: tensor '{name}' is \\[3, 5\\]"):
        load_run(run)


@pytest.mark.parametrize(
    "text,named",
    [
        ("{}", "'in_channels'"),
        ("[1, 2]", "JSON object"),
        ('{"in_channels": 1,', "not valid JSON"),
        ('{"in_channels": 1e9, "image_size": 8, "num_classes": 10}', "'in_channels'"),
        ('{"in_channels": 1, "image_size": 1000000000, "num_classes": 10}', "'image_size'"),
    ],
)
def test_a_bad_model_json_is_one_line_naming_the_key(run, capsys, text, named):
    (run / "model.json").write_text(text)
    err = _one_line(capsys, ["sample", str(run), "--num", "1", "--out", str(run / "s.png")])
    assert str(run / "model.json") in err and named in err


def test_a_metrics_line_with_a_non_numeric_step_is_skipped_with_a_warning(run):
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": "four", "loss": 0.1}\n')
    with pytest.warns(UserWarning, match="not a record with an integer 'step'"):
        steps = [r["step"] for r in read_metrics(run)]
    assert "four" not in steps and 4 in steps
    with pytest.warns(UserWarning, match="metrics.jsonl"):
        trim_metrics(run, 4)
    assert '"four"' not in (run / "metrics.jsonl").read_text()
    write_report(run)
