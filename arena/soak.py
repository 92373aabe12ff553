"""Soak: the stateful workload run at full speed, every check on, against reference models.

Kernel counterpart: none (the kernel's memblock test suite has no randomized tests). This module
holds the *reference models* and *workloads* shared by the Hypothesis state machines in
``tests/test_stateful_*.py`` and by ``python -m arena soak``:

* :class:`MemblockModel` — a byte map of the ``memory`` and ``reserved`` sets over a window of
  physical addresses (each byte: present?, nid, flags). The region arrays the kernel keeps are
  the run-length encoding of that map (the arrays are sorted, disjoint and minimal), so the
  model predicts every region, ``cnt``, ``max`` (array doubling included: where the new array
  goes and what it reserves), ``total_size``, the free ranges and the address every allocation
  chooses (top-down = highest aligned fit, bottom-up = lowest, with the kernel's fallbacks).
* :class:`BuddyModel` — per page: managed by which node, free or allocated. A buddy allocator
  whose invariants hold has exactly one set of free blocks for a set of free pages (the maximal
  naturally aligned free blocks of one node, up to ``max_order``), so the model predicts
  ``free_area``, ``nr_free_pages`` and every free block, and checks that an allocation takes a
  whole free block of the smallest order that can serve it.
* :class:`MemblockWorkload`, :class:`BuddyWorkload`, :class:`ArenaWorkload` — one allocator and
  its model driven side by side: :meth:`Workload.apply` runs one operation on both,
  :meth:`Workload.verify` compares the whole state (region arrays, free space, statistics,
  ``check()``) and that every live allocation still holds the unique pattern written into it
  when it was made (an overlap or a lost write shows at once).

Operations are plain tuples ``(name, *args)`` drawn through a :class:`Chooser` (a seeded
``random.Random`` here, Hypothesis' ``data.draw`` in the tests), so a failing run prints as a
list of calls and re-runs from its seed: ``python -m arena soak --seed S --episodes 1``.

Complexity: a model step is O(window bytes) with numpy (a few microseconds per KiB); the
soak checks every operation, so it measures correctness under load, not allocator speed.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = [
    "InvariantViolation",
    "Chooser",
    "RandomChooser",
    "DataChooser",
    "MemblockModel",
    "BuddyModel",
    "Workload",
    "MemblockWorkload",
    "BuddyWorkload",
    "ArenaWorkload",
    "WORKLOADS",
    "state_machine",
    "SoakResult",
    "run_soak",
    "add_soak_arguments",
    "soak_command",
    "soak_main",
    "pattern",
    "format_op",
    "run_episode",
    "KernelBug",
]

MASK64 = (1 << 64) - 1
NUMA_NO_NODE = -1
HOTPLUG, MIRROR, NOMAP, DRIVER_MANAGED = 0x1, 0x2, 0x4, 0x8
RSRV_NOINIT, RSRV_KERN, KHO_SCRATCH = 0x10, 0x20, 0x40
ENOMEM = 12


class KernelBug(Exception):
    """The model predicts the kernel's ``BUG()`` here (e.g. a doubled array that cannot be
    reserved); the allocator must raise :class:`arena.errors.MemblockBug`. After it the state
    is undefined (the kernel is dead), so the episode ends."""


class InvariantViolation(AssertionError):
    """The allocator and its reference model disagree, or a check failed.

    ``ops`` is the list of operations of the episode up to and including the failing one.
    """

    def __init__(self, message: str, ops: Sequence[tuple] = ()) -> None:
        super().__init__(message)
        self.ops = list(ops)


# -- choosers ------------------------------------------------------------------------------------

class Chooser(Protocol):
    """Where operation arguments come from."""

    def int(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``."""

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``."""


class RandomChooser:
    """A :class:`Chooser` over ``random.Random(seed)`` (the soak)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``."""
        return self.rng.randint(lo, hi)

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``."""
        return seq[self.rng.randrange(len(seq))]


