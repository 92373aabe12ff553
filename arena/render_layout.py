"""What the memory maps draw, before any drawing: a memblock state's regions grouped per node,
and reserved shapes split over the nodes' lanes.

Inputs are read only through the public region tables (``memory.regions`` and
``reserved.regions`` items with ``base size flags nid``), so any :class:`arena.memblock.Memblock`
works, with or without a PhysicalMemory (a replayed log is a pure simulation), and so does any
object with the same two tables. Regions of size 0 (the dummy entry of kernels <= 6.10) are
skipped; a node id that is not a valid node (``NUMA_NO_NODE``, ``MAX_NUMNODES`` of an un-noded
region, no NUMA) counts as node 0, as the kernel's hand-over does.
Complexity: O(regions log regions).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from arena.render_axis import clip, merge_extents
from arena.render_draw import Shape

__all__ = ["Region", "Layout", "layout", "regions_of", "check_memblock", "split_by_lane"]


class Region(NamedTuple):
    """A non-empty region as drawn: ``[base, end)``, flags, node (normalised)."""

    base: int
    end: int
    flags: int
    nid: int


def regions_of(mtype: Any, max_numnodes: int) -> list[Region]:
    """The non-empty regions of a memblock type, node ids normalised (see the module doc)."""
    out = []
    for r in mtype.regions:
        if r.size:
            nid = int(r.nid)
            out.append(Region(int(r.base), int(r.base) + int(r.size), int(r.flags),
                              nid if 0 <= nid < max_numnodes else 0))
    return out


def check_memblock(memblock: Any) -> None:
    """``TypeError`` unless ``memblock`` has ``memory`` and ``reserved`` region tables."""
    for name in ("memory", "reserved"):
        if not hasattr(getattr(memblock, name, None), "regions"):
            raise TypeError(f"expected a Memblock (with memory and reserved region tables), "
                            f"not {type(memblock).__name__}")


@dataclass
class Layout:
    """Regions grouped per node plus the reserved pieces that lie over each node's memory."""

    memory: list[Region]
    reserved: list[Region]
    nodes: list[int]
    by_node: dict[int, list[Region]]
    extents: list[tuple[int, int]]           # runs of memory, all nodes
    node_extents: dict[int, list[tuple[int, int]]]
    lo: int
    hi: int

    def reserved_on(self, nid: int) -> list[tuple[int, int, Region]]:
        """Reserved ``(start, end, region)`` pieces clipped to node ``nid``'s memory."""
        spans = self.node_extents[nid]
        out = []
        for r in self.reserved:
            for s, e in clip(spans, r.base, r.end):
                out.append((s, e, r))
        return out


def layout(memblock: Any) -> Layout:
    """The :class:`Layout` of a memblock state (``TypeError`` for anything else)."""
    check_memblock(memblock)
    mx = int(getattr(memblock, "max_numnodes", 1 << 16))
    memory = regions_of(memblock.memory, mx)
    reserved = regions_of(memblock.reserved, mx)
    by_node: dict[int, list[Region]] = {}
    for r in memory:
        by_node.setdefault(r.nid, []).append(r)
    nodes = sorted(by_node)
    node_extents = {n: merge_extents((r.base, r.end) for r in rs) for n, rs in by_node.items()}
    extents = merge_extents((r.base, r.end) for r in memory)
    ends = [r.base for r in memory + reserved] + [r.end for r in memory + reserved]
    lo, hi = (min(ends), max(ends)) if ends else (0, 0)
    return Layout(memory, reserved, nodes, by_node, extents, node_extents, lo, hi)


def split_by_lane(lay: Layout, shapes: Sequence[Shape]) -> dict[int, list[Shape]]:
    """Each shape goes to the lanes of the node memory it lies on (split at node boundaries);
    parts outside memory go to the lane of the nearest node. Returns ``{nid: shapes}`` for
    every node (node 0 alone when there is no memory). O(shapes × runs touched)."""
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

    out: dict[int, list[Shape]] = {n: [] for n in lanes}
    for sh in shapes:
        pos = sh.start
        for s, e, n in runs[max(bisect.bisect_right(runs, (sh.start, 1 << 70, 0)) - 1, 0):]:
            if s >= sh.end:
                break
            if e <= pos:
                continue
            if s > pos:
                out[nearest(pos)].append(Shape(pos, s, sh.fill, sh.tip, sh.caller))
            out[n].append(Shape(max(s, pos), min(e, sh.end), sh.fill, sh.tip, sh.caller))
            pos = min(e, sh.end)
        if pos < sh.end:
            out[nearest(pos)].append(Shape(pos, sh.end, sh.fill, sh.tip, sh.caller))
    return out
