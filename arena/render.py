"""Pictures of a memblock state: an SVG memory map and a terminal map.

Both pictures share one idea, the **compressed physical address axis** (:class:`Axis`): memory
is drawn to scale (linear inside each run of memory), while every hole between runs that would
take more than a few pixels (or characters) is squeezed to a fixed-width break labelled with
its size. A 64 GiB machine whose memory starts above a 2 GiB PCI hole therefore still spends its
width on memory. Addresses inside a compressed hole map linearly into the break, so reserved
ranges that lie in holes (firmware tables) still show where they are.

* :func:`svg` — a self-contained SVG (no dependency): one lane per NUMA node on the shared axis,
  free memory in the node's colour, NOMAP/MIRROR/HOTPLUG memory marked, reserved ranges drawn
  over it (at least one pixel wide) coloured by the function that reserved them, callouts naming
  the largest reservations, a zoomed lane over the densest cluster of small reservations, a
  legend with each caller's total, and a ``<title>`` tooltip on every shape.
* :func:`text_map` — one 72-character row per node for a terminal (``#`` reserved, ``+`` partly
  reserved, ``.`` free, ``N`` NOMAP memory, blank: hole), with an address scale under each row.
* :func:`callers_from_ops` / :func:`callers_from_log` — who reserved what: the reservations of a
  ``memblock=debug`` log (ours or a kernel's), as ``(base, size, caller)`` pieces, for
  ``svg(..., callers=...)``. memblock merges touching reservations into one region, so the
  region table alone cannot tell the allocations apart; the log can.

Inputs are read only through the public region tables (``memblock.memory.regions`` items with
``base size flags nid``), so any :class:`arena.memblock.Memblock` works, with or without a
PhysicalMemory (a replayed log is a pure simulation). Regions of size 0 (the dummy entry of
kernels <= 6.10) are skipped; a node id that is not a valid node (``NUMA_NO_NODE``,
``MAX_NUMNODES`` of an un-noded region, no NUMA) counts as node 0, as the kernel's hand-over does.

Complexity: O(regions log regions + callers) for both pictures; the text map is O(width) per
node on top.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "Axis",
    "CallerPiece",
    "svg",
    "text_map",
    "callers_from_ops",
    "callers_from_log",
    "human_size",
]

_NOMAP = 0x4
_MIRROR = 0x2
_HOTPLUG = 0x1
_DRIVER_MANAGED = 0x8


# -- small helpers -----------------------------------------------------------------------------

def human_size(n: int) -> str:
    """``n`` bytes as a short binary size: ``"6 GiB"``, ``"1.5 MiB"``, ``"73 B"``. O(1)."""
    if n < 1024:
        return f"{n} B"
    v = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        v /= 1024
        if v < 1024 or unit == "EiB":
            text = f"{v:.1f}" if v < 10 and v != int(v) else f"{v:.0f}"
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def _rng(base: int, size: int) -> str:
    """The kernel's inclusive range text ``[0x..-0x..]``."""
    return f"[{base:#x}-{base + size - 1:#x}]"


def _node_of(nid: int, max_numnodes: int) -> int:
    return nid if 0 <= nid < max_numnodes else 0


class _Region(NamedTuple):
    base: int
    end: int
    flags: int
    nid: int


def _regions(mtype: Any, max_numnodes: int) -> list[_Region]:
    """The non-empty regions of a memblock type, node ids normalised (see the module doc)."""
    out = []
    for r in mtype.regions:
        if r.size:
            out.append(_Region(int(r.base), int(r.base) + int(r.size), int(r.flags),
                               _node_of(int(r.nid), max_numnodes)))
    return out


def _max_numnodes(memblock: Any) -> int:
    return int(getattr(memblock, "max_numnodes", 1 << 16))


def _check_memblock(memblock: Any) -> None:
    for name in ("memory", "reserved"):
        if not hasattr(getattr(memblock, name, None), "regions"):
            raise TypeError(f"expected a Memblock (with memory and reserved region tables), "
                            f"not {type(memblock).__name__}")


