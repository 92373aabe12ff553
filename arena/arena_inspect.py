"""What an arena can tell about itself: finding the allocation behind an array, ``info``,
``live`` and ``leaks``, the statistics, and the checks of its invariants. A part of
:class:`arena.Arena`.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from arena._args import bool_arg, file_arg
from arena.debug import (
    Record,
    corruption,
)
from arena.errors import (
    DoubleFreeError,
    ForeignBufferError,
    InvariantError,
)
from arena.largecache import Block
from arena.redzone import analyse, restore
from arena.slab import Slot
from arena.stats import ArenaStats, NodeStats, format_stats, fragmentation
from arena.tracking import (
    UNTRACKED,
    AllocationInfo,
    Frame,
    LeakSite,
    format_leaks,
    frame_site,
    leak_sites,
    site,
)
from arena.unit import FREE, HELD, LIVE, Unit

if TYPE_CHECKING:
    from arena.arena import Arena

__all__ = ["Inspection"]


class Inspection:
    """Introspection, statistics and checks of :class:`arena.Arena` (a part of the class)."""

    # -- finding a unit from an array ----------------------------------------------------------

    def _unit_of(self: Arena, array: np.ndarray) -> Unit | None:
        """The unit whose anchor ``array`` derives from (through ``base``, memoryviews and
        helper objects such as ``as_strided``'s), or ``None``. O(1)."""
        x: Any = array
        for _ in range(6):
            base = getattr(x, "base", None)
            if base is None:
                return None
            if type(base) is memoryview:
                base = base.obj
            unit = self._anchors.get(id(base))
            if unit is not None and unit.anchor is base:
                return unit
            x = base
        return None

    def _lookup(self: Arena, array: Any) -> Unit:
        """The live unit ``array`` covers whole; raises as :meth:`free` documents. O(1)."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"need a numpy array from this arena, not {type(array).__name__}")
        unit = self._unit_of(array)
        if unit is not None and unit.state != FREE:
            handed = unit.view
            if unit.state == HELD:
                where = self._freed.get(unit.phys)
                at = f" (at {site(where[0])})" if where else ""
                raise DoubleFreeError(f"the array at phys {unit.phys:#x} was already freed{at}")
            if array is handed:
                return unit
            whole = array.flags.c_contiguous or array.flags.f_contiguous
            phys = self._pm.phys_of(array) if array.nbytes else unit.phys
            if array.nbytes != unit.size or not whole or phys != unit.phys:
                raise ForeignBufferError(
                    f"the array ({array.nbytes} bytes at phys {phys:#x}"
                    f"{'' if whole else ', not contiguous'}) is not the whole of "
                    f"{self._describe(unit)}")
            return unit
        try:
            phys = self._pm.phys_of(array)
        except ValueError as exc:
            raise ForeignBufferError(f"the array was not allocated by this arena: {exc}") from None
        if unit is not None or phys in self._freed:
            where = self._freed.get(phys)
            at = f" (at {site(where[0])})" if where else ""
            raise DoubleFreeError(f"the array at phys {phys:#x} was already freed{at}")
        raise ForeignBufferError(f"the array at phys {phys:#x} ({array.nbytes} bytes) is not an "
                                 f"allocation of this arena (a slice of one, or never allocated)")

    def owns(self: Arena, array: np.ndarray) -> bool:
        """True if :meth:`free` would accept ``array`` now (a live allocation of this arena,
        whole). TypeError for a non-array, ClosedError. O(1)."""
        with self._lock:
            self._open()
            self._collect_full()
            try:
                self._lookup(array)
            except (ForeignBufferError, DoubleFreeError):
                return False
            return True

    # -- introspection ---------------------------------------------------------------------------

    def _describe(self: Arena, unit: Unit) -> str:
        if type(unit) is Record:
            return unit.describe()
        info = self._info(unit)
        return (f"the {info.size}-byte allocation at phys {info.phys:#x} (align {info.align}, "
                f"node {info.node}) allocated at {info.caller}")

    def _stack(self: Arena, unit: Unit) -> tuple[Frame, ...]:
        if unit.stack:
            return unit.stack
        if unit.code is not None:
            return (frame_site(unit.code, unit.lasti),)
        return ()

    def _info(self: Arena, unit: Unit) -> AllocationInfo:
        stack = self._stack(unit)
        return AllocationInfo(
            phys=unit.phys, address=unit.phys + self._virt_delta, size=unit.size,
            reserved=unit.csize, align=self._align if unit.align is None else unit.align,
            node=unit.nid, requested_node=unit.node,
            caller=site(stack[0]) if stack else UNTRACKED,
            stack=tuple(site(f) for f in stack), seq=unit.seq,
            guard_gap=unit.hi - unit.phys - unit.size
            if type(unit) is Record and unit.guard is not None and unit.guard[0] == unit.hi
            else 0)

    def _live_units(self: Arena) -> list[Unit]:
        """Every live (not held) unit, in allocation order. O(live log live)."""
        return sorted((u for u in self._anchors.values() if u.state == LIVE),
                      key=lambda u: u.seq)

    def _nlive(self: Arena) -> int:
        return sum(1 for u in self._anchors.values() if u.state == LIVE)

    def info(self: Arena, array: np.ndarray) -> AllocationInfo:
        """The :class:`AllocationInfo` of a live allocation (the array or a view :meth:`free`
        accepts). Raises like :meth:`free`. O(1)."""
        with self._lock:
            self._open()
            self._collect_full()
            return self._info(self._lookup(array))

    def live(self: Arena) -> list[AllocationInfo]:
        """Every live allocation, in allocation order. O(live log live)."""
        with self._lock:
            self._open()
            self._collect_full()
            return [self._info(u) for u in self._live_units()]

    def leaks(self: Arena) -> list[LeakSite]:
        """Live allocations grouped by the call site that made them, most bytes first.

        Call it when everything should have been freed. Callers are known in debug mode
        (:data:`STACK_DEPTH` frames) or with ``track_callers=True`` (one frame); otherwise
        every allocation is grouped under :data:`arena.tracking.UNTRACKED`. In the
        garbage-collected lifetime an allocation whose arrays are all gone is no leak.
        Raises ClosedError. O(live log live).
        """
        with self._lock:
            self._open()
            self._collect_full()
            return leak_sites([self._info(u) for u in self._live_units()])

    def format_leaks(self: Arena) -> str:
        """:meth:`leaks` as text (empty string if nothing is live). Raises ClosedError."""
        return format_leaks(self.leaks())

    # -- statistics --------------------------------------------------------------------------

    def _free_runs(self: Arena) -> list[tuple[int, int, int]]:
        """Free memory as ``(start, end, nid)`` runs, ascending (empty ranges dropped)."""
        buddy = self._buddy
        if buddy is None:
            return [(s, e, n) for s, e, n in self._mb.for_each_free_mem_range() if s < e]
        shift = self._page_size.bit_length() - 1
        blocks = sorted((pfn, order, nid) for pfn, order, nid in buddy.free_blocks())
        runs: list[tuple[int, int, int]] = []
        for pfn, order, nid in blocks:
            s, e = pfn << shift, (pfn + (1 << order)) << shift
            if runs and runs[-1][1] == s and runs[-1][2] == nid:
                runs[-1] = (runs[-1][0], e, nid)
            else:
                runs.append((s, e, nid))
        return runs

    def _free_summary(self: Arena) -> tuple[int, int]:
        sizes = [e - s for s, e, _ in self._free_runs()]
        return sum(sizes), max(sizes, default=0)

    def stats(self: Arena) -> ArenaStats:
        """A frozen :class:`ArenaStats` snapshot. Raises ClosedError.

        O(live + regions + pages / 4096 for the residency scan).
        """
        with self._lock:
            self._open()
            self._collect_full()
            runs = self._free_runs()
            per: dict[int, list[int]] = {sl.nid: [0, 0] for sl in self._slices}
            requested = 0
            for unit in self._anchors.values():
                if unit.state == LIVE:
                    acc = per[unit.nid]
                    acc[0] += unit.csize
                    acc[1] += 1
                    requested += unit.size
            nodes = []
            weighted = 0.0
            for sl in self._slices:
                sizes = [e - s for s, e, n in runs if n == sl.nid]
                frag = fragmentation(sizes)
                weighted += frag * sum(sizes)
                nodes.append(NodeStats(
                    nid=sl.nid, capacity=sl.size, bytes_allocated=per[sl.nid][0],
                    free_bytes=sum(sizes), largest_free_block=max(sizes, default=0),
                    live_allocations=per[sl.nid][1],
                    resident_bytes=self._pm.resident_bytes(sl.phys_start, sl.size),
                    fragmentation=frag))
            free = sum(n.free_bytes for n in nodes)
            budget = self._budget
            return ArenaStats(
                capacity=self._capacity, bytes_requested=requested,
                bytes_allocated=self._allocated - self._held, held_bytes=self._held,
                retained_bytes=0 if self._large is None else self._large.retained,
                slab_bytes=0 if self._slab is None else self._slab.slab_bytes,
                memblock_bytes=self._mb.array_bytes(),
                quarantined_bytes=self._quarantined,
                total_bytes_allocated=self._total_allocated, free_bytes=free,
                largest_free_block=max((n.largest_free_block for n in nodes), default=0),
                fragmentation=weighted / free if free else 0.0,
                live_allocations=sum(n.live_allocations for n in nodes),
                num_allocations=self._count, max_memory=self._peak, per_node=tuple(nodes),
                resident_bytes=sum(n.resident_bytes for n in nodes), budget=budget,
                budget_remaining=None if budget is None else budget - self._allocated,
                size_classes=self._class_stats())

    def print_stats(self: Arena, file: IO[str] | None = None) -> None:
        """Print :meth:`stats` as a table (one column per node when there are several) to
        ``file`` (default ``sys.stdout``; anything with a ``write`` method). TypeError for
        another ``file``, ClosedError."""
        file = file_arg("file", file)
        print(format_stats(self.stats()), file=file if file is not None else sys.stdout)

    def dump(self: Arena, file: IO[str] | None = None) -> None:
        """Print memblock's ``memblock_dump_all()`` text (and, after :meth:`handover`, the
        page allocator's ``/proc/buddyinfo``; with slabs, the size-class caches'
        ``/proc/slabinfo``) to ``file`` (default ``sys.stdout``). TypeError for a ``file``
        without a ``write`` method, ClosedError. O(regions + slabs)."""
        file = file_arg("file", file)
        with self._lock:
            self._open()
            text = self._mb.dump_all(log=False)
            if self._buddy is not None:
                text += "\n" + self._buddy.buddyinfo(self._mb).rstrip("\n")
            if self._slab is not None and self._slab.nslabs:
                text += "\n" + self._slab.slabinfo().rstrip("\n")
        print(text, file=file if file is not None else sys.stdout)

    # -- checks ------------------------------------------------------------------------------

    def check(self: Arena, *, repair: bool = False) -> list[str]:
        """Verify the arena: memblock's invariants, the bookkeeping and, in debug mode, every
        live red zone and every quarantined block.

        Returns the corruption reports found (empty when clean). Without ``repair`` any
        corruption raises :class:`arena.errors.CorruptionError` (with ``.reports``) and changes
        nothing; with ``repair=True`` the red zones and poison are restored and the reports
        returned. A broken internal invariant raises :class:`InvariantError` (or memblock's
        :class:`arena.errors.MemblockBug`) with a dump. O(live + quarantined bytes + regions).
        """
        repair = bool_arg("repair", repair)
        with self._lock:
            self._open()
            self._collect_full()
            if self._buddy is None:
                self._mb.check()
            else:
                self._buddy.check()
            self._check_bookkeeping()
            reports: list[str] = list(self._pending)
            if not self._debug:
                return reports
            pm = self._pm
            findings = analyse(pm.read, self._index.all())
            reports += [f.text for f in findings]
            if repair and findings:
                for rec in self._index.all():
                    restore(pm.fill, rec)
            if reports and not repair:
                raise corruption(reports)
            self._pending.clear()
            return reports

    def _check_bookkeeping(self: Arena) -> None:
        problem = self._bookkeeping_problem()
        if problem:
            raise InvariantError(f"arena invariant broken: {problem}\n{self!r}\n"
                                 + self._mb.dump_all(log=False))

    def _bookkeeping_problem(self: Arena) -> str | None:
        """The first broken bookkeeping invariant in words, or None. O(live + slots)."""
        units = [u for u in self._anchors.values() if u.state != FREE]
        if sum(u.csize for u in units) != self._allocated:
            return "bytes_allocated differs from the sum of the live blocks and slots"
        if sum(u.csize for u in units if u.state == HELD) != self._held:
            return "held bytes differ from the sum of the held units"
        if sum(r.csize for r in self._quarantine) != self._quarantined:
            return "quarantined bytes differ from the sum of the quarantined blocks"
        for key, u in self._anchors.items():
            if u.anchor is None or id(u.anchor) != key:
                return f"{u!r} is filed under the wrong anchor"
        for u in units:
            if u.view is None:
                return f"{u!r} is handed out but the arena lost its array"
            align = self._align if u.align is None else u.align
            if u.phys % align or u.seq >= self._count or u.size > u.csize:
                return f"{u!r} is misaligned, misnumbered or larger than its unit"
        if self._slab is not None:
            problem = self._slab.problem()
            if problem:
                return f"size-class caches: {problem}"
            if sum(1 for _ in self._slab.in_use()) != sum(1 for u in units if type(u) is Slot):
                return "a slot in use is not filed as live"
        if self._large is not None:
            problem = self._large.problem()
            if problem:
                return f"large size classes: {problem}"
        return self._blocks_problem(units)

    def _blocks_problem(self: Arena, units: list[Unit]) -> str | None:
        """Blocks (records, quarantined records, large blocks, slabs) are disjoint, inside the
        memory and (memblock blocks) reserved."""
        blocks: list[tuple[int, int, int, Any]] = [
            (r.block, r.csize, r.order, r) for r in self._records.values()]
        blocks += [(b.phys, b.nbytes, b.order, b) for b in units if type(b) is Block]
        if self._large is not None:
            blocks += [(b.phys, b.nbytes, b.order, b) for b in self._large.free_blocks()]
        if self._slab is not None:
            blocks += [(sl.base, sl.nbytes, sl.order, sl) for sl in self._slab.slabs()]
        prev_end = -1
        for block, nbytes, order, what in sorted(blocks, key=lambda b: b[0]):
            if block < prev_end or not self._pm.contains(block, nbytes):
                return f"the block of {what!r} overlaps another or lies outside the memory"
            if type(what) is Record and (
                    not block <= what.phys <= what.phys + what.size <= block + nbytes
                    or what.phys % (what.align or self._align)):
                return f"{what.describe()} is misplaced or misaligned in its block"
            if order < 0 and self._buddy is None and not self._reserved_covers(block, nbytes):
                return f"the block of {what!r} is not reserved in memblock"
            prev_end = block + nbytes
        return None

    def _reserved_covers(self: Arena, base: int, size: int) -> bool:
        regions = self._mb.reserved.regions
        lo, hi = 0, len(regions)
        while lo < hi:  # last region with region.base <= base
            mid = (lo + hi) // 2
            if regions[mid].base <= base:
                lo = mid + 1
            else:
                hi = mid
        pos, i = base, lo - 1
        while i >= 0 and i < len(regions) and regions[i].base <= pos < base + size:
            if regions[i].end <= pos:
                return False
            pos = regions[i].end
            i += 1
        return pos >= base + size
