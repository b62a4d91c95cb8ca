"""A network saved as a folder: safetensors weights beside a JSON file of its format and
config, each written atomically (weights first, so a folder with the JSON is complete)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from difflab.core.file_modes import respect_umask


def save_module_folder(
    module: nn.Module, meta: dict[str, Any], folder: str | Path, weights: str, config: str
) -> None:
    """Write folder/weights (the module's state dict on the CPU), then folder/config (meta)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    tmp = folder / (weights + ".tmp")
    save_file(state, str(tmp))
    respect_umask(tmp)
    os.replace(tmp, folder / weights)
    tmp = folder / (config + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, folder / config)
