"""Frozen text and image encoders for unCLIP (the condition vectors): a packaged MiniLM, a
local CLIP folder, and difflab's own LiT image encoder. Each module registers its encoders."""

from difflab.encoders import clip_folder, lit_encoder, minilm  # noqa: F401  (registrations)
from difflab.encoders.image import IMAGE_ENCODERS, ImageEncoder, load_image_encoder
from difflab.encoders.text import TEXT_ENCODERS, TextEncoder, TextEncoding, load_text_encoder

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "ImageEncoder",
    "TextEncoder",
    "TextEncoding",
    "load_image_encoder",
    "load_text_encoder",
]
