"""The buddy page allocator that memblock hands its memory to (a model of ``mm/page_alloc.c``).

At the end of boot the kernel's ``memblock_free_all()`` releases every free page to the buddy
allocator, one naturally aligned power-of-two block at a time (``memblock_free_pages()`` →
``__free_pages_core()``); later ``memblock_free_late()`` adds reserved ranges page by page. This
module is the receiving side: :meth:`BuddyAllocator.boot_free` is the one hand-over function
called by :meth:`arena.memblock.Memblock.free_all` / ``free_late``.

Invariants (verified by :meth:`BuddyAllocator.check`, O(n log n) in the number of blocks):

* A *block* is ``2**order`` pages ``[pfn, pfn + 2**order)``, ``0 <= order <= max_order``, with
  ``pfn`` a multiple of ``2**order`` (naturally aligned). Every managed page lies in exactly one
  block, free or allocated; blocks never overlap and never leave the node's managed pages.
* Every free block is on exactly one free list, that of its ``(node, order)``.
* No two free buddies are left unmerged: a free block of order ``< max_order`` never has its
  buddy (``pfn ^ 2**order``) free with the same order on the same node.
* Per node, ``managed == free + allocated`` pages, and the free page count equals the sum over
  the free lists of ``len(list) << order``.

Model and deterministic policy (bit-exactness with the kernel's page allocator is not a goal;
determinism is):

* One zone per node, named ``Normal``; no DMA/DMA32/Movable zones, no migrate types, no per-CPU
  lists, no watermarks, no shuffling. Buddies merge only within one node (the kernel merges only
  within one zone). Orders run ``0 .. max_order`` (the kernel's ``MAX_PAGE_ORDER``, default 10).
* Free lists behave like the kernel's ``free_area[order].free_list``: allocation takes the
  *head*; pages from memblock go to the *tail* (``FPI_TO_TAIL`` of ``__free_pages_core``); a
  normal free goes to the head, or to the tail when the merged block's next-order buddy is free
  (the kernel's ``buddy_merge_likely``); split-off halves go to the head (``expand``).
* Allocation (``__rmqueue_smallest``): the smallest order with a free block, from the head of
  that list; the block is split down, the lower half kept, the upper halves freed.
* Node fallback: ``node=None`` (or ``NUMA_NO_NODE``) searches the nodes in ascending id order;
  ``node=N`` tries N first and then the other nodes in ascending id order (we have no distance
  table; the kernel walks its zonelist by distance); ``strict_node=True`` never falls back
  (``__GFP_THISNODE``).

Errors in tiers: a caller's mistake (bad order, bad type, unknown node,
double free, foreign or partial page, overlapping hand-over) raises ``TypeError`` /
``ValueError`` (:class:`arena.errors.DoubleFreeError`, :class:`arena.errors.ForeignBufferError`)
and changes nothing; running out of memory makes the kernel-named ``alloc_pages`` return
``None`` as the kernel returns NULL. The Pythonic layer (:class:`arena.Arena`) raises
:class:`arena.errors.ArenaMemoryError` on top of that.

Set the environment variable ``ARENA_CHECK=1`` to make every mutator call :meth:`check`.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from arena._args import int_arg
from arena.constants import NUMA_NO_NODE
from arena.errors import BuddyBug, ClosedError, DoubleFreeError, ForeignBufferError
from arena.memblock import Memblock
from arena.physmem import PhysicalMemory

__all__ = ["MAX_PAGE_ORDER", "NUMA_NO_NODE", "ZONE_NAME", "BuddyAllocator", "BuddyBug"]

MAX_PAGE_ORDER = 10
"""The kernel's default largest order: blocks of up to ``2**10`` pages (4 MiB with 4 KiB pages)."""


ZONE_NAME = "Normal"
"""The name of the single zone we model per node."""


