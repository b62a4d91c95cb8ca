"""The frozen files' sha256 (runs/hash_cache.py): hashing a large file against a cache hit.

    python bench/file_hash_cache.py [--gib 1] [--lookups 200]     # prints a markdown table

Writes a file of --gib GiB in the temporary folder (a random 1 MiB block repeated: sha256's
speed does not depend on the bytes), then times: file_sha256 with the file in the page cache;
again after the file's pages are dropped (posix_fadvise DONTNEED, so the bytes come from the
disk); cached_sha256's miss (hash plus writing the cache) and its hit (stat plus reading the
cache), with a cache in the temporary folder. The file is deleted at the end. The clock of
hash_cache is moved a day on, so the new file counts as settled (hashing SD's UNet the day
after downloading it). See bench/README.md ("Frozen files' sha256").
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from difflab.core.hashing import file_sha256
from difflab.runs import hash_cache

DAY_NS = 86_400 * 10**9


def write_file(path: Path, gib: float) -> int:
    """path of gib GiB, written and flushed to the disk; its size."""
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for _ in range(round(gib * 1024)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    return path.stat().st_size


def drop_pages(path: Path) -> None:
    """Evict path's (clean) pages from the page cache, so the next read is from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def measure(folder: Path, gib: float, lookups: int) -> list[tuple[str, float]]:
    """(row, seconds) for each way of getting the sha256 of one file of gib GiB."""
    data, cache = folder / "weights.bin", folder / "cache" / hash_cache.CACHE_NAME
    size = write_file(data, gib)
    rows = [("file_sha256, file in the page cache", timed(file_sha256, data)[0])]
    drop_pages(data)
    rows.append(("file_sha256, pages dropped (read from disk)", timed(file_sha256, data)[0]))
    later = mock.patch.object(hash_cache, "time_ns", lambda: time.time_ns() + DAY_NS)
    with later, mock.patch.object(hash_cache, "cache_file", lambda: cache):
        seconds, digest = timed(hash_cache.cached_sha256, data)
        rows.append(("cached_sha256, miss (hash + write the cache)", seconds))
        hits = [timed(hash_cache.cached_sha256, data) for _ in range(lookups)]
    assert all(d == digest for _, d in hits) and digest == file_sha256(data)
    rows.append(
        (f"cached_sha256, hit (median of {lookups})", statistics.median(t for t, _ in hits))
    )
    print(f"{size / 2**30:.2f} GiB file, load average {os.getloadavg()[0]:.2f}")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=float, default=1.0, help="size of the file (GiB)")
    p.add_argument("--lookups", type=int, default=200, help="cache hits timed")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="difflab-hash-") as folder:
        rows = measure(Path(folder), args.gib, args.lookups)
    print("| sha256 of the file | ms | GB/s read | hashing from the page cache / this |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        rate = f"{args.gib * 2**30 / seconds / 1e9:.2f}" if "hit" not in name else "-"
        print(f"| {name} | {seconds * 1e3:,.3f} | {rate} | {rows[0][1] / seconds:,.2f} |")


if __name__ == "__main__":
    main()
