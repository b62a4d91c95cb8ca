"""run/report.html: one self-contained page a person opens in a browser, offline.

It is a function of the run folder alone, so `difflab report RUN` writes the same page the
trainer writes (rank 0, at each checkpoint and at the end): the folder's name, what kind of run
it is, its status (steps in the newest complete checkpoint of train.steps, and the last step in
metrics.jsonl), an inline SVG chart of every numeric series of metrics.jsonl over step
(non-finite values skipped and counted), the evaluations of RUN/eval, a distilled run's rounds,
the sample grids (newest first, linked by relative path, scaled up by a whole factor with
pixelated rendering, an SD run's prompts beside them), the complete checkpoints, the
data-skipped records and the resolved config.yaml. Every text taken from the folder is
HTML-escaped. The file is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from PIL import Image

from difflab.config.bounded_yaml import load_bounded
from difflab.core.errors import ConfigError
from difflab.runs.checkpoint import complete_checkpoints
from difflab.runs.files import write_text_atomic
from difflab.runs.report_sections import distillation_rounds, evaluations, prompts, run_kind
from difflab.runs.svg_chart import line_chart

REPORT_FILE = "report.html"
NOT_CHARTED = ("step", "data_skipped")  # the x axis; data_skipped has its own section
_GRID = re.compile(r"^step-(\d+)-(.+)\.png$")
GRID_PX = 480  # a grid is shown scaled by the whole factor that brings its long side nearest
MAX_ZOOM = 8
_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px}"
    "figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}"
    "figcaption{font-size:13px}img{image-rendering:pixelated;max-width:100%;height:auto}"
    "pre{background:#f4f4f4;padding:1em;overflow:auto}td,th{padding:0 1em 0 0;text-align:left}"
)


@dataclass
class Series:
    """One metric over step: its finite (step, value) points, and how many of its records held
    no finite value (NaN, Inf, or null: every step of a log window skipped)."""

    name: str
    points: list[tuple[float, float]]
    skipped: int


def write_report(run_dir: Path | str, out: Path | str | None = None) -> Path:
    """Write the report of run_dir to out (default run_dir/report.html) atomically; return its
    path. ConfigError when run_dir holds no config.yaml (not a run folder)."""
    run_dir = Path(os.path.abspath(run_dir))  # `difflab report .` names the folder
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a difflab run folder (no config.yaml)")
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    return write_text_atomic(out, render_report(run_dir, out.parent))


def render_report(run_dir: Path, base: Path) -> str:
    """The page's HTML; image paths are relative to the folder `base` it is written to."""
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8", errors="replace")
    config = _parse_yaml(config_text)
    records = read_records(run_dir)
    name = run_dir.name  # digits-2, not its config's run.name digits
    parts = [
        f"<h1>difflab run {escape(name)}</h1>",
        run_kind(run_dir, config),
        _status(run_dir, config, records),
        "<h2>Metrics</h2>",
        _charts(numeric_series(records)),
        evaluations(run_dir),
        distillation_rounds(records),
        "<h2>Sample grids</h2>",
        prompts(config),
        _grids(run_dir, base),
        "<h2>Checkpoints</h2>",
        _checkpoints(run_dir),
        _data_skipped(records),
        "<h2>Config</h2>",
        f"<pre>{escape(config_text)}</pre>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(name)}: difflab run</title><style>{_STYLE}</style></head>\n"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl that are JSON objects with an integer step; a line cut
    short by a kill is left out."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def numeric_series(records: list[dict[str, Any]]) -> list[Series]:
    """Every key holding a number (bools excluded) in some record, but step and data_skipped,
    in the order first seen; its points sorted by step, its null values counted as skipped."""
    values: dict[str, list[tuple[int, float | None]]] = {}
    for record in records:
        for key, value in record.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if key not in NOT_CHARTED and (number or value is None):
                values.setdefault(key, []).append((record["step"], value))
    return [_series(key, pairs) for key, pairs in values.items() if _any_number(pairs)]


def _any_number(pairs: list[tuple[int, float | None]]) -> bool:
    return any(value is not None for _, value in pairs)


def _series(name: str, pairs: list[tuple[int, float | None]]) -> Series:
    finite = [(step, v) for step, v in pairs if v is not None and math.isfinite(v)]
    return Series(name, sorted(finite, key=lambda p: p[0]), len(pairs) - len(finite))


def _parse_yaml(text: str) -> dict[str, Any]:
    try:
        config = load_bounded(text, "the run's config.yaml")
    except (yaml.YAMLError, ConfigError):
        return {}
    return config if isinstance(config, dict) else {}


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    part = config.get(name)
    return part if isinstance(part, dict) else {}


def _status(run_dir: Path, config: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """Steps in the newest complete checkpoint of train.steps; the last step in the metrics."""
    steps = _section(config, "train").get("steps")
    checkpoints = complete_checkpoints(run_dir)
    saved = _checkpoint_step(checkpoints[-1]) if checkpoints else 0
    logged = max((r["step"] for r in records), default=0)
    finished = isinstance(steps, int) and saved >= steps
    state = "finished"
    if not finished:
        state = f"not finished (running, or stopped: a resume continues from step {saved})"
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f'<p>Folder <code>{escape(run_dir.name)}</code>. Status: <strong id="status">'
        f"{escape(state)}</strong>: {saved} of {escape(str(steps))} steps in the newest "
        f"checkpoint, metrics up to step {logged}. Report written {written}.</p>"
    )


def _checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix("step-"))


