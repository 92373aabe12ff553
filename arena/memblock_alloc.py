"""memblock's allocations: the search for free space and the allocation chain
(``choose_memblock_flags()`` .. ``memblock_alloc_or_panic()``), in the order of
``mm/memblock.c``.

A part of :class:`arena.memblock.Memblock` (its methods declare ``self: Memblock``). The
search runs through the free-range index (:mod:`arena.memblock_index`): an allocation costs
O(m + log n) per attempt for m usable memory regions and n reserved ones, against O(n) for the
kernel's walk. That walk (:mod:`arena.memblock_linear`) is the reference the search is tested
against, and the path taken for size 0, for layouts within ``align`` of the top of the address
space (bottom-up) and for memory that ``trim_memory`` left unsorted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from arena.constants import (
    KHO_SCRATCH,
    MEMBLOCK_ALLOC_ACCESSIBLE,
    MEMBLOCK_ALLOC_NOLEAKTRACE,
    MEMBLOCK_LOW_LIMIT,
    MIRROR,
    NONE,
    NUMA_NO_NODE,
    RSRV_KERN,
)
from arena.errors import ClosedError, MemblockPanic
from arena.memblock_index import highest_fit, lowest_fit
from arena.memblock_linear import find_range_bottom_up, find_range_top_down

if TYPE_CHECKING:
    from arena.memblock import Memblock

__all__ = ["Allocation"]

_log = logging.getLogger("arena.memblock")
_INFO = logging.INFO


class Allocation:
    """The search for free space and the allocation chain of :class:`arena.memblock.Memblock`
    (a part of the class)."""

    # ========================================================================================
    # The search for free space (choose_memblock_flags .. memblock_find_in_range)
    # ========================================================================================

    def _choose_memblock_flags(self: Memblock) -> int:
        """``choose_memblock_flags()``: KHO_SCRATCH in scratch-only mode, MIRROR if any
        mirror exists, else NONE."""
        if self.kho_scratch_only:
            return KHO_SCRATCH
        return MIRROR if self.system_has_some_mirror else NONE

    def _find_range_bottom_up_linear(self: Memblock, start: int, end: int, size: int, align: int,
                                     nid: int, flags: int) -> int:
        """``__memblock_find_range_bottom_up()`` as the kernel writes it: the walk of
        :func:`arena.memblock_linear.find_range_bottom_up` over :meth:`_next_mem_range`. O(n).
        The reference for :meth:`_find_range_bottom_up`."""
        ranges = self._next_mem_range(self.memory, self.reserved, nid, flags)
        return find_range_bottom_up(ranges, start, end, size, align, self._mask)

    def _find_range_top_down_linear(self: Memblock, start: int, end: int, size: int, align: int,
                                    nid: int, flags: int) -> int:
        """``__memblock_find_range_top_down()`` as the kernel writes it: the walk of
        :func:`arena.memblock_linear.find_range_top_down` over :meth:`_next_mem_range_rev`.
        O(n). The reference for :meth:`_find_range_top_down`."""
        ranges = self._next_mem_range_rev(self.memory, self.reserved, nid, flags)
        return find_range_top_down(ranges, start, end, size, align, self._mask)

    # The indexed search (arena.memblock_index): per usable memory region, the highest /
    # lowest aligned fit among the gaps of reserved clipped to it, which is the kernel's first
    # fit in walk order. Empty ranges (the kernel's [x, x) quirk) never fit a size > 0; size 0
    # takes the linear walk. O(m + log n + c * chunk) for m usable memory regions and c
    # candidate chunks.

    def _find_range_bottom_up(self: Memblock, start: int, end: int, size: int, align: int, nid: int,
                              flags: int) -> int:
        """``__memblock_find_range_bottom_up()``: lowest aligned fit in the first free range
        (ascending) that holds it; 0 if none. O(m + log n) (see above)."""
        mask = self._mask
        am1 = (align - 1) & mask
        mem = self.memory
        # round_up() wraps to 0 only for a range starting above mask & ~am1, and then the kernel
        # returns 0 at once, whatever the range's length: such layouts (memory within ``align``
        # of the top of the address space) take the linear walk.
        top = mask & ~am1
        if (not size or not self._fast or mem.unsorted or start > top
                or (end > top and mem.last_end() > top + 1)):
            return self._find_range_bottom_up_linear(start, end, size, align, nid, flags)
        node_on, nid, bad, need = self._skip_setup(mem, self._iter_nid(nid), flags)
        reserved = self.reserved
        r = mem.first_ending_above(start)         # memory regions ending above start, up
        while r is not None:
            b, e, mf, mn = r
            if b >= end:
                return 0
            if not ((node_on and nid != mn) or mf & bad or need & ~mf):
                lo = b if b > start else start
                hi = e if e < end else end
                if hi - lo >= size:
                    found = lowest_fit(reserved, lo, hi, size, am1)
                    if found:
                        return found
            r = mem.first_ending_above(e)
        return 0

    def _find_range_top_down(self: Memblock, start: int, end: int, size: int, align: int, nid: int,
                             flags: int) -> int:
        """``__memblock_find_range_top_down()``: highest aligned fit in the first free range
        (descending) that holds it; 0 if none. O(m + log n) (see above)."""
        if not size or not self._fast or self.memory.unsorted:
            return self._find_range_top_down_linear(start, end, size, align, nid, flags)
        mem = self.memory
        node_on, nid, bad, need = self._skip_setup(mem, self._iter_nid(nid), flags)
        keep = ~((align - 1) & self._mask)
        reserved = self.reserved
        r = mem.last_below(end)                   # memory regions starting below end, down
        while r is not None:
            b, e, mf, mn = r
            if e <= start:
                return 0
            if not ((node_on and nid != mn) or mf & bad or need & ~mf):
                lo = b if b > start else start
                hi = e if e < end else end
                if hi - lo >= size:
                    found = highest_fit(reserved, lo, hi, size, keep)
                    if found:
                        return found
            r = mem.last_below(b)
        return 0

    def _find_in_range_node(self: Memblock, size: int, align: int, start: int, end: int, nid: int,
                            flags: int) -> int:
        """``memblock_find_in_range_node()``: free ``size`` bytes aligned to ``align`` inside
        ``[start, end)`` on ``nid``; 0 if none.

        ``end`` 0/1 means ``current_limit``; page 0 is never returned. With
        ``bottom_up_kernel_end`` set, kernels <= 5.10's rule applies (bottom-up only above the
        kernel image, then top-down). O(m + log n) (see the module docstring).
        """
        if end == MEMBLOCK_ALLOC_ACCESSIBLE or end == MEMBLOCK_ALLOC_NOLEAKTRACE:
            end = self._current_limit
        if start < self._page_size:
            start = self._page_size
        if end < start:
            end = start
        if self._bottom_up:
            kend = self._kernel_end
            if kend is None:
                return self._find_range_bottom_up(start, end, size, align, nid, flags)
            if end > kend:
                ret = self._find_range_bottom_up(max(start, kend), end, size, align, nid, flags)
                if ret:
                    return ret
                self._warn_once("bottom_up", "memblock: bottom-up allocation failed, memory "
                                "hotremove may be affected")
        return self._find_range_top_down(start, end, size, align, nid, flags)

    def _find_in_range(self: Memblock, start: int, end: int, size: int, align: int) -> int:
        """``memblock_find_in_range()`` (array doubling): any node, mirror first."""
        flags = self._choose_memblock_flags()
        while True:
            ret = self._find_in_range_node(size, align, start, end, NUMA_NO_NODE, flags)
            if ret or not flags & MIRROR:
                return ret
            _log.warning(f"Could not allocate {self._pa(size)} bytes of mirrored memory")
            flags &= ~MIRROR

    # ========================================================================================
    # The allocation chain (memblock_alloc_range_nid .. memblock_alloc_or_panic)
    # ========================================================================================

    def _covered(self: Memblock, found: int, size: int) -> None:
        """Refuse (ValueError) to hand out memory the PhysicalMemory does not have. Size 0
        hands out no bytes: always fine (the caller then returns a detached empty view when
        ``found`` is not a position of the memory)."""
        if not size:
            return
        pm = self._physmem
        if pm is None:
            raise ValueError("this Memblock has no PhysicalMemory")
        lo = pm.phys_base
        if found < lo or found + size > lo + pm.size:
            raise ValueError(
                f"memblock chose [{self._pa(found)}-{self._pa(found + size - 1)}], which lies "
                f"outside the physical memory [{self._pa(lo)}-{self._pa(lo + pm.size - 1)}]; "
                "add only memory the PhysicalMemory covers (or use the phys_* variants)")

    def _alloc_range_nid(self: Memblock, size: int, align: int, start: int, end: int, nid: int,
                         exact_nid: bool, cover: bool = False) -> int:
        """``memblock_alloc_range_nid()`` without argument checks; ``cover`` checks the chosen
        range against the PhysicalMemory before anything is reserved."""
        self._need_alloc()
        flags = self._choose_memblock_flags()
        if not self._v_numa_valid and nid == self._max_numnodes:
            self._warn_once("max_numnodes", "Usage of MAX_NUMNODES is deprecated. "
                            "Use NUMA_NO_NODE instead")
            nid = NUMA_NO_NODE
        if self._v_alloc_clamp and end > self._current_limit:
            end = self._current_limit
        if not align:
            align = self._smp_cache_bytes   # the kernel dumps a stack trace here
        if self._v_numa_valid:
            other_node = self._numa_valid_node(nid) and not exact_nid
        else:
            other_node = nid != NUMA_NO_NODE and not exact_nid
        while True:
            # 1. the requested node (or any node for NUMA_NO_NODE / an invalid nid)
            found = self._find_in_range_node(size, align, start, end, nid, flags)
            if found:
                if cover:
                    self._covered(found, size)
                ret = (self._reserve(found, size, nid, RSRV_KERN) if self._v_rsrv_kern
                       else self._reserve_plain(found, size))
                if not ret:
                    return found
            # 2. any node, unless the node is exact
            if other_node:
                found = self._find_in_range_node(size, align, start, end, NUMA_NO_NODE, flags)
                if found:
                    if cover:
                        self._covered(found, size)
                    if not self._reserve_kern_internal(found, size):
                        return found
            # 3. mirrored memory first, then any memory (with the kernel's warning)
            if flags & MIRROR:
                flags &= ~MIRROR
                _log.warning(f"Could not allocate {self._pa(size)} bytes of mirrored memory")
                continue
            return 0

    def alloc_range_nid(self: Memblock, size: int, align: int, start: int, end: int, nid: int,
                        exact_nid: bool = False) -> int:
        """``memblock_alloc_range_nid()``: reserve ``size`` bytes aligned to ``align`` inside
        ``[start, end)`` and return their physical address, 0 on failure.

        ``align`` 0 means ``SMP_CACHE_BYTES``; ``end`` 0/1 means ``current_limit`` (an explicit
        ``end`` is *not* capped by it). Fallbacks: node ``nid``, then any node (unless
        ``exact_nid``); with mirrored memory all of that first on mirror, then without.
        The block is reserved with flags RSRV_KERN and nid ``nid``. No debug line of its own.
        Raises :class:`HandoverError` after :meth:`free_all`. O(m + log n) per attempt for m
        memory regions and n reserved ones (module docstring).
        """
        size = self._phys("size", size)
        align = self._phys("align", align)
        start = self._phys("start", start)
        end = self._limit("end", end)
        nid = self._nid_arg(nid)
        exact_nid = self._c_bool("exact_nid", exact_nid)
        self._need_alloc()
        ret = self._alloc_range_nid(size, align, start, end, nid, exact_nid)
        self._done()
        return ret

    def phys_alloc_range(self: Memblock, size: int, align: int, start: int, end: int) -> int:
        """``memblock_phys_alloc_range()``: any node in ``[start, end)``; physical address or 0.

        Not capped by ``current_limit`` unless ``end`` is 0/1; no retry without ``start``.
        O(m + log n).
        """
        size = self._phys("size", size)
        align = self._phys("align", align)
        start = self._phys("start", start)
        end = self._limit("end", end)
        self._need_alloc()
        if _log.isEnabledFor(_INFO):
            _log.info(f"memblock_phys_alloc_range: {size} bytes align={align:#x} "
                      f"from={self._pa(start)} max_addr={self._pa(end)} {self._ret_ip()}")
        ret = self._alloc_range_nid(size, align, start, end, NUMA_NO_NODE, False)
        self._done()
        return ret

    def phys_alloc(self: Memblock, size: int, align: int) -> int:
        """``memblock_phys_alloc()``: ``phys_alloc_range(size, align, 0, ACCESSIBLE)``."""
        return self.phys_alloc_range(size, align, 0, MEMBLOCK_ALLOC_ACCESSIBLE)

    def phys_alloc_try_nid(self: Memblock, size: int, align: int, nid: int) -> int:
        """``memblock_phys_alloc_try_nid()``: node ``nid`` first, then any node, below
        ``current_limit``; physical address or 0. No debug line. O(m + log n)."""
        size = self._phys("size", size)
        align = self._phys("align", align)
        nid = self._nid_arg(nid)
        self._need_alloc()
        ret = self._alloc_range_nid(size, align, 0, MEMBLOCK_ALLOC_ACCESSIBLE, nid, False)
        self._done()
        return ret

    def _alloc_internal(self: Memblock, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                        exact_nid: bool, cover: bool) -> int:
        """``memblock_alloc_internal()``: cap ``max_addr`` at ``current_limit``; if the first try
        fails and ``min_addr`` is not 0, retry from 0. Returns the physical address or 0."""
        if max_addr > self._current_limit:
            max_addr = self._current_limit
        found = self._alloc_range_nid(size, align, min_addr, max_addr, nid, exact_nid, cover)
        if not found and min_addr:
            found = self._alloc_range_nid(size, align, 0, max_addr, nid, exact_nid, cover)
        return found

    def alloc_internal(self: Memblock, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                       exact_nid: bool = False) -> int:
        """``memblock_alloc_internal()``: the block the ``memblock_alloc_try_nid*`` family
        chooses and reserves, as a physical address (0 if none), without touching memory
        and without a debug line. ``max_addr`` is capped at ``current_limit`` (0/1 =
        ``current_limit``); if nothing fits above a nonzero ``min_addr`` the search is retried
        from 0; node ``nid`` first, then any node unless ``exact_nid``. Raises
        :class:`HandoverError` after :meth:`free_all`. O(m + log n) per attempt."""
        size = self._phys("size", size)
        align = self._phys("align", align)
        min_addr = self._phys("min_addr", min_addr)
        max_addr = self._limit("max_addr", max_addr)
        nid = self._nid_arg(nid)
        exact_nid = self._c_bool("exact_nid", exact_nid)
        self._need_alloc()
        found = self._alloc_internal(size, align, min_addr, max_addr, nid, exact_nid, False)
        self._done()
        return found

    def _alloc_mem(self: Memblock, func: str, size: Any, align: Any, min_addr: Any, max_addr: Any,
                   nid: Any, exact_nid: bool, zero: bool) -> np.ndarray | None:
        """The one core of every memory-returning variant: checks, debug line, allocation,
        zeroing (never-touched pages are not written), the view."""
        size = self._phys("size", size)
        align = self._phys("align", align)
        min_addr = self._phys("min_addr", min_addr)
        max_addr = self._limit("max_addr", max_addr)
        nid = self._nid_arg(nid)
        pm = self._physmem
        if pm is None:
            raise ValueError(f"{func}() returns memory, so this Memblock needs a PhysicalMemory "
                             "(Memblock(physmem, ...)); without one use the phys_* variants")
        if getattr(pm, "closed", False):
            raise ClosedError(f"{func}(): the PhysicalMemory behind this Memblock is closed")
        self._need_alloc()
        if _log.isEnabledFor(_INFO):
            _log.info(f"{func}: {size} bytes align={align:#x} nid={nid} "
                      f"from={self._pa(min_addr)} max_addr={self._pa(max_addr)} {self._ret_ip()}")
        found = self._alloc_internal(size, align, min_addr, max_addr, nid, exact_nid, True)
        self._done()
        if not found:
            return None
        if not size and not pm.contains(found, 0):
            # The kernel returns its pointer to 0 bytes (memblock_reserve_kern(found, 0) is a
            # no-op) even where this PhysicalMemory has no position: an empty array then.
            return np.empty(0, np.uint8)
        try:
            if zero and size:
                pm.zero(found, size)  # before view(), which marks the pages possibly written
            view = pm.view(found, size)
        except BaseException:
            # The memory refused (a fault, a signal): give the block back so that memblock is
            # as before the call. The block was free, so removing it from reserved restores
            # the array exactly (a merge with a neighbour splits back the same way).
            self._remove_range(self.reserved, found, size)
            raise
        return view

    def alloc_exact_nid_raw(self: Memblock, size: int, align: int, min_addr: int, max_addr: int,
                            nid: int) -> np.ndarray | None:
        """``memblock_alloc_exact_nid_raw()``: as :meth:`alloc_try_nid_raw`, but only node
        ``nid`` (no fallback to other nodes; ``NUMA_NO_NODE`` = any)."""
        return self._alloc_mem("memblock_alloc_exact_nid_raw", size, align, min_addr, max_addr,
                               nid, True, False)

    def alloc_try_nid_raw(self: Memblock, size: int, align: int, min_addr: int, max_addr: int,
                          nid: int) -> np.ndarray | None:
        """``memblock_alloc_try_nid_raw()``: as :meth:`alloc_try_nid`, not zeroed."""
        return self._alloc_mem("memblock_alloc_try_nid_raw", size, align, min_addr, max_addr,
                               nid, False, False)

    def alloc_try_nid(self: Memblock, size: int, align: int, min_addr: int, max_addr: int,
                      nid: int) -> np.ndarray | None:
        """``memblock_alloc_try_nid()``: zeroed memory in ``[min_addr, max_addr)`` on ``nid``.

        ``max_addr`` is capped at ``current_limit`` (0/1 = ``current_limit``); if nothing fits
        above ``min_addr`` the search is retried from 0; node ``nid`` first, then any node.
        Returns a uint8 view of ``size`` bytes, or ``None``. Size 0 returns what the kernel
        returns: an empty view at the chosen address, or (when that address is no position
        of the PhysicalMemory) an empty array of no memory. O(m + log n) per attempt.
        """
        return self._alloc_mem("memblock_alloc_try_nid", size, align, min_addr, max_addr, nid,
                               False, True)

    def alloc(self: Memblock, size: int, align: int) -> np.ndarray | None:
        """``memblock_alloc()``: zeroed memory below ``current_limit``, any node; or ``None``."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, MEMBLOCK_LOW_LIMIT,
                               MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, False, True)

    def alloc_raw(self: Memblock, size: int, align: int) -> np.ndarray | None:
        """``memblock_alloc_raw()``: as :meth:`alloc`, not zeroed."""
        return self._alloc_mem("memblock_alloc_try_nid_raw", size, align, MEMBLOCK_LOW_LIMIT,
                               MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, False, False)

    def alloc_from(self: Memblock, size: int, align: int, min_addr: int) -> np.ndarray | None:
        """``memblock_alloc_from()``: zeroed memory preferably at or above ``min_addr``."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, min_addr,
                               MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, False, True)

    def alloc_low(self: Memblock, size: int, align: int) -> np.ndarray | None:
        """``memblock_alloc_low()``: zeroed memory below ``ARCH_LOW_ADDRESS_LIMIT``."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, MEMBLOCK_LOW_LIMIT,
                               self._arch_low_address_limit, NUMA_NO_NODE, False, True)

    def alloc_node(self: Memblock, size: int, align: int, nid: int) -> np.ndarray | None:
        """``memblock_alloc_node()``: zeroed memory on node ``nid`` (then any node)."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, MEMBLOCK_LOW_LIMIT,
                               MEMBLOCK_ALLOC_ACCESSIBLE, nid, False, True)

    def alloc_or_panic(self: Memblock, size: int, align: int) -> np.ndarray:
        """``memblock_alloc_or_panic()``: :meth:`alloc`, raising :class:`MemblockPanic`
        (``<caller>: Failed to allocate <size> bytes``) instead of returning ``None``."""
        view = self.alloc(size, align)
        if view is None:
            raise MemblockPanic(f"{self._ret_ip()}: Failed to allocate {self._pa(int(size))} bytes")
        return view

    def virt_to_phys(self: Memblock, view: np.ndarray) -> int:
        """``virt_to_phys()``: physical address of the first byte of a view (ValueError if the
        view is not of this memory)."""
        if self._physmem is None:
            raise ValueError("virt_to_phys: this Memblock has no PhysicalMemory")
        return int(self._physmem.phys_of(view))

    def phys_to_virt(self: Memblock, phys: int, size: int) -> np.ndarray:
        """``phys_to_virt()``: a uint8 view of ``[phys, phys + size)``."""
        if self._physmem is None:
            raise ValueError("phys_to_virt: this Memblock has no PhysicalMemory")
        return self._physmem.view(phys, size)
