"""The difflab command's CPU threads: one intra-op thread and sleeping OpenMP waiters unless
the environment says otherwise (bench/README.md, Threads)."""

import os
import subprocess
import sys

import pytest

from difflab.cli.cpu_threads import default_environment

# The command's entry, then what torch runs with.
PROBE = (
    "import os, sys; from difflab.cli.main import main; main(['recipes']); import torch; "
    "print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])"
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, "1 PASSIVE"), ({"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"}, "2 ACTIVE")],
)
def test_the_command_applies_the_defaults_before_torch_loads(environ, expected):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.splitlines()[-1] == expected


def test_an_empty_variable_counts_as_unset():
    assert default_environment({"OMP_NUM_THREADS": "", "OMP_WAIT_POLICY": "ACTIVE"}) == {
        "OMP_NUM_THREADS": "1"
    }
