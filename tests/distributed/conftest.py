"""Runs shared by the tests of this folder: each 2-process job is launched once."""

from pathlib import Path

import pytest
from dist_runs import DIT, train_one_process, train_two_processes


@pytest.fixture(scope="session")
def unet_runs(tmp_path_factory) -> dict[str, Path]:
    """The tiny UNet trained 4 steps by 1 process and by 2 (DDP)."""
    root = tmp_path_factory.mktemp("unet")
    return {
        "one": train_one_process(root / "one", []),
        "ddp": train_two_processes(root / "ddp", []),
    }


@pytest.fixture(scope="session")
def dit_runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny DiT trained 4 steps by 1 process and by 2 with sharded weights (FSDP2)."""
    root = tmp_path_factory.mktemp("dit")
    return {
        "one": train_one_process(root / "one", DIT),
        "fsdp": train_two_processes(root / "fsdp", [*DIT, "train.parallel=fsdp"]),
    }
