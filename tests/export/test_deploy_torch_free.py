"""difflab.deploy imports and samples with torch unimportable, and a missing extra is a
one-line error naming it."""

import subprocess
import sys

import pytest

from difflab.core.errors import ConfigError
from difflab.deploy import require

BLOCK_TORCH = """
import importlib.abc, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, BlockTorch())
import numpy as np
import difflab.deploy as deploy

grid = deploy.Grid(t=np.array([999.0, 499.0, -1.0]), network_t=np.array([999.0, 499.0, -1.0]),
                   alpha=np.array([0.01, 0.7, 1.0]), sigma=np.array([0.99995, 0.714, 0.0]))
x = np.ones((2, 1, 4, 4), np.float32)
out = deploy.draw(lambda feeds: 0.5 * feeds["x"], grid, x, parameterization="eps",
                  labels=np.array([1, -1]), guidance=2.0)
assert deploy.to_uint8(out).shape == (2, 1, 4, 4)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print("ok")
"""


def test_deploy_runs_without_torch():
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_blocker_blocks_torch():
    code = BLOCK_TORCH.split("import numpy")[0] + "import difflab.sampling.generation"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "torch is blocked" in done.stderr


def test_a_missing_extra_is_named():
    with pytest.raises(ConfigError, match=r"no_such_module_x is not installed.*difflab\[export\]"):
        require("no_such_module_x")
