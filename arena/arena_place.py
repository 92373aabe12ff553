"""The arena's general allocation path: a request the hot path does not serve goes to its size
class (fresh memory from memblock or the buddy allocator when the class has none) or becomes a
reservation of its own (debug mode, ``slab=False``, a class that could not be retained).
A part of :class:`arena.Arena`.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING, Any

import numpy as np

from arena import tmtrace
from arena._arena_util import (
    _FAST_LARGE_SIZES,
    _HUGE_BLOCK,
    _HUGE_PAGE,
    _U8,
    _align_arg,
    _caller,
    _ndarray,
    _round_up,
)
from arena._args import bool_arg, int_arg
from arena.debug import (
    POISON_INUSE,
    RED_ACTIVE,
    Record,
)
from arena.errors import (
    BudgetExceededError,
    InvariantError,
)
from arena.guard import GUARD_ALIGN, guard_need, guard_place, install_handler, register
from arena.largecache import Block
from arena.memblock import NUMA_NO_NODE
from arena.physmem import MAX_ALIGN
from arena.slab import KMALLOC_MAX_SIZE, KmemCache
from arena.tracking import (
    capture,
)
from arena.unit import LIVE, Unit

if TYPE_CHECKING:
    from arena.arena import Arena

__all__ = ["Placement"]

_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE


class Placement:
    """The general allocation path of :class:`arena.Arena` (a part of the class)."""

    # -- the general path --------------------------------------------------------------------

    def _alloc(self: Arena, nbytes: Any, align: Any, node: Any, strict_node: Any, zero: Any,
               dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
        """The one allocation core behind :meth:`alloc` and :meth:`alloc_array` when the hot
        path does not apply: checks, then a size class or a record."""
        nbytes = int_arg("nbytes", nbytes)
        if not 0 <= nbytes < 1 << 62:
            raise ValueError(f"nbytes must be in 0 .. 2**62, not {nbytes}")
        if align is None:   # guard mode: as malloc's, so that most blocks end flush
            align = self._align if self._guard is None else min(self._align, GUARD_ALIGN)
        else:
            align = _align_arg("align", align)
        nid = self._node_arg(node)
        strict = bool_arg("strict_node", strict_node)
        zero = bool_arg("zero", zero)
        if strict and nid == NUMA_NO_NODE:
            raise ValueError("strict_node=True needs a node")
        frame = _caller(2)
        tmtrace.sync()   # tracing started where the wrapped tracemalloc.start() did not see it
        with self._lock:
            self._open()
            if self._gc and (self._allocated > self._gc_bytes or
                             len(self._young) > self._gc_units):
                self._collect_full()
            unit: Unit | None = None
            cache: Any = None
            if self._slab is not None:
                cache, unit = self._class_unit(nbytes, align, nid, strict)
            if unit is None:
                return self._alloc_record(nbytes, align, nid, strict, zero, dtype, shape,
                                          frame)
            try:
                view = self._hand_out(unit, nbytes, zero, dtype, shape, cache)
            except BaseException:
                self._give(unit)
                raise
            self._count_class(unit)
            unit.align = None if align == self._align else align
            unit.node = None if nid == NUMA_NO_NODE else nid
            if self._track:
                self._remember_caller(unit, frame)
            if cache is not None and nid == NUMA_NO_NODE and align == self._align \
                    and nbytes and not self._autocheck:
                self._remember_fast(nbytes, cache)
            if self._autocheck:
                self._check_bookkeeping()
        return view

    def _class_unit(self: Arena, nbytes: int, align: int, nid: int,
                    strict: bool) -> tuple[Any, Unit | None]:
        """``(cache, unit)`` from the size class of a request, or ``(None, None)`` if no class
        serves it (the caller makes a record). Raises the budget and out-of-memory errors."""
        slab, large = self._slab, self._large
        if not (slab is not None and large is not None):
            raise InvariantError("arena_place: expected slab is not None and large is not None")
        if nbytes <= KMALLOC_MAX_SIZE:
            index = slab.index(nbytes, align)
            if index is None:   # aligned beyond what its class guarantees
                return None, None
            if not self._fits(slab.caches[slab.nids[0]][index].size):
                return None, None   # the padding of the class would break the budget
            for attempt in (0, 1):
                got: KmemCache | None = slab.cache(index, nid)
                if got is not None and not got.free:
                    got = slab.refill(index, nid, self._get_slab_pages, self._put_slab_pages)
                if got is not None:
                    return got, got.free.pop()
                if attempt == 0 and not self._reclaim():
                    break
            if nid != NUMA_NO_NODE and not strict:
                return None, None   # memblock's node fallback decides
            raise self._oom(nbytes, slab.caches[slab.nids[0]][index].size, align, nid, strict)
        if align > MAX_ALIGN // 2 or nbytes == 0:
            return None, None
        size = large.class_size(nbytes)
        if size > large.limit or not self._fits(size):
            return None, None   # never retained, or its padding would break the budget
        block = large.take(size, nid, strict, align)
        if block is not None:
            self._check_budget_or_put_back(block, nbytes, align, nid)
            return (large.target(size) if nid == NUMA_NO_NODE else None), block
        return self._fresh_block(size, nbytes, align, nid, strict)

    def _check_budget_or_put_back(self: Arena, block: Block, nbytes: int, align: int,
                                  nid: int) -> None:
        try:
            self._check_budget(block.csize, nbytes, align, nid)
        except BudgetExceededError:
            block.home.append(block)  # type: ignore[union-attr]
            self._large.retained += block.csize  # type: ignore[union-attr]
            raise

    def _fresh_block(self: Arena, size: int, nbytes: int, align: int, nid: int,
                     strict: bool) -> tuple[Any, Unit]:
        """A new large block of class ``size`` from memblock (or the buddy allocator)."""
        large = self._large
        if large is None:
            raise InvariantError("arena_place: expected large is not None")
        ps = self._page_size
        order = -1
        nbytes_block = size
        if self._buddy is not None:
            order = max((size // ps - 1).bit_length(), max(align // ps, 1).bit_length() - 1)
            if order > self._buddy.max_order:
                raise self._oom(nbytes, size, align, nid, strict)
            nbytes_block = ps << order
        self._check_budget(nbytes_block, nbytes, align, nid)
        base = 0
        huge = order < 0 and nbytes_block >= _HUGE_BLOCK
        if huge:   # numpy's rule for its own buffers: huge pages from 4 MiB, 2 MiB aligned
            align = max(align, _HUGE_PAGE)
        for attempt in (0, 1):
            base = self._get_block(nbytes_block, max(align, ps), nid, strict, order)
            if base or attempt or not self._reclaim():
                break
        if not base:
            raise self._oom(nbytes, nbytes_block, align, nid, strict)
        got = self._nid_of(base)
        cache = large.cache(size, got)
        if huge:
            self._pm.advise_hugepages(base, nbytes_block)
        block = Block(base, base - self._delta, nbytes_block, got, cache.free, order,
                      nbytes_block)
        try:
            self._pm.zero(base, nbytes_block)   # touches only pages written before
            self._pm.view(base, nbytes_block)   # records the block as written
        except BaseException:
            self._put_block(block)
            raise
        if nid == NUMA_NO_NODE:
            large.targets[size] = cache
        return (large.target(size) if nid == NUMA_NO_NODE else cache), block

    def _hand_out(self: Arena, unit: Unit, nbytes: int, zero: bool, dtype: np.dtype | None,
                  shape: tuple[int, ...] | None, cache: Any) -> np.ndarray:
        """Make the array of a unit taken from a class and file the allocation."""
        anchor = unit.anchor if unit.anchor is not None else self._make_anchor(unit)
        view = anchor[:nbytes]
        if zero and nbytes and unit.dirty:
            view.fill(0)
        if dtype is not None:
            view = view.view(dtype).reshape(shape)
        self._file(unit, view, nbytes)
        return view

    def _make_anchor(self: Arena, unit: Unit) -> np.ndarray:
        """The unit's anchor (see :class:`arena.unit.Unit`), made and indexed."""
        end = unit.block + unit.csize if type(unit) is Record else unit.phys + unit.csize
        anchor = unit.anchor = _ndarray((end - unit.phys,), _U8, self._buf, unit.boff)
        self._anchors[id(anchor)] = unit
        return anchor

    def _drop_anchor(self: Arena, unit: Unit) -> None:
        """Forget the anchor of a unit whose memory goes back to its page source."""
        anchor = unit.anchor
        if anchor is not None:
            del self._anchors[id(anchor)]
            unit.anchor = None
        unit.view = None   # the array kept for reuse goes with it
        unit.vsize = -1
        unit.vshape = None

    def _file(self: Arena, unit: Unit, view: np.ndarray, nbytes: int) -> None:
        """Record a unit as handed out as ``view`` (counters, scope)."""
        unit.dirty = True
        unit.state = LIVE
        unit.size = nbytes
        unit.seq = seq = self._count
        self._count = seq + 1
        csize = unit.csize
        self._allocated += csize
        self._total_allocated += csize
        if self._allocated > self._peak:
            self._peak = self._allocated
        unit.view = view
        unit.vsize = nbytes
        unit.vshape = None if view.ndim == 1 else view.shape
        unit.vdtype = view.dtype
        if self._gc:
            self._young.append(unit)
        if tmtrace.tracing:
            tmtrace.track(unit.phys + self._virt_delta, csize)
        if self._nscopes:
            self._scope_add(unit, seq)

    def _remember_caller(self: Arena, unit: Unit, frame: Any) -> None:
        if self._debug:
            unit.stack = capture(frame, self._stack_depth)
            unit.code = None
        else:
            unit.code = frame.f_code if frame is not None else None
            unit.lasti = frame.f_lasti if frame is not None else 0

    def _remember_fast(self: Arena, nbytes: int, cache: Any) -> None:
        """Let the hot path serve ``nbytes`` from ``cache`` from now on."""
        fast = self._fast
        if nbytes > KMALLOC_MAX_SIZE:
            if len(fast) > KMALLOC_MAX_SIZE + _FAST_LARGE_SIZES:   # forget the large ones
                for key in [k for k in fast if k > KMALLOC_MAX_SIZE]:
                    del fast[key]
            fast[nbytes] = cache

    def _scope_add(self: Arena, unit: Unit, seq: int) -> None:
        """File a new allocation in the innermost scope of this context, if it has one."""
        units = self._scopevar.get()
        if units is not None:
            units.append((unit, seq))

    def _fits(self: Arena, nbytes: int) -> bool:
        """``nbytes`` more fit in the budget (after a full collection if needed)."""
        if self._allocated + nbytes <= self._limit:
            return True
        return self._collect_full() and self._allocated + nbytes <= self._limit

    def _check_budget(self: Arena, reserved: int, nbytes: int, align: int, nid: int) -> None:
        budget = self._budget
        if budget is not None and not self._fits(reserved):
            raise self._memory_error(
                BudgetExceededError,
                f"allocating {nbytes} bytes (holding {reserved}) would take the arena to "
                f"{self._allocated + reserved} bytes, over its budget of {budget} "
                f"({budget - self._allocated} left)", nbytes, align, nid)

    def _alloc_record(self: Arena, nbytes: int, align: int, nid: int, strict: bool, zero: bool,
                      dtype: np.dtype | None, shape: tuple[int, ...] | None,
                      frame: Any) -> np.ndarray:
        """An allocation that is a reservation of its own (debug mode, ``slab=False``, or no
        size class serves it). Layout: ``[left red zone][nbytes][right red zone +
        padding]``; the left red zone is a multiple of ``align`` so the user's bytes stay
        aligned (above a page of alignment it is dropped). Guard mode: see
        :mod:`arena.guard`."""
        debug = self._debug
        guard = self._guard
        rz = self._redzone
        left = 0
        block_align = align
        if guard is not None:
            need, block_align = guard_need(nbytes, align, self._page_size, guard)
        else:
            if debug:
                left = _round_up(rz, align) if align <= self._page_size else 0
            need = left + nbytes + (rz if debug else 0)
        if self._buddy is None:
            order = -1
            reserved = _round_up(max(need, 1), self._align)
        else:
            order = self._order_for(need, block_align, nbytes, nid)
            reserved = self._page_size << order
        self._check_budget(reserved, nbytes, align, nid)
        block = self._get_block(reserved, block_align, nid, strict, order)
        if not block and self._reclaim():
            block = self._get_block(reserved, block_align, nid, strict, order)
        if not block:
            raise self._oom(nbytes, reserved, align, nid, strict)
        rec = self._new_record(block, left, reserved, order, nbytes, align, nid)
        view = self._fill_record(rec, nbytes, zero, dtype, shape)
        rec.align = align
        if self._track:
            self._remember_caller(rec, frame)
        self._records[rec.phys] = rec
        self._freed.pop(rec.phys, None)
        if debug:
            self._index.add(rec)
            if guard is not None:
                register(rec, self._virt_delta)
        self._file(rec, view, nbytes)
        if self._autocheck:
            self._check_bookkeeping()
        return view

    def _new_record(self: Arena, block: int, left: int, reserved: int, order: int,
                    nbytes: int, align: int, nid: int) -> Record:
        """The record of a new block: user bytes ``left`` bytes in (guard mode: placed
        against the guard page)."""
        phys = block + left
        guard = None
        if self._guard is not None:
            phys, lo, hi, guard = guard_place(block, nbytes, align, self._page_size,
                                              self._guard)
        rec = Record(phys, phys - self._delta, block, reserved, order, self._nid_of(block),
                     None if nid == NUMA_NO_NODE else nid)
        if guard is not None:
            rec.lo, rec.hi, rec.guard = lo, hi, guard
        return rec

    def _fill_record(self: Arena, rec: Record, nbytes: int, zero: bool,
                     dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
        """Write a new record's patterns (debug), protect its guard page and make its array;
        on failure the block goes back and nothing changed."""
        pm = self._pm
        phys, block, reserved = rec.phys, rec.block, rec.csize
        try:
            if zero and nbytes:
                pm.zero(phys, nbytes)   # touches only pages written before
            pm.view(block, reserved)    # records the block as written
            if self._debug:
                if phys > rec.lo:
                    pm.fill(rec.lo, phys - rec.lo, RED_ACTIVE)
                if rec.hi > phys + nbytes:
                    pm.fill(phys + nbytes, rec.hi - phys - nbytes, RED_ACTIVE)
                if nbytes and not zero:
                    pm.fill(phys, nbytes, POISON_INUSE)
            if rec.guard is not None:
                install_handler()
                pm.protect(rec.guard[0], rec.guard[1] - rec.guard[0], 0)
            anchor = self._make_anchor(rec)
            view = anchor[:nbytes]
            if dtype is not None:
                view = view.view(dtype).reshape(shape)
        except BaseException:   # the memory failed: the block goes back, nothing changed
            self._drop_anchor(rec)
            if rec.guard is not None:
                pm.protect(block, reserved, _PROT_RW)
            self._give_back(block, reserved, rec.order)
            raise
        return view
