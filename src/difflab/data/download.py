"""Download one file from a list of mirrors, verify its md5, write it atomically.

The file appears at its final path only once complete and verified (a temporary file in the
same folder is renamed into place), so an interrupted or corrupt download leaves nothing that
a later run would mistake for data.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from difflab.core.errors import DataError
from difflab.core.file_modes import respect_umask

logger = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20


def download(
    urls: Sequence[str], dest: Path, *, md5: str | None = None, timeout: float = 60.0
) -> Path:
    """Fetch `dest` from the first of `urls` that serves it with checksum `md5` (None: any).

    Tries each mirror in order; raises DataError naming `dest` and every mirror's failure
    (a wrong checksum names the expected and the received md5) when none succeeds.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        logger.info("downloading %s to %s", url, dest)
        try:
            _fetch_verified(url, dest, md5, timeout)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
            failures.append(f"{url}: {exc}")
    raise DataError(f"could not download {dest.name} to {dest}: " + "; ".join(failures))


def _fetch_verified(url: str, dest: Path, md5: str | None, timeout: float) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            digest = _copy_with_md5(response, out)
        respect_umask(tmp)
        if md5 is not None and digest != md5.lower():
            raise ValueError(f"checksum mismatch for {dest.name}: expected md5 {md5}, got {digest}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_with_md5(source, out) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()
