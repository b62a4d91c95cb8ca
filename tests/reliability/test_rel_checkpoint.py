"""Damaged checkpoints (truncated, bit-flipped, half-written) give a CheckpointError naming the
file and resume falls back to the previous one; a full disk leaves the previous checkpoint
intact; a non-finite tensor is never saved."""

import errno
import json
from pathlib import Path

import pytest
import torch

from difflab.config.recipes import load_config
from difflab.core.errors import CheckpointError
from difflab.runs import checkpoint
from difflab.runs.checkpoint import MARKER, load_checkpoint, load_latest_checkpoint, save_checkpoint
from difflab.runs.metrics import read_metrics
from difflab.training.loop import train

TINY = str(Path(__file__).parents[1] / "training" / "tiny.yaml")
FAST = ["train.sample_every=0", "train.val_every=0", "train.batch_size=4"]


def _save(folder: Path, step: int, keep: int = 5) -> Path:
    torch.manual_seed(step)
    net = torch.nn.Linear(3, 2)
    return save_checkpoint(
        folder, step, model=net.state_dict(), ema=net.state_dict(), state={}, keep=keep
    )


def _flip_bit(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _rehash(path: Path) -> None:
    """Make the manifest match the files again, as a bug or an attacker could."""
    digests = {name: checkpoint.file_sha256(path / name) for name in checkpoint.FILES}
    (path / MARKER).write_text(json.dumps({"step": 1, "sha256": digests}))


@pytest.mark.parametrize("damage", [_flip_bit, _truncate])
@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors", "state.pt"])
def test_damaged_file_is_named_and_the_previous_checkpoint_loads(tmp_path, damage, name):
    for step in (1, 2, 3):
        _save(tmp_path / "checkpoints", step)
    bad = tmp_path / "checkpoints" / "step-000003" / name
    damage(bad)
    with pytest.raises(CheckpointError, match=f"{bad} is corrupt"):
        load_checkpoint(bad.parent)
    with pytest.warns(UserWarning, match="falling back to checkpoint .*step-000002") as caught:
        ckpt = load_latest_checkpoint(tmp_path)
    assert ckpt.step == 2 and str(bad) in str(caught[0].message)
    torch.manual_seed(2)
    expected = torch.nn.Linear(3, 2)
    assert torch.equal(ckpt.model["weight"], expected.weight.detach())


@pytest.mark.parametrize("name", ["model.safetensors", "state.pt"])
def test_damaged_file_with_a_matching_manifest_is_a_checkpoint_error(tmp_path, name):
    path = _save(tmp_path, 1)
    _truncate(path / name)
    _rehash(path)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint file {path / name}"):
        load_checkpoint(path)


def test_marker_must_hash_every_file(tmp_path):
    path = _save(tmp_path, 1)
    (path / MARKER).write_text(json.dumps({"step": 1, "sha256": {}}))
    with pytest.raises(CheckpointError, match="lists no hash for"):
        load_checkpoint(path)


def test_every_checkpoint_bad_is_an_error_naming_the_newest(tmp_path):
    for step in (1, 2):
        _flip_bit(_save(tmp_path / "checkpoints", step) / "state.pt")
    with pytest.raises(CheckpointError, match=r"\(2 tried\).*step-000002/state.pt is corrupt"):
        load_latest_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_latest_checkpoint(tmp_path / "empty")


def _disk_full_after(monkeypatch, good_writes: int) -> None:
    """save_file writes half a file then fails with ENOSPC, after `good_writes` good ones."""
    real, calls = checkpoint.save_file, []

    def write(tensors, file, metadata=None):
        calls.append(file)
        if len(calls) <= good_writes:
            return real(tensors, file, metadata=metadata)
        Path(file).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(checkpoint, "save_file", write)


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    _save(folder, 1, keep=1)
    _disk_full_after(monkeypatch, good_writes=0)
    with pytest.raises(CheckpointError) as err:
        _save(folder, 2, keep=1)
    message = str(err.value)
    assert f"cannot write checkpoint {folder / 'step-000002'}" in message
    assert "No space left on device" in message and "step-000001 is intact" in message
    assert sorted(p.name for p in folder.iterdir()) == ["step-000001"]  # no temporary folder
    assert load_latest_checkpoint(tmp_path).step == 1


def test_disk_full_while_training_stops_with_one_line_and_resumes(tmp_path, monkeypatch, capsys):
    from difflab.cli.main import main

    _disk_full_after(monkeypatch, good_writes=2)  # the checkpoint of step 2 is written
    args = ["train", TINY, f"run.root={tmp_path}", "train.steps=4", *FAST]
    assert main(args) == 2
    err = capsys.readouterr().err
    run_dir = tmp_path / "tiny"
    assert err.count("\n") == 1 and "No space left on device" in err
    assert f"{run_dir / 'checkpoints' / 'step-000004'}" in err
    monkeypatch.undo()
    resume = [f"run.root={tmp_path}", "train.steps=4", *FAST, f"train.resume={run_dir}"]
    train(load_config(TINY, resume), tensorboard=False)
    assert [r["step"] for r in read_metrics(run_dir) if "loss" in r] == [1, 2, 3, 4]
    assert load_latest_checkpoint(run_dir).step == 4


def test_non_finite_weights_are_never_saved(tmp_path):
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite model tensor 'weight'"):
        save_checkpoint(tmp_path, 1, model=net.state_dict(), ema={}, state={}, keep=1)
    assert list(tmp_path.iterdir()) == []


def test_resume_falls_back_past_a_corrupt_checkpoint_and_redoes_its_steps(tmp_path):
    common = [f"run.root={tmp_path}", "train.steps=6", *FAST]
    run_dir = train(load_config(TINY, common), tensorboard=False, stop_at=4)
    first = [r["loss"] for r in read_metrics(run_dir) if "loss" in r]
    _flip_bit(run_dir / "checkpoints" / "step-000004" / "model.safetensors")
    config = load_config(TINY, [*common, f"train.resume={run_dir}"])
    with pytest.warns(UserWarning, match="step-000004/model.safetensors is corrupt"):
        train(config, tensorboard=False)
    records = [r for r in read_metrics(run_dir) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]  # 3, 4 logged once, redone
    assert [r["loss"] for r in records[:4]] == first  # and bit for bit the same


def test_stale_temporary_folder_is_removed_by_the_next_save(tmp_path):
    folder = tmp_path / "checkpoints"
    stale = folder / ".tmp-step-000007"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    _save(folder, 8)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000008"]
