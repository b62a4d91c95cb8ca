"""The frozen files' sha256 cache (runs/hash_cache.py): a hit reads nothing, any change of the
file's stamp (size, mtime, ctime, inode, device) hashes it again, a file changed within
SETTLE_NS is not remembered, a broken cache file is ignored and rewritten, and a slim
checkpoint still refuses a changed frozen file whose hash was cached."""

from __future__ import annotations

import hashlib
import json
import os
import time
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from difflab.core.errors import CheckpointError
from difflab.runs import hash_cache
from difflab.runs.checkpoint import load_checkpoint, save_checkpoint
from difflab.runs.frozen import declare_frozen, load_trained, slim_state
from difflab.runs.hash_cache import cache_file, cached_sha256, read_cache

DAY_NS = 86_400 * 10**9


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache file under tmp_path (`.file`), read as if a day had passed since the files were
    written (so they are settled and remembered); `.hashed`: the files read."""
    path = tmp_path / "cache" / hash_cache.CACHE_NAME
    monkeypatch.setattr(hash_cache, "cache_file", lambda: path)
    monkeypatch.setattr(hash_cache, "time_ns", lambda: time.time_ns() + DAY_NS)
    hashed = []
    reading = hash_cache.file_sha256
    monkeypatch.setattr(hash_cache, "file_sha256", lambda p: hashed.append(p) or reading(p))
    return SimpleNamespace(file=path, hashed=hashed)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"pretrained weights" * 1000)
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_cache_lives_under_difflabs_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFLAB_CACHE", str(tmp_path))
    assert cache_file() == tmp_path / "file-sha256.json"


def test_a_hit_returns_the_digest_without_reading_the_file(cache, data, monkeypatch):
    assert cached_sha256(data) == sha256(data)

    def refuse(path):
        raise AssertionError(f"{path} read on a cache hit")

    monkeypatch.setattr(hash_cache, "file_sha256", refuse)
    assert cached_sha256(data) == sha256(data)
    assert list(read_cache(cache.file)) == [str(data.resolve())]


@pytest.mark.parametrize("change", ["same size, new mtime", "new size"])
def test_a_rewritten_file_is_hashed_again(cache, data, change):
    before = cached_sha256(data)
    stat = data.stat()
    if change == "new size":
        data.write_bytes(data.read_bytes() + b"!")
    else:
        data.write_bytes(data.read_bytes().upper())
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cached_sha256(data) == sha256(data) != before
    assert len(cache.hashed) == 2


@pytest.mark.parametrize("field", ["device", "inode", "size", "mtime", "ctime"])
def test_a_cached_entry_whose_stamp_differs_in_any_field_is_a_miss(cache, data, field):
    """The entry as it would be for another version of the file (e.g. an mtime set back with
    os.utime, which moves the ctime): the file is read again and the entry replaced."""
    cached_sha256(data)
    entries = read_cache(cache.file)
    entry = entries[str(data.resolve())]
    stamp = list(entry["stamp"])
    stamp[["device", "inode", "size", "mtime", "ctime"].index(field)] += 1
    entry.update(stamp=stamp, sha256="0" * 64)
    cache.file.write_text(json.dumps({"version": 1, "files": entries}))
    assert cached_sha256(data) == sha256(data)
    assert (
        len(cache.hashed) == 2 and read_cache(cache.file)[str(data.resolve())]["sha256"] != "0" * 64
    )


@pytest.mark.parametrize("after", [0, 1])
def test_a_file_changed_within_the_settle_time_is_not_remembered(cache, data, after, monkeypatch):
    stat = data.stat()
    now = max(stat.st_mtime_ns, stat.st_ctime_ns) + hash_cache.SETTLE_NS + after
    monkeypatch.setattr(hash_cache, "time_ns", lambda: now)
    assert cached_sha256(data) == sha256(data)
    assert (str(data.resolve()) in read_cache(cache.file)) == bool(after)


@pytest.mark.parametrize(
    "text",
    [
        b"\xff\xfe not text",
        b'{"version": 1, "files": {',
        b"[]",
        b'{"version": 1, "files": []}',
        b'{"version": 99, "files": {}}',
        b'{"version": 1, "files": {"WEIGHTS": {"stamp": STAMP, "sha256": "not hex"}}}',
        b'{"version": 1, "files": {"WEIGHTS": 5}}',
        b'{"version": 1, "files": {"WEIGHTS": {"stamp": STAMP, "sha256": 5}}}',
    ],
)
def test_a_broken_cache_file_is_ignored_and_rewritten(cache, data, text):
    stamp = json.dumps(hash_cache._stamp(data.stat())).encode()
    text = text.replace(b"STAMP", stamp)
    cache.file.parent.mkdir()
    cache.file.write_bytes(text.replace(b"WEIGHTS", str(data.resolve()).encode()))
    assert cached_sha256(data) == sha256(data)
    assert read_cache(cache.file)[str(data.resolve())]["sha256"] == sha256(data)


def test_a_cache_that_cannot_be_read_or_written_is_left_alone(cache, data):
    cache.file.mkdir(parents=True)  # a folder where the file should be
    with pytest.warns(UserWarning, match=f"cannot write {cache.file}: .*stays as it was"):
        assert cached_sha256(data) == sha256(data)
    assert cache.file.is_dir()


def test_the_cache_keeps_the_newest_entries(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(hash_cache, "MAX_ENTRIES", 2)
    files = [tmp_path / f"{i}.bin" for i in range(3)]
    for i, file in enumerate(files):
        file.write_bytes(bytes([i]))
        cached_sha256(file)
    assert list(read_cache(cache.file)) == [str(f.resolve()) for f in files[1:]]


def test_a_slim_checkpoint_refuses_a_changed_frozen_file_whose_hash_was_cached(cache, tmp_path):
    """The frozen file's sha256 is cached when the network is built; then the file changes
    (same size, one weight moved by 1e-3, a new mtime) and the rebuilt network is refused."""
    torch.manual_seed(0)
    save_file(nn.Linear(3, 3).state_dict(), tmp_path / "base.safetensors")

    def build() -> nn.Module:
        net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
        net[0].load_state_dict(load_file(tmp_path / "base.safetensors"))
        net[0].requires_grad_(False)
        return declare_frozen(net, tmp_path, ("base.safetensors",))

    tensors, metadata = slim_state(net := build(), net.state_dict())
    path = save_checkpoint(
        tmp_path / "ckpts", 1, model=tensors, ema=tensors, state={}, keep=1, metadata=metadata
    )
    weights = load_checkpoint(path).weights("model")
    load_trained(build(), *weights)  # a hit: the file is hashed once
    assert len(cache.hashed) == 1

    base = tmp_path / "base.safetensors"
    stat, changed = base.stat(), load_file(base)
    save_file({**changed, "weight": changed["weight"] + 1e-3}, base)
    os.utime(base, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert base.stat().st_size == stat.st_size
    with pytest.raises(CheckpointError, match=r"frozen weights \['base.safetensors'\] .* differ"):
        load_trained(build(), *weights)


def test_a_file_rewritten_while_it_is_hashed_is_not_remembered(cache, data, monkeypatch):
    stat = data.stat()

    def read_then_rewrite(path):
        digest = sha256(path)
        data.write_bytes(b"another version")
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        return digest

    monkeypatch.setattr(hash_cache, "file_sha256", read_then_rewrite)
    cached_sha256(data)
    assert read_cache(cache.file) == {}
