"""The kernel's linear walk, written plainly: the one reference implementation of memblock.

Kernel counterpart: ``mm/memblock.c`` (newest behaviour). Two parts:

* :func:`find_range_top_down` / :func:`find_range_bottom_up`: the kernel's
  ``__memblock_find_range_top_down()`` / ``__memblock_find_range_bottom_up()``: the first
  aligned fit in the free ranges, in walk order. Whoever walks free ranges uses these:
  :class:`arena.memblock.Memblock` (its reference path, ``_fast = False``), :class:`LinearMemblock`
  below and the soak's byte-map model (:class:`arena.soak_models.MemblockModel`).
* :class:`LinearMemblock`: a plain memblock, restricted to what the benchmarks and the
  equivalence tests need: ``memory`` and ``reserved`` (no ``physmem``), NUMA on, no mirror /
  KHO / hot-plug policy, no debug lines or warnings, no hand-over. It shares nothing with
  :class:`arena.memblock.Memblock` but the two walks above, the constants and the exceptions;
  it is the baseline of the memblock benchmark (``bench/bench_memblock.py``: "what a
  straightforward port of the kernel's algorithm costs") and the oracle of
  ``tests/test_linear_ref.py``, ``tests/test_memblock_fastpath.py`` and
  ``tests/test_memblock_unsorted.py``, which run it side by side with ``Memblock`` on random
  operation sequences and compare every result and both region arrays. Any fast path added to
  ``Memblock`` must keep those tests green.

Invariants (as the kernel's): each region list is sorted by base, non-overlapping and minimal
(touching neighbours with equal nid and flags are merged) and ``total_size`` is the sum of the
sizes, until :meth:`trim_memory` breaks them as the kernel's does (it does not lower the total,
and a region within ``align`` of the top of the address space wraps to start at 0, leaving
the list unsorted; every loop here then simply goes on walking it); ``cnt == len(regions)
<= max``.

Data: a region is a plain tuple ``(base, size, flags, nid)`` (the field order of
:class:`arena.memblock.Region`, so the two compare equal); each type keeps a Python list of them.
Every operation walks the list from index 0, exactly as the kernel's loops do: O(n) per call in
the number of regions, no bisection, no index. Method names, arguments and return conventions
are those of :class:`arena.memblock.Memblock` (0 / ``-ENOMEM``; 0 for a failed allocation;
:class:`arena.errors.MemblockPanic` when an array must grow without :meth:`allow_resize`).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from typing import Any

from arena.constants import (
    DRIVER_MANAGED,
    ENOMEM,
    HOTPLUG,
    KHO_SCRATCH,
    MIRROR,
    NOMAP,
    NUMA_NO_NODE,
    RSRV_KERN,
    round_up_wrap,
)
from arena.constants import FLAGS_MASK as _FLAGS_MASK
from arena.constants import PHYS_ADDR_MAX_64 as PHYS_ADDR_MAX
from arena.errors import MemblockBug, MemblockPanic

__all__ = [
    "LinearMemblock",
    "LinearType",
    "PHYS_ADDR_MAX",
    "NUMA_NO_NODE",
    "find_range_bottom_up",
    "find_range_top_down",
]

Region = tuple[int, int, int, int]  # (base, size, flags, nid)


def find_range_bottom_up(free_ranges: Iterable[tuple[int, int, int]], start: int, end: int,
                         size: int, align: int, mask: int = PHYS_ADDR_MAX) -> int:
    """``__memblock_find_range_bottom_up()``: the lowest aligned fit in the first free range
    (``(start, end, nid)``, ascending) that holds it, each range clamped to ``[start, end)``;
    0 if none. ``round_up`` wraps at ``mask`` (``PHYS_ADDR_MAX``) as in C. O(ranges)."""
    for ts, te, _ in free_ranges:
        ts = start if ts < start else (end if ts > end else ts)
        te = start if te < start else (end if te > end else te)
        cand = round_up_wrap(ts, align, mask)
        if cand < te and te - cand >= size:
            return cand
    return 0


def find_range_top_down(free_ranges: Iterable[tuple[int, int, int]], start: int, end: int,
                        size: int, align: int, mask: int = PHYS_ADDR_MAX) -> int:
    """``__memblock_find_range_top_down()``: the highest aligned fit in the first free range
    (``(start, end, nid)``, descending) that holds it, each range clamped to ``[start, end)``;
    0 if none. O(ranges)."""
    keep = ~((align - 1) & mask)
    for ts, te, _ in free_ranges:
        ts = start if ts < start else (end if ts > end else ts)
        te = start if te < start else (end if te > end else te)
        if te < size:
            continue
        cand = (te - size) & keep                        # round_down
        if cand >= ts:
            return cand
    return 0


def _u64(name: str, v: Any) -> int:
    """A ``phys_addr_t`` argument: an int (numpy integers fine) in ``0 .. PHYS_ADDR_MAX``."""
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError(f"{name} must be an integer, not {type(v).__name__} ({v!r})")
    v = operator.index(v)
    if not 0 <= v <= PHYS_ADDR_MAX:
        raise ValueError(f"{name}={v} does not fit a 64-bit phys_addr_t")
    return v


def _c_int(name: str, v: Any) -> int:
    """An ``int`` argument (a node id): any C int."""
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError(f"{name} must be an integer, not {type(v).__name__} ({v!r})")
    v = operator.index(v)
    if not -(1 << 31) <= v < 1 << 31:
        raise ValueError(f"{name}={v} does not fit a C int")
    return v


class LinearType:
    """``struct memblock_type``: ``name``, ``regions`` (a list of ``(base, size, flags, nid)``),
    ``max`` (capacity), ``total_size`` (bytes) and ``cnt`` (= ``len(regions)``)."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.regions: list[Region] = []
        self.max = capacity
        self.total_size = 0
        self.array_phys: int | None = None  # None: the static initial array

    @property
    def cnt(self) -> int:
        """Number of regions (newest kernels: 0 when empty)."""
        return len(self.regions)

    def __repr__(self) -> str:
        return f"<LinearType {self.name} cnt={self.cnt} max={self.max} total={self.total_size:#x}>"


