"""Seeded generators per step and per epoch, and the global RNG states saved in checkpoints.

All training randomness comes from generators seeded by (seed, step) or (seed, epoch), so a
resumed run draws exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

_STREAMS = {"step": 1, "epoch": 2, "validation": 3, "encode": 4}


def seeded_generator(seed: int, stream: str, index: int, device: torch.device) -> torch.Generator:
    """A generator for (seed, stream, index), e.g. ("step", 1234): independent of history."""
    mixed = (seed * 1_000_003 + _STREAMS[stream]) * 2_147_483_647 + index
    return torch.Generator(device).manual_seed(mixed % (2**63))


def capture_rng_state() -> dict[str, Any]:
    """Global python/numpy/torch RNG states, in types torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
