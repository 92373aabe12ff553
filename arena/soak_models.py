"""The soak's reference models: what memblock and the buddy allocator must do, predicted from
the set of bytes / pages alone, never from the implementations' arrays.

Kernel counterpart: none (the kernel's memblock test suite has no randomized tests).

* :class:`MemblockModel` — a byte map of the ``memory`` and ``reserved`` sets over a window of
  physical addresses (each byte: present?, nid, flags). The region arrays the kernel keeps are
  the run-length encoding of that map (the arrays are sorted, disjoint and minimal), so the
  model predicts every region, ``cnt``, ``max`` (array doubling included: where the new array
  goes and what it reserves), ``total_size``, the free ranges and the address every allocation
  chooses (the kernel's walk of :mod:`arena.memblock_linear` over the model's free ranges, with
  the kernel's fallbacks).
* :class:`BuddyModel` — per page: managed by which node, free or allocated. A buddy allocator
  whose invariants hold has exactly one set of free blocks for a set of free pages (the maximal
  naturally aligned free blocks of one node, up to ``max_order``), so the model predicts
  ``free_area``, ``nr_free_pages`` and every free block, and checks that an allocation takes a
  whole free block of the smallest order that can serve it.

Complexity: a model step is O(window bytes) with numpy (a few microseconds per KiB).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arena.constants import (
    DRIVER_MANAGED,
    ENOMEM,
    HOTPLUG,
    KHO_SCRATCH,
    MIRROR,
    NOMAP,
    NUMA_NO_NODE,
    RSRV_KERN,
    round_up,
)
from arena.constants import PHYS_ADDR_MAX_64 as MASK64
from arena.errors import InvariantViolation, KernelBug
from arena.memblock_linear import find_range_bottom_up, find_range_top_down

__all__ = ["BuddyModel", "MemblockModel"]


# -- the memblock model ------------------------------------------------------------------------

class _Map:
    """One region set as a byte map over ``[lo, lo + size)``: per byte ``-1`` (absent) or
    ``nid << 8 | flags`` (flags use 7 bits, so no present byte reads -1)."""

    __slots__ = ("lo", "n", "key", "_runs")

    def __init__(self, lo: int, size: int) -> None:
        self.lo = lo
        self.n = size
        self.key = np.full(size, -1, np.int64)
        self._runs: list[tuple[int, int, int, int]] | None = []

    def _slice(self, base: int, end: int) -> np.ndarray:
        self._runs = None
        return self.key[max(base - self.lo, 0):max(min(end - self.lo, self.n), 0)]

    def add(self, base: int, end: int, nid: int, flags: int) -> None:
        k = self._slice(base, end)
        k[k == -1] = nid << 8 | flags

    def remove(self, base: int, end: int) -> None:
        self._slice(base, end)[:] = -1

    def setclr(self, base: int, end: int, set_: bool, flag: int) -> None:
        k = self._slice(base, end)
        p = k != -1
        k[p] = (k[p] | flag) if set_ else (k[p] & ~flag)

    def set_nid(self, base: int, end: int, nid: int) -> None:
        k = self._slice(base, end)
        p = k != -1
        k[p] = nid << 8 | (k[p] & 0xFF)

    def present(self, base: int, end: int) -> np.ndarray:
        """Per byte of ``[base, end)`` (inside the window): is it in the set?"""
        return self.key[base - self.lo:end - self.lo] != -1

    def runs(self) -> list[tuple[int, int, int, int]]:
        """The minimal region array: ``(base, size, flags, nid)`` ascending. O(bytes)."""
        if self._runs is None:
            key = self.key
            cuts = (np.flatnonzero(key[1:] != key[:-1]) + 1).tolist()
            edges = [0, *cuts, self.n]
            out = []
            for s, e in zip(edges[:-1], edges[1:], strict=True):
                k = int(key[s])
                if k != -1:
                    out.append((self.lo + s, e - s, k & 0xFF, k >> 8))
            self._runs = out
        return self._runs

    def count(self) -> int:
        return len(self.runs())

    def gaps(self, base: int, end: int) -> int:
        """Number of maximal absent pieces of ``[base, end)`` (all inside the window)."""
        absent = ~self.present(max(base, self.lo), min(end, self.lo + self.n))
        if not absent.size:
            return 0
        return int(absent[0]) + int(np.count_nonzero(absent[1:] & ~absent[:-1]))

    def total(self, flag: int = 0) -> int:
        """Bytes in the set (with ``flag``: only bytes carrying it)."""
        return sum(r[1] for r in self.runs() if not flag or r[2] & flag)

    def at(self, addr: int) -> int:
        """``nid << 8 | flags`` of the byte at ``addr``, or -1."""
        return int(self.key[addr - self.lo])


class MemblockModel:
    """Reference model of a :class:`arena.memblock.Memblock` (newest kernel rules).

    All ranges must lie inside the window ``[base, base + size)``. The model follows the
    kernel's *decisions* (which range, which address, when to grow an array) from the set of
    bytes alone, never from the implementation's arrays. Direction, ``current_limit``,
    ``movable_node`` and ``kho_scratch_only`` are plain attributes.
    """

    def __init__(self, base: int, size: int, *, page_size: int = 4096,
                 smp_cache_bytes: int = 64, max_numnodes: int = 64, init_regions: int = 128,
                 region_size: int = 24, can_resize: bool = True) -> None:
        self.base = base
        self.size = size
        self.maps = {"memory": _Map(base, size), "reserved": _Map(base, size)}
        self.max = {"memory": init_regions, "reserved": init_regions}
        self.array: dict[str, int | None] = {"memory": None, "reserved": None}
        self.page_size = page_size
        self.smp_cache_bytes = smp_cache_bytes
        self.max_numnodes = max_numnodes
        self.region_size = region_size
        self.can_resize = can_resize
        self.bottom_up = False
        self.limit = MASK64
        self.movable_node = False
        self.kho_scratch_only = False
        #: ``(base, size)`` of every array freed by a doubling (the caller may have freed
        #: its reservation and allocated there before: then that allocation loses it too)
        self.freed_arrays: list[tuple[int, int]] = []

    @property
    def memory(self) -> _Map:
        """The ``memory`` byte map."""
        return self.maps["memory"]

    @property
    def reserved(self) -> _Map:
        """The ``reserved`` byte map."""
        return self.maps["reserved"]

    # -- region-array primitives ------------------------------------------------------------

    def add_range(self, t: str, base: int, size: int, nid: int, flags: int) -> int:
        """``memblock_add_range``: only absent bytes get ``(nid, flags)``; 0 or ``-ENOMEM``."""
        size = min(size, MASK64 - base)
        if not size:
            return 0
        m = self.maps[t]
        if m.count() and m.count() * 2 + 1 > self.max[t]:
            nr_new = m.gaps(base, base + size)
            if not nr_new:
                return 0
            while m.count() + nr_new > self.max[t]:
                if self._double(t, base, size) < 0:
                    return -ENOMEM
        m.add(base, base + size, nid, flags)
        return 0

    def _isolate(self, t: str, base: int, size: int) -> int:
        if not min(size, MASK64 - base):
            return 0
        while self.maps[t].count() + 2 > self.max[t]:
            if self._double(t, base, size) < 0:
                return -ENOMEM
        return 0

    def remove_range(self, t: str, base: int, size: int) -> int:
        """``memblock_remove_range``: 0 or ``-ENOMEM``."""
        ret = self._isolate(t, base, size)
        if not ret:
            self.maps[t].remove(base, base + min(size, MASK64 - base))
        return ret

    def setclr(self, t: str, base: int, size: int, set_: bool, flag: int) -> int:
        """``memblock_setclr_flag``: 0 or ``-ENOMEM``."""
        ret = self._isolate(t, base, size)
        if not ret:
            self.maps[t].setclr(base, base + min(size, MASK64 - base), set_, flag)
        return ret

    def set_node(self, t: str, base: int, size: int, nid: int) -> int:
        """``memblock_set_node``: 0 or ``-ENOMEM``."""
        ret = self._isolate(t, base, size)
        if not ret:
            self.maps[t].set_nid(base, base + min(size, MASK64 - base), nid)
        return ret

    def _double(self, t: str, pbase: int, psize: int) -> int:
        """``memblock_double_array``: place, reserve and switch to an array twice as big."""
        if not self.can_resize:
            raise InvariantViolation("model: the array would have to grow without allow_resize")
        ps = self.page_size
        old_alloc = round_up(self.max[t] * self.region_size, ps)
        new_alloc = round_up(self.max[t] * self.region_size * 2, ps)
        if t != "reserved":
            pbase = psize = 0
        addr = self.find_in_range(pbase + psize, self.limit, new_alloc, ps)
        if not addr and psize:
            addr = self.find_in_range(0, min(pbase, self.limit), new_alloc, ps)
        if not addr:
            return -1
        self.max[t] *= 2
        old, self.array[t] = self.array[t], addr
        if old is not None:
            self.freed_arrays.append((old, old_alloc))
            self.remove_range("reserved", old, old_alloc)
        if self.add_range("reserved", addr, new_alloc, NUMA_NO_NODE, RSRV_KERN):
            raise KernelBug(f"could not reserve the doubled {t} array")
        return 0

    # -- free ranges and the allocation chain ------------------------------------------------

    def choose_flags(self) -> int:
        """``choose_memblock_flags``: KHO_SCRATCH in scratch-only mode, else none (no mirror)."""
        return KHO_SCRATCH if self.kho_scratch_only else 0

    def free_ranges(self, nid: int = NUMA_NO_NODE, flags: int = 0) -> list[tuple[int, int, int]]:
        """``for_each_free_mem_range(nid, flags)`` without empty ranges: ``(start, end, nid)``."""
        node_on = 0 <= nid < self.max_numnodes
        bad = (NOMAP | DRIVER_MANAGED | (HOTPLUG if self.movable_node else 0)) & ~flags
        need = flags & (MIRROR | KHO_SCRATCH)
        out = []
        for b, s, f, n in self.memory.runs():
            if (node_on and n != nid) or f & bad or need & ~f:
                continue
            free = ~self.reserved.present(b, b + s)
            if free.all():
                out.append((b, b + s, n))
                continue
            d = np.diff(np.concatenate(([False], free, [False])).astype(np.int8))
            starts = np.flatnonzero(d == 1).tolist()
            ends = np.flatnonzero(d == -1).tolist()
            out.extend((b + x, b + y, n) for x, y in zip(starts, ends, strict=True))
        return out

    def find_in_range_node(self, size: int, align: int, start: int, end: int, nid: int,
                           flags: int) -> int:
        """``memblock_find_in_range_node``: highest (top-down) or lowest (bottom-up) aligned
        fit in one free range; 0 if none. ``align`` must be a power of two."""
        if end in (0, 1):
            end = self.limit
        start = max(start, self.page_size)
        end = max(end, start)
        ranges = self.free_ranges(nid, flags)
        if self.bottom_up:
            return find_range_bottom_up(ranges, start, end, size, align)
        return find_range_top_down(reversed(ranges), start, end, size, align)

    def find_in_range(self, start: int, end: int, size: int, align: int) -> int:
        """``memblock_find_in_range`` (array doubling): any node."""
        return self.find_in_range_node(size, align, start, end, NUMA_NO_NODE,
                                       self.choose_flags())

    def alloc_range_nid(self, size: int, align: int, start: int, end: int, nid: int,
                        exact: bool) -> int:
        """``memblock_alloc_range_nid``: node ``nid`` then any node (unless exact); reserves
        the block (RSRV_KERN, nid of the attempt) and returns it, or 0."""
        flags = self.choose_flags()
        align = align or self.smp_cache_bytes
        other = 0 <= nid < self.max_numnodes and not exact
        found = self.find_in_range_node(size, align, start, end, nid, flags)
        if found and not self.add_range("reserved", found, size, nid, RSRV_KERN):
            return found
        if other:
            found = self.find_in_range_node(size, align, start, end, NUMA_NO_NODE, flags)
            if found and not self.add_range("reserved", found, size, NUMA_NO_NODE, RSRV_KERN):
                return found
        return 0

    def alloc_internal(self, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                       exact: bool) -> int:
        """``memblock_alloc_internal``: cap at ``current_limit``; retry from 0 if ``min_addr``."""
        max_addr = min(max_addr, self.limit)
        found = self.alloc_range_nid(size, align, min_addr, max_addr, nid, exact)
        if not found and min_addr:
            found = self.alloc_range_nid(size, align, 0, max_addr, nid, exact)
        return found

    # -- queries -----------------------------------------------------------------------------

    def reserved_kern_size(self) -> int:
        """Bytes of RSRV_KERN reservations (all nodes, no limit)."""
        return self.reserved.total(RSRV_KERN)

    def find_max_addr(self, limit: int) -> int:
        """``__find_max_addr``: where ``limit`` bytes of memory end (``MASK64`` if never)."""
        for b, s, _, _ in self.memory.runs():
            if limit <= s:
                return b + limit
            limit -= s
        return MASK64

    def free_all(self) -> list[tuple[int, int, int]]:
        """``memblock_free_all`` on the model: clear HOTPLUG, stamp reserved with the memory's
        nids, return the free page ranges ``(first pfn, end pfn, nid)``."""
        self.kho_scratch_only = False
        self.setclr("memory", 0, MASK64, False, HOTPLUG)
        while True:
            old_max = self.max["reserved"]
            for b, s, _, n in list(self.memory.runs()):
                self.set_node("reserved", b, s, n)
            if self.max["reserved"] == old_max:
                break
        shift = self.page_size.bit_length() - 1
        out = []
        for start, end, nid in self.free_ranges(NUMA_NO_NODE, 0):
            s, e = (start + self.page_size - 1) >> shift, end >> shift
            if s < e:
                out.append((s, e, nid if 0 <= nid < self.max_numnodes else 0))
        return out

    def node_of(self, phys: int) -> int:
        """The nid of the memory byte at ``phys`` (0 if it has no valid node)."""
        n = self.memory.at(phys) >> 8
        return n if 0 <= n < self.max_numnodes else 0


# -- the buddy model ---------------------------------------------------------------------------

class BuddyModel:
    """Reference model of a :class:`arena.buddy.BuddyAllocator`: per page, its node (or
    unmanaged) and whether it is free; the allocated blocks."""

    def __init__(self, first_pfn: int, npages: int, max_order: int) -> None:
        self.first = first_pfn
        self.node = np.full(npages, -1, np.int64)
        self.free = np.zeros(npages, bool)
        self.allocated: dict[int, tuple[int, int]] = {}
        self.max_order = max_order
        self._blocks: list[tuple[int, int, int]] | None = None

    def boot_free(self, pfn: int, end: int, nid: int) -> None:
        """Pages ``[pfn, end)`` become managed by ``nid`` and free."""
        s, e = pfn - self.first, end - self.first
        if (self.node[s:e] >= 0).any():
            raise InvariantViolation(f"model: pages [{pfn:#x}, {end:#x}) handed over twice")
        self.node[s:e] = nid
        self.free[s:e] = True
        self._blocks = None

    def nodes(self) -> list[int]:
        """Nodes that received pages, ascending."""
        return sorted({int(n) for n in np.unique(self.node) if n >= 0})

    def blocks(self) -> list[tuple[int, int, int]]:
        """The unique free blocks ``(pfn, order, nid)``: maximal aligned same-node free runs."""
        if self._blocks is None:
            self._blocks = self._compute_blocks()
        return self._blocks

    def _compute_blocks(self) -> list[tuple[int, int, int]]:
        key = np.where(self.free, self.node, -1)
        cuts = (np.flatnonzero(key[1:] != key[:-1]) + 1).tolist()
        edges = [0, *cuts, key.size]
        out = []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            nid = int(key[a])
            if nid < 0:
                continue
            s, e = a + self.first, b + self.first
            while s < e:
                order = min(self.max_order, (s & -s).bit_length() - 1) if s else self.max_order
                while s + (1 << order) > e:
                    order -= 1
                out.append((s, order, nid))
                s += 1 << order
        return out

    def free_area(self, nid: int) -> tuple[int, ...]:
        """Free block counts per order of node ``nid``."""
        counts = [0] * (self.max_order + 1)
        for _, order, n in self.blocks():
            if n == nid:
                counts[order] += 1
        return tuple(counts)

    def expected_order(self, order: int, candidates: Sequence[int]) -> tuple[int, int] | None:
        """``(node, order of the block taken)`` that an allocation of ``order`` must use."""
        by_node: dict[int, list[int]] = {}
        for _, o, n in self.blocks():
            by_node.setdefault(n, []).append(o)
        for nid in candidates:
            fits = [o for o in by_node.get(nid, []) if o >= order]
            if fits:
                return nid, min(fits)
        return None

    def take(self, pfn: int, order: int, nid: int) -> None:
        """The block ``[pfn, pfn + 2**order)`` of node ``nid`` is allocated."""
        s = pfn - self.first
        self.free[s:s + (1 << order)] = False
        self.allocated[pfn] = (order, nid)
        self._blocks = None

    def give_back(self, pfn: int) -> None:
        """The allocated block starting at ``pfn`` is free again."""
        order, _ = self.allocated.pop(pfn)
        s = pfn - self.first
        self.free[s:s + (1 << order)] = True
        self._blocks = None

    def free_runs(self, shift: int) -> list[tuple[int, int, int]]:
        """Free memory as ``(start, end, nid)`` byte runs (adjacent free pages of one node)."""
        key = np.where(self.free, self.node, -1)
        cuts = (np.flatnonzero(key[1:] != key[:-1]) + 1).tolist()
        edges = [0, *cuts, key.size]
        return [((a + self.first) << shift, (b + self.first) << shift, int(key[a]))
                for a, b in zip(edges[:-1], edges[1:], strict=True) if key[a] >= 0]
