"""Slim checkpoints (runs/frozen.py) on a two-layer network whose first layer is frozen and read
from a safetensors file: what is saved, the record that travels with it, loading over the
rebuilt frozen part (plain and through load_full_state, the sharded path's loader), and the
one-line refusals of a changed, missing or unrecorded frozen part."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from difflab.core.errors import CheckpointError
from difflab.parallel.sharding import load_full_state
from difflab.runs.checkpoint import load_checkpoint, save_checkpoint
from difflab.runs.frozen import FROZEN_KEY, declare_frozen, load_trained, slim_state

BASE = "base.safetensors"


class Net(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.base = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)
        self.register_buffer("seen", torch.zeros(()))


def build(folder, seed: int) -> Net:
    """The network with its base read from folder/base.safetensors and frozen; head from seed."""
    net = Net(seed)
    net.base.load_state_dict(load_file(folder / BASE))
    net.base.requires_grad_(False)
    return declare_frozen(net, folder, (BASE,))


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    save_file(nn.Linear(3, 3).state_dict(), tmp_path / BASE)
    return tmp_path


def saved(folder, tmp_path):
    """A trained network (head and buffer moved) and its slim checkpoint's model Weights."""
    net = build(folder, seed=1)
    with torch.no_grad():
        net.head.weight.add_(1.0)
        net.seen.fill_(5.0)
    tensors, metadata = slim_state(net, net.state_dict())
    path = save_checkpoint(
        tmp_path / "ckpts", 1, model=tensors, ema=tensors, state={}, keep=1, metadata=metadata
    )
    return net, load_checkpoint(path).weights("model")


def test_only_the_trained_tensors_and_buffers_are_saved_with_a_record(folder, tmp_path):
    _, weights = saved(folder, tmp_path)
    assert weights.tensors.keys() == {"head.weight", "head.bias", "seen"}
    record = json.loads(weights.metadata[FROZEN_KEY])
    assert record["folder"] == str(folder) and record["tensors"] == 2
    ema = load_checkpoint(weights.file.parent).weights("ema")
    assert ema.metadata == weights.metadata


def test_a_network_without_a_frozen_part_saves_everything():
    net = Net(0)
    tensors, metadata = slim_state(net, net.state_dict())
    assert tensors.keys() == net.state_dict().keys() and metadata == {}


@pytest.mark.parametrize("loader", ["load_trained", "load_full_state"])
def test_loading_over_the_rebuilt_frozen_part_gives_the_trained_network(folder, tmp_path, loader):
    net, weights = saved(folder, tmp_path)
    fresh = build(folder, seed=2)  # another head: every saved tensor must land
    if loader == "load_trained":
        load_trained(fresh, *weights)
    else:
        load_full_state(fresh, weights.tensors, strict=False)
    expected = net.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in fresh.state_dict().items())


def test_a_changed_frozen_file_is_refused_naming_the_folder(folder, tmp_path):
    """Same names and shapes, one weight moved by 1e-3 before the network is rebuilt."""
    _, weights = saved(folder, tmp_path)
    changed = load_file(folder / BASE)
    save_file({**changed, "weight": changed["weight"] + 1e-3}, folder / BASE)
    with pytest.raises(CheckpointError, match=rf"frozen weights \['{BASE}'\] in {folder} differ"):
        load_trained(build(folder, seed=2), *weights)


def test_a_missing_frozen_file_is_refused_naming_it(folder):
    net = Net(0).requires_grad_(False)
    (folder / BASE).unlink()
    with pytest.raises(
        CheckpointError, match=f"cannot read the frozen weights file {folder / BASE}"
    ):
        declare_frozen(net, folder, (BASE,))


def test_a_slim_state_for_a_network_without_that_frozen_part_is_refused(folder, tmp_path):
    _, weights = saved(folder, tmp_path)
    with pytest.raises(CheckpointError, match="differs in names or shapes"):
        load_trained(Net(0), *weights)
    with pytest.raises(CheckpointError, match=f"{weights.file} has an unreadable"):
        load_trained(build(folder, 2), weights.tensors, {FROZEN_KEY: "{"}, weights.file)
