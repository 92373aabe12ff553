"""A picture of a state change: what was allocated and what was freed between two memblock
states, e.g. two points of one boot log (``python -m arena map LOG --diff A B``; the points and
the states at them are log code, :mod:`arena.trace_points`).

The picture (:func:`svg_diff`) draws both states on one set of lanes: bytes reserved in both in
grey, bytes **allocated** between them (reserved after, not before) in blue, bytes **freed**
(reserved before, not after) in orange — the Okabe-Ito pair that stays distinct under colour
blindness — each change at least one pixel wide, the largest named in callouts, a zoomed lane
over the densest cluster of small changes, and a list of the changes (range, size, caller).
Memory added or removed between the states is listed too (:func:`changes`). Complexity:
O(regions log regions + changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from arena.render_axis import Axis, clip, human_size, merge_extents, range_text
from arena.render_callers import CallerPiece, caller_pieces
from arena.render_draw import Shape, Svg, draw_lane, draw_scale, finish, place
from arena.render_layout import Layout, check_memblock, layout, regions_of, split_by_lane
from arena.render_palette import ALLOCATED_FILL, FREED_FILL, KEPT_FILL, NODE_EDGE, NODE_FILL
from arena.render_zoom import draw_zoom, zoom_window

__all__ = ["Change", "changes", "svg_diff", "summary"]

_LEFT, _RIGHT, _LANE_H = 96, 24, 32
_LIST_MAX = 40


@dataclass(frozen=True)
class Change:
    """``[base, base + size)`` was ``"allocated"`` or ``"freed"`` (reserved memory), or
    ``"added"``/``"removed"`` (memory) between two states; ``caller`` names who reserved it
    (``""`` unknown), ``nid`` its node."""

    kind: str
    base: int
    size: int
    caller: str = ""
    nid: int = 0

    def __str__(self) -> str:
        sign = {"allocated": "+", "freed": "-", "added": "+", "removed": "-"}[self.kind]
        what = "memory " if self.kind in ("added", "removed") else ""
        who = f" {self.caller}" if self.caller else ""
        return (f"{sign} {what}{self.kind:9s} {range_text(self.base, self.size)} "
                f"{human_size(self.size)}{who} (node {self.nid})")


def _subtract(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted disjoint spans ``a`` minus sorted disjoint spans ``b``."""
    out = []
    for s, e in a:
        pos = s
        for bs, be in clip(b, s, e):
            if bs > pos:
                out.append((pos, bs))
            pos = be
        if pos < e:
            out.append((pos, e))
    return out


def _named(kind: str, spans: Sequence[tuple[int, int]], pieces: Sequence[CallerPiece],
           lay: Layout) -> list[Change]:
    """``spans`` cut at caller pieces and named; node from ``lay``'s memory."""
    named = merge_extents((p.base, p.base + p.size) for p in pieces)
    out = []
    for s, e in spans:
        parts = [(max(p.base, s), min(p.base + p.size, e), p.caller) for p in pieces
                 if p.base < e and p.base + p.size > s]
        parts += [(a, b, "") for a, b in _subtract([(s, e)], named)]
        for a, b, who in sorted(parts):
            out.append(Change(kind, a, b - a, who, _node_at(lay, a)))
    return out


def _node_at(lay: Layout, addr: int) -> int:
    """The node whose lane shows ``addr`` (its memory, else the nearest node's)."""
    lanes = split_by_lane(lay, [Shape(addr, addr + 1, "", "", "")])
    return next(n for n, shapes in lanes.items() if shapes)


def _spans(mtype: Any) -> list[tuple[int, int]]:
    return merge_extents((int(r.base), int(r.base) + int(r.size)) for r in mtype.regions
                         if r.size)


def _union_state(before: Any, after: Any) -> Any:
    """A state with the memory of ``after`` plus what only ``before`` had, and the union of
    the reserved regions: the common ground both states are drawn on."""
    mx = int(getattr(after, "max_numnodes", 1 << 16))
    mem_a = regions_of(after.memory, mx)
    only_b = _subtract(_spans(before.memory), _spans(after.memory))
    old = regions_of(before.memory, int(getattr(before, "max_numnodes", 1 << 16)))
    extra = [SimpleNamespace(base=s, size=e - s, flags=r.flags, nid=r.nid)
             for r in old for s, e in clip(only_b, r.base, r.end)]
    memory = [SimpleNamespace(base=r.base, size=r.end - r.base, flags=r.flags, nid=r.nid)
              for r in mem_a] + extra
    reserved = [SimpleNamespace(base=s, size=e - s, flags=0, nid=-1) for s, e in
                merge_extents(_spans(before.reserved) + _spans(after.reserved))]
    return SimpleNamespace(memory=SimpleNamespace(regions=sorted(memory, key=lambda r: r.base)),
                           reserved=SimpleNamespace(regions=reserved), max_numnodes=mx)


