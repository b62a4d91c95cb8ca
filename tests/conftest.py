from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _hash_cache(tmp_path_factory, monkeypatch):
    """The frozen files' sha256 cache (runs/hash_cache.py) of in-process tests lives in the
    session's temporary folder, not the user's cache."""
    cache = tmp_path_factory.getbasetemp() / "file-sha256.json"
    monkeypatch.setattr("difflab.runs.hash_cache.cache_file", lambda: cache)
