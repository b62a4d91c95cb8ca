"""A small inline SVG line chart of one metric over step, for the run's report.html: no
JavaScript, no library, only points, an axis box, round-number ticks with faint grid lines,
and a flat strip for a series that never changes (a constant lr, a count that stays 0)."""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 420, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 12, 10, 28
FLAT_HEIGHT = 36  # a constant series: one line and its value, not a full chart
TICKS = 5  # about this many ticks per axis


def line_chart(name: str, points: list[tuple[float, float]]) -> str:
    """An <svg> of (step, value) points, all finite, in step order: a polyline for two or more,
    a dot and its value for one, a note for none. name is the chart's accessible title."""
    title = f"<title>{escape(name)}</title>"
    if not points:
        return _svg(title + _text(WIDTH / 2, HEIGHT / 2, "no finite values", "middle"))
    if len(points) == 1:
        (step, value), x, y = points[0], WIDTH / 2, HEIGHT / 2
        return _svg(
            f'{title}<circle cx="{x}" cy="{y}" r="3"/>'
            + _text(x, y - 8, _number(value), "middle")
            + _text(x, y + 18, f"step {int(step)}", "middle")
        )
    steps, values = [p[0] for p in points], [p[1] for p in points]
    x_of = _scale(min(steps), max(steps), PAD_LEFT, WIDTH - PAD_RIGHT)
    if min(values) == max(values):
        return _flat(title, points, x_of)
    y_of = _scale(min(values), max(values), HEIGHT - PAD_BOTTOM, PAD_TOP)
    coords = " ".join(f"{x_of(s):.1f},{y_of(v):.1f}" for s, v in _thinned(points, x_of))
    line = f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{coords}"/>'
    axes = _x_ticks(min(steps), max(steps), x_of) + _y_ticks(min(values), max(values), y_of)
    return _svg(title + _frame() + axes + line)


def _flat(title: str, points: list[tuple[float, float]], x_of) -> str:
    """A strip FLAT_HEIGHT high: the constant value, a line over the steps, the step range."""
    y, (first, value), last = FLAT_HEIGHT / 2, points[0], points[-1][0]
    coords = " ".join(f"{x_of(s):.1f},{y:.1f}" for s, _ in _thinned(points, x_of))
    return _svg(
        title
        + _text(PAD_LEFT - 4, y + 4, _number(value), "end")
        + f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{coords}"/>'
        + _text(PAD_LEFT, FLAT_HEIGHT - 2, f"step {int(first)}", "start")
        + _text(WIDTH - PAD_RIGHT, FLAT_HEIGHT - 2, f"step {int(last)}", "end"),
        height=FLAT_HEIGHT,
    )


def _thinned(points: list[tuple[float, float]], x_of) -> list[tuple[float, float]]:
    """The first, lowest, highest and last point of each pixel column, in step order, where
    there are more points than that: the same drawn line, and a page of some kB for a run of a
    million logged steps (each point would cost about 14 bytes)."""
    if len(points) <= 4 * (WIDTH - PAD_LEFT - PAD_RIGHT):
        return points
    columns: dict[int, list[tuple[float, float]]] = {}
    for point in points:
        columns.setdefault(round(x_of(point[0])), []).append(point)
    kept = []
    for column in columns.values():
        low, high = min(column, key=lambda p: p[1]), max(column, key=lambda p: p[1])
        kept.extend(sorted({column[0], low, high, column[-1]}))
    return kept


def _scale(lo: float, hi: float, out_lo: float, out_hi: float):
    """The affine map [lo, hi] -> [out_lo, out_hi]; a zero-width range maps to its middle."""
    if hi == lo:
        return lambda _: (out_lo + out_hi) / 2
    return lambda u: out_lo + (u - lo) * (out_hi - out_lo) / (hi - lo)


def _frame() -> str:
    w, h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    return (
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{w}" height="{h}" fill="none" stroke="#bbb"/>'
    )


def tick_step(lo: float, hi: float, count: int = TICKS) -> float:
    """The round step (1, 2, 2.5 or 5 x 10^k) that cuts [lo, hi] into about count parts."""
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))


def nice_ticks(lo: float, hi: float, count: int = TICKS) -> list[float]:
    """The multiples of tick_step(lo, hi) in [lo, hi] (hi > lo)."""
    step = tick_step(lo, hi, count)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """value with as many decimals as step needs, so neighbouring ticks read differently."""
    if abs(value) < step * 1e-6:
        return "0"
    if not 1e-4 <= max(abs(value), step) < 1e6:
        digits = math.floor(math.log10(abs(value))) - math.floor(math.log10(step)) + 2
        return f"{value:.{max(digits, 1)}g}"
    power = math.floor(math.log10(step) + 1e-9)
    decimals = max(0, -power + (round(step / 10.0**power, 6) == 2.5))  # 2.5: one more
    return f"{value:.{decimals}f}"


def _x_ticks(lo: float, hi: float, x_of) -> str:
    """Step ticks below the frame, whole steps only."""
    bottom = HEIGHT - PAD_BOTTOM
    ticks = [t for t in nice_ticks(lo, hi) if t == int(t)] if hi - lo >= 1 else [lo, hi]
    return _text(PAD_LEFT - 4, bottom + 16, "step", "end") + "".join(
        f'<line x1="{x_of(t):.1f}" y1="{bottom}" x2="{x_of(t):.1f}" y2="{bottom + 4}" '
        f'stroke="#888"/>' + _text(x_of(t), bottom + 16, f"{int(t)}", "middle")
        for t in ticks
    )


def _y_ticks(lo: float, hi: float, y_of) -> str:
    """Value ticks left of the frame, each with a faint grid line across it."""
    right, step = WIDTH - PAD_RIGHT, tick_step(lo, hi)
    return "".join(
        f'<line x1="{PAD_LEFT}" y1="{y_of(t):.1f}" x2="{right}" y2="{y_of(t):.1f}" '
        f'stroke="#eee"/>' + _text(PAD_LEFT - 4, y_of(t) + 4, tick_label(t, step), "end")
        for t in nice_ticks(lo, hi)
    )


def _text(x: float, y: float, content: str, anchor: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11">'
        f"{escape(content)}</text>"
    )


def _number(value: float) -> str:
    return f"{value:.4g}"


def _svg(body: str, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img">{body}</svg>'
    )
