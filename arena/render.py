"""Pictures of a memblock state: an SVG memory map and a terminal map.

Both pictures share one idea, the **compressed physical address axis** (:class:`Axis`, in
:mod:`arena.render_axis`): memory is drawn to scale (linear inside each run of memory), while
every hole between runs that would take more than a few pixels (or characters) is squeezed to a
fixed-width break labelled with its size. A 64 GiB machine whose memory starts above a 2 GiB
PCI hole therefore still spends its width on memory. Addresses inside a compressed hole map
linearly into the break, so reserved ranges that lie in holes (firmware tables) still show where
they are.

* :func:`svg` — a self-contained SVG (no dependency): one lane per NUMA node on the shared axis,
  free memory in the node's (light) colour, NOMAP/MIRROR/HOTPLUG memory marked, reserved ranges
  drawn over it (at least one pixel wide) coloured by the function that reserved them
  (colour-blind-safe palette, :mod:`arena.render_palette`, the largest reservers first),
  callouts naming the largest reservations, a zoomed lane over the densest cluster of small
  reservations with every small segment labelled, a legend with each caller's total, and a
  ``<title>`` tooltip on every segment, hole and lane. Ticks sit on round addresses; a lane's
  exact ends are written apart, smaller and grey, at its edges; every hole at least a few
  pixels wide is hatched and labelled with its size.
* :func:`text_map` — one 72-character row per node for a terminal (``#`` reserved, ``+`` partly
  reserved, ``.`` free, ``N`` NOMAP memory, blank: hole), with an address scale under each row.
* ``svg(..., callers=...)`` names reservations from ``(base, size, caller)`` pieces; working
  them out from a boot log is log code (:mod:`arena.trace_callers`). The drawing modules never
  import the log modules.
* :func:`arena.render_diff.svg_diff` draws what changed between two states (``map --diff``).

Inputs are read only through the public region tables (see :mod:`arena.render_layout`), so any
:class:`arena.memblock.Memblock` works, with or without a PhysicalMemory.

Complexity: O(regions log regions + callers) for both pictures; the text map is O(width) per
node on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arena.render_axis import Axis, clip, human_size, merge_extents, range_text
from arena.render_callers import CallerPiece, caller_pieces
from arena.render_draw import (
    DRIVER_MANAGED,
    HOTPLUG,
    MIRROR,
    NOMAP,
    Shape,
    Svg,
    draw_lane,
    draw_scale,
    finish,
    flag_names,
    place,
)
from arena.render_layout import Layout, Region, layout, split_by_lane
from arena.render_palette import (
    CALLER_FILL,
    NODE_EDGE,
    NODE_FILL,
    OTHER_FILL,
    UNKNOWN_FILL,
    caller_colours,
)
from arena.render_zoom import draw_zoom, zoom_window

__all__ = [
    "Axis",
    "CallerPiece",
    "svg",
    "text_map",
    "human_size",
]


# -- terminal map --------------------------------------------------------------------------------

def _scale_line(axis: Axis, offset: int, width: int) -> str:
    """Addresses under a row: the start of every run, and the last byte of the last run."""
    line = [" "] * (offset + width + 20)
    taken = -1
    marks = [(int(round(x0)), f"{s:#x}") for s, _e, x0, _x1 in axis.runs()]
    last_end = axis.runs()[-1][1] - 1
    end_label = f"{last_end:#x}"
    end_pos = offset + width - len(end_label)
    for col, label in marks:
        pos = offset + col
        if pos <= taken + 1 or pos + len(label) >= end_pos:
            continue
        line[pos:pos + len(label)] = label
        taken = pos + len(label)
    if end_pos > taken + 1:
        line[end_pos:end_pos + len(end_label)] = end_label
    return "".join(line).rstrip()


def text_map(memblock: Any, *, width: int = 72) -> str:
    """The memory map for a terminal: per node a header line, a row of ``width`` characters
    and an address scale.

    Each character is a cell of the node's compressed axis (:class:`Axis`, holes wider than
    two cells squeezed to two blank cells): ``#`` at least half of the memory in the cell is
    reserved, ``+`` some of it is, ``.`` all free, ``N`` mostly NOMAP memory, blank: no memory
    (a hole). A legend line comes first. Returns the text (lines joined with ``"\\n"``, no
    trailing newline); ``"no memory"`` when memblock has none. Raises ``TypeError`` for a
    non-Memblock and ``ValueError`` for ``width < 8``. O(regions × cells touched).
    """
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an int, not {type(width).__name__}")
    if width < 8:
        raise ValueError(f"width must be at least 8 characters, not {width}")
    lay = layout(memblock)
    if not lay.memory:
        return "memory map: no memory"
    out = ["memory map: '#' reserved, '+' partly reserved, '.' free, 'N' nomap, ' ' hole "
           "(not to scale)"]
    for nid in lay.nodes:
        regions = lay.by_node[nid]
        spans = lay.node_extents[nid]
        axis = Axis(spans, width, 2.0)
        mem = [0.0] * width
        nomap = [0.0] * width
        res = [0.0] * width

        def add(cov: list[float], s: int, e: int, axis: Axis = axis) -> None:
            x0, x1 = axis.x(s), axis.x(e)
            c = int(x0)
            while c < width and c < x1:
                cov[c] += min(x1, c + 1) - max(x0, c)
                c += 1

        for r in regions:
            add(nomap if r.flags & NOMAP else mem, r.base, r.end)
        rsv = lay.reserved_on(nid)
        for s, e, _r in rsv:
            add(res, s, e)
        row = []
        for c in range(width):
            total = mem[c] + nomap[c]
            if total <= 1e-12:
                row.append(" ")
            elif nomap[c] >= mem[c]:
                row.append("N")
            elif res[c] >= 0.5 * total:
                row.append("#")
            elif res[c] > 1e-12:
                row.append("+")
            else:
                row.append(".")
        size = sum(e - s for s, e in spans)
        reserved = sum(e - s for s, e, _r in rsv)
        per_cell = size / max(sum(x1 - x0 for _s, _e, x0, x1 in axis.runs()), 1e-9)
        holes = axis.compressed_holes()
        hole_text = ("; holes " + ", ".join(human_size(e - s) for s, e, _a, _b in holes)
                     if holes else "")
        out.append(f"node {nid}: {human_size(size)} in {len(regions)} region"
                   f"{'s' if len(regions) != 1 else ''}, {human_size(reserved)} reserved, "
                   f"1 char = {human_size(int(per_cell))}{hole_text}")
        out.append("  |" + "".join(row) + "|")
        out.append(_scale_line(axis, 3, width))
    return "\n".join(out)




# -- SVG -----------------------------------------------------------------------------------------

_LEFT, _RIGHT, _LANE_H = 96, 24, 32


def _check_args(width: Any, top_callers: Any, callouts: Any, title: Any) -> None:
    for name, v in (("width", width), ("top_callers", top_callers), ("callouts", callouts)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if width < 400:
        raise ValueError(f"width must be at least 400 pixels, not {width}")
    if not 0 <= top_callers <= len(CALLER_FILL):
        raise ValueError(f"top_callers must be in 0..{len(CALLER_FILL)}, not {top_callers}")
    if callouts < 0:
        raise ValueError(f"callouts must be >= 0, not {callouts}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str, not {type(title).__name__}")


def svg(memblock: Any, *, callers: Any = None, title: str | None = None,
        width: int = 1200, top_callers: int = 16, callouts: int = 4) -> str:
    """An SVG memory map of ``memblock`` (the text of a standalone ``.svg`` file).

    * ``callers``: ``(base, size, caller)`` items (:class:`CallerPiece`, e.g. from
      :func:`arena.trace_callers.callers_from_log`) naming who reserved what; reserved bytes no item covers are
      drawn as "caller unknown" (hatched dark grey). ``None``: reserved regions only.
    * ``title``: heading (default ``"Physical memory map"``); ``width``: pixels (>= 400);
      ``top_callers``: the callers (by bytes) with their own colour, the rest share one
      grey (0..16; the eight largest get the Okabe-Ito colours);
      ``callouts``: at most this many of each node's largest reservations are named above
      its lane (with a leader line) when there is room.

    Layout, top to bottom: heading and totals; an overview strip of the whole address space
    (:class:`Axis`, holes hatched and labelled) with memory in node colours; one lane per node
    on the node's own compressed axis, with free memory in the node's colour, NOMAP memory
    hatched, MIRROR/HOTPLUG/DRIVER_MANAGED as stripes, reserved ranges (at least 1 px wide) in
    their caller's colour, callouts, round address ticks, the lane's exact ends (small, grey,
    at its edges) and a size label under every hole at least 3 px wide; a zoomed lane over the
    densest cluster of reservations too small to see (when there is one, marked by a dashed box
    on its lane), its small segments labelled; the legend (nodes, flags, callers with total
    bytes and count). Reserved ranges outside memory are drawn on the lane of the nearest node.
    Every segment, hole and lane has a ``<title>`` tooltip.
    Raises ``TypeError``/``ValueError`` for bad arguments. O(regions log regions + callers).
    """
    _check_args(width, top_callers, callouts, title)
    lay = layout(memblock)
    pieces = caller_pieces(callers)
    colours, ranked = caller_colours(pieces, top_callers)
    heading = title if title is not None else "Physical memory map"
    map_w = width - _LEFT - _RIGHT
    g = Svg()
    g.text(16, 28, heading, size=18, weight="bold")
    mem_total = sum(r.end - r.base for r in lay.memory)
    res_total = sum(r.end - r.base for r in lay.reserved)
    direction = "bottom-up" if getattr(memblock, "bottom_up", False) else "top-down"
    y = 48.0
    g.text(16, y, f"{human_size(mem_total)} of memory in {len(lay.memory)} regions on "
           f"{len(lay.nodes)} node{'s' if len(lay.nodes) != 1 else ''}; "
           f"{human_size(res_total)} reserved in {len(lay.reserved)} regions"
           + (f" ({len(pieces)} reservations by {len(ranked)} callers)" if pieces else "")
           + f"; allocation {direction}", size=12, fill="#444")
    if not lay.memory and not lay.reserved:
        g.text(_LEFT, y + 30, "no memory and no reservations", size=14, fill="#666")
        return finish(g, width, y + 50, heading)

    # Reserved shapes: the parts of regions no caller piece covers (all of them without
    # callers), then the caller pieces.
    shapes = [Shape(s, e, UNKNOWN_FILL if pieces else CALLER_FILL[0],
                    f"reserved {range_text(s, e - s)} {human_size(e - s)}, flags "
                    f"{flag_names(r.flags)}, node {r.nid}" + (", caller unknown" if pieces else ""),
                    "")
              for r, s, e in _uncovered_parts(lay.reserved, pieces)]
    shapes += [Shape(p.base, p.base + p.size, colours[p.caller],
                     f"{p.caller}: {range_text(p.base, p.size)} {human_size(p.size)}"
                     + _region_note(lay.reserved, p.base), p.caller)
               for p in pieces]
    lanes = split_by_lane(lay, shapes)
    overview, y = _overview(g, lay, map_w, y + 16)
    axes: dict[int, Axis] = {}
    lane_y: dict[int, float] = {}
    for n in lanes:
        axes[n], lane_y[n], y = _node_lane(g, lay, n, lanes[n], map_w, y,
                                           callouts, bool(pieces))
    zoom = zoom_window(lanes, axes, map_w, bool(pieces))
    if zoom is not None:
        ws, we, n = zoom
        y = draw_zoom(g, lay, lanes[n], (ws, we), axes[n], n, _LEFT, map_w, lane_y[n], y + 6,
                      _LANE_H)
    y = _legend(g, lay, pieces, colours, ranked, top_callers, overview, width, y)
    return finish(g, width, y, heading)


def _region_note(reserved: Sequence[Region], base: int) -> str:
    """``", flags F, node N"`` of the reserved region holding ``base`` (``""`` if none)."""
    for r in reserved:   # few regions; a picture is drawn once
        if r.base <= base < r.end:
            return f", flags {flag_names(r.flags)}, node {r.nid}"
    return ""


def _overview(g: Svg, lay: Layout, map_w: float, y: float) -> tuple[Axis, float]:
    """The strip of the whole address space; returns its axis and the y below it."""
    g.add('<g id="overview">')
    g.text(_LEFT - 10, y + 13, "all nodes", size=11, anchor="end", fill="#333")
    overview = Axis(lay.extents, map_w, 36.0, lo=lay.lo, hi=lay.hi)
    g.rect(_LEFT, y, map_w, 18, "#ffffff",
           f"all memory: {range_text(lay.lo, lay.hi - lay.lo)}, "
           f"{human_size(sum(e - s for s, e in lay.extents))} of memory",
           'class="lane" stroke="#999" stroke-width="1"')
    for r in lay.memory:
        x0, x1 = _LEFT + overview.x(r.base), _LEFT + overview.x(r.end)
        g.rect(x0, y, x1 - x0, 18, NODE_EDGE[r.nid % len(NODE_EDGE)],
               f"memory {range_text(r.base, r.end - r.base)} {human_size(r.end - r.base)}, "
               f"node {r.nid}", 'class="memory" fill-opacity="0.45"')
    for s, e, x0, x1, comp in overview.holes():
        g.rect(_LEFT + x0, y, x1 - x0, 18, "url(#hole)", f"hole {range_text(s, e - s)} "
               f"{human_size(e - s)}, no memory" + (" (width not to scale)" if comp else ""),
               'class="hole"')
    for r in lay.reserved:
        x0, x1 = _LEFT + overview.x(r.base), _LEFT + overview.x(r.end)
        g.rect(x0, y + 9, max(x1 - x0, 1.0), 9, "#222222",
               f"reserved {range_text(r.base, r.end - r.base)} {human_size(r.end - r.base)}",
               'class="reserved" shape-rendering="crispEdges"')
    y += 18 + draw_scale(g, overview, _LEFT, y + 18, 110) + 10
    g.add("</g>")
    return overview, y


def _callout_rows(axis: Axis, here: Sequence[Shape], callouts: int, named: bool, map_w: float
                  ) -> list[list[tuple[float, float, str, int, float]]]:
    """Up to two rows of callouts naming the lane's largest (named) reservations."""
    cands = sorted((s for s in here if s.caller or not named), key=lambda s: s.start - s.end)
    wanted = [((axis.x(c.start) + axis.x(c.end)) / 2,
               f"{c.caller or 'reserved'} {human_size(c.end - c.start)}", 2, 11.0)
              for c in cands[:callouts]]
    row0 = place(wanted, map_w)
    row1 = place([w for w in wanted if w[1] not in {p[2] for p in row0}], map_w,
                 [(p[4] - 1, p[4] + 1) for p in row0])
    return [r for r in (row0, row1) if r]


