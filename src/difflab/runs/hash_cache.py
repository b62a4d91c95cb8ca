"""sha256 of large files that seldom change (a pretrained UNet's weights), remembered across
processes in `cache_root()/file-sha256.json`.

An entry is keyed by the file's resolved path and holds its stamp (device, inode, size,
st_mtime_ns, st_ctime_ns) with the digest: a stat with the same stamp returns the digest
without reading the file, any other is a miss that hashes the file again. A file whose mtime or
ctime is within SETTLE_NS of the hashing is not remembered (a second change in the same
timestamp tick would keep its stamp), so any later change of a remembered file, even one that
sets its mtime back (os.utime), gives it a new ctime. Forging the ctime (the system clock, the
raw device) or corruption below the file system passes unseen: both are out of scope. A cache
file that cannot be read or parsed counts as empty and is rewritten; one that cannot be written
is left as it is, with a warning: the cache never fails a run.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from time import time_ns

from difflab.core.errors import RunFileError
from difflab.core.hashing import file_sha256
from difflab.evaluation.classifier_cache import cache_root
from difflab.runs.files import write_text_atomic

CACHE_NAME = "file-sha256.json"
VERSION = 1
SETTLE_NS = 10 * 10**9  # files changed since are hashed every time (FAT's 2 s ticks, NFS skew)
MAX_ENTRIES = 256  # the oldest entries go first
_SHA256 = re.compile(r"[0-9a-f]{64}")


def cache_file() -> Path:
    """Where the cache lives: file-sha256.json under difflab's cache root ($DIFFLAB_CACHE)."""
    return cache_root() / CACHE_NAME


def cached_sha256(path: Path) -> str:
    """file_sha256(path), from the cache when path's stamp is the one recorded with it;
    OSError when path cannot be read."""
    key = str(path.resolve())
    stamp = _stamp(os.stat(key))
    entry = read_cache(cache_file()).get(key)
    if entry is not None and entry["stamp"] == stamp:
        return entry["sha256"]
    digest = file_sha256(path)
    settled = time_ns() - max(stamp[3:]) > SETTLE_NS
    if settled and _stamp(os.stat(key)) == stamp:  # not rewritten while it was read
        _remember(key, {"stamp": stamp, "sha256": digest})
    return digest


def _stamp(stat: os.stat_result) -> list[int]:
    """What a change of the file's bytes changes: [device, inode, size, mtime_ns, ctime_ns]."""
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def read_cache(file: Path) -> dict[str, dict]:
    """The cache's well-formed entries (path -> {"stamp", "sha256"}); {} for a missing,
    unreadable or malformed file."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        entries = data["files"] if data["version"] == VERSION else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if _well_formed(v)}


def _well_formed(entry: object) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        return False
    stamp = entry.get("stamp")
    ints = isinstance(stamp, list) and all(type(v) is int for v in stamp)
    return ints and len(stamp) == 5 and _SHA256.fullmatch(entry["sha256"]) is not None


def _remember(key: str, entry: dict) -> None:
    """Add entry to the cache file as it is now (another process may have added to it), keeping
    the newest MAX_ENTRIES; a cache that cannot be written stays as it was, with a warning."""
    file = cache_file()
    entries = read_cache(file)
    entries.pop(key, None)
    entries[key] = entry
    kept = dict(list(entries.items())[-MAX_ENTRIES:])
    text = json.dumps({"version": VERSION, "files": kept}, indent=1)
    try:
        write_text_atomic(file, text)
    except RunFileError as err:
        warnings.warn(f"{err}: the file hash cache stays as it was", stacklevel=3)