def _merge_extents(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of half-open spans (touching spans are joined)."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _clip(spans: Sequence[tuple[int, int]], base: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[base, end)`` inside the sorted disjoint ``spans``."""
    out = []
    i = max(bisect.bisect_right(spans, (base, base)) - 1, 0)
    while i < len(spans) and spans[i][0] < end:
        s, e = max(spans[i][0], base), min(spans[i][1], end)
        if s < e:
            out.append((s, e))
        i += 1
    return out


# -- the compressed address axis ---------------------------------------------------------------

class Axis:
    """A monotone piecewise-linear map from physical addresses to positions ``[0, width]``.

    ``extents`` are the runs of memory (any order; overlapping or touching runs are merged);
    ``lo``/``hi`` optionally widen the axis beyond them (e.g. to reservations outside memory).
    Memory is linear at one common scale; a hole (between runs, or before/after them) keeps
    its linear width when that is at most ``gap`` units and is otherwise compressed to ``gap``
    units (capped so that all compressed holes together take at most a quarter of the width).
    ``pieces`` lists ``(start, end, x0, x1, hole, compressed)``. Raises ``ValueError`` for a
    non-positive width or an empty axis. O(k log k) in the number of runs.
    """

    def __init__(self, extents: Iterable[tuple[int, int]], width: float, gap: float, *,
                 lo: int | None = None, hi: int | None = None) -> None:
        if not width > 0:
            raise ValueError(f"width must be positive, not {width!r}")
        runs = [(s, e) for s, e in _merge_extents(extents) if s < e]
        if not runs:
            if lo is None or hi is None or lo >= hi:
                raise ValueError("an axis needs at least one non-empty run of memory")
            runs = [(lo, hi)]
        lo = runs[0][0] if lo is None else min(lo, runs[0][0])
        hi = runs[-1][1] if hi is None else max(hi, runs[-1][1])
        segs: list[tuple[int, int, bool]] = []   # (start, end, is_hole)
        pos = lo
        for s, e in runs:
            if s > pos:
                segs.append((pos, s, True))
            segs.append((s, e, False))
            pos = e
        if hi > pos:
            segs.append((pos, hi, True))
        holes = [i for i, sg in enumerate(segs) if sg[2]]
        gap = min(gap, width / 4 / max(len(holes), 1))
        compressed: set[int] = set()
        while True:
            linear = sum(e - s for i, (s, e, _h) in enumerate(segs) if i not in compressed)
            scale = (width - gap * len(compressed)) / linear if linear else 0.0
            more = {i for i in holes if i not in compressed and (segs[i][1] - segs[i][0]) * scale > gap}
            if not more:
                break
            compressed |= more
        self.width = float(width)
        self.lo, self.hi = lo, hi
        self.scale = scale
        self.pieces: list[tuple[int, int, float, float, bool, bool]] = []
        x = 0.0
        for i, (s, e, hole) in enumerate(segs):
            w = gap if i in compressed else (e - s) * scale
            self.pieces.append((s, e, x, x + w, hole, i in compressed))
            x += w
        # Absorb rounding so the last piece ends exactly at width.
        if self.pieces:
            s, e, x0, _x1, hole, comp = self.pieces[-1]
            self.pieces[-1] = (s, e, x0, self.width, hole, comp)
        self._starts = [p[0] for p in self.pieces]

    def x(self, addr: int) -> float:
        """Position of ``addr`` (clamped to the axis). O(log pieces)."""
        if addr <= self.lo:
            return 0.0
        if addr >= self.hi:
            return self.width
        s, e, x0, x1, _h, _c = self.pieces[bisect.bisect_right(self._starts, addr) - 1]
        return x0 + (x1 - x0) * (addr - s) / (e - s)

    def compressed_holes(self) -> list[tuple[int, int, float, float]]:
        """``(start, end, x0, x1)`` of every compressed hole."""
        return [(s, e, x0, x1) for s, e, x0, x1, hole, comp in self.pieces if comp]

    def runs(self) -> list[tuple[int, int, float, float]]:
        """``(start, end, x0, x1)`` of every run of memory."""
        return [(s, e, x0, x1) for s, e, x0, x1, hole, _c in self.pieces if not hole]


# -- callers -------------------------------------------------------------------------------------

class CallerPiece(NamedTuple):
    """``[base, base + size)`` was reserved by ``caller`` (a function name)."""

    base: int
    size: int
    caller: str


def _short_caller(text: str) -> str:
    """``sparse_init_nid+0x9f/0x390`` -> ``sparse_init_nid``."""
    return text.split("+", 1)[0].strip() or "?"


class _PieceMap:
    """Disjoint ``[start, end) -> caller`` pieces: a reservation fills only what is not yet
    claimed (the first, most specific reserver keeps its name); a free carves pieces out."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.names: list[str] = []

    def claim(self, base: int, end: int, name: str) -> None:
        i = bisect.bisect_right(self.ends, base)
        pos = base
        new: list[tuple[int, int]] = []
        while i < len(self.starts) and self.starts[i] < end:
            if self.starts[i] > pos:
                new.append((pos, self.starts[i]))
            pos = max(pos, self.ends[i])
            i += 1
        if pos < end:
            new.append((pos, end))
        for s, e in new:
            j = bisect.bisect_left(self.starts, s)
            self.starts.insert(j, s)
            self.ends.insert(j, e)
            self.names.insert(j, name)

    def carve(self, base: int, end: int) -> None:
        i = bisect.bisect_right(self.ends, base)
        while i < len(self.starts) and self.starts[i] < end:
            s, e, name = self.starts[i], self.ends[i], self.names[i]
            del self.starts[i], self.ends[i], self.names[i]
            if e > end:
                self.starts.insert(i, end)
                self.ends.insert(i, e)
                self.names.insert(i, name)
            if s < base:
                self.starts.insert(i, s)
                self.ends.insert(i, base)
                self.names.insert(i, name)
                i += 1

    def pieces(self) -> list[CallerPiece]:
        return [CallerPiece(s, e - s, n) for s, e, n in zip(self.starts, self.ends, self.names,
                                                                strict=True)]


def callers_from_ops(ops: Iterable[Any]) -> list[CallerPiece]:
    """Who holds each reserved byte after the operations of a parsed log
    (:func:`arena.trace.parse` / ``Report.ops``).

    A successful allocation (``kind == "alloc"`` with a ``result``) is credited to the caller
    printed on its request line (the reserve line that answers it names the allocator); a plain
    reserve to its own caller; a free (``"free"``) or removal (``"remove"``) releases its range.
    Overlapping reserves keep the earlier name. Caller offsets (``+0x4e/0xc0``) are dropped.
    Returns the pieces sorted by base, disjoint. O(ops × pieces) worst case.
    """
    pm = _PieceMap()
    for op in ops:
        kind = getattr(op, "kind", None)
        if kind == "alloc":
            base = getattr(op, "result", None)
            if base is not None and op.size:
                pm.claim(base, base + op.size, _short_caller(op.caller))
        elif kind == "reserve":
            if op.size:
                pm.claim(op.base, op.base + op.size, _short_caller(op.caller))
        elif kind in ("free", "remove"):
            if op.size:
                pm.carve(op.base, op.base + op.size)
    return pm.pieces()


def callers_from_log(text: str) -> list[CallerPiece]:
    """:func:`callers_from_ops` of a ``memblock=debug`` log text (parsed with
    :func:`arena.trace.parse`; kernel logs and ours alike). O(lines × pieces)."""
    from arena.trace import parse  # render sits beside trace: import only when used

    return callers_from_ops(parse(text))


def _caller_pieces(callers: Any) -> list[CallerPiece]:
    if callers is None:
        return []
    if isinstance(callers, (str, bytes)):
        raise TypeError("callers must be a sequence of (base, size, caller) tuples; "
                        "use callers_from_log(text) for a log")
    out = []
    for item in callers:
        try:
            base, size, name = item
        except (TypeError, ValueError):
            raise TypeError(f"callers: each item must be (base, size, caller), not {item!r}") from None
        if isinstance(base, bool) or isinstance(size, bool) or not isinstance(name, str):
            raise TypeError(f"callers: bad item {item!r}")
        base, size = int(base), int(size)
        if base < 0 or size < 0:
            raise ValueError(f"callers: negative base or size in {item!r}")
        if size:
            out.append(CallerPiece(base, size, name))
    out.sort()
    return out


# -- the layout both pictures share ------------------------------------------------------------

@dataclass
class _Layout:
    """Regions grouped per node plus the reserved pieces that lie over each node's memory."""

    memory: list[_Region]
    reserved: list[_Region]
    nodes: list[int]
    by_node: dict[int, list[_Region]]
    extents: list[tuple[int, int]]           # runs of memory, all nodes
    node_extents: dict[int, list[tuple[int, int]]]
    lo: int
    hi: int

    def reserved_on(self, nid: int) -> list[tuple[int, int, _Region]]:
        """Reserved ``(start, end, region)`` pieces clipped to node ``nid``'s memory."""
        spans = self.node_extents[nid]
        out = []
        for r in self.reserved:
            for s, e in _clip(spans, r.base, r.end):
                out.append((s, e, r))
        return out


def _layout(memblock: Any) -> _Layout:
    _check_memblock(memblock)
    mx = _max_numnodes(memblock)
    memory = _regions(memblock.memory, mx)
    reserved = _regions(memblock.reserved, mx)
    by_node: dict[int, list[_Region]] = {}
    for r in memory:
        by_node.setdefault(r.nid, []).append(r)
    nodes = sorted(by_node)
    node_extents = {n: _merge_extents((r.base, r.end) for r in rs) for n, rs in by_node.items()}
    extents = _merge_extents((r.base, r.end) for r in memory)
    ends = [r.base for r in memory + reserved] + [r.end for r in memory + reserved]
    lo, hi = (min(ends), max(ends)) if ends else (0, 0)
    return _Layout(memory, reserved, nodes, by_node, extents, node_extents, lo, hi)


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
    lay = _layout(memblock)
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
            add(nomap if r.flags & _NOMAP else mem, r.base, r.end)
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

_NODE_FILL = ["#cfe3f7", "#d5ecd0", "#f8e2c9", "#e4d8f2", "#f6d4dc", "#cfeeea", "#eeeac4",
              "#e3e3e3"]
_NODE_EDGE = ["#5a86b5", "#5f9a57", "#c08a4a", "#8d72b5", "#b86b80", "#4f9e95", "#a39a3c",
              "#7d7d7d"]
_CALLER_FILL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#17becf", "#bcbd22", "#393b79", "#e7ba52", "#843c39", "#637939", "#7b4173",
                "#00876c", "#fc8d59"]
