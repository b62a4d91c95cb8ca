"""Warnings on the command line: `difflab: warning: MESSAGE`, one line, each message once.

Python's default shows `path.py:76: UserWarning: ...` and the source line, once per place that
warns, so one skipped image or one checkpoint fallback seen by three callers printed three
times. Warnings raised outside difflab keep Python's format (their place is useful there).
Only the formatting is replaced, so `warnings.catch_warnings(record=True)` still records."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import difflab

PACKAGE = str(Path(difflab.__file__).parent)


@contextmanager
def warning_lines() -> Iterator[None]:
    """Within the block, format difflab's warnings as one `difflab: warning:` line each, and a
    message already shown as nothing."""
    shown: set[str] = set()
    original = warnings.formatwarning

    def format_line(message, category, filename, lineno, line=None) -> str:
        if not str(filename).startswith(PACKAGE):
            return original(message, category, filename, lineno, line)
        text = " ".join(str(message).splitlines())
        if text in shown:
            return ""
        shown.add(text)
        return f"difflab: warning: {text}\n"

    warnings.formatwarning = format_line
    try:
        yield
    finally:
        warnings.formatwarning = original