def _node_lane(g: Svg, lay: Layout, n: int, here: list[Shape], map_w: float, y: float,
               callouts: int, named: bool) -> tuple[Axis, float, float]:
    """Node ``n``'s lane with its callouts and scale; returns (axis, lane top, y below)."""
    spans = lay.node_extents.get(n) or [(min(s.start for s in here), max(s.end for s in here))]
    lo = min([spans[0][0]] + [s.start for s in here])
    hi = max([spans[-1][1]] + [s.end for s in here])
    axis = Axis(spans, map_w, 30.0, lo=lo, hi=hi)
    rows = _callout_rows(axis, here, callouts, named, map_w)
    g.add(f'<g class="node" id="node-{n}">')
    edge = NODE_EDGE[n % len(NODE_EDGE)]
    top = y + 15 * len(rows) + (2 if rows else 0)
    for i, row in enumerate(rows):
        ty = y + 10 + 15 * i
        for a, _b, label, _k, xc in row:
            g.text(_LEFT + a, ty, label, size=11, fill="#222", extra='class="callout"')
            g.line(_LEFT + xc, ty + 3, _LEFT + xc, top, stroke="#777", width=0.8,
                   extra='class="leader"')
    size = sum(e - s for s, e in lay.node_extents.get(n, []))
    reserved = sum(e - s for s, e, _r in lay.reserved_on(n)) if n in lay.node_extents else 0
    g.text(_LEFT - 10, top + 15, f"node {n}", size=13, anchor="end", fill=edge, weight="bold")
    g.text(_LEFT - 10, top + 28, human_size(size), size=10, anchor="end", fill="#555")
    tip = (f"node {n}: {range_text(lo, hi - lo)}, {human_size(size)} of memory in "
           f"{len(lay.by_node.get(n, []))} regions, {human_size(reserved)} reserved")
    draw_lane(g, axis, n, lay.by_node.get(n, []), here, _LEFT, top, _LANE_H, tip)
    y = top + _LANE_H + draw_scale(g, axis, _LEFT, top + _LANE_H, 100) + 6
    g.add("</g>")
    return axis, top, y