_OTHER_FILL = "#6b6b6b"
_UNKNOWN_FILL = "#2f3640"
_FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
_MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


def _ink(fill: str) -> str:
    """Black or white, whichever reads better on the ``#rrggbb`` colour ``fill``."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 135 else "#ffffff"


def _text_w(text: str, size: float, mono: bool = False) -> float:
    """Rough rendered width of ``text`` in pixels."""
    return len(text) * size * (0.61 if mono else 0.58)


class _Svg:
    """A list of SVG element strings with helpers."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, tip: str | None = None,
             extra: str = "") -> None:
        body = f"<title>{escape(tip)}</title>" if tip else ""
        attrs = (f'x="{x:.2f}" y="{y:.2f}" width="{max(w, 0):.2f}" height="{h:.2f}" '
                 f'fill="{fill}"{" " + extra if extra else ""}')
        self.add(f"<rect {attrs}>{body}</rect>" if body else f"<rect {attrs}/>")

    def text(self, x: float, y: float, s: str, size: float = 12, anchor: str = "start",
             fill: str = "#222", mono: bool = False, weight: str = "normal",
             extra: str = "") -> None:
        fam = f' font-family="{_MONO}"' if mono else ""
        wt = f' font-weight="{weight}"' if weight != "normal" else ""
        self.add(f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" text-anchor="{anchor}" '
                 f'fill="{fill}"{fam}{wt}{" " + extra if extra else ""}>{escape(s)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = "#444",
             width: float = 1, extra: str = "") -> None:
        self.add(f'<line x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}" '
                 f'stroke="{stroke}" stroke-width="{width}"{" " + extra if extra else ""}/>')


