"""Open an image file's bytes with PIL, with errors that describe the file's content: PIL's
own message names the in-memory buffer (`<_io.BytesIO object at 0x...>`), not the file."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError


def open_image_bytes(data: bytes) -> Image.Image:
    """The (lazily decoded) PIL image of a file's bytes; ValueError when they are empty or no
    image format PIL knows. The caller names the file."""
    if not data:
        raise ValueError("empty file")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError(f"not an image PIL can identify (starts {data[:8]!r})") from None
