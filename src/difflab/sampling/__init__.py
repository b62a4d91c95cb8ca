"""Sampling a trained run: load it, generate with per-image seeds (sharded across ranks), write
images; a ControlNet run's hints from image files."""

from difflab.runs.load import LoadedRun, load_run
from difflab.sampling.generation import generate, sample_images
from difflab.sampling.images import image_grid, write_png_folder, write_png_grid
from difflab.sampling.sharded import generate_sharded

__all__ = [
    "LoadedRun",
    "generate",
    "generate_sharded",
    "image_grid",
    "load_run",
    "sample_images",
    "write_png_folder",
    "write_png_grid",
]
