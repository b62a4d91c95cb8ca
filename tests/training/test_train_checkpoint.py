import pytest
import torch

from difflab.core.errors import CheckpointError
from difflab.runs.checkpoint import MARKER, latest_checkpoint, load_checkpoint, save_checkpoint


def _save(run, step, net, keep=3):
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(2, 3)).sum().backward()
    opt.step()
    return save_checkpoint(
        run / "checkpoints",
        step,
        model=net.state_dict(),
        ema=net.state_dict(),
        state={"optimizer": opt.state_dict(), "rng": {"torch": torch.get_rng_state()}},
        keep=keep,
    )


def test_save_load_gives_identical_outputs(tmp_path):
    net = torch.nn.Linear(3, 2)
    path = _save(tmp_path, 5, net)
    assert path.name == "step-000005" and (path / MARKER).is_file()
    ckpt = load_checkpoint(path)
    other = torch.nn.Linear(3, 2)
    other.load_state_dict(ckpt.model)
    x = torch.randn(4, 3)
    assert torch.equal(other(x), net(x))
    assert ckpt.step == 5 and "exp_avg" in ckpt.state["optimizer"]["state"][0]


def test_folder_without_marker_is_ignored_and_old_ones_pruned(tmp_path):
    net = torch.nn.Linear(3, 2)
    for step in (1, 2, 3):
        _save(tmp_path, step, net, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-000002", "step-000003"]
    half = tmp_path / "checkpoints" / "step-000009"  # a save killed before its marker
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path).name == "step-000003"
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = _save(tmp_path, 1, torch.nn.Linear(3, 2))
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        load_checkpoint(path)
    (path / MARKER).write_text("not json")
    with pytest.raises(CheckpointError, match=MARKER):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
