"""A network saved as a folder: safetensors weights beside a JSON file of its format and
config, each written atomically (weights first, so a folder with the JSON is complete)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from difflab.core.file_modes import save_weights


def save_module_folder(
    module: nn.Module, meta: dict[str, Any], folder: str | Path, weights: str, config: str
) -> None:
    """Write folder/weights (the module's state dict on the CPU), then folder/config (meta)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(module, folder / weights)
    tmp = folder / (config + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, folder / config)
