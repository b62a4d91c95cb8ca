"""A small inline SVG line chart of one metric over step, for the run's report.html: no
JavaScript, no library, only points, an axis box and the extreme values as text."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT = 420, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 12, 10, 28


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
    y_of = _scale(min(values), max(values), HEIGHT - PAD_BOTTOM, PAD_TOP)
    coords = " ".join(f"{x_of(s):.1f},{y_of(v):.1f}" for s, v in _thinned(points, x_of))
    line = f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{coords}"/>'
    return _svg(title + _frame() + _labels(steps, values) + line)


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


def _labels(steps: list[float], values: list[float]) -> str:
    """The value range on the left, the step range below."""
    bottom, right = HEIGHT - PAD_BOTTOM, WIDTH - PAD_RIGHT
    return "".join(
        (
            _text(PAD_LEFT - 4, PAD_TOP + 10, _number(max(values)), "end"),
            _text(PAD_LEFT - 4, bottom, _number(min(values)), "end"),
            _text(PAD_LEFT, bottom + 16, f"step {int(min(steps))}", "start"),
            _text(right, bottom + 16, f"step {int(max(steps))}", "end"),
        )
    )


def _text(x: float, y: float, content: str, anchor: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11">'
        f"{escape(content)}</text>"
    )


def _number(value: float) -> str:
    return f"{value:.4g}"


def _svg(body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">{body}</svg>'
    )
