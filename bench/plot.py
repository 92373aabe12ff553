"""A small hand-written SVG line plot (log-log panels side by side), so the benchmark needs no
plotting library. Each point is a median with its interquartile range as an error bar."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from bench.common import Series, fmt_time

__all__ = ["Panel", "svg", "write_svg"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
PANEL_W, PANEL_H = 470, 380
LEFT, RIGHT, TOP, BOTTOM = 70, 15, 40, 55


@dataclass
class Panel:
    """One log-log panel: ``series`` of ``(x, Stat)`` points; ``x_label`` formats x ticks."""

    title: str
    x_title: str
    series: Sequence[Series]
    x_label: Callable[[float], str] = lambda x: f"{x:g}"


def _decades(lo: float, hi: float) -> tuple[int, int]:
    return math.floor(math.log10(lo)), math.ceil(math.log10(hi))


def _panel(p: Panel, ox: float) -> list[str]:
    pts = [(x, s) for ser in p.series for x, s in ser.points]
    if not pts:
        return []
    xs = sorted({x for x, _ in pts})
    x0, x1 = math.log10(xs[0]), math.log10(xs[-1])
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (x1 - x0) * 0.05
    x0, x1 = x0 - pad, x1 + pad
    y0, y1 = _decades(min(s.q1 for _, s in pts), max(s.q3 for _, s in pts))
    if y1 == y0:
        y1 += 1
    w = PANEL_W - LEFT - RIGHT
    h = PANEL_H - TOP - BOTTOM

    def X(x: float) -> float:
        return ox + LEFT + (math.log10(x) - x0) / (x1 - x0) * w

    def Y(y: float) -> float:
        return TOP + h - (math.log10(y) - y0) / (y1 - y0) * h

    out = [f'<text x="{ox + PANEL_W / 2:.1f}" y="22" text-anchor="middle" '
           f'font-size="14" font-weight="bold">{escape(p.title)}</text>',
           f'<rect x="{ox + LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" '
           f'stroke="#444"/>']
    for d in range(y0, y1 + 1):
        y = Y(10.0 ** d)
        out.append(f'<line x1="{ox + LEFT}" y1="{y:.1f}" x2="{ox + LEFT + w}" y2="{y:.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{ox + LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{escape(fmt_time(10.0 ** d))}</text>')
    for x in xs:
        out.append(f'<line x1="{X(x):.1f}" y1="{TOP}" x2="{X(x):.1f}" y2="{TOP + h}" '
                   f'stroke="#eee"/>')
        out.append(f'<text x="{X(x):.1f}" y="{TOP + h + 16}" text-anchor="middle" '
                   f'font-size="11">{escape(p.x_label(x))}</text>')
    out.append(f'<text x="{ox + LEFT + w / 2:.1f}" y="{PANEL_H - 12}" text-anchor="middle" '
               f'font-size="12">{escape(p.x_title)}</text>')
    out.append(f'<text x="{ox + 16}" y="{TOP + h / 2:.1f}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 {ox + 16} {TOP + h / 2:.1f})">time per operation '
               f'(median, IQR)</text>')
    for i, ser in enumerate(p.series):
        color = COLORS[(i if ser.color is None else ser.color) % len(COLORS)]
        dash = ' stroke-dasharray="6 4"' if ser.dashed else ""
        line = " ".join(f"{X(x):.1f},{Y(s.median):.1f}" for x, s in ser.points)
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        for x, s in ser.points:
            out.append(f'<line x1="{X(x):.1f}" y1="{Y(s.q1):.1f}" x2="{X(x):.1f}" '
                       f'y2="{Y(s.q3):.1f}" stroke="{color}" stroke-width="1.5"/>')
            out.append(f'<circle cx="{X(x):.1f}" cy="{Y(s.median):.1f}" r="3" fill="{color}"/>')
        ly = TOP + 14 + 15 * i
        lx = ox + LEFT + 8
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 28}" y="{ly}" font-size="11">{escape(ser.label)}</text>')
    return out


def svg(panels: Sequence[Panel], caption: str = "") -> str:
    """The SVG document with the panels side by side and an optional caption line."""
    width = PANEL_W * len(panels)
    height = PANEL_H + (22 if caption else 0)
    body: list[str] = []
    for i, p in enumerate(panels):
        body += _panel(p, i * PANEL_W)
    if caption:
        body.append(f'<text x="{width / 2}" y="{PANEL_H + 14}" text-anchor="middle" '
                    f'font-size="11" fill="#555">{escape(caption)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")


def write_svg(path: str, panels: Sequence[Panel], caption: str = "") -> None:
    """Write :func:`svg` to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(svg(panels, caption))
