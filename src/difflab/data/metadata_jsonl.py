"""diffusers' image folder for text-to-image (the `datasets` ImageFolder convention), read
without the `datasets` library: a `metadata.jsonl` of one JSON object per line, its
`file_name` an image path relative to the file's folder and its caption in the column
data.caption_column (a string, or a list of strings: one is chosen per epoch).

    <root>/<split>/metadata.jsonl  (when present)   or   <root>/metadata.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

from difflab.core.errors import DataError
from difflab.data.captioned import CAPTION_LAYOUTS, CaptionEntry, CaptionLayout, CaptionOptions

METADATA = "metadata.jsonl"


def metadata_file(root: Path, split: str) -> Path:
    in_split = root / split / METADATA
    return in_split if in_split.is_file() else root / METADATA


def parse_line(line: str, column: str) -> tuple[str, tuple[str, ...]]:
    """(file_name, captions) of one metadata line; ValueError saying what is wrong."""
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError(f"a JSON object expected, got {type(row).__name__}")
    name = row.get("file_name")
    if not isinstance(name, str):
        raise ValueError(f"'file_name' must be a string, got {name!r}")
    if column not in row:
        raise ValueError(f"no caption column {column!r} (data.caption_column)")
    text = row[column]
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(
            f"caption column {column!r} must be a string or a list of strings, got {text!r}"
        )
    return name, tuple(t.strip() for t in texts)


def read_metadata(root: str, options: CaptionOptions) -> list[CaptionEntry]:
    """The entries of a metadata.jsonl in file order; a DataError naming file and line."""
    file = metadata_file(Path(root).expanduser(), options.split)
    if not file.is_file():
        raise DataError(f"image folder metadata not found: {file} (under data.root)")
    entries = []
    with open(file, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                name, captions = parse_line(line, options.caption_column)
            except ValueError as err:  # json.JSONDecodeError is a ValueError
                raise DataError(f"{file} line {number}: {err}") from err
            entries.append(CaptionEntry(file.parent / name, captions))
    return entries


def _is_image_folder(root: str) -> bool:
    folder = Path(root).expanduser()
    return (folder / METADATA).is_file() or any(folder.glob(f"*/{METADATA}"))


CAPTION_LAYOUTS.register("metadata-jsonl")(
    CaptionLayout(_is_image_folder, read_metadata, f"{METADATA} with file_name and a caption")
)
