"""difflab: train diffusion models, from a 2-minute CPU demo to multi-node GPU jobs."""

__version__ = "0.1.0"