def _legend(g: Svg, lay: Layout, pieces: Sequence[CallerPiece], colours: dict[str, str],
            ranked: Sequence[tuple[str, int, int]], top: int, axis: Axis, width: int,
            y: float) -> float:
    """Draw the legend; returns the y below it."""
    g.add('<g id="legend">')
    x0 = 16
    g.text(x0, y, "Legend", size=14, weight="bold")
    y += 10
    items: list[tuple[str, str, str]] = []   # (fill, label, tooltip)
    for n in lay.nodes:
        size = sum(e - s for s, e in lay.node_extents[n])
        items.append((NODE_FILL[n % len(NODE_FILL)], f"free memory, node {n} "
                      f"({human_size(size)})", f"node {n}"))
    all_flags = 0
    for r in lay.memory:
        all_flags |= r.flags
    if all_flags & NOMAP:
        items.append(("url(#nomap)", "NOMAP memory (not mapped)", "MEMBLOCK_NOMAP"))
    if all_flags & MIRROR:
        items.append(("#d4a017", "MIRROR memory (top stripe)", "MEMBLOCK_MIRROR"))
    if all_flags & HOTPLUG:
        items.append(("#8e44ad", "HOTPLUG memory (bottom stripe)", "MEMBLOCK_HOTPLUG"))
    if all_flags & DRIVER_MANAGED:
        items.append(("#7f8c8d", "DRIVER_MANAGED memory (middle stripe)",
                      "MEMBLOCK_DRIVER_MANAGED"))
    if axis.holes():
        items.append(("url(#hole)", "hole (no memory), size below it; wide ones not to scale",
                      "no memory"))
    if pieces and _uncovered_parts(lay.reserved, pieces):
        items.append((UNKNOWN_FILL, "reserved, caller unknown", "reserved"))
    elif lay.reserved and not pieces:
        items.append((CALLER_FILL[0], "reserved", "reserved"))
    y = _legend_grid(g, items, x0, y, width, 3)
    if ranked:
        y += 8
        g.text(x0, y + 10, "Reserved by (caller: total, reservations)", size=12,
               weight="bold")
        y += 14
        citems = [(colours[c], f"{c}: {human_size(b)}, {n}", f"{c}") for c, b, n in ranked[:top]]
        rest = ranked[top:]
        if rest:
            citems.append((OTHER_FILL, f"{len(rest)} other callers: "
                           f"{human_size(sum(b for _c, b, _n in rest))}, "
                           f"{sum(n for _c, _b, n in rest)}",
                           ", ".join(c for c, _b, _n in rest[:40])))
        y = _legend_grid(g, citems, x0, y, width, 3)
    g.add("</g>")
    return y + 10


