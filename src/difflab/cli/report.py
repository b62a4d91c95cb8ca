"""`difflab report RUN [--out PATH]`: (re)write a run's report.html from its folder."""

from __future__ import annotations

import argparse

from difflab.core.errors import ConfigError
from difflab.runs.report import write_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write a run's report.html (status, metric charts, grids, checkpoints, config)",
        description="Write the self-contained HTML report of a run folder, the page the trainer "
        "writes at each checkpoint: status, a chart of every metric, the sample grids, the "
        "complete checkpoints, skipped data and the resolved config. Opens offline.",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--out", help="output file (default: RUN/report.html)")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        out = write_report(args.run, args.out)
    except OSError as err:  # e.g. --out is a folder, or the run's files are unreadable
        raise ConfigError(f"cannot write the report of {args.run}: {err}") from None
    print(f"wrote {out}")
    return 0
