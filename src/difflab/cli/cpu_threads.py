"""CPU threads of the `difflab` command, set before torch loads (OpenMP reads them then).

Idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE) instead of spinning on cores that other
processes need, and torch runs DEFAULT_THREADS intra-op threads: difflab's CPU models are
small, and on a loaded machine every extra thread waits for a core (bench/README.md, Threads).
OMP_NUM_THREADS and OMP_WAIT_POLICY set in the environment win; train.cpu_threads sets a
training run's count after that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_THREADS = 1


def default_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The OpenMP variables difflab sets: the defaults of those environ does not set."""
    defaults = {"OMP_NUM_THREADS": str(DEFAULT_THREADS), "OMP_WAIT_POLICY": "PASSIVE"}
    return {key: value for key, value in defaults.items() if not environ.get(key)}


def apply_defaults() -> None:
    """Set the defaults in os.environ; call before torch is imported, or they do nothing."""
    os.environ.update(default_environment(os.environ))
