"""`difflab` command line: one line per error, non-zero exit, no traceback."""

from __future__ import annotations

import sys

from difflab.cli.commands import run
from difflab.core.errors import DifflabError


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except DifflabError as err:
        one_line = " ".join(str(err).splitlines())  # a YAML error or a key may hold newlines
        print(f"difflab: error: {one_line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("difflab: interrupted", file=sys.stderr)
        return 130
