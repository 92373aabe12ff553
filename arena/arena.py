"""The arena allocator: numpy buffers served by memblock over real "physical memory".

Kernel counterpart: none as a whole. An :class:`Arena` maps a
:class:`arena.physmem.PhysicalMemory`, registers each NUMA slice with ``memblock_add_node()``,
allows the region arrays to grow (``memblock_allow_resize()``) and places fresh memory with
``memblock_alloc_range_nid()`` (``memblock_alloc_try_nid()`` for ``node=N``,
``memblock_alloc_exact_nid_raw()`` for ``strict_node=True``), so placement follows the
kernel's rules. After :meth:`Arena.handover` (``memblock_free_all()``) fresh memory comes from
the buddy page allocator.

Once memory is placed it is recycled, as the kernel's page and slab allocators recycle it
after boot: every request is rounded up to a *size class* — the kmalloc classes up to 8 KiB
(:mod:`arena.slab`), page-multiple classes above (:mod:`arena.largecache`) — and a class keeps
the units given back to it for the next request of its size. Only a request whose class has
nothing free reaches memblock. Debug mode and ``slab=False`` bypass the classes: every request
is then a memblock reservation of its own at the kernel's address (:class:`arena.debug.Record`).

Lifetime: with ``lifetime="gc"`` (the default) a unit is reused once the last numpy array
viewing it is gone (the array handed out and every view derived from it — slices,
``.view``, ``.reshape``, memoryviews, ``np.frombuffer`` of them); :meth:`Arena.free`,
:meth:`Arena.reset` and a scope's end give up the arena's claim at once, so the memory is
reused when its last view dies and a stale view never aliases a new allocation. With
``lifetime="manual"`` :meth:`Arena.free` makes the unit reusable at once (C semantics).

This module holds the public face, the hot path, scopes and the lifetime of the arena itself;
the class's other parts are mixins in modules of their own: :mod:`arena.arena_place` (the
general allocation path), :mod:`arena.arena_release` (giving memory back: frees, collections,
page sources), :mod:`arena.arena_inspect` (lookups, statistics, checks). The layers behind it
each have their own module: :mod:`arena.unit` (the unit every layer hands around),
:mod:`arena.slab` and :mod:`arena.largecache` (size classes), :mod:`arena.debug` (red zones,
poison, quarantine), :mod:`arena.tracking` (callers, leaks), :mod:`arena.stats` (statistics).

Invariants (checked by :meth:`Arena.check`):

* Every allocation is a unit handed out once: a slot of a slab, a large block, or a record;
  units are disjoint and inside the memory; a record's (and a large block's) memory is
  reserved in memblock until it goes back.
* ``bytes_allocated + held_bytes`` is the sum of ``csize`` over the units handed out and not
  yet back; ``held_bytes`` the sum over the held ones (freed, still viewed); the budget bounds
  the first sum.
* Every unit handed out is filed under ``id()`` of its array (the array the arena made; views
  derived from it name it as their ``base``), so that :meth:`Arena.free` finds it in O(1).
* Debug mode: red zones hold ``0xcc`` while the allocation lives; a freed block holds ``0x6b``
  while it waits in the quarantine; a raw allocation (``zero=False``) starts as ``0x5a``.

Every error leaves the arena exactly as it was. With ``ARENA_CHECK=1`` every allocation and free
ends with the bookkeeping part of :meth:`Arena.check`.

Thread safety: one lock around every state change. It is re-entrant because a garbage
collection can run inside the arena's general path (which makes objects the collector tracks)
and call finalizers that free memory of the same arena: a plain lock would deadlock there. The
hot path makes such objects only after its state is consistent. Fork safety: the mapping is
``MAP_PRIVATE``; every arena's lock is held across ``fork()`` (taken all or none at a time) and
renewed in the child.
"""

from __future__ import annotations

import bisect
import contextvars
import gc
import os
import threading
import warnings
from collections import OrderedDict, deque
from typing import Any

import numpy as np

from arena._args import bool_arg, int_arg
from arena.buddy import MAX_PAGE_ORDER, BuddyAllocator
from arena.debug import (
    POISON_FREE,
    POISON_INUSE,
    RED_ACTIVE,
    REDZONE,
    Record,
)
from arena.errors import (
    ClosedError,
    HandoverError,
    LiveViewsError,
)
from arena.largecache import LargeCaches
from arena.memblock import NUMA_NO_NODE, Memblock, MemblockFlags
from arena.numpy_hook import NumpyAllocator
from arena.physmem import PhysicalMemory
from arena.redzone import RecordIndex
from arena.slab import SlabAllocator, Slot
from arena.stats import ArenaStats, ClassStats, NodeStats
from arena.tmtrace import TRACEMALLOC_DOMAIN, listen, untrack
from arena.tmtrace import before_snapshot as _before_snapshot
from arena.tmtrace import track as _tm_track
from arena.tracking import (
    HIDDEN_FRAMES,
    STACK_DEPTH,
    AllocationInfo,
    Frame,
    LeakSite,
    format_leaks,
    leak_sites,
)
from arena.unit import FREE, HELD, LIVE, Unit

