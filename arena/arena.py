"""The arena allocator: numpy buffers served by memblock over real "physical memory".

Kernel counterpart: none as a whole. An :class:`Arena` is what a program meets first: it maps a
:class:`arena.physmem.PhysicalMemory`, registers each NUMA slice with
``memblock_add_node()``, allows the region arrays to grow (``memblock_allow_resize()``) and
serves allocations through ``memblock_alloc_range_nid()``, the core that
``memblock_alloc_try_nid()`` (``node=N``: node N first, then any node) and
``memblock_alloc_exact_nid_raw()`` (``strict_node=True``: node N only) share, so the chosen
addresses are the kernel's. After :meth:`Arena.handover` (the end of boot,
``memblock_free_all()``), new allocations come from the buddy page allocator.

Small requests (up to :data:`arena.slab.KMALLOC_MAX_SIZE` bytes at an alignment their size
class guarantees) take the kernel's answer for small objects instead: the ``kmalloc`` size-class
caches of :mod:`arena.slab`, whose slabs are whole pages taken from memblock (after the
hand-over, from the buddy allocator) — a list pop and a slice instead of a region-array
search. Debug mode and ``slab=False`` send every request to memblock.

Invariants (checked by :meth:`Arena.check`, O(live allocations + regions)):

* Every live allocation is one *block* ``[block, block + reserved)`` that memblock reserved for
  it (or, after :meth:`Arena.handover`, a buddy block of ``page_size << order`` bytes), or a
  *slot* of a slab (``reserved`` = the slot's size class); blocks and slabs are disjoint and
  lie inside the physical memory. The user's bytes are
  ``[phys, phys + size)`` with ``block <= phys`` and ``phys + size <= block + reserved``;
  ``phys`` (and so the real virtual address) is a multiple of the allocation's alignment.
* ``reserved`` is ``size`` rounded up to the arena's ``align`` granule (at least one granule),
  plus the red zones in debug mode; for a slot, the smallest size class at least that large
  whose slots have the alignment asked for. ``bytes_allocated`` is the sum of ``reserved`` over
  the live allocations, ``bytes_requested`` the sum of ``size``; the budget bounds
  ``bytes_allocated``. Slabs are reserved memory: their free slots count as neither allocated
  nor free (``ArenaStats.slab_bytes`` is what the slabs hold).
* Live memblock/buddy allocations are keyed by ``phys`` (every block holds at least one
  granule); live slots by ``id()`` of the array handed out, which the arena keeps alive until
  the slot is freed (so the id cannot be reused meanwhile).
* Debug mode: the red zones ``[block, phys)`` and ``[phys + size, block + reserved)`` hold
  ``0xcc`` (SLUB's ``SLUB_RED_ACTIVE``) while the allocation lives; a freed block holds ``0x6b``
  (``POISON_FREE``) from end to end while it waits in the quarantine; a raw allocation
  (``zero=False``) starts as ``0x5a`` (``POISON_INUSE``).

Every error leaves the arena exactly as it was: arguments are checked and the budget is compared
before memblock is called, and a debug check that finds corruption raises
:class:`arena.errors.CorruptionError` before anything is freed. ``check(repair=True)`` reports
and restores the patterns (SLUB's "restoring" fix-up) so that work can go on.

With the environment variable ``ARENA_CHECK=1`` every allocation and free ends with the
bookkeeping part of :meth:`Arena.check` (memblock and the buddy allocator check themselves).

Thread safety: one re-entrant lock around every state change (the slab caches included).
Fork safety: the mapping is
``MAP_PRIVATE``, so a forked child owns a copy-on-write copy; the locks are held across
``fork()`` and renewed in the child, so the child's copy is consistent and usable.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import sys
import threading
import warnings
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import IO, Any

import numpy as np

from arena._args import bool_arg, int_arg
from arena.buddy import MAX_PAGE_ORDER, BuddyAllocator
from arena.errors import (
    ArenaMemoryError,
    BudgetExceededError,
    ClosedError,
    CorruptionError,
    DoubleFreeError,
    ForeignBufferError,
    HandoverError,
    LiveViewsError,
)
from arena.memblock import MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, Memblock, MemblockFlags
from arena.physmem import MAX_ALIGN, PAGE_SIZE, PhysicalMemory, parse_size
from arena.slab import KMALLOC_SIZES, KmemCache, Slab, SlabAllocator, Slot

__all__ = [
    "Arena",
    "ArenaStats",
    "NodeStats",
    "AllocationInfo",
    "LeakSite",
    "ARENA_PHYS_BASE",
    "REDZONE",
    "RED_ACTIVE",
    "POISON_FREE",
    "POISON_INUSE",
    "STACK_DEPTH",
    "FREED_MEMORY",
    "HIDDEN_FRAMES",
]

# -- constants ----------------------------------------------------------------------------------

#: Physical address of an arena's first byte. 1 GiB: page 0 (which memblock never hands out) is
#: not part of the memory, and an allocation aligned to 1 GiB fits in the smallest arena.
ARENA_PHYS_BASE = 1 << 30
#: Minimum red zone on each side of an allocation in debug mode (bytes).
REDZONE = 16
#: SLUB's ``SLUB_RED_ACTIVE``: red zone of a live object.
RED_ACTIVE = 0xCC
#: SLUB's ``POISON_FREE``: freed memory.
POISON_FREE = 0x6B
#: SLUB's ``POISON_INUSE``: an allocation nobody has initialised (``zero=False``).
POISON_INUSE = 0x5A
#: Frames of the allocating stack kept per allocation in debug mode (one frame otherwise).
STACK_DEPTH = 8
#: Frames from files whose path contains one of these are left out of allocation stacks.
HIDDEN_FRAMES = (f"{os.sep}_pytest{os.sep}", f"{os.sep}pluggy{os.sep}", f"{os.sep}pytest{os.sep}",
                 "<frozen runpy>")
#: Freed starts remembered for double-free detection (oldest forgotten first).
FREED_MEMORY = 1 << 16

_DEBUG_TRUE = frozenset({"1", "true", "yes", "on"})
#: No budget: a bound no allocation total reaches (one comparison on the fast path).
_NO_LIMIT = 1 << 64
_getframe = sys._getframe


# -- small helpers ------------------------------------------------------------------------------

def _align_arg(name: str, value: Any) -> int:
    """A power-of-two alignment in ``1 .. 1 GiB`` (the real virtual address keeps it)."""
    value = int_arg(name, value)
    if value < 1 or value & (value - 1) or value > MAX_ALIGN:
        raise ValueError(f"{name} must be a power of two in 1 .. {MAX_ALIGN} (1 GiB), "
                         f"not {value}")
    return value


def _round_up(x: int, a: int) -> int:
    return (x + a - 1) & -a


def _capture(frame: Any, limit: int) -> tuple[tuple[str, int, str], ...]:
    """Up to ``limit`` ``(filename, line, function)`` frames, innermost first: the caller, then
    its callers minus the frames of test runners (:data:`HIDDEN_FRAMES`). O(limit + hidden)."""
    code = frame.f_code
    out = [(code.co_filename, frame.f_lineno, code.co_name)]
    frame = frame.f_back
    while frame is not None and len(out) < limit:  # only in debug mode (limit > 1)
        code = frame.f_code
        name = code.co_filename
        if not any(h in name for h in HIDDEN_FRAMES):
            out.append((name, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return tuple(out)


def _site(frame: tuple[str, int, str] | None) -> str:
    return "?" if frame is None else f"{frame[0]}:{frame[1]} in {frame[2]}"


def _fmt_stack(stack: tuple[tuple[str, int, str], ...], indent: str = "    ") -> str:
    return "".join(f"\n{indent}{_site(f)}" for f in stack)


# -- public records -----------------------------------------------------------------------------

@dataclass(frozen=True)
class AllocationInfo:
    """One live allocation, as :meth:`Arena.info` and :meth:`Arena.live` report it.

    ``phys``: physical address of the first byte; ``address``: its real virtual address;
    ``size``: bytes requested; ``reserved``: bytes held for it (granule padding and red zones
    included); ``align``: the alignment both addresses satisfy; ``node``: the node holding the
    memory; ``requested_node``: the ``node=`` argument (``None`` = any); ``caller``:
    ``"file:line in function"`` of the call that allocated it; ``stack``: the allocating stack
    (innermost first, up to :data:`STACK_DEPTH` frames in debug mode, one frame otherwise);
    ``seq``: allocation number (0, 1, 2, ... in allocation order).
    """

    phys: int
    address: int
    size: int
    reserved: int
    align: int
    node: int
    requested_node: int | None
    caller: str
    stack: tuple[str, ...]
    seq: int


@dataclass(frozen=True)
class LeakSite:
    """Live allocations grouped by call site (:meth:`Arena.leaks`): ``count`` allocations of
    ``nbytes`` bytes in total (requested sizes) made at ``site``; ``stack`` is the stack of the
    first of them; ``phys`` their physical addresses."""

    site: str
    count: int
    nbytes: int
    stack: tuple[str, ...]
    phys: tuple[int, ...]


@dataclass(frozen=True)
class NodeStats:
    """One node's share of :class:`ArenaStats` (bytes; ``live_allocations`` is a count)."""

    nid: int
    capacity: int
    bytes_allocated: int
    free_bytes: int
    largest_free_block: int
    live_allocations: int
    resident_bytes: int


