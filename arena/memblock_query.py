"""What memblock holds: the overlap tests, the iterators over the region arrays, sizes,
limits and lookups, and the trims that cut memory to a limit (``mem=``,
``memblock_cap_memory_range()``, ``memblock_trim_memory()``), in the order of
``mm/memblock.c``.

A part of :class:`arena.memblock.Memblock` (its methods declare ``self: Memblock``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from arena.constants import (
    DRIVER_MANAGED,
    HOTPLUG,
    KHO_SCRATCH,
    MIRROR,
    NOMAP,
    NUMA_NO_NODE,
    RSRV_KERN,
    round_up_wrap,
)
from arena.memblock_store import MemblockType, Region

if TYPE_CHECKING:
    from arena.memblock import Memblock

__all__ = ["Queries"]

_log = logging.getLogger("arena.memblock")


class Queries:
    """The iterators, sizes, limits and lookups of :class:`arena.memblock.Memblock` (a part
    of the class)."""

    # ========================================================================================
    # Overlaps (memblock_addrs_overlap, memblock_overlaps_region)
    # ========================================================================================

    def addrs_overlap(self: Memblock, base1: int, size1: int, base2: int, size2: int) -> bool:
        """``memblock_addrs_overlap()``: ``[base1, base1 + size1)`` and ``[base2, base2 + size2)``
        intersect (sums wrap at ``2**phys_addr_bits`` as in C). O(1)."""
        base1 = self._phys("base1", base1)
        size1 = self._phys("size1", size1)
        base2 = self._phys("base2", base2)
        size2 = self._phys("size2", size2)
        mask = self._mask
        return base1 < (base2 + size2) & mask and base2 < (base1 + size1) & mask

    def _overlaps(self: Memblock, t: MemblockType, base: int, size: int) -> bool:
        """``memblock_overlaps_region()``: some region intersects ``[base, base + size)``
        (size 0: ``base`` strictly inside a region). O(log n)."""
        end = base + min(size, self._mask - base)
        return t.overlaps(base, end)

    def overlaps_region(self: Memblock, type: Any, base: int, size: int) -> bool:  # noqa: A002
        """``memblock_overlaps_region(type, base, size)``: ``type`` (a type or its name) has a
        region intersecting ``[base, base + size)``. O(log n)."""
        t = self._type_arg(type)
        return self._overlaps(t, self._phys("base", base), self._phys("size", size))

    # ========================================================================================
    # Iterators (should_skip_region .. for_each_mem_pfn_range)
    # ========================================================================================

    def _numa_valid_node(self: Memblock, nid: int) -> bool:
        """``numa_valid_node()``: ``0 <= nid < MAX_NUMNODES``."""
        return 0 <= nid < self._max_numnodes

    def _iter_nid(self: Memblock, nid: int) -> int:
        """Kernels < 6.10 turned ``MAX_NUMNODES`` into ``NUMA_NO_NODE`` with a warning."""
        if not self._v_numa_valid and nid == self._max_numnodes:
            self._warn_once("max_numnodes", "Usage of MAX_NUMNODES is deprecated. "
                            "Use NUMA_NO_NODE instead")
            return NUMA_NO_NODE
        return nid

    def _skip_setup(self: Memblock, ta: MemblockType, nid: int, flags: int) -> tuple[bool, int, int, int]:
        """Precompute ``should_skip_region()``: (node filter on, node, bad bits, needed bits)."""
        if ta is not self.memory:
            return False, 0, 0, 0
        if self._v_numa_valid:
            node_on = self._numa_valid_node(nid)
        else:
            node_on = nid != NUMA_NO_NODE
        # Regions with these bits are skipped unless the caller asks for them ...
        bad = (NOMAP | DRIVER_MANAGED | (HOTPLUG if self.movable_node else 0)) & ~flags
        # ... and the caller's MIRROR / KHO_SCRATCH are requirements.
        need = flags & (MIRROR | KHO_SCRATCH)
        return node_on, nid, bad, need

    def _next_mem_range(self: Memblock, ta: MemblockType, tb: MemblockType | None, nid: int,
                        flags: int) -> Iterator[tuple[int, int, int]]:
        """``__next_mem_range()`` as a generator: ``(start, end, nid)`` of each range of ``ta``
        (filtered by ``should_skip_region``) minus ``tb``, ascending.

        Follows the kernel's two-index walk exactly (so adjacent unmerged ``tb`` regions inside
        one ``ta`` region yield an empty range). O(n_a + n_b) for a full walk.
        """
        node_on, nid, bad, need = self._skip_setup(ta, self._iter_nid(nid), flags)
        pmax = self._mask
        ia = ib = 0
        while True:
            AB, AS, AF, AN = ta.kernel_columns()
            out = None
            while ia < len(AB):
                m_start = AB[ia]
                m_end = m_start + AS[ia]
                m_nid = AN[ia]
                mf = AF[ia]
                if (node_on and nid != m_nid) or mf & bad or need & ~mf:
                    ia += 1
                    continue
                if tb is None:
                    out = (m_start, m_end, m_nid)
                    ia += 1
                    break
                BB, BS = tb.columns()[:2]
                nb = len(BB)
                while ib < nb + 1:
                    r_start = BB[ib - 1] + BS[ib - 1] if ib else 0
                    r_end = BB[ib] if ib < nb else pmax
                    if r_start >= m_end:
                        break
                    if m_start < r_end:
                        out = (m_start if m_start > r_start else r_start,
                               m_end if m_end < r_end else r_end, m_nid)
                        if m_end <= r_end:
                            ia += 1
                        else:
                            ib += 1
                        break
                    ib += 1
                if out is not None:
                    break
                ia += 1
            if out is None:
                return
            yield out

    def _next_mem_range_rev(self: Memblock, ta: MemblockType, tb: MemblockType | None, nid: int,
                            flags: int) -> Iterator[tuple[int, int, int]]:
        """``__next_mem_range_rev()`` as a generator: like :meth:`_next_mem_range`, descending."""
        node_on, nid, bad, need = self._skip_setup(ta, self._iter_nid(nid), flags)
        pmax = self._mask
        AB = ta.kernel_columns()[0]
        ia = len(AB) - 1
        ib = tb.cnt if tb is not None else 0
        if tb is not None and not tb.live:
            ib = 0  # an empty (or dummy-only) tb has one gap, [0, PHYS_ADDR_MAX)
        while True:
            AB, AS, AF, AN = ta.kernel_columns()
            out = None
            while ia >= 0:
                m_start = AB[ia]
                m_end = m_start + AS[ia]
                m_nid = AN[ia]
                mf = AF[ia]
                if (node_on and nid != m_nid) or mf & bad or need & ~mf:
                    ia -= 1
                    continue
                if tb is None:
                    out = (m_start, m_end, m_nid)
                    ia -= 1
                    break
                BB, BS = tb.columns()[:2]
                nb = len(BB)
                while ib >= 0:
                    r_start = BB[ib - 1] + BS[ib - 1] if ib else 0
                    r_end = BB[ib] if ib < nb else pmax
                    if r_end <= m_start:
                        break
                    if m_end > r_start:
                        out = (m_start if m_start > r_start else r_start,
                               m_end if m_end < r_end else r_end, m_nid)
                        if m_start >= r_start:
                            ia -= 1
                        else:
                            ib -= 1
                        break
                    ib -= 1
                if out is not None:
                    break
                ia -= 1
            if out is None:
                return
            yield out

    def for_each_mem_range(self: Memblock) -> Iterator[tuple[int, int]]:
        """``for_each_mem_range(i, &start, &end)``: ``(start, end)`` of every memory region
        except NOMAP ones, ascending (HOTPLUG and DRIVER_MANAGED included). O(n)."""
        for s, e, _ in self._next_mem_range(self.memory, None, NUMA_NO_NODE,
                                            HOTPLUG | DRIVER_MANAGED):
            yield s, e

    def for_each_mem_range_rev(self: Memblock) -> Iterator[tuple[int, int]]:
        """``for_each_mem_range_rev()``: :meth:`for_each_mem_range`, descending."""
        for s, e, _ in self._next_mem_range_rev(self.memory, None, NUMA_NO_NODE,
                                                HOTPLUG | DRIVER_MANAGED):
            yield s, e

    def for_each_free_mem_range(self: Memblock, nid: int = NUMA_NO_NODE,
                                flags: int = 0) -> Iterator[tuple[int, int, int]]:
        """``for_each_free_mem_range(i, nid, flags, &start, &end, &nid)``: ``(start, end, nid)``
        of memory minus reserved, ascending, filtered as allocations filter (``nid``: a node
        or ``NUMA_NO_NODE``; ``flags`` permit HOTPLUG/NOMAP/DRIVER_MANAGED memory and require
        MIRROR/KHO_SCRATCH). Empty ranges can occur (kernel quirk). O(n_mem + n_reserved)."""
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        return self._next_mem_range(self.memory, self.reserved, nid, flags)

    def for_each_free_mem_range_reverse(self: Memblock, nid: int = NUMA_NO_NODE,
                                        flags: int = 0) -> Iterator[tuple[int, int, int]]:
        """``for_each_free_mem_range_reverse()``: :meth:`for_each_free_mem_range`, descending."""
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        return self._next_mem_range_rev(self.memory, self.reserved, nid, flags)

    def for_each_reserved_mem_range(self: Memblock) -> Iterator[tuple[int, int]]:
        """``for_each_reserved_mem_range(i, &start, &end)``: every reserved ``(start, end)``."""
        for s, e, _ in self._next_mem_range(self.reserved, None, NUMA_NO_NODE, 0):
            yield s, e

    def for_each_mem_region(self: Memblock) -> Iterator[Region]:
        """``for_each_mem_region(r)``: every memory :class:`Region`, ascending."""
        return iter(self.memory.regions)

    def for_each_reserved_mem_region(self: Memblock) -> Iterator[Region]:
        """``for_each_reserved_mem_region(r)``: every reserved :class:`Region`, ascending."""
        return iter(self.reserved.regions)

    def for_each_mem_pfn_range(self: Memblock, nid: int = NUMA_NO_NODE) -> Iterator[tuple[int, int, int]]:
        """``for_each_mem_pfn_range(i, nid, &start_pfn, &end_pfn, &nid)``.

        Yields ``(PFN_UP(base), PFN_DOWN(end), region nid)`` for each memory region holding at
        least one whole page whose nid matches (``nid`` not a valid node = all; kernels < 6.10:
        ``MAX_NUMNODES`` = all, anything else must equal the region's nid). No flag filter. O(n).
        """
        nid = self._nid_arg(nid)
        ps1 = self._page_size - 1
        sh = self._page_shift
        t = self.memory
        i = 0
        while True:
            B, S, _, N = t.kernel_columns()
            if i >= len(B):
                return
            base = B[i]
            spfn = (base + ps1) >> sh
            epfn = (base + S[i]) >> sh
            r_nid = N[i]
            i += 1
            if spfn >= epfn:
                continue
            if self._v_numa_valid:
                ok = not self._numa_valid_node(nid) or nid == r_nid
            else:
                ok = nid == self._max_numnodes or nid == r_nid
            if ok:
                yield spfn, epfn, r_nid

    # ========================================================================================
    # Sizes, limits and lookups (memblock_phys_mem_size .. memblock_get_current_limit)
    # ========================================================================================

    def phys_mem_size(self: Memblock) -> int:
        """``memblock_phys_mem_size()``: ``memory.total_size`` (bytes)."""
        return self.memory.total_size

    def reserved_size(self: Memblock) -> int:
        """``memblock_reserved_size()``: ``reserved.total_size`` (bytes)."""
        return self.reserved.total_size

    def reserved_kern_size(self: Memblock, limit: int, nid: int) -> int:
        """``memblock_reserved_kern_size()``: bytes of RSRV_KERN reservations below ``limit``
        on ``nid`` (invalid nid = all nodes). O(n)."""
        limit = self._limit("limit", limit)
        nid = self._nid_arg(nid)
        t = self.reserved
        total = 0
        any_node = not self._numa_valid_node(nid)
        for b, s, f, n in t.regions:
            if b > limit:
                break
            if b + s > limit:
                s = limit - b
            if (any_node or n == nid) and f & RSRV_KERN:
                total += s
        return total & self._mask

    def estimated_nr_free_pages(self: Memblock) -> int:
        """``memblock_estimated_nr_free_pages()``: pages of memory minus kernel reservations."""
        free = (self.memory.total_size
                - self.reserved_kern_size(self._mask, NUMA_NO_NODE)) & self._mask
        return free >> self._page_shift

    def start_of_dram(self: Memblock) -> int:
        """``memblock_start_of_DRAM()``: base of the first memory region (0 if none)."""
        t = self.memory
        return t.first_base()

    def end_of_dram(self: Memblock) -> int:
        """``memblock_end_of_DRAM()``: end of the last memory region.

        With no memory the newest kernel reads out of bounds; here (as in kernels <= 6.10 with
        the dummy entry) the result is 0.
        """
        t = self.memory
        return t.last_end()

    def _find_max_addr(self: Memblock, limit: int) -> int:
        """``__find_max_addr()``: the address below which ``limit`` bytes of memory lie."""
        t = self.memory
        for b, s, _, _ in t.regions:
            if limit <= s:
                return b + limit
            limit -= s
        return self._mask

    def _limit_end(self: Memblock, limit: int) -> int | None:
        """Where the first ``limit`` bytes of memory end (``__find_max_addr()``), for the two
        memory limits; None when there is nothing to cut (``limit`` 0, or not below the total).
        Raises for a bad ``limit`` before anything changes."""
        limit = self._phys("limit", limit)
        if not limit:
            return None
        m = self._find_max_addr(limit)
        return None if m == self._mask else m

    def enforce_memory_limit(self: Memblock, limit: int) -> None:
        """``memblock_enforce_memory_limit()`` (``mem=``): keep the first ``limit`` bytes of
        memory; drop everything above from ``memory`` and ``reserved``. 0 = no limit. O(n)."""
        m = self._limit_end(limit)
        if m is None:
            return
        self._remove_range(self.memory, m, self._mask)
        self._remove_range(self.reserved, m, self._mask)
        self._done()

    def cap_memory_range(self: Memblock, base: int, size: int) -> None:
        """``memblock_cap_memory_range()``: keep only ``[base, base + size)`` of memory (NOMAP
        regions outside are kept, split pieces are not re-merged) and of reserved. O(n)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        self._cap_memory_range(base, size)
        self._done()

    def _cap_memory_range(self: Memblock, base: int, size: int) -> None:
        if not size:
            return
        t = self.memory
        if not t.total_size:
            _log.warning("memblock_cap_memory_range: No memory registered yet")
            return
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret:
            return
        lo = hi = 0                      # the isolated regions, as indices of the whole array
        if w is not None and s < e:
            g0 = w.index(0)
            lo, hi = g0 + s, g0 + e
            w.commit()
        # Remove every region before and after the isolated ones except NOMAP ones, by index
        # as the kernel does (on a sorted array: the regions outside [base, end); on one that
        # trim_memory left unsorted the isolated indices are what counts). O(n).
        B, S, F, N = t.lists()
        keep = [i for i in range(len(B)) if F[i] & NOMAP or lo <= i < hi]
        if len(keep) < len(B):
            t.total_size = (t.total_size - sum(S) + sum(S[i] for i in keep)) & self._mask
            t.load([B[i] for i in keep], [S[i] for i in keep], [F[i] for i in keep],
                    [N[i] for i in keep])
            self._emptied(t)
        t.may_be_nonminimal = True
        self._remove_range(self.reserved, 0, base)
        self._remove_range(self.reserved, (base + size) & self._mask, self._mask)

    def mem_limit_remove_map(self: Memblock, limit: int) -> None:
        """``memblock_mem_limit_remove_map()``: like :meth:`enforce_memory_limit`, but through
        :meth:`cap_memory_range` (NOMAP memory above the limit survives). O(n)."""
        m = self._limit_end(limit)
        if m is None:
            return
        self._cap_memory_range(0, m)
        self._done()

    @staticmethod
    def _search(t: MemblockType, addr: int) -> tuple[int, int, int, int] | None:
        """``memblock_search()``: ``(base, size, flags, nid)`` of the region containing
        ``addr``, None if none. O(log n) (on an array trim_memory left unsorted: the kernel's
        probes, see :meth:`MemblockType.containing`)."""
        return t.containing(addr)

    def is_reserved(self: Memblock, addr: int) -> bool:
        """``memblock_is_reserved()``: ``addr`` lies in a reserved region. O(log n)."""
        return self._search(self.reserved, self._phys("addr", addr)) is not None

    def is_memory(self: Memblock, addr: int) -> bool:
        """``memblock_is_memory()``: ``addr`` lies in a memory region. O(log n)."""
        return self._search(self.memory, self._phys("addr", addr)) is not None

    def is_map_memory(self: Memblock, addr: int) -> bool:
        """``memblock_is_map_memory()``: ``addr`` lies in memory that is not NOMAP."""
        p = self._search(self.memory, self._phys("addr", addr))
        return p is not None and not p[2] & NOMAP

    def search_pfn_nid(self: Memblock, pfn: int) -> tuple[int, int | None, int | None]:
        """``memblock_search_pfn_nid()``: ``(nid, start_pfn, end_pfn)`` of the memory region
        holding page ``pfn`` (``PFN_DOWN`` of both ends); ``(NUMA_NO_NODE, None, None)`` if the
        page is not memory. O(log n)."""
        pfn = self._ulong("pfn", pfn)
        t = self.memory
        p = self._search(t, (pfn << self._page_shift) & self._mask)
        if p is None:
            return NUMA_NO_NODE, None, None
        b, sz, _, nid = p
        return nid, b >> self._page_shift, (b + sz) >> self._page_shift

    def is_region_memory(self: Memblock, base: int, size: int) -> bool:
        """``memblock_is_region_memory()``: the single memory region containing ``base`` also
        contains ``[base, base + size)`` (size 0: ``base`` is memory). O(log n)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        p = self._search(self.memory, base)
        if p is None:
            return False
        end = base + min(size, self._mask - base)
        return p[0] + p[1] >= end

    def is_region_reserved(self: Memblock, base: int, size: int) -> bool:
        """``memblock_is_region_reserved()``: ``[base, base + size)`` intersects a reservation."""
        return self._overlaps(self.reserved, self._phys("base", base), self._phys("size", size))

    def trim_memory(self: Memblock, align: int) -> None:
        """``memblock_trim_memory()``: shrink every memory region to ``align`` boundaries,
        dropping regions that vanish. ``total_size`` is *not* lowered for shrunk regions
        (kernel quirk); ``align`` 0 removes all memory. O(n)."""
        align = self._phys("align", align)
        mask = self._mask
        am1 = (align - 1) & mask
        t = self.memory
        B, S, F, N = t.lists()
        changed = False
        i = 0
        while i < len(B):
            ob = B[i]
            oe = ob + S[i]
            s = round_up_wrap(ob, align, mask)
            e = oe & ~am1
            if s == ob and e == oe:
                i += 1
                continue
            changed = True
            if s < e:
                if s < ob:
                    # round_up wrapped to 0: the kernel's array may now be unsorted and
                    # overlapping (t.load below tells, and goes back to sorted lookups if not)
                    t.unsorted = True
                # total_size keeps the old size: record the difference (negative if the
                # region grew because its start wrapped to 0)
                t.total_excess = (t.total_excess + S[i] - (e - s)) & mask
                B[i] = s
                S[i] = e - s
                i += 1
            else:
                t.total_size = (t.total_size - S[i]) & mask
                del B[i], S[i], F[i], N[i]
        if changed:
            t.load(B, S, F, N)
            self._emptied(t)
        self._done()

    def set_total_size(self: Memblock, type: Any, total: int) -> None:  # noqa: A002
        """Set ``type.total_size`` to ``total`` bytes, as a kernel's ``MEMBLOCK configuration``
        dump printed it (no kernel counterpart: for replays that start from a printed state).

        ``total`` may exceed the sum of the regions (the ``memblock_trim_memory`` quirk) but not
        fall below it (``ValueError``); ``type`` is ``self.memory``/``reserved``/``physmem`` or
        its name. O(n).
        """
        t = self._type_arg(type)
        total = self._phys("total", total)
        regions = sum(r.size for r in t.regions)
        if total < regions:
            raise ValueError(f"{t.name} total_size {total:#x} is below the sum of its regions "
                             f"{regions:#x}")
        t.total_size = total
        t.total_excess = (total - regions) & self._mask   # what check() allows beyond the sum
        self._done()

    def set_current_limit(self: Memblock, limit: int) -> None:
        """``memblock_set_current_limit()``: upper bound of ACCESSIBLE allocations (bytes;
        ``MEMBLOCK_ALLOC_ANYWHERE`` = none). Not validated against memory."""
        self._current_limit = self._limit("limit", limit)

    def get_current_limit(self: Memblock) -> int:
        """``memblock_get_current_limit()``."""
        return self._current_limit

    def set_bottom_up(self: Memblock, enable: bool) -> None:
        """``memblock_set_bottom_up()``: True = allocate from low addresses first."""
        self._bottom_up = self._c_bool("enable", enable)

    def get_bottom_up(self: Memblock) -> bool:
        """``memblock_bottom_up()``: the current direction (True = bottom-up)."""
        return self._bottom_up

    is_bottom_up = get_bottom_up

    def has_mirror(self: Memblock) -> bool:
        """``memblock_has_mirror()``: whether ``mark_mirror`` ever took effect."""
        return self.system_has_some_mirror

    def allow_resize(self: Memblock) -> None:
        """``memblock_allow_resize()``: let region arrays double (permanently)."""
        self._can_resize = True