__all__ = [
    "Arena",
    "ArenaStats",
    "ClassStats",
    "NodeStats",
    "TRACEMALLOC_DOMAIN",
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
    "LIFETIMES",
]

from arena._arena_util import (
    _GC_MIN_BYTES,
    _GC_MIN_UNITS,
    _NO_LIMIT,
    _U8,
    ARENA_PHYS_BASE,
    DECAY_SECONDS,
    FREED_MEMORY,
    LIFETIMES,
    _align_arg,
    _arena_args,
    _ArenaArgs,
    _caller,
    _getrefcount,
    _ndarray,
    _round_up,
    _wref,
)
from arena.arena_inspect import Inspection
from arena.arena_monitor import Monitoring
from arena.arena_place import Placement
from arena.arena_registry import collect_all, register
from arena.arena_release import Release

# -- tracemalloc: a flag the hot path tests (kept by arena.tmtrace) --------------------------------

_TRACING = False


def _set_tracing(on: bool) -> None:
    global _TRACING
    _TRACING = on


listen(_set_tracing)
_before_snapshot(collect_all)


def _boot(size: int, nodes: Any, hugepages: bool,
          physmem: PhysicalMemory | None = None) -> tuple[PhysicalMemory, Memblock]:
    """The arena's memory: a :class:`PhysicalMemory` at :data:`ARENA_PHYS_BASE` (or
    ``physmem``, a process's window of a shared arena), each node slice added to a memblock
    (``memblock_add_node()``) that may grow its arrays (``memblock_allow_resize()``)."""
    pm = physmem or PhysicalMemory(size, phys_base=ARENA_PHYS_BASE, nodes=nodes,
                                   hugepages=hugepages)
    slices = pm.slices
    max_numnodes = 64
    while max_numnodes <= slices[-1].nid:
        max_numnodes <<= 1
    mb = Memblock(pm, page_size=pm.page_size, max_numnodes=max_numnodes)
    for sl in slices:
        mb.add_node(sl.phys_start, sl.size, sl.nid, MemblockFlags.NONE)
    mb.allow_resize()
    return pm, mb


class _Scope:
    """What :meth:`Arena.scope` returns: a context manager freeing, on exit, what its context
    (thread or asyncio task) allocated inside it."""

    __slots__ = ("arena", "units", "token")

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.units: list[tuple[Unit, int]] = []
        self.token: Any = None

    def __enter__(self) -> Arena:
        a = self.arena
        if a._closed:
            raise ClosedError("the arena is closed")
        lock = a._lock
        lock.acquire()
        a._nscopes += 1
        lock.release()
        self.token = a._scopevar.set(self.units)
        return a

    def __exit__(self, *exc: object) -> None:
        a = self.arena
        try:
            a._scopevar.reset(self.token)
        except ValueError:   # left in another context than entered: restore what it saw
            a._scopevar.set(None)
        lock = a._lock
        lock.acquire()
        try:
            a._nscopes -= 1
            if self.units and not a._closed:
                units = [u for u, seq in self.units
                         if u.seq == seq and u.state == LIVE and u not in a._pinned]
                if units:
                    a._free_units(units, _caller(1))
        finally:
            lock.release()


