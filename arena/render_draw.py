"""SVG drawing pieces shared by the memory map and the change picture: the element writer,
label placement, one lane on a compressed axis, and the scale under a lane.

Rules every picture follows:

* every shape that stands for memory (a region, a reservation, a hole, a lane) carries a
  ``<title>`` tooltip with its range and size;
* tick labels are round addresses (:func:`arena.render_axis.round_ticks`); the lane's exact
  ends are written apart, smaller and grey, flush with the lane's edges, in the kernel's
  inclusive notation (``[0x1000`` ... ``0xbffdffff]``), so that no one reads them as ticks;
* every hole at least :data:`HOLE_MIN_PX` wide is hatched and labelled with its size under a
  bracket (with a leader line when the label had to move, a number and a key when even the
  sizes do not fit).

Complexity: O(shapes + labels log labels) per lane.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from arena.render_axis import Axis, human_size, range_text, round_ticks
from arena.render_palette import NODE_EDGE, NODE_FILL, ink

__all__ = ["Svg", "Shape", "HOLE_MIN_PX", "text_w", "fan", "place", "flag_names", "draw_lane",
           "draw_scale", "finish", "FONT"]

NOMAP, MIRROR, HOTPLUG, DRIVER_MANAGED = 0x4, 0x2, 0x1, 0x8
#: Holes at least this wide (pixels) are hatched and labelled with their size.
HOLE_MIN_PX = 3.0
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


def text_w(text: str, size: float, mono: bool = False) -> float:
    """Rough rendered width of ``text`` in pixels at font ``size``."""
    return len(text) * size * (0.61 if mono else 0.58)


class Svg:
    """A list of SVG element strings with helpers (coordinates in pixels)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        """Append raw SVG text."""
        self.parts.append(s)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, tip: str | None = None,
             extra: str = "") -> None:
        """A rectangle, with a ``<title>`` tooltip when ``tip`` is given."""
        body = f"<title>{escape(tip)}</title>" if tip else ""
        attrs = (f'x="{x:.2f}" y="{y:.2f}" width="{max(w, 0):.2f}" height="{h:.2f}" '
                 f'fill="{fill}"{" " + extra if extra else ""}')
        self.add(f"<rect {attrs}>{body}</rect>" if body else f"<rect {attrs}/>")

    def text(self, x: float, y: float, s: str, size: float = 12, anchor: str = "start",
             fill: str = "#222", mono: bool = False, weight: str = "normal",
             extra: str = "") -> None:
        """A text label; ``y`` is the baseline."""
        fam = f' font-family="{MONO}"' if mono else ""
        wt = f' font-weight="{weight}"' if weight != "normal" else ""
        self.add(f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" text-anchor="{anchor}" '
                 f'fill="{fill}"{fam}{wt}{" " + extra if extra else ""}>{escape(s)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = "#444",
             width: float = 1, extra: str = "") -> None:
        """A straight line."""
        self.add(f'<line x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}" '
                 f'stroke="{stroke}" stroke-width="{width}"{" " + extra if extra else ""}/>')


@dataclass
class Shape:
    """A reserved range as drawn: ``[start, end)``, fill, tooltip, and its caller (or "")."""

    start: int
    end: int
    fill: str
    tip: str
    caller: str


def flag_names(flags: int) -> str:
    """``MEMBLOCK_*`` flag names of ``flags`` joined with ``|`` (``"none"`` for 0)."""
    from arena.memblock import MemblockFlags  # names only; the picture needs no memblock code

    if not flags:
        return "none"
    return "|".join(f.name or "" for f in MemblockFlags if f.value and flags & f.value) or hex(flags)


def place(wanted: Iterable[tuple[float, str, int, float]], width: float,
          taken: Sequence[tuple[float, float]] = ()) -> list[tuple[float, float, str, int, float]]:
    """Place labels ``(x, text, kind, font size)`` centred at ``x`` (kept inside
    ``[0, width]``) without overlaps, in the given priority order; returns
    ``(x_left, x_right, text, kind, x)`` of those that fit, also clear of the ``taken``
    intervals. Kind 2 is proportional text, the others monospace."""
    placed: list[tuple[float, float, str, int, float]] = [(a, b, "", -1, a) for a, b in taken]
    for x, label, kind, size in wanted:
        w = text_w(label, size, mono=kind != 2)
        lo = min(max(x - w / 2, 0), width - w)
        hi = lo + w
        if all(hi + 6 < p[0] or lo - 6 > p[1] for p in placed):
            placed.append((lo, hi, label, kind, x))
    return [p for p in placed if p[3] != -1]


