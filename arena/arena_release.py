"""How an arena's memory goes back: the page sources of its size classes, the collections of
the garbage-collected lifetime (a unit goes back once no array views it), and the free core
shared by ``free``, scopes and ``reset``. A part of :class:`arena.Arena`.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING, Any

from arena import tmtrace
from arena._arena_util import (
    _GC_MIN_BYTES,
    _GC_MIN_UNITS,
    _YOUNG_RECHECK,
    _YOUNG_SCAN,
    FREED_MEMORY,
    _getrefcount,
    _viewed,
)
from arena.debug import (
    POISON_FREE,
    Record,
    corruption,
)
from arena.errors import (
    ArenaMemoryError,
    InvariantError,
)
from arena.guard import unregister
from arena.largecache import Block
from arena.memblock import MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE
from arena.redzone import check_records
from arena.slab import Slab, Slot
from arena.tracking import (
    Frame,
    capture,
)
from arena.unit import FREE, HELD, LIVE, Unit

if TYPE_CHECKING:
    from arena.arena import Arena

__all__ = ["Release"]

_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE


class Release:
    """Giving memory back, for :class:`arena.Arena` (a part of the class)."""

    # -- page sources --------------------------------------------------------------------------

    def _get_slab_pages(self: Arena, nbytes: int, order: int, nid: int,
                        exact: bool) -> tuple[int, int] | None:
        """The slab caches' page source (:data:`arena.slab.GetPages`): a page-aligned block
        from memblock, after the hand-over a buddy block of ``order``."""
        buddy = self._buddy
        if buddy is None:
            base = self._get_block(nbytes, self._page_size, nid, exact, -1)
            return (base, -1) if base else None
        if order > buddy.max_order:   # blocks that large do not exist: memblock's path decides
            return None
        base = self._get_block(nbytes, self._page_size, nid, exact, order)
        return (base, order) if base else None

    def _put_slab_pages(self: Arena, slab: Slab) -> None:
        """Give an empty slab back to where it came from (:data:`arena.slab.PutPages`)."""
        freed = self._freed
        for slot in slab.slots:
            self._drop_anchor(slot)
            if slot.seq >= 0:
                freed[slot.phys] = ()
                freed.move_to_end(slot.phys)
        while len(freed) > FREED_MEMORY:
            freed.popitem(last=False)
        self._give_back(slab.base, slab.nbytes, slab.order)

    def _put_block(self: Arena, block: Block) -> None:
        """Give a large block back to where it came from, and its pages to the OS."""
        self._drop_anchor(block)
        self._give_back(block.phys, block.nbytes, block.order)
        if self._buddy is None or block.order >= 0:
            self._pm.release(block.phys, block.nbytes, unviewed=True)

    def _reclaim(self: Arena) -> bool:
        """Give every retained block and empty slab back (before failing a request for want
        of memory); True if anything went back."""
        got = int(self._collect_full())
        if self._large is not None:
            got += self._large.release(self._put_block)
        if self._slab is not None:
            got += self._slab.shrink(self._put_slab_pages)
        return got > 0

    def _order_for(self: Arena, need: int, align: int, nbytes: int, nid: int) -> int:
        """Buddy order of a block of at least ``need`` bytes aligned to ``align``."""
        ps = self._page_size
        pages = max(1, -(-need // ps))
        order = max((pages - 1).bit_length(), max(align // ps, 1).bit_length() - 1)
        buddy = self._buddy
        if buddy is None:
            raise InvariantError("arena_release: expected buddy is not None")
        if order > buddy.max_order:
            raise self._memory_error(
                ArenaMemoryError,
                f"cannot allocate {nbytes} bytes aligned to {align} from the page allocator: "
                f"its largest block is {ps << buddy.max_order} bytes (order "
                f"{buddy.max_order})", nbytes, align, nid)
        return order

    def _get_block(self: Arena, reserved: int, align: int, nid: int, strict: bool, order: int) -> int:
        """Physical address of a new block from memblock or the buddy allocator; 0 if none."""
        buddy = self._buddy
        if buddy is None:
            # memblock_alloc_range_nid(): node nid, then any node unless exact.
            return self._mb.alloc_range_nid(reserved, align, 0, MEMBLOCK_ALLOC_ACCESSIBLE, nid,
                                            strict)
        node: int | None = None if nid == NUMA_NO_NODE else nid
        if node is not None and node not in buddy.nodes:
            if strict:
                return 0
            node = None
        return buddy.alloc_pages_phys(order, node=node, strict_node=strict) or 0

    def _give_back(self: Arena, block: int, nbytes: int, order: int) -> None:
        """Give ``[block, block + nbytes)`` back: a buddy block of ``order``, or (order -1) a
        memblock reservation (after the hand-over: ``memblock_free_late()``)."""
        if order >= 0:
            if self._buddy is None:
                raise InvariantError("arena_release: expected self._buddy is not None")
            self._buddy.free_pages(block, order)
        elif self._buddy is None:
            if self._mb.phys_free(block, nbytes):   # -ENOMEM: memblock changed nothing
                raise self._memory_error(
                    ArenaMemoryError,
                    f"cannot free [{block:#x}+{nbytes:#x}]: memblock could not grow its "
                    f"reserved array to split the region (-ENOMEM); nothing was freed",
                    nbytes, 1, NUMA_NO_NODE)
        else:
            self._mb.free_late(block, nbytes)

    def _oom(self: Arena, nbytes: int, reserved: int, align: int, nid: int,
             strict: bool) -> ArenaMemoryError:
        free, largest = self._free_summary()
        where = "any node" if nid == NUMA_NO_NODE else (
            f"node {nid}" + (" only" if strict else " (then any node)"))
        quarantined = (f", {self._quarantined} bytes in the debug quarantine"
                       if self._quarantined else "")
        return self._memory_error(
            ArenaMemoryError,
            f"cannot allocate {nbytes} bytes (holding {reserved}) aligned to {align} on {where}: "
            f"{free} bytes free, largest free block {largest}{quarantined}", nbytes, align, nid)

    def _memory_error(self: Arena, cls: type[ArenaMemoryError], message: str, nbytes: int,
                      align: int, nid: int) -> ArenaMemoryError:
        """An :class:`arena.errors.ArenaMemoryError` (or subclass) carrying the request and
        the state of free memory."""
        free, largest = self._free_summary()
        return cls(message, size=nbytes, align=align,
                   node=None if nid == NUMA_NO_NODE else nid, free_bytes=free,
                   largest_free=largest)

    def _slab_changed(self: Arena, slab: Slab) -> None:
        """A free made ``slab`` (not a current one) leave the full state or become empty."""
        if self._slab is None:
            raise InvariantError("arena_release: expected self._slab is not None")
        self._slab.slab_changed(slab, self._put_slab_pages)

    # -- giving units back -------------------------------------------------------------------

    def _collect_young(self: Arena) -> bool:
        """Garbage-collected lifetime: give back the newest units handed out that no array
        views any more (their anchor's reference count is the arena's own). True if any went
        back. Runs under the lock, when a free list runs dry. O(:data:`_YOUNG_SCAN`)."""
        young = self._young
        if len(young) > self._gc_units:
            return self._collect_full()
        # Only units handed out since the last scan, and the few newest survivors of it: a
        # size whose units all stay alive (tiles of an image) then costs O(1) per allocation,
        # not a scan of the same live units each time its free list runs dry (profiled: the
        # largest part of the arena's time in a numpy pipeline). Units dying behind the mark
        # are found by the full collections.
        lo = max(0, len(young) - _YOUNG_SCAN, self._young_mark)
        if lo >= len(young):
            return False
        keep = []
        got = False
        for unit in young[lo:]:
            state = unit.state
            if state == FREE:
                continue
            if _getrefcount(unit.view) > 2 or _getrefcount(unit.anchor) > 3:   # _viewed()
                keep.append(unit)
            elif type(unit) is Slot:
                # _reclaim_unit() + _give() for a slot, written out: this loop gives back most
                # of what a program allocates and drops, and the calls were half its cost per
                # unit (bench/RESULTS.md, measurements).
                csize = unit.csize
                self._allocated -= csize
                got = True
                if state == HELD:
                    self._held -= csize
                unit.state = FREE
                if tmtrace.tracing:
                    tmtrace.untrack(unit.phys + self._virt_delta)
                home = unit.home
                home.append(unit)  # type: ignore[union-attr]
                n = len(home)  # type: ignore[arg-type]
                if (n == 1 or n == unit.slab.nslots) and not unit.slab.is_cur:
                    self._slab_changed(unit.slab)
            elif self._try_reclaim(unit):
                got = True
            else:
                keep.append(unit)
        young[lo:] = keep
        self._young_mark = max(0, len(young) - _YOUNG_RECHECK)
        return got

    def _collect_full(self: Arena) -> bool:
        """Garbage-collected lifetime: give back every unit no array views any more, and set
        the bounds of the next full collection. True if any went back. O(units handed out)."""
        if not self._gc or self._collecting:
            return False
        self._collecting = True   # a finalizer freeing into the arena meanwhile must not nest
        try:
            return self._sweep()
        finally:
            self._collecting = False

    def _sweep(self: Arena) -> bool:
        """The body of :meth:`_collect_full`."""
        keep: list[Unit] = []
        refused: list[Unit] = []
        seen: set[int] = set()
        got = False
        for unit in self._young:
            if unit.state == FREE or id(unit) in seen:
                continue
            seen.add(id(unit))
            if _viewed(unit):
                keep.append(unit)
            elif self._try_reclaim(unit):
                got = True
            else:
                refused.append(unit)
        while refused:   # memblock refused some (-ENOMEM): the others' frees may make room
            again = [u for u in refused if not self._try_reclaim(u)]
            if len(again) == len(refused):
                break
            refused = again
            got = True
        keep += refused
        self._young = keep
        self._young_mark = max(0, len(keep) - _YOUNG_RECHECK)
        self._gc_bytes = max(2 * self._allocated, _GC_MIN_BYTES)
        self._gc_units = max(2 * len(keep), _GC_MIN_UNITS)
        return got

    def _try_reclaim(self: Arena, unit: Unit) -> bool:
        """:meth:`_reclaim_unit` from a collection: False (the unit stays as it is, for a
        later collection) when memblock refuses to take a record back (-ENOMEM)."""
        try:
            self._reclaim_unit(unit)
        except ArenaMemoryError:
            return False
        return True

    def _reclaim_unit(self: Arena, unit: Unit) -> None:
        """A unit nobody views any more goes back (held or not)."""
        state = unit.state
        if type(unit) is Record and not self._debug:
            self._give(unit)   # first: memblock may refuse (-ENOMEM), then the unit waits
            self._allocated -= unit.csize
            if state == HELD:
                self._held -= unit.csize
            return
        self._allocated -= unit.csize
        if state == HELD:
            self._held -= unit.csize
        if type(unit) is Record and self._debug:
            if state == LIVE:   # dropped without free(): freed now
                for report in check_records(self._pm.read, self._index, [unit]):
                    self._pending.append(report + "\n  (found when its last array died)")
                unit.state = FREE
                self._retire_records([unit], ())
            elif unit.quarantined:
                unit.state = FREE   # the quarantine gives it back when it leaves
            else:
                self._give_debug(unit)
            return
        self._give(unit)

    def _give(self: Arena, unit: Unit) -> None:
        """Put a unit that nobody holds any more back where it belongs. Raises
        :class:`arena.errors.ArenaMemoryError` (a record memblock could not free; nothing
        changed)."""
        if tmtrace.tracing:
            tmtrace.untrack(unit.phys + self._virt_delta)
        if type(unit) is Record:
            self._give_back(unit.block, unit.csize, unit.order)   # first: it may refuse
            unit.state = FREE
            del self._records[unit.phys]
            self._drop_anchor(unit)
            return
        unit.state = FREE
        if type(unit) is Slot:
            home = unit.home
            home.append(unit)  # type: ignore[union-attr]
            n = len(home)  # type: ignore[arg-type]
            if (n == 1 or n == unit.slab.nslots) and not unit.slab.is_cur:
                self._slab_changed(unit.slab)
        elif self._buddy is not None and unit.order < 0:   # type: ignore[attr-defined]
            self._give_back(unit.phys, unit.nbytes, -1)   # type: ignore[attr-defined]
        else:
            self._large.give(unit, self._put_block)  # type: ignore[union-attr,arg-type]

    def _free_units(self: Arena, units: list[Unit], frame: Any) -> None:
        """The free core (free, scope exit, reset): check everything, then change state. In the
        garbage-collected lifetime a unit an array still views is held (a collection gives it
        back once none does)."""
        stack = capture(frame, self._stack_depth) if self._debug else ()
        records = [u for u in units if type(u) is Record]
        if self._debug and records:
            evict = self._evictions(sum(rec.csize for rec in records))
            reports = check_records(self._pm.read, self._index, records + evict)
            if reports:
                raise corruption(reports)
        freed = self._freed
        gc = self._gc
        for unit in units:
            if not gc:
                if self._debug and type(unit) is Record:
                    unit.state = FREE
                    self._retire_records([unit], stack)
                else:
                    self._give(unit)   # may refuse (-ENOMEM): this unit and the rest stay live
                self._allocated -= unit.csize
            elif not _viewed(unit):   # nobody views it: back at once
                self._reclaim_unit(unit)
            else:
                unit.state = HELD
                self._held += unit.csize
                if self._debug and type(unit) is Record:
                    self._retire_records([unit], stack)
            freed[unit.phys] = stack
            freed.move_to_end(unit.phys)
        while len(freed) > FREED_MEMORY:
            freed.popitem(last=False)
        if gc and len(self._young) > self._gc_units:
            # A unit freed here and reused before any collection is on the list of units
            # handed out once per reuse: a loop that frees what it allocates would grow it
            # without bound, since its free lists never run dry. (_collect_full() does nothing
            # while a collection is running.)
            self._collect_full()
        if self._autocheck:
            self._check_bookkeeping()

    def _retire_records(self: Arena, recs: list[Record], stack: tuple[Frame, ...]) -> None:
        """Debug mode: poison freed records and quarantine them; the oldest leave (and go
        back, unless arrays still view them: then the last one's death gives them back)."""
        for rec in recs:
            if tmtrace.tracing:   # freed: the quarantine holds it, nobody may use it
                tmtrace.untrack(rec.phys + self._virt_delta)
            rec.freed_at = stack
            rec.quarantined = True
            if rec.guard is None:
                self._pm.fill(rec.block, rec.csize, POISON_FREE)
            else:   # a read or a write after free faults
                self._pm.protect(rec.block, rec.csize, 0)
            self._quarantine.append(rec)
            self._quarantined += rec.csize
        q = self._quarantine
        while self._quarantined > self._quarantine_limit:
            old = q.popleft()
            self._quarantined -= old.csize
            old.quarantined = False
            if old.state == FREE:
                self._give_debug(old)

    def _give_debug(self: Arena, rec: Record) -> None:
        """Give a debug record back (:meth:`_give`): off the index, its pages readable and
        writable again (guard mode)."""
        if rec.guard is not None:
            self._pm.protect(rec.block, rec.csize, _PROT_RW)
        try:
            self._give(rec)
        except BaseException:
            if rec.guard is not None:
                self._pm.protect(rec.block, rec.csize, 0)   # as it was: freed
            raise
        self._index.remove(rec)
        if rec.guard is not None:
            unregister(rec, self._virt_delta)

    def _drop_guards(self: Arena) -> None:
        """At close: forget the guarded blocks; if the mapping outlives the arena (arrays still
        alive), make their pages readable and writable again."""
        for rec in self._index.all():
            if rec.guard is not None:
                unregister(rec, self._virt_delta)
                if not self._pm.closed:
                    self._pm.protect(rec.block, rec.csize, _PROT_RW)
        self._index.clear()

    def _evictions(self: Arena, adding: int) -> list[Record]:
        """Quarantined records that adding ``adding`` bytes pushes out (oldest first)."""
        over = self._quarantined + adding - self._quarantine_limit
        out = []
        for rec in self._quarantine:
            if over <= 0:
                break
            out.append(rec)
            over -= rec.csize
        return out
