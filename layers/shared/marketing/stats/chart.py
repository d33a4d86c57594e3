"""A small SVG bar chart of one daily series, drawn here: no chart library for a few rectangles."""

from __future__ import annotations

from xml.sax.saxutils import escape

WIDTH, HEIGHT, PAD, AXIS = 640, 240, 40, 20


def bar_chart(title: str, points: list[tuple[str, int]]) -> str:
    """`points` are (label, value) in order; labels show at the first, middle and last bar."""
    top = max([v for _, v in points] + [1])
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD - AXIS
    step = inner_w / max(len(points), 1)
    bars, labels = [], []
    for i, (label, value) in enumerate(points):
        h = inner_h * value / top
        x, y = PAD + i * step, PAD + inner_h - h
        bars.append(f'<rect x="{x + step * 0.1:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}">'
                    f"<title>{escape(label)}: {value}</title></rect>")
        if i in {0, len(points) // 2, len(points) - 1}:
            labels.append(f'<text x="{x + step / 2:.1f}" y="{HEIGHT - PAD + 4}" text-anchor="middle">'
                          f"{escape(label)}</text>")
    baseline = PAD + inner_h
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11" role="img">'
        f"<title>{escape(title)}</title>"
        f'<text x="{PAD}" y="{PAD - 16}" font-size="13" font-weight="bold">{escape(title)}</text>'
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{top}</text>'
        f'<text x="{PAD - 4}" y="{baseline}" text-anchor="end">0</text>'
        f'<line x1="{PAD}" y1="{baseline}" x2="{WIDTH - PAD}" y2="{baseline}" stroke="#888"/>'
        f'<g fill="#3b6fb6">{"".join(bars)}</g><g fill="#333">{"".join(labels)}</g></svg>'
    )