class Arena(Placement, Release, Inspection, Monitoring):
    """An arena allocator over memblock: numpy buffers with real alignment and node placement.

    ``Arena(size, *, nodes=None, budget=None, align=64, debug=None, hugepages=False,
    quarantine=None, slab=True, lifetime="gc", track_callers=False, retain=None,
    decay=10.0, redzone=16, guard="end", shared=False)``

    * ``size`` — bytes (an int or a string such as ``"1 GiB"``), rounded up to whole pages. The
      memory is mapped ``MAP_NORESERVE``: only pages touched cost RAM.
    * ``nodes`` — NUMA slices as :class:`arena.physmem.PhysicalMemory` takes them (a count, a
      list of sizes or of fractions); each slice is added to memblock with its node id and
      bound to the host node of the same id where the host has it.
    * ``budget`` — at most this many bytes allocated (``bytes_allocated + held_bytes`` of
      :class:`ArenaStats`: requests rounded up to their size class, red zones included);
      ``None`` = no limit.
    * ``align`` — the default alignment and the granule every request is rounded up to
      (a power of two, 1 .. 1 GiB).
    * ``debug`` — memory-correctness mode (red zones, poisoning, quarantine, allocation stacks,
      leak warnings); ``None`` reads the environment variable ``ARENA_DEBUG`` (``1`` = on).
      ``"guard"``: debug mode with each allocation against a ``PROT_NONE`` guard page, and
      freed blocks ``PROT_NONE`` while quarantined (:mod:`arena.guard`): the faulty access
      itself faults. ``redzone`` — bytes of red zone on each side in debug mode (8 .. a
      page); ``guard`` — ``"end"`` (overruns fault) or ``"start"`` (underruns fault). Both
      are checked always and used only in debug mode (see ``docs/debugging.md``).
    * ``hugepages`` — ask for transparent huge pages (``MADV_HUGEPAGE``).
    * ``quarantine`` — bytes of freed blocks held back before reuse in debug mode (default 1/32
      of the capacity).
    * ``slab`` — serve requests from the size classes (``alloc(64)`` is then a list pop and an
      array). ``False`` makes every allocation a memblock reservation at the kernel's
      boot-time address (what a memblock model or a boot-log replay needs). Debug mode always
      uses memblock.
    * ``lifetime`` — ``"gc"``: memory is reused when the last array viewing it is gone;
      ``"manual"``: at :meth:`free` (faster; a stale view then aliases later allocations).
    * ``track_callers`` — record the allocating line of each allocation (for :meth:`info` and
      :meth:`leaks`; always on in debug mode).
    * ``retain`` — bytes of free large blocks kept for reuse at most (default a quarter of the
      capacity); ``decay`` — seconds a retained block may stay unused before it goes back
      (``None`` = only by :meth:`release_unused` and the limit).
    * ``shared`` — ``True`` makes one arena for many processes instead (a
      :class:`arena.shared.SharedArena`; its arrays cross process boundaries without a copy).

    The memory starts at physical address :data:`ARENA_PHYS_BASE` (1 GiB). ``memblock`` and
    ``physmem`` stay reachable for power users; ``buddy`` after :meth:`handover`. Use as a
    context manager or call :meth:`close`. Raises TypeError/ValueError for bad arguments,
    :class:`arena.errors.ArenaMemoryError` if the memory cannot be mapped.
    """

    def __new__(cls, *args: Any, shared: bool = False, **kwargs: Any) -> Arena:
        """``Arena(..., shared=True)`` makes a :class:`arena.shared.SharedArena` (one arena
        for many processes, see that class); otherwise an :class:`Arena`."""
        if shared is True:
            from arena.shared import SharedArena
            return SharedArena(*args, **kwargs)  # type: ignore[return-value]
        if shared is not False:
            raise TypeError(f"shared must be a bool, not {type(shared).__name__}")
        return super().__new__(cls)

    def __init__(
        self,
        size: int | str,
        *,
        shared: bool = False,
        _physmem: PhysicalMemory | None = None,
        nodes: Any = None,
        budget: int | str | None = None,
        align: int = 64,
        debug: bool | str | None = None,
        hugepages: bool = False,
        quarantine: int | str | None = None,
        slab: bool = True,
        lifetime: str = "gc",
        track_callers: bool = False,
        retain: int | str | None = None,
        decay: float | None = DECAY_SECONDS,
        redzone: int | None = None,
        guard: str = "end",
    ) -> None:
        args = _arena_args(size, _physmem, align, budget, debug, redzone, guard, hugepages, slab,
                           track_callers, lifetime, quarantine, retain, decay)
        pm, mb = _boot(args.size, nodes, args.hugepages, _physmem)
        self._init_memory(pm, mb, args)
        self._init_bookkeeping(args.budget)
        self._init_classes(args.slab and not args.debug, args.retain, args.decay)
        self._serial = register(self)

    def _init_memory(self, pm: PhysicalMemory, mb: Memblock, args: _ArenaArgs) -> None:
        """The memory, its memblock and the settings the arguments chose."""
        slices = pm.slices
        self._pm = pm
        self._mb = mb
        self._buddy: BuddyAllocator | None = None
        self._slices = tuple(slices)
        self._slice_starts = [sl.phys_start for sl in slices]
        self._nids = frozenset(sl.nid for sl in slices)
        self._page_size = pm.page_size
        self._capacity = pm.size
        self._align = args.align
        self._budget = args.budget
        self._debug = args.debug
        self._guard = args.guard      # "end", "start", or None (no guard pages)
        self._redzone = args.redzone
        self._index = RecordIndex()   # debug records by address (neighbours for blame)
        self._gc = args.lifetime == "gc"
        self._track = args.debug or args.track_callers
        self._quarantine_limit = args.size // 32 if args.quarantine is None else args.quarantine
        self._stack_depth = STACK_DEPTH if args.debug else 1
        self._lock = threading.RLock()
        self._closed = False
        # Arrays are made straight over the mapping's exporter (their base is then not an
        # ndarray, so views derived from them keep them alive); _mv zeroes small units.
        self._buf, self._delta = pm.exporter()
        self._mv: Any = memoryview(self._buf).cast("B")
        self._virt_delta = (pm.view(pm.phys_base, 0).__array_interface__["data"][0]
                            - pm.phys_base)

    def _init_bookkeeping(self, budget: int | None) -> None:
        """The bookkeeping of an empty arena: nothing handed out, nothing held."""
        self._anchors: dict[int, Unit] = {}       # id(unit.anchor) -> unit, for every anchor
        # Garbage-collected lifetime: units handed out since a collection last found them
        # viewed (newest last), and the bounds that start a full collection.
        self._young: list[Unit] = []
        self._young_mark: int = 0   # young[:mark] were found viewed by the last young collection
        self._gc_bytes = _GC_MIN_BYTES
        self._gc_units: int = _GC_MIN_UNITS
        self._collecting: bool = False   # a full collection is running
        self._records: dict[int, Record] = {}     # phys -> record handed out
        self._quarantine: deque[Record] = deque()
        self._quarantined = 0
        self._freed: OrderedDict[int, tuple[Frame, ...]] = OrderedDict()
        self._allocated: int = 0   # bytes of the units handed out and not back (held too)
        self._held: int = 0
        self._total_allocated: int = 0
        self._peak: int = 0
        self._count: int = 0
        self._pending: list[str] = []   # corruption found while giving back a dead unit
        self._pinned: set[Unit] = set()   # units numpy holds (numpy_allocator): numpy frees them
        self._autocheck = os.environ.get("ARENA_CHECK") == "1"
        self._limit = _NO_LIMIT if budget is None else budget
        self._scopevar: contextvars.ContextVar[list[tuple[Unit, int]] | None] = \
            contextvars.ContextVar(f"arena-scope-{id(self):#x}", default=None)
        self._nscopes: int = 0

    def _init_classes(self, on: bool, retain: int, decay: float | None) -> None:
        """The size classes (none in debug mode or with slab=False: every request is then a
        reservation of its own) and the hot path's table of request size -> cache (empty:
        every call takes the general path)."""
        self._slab: SlabAllocator | None = None
        self._large: LargeCaches | None = None
        self._fast: dict[int, Any] = {}
        if not on:
            return
        pm, align = self._pm, self._align
        self._slab = SlabAllocator(pm, list(self._slices), page_size=pm.page_size,
                                   fast_align=align, granule=align, buf_delta=self._delta,
                                   keep_empty=retain // 16)
        self._large = LargeCaches([sl.nid for sl in self._slices], pm.page_size, limit=retain,
                                  decay=decay)
        if not self._autocheck:
            self._fast = dict(self._slab.fast)

    # -- properties --------------------------------------------------------------------------

    @property
    def memblock(self) -> Memblock:
        """The :class:`arena.memblock.Memblock` placing the memory (power users)."""
        return self._mb

    @property
    def physmem(self) -> PhysicalMemory:
        """The :class:`arena.physmem.PhysicalMemory` holding the bytes (power users)."""
        return self._pm

    @property
    def slab(self) -> SlabAllocator | None:
        """The small size classes (:class:`arena.slab.SlabAllocator`), or ``None`` (debug
        mode, ``slab=False``, closed)."""
        return self._slab

    @property
    def large(self) -> LargeCaches | None:
        """The large size classes (:class:`arena.largecache.LargeCaches`), or ``None``."""
        return self._large

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
    def guard(self) -> str | None:
        """Guard mode's side (``"end"`` or ``"start"``), or ``None`` when not in guard mode."""
        return self._guard

    @property
    def lifetime(self) -> str:
        """``"gc"`` or ``"manual"``."""
        return "gc" if self._gc else "manual"

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
                f"{self._nlive()} live, {self._allocated - self._held} bytes "
                f"allocated, lifetime={self.lifetime}{dbg}{state}>")

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

    # -- the hot path ------------------------------------------------------------------------

    def alloc(self, nbytes: int, *, align: int | None = None, node: int | None = None,
              strict_node: bool = False, zero: bool = True) -> np.ndarray:
        """Allocate ``nbytes`` bytes; returns a writable 1-D uint8 array of them.

        Kernel counterpart: ``kmalloc_node()`` for the small size classes, a large class's
        free list above them; fresh memory from ``memblock_alloc_try_nid()``
        (``strict_node``: ``memblock_alloc_exact_nid_raw()``), after :meth:`handover`
        ``alloc_pages_node()``.

        * ``align`` — power of two, 1 B .. 1 GiB (default: the arena's ``align``); the physical
          and the real virtual address are both multiples of it.
        * ``node`` — prefer this node and fall back to any node (``None`` = any node);
          ``strict_node=True`` never falls back (needs ``node``).
        * ``zero`` — the bytes read 0; ``False`` leaves them as they are (``0x5a`` in debug
          mode).

        ``nbytes`` 0 is allowed (an empty array that still holds a unit). Raises
        TypeError/ValueError for bad arguments, :class:`arena.errors.BudgetExceededError` if
        the budget would be exceeded, :class:`arena.errors.ArenaMemoryError` if no memory
        fits, ClosedError; the arena is unchanged on error. O(1) for a size served before,
        else memblock's O(regions).
        """
        if align is None and node is None and strict_node is False and type(nbytes) is int:
            cache = self._fast.get(nbytes)
            if cache is not None and (zero is True or zero is False):
                # _take() for a uint8 array, written out: the extra call is a measurable part
                # of this path, the one programs use most (bench/RESULTS.md, measurements).
                lock = self._lock
                lock.acquire()
                try:
                    free = cache.free
                    if free:
                        unit = free[-1]
                        csize = unit.csize
                        allocated = self._allocated + csize
                        if allocated <= self._limit:
                            free.pop()
                            if unit.vsize == nbytes and unit.vdtype is _U8 and \
                                    unit.vshape is None and _getrefcount(unit.view) == 2:
                                view = unit.view   # handed out last; nobody holds it
                            else:
                                view = self._new_view(unit, nbytes, _U8, None)
                            if zero and unit.dirty:
                                zeros = cache.zeros
                                if zeros is None:
                                    view.fill(0)
                                else:
                                    boff = unit.boff
                                    self._mv[boff:boff + csize] = zeros
                            unit.dirty = True
                            unit.state = LIVE
                            unit.size = nbytes
                            unit.align = unit.node = None
                            unit.seq = seq = self._count
                            self._count = seq + 1
                            self._allocated = allocated
                            self._total_allocated += csize
                            if allocated > self._peak:
                                self._peak = allocated
                            if cache.large:
                                self._large.retained -= csize  # type: ignore[union-attr]
                            if self._gc:
                                self._young.append(unit)
                            cache.nalloc += 1
                            if _TRACING:
                                _tm_track(unit.phys + self._virt_delta, csize)
                            if self._nscopes or self._track:
                                self._after_take(unit, seq, 2)
                            return view
                finally:
                    lock.release()
                view = self._take(cache, nbytes, _U8, None, zero)
                if view is not None:
                    return view
        return self._alloc(nbytes, align, node, strict_node, zero, None, None)

    def alloc_array(self, shape: int | tuple[int, ...], dtype: Any = np.float64, *,
                    align: int | None = None, node: int | None = None,
                    strict_node: bool = False, zero: bool = True) -> np.ndarray:
        """Allocate an ndarray of ``shape`` and ``dtype`` (C order); like :meth:`alloc`.

        The alignment is at least ``dtype.alignment``. Object dtypes and dtypes of itemsize 0
        are refused (TypeError). Free it with :meth:`free` (or any view derived from it that
        covers it whole). O(1) for a size served before.
        """
        if align is None and node is None and strict_node is False:
            dt = _FAST_DTYPES.get(dtype)
            if dt is not None and dt.alignment <= self._align:
                nd: Any = None     # 1-D arrays are made (and kept for reuse) without reshape
                if type(shape) is int:
                    nbytes = shape * dt.itemsize if shape > 0 else 0
                elif type(shape) is tuple:
                    nbytes = dt.itemsize
                    for d in shape:
                        if type(d) is not int or d <= 0:
                            nbytes = 0
                            break
                        nbytes *= d
                    if len(shape) != 1:
                        nd = shape
                else:
                    nbytes = 0
                cache = self._fast.get(nbytes)
                if cache is not None and (zero is True or zero is False):
                    view = self._take(cache, nbytes, dt, nd, zero)
                    if view is not None:
                        return view
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise TypeError(f"dtype {dt} holds Python objects, which cannot live in raw memory")
        if dt.itemsize == 0:
            raise TypeError(f"dtype {dt!r} has itemsize 0: its arrays hold no bytes")
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

    def _take(self, cache: Any, nbytes: int, dtype: np.dtype, shape: tuple[int, ...] | None,
              zero: bool) -> np.ndarray | None:
        """Hand out the newest free unit of ``cache`` (a size class at the default alignment,
        any node) as an array of ``nbytes`` bytes of ``dtype`` (reshaped to ``shape`` unless
        ``None``); ``None`` if the cache has no free unit or the budget has no room (the general
        path then decides). Kernel counterpart: the fast path of ``slab_alloc_node()``.
        :meth:`alloc` has it written out for uint8. O(1)."""
        lock = self._lock
        lock.acquire()
        try:
            free = cache.free
            if not free:
                if not self._gc or not self._collect_young():
                    return None
                free = cache.free
                if not free:
                    return None
            unit = free[-1]
            csize = unit.csize
            allocated = self._allocated + csize
            if allocated > self._limit:
                return None
            free.pop()
            if unit.vsize == nbytes and unit.vdtype is dtype and unit.vshape == shape and \
                    _getrefcount(unit.view) == 2:
                view = unit.view    # the array handed out last, which nobody holds: again
            else:
                view = self._new_view(unit, nbytes, dtype, shape)
            if zero and unit.dirty:
                zeros = cache.zeros
                if zeros is None:
                    view.fill(0)   # a memset
                else:
                    boff = unit.boff
                    self._mv[boff:boff + csize] = zeros   # half the cost of fill() at 64 B
            unit.dirty = True
            unit.state = LIVE
            unit.size = nbytes
            unit.align = unit.node = None
            unit.seq = seq = self._count
            self._count = seq + 1
            self._allocated = allocated
            self._total_allocated += csize
            if allocated > self._peak:
                self._peak = allocated
            if cache.large:
                self._large.retained -= csize  # type: ignore[union-attr]
            if self._gc:
                self._young.append(unit)
            cache.nalloc += 1
            if _TRACING:
                _tm_track(unit.phys + self._virt_delta, csize)
            if self._nscopes or self._track:
                self._after_take(unit, seq, 3)
            return view
        finally:
            lock.release()

    def _new_view(self, unit: Unit, nbytes: int, dtype: np.dtype,
                  shape: tuple[int, ...] | None) -> np.ndarray:
        """A new array of a unit (a slice of its anchor), kept as the unit's ``view``."""
        anchor = unit.anchor
        if anchor is None:
            anchor = self._make_anchor(unit)
        view = anchor[:nbytes]   # a slice: half the cost of a new ndarray
        if dtype is not _U8:
            view = view.view(dtype)
        if shape is not None:
            view = view.reshape(shape)
        unit.view = view
        unit.vsize = nbytes
        unit.vshape = shape
        unit.vdtype = dtype
        return view

    def _after_take(self, unit: Unit, seq: int, depth: int) -> None:
        """The rarer steps of a hand-out: the scope and the caller. They make objects the
        garbage collector tracks, so they come last, with the state consistent (a collection
        may run finalizers that use this arena). ``depth``: frames from here to the caller."""
        if self._nscopes:
            units = self._scopevar.get()   # _scope_add(), written out: once per allocation
            if units is not None:
                units.append((unit, seq))
        if self._track:
            frame = _caller(depth)
            unit.code = frame.f_code if frame is not None else None
            unit.lasti = frame.f_lasti if frame is not None else 0

    def free(self, array: np.ndarray) -> None:
        """Free an allocation: ``array`` is the array :meth:`alloc` returned or a view derived
        from it that covers it whole (``a.view(np.float32)``, ``a.reshape(...)``, ``a[:]``).

        Kernel counterpart: ``kfree()``. Manual lifetime: the memory is reusable at once (the
        array stays a valid view of memory that is no longer yours). Garbage-collected
        lifetime: the arena gives up its claim now and reuses the memory once the last array
        viewing it is gone (it counts as ``held_bytes`` meanwhile). In debug mode the red
        zones are checked, the block is poisoned (``0x6b``) and quarantined.

        Raises TypeError (not an ndarray), :class:`arena.errors.ForeignBufferError` (not an
        allocation of this arena, or only part of one), :class:`arena.errors.DoubleFreeError`
        (freed already, or a stale array whose memory was freed and reused),
        :class:`arena.errors.CorruptionError` (debug: red zone or quarantined memory
        overwritten), ClosedError. Nothing changes on error. O(1).
        """
        lock = self._lock
        lock.acquire()
        try:
            unit = self._anchors.get(id(array.base)) if type(array) is _ndarray else None
            if unit is not None and unit.view is array and unit.state == LIVE \
                    and not self._gc and type(unit) is not Record:
                # The manual lifetime, written out: the arena holds the array it handed out, so
                # the identity test is exact (it keeps it, to hand it out again).
                self._allocated -= unit.csize
                if type(unit) is Slot:
                    unit.state = FREE
                    home = unit.home
                    home.append(unit)  # type: ignore[union-attr]
                    n = len(home)  # type: ignore[arg-type]
                    if n == 1 or n == unit.slab.nslots:   # was full, or is empty now
                        slab = unit.slab
                        if not slab.is_cur:
                            self._slab_changed(slab)
                else:
                    self._give(unit)
                if _TRACING:
                    untrack(unit.phys + self._virt_delta)
                if self._autocheck:
                    self._check_bookkeeping()
                return
            if unit is not None and unit.view is array and unit.state == LIVE \
                    and self._gc and not self._debug:
                # The garbage-collected lifetime: the caller holds the array, so the unit is
                # held until a collection finds it unviewed.
                unit.state = HELD
                self._held += unit.csize
                return
        finally:
            lock.release()
        frame = _caller(1)
        with self._lock:
            self._open()
            unit = self._lookup(array)
            self._free_units([unit], frame)

    # -- scopes and bulk operations ----------------------------------------------------------

    def scope(self) -> _Scope:
        """Context manager: on exit, free everything this context (thread, or asyncio task)
        allocated inside it and did not free yet (also when an exception leaves the block).
        Scopes nest; each thread and each asyncio task has its own (they follow
        ``contextvars``). Yields the arena. Raises like :meth:`reset` on exit. O(allocations
        inside)."""
        return _Scope(self)

    def reset(self) -> None:
        """Free every live allocation at once (in debug mode: checked, poisoned, quarantined;
        in the garbage-collected lifetime, allocations still viewed are held until their last
        view dies), then give every empty slab and every retained block back.

        Memory numpy holds (made inside :meth:`numpy_allocator`) stays: numpy frees it.
        Raises :class:`arena.errors.CorruptionError` (debug; nothing freed), ClosedError.
        O(live + slabs).
        """
        frame = _caller(1)
        with self._lock:
            self._open()
            self._collect_full()
            self._free_units([u for u in self._live_units() if u not in self._pinned], frame)
            self._reclaim()

    def release_unused(self) -> int:
        """Give unused memory back: every retained large block and empty slab to memblock (or
        the buddy allocator), then the pages of all free memory to the OS
        (``MADV_DONTNEED``). Returns the bytes that were resident (backed by RAM) in what was
        released. pyarrow's ``MemoryPool.release_unused``; kernel counterpart: none. Raises
        OSError if ``madvise`` fails (pages released before stay released; no allocation,
        cache or reservation changes), ClosedError. O(free ranges + slabs + pages / 4096)."""
        with self._lock:
            self._open()
            self._collect_full()
            before = self._pm.resident_bytes()
            runs = [(s, e) for s, e, _ in self._free_runs()]
            if self._large is not None:
                runs += [(b.phys, b.phys + b.nbytes) for b in self._large.free_blocks()]
            if self._slab is not None:
                runs += [(sl.base, sl.base + sl.nbytes) for sl in self._slab.empty_slabs()]
            ps = self._page_size
            for start, end in runs:     # every madvise first: a failure changes no state
                s = _round_up(start, ps)
                e = end & -ps
                if s < e:
                    self._pm.release(s, e - s, unviewed=True)
            self._reclaim()
            return max(before - self._pm.resident_bytes(), 0)

    def release(self) -> int:
        """The same as :meth:`release_unused` (its older name)."""
        return self.release_unused()

    # -- the hand-over -------------------------------------------------------------------------

    def handover(self, *, max_order: int = MAX_PAGE_ORDER) -> BuddyAllocator:
        """Move the running arena to the page allocator (the end of boot).

        Kernel counterpart: ``memblock_free_all()``. Retained blocks and empty slabs go back
        to memblock first; then every free page goes to a new
        :class:`arena.buddy.BuddyAllocator` (blocks of up to ``2**max_order`` pages). From now
        on fresh memory is buddy blocks: new slabs, large blocks (a whole power-of-two block
        per class) and records (the request plus red zones rounded up to a power of two of
        pages), so the budget counts whole blocks and requests above ``page_size <<
        max_order`` fail with :class:`arena.errors.ArenaMemoryError`. Allocations made before
        stay valid; freeing one gives its whole pages to the page allocator
        (``memblock_free_late()``). Returns the buddy allocator (also :attr:`buddy`). Raises
        :class:`arena.errors.HandoverError` if called twice, ClosedError.
        """
        max_order = int_arg("max_order", max_order)
        with self._lock:
            self._open()
            if self._buddy is not None:
                raise HandoverError("handover() was already called")
            buddy = BuddyAllocator(self._pm, page_size=self._page_size, max_order=max_order)
            self._collect_full()
            self._reclaim()
            self._mb.free_all(buddy)
            self._buddy = buddy
            if self._large is not None:
                self._large.targets.clear()
            return buddy

    # -- lifetime ----------------------------------------------------------------------------

    def close(self, *, defer: bool = False) -> None:
        """Unmap the memory and retire the arena. Idempotent.

        In debug mode, allocations still live are reported with a ``ResourceWarning`` (by call
        site). If numpy arrays of the arena are still alive the memory cannot be unmapped:
        without ``defer`` this raises :class:`arena.errors.LiveViewsError` and nothing changes;
        with ``defer=True`` (what leaving a ``with`` block does) the arena is retired anyway and
        the mapping goes away with the last array and the arena object (garbage collection).
        Afterwards every method raises ClosedError. O(units).
        """
        defer = bool_arg("defer", defer)
        with self._lock:
            if self._closed:
                return
            if self._pinned and not defer:
                gc.collect()   # arrays numpy made may be kept only by reference cycles
            if self._pinned and not defer:
                raise LiveViewsError(
                    f"close(): numpy still holds {len(self._pinned)} allocation(s) of this "
                    f"arena, made inside numpy_allocator() (arrays still alive); delete them "
                    f"and call close() again. Nothing was closed.")
            self._collect_full()
            leaks = format_leaks(leak_sites([self._info(u) for u in self._live_units()])) \
                if self._debug else ""
            # The arena's own references to the memory go first (weakly held meanwhile: a
            # refused close puts back the very objects the live arrays still use).
            units = list(self._anchors.values())
            held = [(u, _wref(u.anchor), None if u.view is None else _wref(u.view))
                    for u in units]
            for u in units:
                u.anchor = u.view = None
            buf = _wref(self._buf)
            self._mv.release()
            self._mv = self._buf = None
            try:
                self._pm.close()
            except LiveViewsError:
                if not defer:
                    self._reattach(held, buf())
                    raise  # nothing changed
            self._closed = True
            if _TRACING:
                self._untrack_units(units)
            self._anchors.clear()
            self._fast = {}
            if self._slab is not None:
                self._slab.retire()   # a thread that found a cache before: no free slot now
            self._slab = None
            self._large = None
            self._quarantine.clear()
            self._freed.clear()
            if self._debug:
                self._drop_guards()
        if leaks:
            warnings.warn(f"Arena closed with leaks: {leaks}", ResourceWarning, stacklevel=2)

    def _reattach(self, held: list[tuple[Unit, Any, Any]], buf: Any) -> None:
        """Undo the first step of a refused :meth:`close`: the exports (the same buffer
        object if arrays still hold it), each unit its anchor (the same object if arrays still
        derive from it, else a new one) and, in the manual lifetime, its array."""
        if buf is None:
            buf = self._pm.exporter()[0]
        self._buf = buf
        self._mv = memoryview(buf).cast("B")
        self._anchors = {}
        for unit, anchor_ref, view_ref in held:
            anchor = anchor_ref()
            if anchor is None:
                self._make_anchor(unit)
            else:
                unit.anchor = anchor
                self._anchors[id(anchor)] = unit
            if view_ref is not None:
                view = view_ref()
                if view is None and unit.state != FREE:
                    view = unit.anchor[:unit.size]
                    unit.vsize = unit.size
                    unit.vshape = None
                    unit.vdtype = _U8
                unit.view = view

    def numpy_allocator(self) -> NumpyAllocator:
        """Context manager: every numpy array data allocation this context (thread or asyncio
        task) makes inside the block — temporaries, ufunc outputs, ``np.concatenate``, C
        extensions — comes from this arena, through numpy's memory-handler API.

        Each allocation counts in the budget and the statistics, follows the size classes and
        gets debug mode's red zones and poison; numpy frees it when its array dies (also after
        the block), and nothing else does (``reset()``, scopes and the garbage-collected
        lifetime leave it alone). A refused allocation makes numpy raise ``MemoryError``.
        :meth:`close` is refused while numpy holds any. Yields the arena; blocks nest. Raises
        ClosedError, :class:`arena.errors.ArenaError` if numpy does not take the handler.
        Kernel counterpart: none. See :mod:`arena.numpy_hook`."""
        return NumpyAllocator(self)

    def __enter__(self) -> Arena:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(defer=True)

_FAST_DTYPES: dict[Any, np.dtype] = {}
for _t in (np.float64, np.float32, np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32,
           np.uint16, np.uint8, np.complex64, np.complex128, np.bool_, float, int, complex,
           "f8", "f4", "i8", "i4", "u1", "float64", "float32", "int64", "int32", "uint8"):
    _FAST_DTYPES[_t] = np.dtype(_t)
    _FAST_DTYPES[np.dtype(_t)] = np.dtype(_t)
del _t