class DataChooser:
    """A :class:`Chooser` over Hypothesis' ``data`` object (``st.data()``), so Hypothesis shrinks."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``, drawn by Hypothesis."""
        from hypothesis import strategies as st

        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``, drawn by Hypothesis."""
        from hypothesis import strategies as st

        return self.data.draw(st.sampled_from(list(seq)))


def pattern(serial: int, size: int) -> bytes:
    """The unique fill pattern of allocation number ``serial``: ``size`` bytes, O(size)."""
    x = np.arange(size, dtype=np.uint64)
    x = (x * np.uint64(2654435761) + np.uint64(serial * 40503 + 1)) >> np.uint64(7)
    return (x & np.uint64(0xFF)).astype(np.uint8).tobytes()


def _pick(c: Chooser, *makers: Callable[[], Any]) -> Any:
    """Choose one of ``makers`` and call it (so only the chosen value is drawn)."""
    return makers[c.int(0, len(makers) - 1)]()


def _round_up(x: int, a: int) -> int:
    return (x + a - 1) & -a


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
        old_alloc = _round_up(self.max[t] * self.region_size, ps)
        new_alloc = _round_up(self.max[t] * self.region_size * 2, ps)
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
            for ts, te, _ in ranges:
                ts, te = min(max(ts, start), end), min(max(te, start), end)
                cand = _round_up(ts, align)
                if cand < te and te - cand >= size:
                    return cand
        else:
            for ts, te, _ in reversed(ranges):
                ts, te = min(max(ts, start), end), min(max(te, start), end)
                if te < size:
                    continue
                cand = (te - size) & -align
                if cand >= ts:
                    return cand
        return 0

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


# -- workloads ---------------------------------------------------------------------------------

class _Dead(Exception):
    """Raised inside an operation when the allocator hit the predicted kernel BUG."""


def _violation(exc: BaseException, where: str, ops: Sequence[tuple]) -> InvariantViolation:
    """An :class:`InvariantViolation` for ``exc``, holding text only (no frames, so no views
    are kept alive by the report)."""
    if isinstance(exc, InvariantViolation):
        return InvariantViolation(str(exc), ops)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
    return InvariantViolation(f"{where} raised {type(exc).__name__}: {exc}\n{tb}", ops)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, int):
        return hex(v) if abs(v) >= 4096 else str(v)
    return repr(v)


def format_op(op: tuple) -> str:
    """``("add", 1, 2)`` → ``add(1, 2)``."""
    return f"{op[0]}({', '.join(_fmt(a) for a in op[1:])})"


class Workload:
    """One allocator and its model driven side by side.

    Subclasses define ``KINDS`` (operation name → weight), ``_gen_<name>(chooser)`` returning
    an operation tuple (or ``None`` when the operation makes no sense now) and
    ``_op_<name>(*args)`` running it on both sides. :meth:`verify` compares everything.
    """

    KINDS: dict[str, int] = {}
    name = "workload"

    def __init__(self) -> None:
        self.ops: list[tuple] = []
        self.live: dict[int, tuple[np.ndarray, bytes]] = {}   # key -> (view, pattern)
        self.serial = 0
        self.peak_regions = 0
        self.dead = False   # the kernel hit BUG() (predicted): nothing more to compare

    # operation dispatch --------------------------------------------------------------------

    def gen(self, kind: str, c: Chooser) -> tuple | None:
        """An operation of ``kind`` with arguments from ``c`` (``None``: not possible now)."""
        return None if self.dead else getattr(self, f"_gen_{kind}")(c)

    def random_op(self, c: Chooser) -> tuple | None:
        """An operation of a kind chosen by weight."""
        kinds = [k for k, w in self.KINDS.items() for _ in range(w)]
        return self.gen(c.choice(kinds), c)

    def apply(self, op: tuple) -> None:
        """Run ``op`` on the allocator and the model; raise :class:`InvariantViolation` on any
        disagreement (with the op list so far)."""
        self.ops.append(op)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                getattr(self, f"_op_{op[0]}")(*op[1:])
                self.after_op()
        except _Dead:
            self.dead = True
            return
        except Exception as exc:  # noqa: BLE001 - every failure becomes a violation report
            err = _violation(exc, format_op(op), self.ops)
        else:
            return
        raise err

    def verify(self) -> None:
        """Compare the whole state with the model; raise :class:`InvariantViolation`."""
        if self.dead:
            return
        try:
            self._verify()
            for key, (view, pat) in self.live.items():
                if view.tobytes() != pat:
                    got = np.frombuffer(view.tobytes(), np.uint8)
                    bad = np.flatnonzero(got != np.frombuffer(pat, np.uint8))
                    raise InvariantViolation(
                        f"allocation {key:#x} ({len(pat)} bytes) lost its pattern: {bad.size} "
                        f"byte(s) differ, first at offset {bad[0]}")
        except Exception as exc:  # noqa: BLE001
            err = _violation(exc, "verify", self.ops)
        else:
            return
        raise err

    def _verify(self) -> None:
        raise NotImplementedError

    def after_op(self) -> None:
        """Bookkeeping after each successful operation (subclasses)."""

    @staticmethod
    def expect_bug(what: str, real: Callable[[], Any], bug: KernelBug) -> None:
        """The model predicted the kernel's BUG: ``real()`` must raise
        :class:`arena.errors.MemblockBug`, which ends the episode."""
        from arena.errors import MemblockBug

        try:
            got = real()
        except MemblockBug:
            raise _Dead from None
        raise InvariantViolation(f"{what} returned {_fmt(got)}; the model predicts the "
                                 f"kernel's BUG ({bug})")

    def both(self, what: str, real: Callable[[], Any], model: Callable[[], Any]) -> Any:
        """Run ``model()`` then ``real()`` and require equal results; a predicted kernel BUG
        must be a :class:`arena.errors.MemblockBug` (then the episode is over)."""
        try:
            want = model()
        except KernelBug as exc:
            self.expect_bug(what, real, exc)
        got = real()
        self.expect(got == want, lambda: f"{what} returned {_fmt(got)}, the model says "
                                         f"{_fmt(want)}")
        return got

    def close(self) -> None:
        """Drop the views (and close what the workload owns)."""
        self.live.clear()

    # helpers --------------------------------------------------------------------------------

    @staticmethod
    def expect(cond: bool, message: str | Callable[[], str]) -> None:
        """Raise :class:`InvariantViolation` with ``message`` (or its result) unless ``cond``."""
        if not cond:
            raise InvariantViolation(message() if callable(message) else message)

    def remember(self, key: int, view: np.ndarray) -> None:
        """Write a fresh unique pattern into ``view`` and remember it under ``key``."""
        self.expect(key not in self.live, lambda: f"{key:#x} handed out while still live")
        pat = pattern(self.serial, view.nbytes)
        self.serial += 1
        flat = view.reshape(-1).view(np.uint8)
        flat[:] = np.frombuffer(pat, np.uint8)
        self.live[key] = (view, pat)


def _expect_regions(t: Any, runs: list[tuple[int, int, int, int]], max_: int) -> None:
    got = [(r.base, r.size, int(r.flags), r.nid) for r in t.regions]
    if got != runs:
        diff = next((i for i, (a, b) in enumerate(zip(got, runs, strict=False)) if a != b),
                    min(len(got), len(runs)))
        raise InvariantViolation(
            f"{t.name} regions differ from the model at index {diff}: got "
            f"{[tuple(map(_fmt, x)) for x in got[diff:diff + 3]]}, model "
            f"{[tuple(map(_fmt, x)) for x in runs[diff:diff + 3]]} (cnt {t.cnt} vs {len(runs)})")
    if t.cnt != len(runs) or t.total_size != sum(r[1] for r in runs) or t.max != max_:
        raise InvariantViolation(f"{t.name}: cnt/total_size/max {t.cnt}/{t.total_size:#x}/"
                                 f"{t.max} differ from the model {len(runs)}/"
                                 f"{sum(r[1] for r in runs):#x}/{max_}")


class MemblockWorkload(Workload):
    """A :class:`arena.memblock.Memblock` over a :class:`arena.physmem.PhysicalMemory` window.

    Every range lies in the window; allocations are filled with a unique pattern; the model
    predicts every region, every array doubling and every allocated address.
    """

    name = "memblock"
    KINDS = {
        "add_node": 6, "add": 2, "remove": 3, "reserve": 4, "reserve_kern": 2, "phys_free": 3,
        "setclr": 4, "set_node": 2, "alloc": 12, "alloc_range_nid": 3, "phys_alloc_range": 2,
        "free": 8, "set_bottom_up": 1, "set_current_limit": 1, "set_movable_node": 1,
        "set_kho_scratch_only": 1, "enforce_memory_limit": 1,
    }
    SETCLR = ("mark_hotplug", "clear_hotplug", "mark_nomap", "clear_nomap", "mark_kho_scratch",
              "clear_kho_scratch", "reserved_mark_noinit", "reserved_mark_kern")
    NIDS = (0, 1, 2, 3)
    MAX_NUMNODES = 16

    def __init__(self, pm: Any, *, init_regions: int = 128, bottom_up: bool = False) -> None:
        from arena.memblock import Memblock

        super().__init__()
        self.pm = pm
        self.base, self.size = pm.phys_base, pm.size
        self.mb = Memblock(pm, smp_cache_bytes=32, max_numnodes=self.MAX_NUMNODES,
                           init_regions=init_regions)
        self.mb.allow_resize()
        self.mb.set_bottom_up(bottom_up)
        self.model = MemblockModel(self.base, self.size, smp_cache_bytes=32,
                                   max_numnodes=self.MAX_NUMNODES, init_regions=init_regions)
        self.model.bottom_up = bottom_up
        self.cell = self.size // 32

    @classmethod
    def create(cls, pm: Any, c: Chooser) -> MemblockWorkload:
        """A workload with construction parameters drawn from ``c``."""
        return cls(pm, init_regions=c.choice((1, 2, 4, 8, 128)), bottom_up=c.choice((False, True)))

    # argument generators -------------------------------------------------------------------

    def _addr(self, c: Chooser) -> int:
        return self.base + c.int(0, 31) * self.cell + c.choice((0, 0, 0, 8, 64, 2048))

    def _range(self, c: Chooser) -> tuple[int, int]:
        base = self._addr(c)
        size = _pick(c, lambda: c.int(1, 4) * self.cell, lambda: c.int(1, 8) * 4096,
                     lambda: c.int(1, 512))
        return base, min(size, self.base + self.size - base) or 1

    def _gen_add_node(self, c: Chooser) -> tuple:
        flags = c.choice((0, 0, 0, HOTPLUG, NOMAP, DRIVER_MANAGED, KHO_SCRATCH))
        return ("add_node", *self._range(c), c.choice(self.NIDS), flags)

    def _gen_add(self, c: Chooser) -> tuple:
        return ("add", *self._range(c))

    def _gen_remove(self, c: Chooser) -> tuple:
        return ("remove", *self._range(c))

    def _gen_reserve(self, c: Chooser) -> tuple:
        return ("reserve", *self._range(c))

    def _gen_reserve_kern(self, c: Chooser) -> tuple:
        return ("reserve_kern", *self._range(c))

    def _gen_phys_free(self, c: Chooser) -> tuple:
        return ("phys_free", *self._range(c))

    def _gen_setclr(self, c: Chooser) -> tuple:
        return (c.choice(self.SETCLR), *self._range(c))

    def _gen_set_node(self, c: Chooser) -> tuple:
        return ("set_node", *self._range(c), c.choice(("memory", "reserved")),
                c.choice(self.NIDS))

    def _size_align(self, c: Chooser) -> tuple[int, int]:
        size = _pick(c, lambda: c.int(1, 256), lambda: c.int(1, 16) * 64,
                     lambda: c.int(1, 8) * 4096)
        return size, c.choice((0, 1, 8, 64, 4096, 16384))

    def _gen_alloc(self, c: Chooser) -> tuple:
        size, align = self._size_align(c)
        lo = _pick(c, lambda: 0, lambda: 0, lambda: self._addr(c))
        hi = _pick(c, lambda: 0, lambda: 0, lambda: self._addr(c), lambda: MASK64)
        return (c.choice(("alloc_try_nid", "alloc_try_nid_raw", "alloc_exact_nid_raw")),
                size, align, lo, hi, c.choice((NUMA_NO_NODE, *self.NIDS)))

    def _gen_alloc_range_nid(self, c: Chooser) -> tuple:
        size, align = self._size_align(c)
        return ("alloc_range_nid", size, align, _pick(c, lambda: 0, lambda: self._addr(c)),
                _pick(c, lambda: 0, lambda: self._addr(c), lambda: MASK64),
                c.choice((NUMA_NO_NODE, *self.NIDS)), c.choice((False, True)))

    def _gen_phys_alloc_range(self, c: Chooser) -> tuple:
        size, align = self._size_align(c)
        return ("phys_alloc_range", size, align, _pick(c, lambda: 0, lambda: self._addr(c)),
                _pick(c, lambda: 0, lambda: self._addr(c), lambda: MASK64))

    def _gen_free(self, c: Chooser) -> tuple | None:
        if not self.live:
            return None
        return ("free", c.choice(sorted(self.live)))

    def _gen_set_bottom_up(self, c: Chooser) -> tuple:
        return ("set_bottom_up", c.choice((False, True)))

    def _gen_set_current_limit(self, c: Chooser) -> tuple:
        return ("set_current_limit", _pick(c, lambda: MASK64, lambda: self._addr(c)))

    def _gen_set_movable_node(self, c: Chooser) -> tuple:
        return ("set_movable_node", c.choice((False, True)))

    def _gen_set_kho_scratch_only(self, c: Chooser) -> tuple:
        return ("set_kho_scratch_only", c.choice((False, False, True)))

    def _gen_enforce_memory_limit(self, c: Chooser) -> tuple:
        return ("enforce_memory_limit", c.int(0, 32) * self.cell + c.choice((0, 4096)))

    # operations -----------------------------------------------------------------------------

    def _same(self, what: str, got: Any, want: Any) -> None:
        self.expect(got == want, lambda: f"{what} returned {_fmt(got)}, the model says "
                                         f"{_fmt(want)}")

    def after_op(self) -> None:
        """A doubling freed an old array whose reservation the caller had freed and then
        allocated from: that allocation is no longer reserved (the caller's mistake, as in
        the kernel), so it stops being checked."""
        for base, size in self.model.freed_arrays:
            self._drop_live(base, base + size)
        self.model.freed_arrays.clear()

    def _drop_live(self, base: int, end: int) -> None:
        """Allocations overlapping ``[base, end)`` stop being ours (freed or removed by the
        caller): forget them."""
        for key in [k for k, (v, _) in self.live.items() if k < end and base < k + v.nbytes]:
            del self.live[key]

    def _op_add_node(self, base: int, size: int, nid: int, flags: int) -> None:
        self.both("add_node", lambda: self.mb.add_node(base, size, nid, flags),
                  lambda: self.model.add_range("memory", base, size, nid, flags))

    def _op_add(self, base: int, size: int) -> None:
        self.both("add", lambda: self.mb.add(base, size),
                  lambda: self.model.add_range("memory", base, size, self.MAX_NUMNODES, 0))

    def _op_remove(self, base: int, size: int) -> None:
        self.both("remove", lambda: self.mb.remove(base, size),
                  lambda: self.model.remove_range("memory", base, size))

    def _op_reserve(self, base: int, size: int) -> None:
        self.both("reserve", lambda: self.mb.reserve(base, size),
                  lambda: self.model.add_range("reserved", base, size, NUMA_NO_NODE, 0))

    def _op_reserve_kern(self, base: int, size: int) -> None:
        self.both("reserve_kern", lambda: self.mb.reserve_kern(base, size),
                  lambda: self.model.add_range("reserved", base, size, NUMA_NO_NODE,
                                               RSRV_KERN))

    def _op_phys_free(self, base: int, size: int) -> None:
        self._drop_live(base, base + size)
        self.both("phys_free", lambda: self.mb.phys_free(base, size),
                  lambda: self.model.remove_range("reserved", base, size))

    def _setclr(self, name: str, base: int, size: int) -> None:
        t = "reserved" if name.startswith("reserved_") else "memory"
        flag = {"hotplug": HOTPLUG, "nomap": NOMAP, "kho_scratch": KHO_SCRATCH,
                "noinit": RSRV_NOINIT, "kern": RSRV_KERN}[name.split("_", 1)[1]
                                                           .replace("mark_", "")]
        self.both(name, lambda: getattr(self.mb, name)(base, size),
                  lambda: self.model.setclr(t, base, size, "clear" not in name, flag))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_op_") and name[4:] in self.SETCLR:
            return lambda base, size: self._setclr(name[4:], base, size)
        raise AttributeError(name)

    def _op_set_node(self, base: int, size: int, t: str, nid: int) -> None:
        self.both("set_node", lambda: self.mb.set_node(base, size, t, nid),
                  lambda: self.model.set_node(t, base, size, nid))

    def _alloc_view(self, name: str, size: int, align: int, lo: int, hi: int, nid: int) -> None:
        exact = name == "alloc_exact_nid_raw"
        views = []

        def real() -> int:
            views.append(getattr(self.mb, name)(size, align, lo, hi, nid))
            return 0 if views[0] is None else self.mb.virt_to_phys(views[0])

        got = self.both(f"{name}({size}, {align}, ...)", real,
                        lambda: self.model.alloc_internal(size, align, lo, hi, nid, exact))
        view = views[0]
        if view is not None:
            self.expect(view.nbytes == size, f"{name} returned {view.nbytes} bytes, not {size}")
            if name == "alloc_try_nid":
                self.expect(not view.any(), f"{name} at {got:#x} is not zeroed")
            self.remember(got, view)

    def _op_alloc_try_nid(self, *args: int) -> None:
        self._alloc_view("alloc_try_nid", *args)

    def _op_alloc_try_nid_raw(self, *args: int) -> None:
        self._alloc_view("alloc_try_nid_raw", *args)

    def _op_alloc_exact_nid_raw(self, *args: int) -> None:
        self._alloc_view("alloc_exact_nid_raw", *args)

    def _op_alloc_range_nid(self, size: int, align: int, start: int, end: int, nid: int,
                           exact: bool) -> None:
        got = self.both(f"alloc_range_nid({size}, {align}, ...)",
                        lambda: self.mb.alloc_range_nid(size, align, start, end, nid, exact),
                        lambda: self.model.alloc_range_nid(size, align, start, end, nid, exact))
        if got:
            self.remember(got, self.mb.phys_to_virt(got, size))

    def _op_phys_alloc_range(self, size: int, align: int, start: int, end: int) -> None:
        got = self.both(f"phys_alloc_range({size}, {align}, ...)",
                        lambda: self.mb.phys_alloc_range(size, align, start, end),
                        lambda: self.model.alloc_range_nid(size, align, start, end,
                                                           NUMA_NO_NODE, False))
        if got:
            self.remember(got, self.mb.phys_to_virt(got, size))

    def _op_free(self, key: int) -> None:
        view, _ = self.live.pop(key)
        self.both("free", lambda: self.mb.free(view),
                  lambda: self.model.remove_range("reserved", key, view.nbytes))

    def _op_set_bottom_up(self, flag: bool) -> None:
        self.mb.set_bottom_up(flag)
        self.model.bottom_up = flag

    def _op_set_current_limit(self, limit: int) -> None:
        self.mb.set_current_limit(limit)
        self.model.limit = limit

    def _op_set_movable_node(self, flag: bool) -> None:
        self.mb.movable_node = flag
        self.model.movable_node = flag

    def _op_set_kho_scratch_only(self, flag: bool) -> None:
        (self.mb.set_kho_scratch_only if flag else self.mb.clear_kho_scratch_only)()
        self.model.kho_scratch_only = flag

    def _op_enforce_memory_limit(self, limit: int) -> None:
        m = self.model

        def model() -> None:
            top = m.find_max_addr(limit) if limit else MASK64
            if top != MASK64:
                m.remove_range("memory", top, MASK64)
                m.remove_range("reserved", top, MASK64)
                self._drop_live(top, MASK64)

        self.both("enforce_memory_limit", lambda: self.mb.enforce_memory_limit(limit), model)

    # verification ---------------------------------------------------------------------------

    def _verify(self) -> None:
        mb, m = self.mb, self.model
        mb.check()
        _expect_regions(mb.memory, m.memory.runs(), m.max["memory"])
        _expect_regions(mb.reserved, m.reserved.runs(), m.max["reserved"])
        self.peak_regions = max(self.peak_regions, mb.memory.cnt + mb.reserved.cnt)
        for nid in (NUMA_NO_NODE, 1):
            got = [r for r in mb.for_each_free_mem_range(nid) if r[0] < r[1]]
            def free_msg(nid: int = nid, got: list[tuple[int, int, int]] = got) -> str:
                return (f"free ranges (nid {nid}) differ: got {got[:4]}..., model "
                        f"{m.free_ranges(nid, 0)[:4]}...")

            self.expect(got == m.free_ranges(nid, 0), free_msg)
        self._same("phys_mem_size", mb.phys_mem_size(), m.memory.total())
        self._same("reserved_size", mb.reserved_size(), m.reserved.total())
        self._same("reserved_kern_size", mb.reserved_kern_size(MASK64, NUMA_NO_NODE),
                   m.reserved_kern_size())
        runs = m.memory.runs()
        self._same("start_of_dram", mb.start_of_dram(), runs[0][0] if runs else 0)
        self._same("end_of_dram", mb.end_of_dram(), runs[-1][0] + runs[-1][1] if runs else 0)
        for b, s, _, _ in (runs + m.reserved.runs())[:8]:
            for addr in (b - 1, b, b + s - 1, b + s):
                if self.base <= addr < self.base + self.size:
                    self._same(f"is_memory({addr:#x})", mb.is_memory(addr),
                               m.memory.at(addr) != -1)
                    self._same(f"is_reserved({addr:#x})", mb.is_reserved(addr),
                               m.reserved.at(addr) != -1)
        for key, (view, _) in self.live.items():
            def lost_msg(key: int = key) -> str:
                return f"live allocation {key:#x} is no longer reserved"

            self.expect(bool(m.reserved.present(key, key + view.nbytes).all()), lost_msg)


class BuddyWorkload(Workload):
    """A :class:`arena.buddy.BuddyAllocator` fed by ``Memblock.free_all`` over a real memory.

    Memory of 1-3 nodes with a few reservations is handed over; then pages are allocated
    (patterned), freed, handed over late (``free_late``) and freed wrongly (double, partial,
    wrong order: refused, state unchanged).
    """

    name = "buddy"
    KINDS = {"alloc": 10, "free": 8, "free_late": 1, "bad_free": 2}
    def __init__(self, pm: Any, *, nodes: int = 2, max_order: int = 4,
                 reserves: Sequence[tuple[int, int]] = ()) -> None:
        from arena.buddy import BuddyAllocator
        from arena.memblock import Memblock

        super().__init__()
        self.pm = pm
        ps = pm.page_size
        self.shift = ps.bit_length() - 1
        base, size = pm.phys_base, pm.size
        self.mb = Memblock(pm, page_size=ps, max_numnodes=4)
        self.mmodel = MemblockModel(base, size, page_size=ps, max_numnodes=4)
        per = size // nodes // ps * ps
        for nid in range(nodes):
            start = base + nid * per
            length = size - nid * per if nid == nodes - 1 else per
            self.mb.add_node(start, length, nid, 0)
            self.mmodel.add_range("memory", start, length, nid, 0)
        self.late: list[tuple[int, int]] = []
        for rbase, rsize in reserves:
            self.mb.reserve(rbase, rsize)
            self.mmodel.add_range("reserved", rbase, rsize, NUMA_NO_NODE, 0)
            self.late.append((rbase, rsize))
        self.buddy = BuddyAllocator(pm, page_size=ps, max_order=max_order)
        self.model = BuddyModel(base >> self.shift, size >> self.shift, max_order)
        pages = self.mb.free_all(self.buddy)
        expected = self.mmodel.free_all()
        for s, e, nid in expected:
            self.model.boot_free(s, e, nid)
        self._same_pages = sum(e - s for s, e, _ in expected)
        self.expect(pages == self._same_pages,
                    f"free_all handed over {pages} pages, the model {self._same_pages}")
        self.handed_late: list[tuple[int, int]] = []

    @classmethod
    def create(cls, pm: Any, c: Chooser) -> BuddyWorkload:
        """A workload with construction parameters drawn from ``c``."""
        base, ps = pm.phys_base, pm.page_size
        reserves = [(base + c.int(0, pm.size // ps - 17) * ps + c.choice((0, 100)),
                     c.choice((ps, 3 * ps, 5000, 16 * ps))) for _ in range(c.int(0, 4))]
        return cls(pm, nodes=c.int(1, 3), max_order=c.choice((0, 2, 4, 10)), reserves=reserves)

    def _gen_alloc(self, c: Chooser) -> tuple:
        nodes = self.model.nodes()
        node = c.choice((None, NUMA_NO_NODE, *nodes))
        strict = c.choice((False, True)) if node not in (None, NUMA_NO_NODE) else False
        return ("alloc", c.int(0, min(self.model.max_order, 5)), node, strict,
                c.choice((True, False)))

    def _gen_free(self, c: Chooser) -> tuple | None:
        return ("free", c.choice(sorted(self.live))) if self.live else None

    def _gen_free_late(self, c: Chooser) -> tuple | None:
        # Reservations overlapping pages handed over already are included: they must be
        # refused with nothing changed.
        todo = [r for r in self.late if r not in self.handed_late]
        return ("free_late", *c.choice(todo)) if todo else None

    def _gen_bad_free(self, c: Chooser) -> tuple | None:
        if not self.live:
            return None
        return ("bad_free", c.choice(sorted(self.live)), c.choice(("double", "order", "part")))

    def _candidates(self, node: int | None, strict: bool) -> list[int]:
        nodes = self.model.nodes()
        if node in (None, NUMA_NO_NODE):
            return nodes
        return [node] if strict else [node] + [n for n in nodes if n != node]

    def _op_alloc(self, order: int, node: int | None, strict: bool, as_view: bool) -> None:
        expected = self.model.expected_order(order, self._candidates(node, strict))
        if as_view:
            view = self.buddy.alloc_pages(order, node=node, strict_node=strict)
            phys = None if view is None else self.pm.phys_of(view)
        else:
            phys = self.buddy.alloc_pages_phys(order, node=node, strict_node=strict)
            view = None if phys is None else self.pm.view(phys, self.pm.page_size << order)
        if expected is None:
            self.expect(phys is None, lambda: f"alloc_pages({order}) succeeded at {phys:#x}; "
                                              f"the model has no free block of order >= "
                                              f"{order} on {self._candidates(node, strict)}")
            return
        self.expect(phys is not None, f"alloc_pages({order}, node={node}, strict={strict}) "
                                      f"failed; the model expects an order-{expected[1]} block "
                                      f"of node {expected[0]}")
        assert phys is not None and view is not None
        pfn = phys >> self.shift
        nid, border = expected
        self.expect((pfn, border, nid) in set(self.model.blocks()),
                    f"alloc_pages({order}) gave pfn {pfn:#x}, not the start of a free "
                    f"order-{border} block of node {nid}")
        self.model.take(pfn, order, nid)
        self.remember(phys, view)

    def _op_free(self, key: int) -> None:
        view, _ = self.live.pop(key)
        order = (view.nbytes >> self.shift).bit_length() - 1
        self.buddy.free_pages(view if (key >> self.shift) % 2 else key, order)
        self.model.give_back(key >> self.shift)

    def _op_free_late(self, base: int, size: int) -> None:
        self.handed_late.append((base, size))
        ps = self.pm.page_size
        s, e = (base + ps - 1) >> self.shift, (base + size) >> self.shift
        managed = self.model.node[s - self.model.first:e - self.model.first]
        if s < e and (managed >= 0).any():
            # Pages already managed (a reservation overlapping another): refused, unchanged.
            before = self.buddy.dump(limit=1 << 20)
            try:
                self.mb.free_late(base, size)
            except ValueError:
                pass
            else:
                raise InvariantViolation(f"free_late({base:#x}, {size:#x}) handed over pages "
                                         f"the buddy allocator already manages")
            self.expect(self.buddy.dump(limit=1 << 20) == before,
                        f"refused free_late({base:#x}, {size:#x}) changed the buddy allocator")
            return
        self.mb.free_late(base, size)
        for pfn in range(s, e):
            self.model.boot_free(pfn, pfn + 1, self.mmodel.node_of(pfn << self.shift))

    def _op_bad_free(self, key: int, how: str) -> None:
        from arena.errors import DoubleFreeError, ForeignBufferError

        view, _ = self.live[key]
        order = (view.nbytes >> self.shift).bit_length() - 1
        before = self.buddy.dump(limit=1 << 20)
        try:
            if how == "double":
                self.buddy.free_pages(key, order)
                self.model.give_back(key >> self.shift)
                del self.live[key]
                self.buddy.free_pages(key, order)
            elif how == "order" and self.model.max_order:
                self.buddy.free_pages(key, order + 1 if order < self.model.max_order else 0)
            else:
                self.buddy.free_pages(view[: view.nbytes // 2] if order else view[:1], order)
        except (DoubleFreeError, ForeignBufferError, ValueError):
            pass
        else:
            raise InvariantViolation(f"bad free ({how}) of {key:#x} was accepted")
        if how != "double":
            self.expect(self.buddy.dump(limit=1 << 20) == before,
                        f"refused bad free ({how}) changed the buddy allocator")

    def _verify(self) -> None:
        b, m = self.buddy, self.model
        b.check()
        nodes = m.nodes()
        self._same_list("nodes", b.nodes, nodes)
        self._same_list("nr_free_pages", b.nr_free_pages(), int(np.count_nonzero(m.free)))
        self._same_list("managed_pages", b.managed_pages(), int(np.count_nonzero(m.node >= 0)))
        blocks = m.blocks()
        self._same_list("free blocks", sorted(b.free_blocks()), sorted(blocks))
        for nid in nodes:
            self._same_list(f"free_area({nid})", b.free_area(nid), m.free_area(nid))
            self._same_list(f"nr_free_pages({nid})", b.nr_free_pages(nid),
                            int(np.count_nonzero(m.free & (m.node == nid))))
        self.peak_regions = max(self.peak_regions, len(blocks))

    def _same_list(self, what: str, got: Any, want: Any) -> None:
        self.expect(got == want, lambda: f"{what}: got {str(got)[:200]}, model {str(want)[:200]}")


class ArenaWorkload(Workload):
    """An :class:`arena.Arena` (optionally in debug mode, with a budget, several nodes).

    Without the size-class caches (``slab=False`` or debug mode) it is driven with a
    :class:`MemblockModel` of its memblock, then after :meth:`arena.Arena.handover` a
    :class:`BuddyModel` of its page allocator: every address is predicted before the
    hand-over, every block checked after it, and every statistic throughout. With the caches
    (``slab=True``) the placement of slots is the slab layer's own, so the workload checks
    what holds regardless: no two live allocations overlap, alignment, patterns, the
    statistics against its own bookkeeping, refusals that change nothing, ``check()``, and
    the caches: no unit is both on a free list and live, ``retained_bytes`` is the sum of
    the retained blocks (within the limit), ``slab_bytes`` the sum of the slabs, and (before
    the hand-over) memblock's reserved bytes are exactly the slabs, the live allocations
    outside slabs, the retained blocks and memblock's own arrays.

    ``lifetime`` is the arena's (``"gc"`` or ``"manual"``). The workload drops its arrays of
    an allocation when it frees it, so in both lifetimes a freed unit is reusable by the next
    operation and the model stays exact; ``held_bytes`` must read 0 after every operation."""

    name = "arena"
    KINDS = {"alloc": 12, "free": 8, "scope": 2, "reset": 1, "release": 1, "handover": 1,
             "bad_free": 2}

    def __init__(self, *, size: int = 1 << 20, nodes: int = 1, align: int = 64,
                 budget: int | None = None, debug: bool = False, quarantine: int | None = None,
                 max_order: int = 6, slab: bool = False, lifetime: str = "gc") -> None:
        from arena.arena import Arena

        super().__init__()
        self.arena = Arena(size, nodes=nodes, budget=budget, align=align, debug=debug,
                           quarantine=quarantine, slab=slab, lifetime=lifetime)
        a = self.arena
        self.exact = getattr(a, "slab", None) is None  # no size-class caches: full model
        self.pm = a.physmem
        ps = self.pm.page_size
        self.ps, self.shift = ps, ps.bit_length() - 1
        self.granule, self.budget, self.debug = align, budget, debug
        self.qlimit = a.capacity // 32 if quarantine is None else quarantine
        self.max_order = max_order
        mb = a.memblock
        self.model = MemblockModel(self.pm.phys_base, self.pm.size, page_size=ps,
                                   smp_cache_bytes=mb.smp_cache_bytes,
                                   max_numnodes=mb.max_numnodes, init_regions=mb.memory.max)
        for sl in self.pm.slices:
            self.model.add_range("memory", sl.phys_start, sl.size, sl.nid, 0)
        self.bmodel: BuddyModel | None = None
        # key (phys) -> [block, reserved, order, nid, size]
        self.recs: dict[int, list[int]] = {}
        self.quarantine: deque[list[int]] = deque()
        self.count = self.total = self.peak = 0

    @classmethod
    def create(cls, c: Chooser, *, debug: bool | None = None) -> ArenaWorkload:
        """A workload with construction parameters drawn from ``c``."""
        size = c.choice((256 << 10, 1 << 20))
        return cls(size=size, nodes=c.int(1, 3), align=c.choice((8, 64, 256)),
                   budget=c.choice((None, None, size // 2)),
                   debug=c.choice((False, True)) if debug is None else debug,
                   quarantine=c.choice((None, 0, 8192)), max_order=c.choice((3, 6, 10)),
                   slab=c.choice((False, True)), lifetime=c.choice(("gc", "manual")))

    def close(self) -> None:
        """Drop the views and close the arena."""
        super().close()
        _close_quietly(self.arena)

    # generators --------------------------------------------------------------------------

    def _alloc_args(self, c: Chooser) -> tuple:
        nbytes = _pick(c, lambda: 0, lambda: c.int(1, 100), lambda: c.int(1, 64) * 64,
                       lambda: c.int(1, 16) * 4096, lambda: c.int(1, 3) * 65536)
        align = c.choice((None, None, 1, 16, 64, 4096, 32768))
        node = c.choice((None, None, *self.arena.nodes))
        strict = node is not None and c.choice((False, True))
        return nbytes, align, node, strict, c.choice((True, False))

    def _gen_alloc(self, c: Chooser) -> tuple:
        return ("alloc", *self._alloc_args(c))

    def _gen_free(self, c: Chooser) -> tuple | None:
        return ("free", c.choice(sorted(self.live))) if self.live else None

    def _gen_scope(self, c: Chooser) -> tuple:
        return ("scope", tuple(self._alloc_args(c) for _ in range(c.int(1, 3))))

    def _gen_reset(self, c: Chooser) -> tuple:
        return ("reset",)

    def _gen_release(self, c: Chooser) -> tuple:
        return ("release",)

    def _gen_handover(self, c: Chooser) -> tuple | None:
        return None if self.arena.buddy is not None else ("handover",)

    def _gen_bad_free(self, c: Chooser) -> tuple | None:
        if not self.live:
            return None
        return ("bad_free", c.choice(sorted(self.live)), c.choice(("double", "part", "copy")))

    # the arena's rules, predicted ----------------------------------------------------------

    def _predict(self, nbytes: int, align: int | None, node: int | None, strict: bool
                 ) -> tuple[str, int, int, int, int, tuple[int, int] | None]:
        """``(outcome, block, reserved, order, left, buddy)``: outcome "ok", "budget" or
        "oom"; before the hand-over ``block`` is the address memblock must choose (the model
        has reserved it), after it ``buddy`` is ``(node, order)`` of the free block the page
        allocator must take."""
        align = self.granule if align is None else align
        ps = self.ps
        left = (_round_up(16, align) if align <= ps else 0) if self.debug else 0
        need = left + nbytes + (16 if self.debug else 0)
        if self.bmodel is None:
            order = -1
            reserved = _round_up(max(need, 1), self.granule)
        else:
            pages = max(1, -(-need // ps))
            order = max((pages - 1).bit_length(), max(align // ps, 1).bit_length() - 1)
            if order > self.max_order:
                return "oom", 0, 0, order, left, None
            reserved = ps << order
        if self.budget is not None and self.allocated() + reserved > self.budget:
            return "budget", 0, reserved, order, left, None
        if self.bmodel is None:
            nid = NUMA_NO_NODE if node is None else node
            block = self.model.alloc_range_nid(reserved, align, 0, 0, nid, strict)
            return ("ok" if block else "oom"), block, reserved, order, left, None
        nodes = self.bmodel.nodes()
        if node is not None and node not in nodes:
            if strict:
                return "oom", 0, reserved, order, left, None
            node = None
        cands = nodes if node is None else ([node] if strict else
                                            [node] + [n for n in nodes if n != node])
        exp = self.bmodel.expected_order(order, cands)
        return ("ok" if exp else "oom"), 0, reserved, order, left, exp

    def allocated(self) -> int:
        """Bytes held by the live allocations (the model's ``bytes_allocated``)."""
        return sum(r[1] for r in self.recs.values())

    def _do_alloc(self, nbytes: int, align: int | None, node: int | None, strict: bool,
                  zero: bool) -> None:
        from arena.errors import ArenaMemoryError, BudgetExceededError

        if not self.exact:
            self._do_alloc_loose(nbytes, align, node, strict, zero)
            return
        try:
            outcome, block, reserved, order, left, exp = self._predict(nbytes, align, node,
                                                                       strict)
        except KernelBug as bug:
            self.expect_bug("alloc", lambda: self.arena.alloc(
                nbytes, align=align, node=node, strict_node=strict, zero=zero), bug)
        before = None if outcome == "ok" else self._snapshot()
        what = f"alloc({nbytes}, align={align}, node={node}, strict_node={strict})"
        try:
            view = self.arena.alloc(nbytes, align=align, node=node, strict_node=strict,
                                    zero=zero)
        except BudgetExceededError:
            self.expect(outcome == "budget", f"{what} hit the budget; model: {outcome}")
            self.expect(self._snapshot() == before, f"refused {what} changed the arena")
            return
        except ArenaMemoryError:
            self.expect(outcome == "oom", f"{what} failed; model: {outcome}")
            self.expect(self._snapshot() == before, f"refused {what} changed the arena")
            return
        self.expect(outcome == "ok", f"{what} succeeded; model: {outcome}")
        info = self.arena.info(view)
        phys = info.phys
        if exp is not None:  # from the page allocator: the start of the expected free block
            assert self.bmodel is not None
            block = phys - left
            pfn = block >> self.shift
            self.expect((pfn, exp[1], exp[0]) in set(self.bmodel.blocks()),
                        f"{what} took pfn {pfn:#x}; expected the start of a free order-{exp[1]} "
                        f"block of node {exp[0]}")
            self.bmodel.take(pfn, order, exp[0])
        else:
            self.expect(phys == block + left, lambda: f"{what} at {phys:#x}, the model says "
                                                      f"{block + left:#x}")
        a = align if align is not None else self.granule
        self.expect(phys % a == 0 and info.address % a == 0,
                    f"alloc({nbytes}) at {phys:#x} is not aligned to {a}")
        self.expect(info.size == nbytes and info.reserved == reserved,
                    f"info: size {info.size}/{nbytes}, reserved {info.reserved}/{reserved}")
        if nbytes:
            if zero:
                self.expect(not view.any(), f"zeroed allocation at {phys:#x} is not zero")
            elif self.debug:
                self.expect(bool((view == 0x5A).all()), f"raw debug allocation at {phys:#x} "
                                                        f"is not poisoned with 0x5a")
        self.recs[phys] = [block, reserved, order, info.node, nbytes]
        self.count += 1
        self.total += reserved
        self.peak = max(self.peak, self.allocated())
        if nbytes:
            self.remember(phys, view)
        else:
            self.live[phys] = (view, b"")

    def _do_alloc_loose(self, nbytes: int, align: int | None, node: int | None, strict: bool,
                        zero: bool) -> None:
        """With size-class caches: placement is not predicted; the rest is checked."""
        from arena.errors import ArenaMemoryError, BudgetExceededError

        what = f"alloc({nbytes}, align={align}, node={node}, strict_node={strict})"
        before = self._snapshot()
        try:
            view = self.arena.alloc(nbytes, align=align, node=node, strict_node=strict,
                                    zero=zero)
        except BudgetExceededError:
            self.expect(self.budget is not None, f"{what} hit a budget that is not there")
            self.expect(self._snapshot() == before, f"refused {what} changed the arena")
            return
        except ArenaMemoryError:
            self._expect_only_reclaimed(before, self._snapshot(), what)
            return
        info = self.arena.info(view)
        a = align if align is not None else self.granule
        self.expect(info.phys % a == 0 and info.address % a == 0,
                    f"{what} at {info.phys:#x} is not aligned to {a}")
        self.expect(info.size == nbytes and info.reserved >= max(nbytes, 1),
                    f"{what}: info size {info.size}, reserved {info.reserved}")
        self.expect(node is None or not strict or info.node == node,
                    f"{what} placed on node {info.node}")
        if self.budget is not None:
            self.expect(self.allocated() + info.reserved <= self.budget,
                        f"{what} went over the budget")
        if nbytes and zero:
            self.expect(not view.any(), f"zeroed allocation at {info.phys:#x} is not zero")
        self.recs[info.phys] = [info.phys, info.reserved, -1, info.node, nbytes]
        self.count += 1
        self.total += info.reserved
        self.peak = max(self.peak, self.allocated())
        if nbytes:
            self.remember(info.phys, view)
        else:
            self.live[info.phys] = (view, b"")

    def _op_alloc(self, *args: Any) -> None:
        self._do_alloc(*args)

    def _release(self, rec: list[int]) -> None:
        block, reserved, order = rec[0], rec[1], rec[2]
        if not self.exact:
            return
        if order >= 0:
            assert self.bmodel is not None
            self.bmodel.give_back(block >> self.shift)
        elif self.bmodel is None:
            self.model.remove_range("reserved", block, reserved)
        else:
            s, e = (block + self.ps - 1) >> self.shift, (block + reserved) >> self.shift
            for pfn in range(s, e):
                self.bmodel.boot_free(pfn, pfn + 1, self.model.node_of(pfn << self.shift))

    def _free_keys(self, keys: list[int]) -> None:
        recs = [self.recs.pop(k) for k in keys]
        for k in keys:
            self.live.pop(k, None)
        if not self.debug:
            for rec in recs:
                self._release(rec)
            return
        self.quarantine.extend(recs)
        while sum(r[1] for r in self.quarantine) > self.qlimit:
            self._release(self.quarantine.popleft())

    def _op_free(self, key: int) -> None:
        self.arena.free(self.live[key][0])
        self._free_keys([key])     # the workload's last array of it goes

    def _op_scope(self, allocs: tuple) -> None:
        before = set(self.recs)
        with self.arena.scope():
            for args in allocs:
                self._do_alloc(*args)
        self._free_keys([k for k in self.recs if k not in before])

    def _op_reset(self) -> None:
        self.arena.reset()
        self._free_keys(list(self.recs))

    def _op_release(self) -> None:
        if not self.exact:
            got = self.arena.release()
            self.expect(got >= 0 and got % self.ps == 0, f"release() returned {got}")
            return
        # The resident bytes of the whole free pages: what release() gives back and reports.
        want = 0
        for s, e, _ in self._runs():
            s, e = _round_up(s, self.ps), e & -self.ps
            if s < e:
                want += self.pm.resident_bytes(s, e - s)
        got = self.arena.release()
        self._same_val("release()", got, want)

    def _op_handover(self) -> None:
        self.arena.handover(max_order=self.max_order)
        if not self.exact:
            return
        self.bmodel = BuddyModel(self.pm.phys_base >> self.shift, self.pm.size >> self.shift,
                                 self.max_order)
        for s, e, nid in self.model.free_all():
            self.bmodel.boot_free(s, e, nid)

    def _op_bad_free(self, key: int, how: str) -> None:
        from arena.errors import DoubleFreeError, ForeignBufferError

        view, _ = self.live[key]
        before = self._snapshot()
        try:
            if how == "double":
                self.arena.free(view)
                self._free_keys([key])
                before = self._snapshot()
                self.arena.free(view)
            elif how == "part":
                self.arena.free(view[1:] if view.size else view.reshape(-1)[:0].copy())
            else:
                self.arena.free(view.copy())
        except (DoubleFreeError, ForeignBufferError):
            pass
        else:
            raise InvariantViolation(f"bad free ({how}) of {key:#x} was accepted")
        self.expect(self._snapshot() == before, f"a refused bad free ({how}) changed the arena")

    # verification ---------------------------------------------------------------------------

    def _snapshot(self) -> tuple:
        a = self.arena
        st = a.stats()
        mb = a.memblock
        regions = tuple(tuple(t.regions) for t in (mb.memory, mb.reserved))
        buddy = a.buddy.dump(limit=1 << 20) if a.buddy is not None else None
        return (st.bytes_allocated, st.bytes_requested, st.live_allocations, st.num_allocations,
                st.free_bytes, st.quarantined_bytes, st.held_bytes, st.retained_bytes,
                st.slab_bytes, regions, buddy, tuple((i.phys, i.size) for i in a.live()))

    def _expect_only_reclaimed(self, before: tuple, after: tuple, what: str) -> None:
        """A request that failed for want of memory changed no allocation; it may have given
        retained blocks and empty slabs back first (never taken any), nothing else."""
        user = (0, 1, 2, 3, 5, 6, 11)   # counts, quarantine, held, live: see _snapshot
        self.expect(all(before[i] == after[i] for i in user),
                    f"refused {what} changed the allocations")
        self.expect(after[4] >= before[4] and after[7] <= before[7] and after[8] <= before[8],
                    f"refused {what} took memory (free, retained, slab bytes "
                    f"{before[4]}, {before[7]}, {before[8]} -> {after[4]}, {after[7]}, "
                    f"{after[8]})")
        self.expect(after[4] - before[4] == before[7] - after[7] + before[8] - after[8],
                    f"refused {what}: the bytes it gave back are not the caches'")

    def _runs(self) -> list[tuple[int, int, int]]:
        if self.bmodel is None:
            return self.model.free_ranges(NUMA_NO_NODE, 0)
        return self.bmodel.free_runs(self.shift)

    def _same_val(self, what: str, got: Any, want: Any) -> None:
        self.expect(got == want, lambda: f"{what}: got {got!r}, model {want!r}")

    def _verify(self) -> None:
        a = self.arena
        self._same_val("check()", a.check(), [])
        if not self.exact:
            self._verify_loose()
            return
        if self.bmodel is None:
            _expect_regions(a.memblock.memory, self.model.memory.runs(), self.model.max["memory"])
            _expect_regions(a.memblock.reserved, self.model.reserved.runs(),
                            self.model.max["reserved"])
            self.peak_regions = max(self.peak_regions, a.memblock.reserved.cnt)
        else:
            b = a.buddy
            assert b is not None
            self._same_val("buddy free blocks", sorted(b.free_blocks()),
                           sorted(self.bmodel.blocks()))
        st = a.stats()
        runs = self._runs()
        sizes = [e - s for s, e, _ in runs]
        self._verify_counters(st)
        self._same_val("quarantined_bytes", st.quarantined_bytes,
                       sum(r[1] for r in self.quarantine))
        self._same_val("free_bytes", st.free_bytes, sum(sizes))
        self._same_val("largest_free_block", st.largest_free_block, max(sizes, default=0))
        if self.budget is not None:
            self._same_val("budget_remaining", st.budget_remaining,
                           self.budget - self.allocated())
        for ns in st.per_node:
            self._same_val(f"node {ns.nid} free_bytes", ns.free_bytes,
                           sum(e - s for s, e, n in runs if n == ns.nid))
            self._same_val(f"node {ns.nid} live", ns.live_allocations,
                           sum(1 for r in self.recs.values() if r[3] == ns.nid))
        self._verify_caches(st)
        self._verify_live()

    def _verify_counters(self, st: Any) -> None:
        """The statistics that hold wherever allocations land: counts and byte totals."""
        self._same_val("held_bytes", st.held_bytes, 0)   # no array of a freed unit is left
        self._same_val("bytes_allocated", st.bytes_allocated, self.allocated())
        self._same_val("bytes_requested", st.bytes_requested,
                       sum(r[4] for r in self.recs.values()))
        self._same_val("live_allocations", st.live_allocations, len(self.recs))
        self._same_val("num_allocations", st.num_allocations, self.count)
        self._same_val("total_bytes_allocated", st.total_bytes_allocated, self.total)
        self._same_val("max_memory", st.max_memory, self.peak)

    def _verify_live(self) -> None:
        a = self.arena
        live = a.live()
        self._same_val("live() addresses", sorted(i.phys for i in live), sorted(self.recs))
        for key, (view, _) in self.live.items():
            self.expect(a.owns(view), f"arena does not own live allocation {key:#x}")

    def _verify_loose(self) -> None:
        """With size-class caches: bookkeeping, statistics and no overlap."""
        a = self.arena
        st = a.stats()
        self.peak_regions = max(self.peak_regions, a.memblock.reserved.cnt)
        self._verify_counters(st)
        if a.buddy is None:
            mb = a.memblock
            free = sum(e - s for s, e, _ in mb.for_each_free_mem_range())
            self._same_val("free + reserved", free + mb.reserved.total_size, a.capacity)
            self._same_val("free_bytes", st.free_bytes, free)
        spans = sorted((k, r[4]) for k, r in self.recs.items())
        for (p0, n0), (p1, _) in zip(spans, spans[1:], strict=False):
            self.expect(p0 + n0 <= p1, f"live allocations at {p0:#x} (+{n0}) and {p1:#x} "
                                       f"overlap")
        self._verify_caches(st)
        self._verify_live()

    def _verify_caches(self, st: Any) -> None:
        """No unit both cached and live; retained and slab bytes are what the caches hold;
        before the hand-over memblock's reserved bytes are exactly accounted for."""
        from arena.unit import FREE

        a = self.arena
        slab, large = a.slab, a.large
        cached: list[tuple[int, int]] = []       # (phys, bytes) of every unit on a free list
        in_slots = 0
        if slab is not None:
            slabs = list(slab.slabs())
            self._same_val("slab_bytes", st.slab_bytes, sum(sl.nbytes for sl in slabs))
            for sl in slabs:
                cached += [(u.phys, u.csize) for u in sl.free]
                used = [u for u in sl.slots if u.state != FREE]
                in_slots += sum(u.csize for u in used)
                for u in used:
                    self.expect(u.phys in self.recs, f"slot {u.phys:#x} is in use but not "
                                                     f"a live allocation")
        blocks = [] if large is None else list(large.free_blocks())
        cached += [(b.phys, b.csize) for b in blocks]
        spans = sorted([(r[0], max(r[1], 1), "live") for r in self.recs.values()]
                       + [(p, n, "cached") for p, n in cached])
        for (p0, n0, k0), (p1, _, k1) in zip(spans, spans[1:], strict=False):
            self.expect(p0 + n0 <= p1, f"{k0} unit at {p0:#x} (+{n0}) overlaps {k1} unit "
                                       f"at {p1:#x}")
        self.expect(all(b.state == FREE for b in blocks), "a retained block is in use")
        self._same_val("retained_bytes", st.retained_bytes, sum(b.csize for b in blocks))
        if large is not None:
            self.expect(st.retained_bytes <= large.limit,
                        f"retained_bytes {st.retained_bytes} over the limit {large.limit}")
        if a.buddy is None:
            want = (st.slab_bytes + st.bytes_allocated - in_slots + st.retained_bytes
                    + st.quarantined_bytes + st.memblock_bytes)
            self._same_val("memblock reserved bytes", a.memblock.reserved.total_size, want)


# -- Hypothesis state machines over the workloads ------------------------------------------------

def state_machine(name: str, create: Callable[[Chooser], Workload],
                  kinds: Sequence[str]) -> type:
    """A Hypothesis ``RuleBasedStateMachine`` class with one rule per operation kind.

    ``create(chooser)`` builds the workload (in ``@initialize``); every rule draws one
    operation of its kind, applies it and verifies the whole state. Hypothesis (a test
    dependency) is imported here, not at module import.
    """
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

    def build(self: Any, data: Any) -> None:
        self.w = create(DataChooser(data))
        self.w.verify()

    def teardown(self: Any) -> None:
        if getattr(self, "w", None) is not None:
            self.w.close()

    def make_step(kind: str) -> Callable[[Any, Any], None]:
        def step(self: Any, data: Any) -> None:
            op = self.w.gen(kind, DataChooser(data))
            if op is not None:
                self.w.apply(op)
                self.w.verify()

        step.__name__ = step.__qualname__ = kind
        return step

    body: dict[str, Any] = {"build": initialize(data=st.data())(build), "teardown": teardown}
    for kind in kinds:
        body[kind] = rule(data=st.data())(make_step(kind))
    return type(name, (RuleBasedStateMachine,), body)


# -- the soak runner ---------------------------------------------------------------------------

WORKLOADS = ("memblock", "arena", "arena-debug", "buddy")


class SoakResult:
    """What a soak run did: operations, episodes per workload, peak regions, the violation."""

    def __init__(self) -> None:
        self.ops = 0
        self.seconds = 0.0
        self.episodes: dict[str, int] = dict.fromkeys(WORKLOADS, 0)
        self.peak_regions: dict[str, int] = dict.fromkeys(WORKLOADS, 0)
        self.violation: InvariantViolation | None = None
        self.violation_seed: int | None = None
        self.violation_kind: str | None = None


def _close_quietly(*objs: Any) -> None:
    """Close ``objs``; one whose views are still alive stays open until they die."""
    import gc

    from arena.errors import LiveViewsError

    gc.collect()
    for obj in objs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                obj.close()
        except LiveViewsError:
            pass


def _make(kind: str, c: Chooser, pms: dict[str, Any]) -> Workload:
    if kind == "memblock":
        return MemblockWorkload.create(pms["memblock"], c)
    if kind == "buddy":
        return BuddyWorkload.create(pms["buddy"], c)
    return ArenaWorkload.create(c, debug=kind == "arena-debug")


def run_episode(seed: int, pms: dict[str, Any], ops: int, deadline: float,
                kinds: Sequence[str] = WORKLOADS) -> tuple[str, Workload, int]:
    """One episode: a workload chosen and built from ``seed``, then up to ``ops`` operations,
    each verified. Returns ``(kind, workload, operations run)``; raises
    :class:`InvariantViolation`."""
    rng = random.Random(seed)
    c = RandomChooser(rng)
    kind = c.choice(list(kinds))
    w = _make(kind, c, pms)
    done = 0
    try:
        w.verify()
        while done < ops and time.monotonic() < deadline and not w.dead:
            op = w.random_op(c)
            if op is None:
                continue
            w.apply(op)
            w.verify()
            done += 1
    except InvariantViolation as exc:
        exc.kind = kind  # type: ignore[attr-defined]
        w.close()
        raise
    w.close()
    return kind, w, done


def run_soak(seconds: float, *, seed: int | None = None, episodes: int | None = None,
             ops_per_episode: int = 300, kinds: Sequence[str] = WORKLOADS,
             progress: Callable[[str], None] | None = None) -> SoakResult:
    """Run episodes for ``seconds`` (or exactly ``episodes`` of them), stopping at the first
    invariant violation. Episode ``i`` of a run with ``seed`` uses seed ``seed + i``."""
    from arena.physmem import PhysicalMemory

    seed = random.randrange(1 << 32) if seed is None else seed
    res = SoakResult()
    saved = os.environ.get("ARENA_CHECK")
    os.environ["ARENA_CHECK"] = "1"  # every mutator also checks its own invariants
    # memblock logs "Failed to double ..." at ERROR when an array cannot grow: expected here.
    log = logging.getLogger("arena")
    quiet = logging.NullHandler()
    log.addHandler(quiet)
    propagate, log.propagate = log.propagate, False
    start = time.monotonic()
    deadline = start + seconds if episodes is None else float("inf")
    last = start
    pms = {"memblock": PhysicalMemory(256 << 10, phys_base=1 << 30),
           "buddy": PhysicalMemory(2 << 20, phys_base=1 << 30)}
    try:
        i = 0
        while (episodes is None and time.monotonic() < deadline) or \
                (episodes is not None and i < episodes):
            ep_seed = seed + i
            try:
                kind, w, n = run_episode(ep_seed, pms, ops_per_episode, deadline, kinds)
            except InvariantViolation as exc:
                res.violation, res.violation_seed = exc, ep_seed
                res.violation_kind = getattr(exc, "kind", None)
                res.ops += len(exc.ops)
                break
            res.ops += n
            res.episodes[kind] += 1
            res.peak_regions[kind] = max(res.peak_regions[kind], w.peak_regions)
            i += 1
            now = time.monotonic()
            if progress is not None and now - last >= 1.0:
                last = now
                progress(f"  {now - start:6.1f} s  {res.ops} ops  "
                         f"{res.ops / (now - start):,.0f} ops/s  {i} episodes")
    finally:
        log.removeHandler(quiet)
        log.propagate = propagate
        if saved is None:
            del os.environ["ARENA_CHECK"]
        else:
            os.environ["ARENA_CHECK"] = saved
        _close_quietly(*pms.values())
    res.seconds = time.monotonic() - start
    return res


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``soak`` subcommand's options to ``parser``."""
    parser.add_argument("--seconds", type=_positive(float), default=10.0,
                        help="how long to run (default 10; ignored with --episodes)")
    parser.add_argument("--seed", type=int, default=None,  # any int, negative too
                        help="seed of the first episode (default: random); episode i uses "
                             "seed + i")
    parser.add_argument("--episodes", type=_positive(int), default=None,
                        help="run exactly this many episodes (e.g. 1 to reproduce a failure)")
    parser.add_argument("--ops", type=_positive(int), default=300,
                        help="operations per episode (default 300)")
    parser.add_argument("--workload", action="append", choices=WORKLOADS, default=None,
                        help="restrict to these workloads (repeatable; default: all)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress line (drawn on stderr only when it is a terminal)")


def soak_command(args: argparse.Namespace, out: Any = None) -> int:
    """Run the soak described by parsed ``args``; print the summary to ``out`` (stdout).

    Returns 0 with ``0 invariant violations``, 1 after printing the first violation with its
    reproducer. Raises nothing for a violation.
    """
    out = sys.stdout if out is None else out

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    kinds = tuple(args.workload or WORKLOADS)
    seed = random.randrange(1 << 32) if args.seed is None else args.seed
    say(f"soak: seed {seed}, workloads {', '.join(kinds)}, "
        + (f"{args.episodes} episode(s)" if args.episodes is not None
           else f"{args.seconds:g} s") + ", check() after every operation")
    from arena.progress import Progress

    with Progress(label="soak", quiet=args.quiet, clock=False) as bar:   # a terminal only
        res = run_soak(args.seconds, seed=seed, episodes=args.episodes,
                       ops_per_episode=args.ops, kinds=kinds,
                       progress=lambda text: bar.status(text.strip()))
    rate = res.ops / res.seconds if res.seconds > 0 else 0.0
    done = ", ".join(f"{k} {n}" for k, n in res.episodes.items() if k in kinds)
    say(f"{res.ops} operations in {res.seconds:.1f} s: {rate:,.0f} ops/s "
        f"(episodes: {done})")
    say("peak regions: " + ", ".join(f"{k} {res.peak_regions[k]}" for k in kinds))
    if res.violation is None:
        say("0 invariant violations")
        return 0
    exc = res.violation
    say(f"1 invariant violation (episode seed {res.violation_seed}): {exc}")
    say(f"reproduce: python -m arena soak --seed {res.violation_seed} --episodes 1 "
        f"--ops {args.ops}" + "".join(f" --workload {k}" for k in args.workload or ()))
    say(f"operations of the failing episode ({len(exc.ops)}):")
    for op in exc.ops:
        say(f"  {format_op(op)}")
    return 1


def soak_main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    """``python -m arena soak``: parse ``argv`` (or take parsed arguments) and run."""
    if isinstance(argv, argparse.Namespace):
        return soak_command(argv)
    parser = argparse.ArgumentParser(prog="python -m arena soak",
                                     description="randomized stateful soak with every check on")
    add_soak_arguments(parser)
    return soak_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(soak_main())