def _uncovered_parts(reserved: Sequence[Region], pieces: Sequence[CallerPiece]
                     ) -> list[tuple[Region, int, int]]:
    """``(region, start, end)`` of every part of a reserved region no caller piece covers."""
    spans = merge_extents((p.base, p.base + p.size) for p in pieces)
    out = []
    for r in reserved:
        pos = r.base
        for s, e in clip(spans, r.base, r.end):
            if s > pos:
                out.append((r, pos, s))
            pos = e
        if pos < r.end:
            out.append((r, pos, r.end))
    return out


def _legend_grid(g: Svg, items: Sequence[tuple[str, str, str]], x0: float, y: float,
                 width: int, cols: int) -> float:
    col_w = (width - x0 - 16) / cols
    for i, (fill, label, tip) in enumerate(items):
        cx = x0 + (i % cols) * col_w
        cy = y + (i // cols) * 20 + 6
        g.rect(cx, cy, 22, 13, fill, tip, 'stroke="#555" stroke-width="0.5" class="swatch"')
        max_chars = int((col_w - 34) / (11 * 0.58))
        text = label if len(label) <= max_chars else label[:max_chars - 1] + "…"
        g.text(cx + 30, cy + 11, text, size=11, extra='class="legend-item"')
    rows = (len(items) + cols - 1) // cols
    return y + rows * 20 + 6


