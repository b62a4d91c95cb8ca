"""`difflab report RUN [--out PATH]`: (re)write a run's report.html from its folder."""

from __future__ import annotations

import argparse

from difflab.core.errors import ConfigError, RunFileError
from difflab.runs.files import require_run_folder
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
    require_run_folder(args.run)  # never writes report.html into a folder that is not a run
    try:
        out = write_report(args.run, args.out)
    except RunFileError:  # names the file and the free space
        raise
    except OSError as err:  # the run's files are unreadable
        raise ConfigError(f"cannot write the report of {args.run}: {err}") from None
    print(f"wrote {out}")
    return 0
