"""The zoomed lane of a memory map: where the small reservations cluster, and a lane that
draws that window enlarged with every small segment labelled.

The window is the densest clump of shapes narrower than 2 px on their lane (shapes less than
3 px apart look like one mark). In the zoomed lane, a segment (or a run of touching segments
of one caller) too narrow to hold its name gets a label above the lane with a leader line to
it: names when they all fit on one row, else numbers with a key under the lane.
Complexity: O(shapes log shapes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from arena.render_axis import Axis, clip, human_size, range_text
from arena.render_draw import Shape, Svg, draw_lane, draw_scale, fan, text_w
from arena.render_layout import Layout
from arena.render_palette import NODE_EDGE, ink

__all__ = ["densest_clump", "zoom_window", "draw_zoom"]


def densest_clump(items: Sequence[tuple[int, int, float, float]], max_gap_px: float,
                  min_span: int, min_count: int = 3) -> tuple[int, int] | None:
    """The address window of the largest clump of small shapes: ``items`` are ``(start, end,
    x0, x1)`` on one lane; shapes less than ``max_gap_px`` apart on the lane form one clump
    (they look like one mark). Returns the clump's span (at least ``min_count`` shapes) widened
    by 5 % each side and to at least ``min_span`` bytes, or ``None``."""
    best: list[tuple[int, int, float, float]] = []
    clump: list[tuple[int, int, float, float]] = []
    reach = -math.inf
    for it in sorted(items, key=lambda t: t[2]):
        if clump and it[2] - reach > max_gap_px:
            if len(clump) > len(best):
                best = clump
            clump = []
        clump.append(it)
        reach = it[3] if len(clump) == 1 else max(reach, it[3])
    if len(clump) > len(best):
        best = clump
    if not best or len(best) < min_count:
        return None
    # Inside the clump, the shortest window holding at least half of its shapes (so that a
    # few larger neighbours do not squeeze the many small ones).
    best.sort()
    k = max(min(3, len(best)), (len(best) + 1) // 2)
    reach_end: list[int] = []
    for t in best:
        reach_end.append(t[1] if not reach_end else max(reach_end[-1], t[1]))
    s, e = min(((best[i][0], reach_end[i + k - 1]) for i in range(len(best) - k + 1)),
               key=lambda w: w[1] - w[0])
    pad = max((e - s) // 20, (min_span - (e - s)) // 2, 0)
    return max(s - pad, 0), e + pad


def zoom_window(lanes: dict[int, list[Shape]], axes: dict[int, Axis], map_w: float,
                named_only: bool, min_count: int = 3) -> tuple[int, int, int] | None:
    """``(start, end, nid)`` of the zoom: the lane whose densest clump of sub-2-px shapes
    (only shapes with a caller when ``named_only``; at least ``min_count`` of them) holds the
    most shapes, when that window takes less than an eighth of the lane. ``None`` when there
    is nothing to zoom on."""
    best: tuple[int, int, int, int] | None = None
    for n, shapes in lanes.items():
        ax = axes[n]
        small = [(s.start, s.end, ax.x(s.start), ax.x(s.end)) for s in shapes
                 if (s.caller or not named_only) and ax.x(s.end) - ax.x(s.start) < 2]
        window = densest_clump(small, 3.0, 64 << 10, min_count)
        if window is not None:
            count = sum(1 for s, e, _a, _b in small if window[0] <= s and e <= window[1])
            if best is None or count > best[2]:
                best = (window[0], window[1], count, n)
    if best is None:
        return None
    ws, we, _count, n = best
    ws, we = max(ws, axes[n].lo), min(we, axes[n].hi)
    if axes[n].x(we) - axes[n].x(ws) >= map_w / 8:
        return None
    return ws, we, n


def _groups(shapes: Sequence[Shape], axis: Axis, unnamed: bool
            ) -> tuple[list[tuple[float, float, str, int, int, int]], list[list[Any]]]:
    """Runs of touching shapes of one caller and fill, clipped to the axis (shapes without a
    caller only when ``unnamed``, as "reserved"): ``(x0, x1, name, start, end, count)`` of the
    runs too narrow to hold their name inside, and the runs wide enough for it (their name
    goes inside, once per run)."""
    out: list[list[Any]] = []   # x0, x1, name, start, end, count, fill, a member labelled
    for sh in sorted(shapes, key=lambda t: t.start):
        s, e = max(sh.start, axis.lo), min(sh.end, axis.hi)
        if s >= e or not (sh.caller or unnamed):
            continue
        name = sh.caller or "reserved"
        x0, x1 = axis.x(s), max(axis.x(e), axis.x(s) + 1.0)
        own = bool(sh.caller) and x1 - x0 >= text_w(sh.caller, 10) + 8
        if out and out[-1][2] == name and out[-1][6] == sh.fill and x0 - out[-1][1] < 1.5:
            g = out[-1]
            g[1], g[4], g[5], g[7] = max(g[1], x1), max(g[4], e), g[5] + 1, g[7] or own
        else:
            out.append([x0, x1, name, s, e, 1, sh.fill, own])
    fits = [g[1] - g[0] >= text_w(g[2], 10) + 8 for g in out]
    narrow = [(g[0], g[1], g[2], g[3], g[4], g[5]) for g, fit in zip(out, fits, strict=True)
              if not fit]
    return narrow, [g for g, fit in zip(out, fits, strict=True) if fit]


def _label_row(groups: Sequence[tuple[float, float, str, int, int, int]], width: float
               ) -> tuple[list[str], list[float], list[float]] | None:
    """Texts, widths and left edges of the labels of ``groups``: names if they fit on one
    row, else numbers; ``None`` if not even numbers fit."""
    for numbered in (False, True):
        texts = [str(i + 1) if numbered else g[2] for i, g in enumerate(groups)]
        widths = [text_w(t, 10) + (4 if numbered else 0) for t in texts]
        lefts = fan([((g[0] + g[1]) / 2, w) for g, w in zip(groups, widths, strict=True)], width,
                    gap=3.0 if numbered else 6.0)
        if lefts is not None:
            return texts, widths, lefts
    return None


def draw_zoom(g: Svg, lay: Layout, shapes: Sequence[Shape], window: tuple[int, int],
              axis: Axis, nid: int, left: float, map_w: float, lane_top: float, y: float,
              lane_h: float, heading: str = "the densest cluster of small reservations",
              label_unnamed: bool = True) -> float:
    """Mark ``window`` on node ``nid``'s lane (``axis``, top at ``lane_top``) with a dashed box
    and draw it enlarged from ``y``, small segments labelled (those without a caller only
    when ``label_unnamed``); returns the y below it."""
    ws, we = window
    x0, x1 = left + axis.x(ws), left + axis.x(we)
    if x1 - x0 < 6:
        x0, x1 = (x0 + x1) / 2 - 3, (x0 + x1) / 2 + 3
    g.add('<g id="zoom">')
    g.rect(x0, lane_top - 3, x1 - x0, lane_h + 6, "none", None,
           'stroke="#111" stroke-width="1.2" stroke-dasharray="3,2" class="zoom-mark"')
    spans = clip(lay.node_extents.get(nid, []), ws, we)
    zaxis = Axis(spans, map_w, 30.0, lo=ws, hi=we)
    factor = zaxis.scale / axis.scale if axis.scale and zaxis.scale else 0
    g.text(16, y + 10, f"Zoom ×{factor:,.0f} on {heading} (dashed box on node {nid}): "
           f"{range_text(ws, we - ws)}, {human_size(we - ws)}",
           size=13, weight="bold", extra='class="zoom-title"')
    groups, wide = _groups(shapes, zaxis, label_unnamed)
    row = _label_row(groups, map_w) if groups else None
    top = y + 20 + (26 if row else 0)
    edge = NODE_EDGE[nid % len(NODE_EDGE)]
    g.text(left - 10, top + 20, f"node {nid}", size=13, anchor="end", fill=edge, weight="bold")
    draw_lane(g, zaxis, nid, lay.by_node.get(nid, []), shapes, left, top, lane_h,
              f"zoom on node {nid}: {range_text(ws, we - ws)} {human_size(we - ws)}",
              inside=False)
    for gx0, gx1, name, s, e, count, fill, _own in wide:
        tip = f"{name}: {range_text(s, e - s)} {human_size(e - s)}" + (
            f", {count} reservations" if count > 1 else "")
        g.add(f'<text x="{left + (gx0 + gx1) / 2:.2f}" y="{top + lane_h / 2 + 3.5:.2f}" '
              f'font-size="10" text-anchor="middle" fill="{ink(fill)}" class="inside group" '
              f'pointer-events="none"><title>{_esc(tip)}</title>{_esc(name)}</text>')
    key: list[str] = []
    if row is not None:
        texts, widths, lefts = row
        for grp, text, w, lx in zip(groups, texts, widths, lefts, strict=True):
            gx0, gx1, name, s, e, count = grp
            xc, lc = left + (gx0 + gx1) / 2, left + lx + w / 2
            tip = f"{name}: {range_text(s, e - s)} {human_size(e - s)}" + (
                f", {count} reservations" if count > 1 else "")
            g.line(lc, top - 9, xc, top, stroke="#777", width=0.7, extra='class="leader"')
            g.add(f'<text x="{lc:.2f}" y="{top - 12:.2f}" font-size="10" text-anchor="middle" '
                  f'fill="#222" class="segment-label"><title>{_esc(tip)}</title>'
                  f'{_esc(text)}</text>')
            if text != name:
                key.append(f"{text}: {tip}")
    y = top + lane_h + draw_scale(g, zaxis, left, top + lane_h, 110)
    if key:
        cols = 3
        col_w = (map_w + left - 16) / cols
        for i, k in enumerate(key):
            cx, cy = 16 + (i % cols) * col_w, y + 12 + (i // cols) * 13
            limit = int(col_w / (9 * 0.58)) - 1
            g.text(cx, cy, k if len(k) <= limit else k[:limit - 1] + "…", size=9, fill="#333",
                   extra='class="segment-key"')
        y += 12 + 13 * ((len(key) + cols - 1) // cols)
    g.add("</g>")
    return y + 14


def _esc(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(text)