def _charts(series: list[Series]) -> str:
    if not series:
        return "<p>No metrics yet.</p>"
    return "\n".join(_chart(one) for one in series)


def _chart(one: Series) -> str:
    note = f"{len(one.points)} points"
    if one.points:
        note = f"last {one.points[-1][1]:.6g} at step {one.points[-1][0]}; " + note
    if one.skipped:
        note += f"; {one.skipped} non-finite or empty values skipped"
    return (
        f'<figure class="chart" data-series="{escape(one.name)}">'
        f"{line_chart(one.name, one.points)}"
        f"<figcaption><strong>{escape(one.name)}</strong>: {escape(note)}</figcaption></figure>"
    )


def _grids(run_dir: Path, base: Path) -> str:
    """The PNGs of run/samples: step grids newest first (EMA before raw), then the others."""
    folder = run_dir / "samples"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        return "<p>No sample grids yet.</p>"
    figures = [(_grid_order(path), _figure(path, base)) for path in files]
    return "\n".join(figure for _, figure in sorted(figures))


def _grid_order(path: Path) -> tuple[int, str]:
    match = _GRID.match(path.name)
    return (-int(match.group(1)), match.group(2)) if match else (1, path.name)


def _figure(path: Path, base: Path) -> str:
    match = _GRID.match(path.name)
    caption = f"step {int(match.group(1))}, {match.group(2)}" if match else path.stem
    src = quote(Path(os.path.relpath(path, base)).as_posix())
    return (
        f'<figure class="grid"><img src="{escape(src)}" alt="{escape(caption)}"{_size(path)}>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _size(path: Path) -> str:
    """width and height attributes: the PNG's size times a whole zoom (crisp when pixelated)
    that brings its long side nearest GRID_PX; none when the file is no readable image."""
    try:
        with Image.open(path) as image:
            w, h = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return ""
    zoom = min(MAX_ZOOM, max(1, round(GRID_PX / max(w, h))))
    return f' width="{w * zoom}" height="{h * zoom}"'


def _checkpoints(run_dir: Path) -> str:
    checkpoints = complete_checkpoints(run_dir)
    if not checkpoints:
        return "<p>No complete checkpoint yet.</p>"
    items = "".join(f'<li class="checkpoint">{escape(p.name)}</li>' for p in checkpoints)
    return f"<ul>{items}</ul>"


def _data_skipped(records: list[dict[str, Any]]) -> str:
    """The data_skipped records (unreadable training images), if any: step, count, files."""
    rows = [
        f"<tr><td>{escape(str(r['step']))}</td><td>{escape(str(r['data_skipped']))}</td>"
        f"<td>{escape(', '.join(map(str, r.get('data_skipped_files') or [])))}</td></tr>"
        for r in records
        if "data_skipped" in r
    ]
    if not rows:
        return ""
    head = "<tr><th>step</th><th>images skipped</th><th>files</th></tr>"
    return f"<h2>Skipped data</h2><table>{head}{''.join(rows)}</table>"