@dataclass(frozen=True)
class ArenaStats:
    """A snapshot of an arena (:meth:`Arena.stats`). Sizes in bytes.

    Names follow pyarrow's ``MemoryPool`` where the meaning is the same:

    * ``capacity`` — memory registered with memblock (the sum of the node slices).
    * ``bytes_requested`` — sum of the sizes asked for by the live allocations.
    * ``bytes_allocated`` (pyarrow's name) — bytes held by the live allocations, padding
      included: each request rounded up to the arena's ``align`` granule, plus red zones in
      debug mode (after :meth:`Arena.handover`: whole buddy blocks). The budget counts this.
    * ``total_bytes_allocated`` (pyarrow) — ``bytes_allocated`` summed over every allocation
      ever made.
    * ``free_bytes``, ``largest_free_block`` — memblock's free ranges (memory minus reserved;
      after the hand-over, the buddy allocator's free pages, adjacent blocks joined).
      Alignment gaps between blocks are free memory, not padding.
    * ``fragmentation`` — ``1 - sum(s**2) / sum(s)**2`` over the free blocks: 0 = one free
      block (or none), towards 1 = many small ones.
    * ``live_allocations``; ``num_allocations`` (pyarrow) — allocations ever made.
    * ``max_memory`` (pyarrow) — the peak of ``bytes_allocated``.
    * ``per_node`` — a :class:`NodeStats` per node, ascending.
    * ``resident_bytes`` — pages of the mapping really backed by RAM (``mincore``).
    * ``budget`` — the byte budget (``None`` = none) and ``budget_remaining``.
    * ``quarantined_bytes`` — freed blocks held back in debug mode (still reserved, so neither
      allocated nor free).
    * ``slab_bytes`` — memory held by the size-class caches (whole slabs, reserved: their
      slots in use count in ``bytes_allocated``, their free slots in neither it nor
      ``free_bytes``); :meth:`Arena.release` and :meth:`Arena.reset` give empty slabs back.
    """

    capacity: int
    bytes_requested: int
    bytes_allocated: int
    total_bytes_allocated: int
    free_bytes: int
    largest_free_block: int
    fragmentation: float
    live_allocations: int
    num_allocations: int
    max_memory: int
    per_node: tuple[NodeStats, ...]
    resident_bytes: int
    budget: int | None
    budget_remaining: int | None
    quarantined_bytes: int
    slab_bytes: int


class _Record:
    """Bookkeeping of one allocation (live or quarantined)."""

    __slots__ = ("phys", "size", "block", "reserved", "order", "align", "nid", "node", "seq",
                 "stack", "freed_at")

    def __init__(self, phys: int, size: int, block: int, reserved: int, order: int, align: int,
                 nid: int, node: int | None, seq: int,
                 stack: tuple[tuple[str, int, str], ...]) -> None:
        self.phys = phys            # first user byte
        self.size = size            # user bytes
        self.block = block          # first byte of the block held for it
        self.reserved = reserved    # bytes of the block
        self.order = order          # buddy order, or -1 for a memblock block
        self.align = align
        self.nid = nid              # node holding the block
        self.node = node            # node asked for (None = any)
        self.seq = seq
        self.stack = stack
        self.freed_at: tuple[tuple[str, int, str], ...] = ()

    def describe(self) -> str:
        return (f"the {self.size}-byte allocation at phys {self.phys:#x} (align {self.align}, "
                f"node {self.nid}) allocated at {_site(self.stack[0] if self.stack else None)}")


# -- fork handling: hold every arena's lock across fork(), renew it in the child -------------------

_ARENAS: weakref.WeakSet[Arena] = weakref.WeakSet()
_ARENAS_LOCK = threading.Lock()   # guards _ARENAS; held across fork() too
_FORK_HELD: list[Arena] = []


def _before_fork() -> None:
    _ARENAS_LOCK.acquire()
    held = sorted(_ARENAS, key=lambda a: a._serial)
    for a in held:
        a._lock.acquire()
    _FORK_HELD[:] = held


def _after_fork_parent() -> None:
    for a in reversed(_FORK_HELD):
        a._lock.release()
    _FORK_HELD.clear()
    _ARENAS_LOCK.release()


def _after_fork_child() -> None:
    global _ARENAS_LOCK
    for a in _FORK_HELD:
        a._lock = threading.RLock()
    _FORK_HELD.clear()
    _ARENAS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)

_serials = itertools.count()


# -- the arena ----------------------------------------------------------------------------------