def fan(items: Sequence[tuple[float, float]], width: float, gap: float = 4.0) -> list[float] | None:
    """Lay out labels ``(x, w)`` (wanted centre, width), sorted by ``x``, on one row of
    ``[0, width]`` in the same order without overlaps (``gap`` apart), each as close to its
    centre as it can be: touching labels form blocks placed at their members' mean wish.
    Returns the left edges, or ``None`` when the labels do not fit. O(n²) worst case."""
    if sum(w for _x, w in items) + gap * max(len(items) - 1, 0) > width:
        return None

    def settle(members: list[int]) -> tuple[float, float]:
        off, wish = 0.0, 0.0
        for j in members:
            wish += items[j][0] - items[j][1] / 2 - off
            off += items[j][1] + gap
        total = off - gap
        return min(max(wish / len(members), 0.0), width - total), total

    blocks: list[tuple[list[int], float, float]] = []   # (members, left, total width)
    for i in range(len(items)):
        members = [i]
        left, total = settle(members)
        while blocks and blocks[-1][1] + blocks[-1][2] + gap > left:
            members = blocks.pop()[0] + members
            left, total = settle(members)
        blocks.append((members, left, total))
    out: list[float] = []
    for members, left, _total in blocks:
        for j in members:
            out.append(left)
            left += items[j][1] + gap
    return out


def draw_lane(g: Svg, axis: Axis, nid: int, memory: Sequence[Any], shapes: Sequence[Shape],
              x_left: float, y: float, h: float, tip: str, min_w: float = 1.0,
              inside: bool = True) -> None:
    """One lane: background (tooltip ``tip``), memory (clipped to the axis), flag stripes,
    every hole (hatched, with a tooltip), reserved shapes (at least ``min_w`` px, shapes with a
    caller kept inside the lane), caller names inside shapes wide enough (unless not
    ``inside``), outline. ``memory`` items have ``base end flags``."""
    lo, hi = axis.lo, axis.hi
    fill = NODE_FILL[nid % len(NODE_FILL)]
    edge = NODE_EDGE[nid % len(NODE_EDGE)]
    g.rect(x_left, y, axis.width, h, "#ffffff", tip, 'class="lane"')
    for r in memory:
        s, e = max(r.base, lo), min(r.end, hi)
        if s >= e:
            continue
        x0, x1 = x_left + axis.x(s), x_left + axis.x(e)
        rtip = (f"memory {range_text(r.base, r.end - r.base)} {human_size(r.end - r.base)}, "
                f"node {nid}, flags {flag_names(r.flags)}")
        g.rect(x0, y, x1 - x0, h, "url(#nomap)" if r.flags & NOMAP else fill, rtip,
               'class="memory nomap"' if r.flags & NOMAP else 'class="memory"')
        for flag, colour, dy in ((MIRROR, "#d4a017", 0), (HOTPLUG, "#8e44ad", h - 4),
                                 (DRIVER_MANAGED, "#7f8c8d", h / 2 - 2)):
            if r.flags & flag:
                g.rect(x0, y + dy, max(x1 - x0, 1), 4, colour, rtip, 'class="flag"')
    for s, e, x0, x1, comp in axis.holes():
        g.rect(x_left + x0, y, x1 - x0, h, "url(#hole)",
               f"hole {range_text(s, e - s)} {human_size(e - s)}, no memory"
               + (" (width not to scale)" if comp else ""), 'class="hole"')
    for sh in shapes:
        s, e = max(sh.start, lo), min(sh.end, hi)
        if s >= e:
            continue
        x0, x1 = x_left + axis.x(s), x_left + axis.x(e)
        w = max(x1 - x0, 1.0 if not sh.caller else min_w)
        x0 = min(x0, x_left + axis.width - w)
        cls = "reserved caller" if sh.caller else "reserved"
        g.rect(x0, y + 1, w, h - 2, sh.fill, sh.tip,
               f'class="{cls}" shape-rendering="crispEdges"')
        if inside and sh.caller and w >= text_w(sh.caller, 10) + 8:
            g.text(x0 + w / 2, y + h / 2 + 3.5, sh.caller, size=10, anchor="middle",
                   fill=ink(sh.fill), extra='class="inside" pointer-events="none"')
    g.rect(x_left, y, axis.width, h, "none", None, f'stroke="{edge}" stroke-width="1"')


def _draw_ends(g: Svg, axis: Axis, x_left: float, y: float) -> list[tuple[float, float]]:
    """The lane's exact ends, flush with its edges; returns the intervals they take."""
    first, last = f"[{axis.lo:#x}", f"{axis.hi - 1:#x}]"
    wf, wl = text_w(first, 8.5, True), text_w(last, 8.5, True)
    g.text(x_left, y + 13, first, size=8.5, mono=True, fill="#8a8a8a",
           extra='class="lane-end" font-style="italic"')
    g.text(x_left + axis.width, y + 13, last, size=8.5, anchor="end", mono=True, fill="#8a8a8a",
           extra='class="lane-end" font-style="italic"')
    return [(0.0, wf), (axis.width - wl, axis.width)]


