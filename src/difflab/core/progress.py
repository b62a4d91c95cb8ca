"""Progress of long work on stderr: a tqdm bar on a terminal, otherwise (a pipe, a log file) a
line every LOG_INTERVAL seconds, so short work stays silent and long work is never mute."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between the lines of work whose stderr is not a terminal
FALLBACK_SIZE = (80, 24)  # columns, rows of a terminal that reports no size (a bare pty)


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(
    total: float | None,
    desc: str,
    *,
    unit: str = "it",
    initial: int = 0,
    enabled: bool = True,
    leave: bool = True,
) -> tqdm | LogLines:
    """A bar (or LogLines when stderr is not a terminal) over total units of work; disabled on
    every process of a torchrun job but rank 0 (RANK), which speaks for all."""
    if not enabled or os.environ.get("RANK", "0") != "0":
        return tqdm(total=total, disable=True)
    if not on_terminal():
        return LogLines(total, desc, unit=unit, initial=initial)
    sized = _columns() > 0  # tqdm draws nothing on a pty of 0 columns and 0 rows
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        leave=leave,
        dynamic_ncols=sized,
        ncols=None if sized else FALLBACK_SIZE[0],
        nrows=None if sized else FALLBACK_SIZE[1],
    )


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


class LogLines:
    """tqdm's update, set_postfix, set_description and close, written as whole lines
    `desc: n/total unit (p%), rate, postfix` every `interval` seconds (and when write_line is
    called), and once more at close when any was written."""

    def __init__(
        self,
        total: float | None,
        desc: str,
        *,
        unit: str = "it",
        initial: int = 0,
        interval: float | None = None,
    ) -> None:
        """interval: seconds between lines; None: LOG_INTERVAL."""
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval = LOG_INTERVAL if interval is None else interval
        self.postfix, self.written_n = "", None
        self.started = self.last = time.monotonic()
        self.start_n = initial

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self.write_line()

    def set_postfix(self, values: dict[str, Any] | None = None, **kwargs: Any) -> None:
        items = {**(values or {}), **kwargs}
        self.postfix = ", ".join(f"{key}={value}" for key, value in items.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def write_line(self) -> None:
        """Write the state now (and restart the interval)."""
        now = time.monotonic()
        rate = (self.n - self.start_n) / max(now - self.started, 1e-9)
        done = f"{self.n:g}" if self.total is None else f"{self.n:g}/{self.total:g}"
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        parts = [f"{self.desc}: {done} {self.unit}{share}", f"{rate:.3g} {self.unit}/s"]
        _line(", ".join(parts + ([self.postfix] if self.postfix else [])))
        self.last, self.written_n = now, self.n

    def close(self) -> None:
        """The last line, when any was written and the work went on since."""
        if self.written_n is not None and self.written_n != self.n:
            self.write_line()


@contextmanager
def phase(bar: tqdm | LogLines, what: str) -> Iterator[None]:
    """Show `what` while the body runs: as the bar's description on a terminal; in lines
    (`what...`, then `what: 12.3 s`) elsewhere; nothing when the bar is disabled."""
    if getattr(bar, "disable", False):
        yield
        return
    desc, started = bar.desc, time.monotonic()
    if isinstance(bar, LogLines):
        _line(f"{what}...")
    bar.set_description(what)
    try:
        yield
    finally:
        bar.set_description(desc)
        if isinstance(bar, LogLines):
            _line(f"{what}: {time.monotonic() - started:.1f} s")


def _line(text: str) -> None:
    print(text, file=sys.stderr)
    sys.stderr.flush()
