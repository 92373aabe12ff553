"""Where a boot-log replay starts: the state a log does not print.

Three cases, decided by :func:`arena.trace.replay`:

* **An empty memblock**, when the log prints every call from the first ``memblock_add`` on.
* **A start state given by hand** (``Settings.memory``/``reserved``/``nomap``, the command
  line's ``--memory START-END[@NID]``, ``--reserved START-END``, ``--nomap START-END``): for
  logs that begin after RAM and the kernel image were set up. :func:`apply_given` adds it
  before the first operation.
* **The state of a ``MEMBLOCK configuration`` dump**, when the operations printed before the
  first dump cannot explain it (:func:`unexplained`): device-tree boots add RAM before they
  parse ``memblock=debug``, and 3.15 kernels print no ``memblock_add`` at all. :func:`load_dump`
  rebuilds memory, reserved and physmem from the dump, region by region, with their flags and
  nodes (and the printed ``memory size``, which trimming leaves above the sum of the regions);
  the operations printed before it are skipped as contained in it.

Ranges are ``(base, size)`` pairs, ``[base, base + size)`` in bytes. Everything here is
O(regions log regions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from arena.bootlog import AllocOp, DoubleOp, DumpOp, DumpRegion, Op, RangeOp
from arena.constants import NUMA_NO_NODE

__all__ = ["unexplained", "apply_given", "load_dump"]


def _union(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged ``(start, end)`` intervals of the non-empty ``(base, size)`` ranges."""
    out: list[tuple[int, int]] = []
    for base, size in sorted(r for r in ranges if r[1] > 0):
        end = base + size
        if out and base <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((base, end))
    return out


def _uncovered(base: int, end: int, covered: list[tuple[int, int]]) -> int:
    """Bytes of ``[base, end)`` outside the merged intervals ``covered``."""
    import bisect

    out, at = 0, base
    i = max(0, bisect.bisect_right(covered, (base, 1 << 80)) - 1)
    while at < end:
        if i >= len(covered) or covered[i][0] >= end:
            return out + end - at
        start, stop = covered[i]
        if start > at:
            out += start - at
        at = max(at, stop)
        i += 1
    return out


def _outside(regions: Sequence[DumpRegion], covered: list[tuple[int, int]]) -> DumpRegion | None:
    """The first region no printed call explains: wholly uncovered by ``covered`` (merged
    intervals), or with a page or more outside it. A few stray bytes are a divergence to
    report, not missing calls."""
    for r in regions:
        if not r.size:
            continue  # the empty dummy entry of kernels <= 6.10
        missing = _uncovered(r.base, r.base + r.size, covered)
        if missing == r.size or missing >= 4096:
            return r
    return None


def _printed(ops: Sequence[Op]) -> tuple[list[tuple[int, int]], list[tuple[int, int]],
                                         list[tuple[int, int]]]:
    """(memory, reserved, physmem) ranges the printed operations could have put there."""
    memory, reserved, physmem = [], [], []
    for op in ops:
        if isinstance(op, RangeOp) and op.kind == "add":
            memory.append((op.base, op.size))
        elif isinstance(op, RangeOp) and op.kind == "reserve":
            reserved.append((op.base, op.size))
        elif isinstance(op, RangeOp) and op.kind == "physmem_add":
            physmem.append((op.base, op.size))
        elif isinstance(op, AllocOp) and op.result is not None:
            reserved.append((op.result, op.size))
        elif isinstance(op, DoubleOp):
            reserved.append((op.base, op.end - op.base + 1))
    return memory, reserved, physmem


def unexplained(dump: DumpOp, ops: Sequence[Op], memory: Iterable[tuple[int, int]] = (),
                reserved: Iterable[tuple[int, int]] = ()) -> str | None:
    """Why the operations ``ops`` printed before ``dump`` (plus a start state given by hand,
    ``memory``/``reserved``) cannot have produced it, or ``None`` when they can.

    They cannot when the dump shows memory no add covers, a reservation no reserve or
    allocation covers, or physmem no ``memblock_physmem_add`` covers (a region wholly outside
    them, or a page or more of it): calls made before the log began (or before
    ``memblock=debug`` took effect). Trimming, removals and frees only take away, so covering is
    what counts; a region a few bytes off is a divergence for the replay to report."""
    mem, res, phys = _printed(ops)
    checks = [("memory", dump.memory, mem + list(memory), "memblock_add"),
              ("reserved", dump.reserved, res + list(reserved), "reserve or allocation")]
    if dump.physmem is not None:
        checks.append(("physmem", dump.physmem, phys, "memblock_physmem_add"))
    for name, regions, ranges, what in checks:
        r = _outside(regions, _union(ranges))
        if r is not None:
            where = f" (line {r.lineno})" if r.lineno else ""
            return f"it shows {name} {r}{where} that no printed {what} before it covers"
    return None


def apply_given(mb: Any, memory: Sequence[tuple[int, int, int | None]],
                reserved: Sequence[tuple[int, int]], nomap: Sequence[tuple[int, int]]) -> None:
    """Add a start state given by hand to the (empty) memblock ``mb``: memory ranges
    (``memblock_add``, or ``memblock_add_node`` when a node is given), then reserved ranges
    (``memblock_reserve``), then ``memblock_mark_nomap`` on the nomap ranges."""
    for base, size, nid in memory:
        if nid is None:
            mb.add(base, size)
        else:
            mb.add_node(base, size, nid)
    for base, size in reserved:
        mb.reserve(base, size)
    for base, size in nomap:
        mb.mark_nomap(base, size)


def _check_region(mb: Any, name: str, r: DumpRegion) -> None:
    """Refuse (``ValueError``) a region this memblock cannot hold, before touching it."""
    if r.base > mb.phys_addr_max or r.size > mb.phys_addr_max - r.base + 1:
        raise ValueError(f"{name} region {r} does not fit a {mb.phys_addr_bits}-bit "
                         "phys_addr_t")
    if (r.flags or 0) & ~0x7F:
        raise ValueError(f"{name} region {r} has unknown flags")


def load_dump(mb: Any, dump: DumpOp) -> None:
    """Rebuild the (empty) memblock ``mb`` from ``dump``: every memory region with its node and
    flags, every reserved region likewise, every physmem region, and the printed memory size.

    A region printed without a node gets the node its kind of call records: ``MAX_NUMNODES``
    for memory (``memblock_add``) and, before 6.16, for reserved; ``NUMA_NO_NODE`` for reserved
    from 6.16. Dump regions are minimal (the kernel merged neighbours), so adding them one by
    one gives the same arrays."""
    reserved_default = NUMA_NO_NODE if mb.kernel_version >= (6, 16) else mb.max_numnodes
    for r in dump.memory:
        if r.size:
            mb.add_node(r.base, r.size, mb.max_numnodes if r.nid is None else r.nid,
                        r.flags or 0)
    for r in dump.reserved:
        if r.size:
            _check_region(mb, "reserved", r)
            mb.reserve_node(r.base, r.size, reserved_default if r.nid is None else r.nid,
                            r.flags or 0)
    for r in dump.physmem or ():
        if r.size:
            mb.physmem_add(r.base, r.size)
    total = sum(r.size for r in dump.memory)
    if dump.memory_size > total:  # trimmed before the dump: the kernel kept the old total
        mb.set_total_size(mb.memory, dump.memory_size)