def _hole_labels(axis: Axis) -> tuple[list[tuple[float, float, float, float, str]], list[str]]:
    """Labels of the holes at least :data:`HOLE_MIN_PX` wide: ``(x0, x1, x_label_left, w,
    text)`` and the key lines (when the sizes did not fit and the holes are numbered)."""
    holes = [(s, e, x0, x1) for s, e, x0, x1, _c in axis.holes() if x1 - x0 >= HOLE_MIN_PX]
    if not holes:
        return [], []
    for style in ("full", "size", "number"):
        if style == "full":
            texts = [f"{human_size(e - s)} hole" for s, e, _a, _b in holes]
        elif style == "size":
            texts = [human_size(e - s) for s, e, _a, _b in holes]
        else:
            texts = [f"h{i + 1}" for i in range(len(holes))]
        widths = [text_w(t, 9) for t in texts]
        lefts = fan([((a + b) / 2, w) for (_s, _e, a, b), w in zip(holes, widths, strict=True)],
                    axis.width)
        if lefts is not None:
            key = ([f"h{i + 1}: {human_size(e - s)} hole {range_text(s, e - s)}"
                    for i, (s, e, _a, _b) in enumerate(holes)] if style == "number" else [])
            return [(a, b, lx, w, t) for (_s, _e, a, b), lx, w, t
                    in zip(holes, lefts, widths, texts, strict=True)], key
    # Too many even for numbers: label the widest holes that fit.
    widest = sorted(holes, key=lambda t: t[2] - t[3])
    span = {(a + b) / 2: (a, b) for _s, _e, a, b in widest}
    got = place((((a + b) / 2, human_size(e - s), 2, 9.0) for s, e, a, b in widest), axis.width)
    return [(*span[x], lo, hi - lo, t) for lo, hi, t, _k, x in got], []


def draw_scale(g: Svg, axis: Axis, x_left: float, y: float, min_gap: float) -> float:
    """The scale under a lane whose bottom is at ``y``: the lane's exact ends, round ticks
    between them, and a labelled bracket under every hole at least :data:`HOLE_MIN_PX` wide.
    Returns the height used."""
    step, ticks = round_ticks(axis, min_gap)
    g.add(f'<g class="ticks" data-step="{step:#x}">')
    taken = _draw_ends(g, axis, x_left, y)
    wanted = [(x, f"{a:#x}", 1, 10.0) for a, x in ticks]
    for lo, hi, label, _kind, x in place(wanted, axis.width, taken):
        g.line(x_left + x, y, x_left + x, y + 4, stroke="#555")
        g.text(x_left + (lo + hi) / 2, y + 13, label, size=10, anchor="middle", mono=True,
               fill="#333", extra='class="tick"')
    g.add("</g>")
    labels, key = _hole_labels(axis)
    if not labels:
        return 16.0
    by = y + 17
    for a, b, lx, w, text in labels:
        xa, xb = x_left + a, x_left + b
        g.add(f'<g class="hole-mark" data-x0="{xa:.2f}" data-x1="{xb:.2f}">')
        g.add(f'<path d="M{xa:.2f},{by:.2f} v3 H{xb:.2f} v-3" fill="none" stroke="#888" '
              f'stroke-width="0.8" class="hole-bracket"/>')
        centre, lc = (xa + xb) / 2, x_left + lx + w / 2
        if abs(centre - lc) > 1.5:
            g.line(centre, by + 3, lc, by + 7, stroke="#888", width=0.6, extra='class="leader"')
        g.text(lc, by + 15, text, size=9, anchor="middle", fill="#555",
               extra='class="hole-label"')
        g.add("</g>")
    height = 34.0
    if key:
        g.text(x_left, y + height + 8, "; ".join(key), size=9, fill="#555",
               extra='class="hole-key"')
        height += 12
    return height


def finish(g: Svg, width: int, height: float, heading: str) -> str:
    """The complete SVG document: size, heading as the document's ``<title>``, the hatch
    patterns (``hole``, ``nomap``, ``unknown``), a white background, then ``g``'s elements."""
    h = int(height + 10.999)
    defs = (
        "<defs>"
        '<pattern id="hole" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#ffffff"/>'
        '<line x1="0" y1="0" x2="0" y2="8" stroke="#bdbdbd" stroke-width="3"/></pattern>'
        '<pattern id="nomap" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(-45)"><rect width="6" height="6" fill="#eeeeee"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#9a9a9a" stroke-width="2"/></pattern>'
        '<pattern id="unknown" width="4" height="4" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="4" height="4" fill="#5a5a5a"/>'
        '<line x1="0" y1="0" x2="0" y2="4" stroke="#9a9a9a" stroke-width="1.5"/></pattern>'
        "</defs>"
    )
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
            f'viewBox="0 0 {width} {h}" font-family={quoteattr(FONT)}>'
            f"<title>{escape(heading)}</title>{defs}"
            f'<rect width="{width}" height="{h}" fill="#ffffff"/>')
    return head + "\n".join(g.parts) + "</svg>\n"
