"""Networks that are not presets come from plug-ins, found by `model.network`.

A plug-in is a module under difflab/integrations/ with, for its network name:
`check_config(config)` (ConfigError naming a key the network cannot take),
`build_network(model: ModelConfig, in_channels, image_size) -> nn.Module`,
`open_training_run(config, *, trust_checkpoint) -> TrainingRun` (data, codec, condition),
`grid_draw(run: TrainingRun, rows) -> GridDraw` (the sample grids),
`prompt_images(run: LoadedRun, prompts, *, num, sample, seed, batch_size, device, size,
hints)` (uint8 images from text; `difflab sample --prompt`), `report_rows(config: dict) ->
[(name, value)]` and `conditioning(guidance) -> str` (report.html's kind of run); a network
that samples under control hints sets `CONTROLNET = True`; optionally `export_graphs(run:
LoadedRun, folder, *, fmt, precision, exporter, ...) -> (graphs, exporter used, export.json
fields)` (`difflab export`; without it the run cannot be exported). Imported on first use, so
no module below difflab.integrations imports it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from difflab.core.registry import Registry

# model.network -> the module of its plug-in
NETWORK_PLUGINS: Registry[str] = Registry("network plug-in")
NETWORK_PLUGINS.register("sd-unet")("difflab.integrations.stable_diffusion.plugin")
NETWORK_PLUGINS.register("sd-controlnet")("difflab.integrations.stable_diffusion.controlnet_plugin")
NETWORK_PLUGINS.register("unclip-prior")("difflab.integrations.unclip.prior_plugin")
NETWORK_PLUGINS.register("unclip-upsampler")("difflab.integrations.unclip.upsampler_plugin")


def network_plugin(network: str) -> ModuleType | None:
    """The plug-in module of model.network, None for a preset network (networks.NETWORKS)."""
    if network not in NETWORK_PLUGINS:
        return None
    return importlib.import_module(NETWORK_PLUGINS.get(network))
