"""The arena's statistics: :class:`ArenaStats`, :class:`NodeStats` and their table.

Names follow pyarrow's ``MemoryPool`` where the meaning is the same (``bytes_allocated``,
``max_memory``, ``num_allocations``, ``total_bytes_allocated``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

__all__ = ["ArenaStats", "ClassStats", "NodeStats", "fragmentation", "format_stats",
           "format_classes"]


@dataclass(frozen=True)
class ClassStats:
    """One size class of :class:`ArenaStats` (all nodes together), like a line of the
    kernel's ``/proc/slabinfo`` or jemalloc's per-bin statistics.

    * ``kind`` — ``"small"`` (a kmalloc class: slots of slabs) or ``"large"`` (a page-multiple
      class: one block per allocation).
    * ``size`` — bytes of a slot (of a block's class).
    * ``in_use`` — slots (blocks) handed out and not back; a freed one still viewed by an
      array counts until it is back.
    * ``free`` — free slots in the class's slabs (free blocks the class retains).
    * ``pages`` — pages the class holds: its slabs (its blocks in use and retained).
    * ``allocations`` — allocations the class served since the arena was created;
      ``frees`` — those that came back (``allocations - in_use``).
    """

    kind: str
    size: int
    in_use: int
    free: int
    pages: int
    allocations: int
    frees: int


@dataclass(frozen=True)
class NodeStats:
    """One node's share of :class:`ArenaStats` (bytes; ``live_allocations`` is a count)."""

    nid: int
    capacity: int
    bytes_allocated: int
    free_bytes: int
    largest_free_block: int
    live_allocations: int
    resident_bytes: int
    fragmentation: float


@dataclass(frozen=True)
class ArenaStats:
    """A snapshot of an arena (:meth:`arena.Arena.stats`). Sizes in bytes.

    * ``capacity`` — memory registered with memblock (the sum of the node slices).
    * ``bytes_requested`` — sum of the sizes asked for by the live allocations.
    * ``bytes_allocated`` (pyarrow's name) — bytes held by the live allocations: each request
      rounded up to its size class (or to the arena's ``align`` granule without the caches),
      plus red zones in debug mode (after :meth:`arena.Arena.handover`: whole buddy blocks).
    * ``held_bytes`` — freed by the program (``free``, ``reset``, a scope's end) but still
      viewed by live arrays (garbage-collected lifetime): reused when the last one is gone.
      The budget bounds ``bytes_allocated + held_bytes``.
    * ``retained_bytes`` — free blocks the large size classes keep for reuse (bounded; given
      back by :meth:`arena.Arena.release_unused` and by the decay).
    * ``slab_bytes`` — memory held by the small size classes' slabs (their slots in use count
      in ``bytes_allocated`` too, their free slots in neither it nor ``free_bytes``).
    * ``memblock_bytes`` — memory memblock reserved for its own region arrays when it grew
      them.
    * ``quarantined_bytes`` — freed blocks held back in debug mode.
    * ``free_bytes``, ``largest_free_block`` — memblock's free ranges (after the hand-over, the
      buddy allocator's free pages, adjacent blocks joined). Alignment gaps between blocks
      are free memory, not padding.
    * ``fragmentation`` — per node ``1 - sum(s**2) / sum(s)**2`` over its free ranges (0 = one
      free range, towards 1 = many small ones), averaged over the nodes weighted by their free
      bytes: a fresh arena reads 0 however many nodes it has.
    * ``total_bytes_allocated`` (pyarrow) — ``bytes_allocated`` summed over every allocation
      ever made; ``live_allocations``; ``num_allocations`` (pyarrow) — allocations ever made.
    * ``max_memory`` (pyarrow) — the peak of ``bytes_allocated + held_bytes``.
    * ``per_node`` — a :class:`NodeStats` per node, ascending.
    * ``resident_bytes`` — pages of the mapping really backed by RAM (``mincore``).
    * ``budget`` — the byte budget (``None`` = none) and ``budget_remaining``.
    * ``size_classes`` — a :class:`ClassStats` per size class used so far (small classes
      first, each kind by ascending size); empty without size classes.

    ``capacity == free_bytes + bytes_allocated + held_bytes + retained_bytes + slab_bytes -
    (slab slots in use) + quarantined_bytes + memblock_bytes + padding lost to alignment``;
    :meth:`arena.Arena.check` verifies the parts it can.
    """

    capacity: int
    bytes_requested: int
    bytes_allocated: int
    held_bytes: int
    retained_bytes: int
    slab_bytes: int
    memblock_bytes: int
    quarantined_bytes: int
    total_bytes_allocated: int
    free_bytes: int
    largest_free_block: int
    fragmentation: float
    live_allocations: int
    num_allocations: int
    max_memory: int
    per_node: tuple[NodeStats, ...]
    resident_bytes: int
    budget: int | None
    budget_remaining: int | None
    size_classes: tuple[ClassStats, ...] = ()


def fragmentation(sizes: Sequence[int]) -> float:
    """``1 - sum(s**2) / sum(s)**2`` over free range sizes (0.0 for none)."""
    free = sum(sizes)
    return 1.0 - sum(s * s for s in sizes) / (free * free) if free else 0.0


def format_stats(st: ArenaStats) -> str:
    """The table :meth:`arena.Arena.print_stats` prints (one column per node when there are
    several)."""
    names = [f.name for f in fields(ArenaStats) if f.name not in ("per_node", "size_classes")]
    lines = [f"{'arena':<22}{'total':>20}"]
    for name in names:
        value = getattr(st, name)
        if isinstance(value, float):
            text = f"{value:.4f}"
        elif value is None:
            text = "-"
        else:
            text = f"{value:,}"
        lines.append(f"{name:<22}{text:>20}")
    if len(st.per_node) > 1:
        node_fields = [f.name for f in fields(NodeStats) if f.name != "nid"]
        lines.append("")
        lines.append(f"{'node':<22}" + "".join(f"{n.nid:>16}" for n in st.per_node))
        for name in node_fields:
            cells = [getattr(n, name) for n in st.per_node]
            lines.append(f"{name:<22}" + "".join(
                f"{c:>16.4f}" if isinstance(c, float) else f"{c:>16,}" for c in cells))
    if st.size_classes:
        lines.append("")
        lines.append(format_classes(st.size_classes))
    return "\n".join(lines)


def format_classes(classes: Sequence[ClassStats]) -> str:
    """The size classes as a table, one row per class (the last part of
    :meth:`arena.Arena.print_stats`)."""
    head = ("class", "size", "in_use", "free", "pages", "allocations", "frees")
    rows = [head] + [(c.kind, f"{c.size:,}", f"{c.in_use:,}", f"{c.free:,}", f"{c.pages:,}",
                      f"{c.allocations:,}", f"{c.frees:,}") for c in classes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        f"{r[0]:<{widths[0]}}" + "".join(f"  {r[i]:>{widths[i]}}" for i in range(1, len(r)))
        for r in rows)