def _flag_names(flags: int) -> str:
    from arena.memblock import MemblockFlags  # names only; the picture needs no memblock code

    if not flags:
        return "none"
    return "|".join(f.name or "" for f in MemblockFlags if f.value and flags & f.value) or hex(flags)


def _caller_colours(pieces: Sequence[CallerPiece], top: int) -> tuple[dict[str, str],
                                                                          list[tuple[str, int, int]]]:
    """Colour per caller (the ``top`` largest by bytes get their own) and the totals
    ``(caller, bytes, count)`` sorted by bytes, largest first."""
    totals: dict[str, list[int]] = {}
    for p in pieces:
        t = totals.setdefault(p.caller, [0, 0])
        t[0] += p.size
        t[1] += 1
    ranked = sorted(((c, b, n) for c, (b, n) in totals.items()), key=lambda t: (-t[1], t[0]))
    colours = {c: (_CALLER_FILL[i] if i < top else _OTHER_FILL)
               for i, (c, _b, _n) in enumerate(ranked)}
    return colours, ranked


def _densest_clump(items: Sequence[tuple[int, int, float, float]], max_gap_px: float,
                   min_span: int) -> tuple[int, int] | None:
    """The address window of the largest clump of small shapes: ``items`` are ``(start, end,
    x0, x1)`` on one lane; shapes less than ``max_gap_px`` apart on the lane form one clump
    (they look like one mark). Returns the clump's span (at least 3 shapes) widened by 5 % each
    side and to at least ``min_span`` bytes, or ``None``."""
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
    if len(best) < 3:
        return None
    # Inside the clump, the shortest window holding at least half of its shapes (so that a
    # few larger neighbours do not squeeze the many small ones).
    best.sort()
    k = max(3, (len(best) + 1) // 2)
    reach_end: list[int] = []
    for t in best:
        reach_end.append(t[1] if not reach_end else max(reach_end[-1], t[1]))
    s, e = min(((best[i][0], reach_end[i + k - 1]) for i in range(len(best) - k + 1)),
               key=lambda w: w[1] - w[0])
    pad = max((e - s) // 20, (min_span - (e - s)) // 2, 0)
    return max(s - pad, 0), e + pad


def _place(wanted: Iterable[tuple[float, str, int, float]], width: float,
           taken: Sequence[tuple[float, float]] = ()) -> list[tuple[float, float, str, int, float]]:
    """Place labels ``(x, text, kind, font size)`` centred at ``x`` (kept inside
    ``[0, width]``) without overlaps, in the given priority order; returns
    ``(x_left, x_right, text, kind, x)`` of those that fit, also clear of the ``taken``
    intervals. Kind 2 is proportional text, the others monospace."""
    placed: list[tuple[float, float, str, int, float]] = [(a, b, "", -1, a) for a, b in taken]
    for x, label, kind, size in wanted:
        w = _text_w(label, size, mono=kind != 2)
        lo = min(max(x - w / 2, 0), width - w)
        hi = lo + w
        if all(hi + 6 < p[0] or lo - 6 > p[1] for p in placed):
            placed.append((lo, hi, label, kind, x))
    return [p for p in placed if p[3] != -1]


def _ticks(axis: Axis, min_gap_px: float,
           size: float = 10) -> list[tuple[float, float, str, int, float]]:
    """Axis labels: every run start and the end of the last run (kind 0), then round addresses
    inside long runs (kind 1), dropping any label that would collide. Returns ``(x_left,
    x_right, text, kind, tick x)``."""
    wanted: list[tuple[float, str, int, float]] = []
    runs = axis.runs()
    for s, _e, x0, _x1 in runs:
        wanted.append((x0, f"{s:#x}", 0, size))
    wanted.append((axis.width, f"{axis.hi:#x}", 0, size))
    if axis.scale > 0:
        # The largest power of two giving ticks at least min_gap_px apart.
        step = 1 << max(12, math.ceil(math.log2(max(min_gap_px * 1.6 / axis.scale, 1))))
        for s, e, _x0, _x1 in runs:
            a = (s // step + 1) * step
            while a < e:
                wanted.append((axis.x(a), f"{a:#x}", 1, size))
                a += step
    return _place(wanted, axis.width)


@dataclass
class _Shape:
    """A reserved range as drawn: ``[start, end)``, fill, tooltip, and its caller (or "")."""

    start: int
    end: int
    fill: str
    tip: str
    caller: str


def _draw_lane(g: _Svg, axis: Axis, nid: int, memory: Sequence[_Region],
               shapes: Sequence[_Shape], x_left: float, y: float, h: float) -> None:
    """One lane: background, memory (clipped to the axis), flag stripes, compressed holes,
    reserved shapes (at least 1 px), caller names inside shapes wide enough, outline."""
    lo, hi = axis.lo, axis.hi
    fill = _NODE_FILL[nid % len(_NODE_FILL)]
    edge = _NODE_EDGE[nid % len(_NODE_EDGE)]
    g.rect(x_left, y, axis.width, h, "#f7f7f7", None, 'class="lane"')
    for r in memory:
        s, e = max(r.base, lo), min(r.end, hi)
        if s >= e:
            continue
        x0, x1 = x_left + axis.x(s), x_left + axis.x(e)
        tip = (f"memory {_rng(r.base, r.end - r.base)} {human_size(r.end - r.base)}, "
               f"node {nid}, flags {_flag_names(r.flags)}")
        g.rect(x0, y, x1 - x0, h, "url(#nomap)" if r.flags & _NOMAP else fill, tip,
               'class="memory nomap"' if r.flags & _NOMAP else 'class="memory"')
        for flag, colour, dy in ((_MIRROR, "#d4a017", 0), (_HOTPLUG, "#8e44ad", h - 4),
                                 (_DRIVER_MANAGED, "#7f8c8d", h / 2 - 2)):
            if r.flags & flag:
                g.rect(x0, y + dy, max(x1 - x0, 1), 4, colour, tip, 'class="flag"')
    for s, e, x0, x1 in axis.compressed_holes():
        g.rect(x_left + x0, y, x1 - x0, h, "url(#hole)",
               f"hole {_rng(s, e - s)} {human_size(e - s)} (not to scale)", 'class="hole"')
    for sh in shapes:
        s, e = max(sh.start, lo), min(sh.end, hi)
        if s >= e:
            continue
        x0, x1 = x_left + axis.x(s), x_left + axis.x(e)
        w = max(x1 - x0, 1.0)
        cls = "reserved caller" if sh.caller else "reserved"
        g.rect(x0, y + 1, w, h - 2, sh.fill, sh.tip,
               f'class="{cls}" shape-rendering="crispEdges"')
        if sh.caller and w >= _text_w(sh.caller, 10) + 8:
            g.text(x0 + w / 2, y + h / 2 + 3.5, sh.caller, size=10, anchor="middle",
                   fill=_ink(sh.fill), extra='class="inside" pointer-events="none"')
    g.rect(x_left, y, axis.width, h, "none", None, f'stroke="{edge}" stroke-width="1"')


def _draw_ticks(g: _Svg, axis: Axis, x_left: float, y: float, min_gap_px: float) -> float:
    """Tick marks and labels under a lane whose bottom is at ``y``; the sizes of compressed
    holes go on a second line. Returns the height used."""
    for a, b, label, _kind, x in _ticks(axis, min_gap_px):
        g.line(x_left + x, y, x_left + x, y + 4, stroke="#555")
        g.text(x_left + (a + b) / 2, y + 13, label, size=10, anchor="middle", mono=True,
               fill="#333", extra='class="tick"')
    holes = [((x0 + x1) / 2, f"{human_size(e - s)} hole", 2, 9.0)
             for s, e, x0, x1 in axis.compressed_holes()]
    for a, b, label, _kind, _x in _place(holes, axis.width):
        g.text(x_left + (a + b) / 2, y + 24, label, size=9, anchor="middle", fill="#666",
               extra='class="hole-label"')
    return 26.0 if holes else 15.0


def svg(memblock: Any, *, callers: Any = None, title: str | None = None,
        width: int = 1200, top_callers: int = 16, callouts: int = 4) -> str:
    """An SVG memory map of ``memblock`` (the text of a standalone ``.svg`` file).

    * ``callers``: ``(base, size, caller)`` items (:class:`CallerPiece`, e.g. from
      :func:`callers_from_log`) naming who reserved what; reserved bytes no item covers are
      drawn as "caller unknown". ``None``: reserved regions only.
    * ``title``: heading (default ``"Physical memory map"``); ``width``: pixels (>= 400);
      ``top_callers``: the callers (by bytes) with their own colour, the rest share one
      grey (0..16);
      ``callouts``: at most this many of each node's largest reservations are named above
      its lane (with a leader line) when there is room.

    Layout, top to bottom: heading and totals; an overview strip of the whole address space
    (:class:`Axis`, compressed holes hatched) with memory in node colours; one lane per node on
    the node's own compressed axis, with free memory in the node's colour, NOMAP memory
    hatched, MIRROR/HOTPLUG/DRIVER_MANAGED as stripes, reserved ranges (at least 1 px wide) in
    their caller's colour, callouts and address ticks; a zoomed lane over the densest cluster of
    reservations too small to see (when there is one, marked by a dashed box on its lane); the
    legend (nodes, flags, callers with total bytes and count). Reserved ranges outside memory
    are drawn on the lane of the nearest node. Every shape has a ``<title>`` tooltip.
    Raises ``TypeError``/``ValueError`` for bad arguments. O(regions log regions + callers).
    """
    for name, v in (("width", width), ("top_callers", top_callers), ("callouts", callouts)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if width < 400:
        raise ValueError(f"width must be at least 400 pixels, not {width}")
    if not 0 <= top_callers <= len(_CALLER_FILL):
        raise ValueError(f"top_callers must be in 0..{len(_CALLER_FILL)}, not {top_callers}")
    if callouts < 0:
        raise ValueError(f"callouts must be >= 0, not {callouts}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str, not {type(title).__name__}")
    lay = _layout(memblock)
    pieces = _caller_pieces(callers)
    colours, ranked = _caller_colours(pieces, top_callers)
    heading = title if title is not None else "Physical memory map"

    left, right = 96, 24
    map_w = width - left - right
    lane_h = 32
    g = _Svg()
    y = 28.0
    g.text(16, y, heading, size=18, weight="bold")
    mem_total = sum(r.end - r.base for r in lay.memory)
    res_total = sum(r.end - r.base for r in lay.reserved)
    direction = "bottom-up" if getattr(memblock, "bottom_up", False) else "top-down"
    y += 20
    g.text(16, y, f"{human_size(mem_total)} of memory in {len(lay.memory)} regions on "
           f"{len(lay.nodes)} node{'s' if len(lay.nodes) != 1 else ''}; "
           f"{human_size(res_total)} reserved in {len(lay.reserved)} regions"
           + (f" ({len(pieces)} reservations by {len(ranked)} callers)" if pieces else "")
           + f"; allocation {direction}", size=12, fill="#444")
    if not lay.memory and not lay.reserved:
        g.text(left, y + 30, "no memory and no reservations", size=14, fill="#666")
        return _finish(g, width, y + 50, heading)

    # Reserved shapes: regions (caller unknown when callers are given), then caller pieces.
    shapes = [_Shape(r.base, r.end, _UNKNOWN_FILL if pieces else _CALLER_FILL[0],
                     f"reserved {_rng(r.base, r.end - r.base)} {human_size(r.end - r.base)}, "
                     f"flags {_flag_names(r.flags)}" + (", caller unknown" if pieces else ""), "")
              for r in lay.reserved]
    shapes += [_Shape(p.base, p.base + p.size, colours[p.caller],
                      f"{p.caller}: {_rng(p.base, p.size)} {human_size(p.size)}", p.caller)
               for p in pieces]

    # Each shape goes to the lanes of the node memory it lies on; parts outside memory go to
    # the lane of the nearest node.
    runs = sorted((s, e, n) for n, spans in lay.node_extents.items() for s, e in spans)
    lanes = lay.nodes or [0]

    def nearest(addr: int) -> int:
        if not runs:
            return lanes[0]
        i = bisect.bisect_right(runs, (addr, 1 << 70, 0)) - 1
        if i < 0:
            return runs[0][2]
        s, e, n = runs[i]
        if addr < e or i + 1 == len(runs):
            return n
        return n if addr - e <= runs[i + 1][0] - addr else runs[i + 1][2]

    lane_shapes: dict[int, list[_Shape]] = {n: [] for n in lanes}
    for sh in shapes:
        pos = sh.start
        for s, e, n in runs[max(bisect.bisect_right(runs, (sh.start, 1 << 70, 0)) - 1, 0):]:
            if s >= sh.end:
                break
            if e <= pos:
                continue
            if s > pos:
                lane_shapes[nearest(pos)].append(_Shape(pos, s, sh.fill, sh.tip, sh.caller))
            lane_shapes[n].append(_Shape(max(s, pos), min(e, sh.end), sh.fill, sh.tip,
                                         sh.caller))
            pos = min(e, sh.end)
        if pos < sh.end:
            lane_shapes[nearest(pos)].append(_Shape(pos, sh.end, sh.fill, sh.tip, sh.caller))

    # Overview of the whole address space.
    y += 16
    g.add('<g id="overview">')
    g.text(left - 10, y + 13, "all nodes", size=11, anchor="end", fill="#333")
    overview = Axis(lay.extents, map_w, 36.0, lo=lay.lo, hi=lay.hi)
    g.rect(left, y, map_w, 18, "#ffffff", None, 'stroke="#999" stroke-width="1"')
    for r in lay.memory:
        x0, x1 = left + overview.x(r.base), left + overview.x(r.end)
        g.rect(x0, y, x1 - x0, 18, _NODE_EDGE[r.nid % len(_NODE_EDGE)],
               f"memory {_rng(r.base, r.end - r.base)} node {r.nid}",
               'class="memory" fill-opacity="0.55"')
    for s, e, x0, x1 in overview.compressed_holes():
        g.rect(left + x0, y, x1 - x0, 18, "url(#hole)", f"hole {_rng(s, e - s)} "
               f"{human_size(e - s)} (not to scale)", 'class="hole"')
    for r in lay.reserved:
        x0, x1 = left + overview.x(r.base), left + overview.x(r.end)
        g.rect(x0, y + 9, max(x1 - x0, 1.0), 9, "#222222",
               f"reserved {_rng(r.base, r.end - r.base)}",
               'class="reserved" shape-rendering="crispEdges"')
    y += 18 + _draw_ticks(g, overview, left, y + 18, 110) + 14
    g.add("</g>")

    # One lane per node on its own axis.
    axes: dict[int, Axis] = {}
    lane_y: dict[int, float] = {}
    for n in lanes:
        here = lane_shapes[n]
        spans = lay.node_extents.get(n) or [(min(s.start for s in here),
                                             max(s.end for s in here))]
        lo = min([spans[0][0]] + [s.start for s in here])
        hi = max([spans[-1][1]] + [s.end for s in here])
        axis = axes[n] = Axis(spans, map_w, 30.0, lo=lo, hi=hi)
        # Callouts: this node's largest named (or, without callers, any) reservations.
        cands = sorted((s for s in here if s.caller or not pieces),
                       key=lambda s: s.start - s.end)
        wanted: list[tuple[float, str, int, float]] = []
        for c in cands[:callouts]:
            wanted.append(((axis.x(c.start) + axis.x(c.end)) / 2,
                           f"{c.caller or 'reserved'} {human_size(c.end - c.start)}", 2, 11.0))
        row0 = _place(wanted, map_w)
        row1 = _place([w for w in wanted if w[1] not in {p[2] for p in row0}], map_w,
                      [(p[4] - 1, p[4] + 1) for p in row0])
        rows = [r for r in (row0, row1) if r]
        g.add(f'<g class="node" id="node-{n}">')
        edge = _NODE_EDGE[n % len(_NODE_EDGE)]
        top = y + 15 * len(rows) + (2 if rows else 0)
        for i, row in enumerate(rows):
            ty = y + 10 + 15 * i
            for a, _b, label, _k, xc in row:
                g.text(left + a, ty, label, size=11, fill="#222", extra='class="callout"')
                g.line(left + xc, ty + 3, left + xc, top, stroke="#777", width=0.8,
                       extra='class="leader"')
        size = sum(e - s for s, e in lay.node_extents.get(n, []))
        g.text(left - 10, top + 15, f"node {n}", size=13, anchor="end", fill=edge,
               weight="bold")
        g.text(left - 10, top + 28, human_size(size), size=10, anchor="end", fill="#555")
        _draw_lane(g, axis, n, lay.by_node.get(n, []), here, left, top, lane_h)
        lane_y[n] = top
        y = top + lane_h + _draw_ticks(g, axis, left, top + lane_h, 100) + 8
        g.add("</g>")

    # Zoom on the largest clump of reservations narrower than 2 px on their lane.
    best: tuple[int, int, int, int] | None = None
    for n in lanes:
        ax = axes[n]
        small = [(s.start, s.end, ax.x(s.start), ax.x(s.end)) for s in lane_shapes[n]
                 if (s.caller or not pieces) and ax.x(s.end) - ax.x(s.start) < 2]
        window = _densest_clump(small, 3.0, 64 << 10)
        if window is not None:
            count = sum(1 for s, e, _a, _b in small if window[0] <= s and e <= window[1])
            if best is None or count > best[2]:
                best = (window[0], window[1], count, n)
    if best is not None:
        ws, we, _count, n = best
        ws, we = max(ws, axes[n].lo), min(we, axes[n].hi)
        if axes[n].x(we) - axes[n].x(ws) < map_w / 8:
            y = _zoom(g, lay, lane_shapes, (ws, we), axes[n], n, left, map_w, lane_y[n],
                      y + 6, lane_h)

    y = _legend(g, lay, pieces, colours, ranked, top_callers, overview, width, y)
    return _finish(g, width, y, heading)


def _zoom(g: _Svg, lay: _Layout, lane_shapes: dict[int, list[_Shape]], window: tuple[int, int],
          axis: Axis, nid: int, left: float, map_w: float, lane_top: float, y: float,
          lane_h: float) -> float:
    """Mark ``window`` on node ``nid``'s lane and draw it enlarged below; returns the y after."""
    ws, we = window
    x0, x1 = left + axis.x(ws), left + axis.x(we)
    if x1 - x0 < 6:
        x0, x1 = (x0 + x1) / 2 - 3, (x0 + x1) / 2 + 3
    g.add('<g id="zoom">')
    g.rect(x0, lane_top - 3, x1 - x0, lane_h + 6, "none", None,
           'stroke="#111" stroke-width="1.2" stroke-dasharray="3,2" class="zoom-mark"')
    spans = _clip(lay.node_extents.get(nid, []), ws, we)
    zaxis = Axis(spans, map_w, 30.0, lo=ws, hi=we)
    factor = zaxis.scale / axis.scale if axis.scale and zaxis.scale else 0
    g.text(16, y + 10, f"Zoom ×{factor:,.0f} on the densest cluster of small reservations "
           f"(dashed box on node {nid}): {_rng(ws, we - ws)}, {human_size(we - ws)}",
           size=13, weight="bold", extra='class="zoom-title"')
    top = y + 20
    edge = _NODE_EDGE[nid % len(_NODE_EDGE)]
    g.text(left - 10, top + 20, f"node {nid}", size=13, anchor="end", fill=edge, weight="bold")
    _draw_lane(g, zaxis, nid, lay.by_node.get(nid, []), lane_shapes[nid], left, top, lane_h)
    y = top + lane_h + _draw_ticks(g, zaxis, left, top + lane_h, 110)
    g.add("</g>")
    return y + 14


def _legend(g: _Svg, lay: _Layout, pieces: Sequence[CallerPiece], colours: dict[str, str],
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
        items.append((_NODE_FILL[n % len(_NODE_FILL)], f"free memory, node {n} "
                      f"({human_size(size)})", f"node {n}"))
    all_flags = 0
    for r in lay.memory:
        all_flags |= r.flags
    if all_flags & _NOMAP:
        items.append(("url(#nomap)", "NOMAP memory (not mapped)", "MEMBLOCK_NOMAP"))
    if all_flags & _MIRROR:
        items.append(("#d4a017", "MIRROR memory (top stripe)", "MEMBLOCK_MIRROR"))
    if all_flags & _HOTPLUG:
        items.append(("#8e44ad", "HOTPLUG memory (bottom stripe)", "MEMBLOCK_HOTPLUG"))
    if all_flags & _DRIVER_MANAGED:
        items.append(("#7f8c8d", "DRIVER_MANAGED memory (middle stripe)",
                      "MEMBLOCK_DRIVER_MANAGED"))
    if axis.compressed_holes():
        items.append(("url(#hole)", "hole, width not to scale", "no memory"))
    if pieces and _uncovered(lay.reserved, pieces):
        items.append((_UNKNOWN_FILL, "reserved, caller unknown", "reserved"))
    elif lay.reserved and not pieces:
        items.append((_CALLER_FILL[0], "reserved", "reserved"))
    y = _legend_grid(g, items, x0, y, width, 3)
    if ranked:
        y += 8
        g.text(x0, y + 10, "Reserved by (caller: total, reservations)", size=12,
               weight="bold")
        y += 14
        citems = [(colours[c], f"{c}: {human_size(b)}, {n}", f"{c}") for c, b, n in ranked[:top]]
        rest = ranked[top:]
        if rest:
            citems.append((_OTHER_FILL, f"{len(rest)} other callers: "
                           f"{human_size(sum(b for _c, b, _n in rest))}, "
                           f"{sum(n for _c, _b, n in rest)}",
                           ", ".join(c for c, _b, _n in rest[:40])))
        y = _legend_grid(g, citems, x0, y, width, 3)
    g.add("</g>")
    return y + 10


def _uncovered(reserved: Sequence[_Region], pieces: Sequence[CallerPiece]) -> int:
    """Reserved bytes that no caller piece covers."""
    spans = _merge_extents((p.base, p.base + p.size) for p in pieces)
    return sum(r.end - r.base - sum(e - s for s, e in _clip(spans, r.base, r.end))
               for r in reserved)


def _legend_grid(g: _Svg, items: Sequence[tuple[str, str, str]], x0: float, y: float,
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


def _finish(g: _Svg, width: int, height: float, heading: str) -> str:
    h = int(math.ceil(height + 10))
    defs = (
        "<defs>"
        '<pattern id="hole" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#ffffff"/>'
        '<line x1="0" y1="0" x2="0" y2="8" stroke="#c4c4c4" stroke-width="3"/></pattern>'
        '<pattern id="nomap" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(-45)"><rect width="6" height="6" fill="#eeeeee"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#9a9a9a" stroke-width="2"/></pattern>'
        "</defs>"
    )
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
            f'viewBox="0 0 {width} {h}" font-family={quoteattr(_FONT)}>'
            f"<title>{escape(heading)}</title>{defs}"
            f'<rect width="{width}" height="{h}" fill="#ffffff"/>')
    return head + "\n".join(g.parts) + "</svg>\n"