class Arena:
    """An arena allocator over memblock: numpy buffers with real alignment and node placement.

    ``Arena(size, *, nodes=None, budget=None, align=64, debug=None, hugepages=False,
    quarantine=None, slab=True)``

    * ``size`` — bytes (an int or a string such as ``"1 GiB"``), rounded up to whole pages. The
      memory is mapped ``MAP_NORESERVE``: only pages touched cost RAM.
    * ``nodes`` — NUMA slices as :class:`arena.physmem.PhysicalMemory` takes them (a count, a
      list of sizes or of fractions); each slice is added to memblock with its node id and
      bound to the host node of the same id where the host has it.
    * ``budget`` — at most this many bytes allocated (:attr:`ArenaStats.bytes_allocated`:
      requests rounded up to the granule, red zones included); ``None`` = no limit.
    * ``align`` — the default alignment and the granule every request is rounded up to
      (a power of two, 1 .. 1 GiB).
    * ``debug`` — memory-correctness mode (red zones, poisoning, quarantine, allocation stacks,
      leak warnings); ``None`` reads the environment variable ``ARENA_DEBUG`` (``1`` = on).
    * ``hugepages`` — ask for transparent huge pages (``MADV_HUGEPAGE``).
    * ``quarantine`` — bytes of freed blocks held back before reuse in debug mode (default 1/32
      of the capacity).
    * ``slab`` — serve small requests from the size-class caches (:mod:`arena.slab`, the
      kernel's ``kmalloc``): ``alloc(64)`` is then a list pop and a slice. ``False`` makes
      every allocation a memblock reservation at the kernel's boot-time address (what a
      memblock model or a boot-log replay needs). Debug mode always uses memblock.

    The memory starts at physical address :data:`ARENA_PHYS_BASE` (1 GiB). ``memblock`` and
    ``physmem`` stay reachable for power users; ``buddy`` after :meth:`handover`. Use as a
    context manager or call :meth:`close`. Raises TypeError/ValueError for bad arguments,
    :class:`arena.errors.ArenaMemoryError` if the memory cannot be mapped.
    """

    def __init__(
        self,
        size: int | str,
        *,
        nodes: Any = None,
        budget: int | str | None = None,
        align: int = 64,
        debug: bool | None = None,
        hugepages: bool = False,
        quarantine: int | str | None = None,
        slab: bool = True,
    ) -> None:
        size = _round_up(parse_size(size, name="size"), PAGE_SIZE)
        align = _align_arg("align", align)
        if budget is not None:
            budget = parse_size(budget, name="budget", allow_zero=True)
        if debug is None:
            debug = os.environ.get("ARENA_DEBUG", "").strip().lower() in _DEBUG_TRUE
        debug = bool_arg("debug", debug)
        hugepages = bool_arg("hugepages", hugepages)
        slab = bool_arg("slab", slab)
        if quarantine is not None:
            quarantine = parse_size(quarantine, name="quarantine", allow_zero=True)
        pm = PhysicalMemory(size, phys_base=ARENA_PHYS_BASE, nodes=nodes, hugepages=hugepages)
        slices = pm.slices
        max_numnodes = 64
        while max_numnodes <= slices[-1].nid:
            max_numnodes <<= 1
        mb = Memblock(pm, page_size=pm.page_size, max_numnodes=max_numnodes)
        for sl in slices:
            mb.add_node(sl.phys_start, sl.size, sl.nid, MemblockFlags.NONE)
        mb.allow_resize()

        self._pm = pm
        self._mb = mb
        self._buddy: BuddyAllocator | None = None
        self._slices = tuple(slices)
        self._slice_starts = [sl.phys_start for sl in slices]
        self._nids = frozenset(sl.nid for sl in slices)
        self._page_size = pm.page_size
        self._capacity = pm.size
        self._align = align
        self._budget = budget
        self._debug = debug
        self._quarantine_limit = size // 32 if quarantine is None else quarantine
        self._stack_depth = STACK_DEPTH if debug else 1
        self._lock = threading.RLock()
        # thread ident -> open scopes: records, and slots with the seq of their allocation
        self._scopes: dict[int, list[list[_Record | tuple[Slot, int]]]] = {}
        self._closed = False
        # Real address minus phys (an empty view marks nothing as written).
        self._virt_delta = pm.view(pm.phys_base, 0).__array_interface__["data"][0] - pm.phys_base
        # Bookkeeping.
        self._live: dict[int, _Record] = {}   # phys -> record, in allocation order
        self._quarantine: deque[_Record] = deque()
        self._quarantined = 0
        self._freed: OrderedDict[int, tuple[tuple[str, int, str], ...]] = OrderedDict()
        self._requested = 0
        self._allocated = 0
        self._total_allocated = 0
        self._peak = 0
        self._count = 0
        self._autocheck = os.environ.get("ARENA_CHECK") == "1"
        self._limit = _NO_LIMIT if budget is None else budget
        # The size-class caches (none in debug mode: red zones need memblock blocks).
        self._slab: SlabAllocator | None = None
        if slab and not debug:
            self._slab = SlabAllocator(pm, slices, page_size=pm.page_size, fast_align=align,
                                       granule=align)
        self._byid: dict[int, Slot] = {}      # id(array handed out) -> its slot, if live
        # What the fast paths of alloc() and free() look in; empty dicts send every call to
        # the general path (closed arena, no caches, ARENA_CHECK=1 so that every call checks).
        fast = self._slab is not None and not self._autocheck
        self._fast: dict[int, KmemCache] = self._slab.fast if fast and self._slab else {}
        self._fastfree: dict[int, Slot] = self._byid if fast else {}
        with _ARENAS_LOCK:
            self._serial = next(_serials)
            _ARENAS.add(self)

    # -- properties --------------------------------------------------------------------------

    @property
    def memblock(self) -> Memblock:
        """The :class:`arena.memblock.Memblock` serving the allocations (power users)."""
        return self._mb

    @property
    def physmem(self) -> PhysicalMemory:
        """The :class:`arena.physmem.PhysicalMemory` holding the bytes (power users)."""
        return self._pm

    @property
    def slab(self) -> SlabAllocator | None:
        """The size-class caches (:class:`arena.slab.SlabAllocator`) serving small requests,
        or ``None`` (debug mode, ``slab=False``, closed)."""
        return self._slab

    @property
    def buddy(self) -> BuddyAllocator | None:
        """The page allocator after :meth:`handover`, else ``None``."""
        return self._buddy

    @property
    def capacity(self) -> int:
        """Bytes of memory (whole pages)."""
        return self._capacity

    @property
    def align(self) -> int:
        """The default alignment and granule (bytes)."""
        return self._align

    @property
    def budget(self) -> int | None:
        """The byte budget, or ``None``."""
        return self._budget

    @property
    def debug(self) -> bool:
        """True in memory-correctness mode."""
        return self._debug

    @property
    def nodes(self) -> tuple[int, ...]:
        """The node ids of the arena's memory, ascending."""
        return tuple(sl.nid for sl in self._slices)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        dbg = " debug" if self._debug else ""
        return (f"<Arena {self._capacity:#x} bytes, {len(self._slices)} node(s), "
                f"{len(self._live) + len(self._byid)} live, {self._allocated} bytes "
                f"allocated{dbg}{state}>")

    # -- argument checks ---------------------------------------------------------------------

    def _open(self) -> None:
        if self._closed:
            raise ClosedError("the arena is closed")

    def _node_arg(self, node: Any) -> int:
        """``None`` / ``NUMA_NO_NODE`` -> ``NUMA_NO_NODE``, else one of the arena's nodes."""
        if node is None:
            return NUMA_NO_NODE
        node = int_arg("node", node)
        if node == NUMA_NO_NODE:
            return node
        if node not in self._nids:
            raise ValueError(f"unknown node {node}: this arena's nodes are "
                             f"{sorted(self._nids)}")
        return node

    def _nid_of(self, phys: int) -> int:
        return self._slices[bisect.bisect_right(self._slice_starts, phys) - 1].nid

    # -- the allocation core -----------------------------------------------------------------

    def alloc(self, nbytes: int, *, align: int | None = None, node: int | None = None,
              strict_node: bool = False, zero: bool = True) -> np.ndarray:
        """Allocate ``nbytes`` bytes; returns a writable 1-D uint8 view of them.

        Kernel counterpart: ``kmalloc_node()`` for sizes a size class serves (a slot of a slab,
        :mod:`arena.slab`), else ``memblock_alloc_try_nid()`` (``strict_node``:
        ``memblock_alloc_exact_nid_raw()``), after :meth:`handover` ``alloc_pages_node()``.

        * ``align`` — power of two, 1 B .. 1 GiB (default: the arena's ``align``); the physical
          and the real virtual address are both multiples of it.
        * ``node`` — prefer this node and fall back to any node (``None`` = any node);
          ``strict_node=True`` never falls back (needs ``node``).
        * ``zero`` — the bytes read 0 (pages never touched are not written); ``False`` leaves
          them as they are (``0x5a`` in debug mode).

        ``nbytes`` 0 is allowed (an empty array that still holds one granule). Raises
        TypeError/ValueError for bad arguments, :class:`arena.errors.BudgetExceededError` if
        the budget would be exceeded, :class:`arena.errors.ArenaMemoryError` if no free block
        fits, ClosedError; the arena is unchanged on error. O(1) from a size-class cache with
        a free slot, else O(regions).
        """
        # The fast path: a size class at the default alignment on any node, with a free slot in
        # the current slab and room in the budget: _take_slot() written out (the call alone
        # costs ~10% of the path), after the cheapest checks that exclude everything else
        # (non-int sizes; a closed arena, debug mode and ARENA_CHECK=1 miss self._fast).
        if align is None and node is None and strict_node is False and type(nbytes) is int:
            cache = self._fast.get(nbytes)
            if cache is not None and (zero is True or zero is False):
                # The caller (its line is looked up when asked). Taken before the lock: making
                # the frame object is the one step here that can run the garbage collector, and
                # so a finalizer that frees memory of this arena (the lock is re-entrant).
                frame = _getframe(1)
                lock = self._lock
                lock.acquire()   # acquire/release: half the cost of `with lock:`
                try:
                    free = cache.free
                    size = cache.size
                    allocated = self._allocated + size
                    if free and allocated <= self._limit:
                        slot = free.pop()
                        off = slot.off
                        view = slot.sv[off:off + nbytes]
                        if zero and slot.seq >= 0:   # handed out before: may be dirty
                            # The whole slot, through a memoryview: half of view.fill(0).
                            slot.mv[off:slot.end] = cache.zeros
                        slot.view = view
                        slot.size = nbytes
                        slot.seq = seq = self._count
                        self._count = seq + 1
                        slot.align = None
                        slot.code = frame.f_code
                        slot.lasti = frame.f_lasti
                        self._byid[id(view)] = slot
                        self._allocated = allocated
                        self._total_allocated += size
                        if allocated > self._peak:
                            self._peak = allocated
                        if self._scopes:
                            self._scope_add((slot, seq))
                        return view
                finally:
                    lock.release()
        return self._alloc(nbytes, align, node, strict_node, zero, None, None)

    def alloc_array(self, shape: int | tuple[int, ...], dtype: Any = np.float64, *,
                    align: int | None = None, node: int | None = None,
                    strict_node: bool = False, zero: bool = True) -> np.ndarray:
        """Allocate an ndarray of ``shape`` and ``dtype`` (C order); like :meth:`alloc`.

        The alignment is at least ``dtype.alignment``. Object dtypes are refused (TypeError).
        Free it with :meth:`free` (any view with the same start and size works). O(regions).
        """
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise TypeError(f"dtype {dt} holds Python objects, which cannot live in raw memory")
        dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        dims = tuple(int_arg("shape", d) for d in dims)
        if any(d < 0 for d in dims):
            raise ValueError(f"shape {shape!r} has a negative dimension")
        if dt.subdtype is not None:  # as np.empty does: ('f8', (3,)) adds a dimension
            dt, sub = dt.subdtype
            dims += sub
        nbytes = dt.itemsize
        for d in dims:
            nbytes *= d
        if align is not None:
            align = max(_align_arg("align", align), dt.alignment)
        elif dt.alignment > self._align:
            align = dt.alignment
        return self._alloc(nbytes, align, node, strict_node, zero, dt, dims)

    def _alloc(self, nbytes: Any, align: Any, node: Any, strict_node: Any, zero: Any,
               dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
        """The one allocation core behind :meth:`alloc` and :meth:`alloc_array`."""
        nbytes = int_arg("nbytes", nbytes)
        if not 0 <= nbytes < 1 << 62:
            raise ValueError(f"nbytes must be in 0 .. 2**62, not {nbytes}")
        align = self._align if align is None else _align_arg("align", align)
        nid = self._node_arg(node)
        strict = bool_arg("strict_node", strict_node)
        zero = bool_arg("zero", zero)
        if strict and nid == NUMA_NO_NODE:
            raise ValueError("strict_node=True needs a node")
        frame = sys._getframe(2)
        stack = _capture(frame, self._stack_depth)
        with self._lock:
            self._open()
            debug = self._debug
            slab = self._slab
            if slab is not None and nbytes and nid == NUMA_NO_NODE:
                index = slab.index(nbytes, align)
                if index is not None and self._allocated + KMALLOC_SIZES[index] <= self._limit:
                    # kmalloc(): a slot of the class's cache; without a free slot or a new slab
                    # (or within the budget), memblock serves it. Requests for a node keep
                    # memblock_alloc_try_nid()'s placement (and its node fallback).
                    cache: KmemCache | None = slab.cache(index, nid)
                    if cache is not None and not cache.free:
                        cache = slab.refill(index, nid, self._get_slab_pages,
                                            self._put_slab_pages)
                    if cache is not None:
                        return self._take_slot(cache, nbytes, zero,
                                               None if align == self._align else align, frame,
                                               dtype, shape)
            # Layout: [left red zone][nbytes][right red zone + granule padding]; the left red
            # zone is a multiple of align so the user's bytes stay aligned (above one page of
            # alignment it is dropped rather than wasting a whole alignment unit).
            left = (_round_up(REDZONE, align) if align <= self._page_size else 0) if debug else 0
            need = left + nbytes + (REDZONE if debug else 0)
            buddy = self._buddy
            if buddy is None:
                order = -1
                reserved = _round_up(max(need, 1), self._align)
            else:
                order = self._order_for(need, align, nbytes, nid)
                reserved = self._page_size << order
            budget = self._budget
            if budget is not None and self._allocated + reserved > budget:
                free, largest = self._free_summary()
                raise BudgetExceededError(
                    f"allocating {nbytes} bytes (holding {reserved}) would take the arena to "
                    f"{self._allocated + reserved} bytes, over its budget of {budget} "
                    f"({budget - self._allocated} left)", size=nbytes, align=align,
                    node=None if nid == NUMA_NO_NODE else nid, free_bytes=free,
                    largest_free=largest)
            block = self._get_block(reserved, align, nid, strict, order)
            if not block:
                raise self._oom(nbytes, reserved, align, nid, strict)
            phys = block + left
            pm = self._pm
            try:
                if debug:
                    if left:
                        pm.fill(block, left, RED_ACTIVE)
                    pm.fill(phys + nbytes, block + reserved - phys - nbytes, RED_ACTIVE)
                    if nbytes and not zero:
                        pm.fill(phys, nbytes, POISON_INUSE)
                if zero and nbytes:
                    pm.zero(phys, nbytes)
                if nbytes:
                    view = pm.view(phys, nbytes)
                else:
                    view = pm.view(phys, 1)[:0]
            except BaseException:   # the memory failed: the block goes back, nothing changed
                self._give_back(block, reserved, order)
                raise
            rec = _Record(phys, nbytes, block, reserved, order, align, self._nid_of(block),
                          None if nid == NUMA_NO_NODE else nid, self._count, stack)
            self._live[phys] = rec
            self._freed.pop(phys, None)
            self._count += 1
            self._requested += nbytes
            self._allocated += reserved
            self._total_allocated += reserved
            if self._allocated > self._peak:
                self._peak = self._allocated
            if self._scopes:
                self._scope_add(rec)
            if self._autocheck:
                self._check_bookkeeping()
        if dtype is not None:
            view = view.view(dtype).reshape(shape)
        return view

    def _scope_add(self, entry: _Record | tuple[Slot, int]) -> None:
        """File a new allocation (a record, or a slot with its ``seq``) in this thread's
        innermost scope, if it has one."""
        scopes = self._scopes.get(threading.get_ident())
        if scopes:
            scopes[-1].append(entry)

    def _take_slot(self, cache: KmemCache, nbytes: int, zero: bool, align: int | None, frame: Any,
                   dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
        """Hand out the next free slot of ``cache`` (it has one; the budget was checked) as
        an array of ``nbytes`` bytes (or of ``dtype`` and ``shape``). Kernel counterpart: the
        fast path of ``slab_alloc_node()``. :meth:`alloc` has this written out. O(1)."""
        slot = cache.free.pop()
        view = slot.sv[slot.off:slot.off + nbytes]
        if zero and slot.seq >= 0:
            slot.mv[slot.off:slot.end] = cache.zeros
        if dtype is not None:
            view = view.view(dtype).reshape(shape)
        slot.view = view
        slot.size = nbytes
        slot.seq = seq = self._count
        self._count = seq + 1
        slot.align = align
        slot.code = frame.f_code
        slot.lasti = frame.f_lasti
        self._byid[id(view)] = slot
        size = cache.size
        self._allocated += size
        self._total_allocated += size
        if self._allocated > self._peak:
            self._peak = self._allocated
        if self._scopes:
            self._scope_add((slot, seq))
        if self._autocheck:
            self._check_bookkeeping()
        return view

    def _get_slab_pages(self, nbytes: int, order: int, nid: int,
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

    def _put_slab_pages(self, slab: Slab) -> None:
        """Give an empty slab back to where it came from (:data:`arena.slab.PutPages`). Its
        slots that were used are remembered as freed, so a stale array still reports a double
        free."""
        freed = self._freed
        for slot in slab.slots:
            if slot.seq >= 0:
                freed[slot.phys] = ()
                freed.move_to_end(slot.phys)
        while len(freed) > FREED_MEMORY:
            freed.popitem(last=False)
        self._give_back(slab.base, slab.nbytes, slab.order)

    def _order_for(self, need: int, align: int, nbytes: int, nid: int) -> int:
        """Buddy order of a block of at least ``need`` bytes aligned to ``align``."""
        ps = self._page_size
        pages = max(1, -(-need // ps))
        order = max((pages - 1).bit_length(), max(align // ps, 1).bit_length() - 1)
        assert self._buddy is not None
        if order > self._buddy.max_order:
            free, largest = self._free_summary()
            raise ArenaMemoryError(
                f"cannot allocate {nbytes} bytes aligned to {align} from the page allocator: "
                f"its largest block is {ps << self._buddy.max_order} bytes (order "
                f"{self._buddy.max_order})", size=nbytes, align=align,
                node=None if nid == NUMA_NO_NODE else nid, free_bytes=free,
                largest_free=largest)
        return order

    def _get_block(self, reserved: int, align: int, nid: int, strict: bool, order: int) -> int:
        """Physical address of a new block from memblock or the buddy allocator; 0 if none."""
        buddy = self._buddy
        if buddy is None:
            # memblock_alloc_range_nid(): node nid, then any node unless exact.
            return self._mb.alloc_range_nid(reserved, align, 0, MEMBLOCK_ALLOC_ACCESSIBLE, nid,
                                            strict)
        node: int | None = None if nid == NUMA_NO_NODE else nid
        if node is not None and node not in buddy.nodes:
            # The node gave the page allocator no pages (all reserved before the hand-over).
            if strict:
                return 0
            node = None
        return buddy.alloc_pages_phys(order, node=node, strict_node=strict) or 0

    def _oom(self, nbytes: int, reserved: int, align: int, nid: int,
             strict: bool) -> ArenaMemoryError:
        free, largest = self._free_summary()
        where = "any node" if nid == NUMA_NO_NODE else (
            f"node {nid}" + (" only" if strict else " (then any node)"))
        quarantined = (f", {self._quarantined} bytes in the debug quarantine"
                       if self._quarantined else "")
        return ArenaMemoryError(
            f"cannot allocate {nbytes} bytes (holding {reserved}) aligned to {align} on {where}: "
            f"{free} bytes free, largest free block {largest}{quarantined}", size=nbytes,
            align=align, node=None if nid == NUMA_NO_NODE else nid, free_bytes=free,
            largest_free=largest)

    # -- freeing -----------------------------------------------------------------------------

    def _lookup(self, array: Any) -> _Record | Slot:
        """The live record or slot ``array`` covers exactly; raises as :meth:`free` documents.
        O(1) for the array handed out, else ``phys_of`` and O(1) more."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"need a numpy array from this arena, not {type(array).__name__}")
        slot = self._byid.get(id(array))
        if slot is not None and slot.view is array:
            return slot
        try:
            phys = self._pm.phys_of(array)
        except ValueError as exc:
            raise ForeignBufferError(f"the array was not allocated by this arena: {exc}") from None
        nbytes = array.nbytes
        whole = array.flags.c_contiguous or array.flags.f_contiguous
        slab = None
        if self._slab is not None:
            slab, slot = self._slab.find(phys)
        rec: _Record | Slot | None
        if slab is not None:      # inside a slab: only a slot in use is an allocation
            rec = slot if slot is not None and slot.view is not None else None
            freed = slot is not None and slot.seq >= 0
        else:
            rec = self._live.get(phys)
            freed = phys in self._freed
        if rec is not None:
            if rec.size != nbytes or not whole:
                raise ForeignBufferError(
                    f"the array ({nbytes} bytes at phys {phys:#x}"
                    f"{'' if array.flags.contiguous else ', not contiguous'}) is not the whole "
                    f"of {self._describe(rec)}")
            return rec
        if freed:
            where = self._freed.get(phys) if slab is None else None
            at = f" (at {_site(where[0])})" if where else ""
            raise DoubleFreeError(f"the array at phys {phys:#x} was already freed{at}")
        raise ForeignBufferError(f"the array at phys {phys:#x} ({nbytes} bytes) is not an "
                                 f"allocation of this arena (a slice of one, or never allocated)")

    def free(self, array: np.ndarray) -> None:
        """Free an allocation: ``array`` is the array :meth:`alloc` returned or any view with the
        same first byte and the same size (``a.view(np.float32)``, ``a.reshape(...)``).

        Kernel counterpart: ``kfree()`` for a slot of a size-class cache, else
        ``memblock_free()`` (after :meth:`handover`: ``free_pages()`` or
        ``memblock_free_late()`` for blocks from before it). In debug mode the red zones are
        checked, the block is poisoned (``0x6b``) and quarantined. The array stays a valid view
        of memory that is no longer yours.

        Raises TypeError (not an ndarray), :class:`arena.errors.ForeignBufferError` (not an
        allocation of this arena, or only part of one), :class:`arena.errors.DoubleFreeError`
        (freed already; the last :data:`FREED_MEMORY` freed starts are remembered, slots as long
        as their slab lives, and a later allocation at the same address makes the old array
        indistinguishable from the new),
        :class:`arena.errors.CorruptionError` (debug: red zone or quarantined memory
        overwritten), ClosedError. Nothing changes on error. O(1) for the array of a slot as
        handed out, else O(regions).
        """
        # The fast path: the very array a slot was handed out as (the arena holds it, so no
        # other live object has its id). The id lookup replaces phys_of() (~1 us); the rest is
        # _free_slots() written out.
        lock = self._lock
        lock.acquire()
        try:
            slot = self._fastfree.pop(id(array), None)
            if slot is not None:
                slot.view = None
                self._allocated -= slot.csize
                free = slot.free
                free.append(slot)
                n = len(free)
                if n == 1 or n == slot.slab.nslots:   # was full, or is empty now
                    slab = slot.slab
                    if not slab.is_cur:
                        self._slab_changed(slab)
                return
        finally:
            lock.release()
        stack = _capture(sys._getframe(1), self._stack_depth)
        with self._lock:
            self._open()
            rec = self._lookup(array)
            if isinstance(rec, Slot):
                self._free_slots([rec])
            else:
                self._free_records([rec], stack)

    def _slab_changed(self, slab: Slab) -> None:
        """A free made ``slab`` (not a current one) leave the full state or become empty."""
        assert self._slab is not None
        self._slab.slab_changed(slab, self._put_slab_pages)

    def _free_slots(self, slots: list[Slot]) -> None:
        """The free core for slots (free, scope exit, reset). Kernel counterpart: ``kfree()``
        (``slab_free()``). O(len(slots)) plus any slab given back."""
        byid = self._byid
        for slot in slots:
            del byid[id(slot.view)]
            slot.view = None
            self._allocated -= slot.csize
            free = slot.free
            free.append(slot)
            if (len(free) == 1 or len(free) == slot.slab.nslots) and not slot.slab.is_cur:
                self._slab_changed(slot.slab)
        if self._autocheck:
            self._check_bookkeeping()

    def _free_records(self, recs: list[_Record], stack: tuple[tuple[str, int, str], ...]) -> None:
        """The one free core (free, scope exit, reset): check everything, then change state."""
        if self._debug:
            reports = [r for rec in recs if (r := self._check_redzones(rec))]
            evict = self._evictions(sum(rec.reserved for rec in recs))
            reports += [r for rec in evict if (r := self._check_poison(rec))]
            if reports:
                raise self._corruption(reports)
        live, freed = self._live, self._freed
        for rec in recs:
            del live[rec.phys]
            self._requested -= rec.size
            self._allocated -= rec.reserved
            freed[rec.phys] = stack
            freed.move_to_end(rec.phys)
            if self._debug:
                rec.freed_at = stack
                self._pm.fill(rec.block, rec.reserved, POISON_FREE)
                self._quarantine.append(rec)
                self._quarantined += rec.reserved
            else:
                self._release_block(rec)
        while len(freed) > FREED_MEMORY:
            freed.popitem(last=False)
        if self._debug:
            q = self._quarantine
            while self._quarantined > self._quarantine_limit:
                old = q.popleft()
                self._quarantined -= old.reserved
                self._release_block(old)
        if self._autocheck:
            self._check_bookkeeping()

    def _evictions(self, adding: int) -> list[_Record]:
        """Quarantined records that adding ``adding`` bytes pushes out (oldest first)."""
        over = self._quarantined + adding - self._quarantine_limit
        out = []
        for rec in self._quarantine:
            if over <= 0:
                break
            out.append(rec)
            over -= rec.reserved
        return out

    def _release_block(self, rec: _Record) -> None:
        """Give a record's block back to the allocator it came from."""
        self._give_back(rec.block, rec.reserved, rec.order)

    def _give_back(self, block: int, nbytes: int, order: int) -> None:
        """Give ``[block, block + nbytes)`` back: a buddy block of ``order``, or (order -1) a
        memblock reservation."""
        if order >= 0:
            assert self._buddy is not None
            self._buddy.free_pages(block, order)
        elif self._buddy is None:
            self._mb.phys_free(block, nbytes)
        else:
            # memblock_free_late(): the block's whole pages go to the page allocator.
            self._mb.free_late(block, nbytes)

    # -- ownership and introspection ---------------------------------------------------------

    def owns(self, array: np.ndarray) -> bool:
        """True if :meth:`free` would accept ``array`` now (a live allocation of this arena,
        whole). TypeError for a non-array, ClosedError. O(1)."""
        with self._lock:
            self._open()
            try:
                self._lookup(array)
            except (ForeignBufferError, DoubleFreeError):
                return False
            return True

    def _slot_stack(self, slot: Slot) -> tuple[tuple[str, int, str], ...]:
        """The one frame a slot's allocation remembers, its line found from the offset."""
        code, lasti = slot.code, slot.lasti
        line = next((ln for s, e, ln in code.co_lines() if s <= lasti < e), None)
        return ((code.co_filename, code.co_firstlineno if line is None else line,
                 code.co_name),)

    def _describe(self, rec: _Record | Slot) -> str:
        if type(rec) is _Record:
            return rec.describe()
        info = self._info(rec)
        return (f"the {info.size}-byte allocation at phys {info.phys:#x} (align {info.align}, "
                f"node {info.node}) allocated at {info.caller}")

    def _info(self, rec: _Record | Slot) -> AllocationInfo:
        delta = self._virt_delta
        if type(rec) is _Record:
            return AllocationInfo(
                phys=rec.phys, address=rec.phys + delta, size=rec.size, reserved=rec.reserved,
                align=rec.align, node=rec.nid, requested_node=rec.node,
                caller=_site(rec.stack[0] if rec.stack else None),
                stack=tuple(_site(f) for f in rec.stack), seq=rec.seq)
        assert type(rec) is Slot
        site = _site(self._slot_stack(rec)[0])
        return AllocationInfo(
            phys=rec.phys, address=rec.phys + delta, size=rec.size, reserved=rec.csize,
            align=self._align if rec.align is None else rec.align, node=rec.slab.nid,
            requested_node=None, caller=site, stack=(site,), seq=rec.seq)

    def _all_live(self) -> list[_Record | Slot]:
        """Every live record and slot, in allocation order. O(live log live)."""
        out: list[_Record | Slot] = list(self._live.values())
        if self._byid:
            out += self._byid.values()
            out.sort(key=lambda r: r.seq)
        return out

    def info(self, array: np.ndarray) -> AllocationInfo:
        """The :class:`AllocationInfo` of a live allocation (the array or a view :meth:`free`
        accepts). Raises like :meth:`free`. O(1)."""
        with self._lock:
            self._open()
            return self._info(self._lookup(array))

    def live(self) -> list[AllocationInfo]:
        """Every live allocation, in allocation order. O(live log live)."""
        with self._lock:
            self._open()
            return [self._info(rec) for rec in self._all_live()]

    def leaks(self) -> list[LeakSite]:
        """Live allocations grouped by the call site that made them, most bytes first.

        Call it when everything should have been freed. In debug mode ``stack`` holds
        :data:`STACK_DEPTH` frames, otherwise one. Raises ClosedError. O(live log live).
        """
        with self._lock:
            self._open()
            return self._leak_sites()

    def format_leaks(self) -> str:
        """:meth:`leaks` as text (empty string if nothing is live). Raises ClosedError.
        O(live log live)."""
        with self._lock:
            self._open()
            return self._format_leaks()

    def _leak_sites(self) -> list[LeakSite]:
        groups: dict[str, list[AllocationInfo]] = {}
        for rec in self._all_live():
            info = self._info(rec)
            groups.setdefault(info.caller, []).append(info)
        sites = [LeakSite(site, len(infos), sum(i.size for i in infos), infos[0].stack,
                          tuple(i.phys for i in infos))
                 for site, infos in groups.items()]
        sites.sort(key=lambda s: (-s.nbytes, -s.count, s.site))
        return sites

    def _format_leaks(self) -> str:
        sites = self._leak_sites()
        if not sites:
            return ""
        count = sum(s.count for s in sites)
        total = sum(s.nbytes for s in sites)
        lines = [f"{count} allocation(s) still live ({total} bytes), by call site:"]
        for s in sites:
            lines.append(f"  {s.count} x, {s.nbytes} bytes, allocated at {s.site}"
                         + "".join(f"\n      {frame}" for frame in s.stack[1:]))
        return "\n".join(lines)

    # -- scopes and bulk operations ----------------------------------------------------------

    @contextlib.contextmanager
    def scope(self) -> Iterator[Arena]:
        """Context manager: on exit, free everything this thread allocated inside it and did
        not free yet (also when an exception leaves the block). Scopes nest; each thread has
        its own. Yields the arena. Raises like :meth:`reset` on exit. O(allocations inside)."""
        recs: list[_Record | tuple[Slot, int]] = []
        ident = threading.get_ident()
        with self._lock:
            self._open()
            self._scopes.setdefault(ident, []).append(recs)
        try:
            yield self
        finally:
            where = _capture(sys._getframe(2), self._stack_depth)
            with self._lock:
                stack = self._scopes[ident]
                for i in range(len(stack) - 1, -1, -1):  # by identity: empty lists are equal
                    if stack[i] is recs:
                        del stack[i]
                        break
                if not stack:
                    del self._scopes[ident]
                if not self._closed:
                    live = self._live
                    self._free_records([r for r in recs
                                        if type(r) is _Record and live.get(r.phys) is r], where)
                    # A slot is the scope's while it holds the allocation made in it.
                    self._free_slots([r[0] for r in recs if type(r) is tuple
                                      and r[0].seq == r[1] and r[0].view is not None])

    def reset(self) -> None:
        """Free every live allocation at once (in debug mode: checked, poisoned, quarantined)
        and give every slab back (:meth:`arena.slab.SlabAllocator.shrink`).

        Raises :class:`arena.errors.CorruptionError` (debug; nothing freed), ClosedError.
        O(live × regions + slabs).
        """
        where = _capture(sys._getframe(1), self._stack_depth)
        with self._lock:
            self._open()
            self._free_records(list(self._live.values()), where)
            self._free_slots(list(self._byid.values()))
            self._shrink()

    def _shrink(self) -> int:
        """``kmem_cache_shrink()``: give the empty slabs back; returns their bytes."""
        return 0 if self._slab is None else self._slab.shrink(self._put_slab_pages)

    def release(self) -> int:
        """Give the pages of free memory back to the OS (``MADV_DONTNEED``); returns the bytes
        released. Free memory is the free blocks and the empty slabs of the size-class caches,
        which then go back to the allocator (``kmem_cache_shrink()``) once every page was
        released. Only whole pages are released; they read as zero afterwards and cost no RAM
        until touched. Kernel counterpart: none. Raises OSError if ``madvise`` fails (pages
        released before stay released; no allocation or slab changes), ClosedError.
        O(free blocks + slabs)."""
        with self._lock:
            self._open()
            empty = [] if self._slab is None else self._slab.empty_slabs()
            runs = [(s, e) for s, e, _ in self._free_runs()]
            runs += [(sl.base, sl.base + sl.nbytes) for sl in empty]
            ps = self._page_size
            total = 0
            for start, end in runs:
                s = _round_up(start, ps)
                e = end & -ps
                if s < e:
                    self._pm.release(s, e - s)
                    total += e - s
            self._shrink()
            return total

    # -- the hand-over (issue 5) -------------------------------------------------------------

    def handover(self, *, max_order: int = MAX_PAGE_ORDER) -> BuddyAllocator:
        """Move the running arena to the page allocator (the end of boot).

        Kernel counterpart: ``memblock_free_all()``. Every free page goes to a new
        :class:`arena.buddy.BuddyAllocator` (blocks of up to ``2**max_order`` pages), empty
        slabs included; from now on new slabs of the size-class caches are buddy blocks, and
        every other allocation is a buddy block of whole pages (the request plus red zones,
        rounded up to a power of two of pages, aligned to its own size), so the budget counts
        whole blocks and requests above ``page_size << max_order`` fail with
        :class:`arena.errors.ArenaMemoryError`. Allocations made before stay valid; freeing
        one gives its whole pages to the page allocator (``memblock_free_late()``: pages it
        shares with a neighbouring block are not returned, as in the kernel). Returns the
        buddy allocator (also :attr:`buddy`). Raises :class:`arena.errors.HandoverError` (a
        ``RuntimeError``) if called twice, ClosedError. O(regions + blocks).
        """
        max_order = int_arg("max_order", max_order)
        with self._lock:
            self._open()
            if self._buddy is not None:
                raise HandoverError("handover() was already called")
            buddy = BuddyAllocator(self._pm, page_size=self._page_size, max_order=max_order)
            self._shrink()
            self._mb.free_all(buddy)
            self._buddy = buddy
            return buddy

    # -- statistics --------------------------------------------------------------------------

    def _free_runs(self) -> list[tuple[int, int, int]]:
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

    def _free_summary(self) -> tuple[int, int]:
        sizes = [e - s for s, e, _ in self._free_runs()]
        return sum(sizes), max(sizes, default=0)

    def stats(self) -> ArenaStats:
        """A frozen :class:`ArenaStats` snapshot. Raises ClosedError.

        O(live + regions + pages / 4096 for the residency scan).
        """
        with self._lock:
            self._open()
            runs = self._free_runs()
            per_alloc: dict[int, list[int]] = {sl.nid: [0, 0] for sl in self._slices}
            for rec in self._live.values():
                acc = per_alloc[rec.nid]
                acc[0] += rec.reserved
                acc[1] += 1
            requested = self._requested   # of the memblock/buddy blocks; slots counted here
            for slot in self._byid.values():
                acc = per_alloc[slot.slab.nid]
                acc[0] += slot.csize
                acc[1] += 1
                requested += slot.size
            nodes = []
            for sl in self._slices:
                sizes = [e - s for s, e, n in runs if n == sl.nid]
                nodes.append(NodeStats(
                    nid=sl.nid, capacity=sl.size, bytes_allocated=per_alloc[sl.nid][0],
                    free_bytes=sum(sizes), largest_free_block=max(sizes, default=0),
                    live_allocations=per_alloc[sl.nid][1],
                    resident_bytes=self._pm.resident_bytes(sl.phys_start, sl.size)))
            sizes = [e - s for s, e, _ in runs]
            free = sum(sizes)
            frag = 1.0 - sum(s * s for s in sizes) / (free * free) if free else 0.0
            budget = self._budget
            return ArenaStats(
                capacity=self._capacity, bytes_requested=requested,
                bytes_allocated=self._allocated, total_bytes_allocated=self._total_allocated,
                free_bytes=free, largest_free_block=max(sizes, default=0),
                fragmentation=frag, live_allocations=len(self._live) + len(self._byid),
                num_allocations=self._count, max_memory=self._peak, per_node=tuple(nodes),
                resident_bytes=sum(n.resident_bytes for n in nodes), budget=budget,
                budget_remaining=None if budget is None else budget - self._allocated,
                quarantined_bytes=self._quarantined,
                slab_bytes=0 if self._slab is None else self._slab.slab_bytes)

    def print_stats(self, file: IO[str] | None = None) -> None:
        """Print :meth:`stats` as a table (one column per node when there are several)."""
        st = self.stats()
        names = [f.name for f in fields(ArenaStats) if f.name != "per_node"]
        lines = [f"{'arena':<22}{'total':>20}"]
        for name in names:
            value = getattr(st, name)
            if isinstance(value, float):
                text = f"{value:.4f}"
            elif value is None:
                text = "-"
            else:
                text = f"{value:,}"
            lines.append(f"{name:<22}{text:>20}")
        if len(st.per_node) > 1:
            node_fields = [f.name for f in fields(NodeStats) if f.name != "nid"]
            lines.append("")
            lines.append(f"{'node':<22}" + "".join(f"{n.nid:>16}" for n in st.per_node))
            for name in node_fields:
                lines.append(f"{name:<22}"
                             + "".join(f"{getattr(n, name):>16,}" for n in st.per_node))
        print("\n".join(lines), file=file if file is not None else sys.stdout)

    def dump(self, file: IO[str] | None = None) -> None:
        """Print memblock's ``memblock_dump_all()`` text (and, after :meth:`handover`, the
        page allocator's ``/proc/buddyinfo``; with slabs, the size-class caches'
        ``/proc/slabinfo``). O(regions + slabs)."""
        with self._lock:
            self._open()
            text = self._mb.dump_all(log=False)
            if self._buddy is not None:
                text += "\n" + self._buddy.buddyinfo(self._mb).rstrip("\n")
            if self._slab is not None and self._slab.nslabs:
                text += "\n" + self._slab.slabinfo().rstrip("\n")
        print(text, file=file if file is not None else sys.stdout)

    # -- checks ------------------------------------------------------------------------------

    def _bad_bytes(self, phys: int, size: int, byte: int) -> tuple[int, int, int] | None:
        """``(first, last, value at first)`` offsets of bytes differing from ``byte``."""
        if size <= 0:
            return None
        data = self._pm.read(phys, size)
        if data == bytes((byte,)) * size:
            return None
        arr = np.frombuffer(data, np.uint8)
        bad = np.flatnonzero(arr != byte)
        return int(bad[0]), int(bad[-1]), int(arr[bad[0]])

    def _check_redzones(self, rec: _Record) -> str | None:
        """Report of a live allocation's overwritten red zones, or None."""
        problems = []
        left = self._bad_bytes(rec.block, rec.phys - rec.block, RED_ACTIVE)
        if left is not None:
            before = rec.phys - rec.block - left[0]
            problems.append(f"{before} byte(s) before its start were written (first found: "
                            f"{left[2]:#04x} at -{before}, red zone {RED_ACTIVE:#04x})")
        end = rec.phys + rec.size
        right = self._bad_bytes(end, rec.block + rec.reserved - end, RED_ACTIVE)
        if right is not None:
            problems.append(f"{right[1] + 1} byte(s) past its end were written (first found: "
                            f"{right[2]:#04x} at +{right[0]}, red zone {RED_ACTIVE:#04x})")
        if not problems:
            return None
        return (f"overrun of {rec.describe()}: " + "; ".join(problems)
                + "\n  allocated at:" + _fmt_stack(rec.stack))

    def _check_poison(self, rec: _Record) -> str | None:
        """Report of a write to a quarantined (freed) block, or None."""
        bad = self._bad_bytes(rec.block, rec.reserved, POISON_FREE)
        if bad is None:
            return None
        first, last = bad[0] - (rec.phys - rec.block), bad[1] - (rec.phys - rec.block)
        return (f"write after free to {rec.describe()}: bytes at offsets {first} .. {last} "
                f"were written after it was freed (found {bad[2]:#04x}, poison "
                f"{POISON_FREE:#04x})\n  allocated at:" + _fmt_stack(rec.stack)
                + "\n  freed at:" + _fmt_stack(rec.freed_at))

    def _corruption(self, reports: list[str]) -> CorruptionError:
        err = CorruptionError(
            f"arena: {len(reports)} memory corruption(s) found (nothing was changed; "
            f"check(repair=True) restores the patterns):\n" + "\n".join(reports))
        err.reports = tuple(reports)  # type: ignore[attr-defined]
        return err

    def check(self, *, repair: bool = False) -> list[str]:
        """Verify the arena: memblock's invariants, the bookkeeping and, in debug mode, every
        live red zone and every quarantined block.

        Returns the corruption reports found (empty when clean). Without ``repair`` any
        corruption raises :class:`arena.errors.CorruptionError` (with ``.reports``) and changes
        nothing; with ``repair=True`` the red zones and poison are restored and the reports
        returned. A broken internal invariant raises ``AssertionError`` (or memblock's
        :class:`arena.errors.MemblockBug`) with a dump. O(live + quarantined bytes + regions).
        """
        repair = bool_arg("repair", repair)
        with self._lock:
            self._open()
            if self._buddy is None:
                self._mb.check()
            else:
                self._buddy.check()
            self._check_bookkeeping()
            reports: list[str] = []
            if not self._debug:
                return reports
            pm = self._pm
            for rec in self._live.values():
                r = self._check_redzones(rec)
                if r:
                    reports.append(r)
                    if repair:
                        if rec.phys > rec.block:
                            pm.fill(rec.block, rec.phys - rec.block, RED_ACTIVE)
                        end = rec.phys + rec.size
                        pm.fill(end, rec.block + rec.reserved - end, RED_ACTIVE)
            for rec in self._quarantine:
                r = self._check_poison(rec)
                if r:
                    reports.append(r)
                    if repair:
                        pm.fill(rec.block, rec.reserved, POISON_FREE)
            if reports and not repair:
                raise self._corruption(reports)
            return reports

    def _check_bookkeeping(self) -> None:
        problem = self._bookkeeping_problem()
        if problem:
            raise AssertionError(f"arena invariant broken: {problem}\n{self!r}\n"
                                 + self._mb.dump_all(log=False))

    def _bookkeeping_problem(self) -> str | None:
        """The first broken bookkeeping invariant in words, or None. O(live + slots)."""
        live, byid, slab = self._live, self._byid, self._slab
        if sum(r.reserved for r in live.values()) + sum(
                s.csize for s in byid.values()) != self._allocated:
            return "bytes_allocated differs from the sum of the live blocks and slots"
        if sum(r.size for r in live.values()) != self._requested:
            return "bytes_requested differs from the sum of the live sizes"
        if sum(r.reserved for r in self._quarantine) != self._quarantined:
            return "quarantined bytes differ from the sum of the quarantined blocks"
        if any(live.get(r.phys) is not r for r in live.values()):
            return "a live record is filed under the wrong address"
        if slab is None:
            if byid:
                return "slots are live but the arena has no size-class caches"
        else:
            problem = slab.problem()
            if problem:
                return f"size-class caches: {problem}"
            for key, slot in byid.items():
                align = self._align if slot.align is None else slot.align
                if slot.view is None or id(slot.view) != key or slot.phys % align or \
                        slot.seq >= self._count:
                    return f"{slot!r} is live under the wrong key, misaligned or misnumbered"
            if sum(1 for _ in slab.in_use()) != len(byid):
                return "a slot in use is not filed as live"
        # Blocks (records, quarantined records, slabs) are disjoint, inside the memory and
        # (memblock blocks) reserved.
        blocks: list[tuple[int, int, int, _Record | Slab]] = [
            (r.block, r.reserved, r.order, r) for r in list(live.values())
            + list(self._quarantine)]
        if slab is not None:
            blocks += [(sl.base, sl.nbytes, sl.order, sl) for sl in slab.slabs()]
        prev_end = -1
        for block, nbytes, order, what in sorted(blocks, key=lambda b: b[0]):
            if block < prev_end or not self._pm.contains(block, nbytes):
                return f"the block of {what!r} overlaps another or lies outside the memory"
            if type(what) is _Record and (
                    not block <= what.phys <= what.phys + what.size <= block + nbytes
                    or what.phys % what.align):
                return f"{what.describe()} is misplaced or misaligned in its block"
            if order < 0 and self._buddy is None and not self._reserved_covers(block, nbytes):
                return f"the block of {what!r} is not reserved in memblock"
            prev_end = block + nbytes
        return None

    def _reserved_covers(self, base: int, size: int) -> bool:
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

    # -- lifetime ----------------------------------------------------------------------------

    def close(self, *, defer: bool = False) -> None:
        """Unmap the memory and retire the arena. Idempotent.

        In debug mode, allocations still live are reported with a ``ResourceWarning`` (by call
        site). If numpy arrays of the arena are still alive the memory cannot be unmapped:
        without ``defer`` this raises :class:`arena.errors.LiveViewsError` and nothing changes;
        with ``defer=True`` (what leaving a ``with`` block does) the arena is retired anyway and
        the mapping goes away with the last array and the arena object (garbage collection).
        Afterwards every method raises ClosedError. O(live).
        """
        defer = bool_arg("defer", defer)
        with self._lock:
            if self._closed:
                return
            # The arena's own references to the memory go first: the arrays of live slots
            # (kept for the free fast path; weakly referenced meanwhile) and the slab views.
            held = [(key, slot, weakref.ref(slot.view)) for key, slot in self._byid.items()]
            for _, slot, _ in held:
                slot.view = None
            if self._slab is not None:
                self._slab.detach_views()
            try:
                self._pm.close()
            except LiveViewsError:
                if not defer:
                    self._reattach(held)
                    raise  # nothing changed
            leaks = self._format_leaks() if self._debug else ""
            self._closed = True
            self._live.clear()
            self._byid.clear()
            self._fast = {}
            self._fastfree = {}
            if self._slab is not None:
                self._slab.retire()   # a thread that found a cache before: no free slot now
            self._slab = None
            self._quarantine.clear()
            self._freed.clear()
        if leaks:
            warnings.warn(f"Arena closed with leaks: {leaks}", ResourceWarning, stacklevel=2)

    def _reattach(self, held: list[tuple[int, Slot, weakref.ref]]) -> None:
        """Undo the first step of a refused :meth:`close`: slab views again, and each live
        slot its array (a new view of its bytes if nobody but the arena held the old one)."""
        assert self._slab is not None or not held
        if self._slab is None:
            return
        self._slab.attach_views()
        byid = self._byid
        for key, slot, ref in held:
            view = ref()
            if view is None:
                del byid[key]
                view = slot.sv[slot.off:slot.off + slot.size]
                byid[id(view)] = slot
            slot.view = view

    def __enter__(self) -> Arena:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(defer=True)
