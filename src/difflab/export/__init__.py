"""Export a trained run for deployment (`difflab export`): the denoiser network as one ONNX or
OpenVINO graph with a dynamic batch, a latent run's VAE decoder, and export.json, which
difflab.deploy samples from without torch."""

from difflab.export.manifest import check_fresh, deploy_grid
from difflab.export.run import FORMATS, PRECISIONS, export_run

__all__ = ["FORMATS", "PRECISIONS", "check_fresh", "deploy_grid", "export_run"]
