"""Graceful stop on SIGTERM / SIGINT: the loop finishes its step, writes a checkpoint and
raises Interrupted, which the CLI prints as one line (exit status 128 + signal number).

The first signal sets a flag and says so on stderr at once (ACKNOWLEDGEMENT); the previous
handler is put back, so a second Ctrl-C (or SIGTERM) stops the process immediately as it would
have without difflab.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

from difflab.core.errors import DifflabError
from difflab.parallel.distributed import is_main

SIGNALS = (signal.SIGTERM, signal.SIGINT)
ACKNOWLEDGEMENT = (
    "difflab: {name}: stopping after this step (a sample grid or validation under way stops "
    "too), then writing a checkpoint; a second {name} stops at once without one"
)


class Interrupted(DifflabError):
    """Training stopped on a signal after writing a checkpoint it can resume from."""

    def __init__(
        self, signum: int, step: int, run_dir: Path, command: str = "difflab train"
    ) -> None:
        """command: the one that continues the run with --resume."""
        self.signum, self.step, self.run_dir = signum, step, run_dir
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} after step {step} with a checkpoint; continue with "
            f"`{command} --resume {run_dir}`"
        )

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class StopRequest:
    """A context that turns SIGTERM/SIGINT into `signum` (None until one arrives).

    Handlers are installed only in the main thread (Python allows no other) and restored on
    exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if is_main():  # os.write, not print: the signal may come inside a write to sys.stderr
            name = signal.Signals(signum).name
            os.write(2, (ACKNOWLEDGEMENT.format(name=name) + "\n").encode())

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
            for sig in SIGNALS:
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