class BuddyAllocator:
    """Per-node, per-order free lists of naturally aligned page blocks (``struct zone``'s
    ``free_area[]``), fed by memblock's hand-over.

    ``physmem`` (optional) is the :class:`arena.physmem.PhysicalMemory` the pages live in; with
    it :meth:`alloc_pages` returns writable numpy views, without it only the physical-address
    API (:meth:`alloc_pages_phys`) works. ``page_size`` is the kernel's ``PAGE_SIZE`` in bytes
    (a power of two; pfn = phys // page_size, absolute); ``max_order`` the kernel's
    ``MAX_PAGE_ORDER`` (default 10). Raises ``TypeError``/``ValueError`` for bad parameters.

    Memory: O(number of blocks), not O(pages).
    """

    def __init__(
        self,
        physmem: PhysicalMemory | None = None,
        *,
        page_size: int = 4096,
        max_order: int = MAX_PAGE_ORDER,
    ) -> None:
        page_size = int_arg("page_size", page_size)
        max_order = int_arg("max_order", max_order)
        if page_size <= 0 or page_size & (page_size - 1):
            raise ValueError(f"page_size must be a positive power of two, not {page_size}")
        if not 0 <= max_order <= 62:
            raise ValueError(f"max_order must be in 0..62, not {max_order}")
        if physmem is not None and not isinstance(physmem, PhysicalMemory):
            raise TypeError(f"physmem must be a PhysicalMemory or None, not "
                            f"{type(physmem).__name__}")
        self._physmem = physmem
        self._page_size = page_size
        self._page_shift = page_size.bit_length() - 1
        self._max_order = max_order
        # pfn -> (order, nid) of every free block (the kernel's PageBuddy + buddy_order).
        self._free: dict[int, tuple[int, int]] = {}
        # pfn -> (order, nid) of every block handed out by alloc_pages*.
        self._allocated: dict[int, tuple[int, int]] = {}
        # nid -> one free list per order; an OrderedDict gives O(1) head/tail insertion, head
        # removal and removal by pfn (the kernel's doubly linked list_head).
        self._lists: dict[int, list[OrderedDict[int, None]]] = {}
        self._nr_free: dict[int, int] = {}  # nid -> free pages
        self._managed: dict[int, int] = {}  # nid -> managed pages (zone_managed_pages)
        # Managed pfn ranges [start, end) with their node: sorted, disjoint, adjacent ranges of
        # the same node merged. Only the hand-over changes them.
        self._rstart: list[int] = []
        self._rend: list[int] = []
        self._rnid: list[int] = []
        self._debug_check = os.environ.get("ARENA_CHECK", "") not in ("", "0")

    # -- properties -------------------------------------------------------------------------

    @property
    def physmem(self) -> PhysicalMemory | None:
        """The physical memory the pages live in, or ``None``."""
        return self._physmem

    @property
    def page_size(self) -> int:
        """``PAGE_SIZE`` in bytes."""
        return self._page_size

    @property
    def max_order(self) -> int:
        """``MAX_PAGE_ORDER``: the largest block is ``2**max_order`` pages."""
        return self._max_order

    @property
    def nodes(self) -> list[int]:
        """Ids of the nodes that have received pages, ascending. O(nodes)."""
        return sorted(self._managed)

    # -- small helpers ----------------------------------------------------------------------

    def _check_order(self, order: object) -> int:
        order = int_arg("order", order)
        if not 0 <= order <= self._max_order:
            raise ValueError(f"order {order} out of range 0..{self._max_order}")
        return order

    def _check_node(self, node: object) -> int | None:
        """``None`` for any node, else a node that has pages (``ValueError`` otherwise)."""
        if node is None:
            return None
        node = int_arg("node", node)
        if node == NUMA_NO_NODE:
            return None
        if node not in self._managed:
            raise ValueError(f"unknown node {node}: nodes with pages are {self.nodes}")
        return node

    def _node_lists(self, nid: int) -> list[OrderedDict[int, None]]:
        lists = self._lists.get(nid)
        if lists is None:
            lists = self._lists[nid] = [OrderedDict() for _ in range(self._max_order + 1)]
            self._nr_free[nid] = 0
            self._managed[nid] = 0
        return lists

    def _block_containing(self, table: dict[int, tuple[int, int]], pfn: int) -> tuple[int, int] | None:
        """``(start, order)`` of the block in ``table`` that contains ``pfn``, or ``None``.

        Blocks are naturally aligned, so only ``max_order + 1`` starts are possible. O(max_order).
        """
        for order in range(self._max_order + 1):
            start = pfn >> order << order
            entry = table.get(start)
            if entry is not None and entry[0] == order:
                return start, order
        return None

    def _maybe_check(self) -> None:
        if self._debug_check:
            self.check()

    # -- the two primitives: __free_one_page and __rmqueue_smallest --------------------------

    def _free_one(self, pfn: int, order: int, nid: int, to_tail: bool) -> None:
        """``__free_one_page()``: put a block on the free lists, merging free buddies.

        Merging stops at ``max_order`` or at the first buddy that is not free with the same
        order on the same node. ``to_tail`` (``FPI_TO_TAIL``) puts the result at the list tail;
        otherwise it goes to the head unless its next-order buddy is free (then a merge is
        likely soon and the kernel puts it at the tail). O(max_order).
        """
        free = self._free
        lists = self._lists[nid]
        max_order = self._max_order
        self._nr_free[nid] += 1 << order
        while order < max_order:
            buddy = pfn ^ (1 << order)
            if free.get(buddy) != (order, nid):
                break
            del free[buddy]
            del lists[order][buddy]
            pfn &= buddy
            order += 1
        if not to_tail and order < max_order - 1:
            # buddy_merge_likely: is the buddy of the next-order block free?
            higher = pfn & ~(1 << order)
            to_tail = free.get(higher ^ (1 << (order + 1))) == (order + 1, nid)
        free[pfn] = (order, nid)
        free_list = lists[order]
        free_list[pfn] = None
        if not to_tail:
            free_list.move_to_end(pfn, last=False)

    def _rmqueue(self, order: int, nid: int) -> int | None:
        """``__rmqueue_smallest()`` + ``expand()`` on one node: pfn of a block, or ``None``.

        Takes the head of the smallest non-empty list of order ``>= order``; the upper halves
        split off go to the heads of their lists. O(max_order).
        """
        lists = self._lists[nid]
        for current in range(order, self._max_order + 1):
            free_list = lists[current]
            if free_list:
                break
        else:
            return None
        pfn, _ = free_list.popitem(last=False)
        free = self._free
        del free[pfn]
        while current > order:
            current -= 1
            half = pfn + (1 << current)
            free[half] = (current, nid)
            lists[current][half] = None
            lists[current].move_to_end(half, last=False)
        self._nr_free[nid] -= 1 << order
        self._allocated[pfn] = (order, nid)
        return pfn

    # -- hand-over from memblock ------------------------------------------------------------

    def boot_free(self, pfn: int, order: int, nid: int) -> None:
        """``memblock_free_pages()`` → ``__free_pages_core()``: receive a block from memblock.

        ``[pfn, pfn + 2**order)`` (page frame numbers, absolute: ``pfn = phys // page_size``)
        becomes managed by node ``nid`` (``nid >= 0``) and free; it merges with free buddies
        of the same node and goes to the tail of its free list (``FPI_TO_TAIL``). Called by
        :meth:`arena.memblock.Memblock.free_all` (one call per naturally aligned block, in
        ascending order) and ``free_late`` (order 0).

        Raises ``TypeError``/``ValueError`` (state unchanged) for a bad order, a negative or
        misaligned pfn, a negative nid, pages outside ``physmem``, or pages already managed.
        O(log ranges + max_order).
        """
        pfn = int_arg("pfn", pfn)
        order = self._check_order(order)
        nid = int_arg("nid", nid)
        if pfn < 0:
            raise ValueError(f"pfn {pfn:#x} is negative")
        if pfn & ((1 << order) - 1):
            raise ValueError(f"pfn {pfn:#x} is not aligned to order {order}")
        if nid < 0:
            raise ValueError(f"nid {nid} is not a node (NUMA_NO_NODE is not allowed here)")
        end = pfn + (1 << order)
        pm = self._physmem
        if pm is not None and not pm.contains(pfn << self._page_shift, (1 << order) << self._page_shift):
            raise ValueError(
                f"pages [{pfn:#x}, {end:#x}) lie outside physical memory "
                f"[{pm.phys_base:#x}, {pm.phys_end:#x})"
            )
        rstart, rend, rnid = self._rstart, self._rend, self._rnid
        i = bisect_right(rstart, pfn)
        if (i and rend[i - 1] > pfn) or (i < len(rstart) and rstart[i] < end):
            raise ValueError(f"pages [{pfn:#x}, {end:#x}) are already managed by the buddy allocator")
        # Record the managed range, merging with same-node neighbours.
        joins_left = i and rend[i - 1] == pfn and rnid[i - 1] == nid
        joins_right = i < len(rstart) and rstart[i] == end and rnid[i] == nid
        if joins_left and joins_right:
            rend[i - 1] = rend[i]
            del rstart[i], rend[i], rnid[i]
        elif joins_left:
            rend[i - 1] = end
        elif joins_right:
            rstart[i] = pfn
        else:
            rstart.insert(i, pfn)
            rend.insert(i, end)
            rnid.insert(i, nid)
        self._node_lists(nid)
        self._managed[nid] += 1 << order
        self._free_one(pfn, order, nid, to_tail=True)
        self._maybe_check()

    def overlaps_managed(self, pfn: int, npages: int = 1) -> bool:
        """True if any page of ``[pfn, pfn + npages)`` is already managed (handed over).

        Lets a caller that hands over many pages (``Memblock.free_late``) refuse the whole
        range before giving any of it. Raises ``TypeError``/``ValueError`` for a bad argument.
        O(log ranges).
        """
        pfn = int_arg("pfn", pfn)
        npages = int_arg("npages", npages)
        if pfn < 0 or npages < 0:
            raise ValueError(f"pfn {pfn:#x} and npages {npages} must not be negative")
        end = pfn + npages
        rstart, rend = self._rstart, self._rend
        i = bisect_right(rstart, pfn)
        return npages > 0 and bool((i and rend[i - 1] > pfn) or (i < len(rstart) and rstart[i] < end))

    # -- allocation and free ----------------------------------------------------------------

    def alloc_pages_phys(self, order: int, *, node: int | None = None, strict_node: bool = False) -> int | None:
        """``__alloc_pages(gfp, order, nid)`` in physical addresses: 2**order pages, or ``None``.

        Returns the physical address (bytes) of ``page_size << order`` bytes aligned to that
        size, or ``None`` when no node allowed has a free block of order ``>= order`` (the
        kernel's NULL). ``node``: ``None``/``NUMA_NO_NODE`` = any node, in ascending id order;
        ``N`` = node N first, then the others ascending, unless ``strict_node``
        (``__GFP_THISNODE``). Raises ``TypeError``/``ValueError`` for a bad order or an unknown
        node. O(nodes + max_order).
        """
        picked = self._pick(order, node, strict_node)
        if picked is None:
            return None
        nid, pfn, order = picked
        self._rmqueue(order, nid)
        self._maybe_check()
        return pfn << self._page_shift

    def _pick(self, order: object, node: object,
              strict_node: object) -> tuple[int, int, int] | None:
        """Validate an allocation request; ``(nid, pfn, order)`` of the block :meth:`_rmqueue`
        will hand out (the head of the smallest fitting list on the first node that has one: a
        split keeps the lower half, so that head is the block's start), or ``None``. ``order``
        is the argument as a Python int: callers use it, never the raw argument (a numpy
        ``int8`` would overflow in the page arithmetic after the block was taken).

        Takes nothing: callers do every step that can fail before the state changes.
        """
        order = self._check_order(order)
        nid = self._check_node(node)
        if not isinstance(strict_node, (bool, np.bool_)):
            raise TypeError(f"strict_node must be a bool, not {type(strict_node).__name__} {strict_node!r}")
        if nid is None:
            candidates = sorted(self._lists)
        elif strict_node:
            candidates = [nid]
        else:
            candidates = [nid] + [n for n in sorted(self._lists) if n != nid]
        for candidate in candidates:
            lists = self._lists[candidate]
            for current in range(order, self._max_order + 1):
                if lists[current]:
                    return candidate, next(iter(lists[current])), order
        return None

    def alloc_pages(self, order: int, *, node: int | None = None, strict_node: bool = False) -> np.ndarray | None:
        """``alloc_pages_node()``: 2**order pages as a writable uint8 numpy view, or ``None``.

        The view covers ``page_size << order`` bytes of ``physmem`` (its physical address is
        ``physmem.phys_of(view)``); contents are whatever the memory holds (not zeroed, like
        the kernel without ``__GFP_ZERO``). Same arguments and failure as
        :meth:`alloc_pages_phys`; raises ``ValueError`` if the allocator has no ``physmem``.
        O(nodes + max_order).
        """
        if self._physmem is None:
            raise ValueError("this BuddyAllocator has no physmem: use alloc_pages_phys()")
        picked = self._pick(order, node, strict_node)
        if picked is None:
            return None
        nid, pfn, order = picked
        # The view first: if the memory refuses (closed, a fault), no page has been taken.
        view = self._physmem.view(pfn << self._page_shift, self._page_size << order)
        self._rmqueue(order, nid)
        self._maybe_check()
        return view

    def free_pages(self, view_or_phys: np.ndarray | int, order: int) -> None:
        """``free_pages(addr, order)`` / ``__free_pages()``: give an allocation back.

        ``view_or_phys`` is the whole view returned by :meth:`alloc_pages` or the physical
        address returned by :meth:`alloc_pages_phys`; ``order`` must be the order it was
        allocated with. The block merges with free buddies and goes to the head of its list
        (the tail when a merge with the next order looks likely).

        Raises ``TypeError`` for a bad type, ``ValueError`` for a bad order,
        :class:`arena.errors.DoubleFreeError` for pages that are free,
        :class:`arena.errors.ForeignBufferError` for anything else that is not exactly one
        allocation of that order (foreign memory, misaligned address, part of an allocation,
        wrong order). State is unchanged on error. O(max_order).
        """
        order = self._check_order(order)
        if isinstance(view_or_phys, np.ndarray):
            pm = self._physmem
            if pm is None:
                raise ForeignBufferError("this BuddyAllocator has no physmem: free by physical address")
            try:
                phys = pm.phys_of(view_or_phys)
            except ClosedError:
                raise
            except ValueError as exc:
                raise ForeignBufferError(f"array does not lie in this physical memory: {exc}") from exc
            if view_or_phys.nbytes != self._page_size << order:
                raise ForeignBufferError(
                    f"view of {view_or_phys.nbytes} bytes at {phys:#x} is not a whole order-{order} "
                    f"allocation ({self._page_size << order} bytes)"
                )
        else:
            phys = int_arg("phys", view_or_phys)
        if phys < 0 or phys & (self._page_size - 1):
            raise ForeignBufferError(f"address {phys:#x} is not a page address")
        pfn = phys >> self._page_shift
        entry = self._allocated.get(pfn)
        if entry is None:
            free_block = self._block_containing(self._free, pfn)
            if free_block is not None:
                raise DoubleFreeError(
                    f"page {phys:#x} is already free (in the free order-{free_block[1]} block "
                    f"at {free_block[0] << self._page_shift:#x})"
                )
            block = self._block_containing(self._allocated, pfn)
            if block is not None:
                raise ForeignBufferError(
                    f"address {phys:#x} is inside the order-{block[1]} allocation at "
                    f"{block[0] << self._page_shift:#x}, not its start"
                )
            raise ForeignBufferError(f"address {phys:#x} was not allocated by this allocator")
        if entry[0] != order:
            raise ForeignBufferError(
                f"address {phys:#x} was allocated with order {entry[0]}, freed with order {order}"
            )
        del self._allocated[pfn]
        self._free_one(pfn, order, entry[1], to_tail=False)
        self._maybe_check()

    # -- queries ----------------------------------------------------------------------------

    def nr_free_pages(self, node: int | None = None) -> int:
        """``nr_free_pages()`` (``node=None``) or the node's ``NR_FREE_PAGES``: free pages.

        ``ValueError`` for an unknown node. O(nodes).
        """
        nid = self._check_node(node)
        if nid is None:
            return sum(self._nr_free.values())
        return self._nr_free[nid]

    def managed_pages(self, node: int | None = None) -> int:
        """``totalram_pages()`` (``node=None``) or the node's ``zone_managed_pages()``.

        Pages ever handed over by memblock (free or allocated). ``ValueError`` for an
        unknown node. O(nodes).
        """
        nid = self._check_node(node)
        if nid is None:
            return sum(self._managed.values())
        return self._managed[nid]

    def free_area(self, node: int) -> tuple[int, ...]:
        """``zone->free_area[order].nr_free`` for each order ``0..max_order``: free block counts.

        ``ValueError`` for an unknown node or ``None``. O(max_order).
        """
        nid = self._check_node(node)
        if nid is None:
            raise ValueError("free_area() needs a node")
        return tuple(len(free_list) for free_list in self._lists[nid])

    def free_blocks(self, node: int | None = None) -> Iterator[tuple[int, int, int]]:
        """Every free block as ``(pfn, order, nid)``: nodes ascending, orders ascending, each
        list from head (allocated next) to tail. ``node`` restricts to one node. O(blocks)."""
        nid = self._check_node(node)
        for n in sorted(self._lists) if nid is None else [nid]:
            for order, free_list in enumerate(self._lists[n]):
                for pfn in free_list:
                    yield pfn, order, n

    def _present(self, memblock: Any) -> dict[int, tuple[int, int, int]]:
        """nid -> (present pages, first pfn, end pfn) from memblock's memory regions, as the
        kernel sizes its nodes with ``for_each_mem_pfn_range`` (whole pages only; NOMAP
        memory counts as present). A region without a valid node (``memblock.add()`` gives
        ``MAX_NUMNODES``) counts for node 0, as ``free_all`` hands its pages to node 0.
        Without memblock: the managed ranges. O(regions)."""
        if memblock is not None and not isinstance(memblock, Memblock):
            raise TypeError(f"memblock must be a Memblock or None, not {type(memblock).__name__}")
        out: dict[int, tuple[int, int, int]] = {}
        ranges: Iterable[tuple[int, int, int]]
        if memblock is None:
            ranges = zip(self._rstart, self._rend, self._rnid, strict=True)
        else:
            shift, mask = self._page_shift, self._page_size - 1
            memory = memblock.memory
            max_numnodes = getattr(memblock, "max_numnodes", 1 << 62)
            regions = [memory.regions[i] for i in range(memory.cnt)]
            ranges = (((r.base + mask) >> shift, (r.base + r.size) >> shift,
                       r.nid if 0 <= r.nid < max_numnodes else 0) for r in regions)
        for start, end, nid in ranges:
            if start >= end:
                continue
            present, first, last = out.get(nid, (0, start, end))
            out[nid] = (present + end - start, min(first, start), max(last, end))
        return out

    def _zone_nodes(self, memblock: Any) -> tuple[list[int], dict[int, tuple[int, int, int]]]:
        present = self._present(memblock)
        return sorted(set(present) | set(self._managed)), present

    def buddyinfo(self, memblock: Any = None) -> str:
        """``/proc/buddyinfo`` (``frag_show_print``): one line per populated node.

        ``"Node %d, zone %8s "`` then ``"%6lu "`` per order 0..max_order, then a newline. A node
        is listed if it has managed pages, or (given ``memblock``) present memory. O(nodes ×
        max_order).
        """
        nodes, _ = self._zone_nodes(memblock)
        empty = (0,) * (self._max_order + 1)
        lines = []
        for nid in nodes:
            counts = self.free_area(nid) if nid in self._lists else empty
            lines.append(f"Node {nid}, zone {ZONE_NAME:>8} " + "".join(f"{c:6d} " for c in counts) + "\n")
        return "".join(lines)

    def zoneinfo(self, memblock: Any = None) -> str:
        """A ``/proc/zoneinfo`` subset (``zoneinfo_show_print``) per node: the zone header and
        the kernel's ``pages free``, ``spanned``, ``present`` and ``managed`` lines, plus our own
        ``reserved`` line (= present − managed, the pages memblock kept), same layout::

            Node 0, zone   Normal
              pages free     1021
                    spanned  1024
                    present  1024
                    managed  1022
                    reserved 2

        ``memblock`` (the :class:`arena.memblock.Memblock` that handed over) gives present and
        spanned pages from its memory regions; without it they are derived from the managed
        pages (so ``reserved`` reads 0). O(regions + nodes).
        """
        nodes, present = self._zone_nodes(memblock)
        out = []
        for nid in nodes:
            pages, first, end = present.get(nid, (0, 0, 0))
            managed = self._managed.get(nid, 0)
            out.append(
                f"Node {nid}, zone {ZONE_NAME:>8}\n"
                f"  pages free     {self._nr_free.get(nid, 0)}\n"
                f"        spanned  {end - first}\n"
                f"        present  {pages}\n"
                f"        managed  {managed}\n"
                f"        reserved {max(pages - managed, 0)}\n"
            )
        return "".join(out)

    # -- invariants and dump ----------------------------------------------------------------

    def dump(self, limit: int = 16) -> str:
        """Human-readable state: managed ranges, per-node counts, free lists (first ``limit``
        blocks of each, head first) and allocated blocks (first ``limit``). O(blocks)."""
        limit = int_arg("limit", limit)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        ps = self._page_shift
        lines = [f"BuddyAllocator: page_size={self._page_size} max_order={self._max_order}"]
        for start, end, nid in zip(self._rstart, self._rend, self._rnid, strict=True):
            lines.append(f" managed [{start << ps:#x}-{(end << ps) - 1:#x}] node {nid}")
        for nid in sorted(self._lists):
            lines.append(
                f" node {nid}: managed {self._managed[nid]} free {self._nr_free[nid]} "
                f"free_area {list(len(fl) for fl in self._lists[nid])}"
            )
            for order, free_list in enumerate(self._lists[nid]):
                if free_list:
                    pfns = list(free_list)
                    shown = " ".join(f"{p:#x}" for p in pfns[:limit])
                    more = f" ... (+{len(pfns) - limit})" if len(pfns) > limit else ""
                    lines.append(f"  order {order}: pfn {shown}{more}")
        allocated = sorted(self._allocated.items())
        shown = " ".join(f"{p:#x}/{o}@{n}" for p, (o, n) in allocated[:limit])
        more = f" ... (+{len(allocated) - limit})" if len(allocated) > limit else ""
        lines.append(f" allocated {len(allocated)}: {shown}{more}")
        return "\n".join(lines)

    def check(self) -> None:
        """Verify every invariant of the module docstring; raise :class:`BuddyBug` with a
        :meth:`dump` on the first violation. O(blocks × log blocks + ranges)."""
        problems = self._find_problem()
        if problems:
            raise BuddyBug(f"buddy allocator invariant broken: {problems}\n{self.dump()}")

    def _find_problem(self) -> str | None:
        max_order, free = self._max_order, self._free
        # Managed ranges: sorted, disjoint, minimal; per-node totals.
        managed: dict[int, int] = {}
        prev_end, prev_nid = -1, None
        for start, end, nid in zip(self._rstart, self._rend, self._rnid, strict=True):
            if not (prev_end <= start < end) or (start == prev_end and nid == prev_nid):
                return f"managed range [{start:#x}, {end:#x}) not sorted/disjoint/merged"
            managed[nid] = managed.get(nid, 0) + end - start
            prev_end, prev_nid = end, nid
        if managed != {n: m for n, m in self._managed.items() if m}:
            return f"managed counts {self._managed} != ranges {managed}"
        # Free lists against the free table, counts, merging.
        listed = 0
        for nid, lists in self._lists.items():
            if len(lists) != max_order + 1:
                return f"node {nid} has {len(lists)} free lists"
            pages = 0
            for order, free_list in enumerate(lists):
                for pfn in free_list:
                    if free.get(pfn) != (order, nid):
                        return f"pfn {pfn:#x} on list ({nid}, {order}) but free table says {free.get(pfn)}"
                    if order < max_order and free.get(pfn ^ (1 << order)) == (order, nid):
                        return f"free buddies {pfn:#x} and {pfn ^ (1 << order):#x} of order {order} not merged"
                listed += len(free_list)
                pages += len(free_list) << order
            if pages != self._nr_free[nid]:
                return f"node {nid}: nr_free {self._nr_free[nid]} != {pages} pages on the lists"
        if listed != len(free):
            return f"{len(free)} free blocks but {listed} on the lists"
        # Every block aligned, disjoint, inside its node's managed ranges; exact cover.
        blocks = sorted([(p, o, n, "free") for p, (o, n) in free.items()]
                        + [(p, o, n, "allocated") for p, (o, n) in self._allocated.items()])
        covered: dict[int, int] = {}
        prev_end, r = -1, 0
        rstart, rend, rnid = self._rstart, self._rend, self._rnid
        for pfn, order, nid, kind in blocks:
            end = pfn + (1 << order)
            if not 0 <= order <= max_order or pfn & ((1 << order) - 1):
                return f"{kind} block {pfn:#x} of order {order} misaligned"
            if pfn < prev_end:
                return f"{kind} block {pfn:#x} of order {order} overlaps the previous block"
            while r < len(rend) and rend[r] <= pfn:
                r += 1
            if r == len(rend) or not rstart[r] <= pfn < end <= rend[r] or rnid[r] != nid:
                return f"{kind} block {pfn:#x} of order {order} (node {nid}) not inside a managed range of its node"
            covered[nid] = covered.get(nid, 0) + (1 << order)
            prev_end = end
        if covered != managed:
            return f"blocks cover {covered} pages per node, managed {managed}"
        return None
