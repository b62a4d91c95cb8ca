"""`difflab` command line: one line per error, non-zero exit, no traceback; one line per
warning (`difflab: warning: ...`), each once."""

from __future__ import annotations

import sys

from difflab.cli.cpu_threads import apply_defaults
from difflab.core.errors import DifflabError


def main(argv: list[str] | None = None) -> int:
    if "torch" not in sys.modules:  # OpenMP reads its variables once, when torch loads
        apply_defaults()
    # imported after the thread defaults are set: they load torch
    from difflab.cli.commands import run
    from difflab.cli.warning_lines import warning_lines

    try:
        with warning_lines():
            return run(sys.argv[1:] if argv is None else argv)
    except DifflabError as err:
        one_line = " ".join(str(err).splitlines())  # a YAML error or a key may hold newlines
        print(f"difflab: error: {one_line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("difflab: interrupted", file=sys.stderr)
        return 130