class LinearMemblock:
    """A plain, linear-time memblock with :class:`arena.memblock.Memblock`'s method names.

    ``LinearMemblock(*, page_size=4096, smp_cache_bytes=64, max_numnodes=64, init_regions=128,
    region_size=24)`` takes the architecture numbers with ``Memblock``'s defaults. Supported:
    :meth:`add`, :meth:`add_node`, :meth:`reserve`, :meth:`reserve_kern`, :meth:`phys_free`,
    :meth:`remove`, :meth:`allow_resize`, :meth:`set_bottom_up`, :meth:`set_current_limit`,
    :meth:`phys_alloc`, :meth:`phys_alloc_range`, :meth:`alloc_range_nid`,
    :meth:`for_each_free_mem_range` (and ``_reverse``), :meth:`trim_memory`,
    :meth:`mark_nomap`, :meth:`clear_nomap`, :meth:`mark_hotplug`, :meth:`set_node`,
    :meth:`cap_memory_range`, and the
    queries :meth:`is_memory`, :meth:`is_reserved`, :meth:`is_region_memory`,
    :meth:`overlaps_region`, :meth:`is_region_reserved`. Every call is O(n) in the regions.
    Bad arguments (not an int, negative, wider than 64 bits) raise TypeError/ValueError
    before anything changes.
    """

    def __init__(self, *, page_size: int = 4096, smp_cache_bytes: int = 64,
                 max_numnodes: int = 64, init_regions: int = 128, region_size: int = 24) -> None:
        self.page_size = page_size
        self.smp_cache_bytes = smp_cache_bytes
        self.max_numnodes = max_numnodes
        self.region_size = region_size
        self.memory = LinearType("memory", init_regions)
        self.reserved = LinearType("reserved", init_regions)
        self.bottom_up = False
        self.current_limit = PHYS_ADDR_MAX
        self.can_resize = False

    # -- plain state ----------------------------------------------------------------------------

    def allow_resize(self) -> None:
        """``memblock_allow_resize()``: region arrays may double from now on."""
        self.can_resize = True

    def set_bottom_up(self, enable: bool) -> None:
        """``memblock_set_bottom_up()``: True = allocate from low addresses first."""
        self.bottom_up = bool(enable)

    def set_current_limit(self, limit: int) -> None:
        """``memblock_set_current_limit()``: upper bound of ACCESSIBLE allocations (bytes)."""
        self.current_limit = _u64("limit", limit)

    # -- region array primitives ------------------------------------------------------------------

    def _insert_region(self, t: LinearType, idx: int, base: int, size: int, nid: int,
                       flags: int) -> None:
        """``memblock_insert_region()``: put a region at ``idx``; BUG if the array is full."""
        if len(t.regions) >= t.max:
            raise MemblockBug(f"memblock: inserting into a full {t.name} array")
        t.regions.insert(idx, (base, size, flags, nid))
        t.total_size = (t.total_size + size) & PHYS_ADDR_MAX

    def _merge_regions(self, t: LinearType, start_rgn: int, end_rgn: int) -> None:
        """``memblock_merge_regions()``: merge touching equal neighbours in the pairs
        ``(i, i + 1)``, ``i`` in ``[start_rgn - 1, end_rgn - 1]``."""
        r = t.regions
        i = start_rgn - 1 if start_rgn > 0 else 0
        limit = min(end_rgn, len(r) - 1)
        while i < limit:
            a_base, a_size, a_flags, a_nid = r[i]
            b_base, b_size, b_flags, b_nid = r[i + 1]
            if a_base + a_size != b_base or a_nid != b_nid or a_flags != b_flags:
                if a_base + a_size > b_base:
                    raise MemblockBug(f"memblock: {t.name}[{i}] overlaps the next region")
                i += 1
                continue
            r[i] = (a_base, a_size + b_size, a_flags, a_nid)
            del r[i + 1]
            limit -= 1

    def _double_array(self, t: LinearType, new_area_start: int, new_area_size: int) -> int:
        """``memblock_double_array()``: twice the capacity; the new array's pages are found by
        memblock itself (avoiding the pending range for ``reserved``) and reserved. 0 or -1."""
        if not self.can_resize:
            raise MemblockPanic(f"memblock: cannot resize {t.name} array")
        ps = self.page_size
        old_size = t.max * self.region_size
        new_size = old_size * 2
        old_alloc = (old_size + ps - 1) // ps * ps
        new_alloc = (new_size + ps - 1) // ps * ps
        if t is not self.reserved:
            new_area_start = new_area_size = 0
        addr = self._find_in_range(new_area_start + new_area_size, self.current_limit,
                                   new_alloc, ps)
        if not addr and new_area_size:
            addr = self._find_in_range(0, min(new_area_start, self.current_limit), new_alloc, ps)
        if not addr:
            return -1
        old_phys = t.array_phys
        t.max *= 2
        t.array_phys = addr
        if old_phys is not None:
            self._remove_range(self.reserved, old_phys, old_alloc)
        if self._add_range(self.reserved, addr, new_alloc, NUMA_NO_NODE, RSRV_KERN) != 0:
            raise MemblockBug(f"memblock: could not reserve the doubled {t.name} array")
        return 0

    def _add_range(self, t: LinearType, base: int, size: int, nid: int, flags: int) -> int:
        """``memblock_add_range()``: add the uncovered parts of ``[base, base + size)`` with
        ``(nid, flags)``, then merge. One inserting pass when ``2 * cnt + 1 <= max``, else a
        counting pass, the doublings it asks for, and the inserting pass. 0 or ``-ENOMEM``."""
        size = min(size, PHYS_ADDR_MAX - base)
        if not size:
            return 0
        end = base + size
        r = t.regions
        if not r:
            r.append((base, size, flags, nid))
            t.total_size = size
            return 0
        inserting = len(r) * 2 + 1 <= t.max
        while True:
            cur = base
            nr_new = 0
            start_rgn = -1
            end_rgn = 0
            idx = 0
            while idx < len(r):
                rbase, rsize = r[idx][0], r[idx][1]
                rend = rbase + rsize
                if rbase >= end:
                    break
                if rend <= cur:
                    idx += 1
                    continue
                if rbase > cur:
                    nr_new += 1
                    if inserting:
                        if start_rgn == -1:
                            start_rgn = idx
                        end_rgn = idx + 1
                        self._insert_region(t, idx, cur, rbase - cur, nid, flags)
                        idx += 1
                cur = min(rend, end)
                idx += 1
            if cur < end:
                nr_new += 1
                if inserting:
                    if start_rgn == -1:
                        start_rgn = idx
                    end_rgn = idx + 1
                    self._insert_region(t, idx, cur, end - cur, nid, flags)
            if not nr_new:
                return 0
            if inserting:
                break
            while len(r) + nr_new > t.max:
                if self._double_array(t, base, size) < 0:
                    return -ENOMEM
            inserting = True
        self._merge_regions(t, start_rgn, end_rgn)
        return 0

    def _isolate_range(self, t: LinearType, base: int, size: int) -> tuple[int, int, int]:
        """``memblock_isolate_range()``: split regions at both ends of the range; returns
        ``(ret, start_rgn, end_rgn)`` with the regions inside at ``[start_rgn, end_rgn)``."""
        size = min(size, PHYS_ADDR_MAX - base)
        if not size:
            return 0, 0, 0
        end = base + size
        while len(t.regions) + 2 > t.max:
            if self._double_array(t, base, size) < 0:
                return -ENOMEM, 0, 0
        r = t.regions
        start_rgn = end_rgn = 0
        idx = 0
        while idx < len(r):
            rbase, rsize, rflags, rnid = r[idx]
            rend = rbase + rsize
            if rbase >= end:
                break
            if rend <= base:
                idx += 1
                continue
            if rbase < base:
                # straddles the start: the lower piece goes below, go on with the upper one
                r[idx] = (base, rend - base, rflags, rnid)
                t.total_size -= base - rbase
                self._insert_region(t, idx, rbase, base - rbase, rnid, rflags)
                idx += 1
            elif rend > end:
                # straddles the end: insert the lower piece and look at it again
                r[idx] = (end, rend - end, rflags, rnid)
                t.total_size -= end - rbase
                self._insert_region(t, idx, rbase, end - rbase, rnid, rflags)
            else:
                if not end_rgn:
                    start_rgn = idx
                end_rgn = idx + 1
                idx += 1
        return 0, start_rgn, end_rgn

    def _remove_range(self, t: LinearType, base: int, size: int) -> int:
        """``memblock_remove_range()``: isolate, then drop the regions inside. 0/-ENOMEM."""
        ret, start_rgn, end_rgn = self._isolate_range(t, base, size)
        if ret:
            return ret
        for i in range(end_rgn - 1, start_rgn - 1, -1):
            t.total_size = (t.total_size - t.regions[i][1]) & PHYS_ADDR_MAX
            del t.regions[i]
        return 0

    # -- public add / remove / reserve / free ----------------------------------------------------

    def add_node(self, base: int, size: int, nid: int, flags: int = 0) -> int:
        """``memblock_add_node()``: add ``[base, base + size)`` to memory on ``nid``."""
        base, size, nid = _u64("base", base), _u64("size", size), _c_int("nid", nid)
        flags = _u64("flags", flags)
        if flags & ~_FLAGS_MASK:
            raise ValueError(f"flags={flags:#x} has unknown bits")
        return self._add_range(self.memory, base, size, nid, flags)

    def add(self, base: int, size: int) -> int:
        """``memblock_add()``: add to memory with nid ``MAX_NUMNODES``, flags 0."""
        return self._add_range(self.memory, _u64("base", base), _u64("size", size),
                               self.max_numnodes, 0)

    def remove(self, base: int, size: int) -> int:
        """``memblock_remove()``: remove ``[base, base + size)`` from memory."""
        return self._remove_range(self.memory, _u64("base", base), _u64("size", size))

    def reserve(self, base: int, size: int) -> int:
        """``memblock_reserve()``: reserve with nid ``NUMA_NO_NODE``, flags 0."""
        return self._add_range(self.reserved, _u64("base", base), _u64("size", size),
                               NUMA_NO_NODE, 0)

    def reserve_kern(self, base: int, size: int) -> int:
        """``memblock_reserve_kern()``: reserve with nid ``NUMA_NO_NODE``, flags RSRV_KERN."""
        return self._add_range(self.reserved, _u64("base", base), _u64("size", size),
                               NUMA_NO_NODE, RSRV_KERN)

    def phys_free(self, base: int, size: int) -> int:
        """``memblock_phys_free()``: un-reserve ``[base, base + size)`` (before slab)."""
        return self._remove_range(self.reserved, _u64("base", base), _u64("size", size))

    # -- flags, nodes, trimming ------------------------------------------------------------------

    def _setclr_flag(self, t: LinearType, base: int, size: int, set_: bool, flag: int) -> int:
        """``memblock_setclr_flag()``: isolate, set or clear ``flag`` inside, merge the window."""
        ret, start_rgn, end_rgn = self._isolate_range(t, base, size)
        if ret:
            return ret
        r = t.regions
        for i in range(start_rgn, end_rgn):
            b, sz, f, n = r[i]
            r[i] = (b, sz, f | flag if set_ else f & ~flag, n)
        self._merge_regions(t, start_rgn, end_rgn)
        return 0

    def mark_nomap(self, base: int, size: int) -> int:
        """``memblock_mark_nomap()``."""
        return self._setclr_flag(self.memory, _u64("base", base), _u64("size", size), True, NOMAP)

    def clear_nomap(self, base: int, size: int) -> int:
        """``memblock_clear_nomap()``."""
        return self._setclr_flag(self.memory, _u64("base", base), _u64("size", size), False,
                                 NOMAP)

    def mark_hotplug(self, base: int, size: int) -> int:
        """``memblock_mark_hotplug()``."""
        return self._setclr_flag(self.memory, _u64("base", base), _u64("size", size), True,
                                 HOTPLUG)

    def set_node(self, base: int, size: int, type: str, nid: int) -> int:  # noqa: A002
        """``memblock_set_node()`` on ``"memory"`` or ``"reserved"``."""
        base, size, nid = _u64("base", base), _u64("size", size), _c_int("nid", nid)
        t = self._type(type)
        ret, start_rgn, end_rgn = self._isolate_range(t, base, size)
        if ret:
            return ret
        r = t.regions
        for i in range(start_rgn, end_rgn):
            r[i] = (*r[i][:3], nid)
        self._merge_regions(t, start_rgn, end_rgn)
        return 0

    def trim_memory(self, align: int) -> None:
        """``memblock_trim_memory()``: round every memory region in to ``align`` (the mask
        macros: any ``align``, wrapping); shrunk regions keep their old size in
        ``total_size``; vanishing ones are removed and the same index is looked at again."""
        align = _u64("align", align)
        t = self.memory
        r = t.regions
        i = 0
        while i < len(r):
            b, sz, f, n = r[i]
            start = round_up_wrap(b, align, PHYS_ADDR_MAX)
            end = (b + sz) & ~((align - 1) & PHYS_ADDR_MAX)          # round_down
            if start == b and end == b + sz:
                i += 1
            elif start < end:
                r[i] = (start, end - start, f, n)
                i += 1
            else:
                t.total_size = (t.total_size - sz) & PHYS_ADDR_MAX
                del r[i]

    def cap_memory_range(self, base: int, size: int) -> None:
        """``memblock_cap_memory_range()``: isolate, then drop every memory region before and
        after the isolated ones (by index) unless NOMAP, and reserved outside the range."""
        base, size = _u64("base", base), _u64("size", size)
        t = self.memory
        if not size or not t.total_size:
            return
        ret, start_rgn, end_rgn = self._isolate_range(t, base, size)
        if ret:
            return
        r = t.regions
        for i in [*range(len(r) - 1, end_rgn - 1, -1), *range(start_rgn - 1, -1, -1)]:
            if not r[i][2] & NOMAP:
                t.total_size = (t.total_size - r[i][1]) & PHYS_ADDR_MAX
                del r[i]
        self._remove_range(self.reserved, 0, base)
        self._remove_range(self.reserved, (base + size) & PHYS_ADDR_MAX, PHYS_ADDR_MAX)

    # -- queries ------------------------------------------------------------------------------

    def _type(self, name: str) -> LinearType:
        if name not in ("memory", "reserved"):
            raise ValueError(f"type must be 'memory' or 'reserved', not {name!r}")
        return self.memory if name == "memory" else self.reserved

    @staticmethod
    def _search(t: LinearType, addr: int) -> int:
        """``memblock_search()``: the binary search, probe by probe; -1 if it finds nothing
        (on an unsorted array it may miss a region that holds ``addr``, or find one)."""
        r = t.regions
        left, right = 0, len(r)
        while left < right:
            mid = (left + right) // 2
            if addr < r[mid][0]:
                right = mid
            elif addr >= r[mid][0] + r[mid][1]:
                left = mid + 1
            else:
                return mid
        return -1

    def is_memory(self, addr: int) -> bool:
        """``memblock_is_memory()``."""
        return self._search(self.memory, _u64("addr", addr)) != -1

    def is_reserved(self, addr: int) -> bool:
        """``memblock_is_reserved()``."""
        return self._search(self.reserved, _u64("addr", addr)) != -1

    def is_region_memory(self, base: int, size: int) -> bool:
        """``memblock_is_region_memory()``: the region the search finds holds the range."""
        base, size = _u64("base", base), _u64("size", size)
        i = self._search(self.memory, base)
        if i == -1:
            return False
        b, sz = self.memory.regions[i][:2]
        return b + sz >= base + min(size, PHYS_ADDR_MAX - base)

    def overlaps_region(self, type: str, base: int, size: int) -> bool:  # noqa: A002
        """``memblock_overlaps_region()``: any region (in array order) meets the range."""
        base, size = _u64("base", base), _u64("size", size)
        end = base + min(size, PHYS_ADDR_MAX - base)
        return any(base < b + sz and b < end for b, sz, _, _ in self._type(type).regions)

    def is_region_reserved(self, base: int, size: int) -> bool:
        """``memblock_is_region_reserved()``."""
        return self.overlaps_region("reserved", base, size)

    # -- free-range iteration ---------------------------------------------------------------------

    def _skip(self, m_flags: int, m_nid: int, nid: int, flags: int) -> bool:
        """``should_skip_region()`` for a memory region (movable_node off)."""
        if 0 <= nid < self.max_numnodes and nid != m_nid:
            return True
        if flags & MIRROR and not m_flags & MIRROR:
            return True
        if not flags & NOMAP and m_flags & NOMAP:
            return True
        if not flags & DRIVER_MANAGED and m_flags & DRIVER_MANAGED:
            return True
        return bool(flags & KHO_SCRATCH and not m_flags & KHO_SCRATCH)

    def _gap(self, k: int) -> tuple[int, int]:
        """Gap ``k`` of reserved: between region ``k - 1`` and region ``k``."""
        r = self.reserved.regions
        start = r[k - 1][0] + r[k - 1][1] if k else 0
        end = r[k][0] if k < len(r) else PHYS_ADDR_MAX
        return start, end

    def for_each_free_mem_range(self, nid: int = NUMA_NO_NODE,
                                flags: int = 0) -> Iterator[tuple[int, int, int]]:
        """``for_each_free_mem_range()``: ``(start, end, nid)`` of memory minus reserved,
        ascending (the kernel's two-index walk; empty ranges included)."""
        n_gaps = len(self.reserved.regions) + 1
        k = 0
        for m_base, m_size, m_flags, m_nid in self.memory.regions:
            if self._skip(m_flags, m_nid, nid, flags):
                continue
            m_end = m_base + m_size
            while k < n_gaps:
                gs, ge = self._gap(k)
                if gs >= m_end:
                    break
                if m_base < ge:
                    yield max(m_base, gs), min(m_end, ge), m_nid
                    if m_end <= ge:
                        break
                k += 1

    def for_each_free_mem_range_reverse(self, nid: int = NUMA_NO_NODE,
                                        flags: int = 0) -> Iterator[tuple[int, int, int]]:
        """``for_each_free_mem_range_reverse()``: the same ranges, descending."""
        k = len(self.reserved.regions)
        for m_base, m_size, m_flags, m_nid in reversed(self.memory.regions):
            if self._skip(m_flags, m_nid, nid, flags):
                continue
            m_end = m_base + m_size
            while k >= 0:
                gs, ge = self._gap(k)
                if ge <= m_base:
                    break
                if m_end > gs:
                    yield max(m_base, gs), min(m_end, ge), m_nid
                    if m_base >= gs:
                        break
                k -= 1

    # -- the allocation chain ---------------------------------------------------------------------

    def _find_in_range_node(self, size: int, align: int, start: int, end: int, nid: int,
                            flags: int) -> int:
        """``memblock_find_in_range_node()``: the first fit in the current direction; 0 if none."""
        if end in (0, 1):                      # MEMBLOCK_ALLOC_ACCESSIBLE / _NOLEAKTRACE
            end = self.current_limit
        start = max(start, self.page_size)     # page 0 is never handed out
        end = max(start, end)
        if self.bottom_up:
            return find_range_bottom_up(self.for_each_free_mem_range(nid, flags), start, end,
                                        size, align)
        return find_range_top_down(self.for_each_free_mem_range_reverse(nid, flags), start, end,
                                   size, align)

    def _find_in_range(self, start: int, end: int, size: int, align: int) -> int:
        """``memblock_find_in_range()`` (used by array doubling): any node, no flags."""
        return self._find_in_range_node(size, align, start, end, NUMA_NO_NODE, 0)

    def alloc_range_nid(self, size: int, align: int, start: int, end: int, nid: int,
                        exact_nid: bool = False) -> int:
        """``memblock_alloc_range_nid()``: find and reserve (flags RSRV_KERN, nid ``nid``)
        ``size`` bytes aligned to ``align`` in ``[start, end)``; then, for a valid node and not
        ``exact_nid``, any node (nid ``NUMA_NO_NODE``). Physical address, 0 on failure."""
        size, align = _u64("size", size), _u64("align", align)
        start, end, nid = _u64("start", start), _u64("end", end), _c_int("nid", nid)
        if not align:
            align = self.smp_cache_bytes
        found = self._find_in_range_node(size, align, start, end, nid, 0)
        if found and not self._add_range(self.reserved, found, size, nid, RSRV_KERN):
            return found
        if 0 <= nid < self.max_numnodes and not exact_nid:
            found = self._find_in_range_node(size, align, start, end, NUMA_NO_NODE, 0)
            if found and not self._add_range(self.reserved, found, size, NUMA_NO_NODE,
                                             RSRV_KERN):
                return found
        return 0

    def phys_alloc_range(self, size: int, align: int, start: int, end: int) -> int:
        """``memblock_phys_alloc_range()``: any node in ``[start, end)``; address or 0."""
        return self.alloc_range_nid(size, align, start, end, NUMA_NO_NODE, False)

    def phys_alloc(self, size: int, align: int) -> int:
        """``memblock_phys_alloc()``: any node below ``current_limit``; address or 0."""
        return self.alloc_range_nid(size, align, 0, 0, NUMA_NO_NODE, False)