def changes(before: Any, after: Any, *, callers_before: Any = None,
            callers_after: Any = None) -> list[Change]:
    """What changed from memblock state ``before`` to ``after``: reserved bytes allocated and
    freed, memory added and removed, as :class:`Change` s sorted by kind then address, cut
    and named by the caller pieces (``(base, size, caller)`` items: allocations by those of
    ``after``, frees by those of ``before``). O(regions log regions + pieces × changes)."""
    check_memblock(before)
    check_memblock(after)
    pb, pa = caller_pieces(callers_before), caller_pieces(callers_after)
    lay = layout(_union_state(before, after))
    rb, ra = _spans(before.reserved), _spans(after.reserved)
    mb, ma = _spans(before.memory), _spans(after.memory)
    return (_named("allocated", _subtract(ra, rb), pa, lay)
            + _named("freed", _subtract(rb, ra), pb, lay)
            + [Change("added", s, e - s, "", _node_at(lay, s)) for s, e in _subtract(ma, mb)]
            + [Change("removed", s, e - s, "", _node_at(lay, s)) for s, e in _subtract(mb, ma)])


# -- the picture ---------------------------------------------------------------------------------

def _check_args(width: Any, title: Any, labels: Any) -> tuple[str, str]:
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an int, not {type(width).__name__}")
    if width < 400:
        raise ValueError(f"width must be at least 400 pixels, not {width}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str, not {type(title).__name__}")
    if (not isinstance(labels, (tuple, list)) or len(labels) != 2
            or not all(isinstance(t, str) for t in labels)):
        raise TypeError(f"labels must be two strings, not {labels!r}")
    return labels[0], labels[1]


def _shapes(before: Any, after: Any, ch: Sequence[Change]) -> list[Shape]:
    """Kept reservations in grey, then the changes in their colours (callers prefixed with
    ``+`` for allocated, ``-`` for freed)."""
    rb, ra = _spans(before.reserved), _spans(after.reserved)
    kept = _subtract(rb, _subtract(rb, ra))
    out = [Shape(s, e, KEPT_FILL, f"reserved before and after: {range_text(s, e - s)} "
                 f"{human_size(e - s)}", "") for s, e in kept]
    for c in ch:
        if c.kind not in ("allocated", "freed"):
            continue
        sign = "+" if c.kind == "allocated" else "-"
        out.append(Shape(c.base, c.base + c.size,
                         ALLOCATED_FILL if c.kind == "allocated" else FREED_FILL,
                         f"{c.kind}: {range_text(c.base, c.size)} {human_size(c.size)}"
                         + (f", {c.caller}" if c.caller else "") + f", node {c.nid}",
                         sign + (c.caller or c.kind)))
    return out


def svg_diff(before: Any, after: Any, *, callers_before: Any = None, callers_after: Any = None,
             title: str | None = None, labels: Sequence[str] = ("before", "after"),
             width: int = 1200) -> str:
    """An SVG picture of what changed from memblock state ``before`` to ``after`` (the text of
    a standalone ``.svg`` file).

    ``callers_before``/``callers_after``: ``(base, size, caller)`` items naming who reserved
    what in each state (:func:`arena.trace_callers.callers_from_ops`), used to name the frees and the
    allocations; ``title``: heading; ``labels``: the names of the two states in the text;
    ``width``: pixels (>= 400). Both states are drawn on one set of lanes (the memory of
    either): reserved in both in grey, allocated in blue, freed in orange, every change at least
    a pixel wide with a ``<title>`` tooltip, the largest changes in callouts, a zoomed lane over
    the densest cluster of small changes, the list of changes and a legend. Raises
    ``TypeError``/``ValueError`` for bad arguments. O(regions log regions + changes).
    """
    name_a, name_b = _check_args(width, title, labels)
    ch = changes(before, after, callers_before=callers_before, callers_after=callers_after)
    lay = layout(_union_state(before, after))
    heading = title if title is not None else f"What changed from {name_a} to {name_b}"
    map_w = width - _LEFT - _RIGHT
    g = Svg()
    g.text(16, 28, heading, size=18, weight="bold")
    y = 48.0
    g.text(16, y, summary(ch, name_a, name_b), size=12, fill="#444", extra='class="summary"')
    if not lay.memory and not lay.reserved:
        g.text(_LEFT, y + 30, "no memory and no reservations in either state", size=14,
               fill="#666")
        return finish(g, width, y + 50, heading)
    lanes = split_by_lane(lay, _shapes(before, after, ch))
    moved = {n: [s for s in shapes if s.caller] for n, shapes in lanes.items()}
    axes: dict[int, Axis] = {}
    lane_y: dict[int, float] = {}
    y += 14
    for n in lanes:
        axes[n], lane_y[n], y = _lane(g, lay, n, lanes[n], moved[n], map_w, y)
    zoom = zoom_window(moved, axes, map_w, False, min_count=1)
    if zoom is not None:
        ws, we, n = zoom
        y = draw_zoom(g, lay, lanes[n], (ws, we), axes[n], n, _LEFT, map_w, lane_y[n], y + 6,
                      _LANE_H, heading="the densest cluster of small changes",
                      label_unnamed=False)
    y = _change_list(g, ch, y + 4)
    y = _legend(g, lay, width, y + 8)
    return finish(g, width, y, heading)


