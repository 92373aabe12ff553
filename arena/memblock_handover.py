"""memblock's hand-over to the page allocator: ``memblock_free_late()`` and
``memblock_free_all()`` (``free_low_memory_core_early()``), all or nothing.

A part of :class:`arena.memblock.Memblock` (its methods declare ``self: Memblock``). The
page allocator is anything with ``boot_free(pfn, order, nid)``
(:class:`arena.protocols.PageSink`).
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

from arena._args import int_arg
from arena.constants import HOTPLUG, NONE, NUMA_NO_NODE
from arena.errors import HandoverError
from arena.protocols import PageSink

if TYPE_CHECKING:
    from arena.memblock import Memblock

__all__ = ["Handover"]

_log = logging.getLogger("arena.memblock")
_INFO = logging.INFO


class Handover:
    """The hand-over of :class:`arena.memblock.Memblock` to the page allocator (a part of the
    class)."""

    # ========================================================================================
    # Hand-over to the page allocator (memblock_free_late, memblock_free_all)
    # ========================================================================================

    def free_late(self: Memblock, base: int, size: int) -> None:
        """``memblock_free_late()``: after :meth:`free_all`, give the whole pages of
        ``[base, base + size)`` to the page allocator one by one (``boot_free(pfn, 0, nid)``);
        ``reserved`` is not touched. Raises :class:`HandoverError` before ``free_all`` and
        ``ValueError`` if a page is not memory (nothing is freed then). O(pages log n)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if not self._handed_over:
            raise HandoverError("free_late() hands pages to the page allocator: call "
                                "free_all(buddy) first (before it, use phys_free)")
        self._check_pages_in_memory(base, size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_free_late", base, size)
        self._release_pages(base, size)

    def _page_nid(self: Memblock, phys: int) -> int:
        p = self._search(self.memory, phys)
        if p is None:
            raise ValueError(f"page at {self._pa(phys)} is not memory")
        nid = p[3]
        return nid if self._numa_valid_node(nid) else 0

    def _check_pages_in_memory(self: Memblock, base: int, size: int) -> None:
        ps = self._page_size
        sh = self._page_shift
        for pfn in range((base + ps - 1) >> sh, ((base + size) & self._mask) >> sh):
            self._page_nid(pfn << sh)

    def _release_pages(self: Memblock, base: int, size: int) -> None:
        """Give every whole page of ``[base, base + size)`` to the buddy allocator (order 0)."""
        ps = self._page_size
        sh = self._page_shift
        first, end = (base + ps - 1) >> sh, ((base + size) & self._mask) >> sh
        overlaps = getattr(self._buddy, "overlaps_managed", None)
        if overlaps is not None and end > first and overlaps(first, end - first):
            # All or nothing: handing over the pages before the first managed one and then
            # failing would leave the range half given away.
            raise ValueError(f"pages [{first:#x}, {end:#x}) are already managed (in part) by "
                             f"the page allocator: nothing was handed over")
        if self._buddy is None:
            raise HandoverError("no page allocator: free_all(buddy) was not called")
        boot_free = self._buddy.boot_free
        for pfn in range(first, end):
            boot_free(pfn, 0, self._page_nid(pfn << sh))

    def free_all(self: Memblock, buddy: PageSink) -> int:
        """``memblock_free_all()`` / ``free_low_memory_core_early()``: hand all free memory to
        the page allocator; returns the number of pages.

        Clears HOTPLUG on all memory, stamps reserved regions with the nid of the memory below
        them (NUMA, kernels >= 6.5), then for each free range (memory minus reserved, NOMAP and
        DRIVER_MANAGED excluded) calls ``buddy.boot_free(pfn, order, nid)`` for the naturally
        aligned power-of-two blocks (capped at ``buddy.max_order``, default 10) in ascending
        order; ``pfn = phys // page_size``; ``nid`` is the memory region's node (0 without NUMA
        or when the region has no valid node). Afterwards every allocation method raises
        :class:`HandoverError`. O(n + blocks).

        All or nothing: a buddy that does not fit (another ``page_size``, another
        ``physmem``, pages it already manages or that lie outside its memory) is refused with
        ``ValueError`` before the first page, and memblock is left exactly as it was.
        """
        if self._handed_over:
            raise HandoverError("free_all() was already called")
        max_order = self._check_buddy(buddy)
        saved = self._snapshot()
        try:
            self.kho_scratch_only = False
            self._setclr_flag(self.memory, 0, self._mask, False, HOTPLUG)
            if self._numa and self._v_set_node_pass:
                while True:
                    old_max = self.reserved.max
                    # (set_node on reserved leaves memory as it is)
                    for b, s, _, n in list(self.memory.regions):
                        self._set_node(b, s, self.reserved, n)
                    if self.reserved.max == old_max:
                        break
            ranges = self._free_page_ranges()
            self._check_pages_fit(buddy, ranges)
        except BaseException:
            self._restore(saved)
            raise
        boot_free = buddy.boot_free
        pages = 0
        for s, e, nid in ranges:
            pages += e - s
            while s < e:
                order = min(max_order, (s & -s).bit_length() - 1) if s else max_order
                while s + (1 << order) > e:
                    order -= 1
                boot_free(s, order, nid)
                s += 1 << order
        self._buddy = buddy
        self._handed_over = True
        self._done()
        return pages

    def _check_buddy(self: Memblock, buddy: PageSink) -> int:
        """The hand-over's checks of the page allocator itself; returns its ``max_order``."""
        if not isinstance(buddy, PageSink):
            raise TypeError(f"buddy must have boot_free(pfn, order, nid), not "
                            f"{type(buddy).__name__}")
        max_order = int_arg("buddy.max_order", getattr(buddy, "max_order", 10))
        if not 0 <= max_order < 64:
            raise ValueError(f"buddy.max_order {max_order} is not an order (0..63)")
        ps = getattr(buddy, "page_size", None)
        if ps is not None and int_arg("buddy.page_size", ps) != self._page_size:
            raise ValueError(f"the buddy allocator's page_size is {ps}, memblock's is "
                             f"{self._page_size}: page frame numbers would mean other "
                             f"addresses (nothing was handed over)")
        pm = getattr(buddy, "physmem", None)
        if pm is not None and self._physmem is not None and pm is not self._physmem:
            raise ValueError("the buddy allocator manages another PhysicalMemory than "
                             "memblock's (nothing was handed over)")
        return max_order

    def _free_page_ranges(self: Memblock) -> list[tuple[int, int, int]]:
        """``(first pfn, end pfn, nid)`` of the whole pages of every free range, ascending."""
        ps = self._page_size
        sh = self._page_shift
        out = []
        for start, end, nid in self._next_mem_range(self.memory, self.reserved, NUMA_NO_NODE,
                                                    NONE):
            s = (start + ps - 1) >> sh
            e = end >> sh
            if s < e:
                out.append((s, e, nid if self._numa_valid_node(nid) else 0))
        return out

    def _check_pages_fit(self: Memblock, buddy: PageSink, ranges: list[tuple[int, int, int]]) -> None:
        """Refuse (ValueError) pages the buddy allocator already manages or cannot hold."""
        sh = self._page_shift
        overlaps = getattr(buddy, "overlaps_managed", None)
        pm = getattr(buddy, "physmem", None)
        for s, e, _ in ranges:
            if overlaps is not None and overlaps(s, e - s):
                raise ValueError(f"pages [{s:#x}, {e:#x}) are already managed (in part) by the "
                                 f"page allocator: nothing was handed over")
            if pm is not None and not pm.contains(s << sh, (e - s) << sh):
                raise ValueError(f"pages [{s:#x}, {e:#x}) lie outside the buddy allocator's "
                                 f"physical memory: nothing was handed over")

    def _snapshot(self: Memblock) -> tuple:
        """Everything :meth:`free_all` may change before the first page is handed over."""
        return (copy.deepcopy((self.memory, self.reserved, self.physmem)),
                self.kho_scratch_only, self._current_limit)

    def _restore(self: Memblock, saved: tuple) -> None:
        """Put back a :meth:`_snapshot` (in place: callers may hold the type objects)."""
        types, self.kho_scratch_only, self._current_limit = saved
        for live, old in zip((self.memory, self.reserved, self.physmem), types, strict=True):
            live.restore(old)
