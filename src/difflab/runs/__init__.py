"""A run folder: checkpoints, RNG state, load_run/build_denoiser, metrics, reports, charts, W&B."""