def summary(ch: Sequence[Change], name_a: str, name_b: str) -> str:
    """The one-line summary of ``ch``: how many ranges and bytes were allocated, freed, added
    and removed between the states named ``name_a`` and ``name_b``."""
    parts = []
    for kind in ("allocated", "freed", "added", "removed"):
        sel = [c for c in ch if c.kind == kind]
        if sel:
            what = "memory " if kind in ("added", "removed") else ""
            parts.append(f"{what}{kind} {human_size(sum(c.size for c in sel))} in "
                         f"{len(sel)} piece{'s' if len(sel) != 1 else ''}")
    return f"from {name_a} to {name_b}: " + ("; ".join(parts) if parts else "no change")


def _lane(g: Svg, lay: Layout, n: int, here: list[Shape], moved: list[Shape], map_w: float,
          y: float) -> tuple[Axis, float, float]:
    """Node ``n``'s lane with callouts on its largest changes; returns (axis, top, y below)."""
    spans = lay.node_extents.get(n) or [(min(s.start for s in here), max(s.end for s in here))]
    lo = min([spans[0][0]] + [s.start for s in here])
    hi = max([spans[-1][1]] + [s.end for s in here])
    axis = Axis(spans, map_w, 30.0, lo=lo, hi=hi)
    wanted = [((axis.x(s.start) + axis.x(s.end)) / 2,
               f"{s.caller[0]}{human_size(s.end - s.start)} {s.caller[1:]}", 2, 11.0)
              for s in sorted(moved, key=lambda s: s.start - s.end)[:6]]
    row = place(wanted, map_w)
    g.add(f'<g class="node" id="node-{n}">')
    top = y + (17 if row else 0)
    for a, _b, label, _k, xc in row:
        g.text(_LEFT + a, y + 10, label, size=11, fill="#222", extra='class="callout"')
        g.line(_LEFT + xc, y + 13, _LEFT + xc, top, stroke="#777", width=0.8,
               extra='class="leader"')
    edge = NODE_EDGE[n % len(NODE_EDGE)]
    size = sum(e - s for s, e in lay.node_extents.get(n, []))
    g.text(_LEFT - 10, top + 15, f"node {n}", size=13, anchor="end", fill=edge, weight="bold")
    g.text(_LEFT - 10, top + 28, human_size(size), size=10, anchor="end", fill="#555")
    draw_lane(g, axis, n, lay.by_node.get(n, []), here, _LEFT, top, _LANE_H,
              f"node {n}: {range_text(lo, hi - lo)}, {human_size(size)} of memory, "
              f"{len(moved)} changes", min_w=3.0)
    y = top + _LANE_H + draw_scale(g, axis, _LEFT, top + _LANE_H, 100) + 6
    g.add("</g>")
    return axis, top, y


def _change_list(g: Svg, ch: Sequence[Change], y: float) -> float:
    """The changes, one per line (the first :data:`_LIST_MAX`); returns the y below."""
    g.add('<g id="changes">')
    g.text(16, y + 12, "Changes" if ch else "No change", size=14, weight="bold")
    y += 18
    for c in ch[:_LIST_MAX]:
        fill = {"allocated": ALLOCATED_FILL, "freed": FREED_FILL}.get(c.kind, "url(#hole)")
        g.rect(16, y + 3, 10, 10, fill, str(c), 'class="swatch"')
        g.text(32, y + 12, str(c), size=10.5, mono=True, extra='class="change"')
        y += 15
    if len(ch) > _LIST_MAX:
        g.text(32, y + 12, f"... and {len(ch) - _LIST_MAX} more", size=10.5, fill="#555")
        y += 15
    g.add("</g>")
    return y + 6


def _legend(g: Svg, lay: Layout, width: int, y: float) -> float:
    g.add('<g id="legend">')
    items = [(ALLOCATED_FILL, "allocated (reserved after, not before)"),
             (FREED_FILL, "freed (reserved before, not after)"),
             (KEPT_FILL, "reserved before and after")]
    items += [(NODE_FILL[n % len(NODE_FILL)], f"free memory, node {n}") for n in lay.nodes]
    items.append(("url(#hole)", "hole (no memory), size below it"))
    col_w = (width - 32) / 3
    for i, (fill, label) in enumerate(items):
        cx, cy = 16 + (i % 3) * col_w, y + (i // 3) * 20
        g.rect(cx, cy, 22, 13, fill, label, 'stroke="#555" stroke-width="0.5" class="swatch"')
        g.text(cx + 30, cy + 11, label, size=11, extra='class="legend-item"')
    g.add("</g>")
    return y + 20 * ((len(items) + 2) // 3) + 6
