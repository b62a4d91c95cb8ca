"""WebDataset shards (`.tar` files of `KEY.jpg` + `KEY.txt` members), read by our own tar index.

data.root is a shard, a brace pattern (`shards/train-{000..099}.tar`), or a folder of shards.
Each (uncompressed) shard's headers are scanned once at the start with `tarfile`, and its
captions read; an image is then read by seeking to its member. The order is thus that of every
streamed dataset (training/stream.py): a permutation per epoch seeded by (seed, epoch), each
rank reading its part of each micro-batch, so resume is exact and every sample is seen once
per epoch over the ranks. The webdataset library streams shards through shuffle buffers split
over ranks and workers: its order depends on the worker count and cannot resume mid-epoch
without replaying it, so it is not used. Shards must be local files (seekable).

A sample with no readable caption, or an image that does not decode, is a counted skip; a shard
that is not a readable tar is a DataError naming it.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from difflab.core.errors import DataError
from difflab.data.captioned import CAPTION_LAYOUTS, CaptionEntry, CaptionLayout, CaptionOptions

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
BRACE = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class TarMember:
    """One member of a shard, read by seeking to its data."""

    shard: Path
    name: str
    offset: int
    size: int

    def read_bytes(self) -> bytes:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            return f.read(self.size)

    def __str__(self) -> str:
        return f"{self.shard}:{self.name}"


def expand_braces(pattern: str) -> list[str]:
    """The names of a brace pattern, in order: {000..012} (zero-padded ranges), {a,b}."""
    match = BRACE.search(pattern)
    if match is None:
        return [pattern]
    head, tail, body = pattern[: match.start()], pattern[match.end() :], match.group(1)
    span = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if span:
        first, last = span.groups()
        width = len(first)
        items = [f"{i:0{width}d}" for i in range(int(first), int(last) + 1)]
    else:
        items = body.split(",")
    return [name for item in items for name in expand_braces(head + item + tail)]


def shard_paths(root: str) -> list[Path]:
    """The shards of data.root: a folder's *.tar files (sorted), or the pattern's names."""
    folder = Path(root).expanduser()
    if folder.is_dir():
        shards = sorted(folder.glob("*.tar"))
    else:
        shards = [Path(name).expanduser() for name in expand_braces(root)]
    if not shards:
        raise DataError(f"no .tar shards in data folder {root} (data.root)")
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise DataError(f"WebDataset shard not found: {missing[0]} (data.root {root})")
    return shards


def sample_key(name: str) -> tuple[str, str]:
    """(key, extension) of a member name: the extension follows the basename's first dot."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def read_shard(shard: Path) -> list[CaptionEntry]:
    """The samples of one shard with an image, in member order; captions empty when the
    sample has no .txt or it is not UTF-8 (the item is then a counted skip)."""
    images: dict[str, TarMember] = {}
    texts: dict[str, str] = {}
    try:
        with tarfile.open(shard, "r:") as tar:
            for info in tar:
                key, ext = sample_key(info.name)
                if not info.isfile():
                    continue
                if ext in IMAGE_EXTENSIONS:
                    images[key] = TarMember(shard, info.name, info.offset_data, info.size)
                elif ext == "txt":
                    texts[key] = _text(tar.extractfile(info).read())
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"cannot read WebDataset shard {shard}: {err}") from err
    return [CaptionEntry(m, (texts[k],) if texts.get(k) else ()) for k, m in images.items()]


def _text(data: bytes) -> str:
    """A caption's text, or "" when it is not UTF-8."""
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return ""


def read_shards(root: str, options: CaptionOptions) -> list[CaptionEntry]:
    return [entry for shard in shard_paths(root) for entry in read_shard(shard)]


def _is_webdataset(root: str) -> bool:
    folder = Path(root).expanduser()
    if folder.is_dir():
        return any(folder.glob("*.tar"))
    return root.endswith(".tar")


CAPTION_LAYOUTS.register("webdataset")(
    CaptionLayout(_is_webdataset, read_shards, "*.tar shards or a brace pattern of them")
)
