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

The module is the routing and the bookkeeping; the layers behind it each have their own
module: :mod:`arena.unit` (the unit every layer hands around), :mod:`arena.slab` and
:mod:`arena.largecache` (size classes), :mod:`arena.debug` (red zones, poison, quarantine),
:mod:`arena.tracking` (callers, leaks), :mod:`arena.stats` (statistics).

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
collection can run inside the arena's code and call finalizers that free memory of the same
arena (measured: a re-entrant lock costs within 5% of a plain one here). A unit whose last
array dies is pushed on a list without the lock and given back under it at the next
operation. Fork safety: the mapping is ``MAP_PRIVATE``; the locks are held across ``fork()``
and renewed in the child.
"""

from __future__ import annotations

import bisect
import contextvars
import itertools
import os
import sys
import threading
import time
import warnings
import weakref
from collections import OrderedDict, deque
from typing import IO, Any

import numpy as np

from arena._args import bool_arg, file_arg, int_arg
from arena.buddy import MAX_PAGE_ORDER, BuddyAllocator
from arena.debug import (
    POISON_FREE,
    POISON_INUSE,
    RED_ACTIVE,
    REDZONE,
    Record,
    corruption,
    poison_report,
    redzone_report,
)
from arena.errors import (
    ArenaMemoryError,
    BudgetExceededError,
    ClosedError,
    DoubleFreeError,
    ForeignBufferError,
    HandoverError,
    LiveViewsError,
)
from arena.largecache import Block, LargeCaches
from arena.memblock import MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, Memblock, MemblockFlags
from arena.physmem import MAX_ALIGN, PAGE_SIZE, PhysicalMemory, parse_size
from arena.slab import KMALLOC_MAX_SIZE, KmemCache, Slab, SlabAllocator, Slot
from arena.stats import ArenaStats, NodeStats, format_stats, fragmentation
from arena.tracking import (
    HIDDEN_FRAMES,
    STACK_DEPTH,
    UNTRACKED,
    AllocationInfo,
    Frame,
    LeakSite,
    capture,
    format_leaks,
    frame_site,
    leak_sites,
    site,
)
from arena.unit import FREE, HELD, LIVE, Unit

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
    "LIFETIMES",
]

#: Physical address of an arena's first byte. 1 GiB: page 0 (which memblock never hands out) is
#: not part of the memory, and an allocation aligned to 1 GiB fits in the smallest arena.
ARENA_PHYS_BASE = 1 << 30
#: Freed starts remembered for double-free messages (oldest forgotten first).
FREED_MEMORY = 1 << 16
#: The lifetimes an arena offers (see :class:`Arena`).
LIFETIMES = ("gc", "manual")
#: Default seconds a retained large block may stay unused before it goes back.
DECAY_SECONDS = 10.0
#: Sizes a large class was asked for, remembered for the hot path (bounded).
_FAST_LARGE_SIZES = 4096
#: Units a young collection looks at (the newest ones: temporaries die young).
_YOUNG_SCAN = 64
#: A full collection runs once bytes allocated (or units handed out since the last one) pass
#: twice what it left alive, and these floors: memory stays within about twice what is viewed.
_GC_MIN_BYTES = 1 << 20
_GC_MIN_UNITS = 4096

_DEBUG_TRUE = frozenset({"1", "true", "yes", "on"})
#: No budget: a bound no allocation total reaches (one comparison on the hot path).
_NO_LIMIT = 1 << 64
_U8 = np.dtype(np.uint8)
_ndarray = np.ndarray
_wref = weakref.ref
_getframe = sys._getframe
_getrefcount = sys.getrefcount


def _viewed(unit: Unit) -> bool:
    """Whether any array but the arena's own views a unit handed out: the arena holds its
    array (``view``: the attribute and the argument make 2) and its anchor (the attribute, the
    array's ``base`` and the argument make 3); any other array of the unit holds one of the
    two."""
    return _getrefcount(unit.view) > 2 or _getrefcount(unit.anchor) > 3


def _align_arg(name: str, value: Any) -> int:
    """A power-of-two alignment in ``1 .. 1 GiB`` (the real virtual address keeps it)."""
    value = int_arg(name, value)
    if value < 1 or value & (value - 1) or value > MAX_ALIGN:
        raise ValueError(f"{name} must be a power of two in 1 .. {MAX_ALIGN} (1 GiB), "
                         f"not {value}")
    return value


def _round_up(x: int, a: int) -> int:
    return (x + a - 1) & -a


def _caller(depth: int) -> Any:
    """The frame ``depth`` levels up, or ``None`` when the stack is not that deep (a call
    from the outermost frame of a thread, ``atexit``)."""
    try:
        return _getframe(depth + 1)
    except ValueError:
        return None


# -- fork handling: hold every arena's lock across fork(), renew it in the child -------------------

_ARENAS: weakref.WeakSet[Arena] = weakref.WeakSet()
_ARENAS_LOCK = threading.Lock()   # guards _ARENAS; held across fork() too
_FORK_HELD: list[Arena] = []


def _before_fork() -> None:
    """Take every arena's lock, all or none at a time: a thread may hold one arena's lock and
    wait for another's (a finalizer run under the first frees into the second), so taking them
    one by one in any fixed order could deadlock against it; backing off cannot."""
    _ARENAS_LOCK.acquire()
    arenas = sorted(_ARENAS, key=lambda a: a._serial)
    delay = 1e-5
    while True:
        held: list[Arena] = []
        for a in arenas:
            if not a._lock.acquire(blocking=False):
                break
            held.append(a)
        else:
            break
        for a in reversed(held):
            a._lock.release()
        time.sleep(delay)
        delay = min(delay * 2, 1e-2)
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
                units = [u for u, seq in self.units if u.seq == seq and u.state == LIVE]
                if units:
                    a._free_units(units, _caller(1))
        finally:
            lock.release()


class Arena:
    """An arena allocator over memblock: numpy buffers with real alignment and node placement.

    ``Arena(size, *, nodes=None, budget=None, align=64, debug=None, hugepages=False,
    quarantine=None, slab=True, lifetime="gc", track_callers=False, retain=None,
    decay=10.0)``

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
        lifetime: str = "gc",
        track_callers: bool = False,
        retain: int | str | None = None,
        decay: float | None = DECAY_SECONDS,
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
        track_callers = bool_arg("track_callers", track_callers)
        if not isinstance(lifetime, str):
            raise TypeError(f"lifetime must be a str, one of {LIFETIMES}, not "
                            f"{type(lifetime).__name__} ({lifetime!r})")
        if lifetime not in LIFETIMES:
            raise ValueError(f"lifetime must be one of {LIFETIMES}, not {lifetime!r}")
        if quarantine is not None:
            quarantine = parse_size(quarantine, name="quarantine", allow_zero=True)
        retain = size // 4 if retain is None else parse_size(retain, name="retain",
                                                             allow_zero=True)
        if decay is not None:
            if isinstance(decay, bool) or not isinstance(decay, (int, float)):
                raise TypeError(f"decay must be a number of seconds or None, not "
                                f"{type(decay).__name__} ({decay!r})")
            if not 0 <= decay < float("inf"):
                raise ValueError(f"decay must be >= 0 seconds, not {decay!r}")
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
        self._gc = lifetime == "gc"
        self._track = debug or track_callers
        self._quarantine_limit = size // 32 if quarantine is None else quarantine
        self._stack_depth = STACK_DEPTH if debug else 1
        self._lock = threading.RLock()
        self._closed = False
        # Arrays are made straight over the mapping's exporter (their base is then not an
        # ndarray, so views derived from them keep them alive); _mv zeroes small units.
        self._buf, self._delta = pm.exporter()
        self._mv: Any = memoryview(self._buf).cast("B")
        self._virt_delta = (pm.view(pm.phys_base, 0).__array_interface__["data"][0]
                            - pm.phys_base)
        # Bookkeeping.
        self._anchors: dict[int, Unit] = {}       # id(unit.anchor) -> unit, for every anchor
        # Garbage-collected lifetime: units handed out since a collection last found them
        # viewed (newest last), and the bounds that start a full collection.
        self._young: list[Unit] = []
        self._gc_bytes = _GC_MIN_BYTES
        self._gc_units = _GC_MIN_UNITS
        self._records: dict[int, Record] = {}     # phys -> record handed out
        self._quarantine: deque[Record] = deque()
        self._quarantined = 0
        self._freed: OrderedDict[int, tuple[Frame, ...]] = OrderedDict()
        self._allocated = 0        # bytes of the units handed out and not back (held ones too)
        self._held = 0
        self._total_allocated = 0
        self._peak = 0
        self._count = 0
        self._pending: list[str] = []   # corruption found while giving back a dead unit
        self._autocheck = os.environ.get("ARENA_CHECK") == "1"
        self._limit = _NO_LIMIT if budget is None else budget
        self._scopevar: contextvars.ContextVar[list[tuple[Unit, int]] | None] = \
            contextvars.ContextVar(f"arena-scope-{id(self):#x}", default=None)
        self._nscopes = 0
        # The size classes (none in debug mode or with slab=False: every request is a record).
        self._slab: SlabAllocator | None = None
        self._large: LargeCaches | None = None
        if slab and not debug:
            self._slab = SlabAllocator(pm, slices, page_size=pm.page_size, fast_align=align,
                                       granule=align, buf_delta=self._delta,
                                       keep_empty=retain // 16)
            self._large = LargeCaches([sl.nid for sl in slices], pm.page_size, limit=retain,
                                      decay=decay)
        # Request size -> cache, for the hot path (empty: every call takes the general path).
        self._fast: dict[int, Any] = {}
        if self._slab is not None and not self._autocheck:
            self._fast = dict(self._slab.fast)
        with _ARENAS_LOCK:
            self._serial = next(_serials)
            _ARENAS.add(self)

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
                # _take() for a uint8 array, written out: the call alone costs a tenth of the
                # path (measured), and this is the path programs use most.
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
                                    _getrefcount(unit.view) == 2:
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
            if unit.vsize == nbytes and unit.vdtype is dtype and shape is None and \
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
        unit.vsize = nbytes if shape is None else -1
        unit.vdtype = dtype
        return view

    def _after_take(self, unit: Unit, seq: int, depth: int) -> None:
        """The rarer steps of a hand-out: the scope and the caller. They make objects the
        garbage collector tracks, so they come last, with the state consistent (a collection
        may run finalizers that use this arena). ``depth``: frames from here to the caller."""
        if self._nscopes:
            self._scope_add(unit, seq)
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

    # -- the general path --------------------------------------------------------------------

    def _alloc(self, nbytes: Any, align: Any, node: Any, strict_node: Any, zero: Any,
               dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
        """The one allocation core behind :meth:`alloc` and :meth:`alloc_array` when the hot
        path does not apply: checks, then a size class or a record."""
        nbytes = int_arg("nbytes", nbytes)
        if not 0 <= nbytes < 1 << 62:
            raise ValueError(f"nbytes must be in 0 .. 2**62, not {nbytes}")
        align = self._align if align is None else _align_arg("align", align)
        nid = self._node_arg(node)
        strict = bool_arg("strict_node", strict_node)
        zero = bool_arg("zero", zero)
        if strict and nid == NUMA_NO_NODE:
            raise ValueError("strict_node=True needs a node")
        frame = _caller(2)
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

    def _class_unit(self, nbytes: int, align: int, nid: int,
                    strict: bool) -> tuple[Any, Unit | None]:
        """``(cache, unit)`` from the size class of a request, or ``(None, None)`` if no class
        serves it (the caller makes a record). Raises the budget and out-of-memory errors."""
        slab, large = self._slab, self._large
        assert slab is not None and large is not None
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

    def _check_budget_or_put_back(self, block: Block, nbytes: int, align: int,
                                  nid: int) -> None:
        try:
            self._check_budget(block.csize, nbytes, align, nid)
        except BudgetExceededError:
            block.home.append(block)  # type: ignore[union-attr]
            self._large.retained += block.csize  # type: ignore[union-attr]
            raise

    def _fresh_block(self, size: int, nbytes: int, align: int, nid: int,
                     strict: bool) -> tuple[Any, Unit]:
        """A new large block of class ``size`` from memblock (or the buddy allocator)."""
        large = self._large
        assert large is not None
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
        for attempt in (0, 1):
            base = self._get_block(nbytes_block, max(align, ps), nid, strict, order)
            if base or attempt or not self._reclaim():
                break
        if not base:
            raise self._oom(nbytes, nbytes_block, align, nid, strict)
        got = self._nid_of(base)
        cache = large.cache(size, got)
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

    def _hand_out(self, unit: Unit, nbytes: int, zero: bool, dtype: np.dtype | None,
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

    def _make_anchor(self, unit: Unit) -> np.ndarray:
        """The unit's anchor (see :class:`arena.unit.Unit`), made and indexed."""
        end = unit.block + unit.csize if type(unit) is Record else unit.phys + unit.csize
        anchor = unit.anchor = _ndarray((end - unit.phys,), _U8, self._buf, unit.boff)
        self._anchors[id(anchor)] = unit
        return anchor

    def _drop_anchor(self, unit: Unit) -> None:
        """Forget the anchor of a unit whose memory goes back to its page source."""
        anchor = unit.anchor
        if anchor is not None:
            del self._anchors[id(anchor)]
            unit.anchor = None

    def _file(self, unit: Unit, view: np.ndarray, nbytes: int) -> None:
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
        unit.vsize = nbytes if view.ndim == 1 else -1
        unit.vdtype = view.dtype
        if self._gc:
            self._young.append(unit)
        if self._nscopes:
            self._scope_add(unit, seq)

    def _remember_caller(self, unit: Unit, frame: Any) -> None:
        if self._debug:
            unit.stack = capture(frame, self._stack_depth)
            unit.code = None
        else:
            unit.code = frame.f_code if frame is not None else None
            unit.lasti = frame.f_lasti if frame is not None else 0

    def _remember_fast(self, nbytes: int, cache: Any) -> None:
        """Let the hot path serve ``nbytes`` from ``cache`` from now on."""
        fast = self._fast
        if nbytes > KMALLOC_MAX_SIZE:
            if len(fast) > KMALLOC_MAX_SIZE + _FAST_LARGE_SIZES:   # forget the large ones
                for key in [k for k in fast if k > KMALLOC_MAX_SIZE]:
                    del fast[key]
            fast[nbytes] = cache

    def _scope_add(self, unit: Unit, seq: int) -> None:
        """File a new allocation in the innermost scope of this context, if it has one."""
        units = self._scopevar.get()
        if units is not None:
            units.append((unit, seq))

    def _fits(self, nbytes: int) -> bool:
        """``nbytes`` more fit in the budget (after a full collection if needed)."""
        if self._allocated + nbytes <= self._limit:
            return True
        return self._collect_full() and self._allocated + nbytes <= self._limit

    def _check_budget(self, reserved: int, nbytes: int, align: int, nid: int) -> None:
        budget = self._budget
        if budget is not None and not self._fits(reserved):
            free, largest = self._free_summary()
            raise BudgetExceededError(
                f"allocating {nbytes} bytes (holding {reserved}) would take the arena to "
                f"{self._allocated + reserved} bytes, over its budget of {budget} "
                f"({budget - self._allocated} left)", size=nbytes, align=align,
                node=None if nid == NUMA_NO_NODE else nid, free_bytes=free,
                largest_free=largest)

    def _alloc_record(self, nbytes: int, align: int, nid: int, strict: bool, zero: bool,
                      dtype: np.dtype | None, shape: tuple[int, ...] | None,
                      frame: Any) -> np.ndarray:
        """An allocation that is a reservation of its own (debug mode, ``slab=False``, or no
        size class serves it). Layout: ``[left red zone][nbytes][right red zone +
        padding]``; the left red zone is a multiple of ``align`` so the user's bytes stay
        aligned (above a page of alignment it is dropped)."""
        debug = self._debug
        left = (_round_up(REDZONE, align) if align <= self._page_size else 0) if debug else 0
        need = left + nbytes + (REDZONE if debug else 0)
        if self._buddy is None:
            order = -1
            reserved = _round_up(max(need, 1), self._align)
        else:
            order = self._order_for(need, align, nbytes, nid)
            reserved = self._page_size << order
        self._check_budget(reserved, nbytes, align, nid)
        block = self._get_block(reserved, align, nid, strict, order)
        if not block and self._reclaim():
            block = self._get_block(reserved, align, nid, strict, order)
        if not block:
            raise self._oom(nbytes, reserved, align, nid, strict)
        phys = block + left
        pm = self._pm
        rec = Record(phys, phys - self._delta, block, reserved, order, self._nid_of(block),
                     None if nid == NUMA_NO_NODE else nid)
        try:
            if zero and nbytes:
                pm.zero(phys, nbytes)   # touches only pages written before
            pm.view(block, reserved)    # records the block as written
            if debug:
                if left:
                    pm.fill(block, left, RED_ACTIVE)
                pm.fill(phys + nbytes, block + reserved - phys - nbytes, RED_ACTIVE)
                if nbytes and not zero:
                    pm.fill(phys, nbytes, POISON_INUSE)
            anchor = self._make_anchor(rec)
            view = anchor[:nbytes]
            if dtype is not None:
                view = view.view(dtype).reshape(shape)
        except BaseException:   # the memory failed: the block goes back, nothing changed
            self._drop_anchor(rec)
            self._give_back(block, reserved, order)
            raise
        rec.align = align
        if self._track:
            self._remember_caller(rec, frame)
        self._records[phys] = rec
        self._freed.pop(phys, None)
        self._file(rec, view, nbytes)
        if self._autocheck:
            self._check_bookkeeping()
        return view

    # -- page sources --------------------------------------------------------------------------

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
        """Give an empty slab back to where it came from (:data:`arena.slab.PutPages`)."""
        freed = self._freed
        for slot in slab.slots:
            self._drop_anchor(slot)
            if slot.seq >= 0:
                freed[slot.phys] = ()
                freed.move_to_end(slot.phys)
        while len(freed) > FREED_MEMORY:
            freed.popitem(last=False)
        self._give_back(slab.base, slab.nbytes, slab.order)

    def _put_block(self, block: Block) -> None:
        """Give a large block back to where it came from, and its pages to the OS."""
        self._drop_anchor(block)
        self._give_back(block.phys, block.nbytes, block.order)
        if self._buddy is None or block.order >= 0:
            self._pm.release(block.phys, block.nbytes)

    def _reclaim(self) -> bool:
        """Give every retained block and empty slab back (before failing a request for want
        of memory); True if anything went back."""
        got = int(self._collect_full())
        if self._large is not None:
            got += self._large.release(self._put_block)
        if self._slab is not None:
            got += self._slab.shrink(self._put_slab_pages)
        return got > 0

    def _order_for(self, need: int, align: int, nbytes: int, nid: int) -> int:
        """Buddy order of a block of at least ``need`` bytes aligned to ``align``."""
        ps = self._page_size
        pages = max(1, -(-need // ps))
        order = max((pages - 1).bit_length(), max(align // ps, 1).bit_length() - 1)
        buddy = self._buddy
        assert buddy is not None
        if order > buddy.max_order:
            free, largest = self._free_summary()
            raise ArenaMemoryError(
                f"cannot allocate {nbytes} bytes aligned to {align} from the page allocator: "
                f"its largest block is {ps << buddy.max_order} bytes (order "
                f"{buddy.max_order})", size=nbytes, align=align,
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
            if strict:
                return 0
            node = None
        return buddy.alloc_pages_phys(order, node=node, strict_node=strict) or 0

    def _give_back(self, block: int, nbytes: int, order: int) -> None:
        """Give ``[block, block + nbytes)`` back: a buddy block of ``order``, or (order -1) a
        memblock reservation (after the hand-over: ``memblock_free_late()``)."""
        if order >= 0:
            assert self._buddy is not None
            self._buddy.free_pages(block, order)
        elif self._buddy is None:
            if self._mb.phys_free(block, nbytes):   # -ENOMEM: memblock changed nothing
                free, largest = self._free_summary()
                raise ArenaMemoryError(
                    f"cannot free [{block:#x}+{nbytes:#x}]: memblock could not grow its "
                    f"reserved array to split the region (-ENOMEM); nothing was freed",
                    size=nbytes, align=1, node=None, free_bytes=free, largest_free=largest)
        else:
            self._mb.free_late(block, nbytes)

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

    def _slab_changed(self, slab: Slab) -> None:
        """A free made ``slab`` (not a current one) leave the full state or become empty."""
        assert self._slab is not None
        self._slab.slab_changed(slab, self._put_slab_pages)

    # -- giving units back -------------------------------------------------------------------

    def _collect_young(self) -> bool:
        """Garbage-collected lifetime: give back the newest units handed out that no array
        views any more (their anchor's reference count is the arena's own). True if any went
        back. Runs under the lock, when a free list runs dry. O(:data:`_YOUNG_SCAN`)."""
        young = self._young
        if len(young) > self._gc_units:
            return self._collect_full()
        lo = max(0, len(young) - _YOUNG_SCAN)
        keep = []
        got = False
        for unit in young[lo:]:
            if unit.state == FREE:
                continue
            if _viewed(unit) or not self._try_reclaim(unit):
                keep.append(unit)
            else:
                got = True
        young[lo:] = keep
        return got

    def _collect_full(self) -> bool:
        """Garbage-collected lifetime: give back every unit no array views any more, and set
        the bounds of the next full collection. True if any went back. O(units handed out)."""
        if not self._gc:
            return False
        keep: list[Unit] = []
        refused: list[Unit] = []
        seen: set[int] = set()
        got = False
        for unit in self._young:
            if unit.state == FREE or id(unit) in seen:
                continue
            seen.add(id(unit))
            if _viewed(unit):
                keep.append(unit)
            elif self._try_reclaim(unit):
                got = True
            else:
                refused.append(unit)
        while refused:   # memblock refused some (-ENOMEM): the others' frees may make room
            again = [u for u in refused if not self._try_reclaim(u)]
            if len(again) == len(refused):
                break
            refused = again
            got = True
        keep += refused
        self._young = keep
        self._gc_bytes = max(2 * self._allocated, _GC_MIN_BYTES)
        self._gc_units = max(2 * len(keep), _GC_MIN_UNITS)
        return got

    def _try_reclaim(self, unit: Unit) -> bool:
        """:meth:`_reclaim_unit` from a collection: False (the unit stays as it is, for a
        later collection) when memblock refuses to take a record back (-ENOMEM)."""
        try:
            self._reclaim_unit(unit)
        except ArenaMemoryError:
            return False
        return True

    def _reclaim_unit(self, unit: Unit) -> None:
        """A unit nobody views any more goes back (held or not)."""
        state = unit.state
        if type(unit) is Record and not self._debug:
            self._give(unit)   # first: memblock may refuse (-ENOMEM), then the unit waits
            self._allocated -= unit.csize
            if state == HELD:
                self._held -= unit.csize
            return
        self._allocated -= unit.csize
        if state == HELD:
            self._held -= unit.csize
        if type(unit) is Record and self._debug:
            if state == LIVE:   # dropped without free(): freed now
                report = redzone_report(self._pm.read, unit)
                if report:
                    self._pending.append(report + "\n  (found when its last array died)")
                unit.state = FREE
                self._retire_records([unit], ())
            elif unit.quarantined:
                unit.state = FREE   # the quarantine gives it back when it leaves
            else:
                self._give(unit)
            return
        self._give(unit)

    def _give(self, unit: Unit) -> None:
        """Put a unit that nobody holds any more back where it belongs. Raises
        :class:`arena.errors.ArenaMemoryError` (a record memblock could not free; nothing
        changed)."""
        if type(unit) is Record:
            self._give_back(unit.block, unit.csize, unit.order)   # first: it may refuse
            unit.state = FREE
            del self._records[unit.phys]
            self._drop_anchor(unit)
            return
        unit.state = FREE
        if type(unit) is Slot:
            home = unit.home
            home.append(unit)  # type: ignore[union-attr]
            n = len(home)  # type: ignore[arg-type]
            if (n == 1 or n == unit.slab.nslots) and not unit.slab.is_cur:
                self._slab_changed(unit.slab)
        elif self._buddy is not None and unit.order < 0:   # type: ignore[attr-defined]
            self._give_back(unit.phys, unit.nbytes, -1)   # type: ignore[attr-defined]
        else:
            self._large.give(unit, self._put_block)  # type: ignore[union-attr,arg-type]

    def _free_units(self, units: list[Unit], frame: Any) -> None:
        """The free core (free, scope exit, reset): check everything, then change state. In the
        garbage-collected lifetime a unit an array still views is held (a collection gives it
        back once none does)."""
        stack = capture(frame, self._stack_depth) if self._debug else ()
        records = [u for u in units if type(u) is Record]
        if self._debug and records:
            reports = [r for rec in records if (r := redzone_report(self._pm.read, rec))]
            evict = self._evictions(sum(rec.csize for rec in records))
            reports += [r for rec in evict if (r := poison_report(self._pm.read, rec))]
            if reports:
                raise corruption(reports)
        freed = self._freed
        gc = self._gc
        for unit in units:
            if not gc:
                if self._debug and type(unit) is Record:
                    unit.state = FREE
                    self._retire_records([unit], stack)
                else:
                    self._give(unit)   # may refuse (-ENOMEM): this unit and the rest stay live
                self._allocated -= unit.csize
            elif not _viewed(unit):   # nobody views it: back at once
                self._reclaim_unit(unit)
            else:
                unit.state = HELD
                self._held += unit.csize
                if self._debug and type(unit) is Record:
                    self._retire_records([unit], stack)
            freed[unit.phys] = stack
            freed.move_to_end(unit.phys)
        while len(freed) > FREED_MEMORY:
            freed.popitem(last=False)
        if self._autocheck:
            self._check_bookkeeping()

    def _retire_records(self, recs: list[Record], stack: tuple[Frame, ...]) -> None:
        """Debug mode: poison freed records and quarantine them; the oldest leave (and go
        back, unless arrays still view them: then the last one's death gives them back)."""
        for rec in recs:
            rec.freed_at = stack
            rec.quarantined = True
            self._pm.fill(rec.block, rec.csize, POISON_FREE)
            self._quarantine.append(rec)
            self._quarantined += rec.csize
        q = self._quarantine
        while self._quarantined > self._quarantine_limit:
            old = q.popleft()
            self._quarantined -= old.csize
            old.quarantined = False
            if old.state == FREE:
                self._give(old)

    def _evictions(self, adding: int) -> list[Record]:
        """Quarantined records that adding ``adding`` bytes pushes out (oldest first)."""
        over = self._quarantined + adding - self._quarantine_limit
        out = []
        for rec in self._quarantine:
            if over <= 0:
                break
            out.append(rec)
            over -= rec.csize
        return out

    # -- finding a unit from an array ----------------------------------------------------------

    def _unit_of(self, array: np.ndarray) -> Unit | None:
        """The unit whose anchor ``array`` derives from (through ``base``, memoryviews and
        helper objects such as ``as_strided``'s), or ``None``. O(1)."""
        x: Any = array
        for _ in range(6):
            base = getattr(x, "base", None)
            if base is None:
                return None
            if type(base) is memoryview:
                base = base.obj
            unit = self._anchors.get(id(base))
            if unit is not None and unit.anchor is base:
                return unit
            x = base
        return None

    def _lookup(self, array: Any) -> Unit:
        """The live unit ``array`` covers whole; raises as :meth:`free` documents. O(1)."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"need a numpy array from this arena, not {type(array).__name__}")
        unit = self._unit_of(array)
        if unit is not None and unit.state != FREE:
            handed = unit.view
            if unit.state == HELD:
                where = self._freed.get(unit.phys)
                at = f" (at {site(where[0])})" if where else ""
                raise DoubleFreeError(f"the array at phys {unit.phys:#x} was already freed{at}")
            if array is handed:
                return unit
            whole = array.flags.c_contiguous or array.flags.f_contiguous
            phys = self._pm.phys_of(array) if array.nbytes else unit.phys
            if array.nbytes != unit.size or not whole or phys != unit.phys:
                raise ForeignBufferError(
                    f"the array ({array.nbytes} bytes at phys {phys:#x}"
                    f"{'' if whole else ', not contiguous'}) is not the whole of "
                    f"{self._describe(unit)}")
            return unit
        try:
            phys = self._pm.phys_of(array)
        except ValueError as exc:
            raise ForeignBufferError(f"the array was not allocated by this arena: {exc}") from None
        if unit is not None or phys in self._freed:
            where = self._freed.get(phys)
            at = f" (at {site(where[0])})" if where else ""
            raise DoubleFreeError(f"the array at phys {phys:#x} was already freed{at}")
        raise ForeignBufferError(f"the array at phys {phys:#x} ({array.nbytes} bytes) is not an "
                                 f"allocation of this arena (a slice of one, or never allocated)")

    def owns(self, array: np.ndarray) -> bool:
        """True if :meth:`free` would accept ``array`` now (a live allocation of this arena,
        whole). TypeError for a non-array, ClosedError. O(1)."""
        with self._lock:
            self._open()
            self._collect_full()
            try:
                self._lookup(array)
            except (ForeignBufferError, DoubleFreeError):
                return False
            return True

    # -- introspection ---------------------------------------------------------------------------

    def _describe(self, unit: Unit) -> str:
        if type(unit) is Record:
            return unit.describe()
        info = self._info(unit)
        return (f"the {info.size}-byte allocation at phys {info.phys:#x} (align {info.align}, "
                f"node {info.node}) allocated at {info.caller}")

    def _stack(self, unit: Unit) -> tuple[Frame, ...]:
        if unit.stack:
            return unit.stack
        if unit.code is not None:
            return (frame_site(unit.code, unit.lasti),)
        return ()

    def _info(self, unit: Unit) -> AllocationInfo:
        stack = self._stack(unit)
        return AllocationInfo(
            phys=unit.phys, address=unit.phys + self._virt_delta, size=unit.size,
            reserved=unit.csize, align=self._align if unit.align is None else unit.align,
            node=unit.nid, requested_node=unit.node,
            caller=site(stack[0]) if stack else UNTRACKED,
            stack=tuple(site(f) for f in stack), seq=unit.seq)

    def _live_units(self) -> list[Unit]:
        """Every live (not held) unit, in allocation order. O(live log live)."""
        return sorted((u for u in self._anchors.values() if u.state == LIVE),
                      key=lambda u: u.seq)

    def _nlive(self) -> int:
        return sum(1 for u in self._anchors.values() if u.state == LIVE)

    def info(self, array: np.ndarray) -> AllocationInfo:
        """The :class:`AllocationInfo` of a live allocation (the array or a view :meth:`free`
        accepts). Raises like :meth:`free`. O(1)."""
        with self._lock:
            self._open()
            self._collect_full()
            return self._info(self._lookup(array))

    def live(self) -> list[AllocationInfo]:
        """Every live allocation, in allocation order. O(live log live)."""
        with self._lock:
            self._open()
            self._collect_full()
            return [self._info(u) for u in self._live_units()]

    def leaks(self) -> list[LeakSite]:
        """Live allocations grouped by the call site that made them, most bytes first.

        Call it when everything should have been freed. Callers are known in debug mode
        (:data:`STACK_DEPTH` frames) or with ``track_callers=True`` (one frame); otherwise
        every allocation is grouped under :data:`arena.tracking.UNTRACKED`. In the
        garbage-collected lifetime an allocation whose arrays are all gone is no leak.
        Raises ClosedError. O(live log live).
        """
        with self._lock:
            self._open()
            self._collect_full()
            return leak_sites([self._info(u) for u in self._live_units()])

    def format_leaks(self) -> str:
        """:meth:`leaks` as text (empty string if nothing is live). Raises ClosedError."""
        return format_leaks(self.leaks())

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

        Raises :class:`arena.errors.CorruptionError` (debug; nothing freed), ClosedError.
        O(live + slabs).
        """
        frame = _caller(1)
        with self._lock:
            self._open()
            self._collect_full()
            self._free_units(self._live_units(), frame)
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
                    self._pm.release(s, e - s)
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
            self._collect_full()
            runs = self._free_runs()
            per: dict[int, list[int]] = {sl.nid: [0, 0] for sl in self._slices}
            requested = 0
            for unit in self._anchors.values():
                if unit.state == LIVE:
                    acc = per[unit.nid]
                    acc[0] += unit.csize
                    acc[1] += 1
                    requested += unit.size
            nodes = []
            weighted = 0.0
            for sl in self._slices:
                sizes = [e - s for s, e, n in runs if n == sl.nid]
                frag = fragmentation(sizes)
                weighted += frag * sum(sizes)
                nodes.append(NodeStats(
                    nid=sl.nid, capacity=sl.size, bytes_allocated=per[sl.nid][0],
                    free_bytes=sum(sizes), largest_free_block=max(sizes, default=0),
                    live_allocations=per[sl.nid][1],
                    resident_bytes=self._pm.resident_bytes(sl.phys_start, sl.size),
                    fragmentation=frag))
            free = sum(n.free_bytes for n in nodes)
            budget = self._budget
            return ArenaStats(
                capacity=self._capacity, bytes_requested=requested,
                bytes_allocated=self._allocated - self._held, held_bytes=self._held,
                retained_bytes=0 if self._large is None else self._large.retained,
                slab_bytes=0 if self._slab is None else self._slab.slab_bytes,
                memblock_bytes=self._mb.array_bytes(),
                quarantined_bytes=self._quarantined,
                total_bytes_allocated=self._total_allocated, free_bytes=free,
                largest_free_block=max((n.largest_free_block for n in nodes), default=0),
                fragmentation=weighted / free if free else 0.0,
                live_allocations=sum(n.live_allocations for n in nodes),
                num_allocations=self._count, max_memory=self._peak, per_node=tuple(nodes),
                resident_bytes=sum(n.resident_bytes for n in nodes), budget=budget,
                budget_remaining=None if budget is None else budget - self._allocated)

    def print_stats(self, file: IO[str] | None = None) -> None:
        """Print :meth:`stats` as a table (one column per node when there are several) to
        ``file`` (default ``sys.stdout``; anything with a ``write`` method). TypeError for
        another ``file``, ClosedError."""
        file = file_arg("file", file)
        print(format_stats(self.stats()), file=file if file is not None else sys.stdout)

    def dump(self, file: IO[str] | None = None) -> None:
        """Print memblock's ``memblock_dump_all()`` text (and, after :meth:`handover`, the
        page allocator's ``/proc/buddyinfo``; with slabs, the size-class caches'
        ``/proc/slabinfo``) to ``file`` (default ``sys.stdout``). TypeError for a ``file``
        without a ``write`` method, ClosedError. O(regions + slabs)."""
        file = file_arg("file", file)
        with self._lock:
            self._open()
            text = self._mb.dump_all(log=False)
            if self._buddy is not None:
                text += "\n" + self._buddy.buddyinfo(self._mb).rstrip("\n")
            if self._slab is not None and self._slab.nslabs:
                text += "\n" + self._slab.slabinfo().rstrip("\n")
        print(text, file=file if file is not None else sys.stdout)

    # -- checks ------------------------------------------------------------------------------

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
            self._collect_full()
            if self._buddy is None:
                self._mb.check()
            else:
                self._buddy.check()
            self._check_bookkeeping()
            reports: list[str] = list(self._pending)
            if not self._debug:
                return reports
            pm = self._pm
            for rec in self._records.values():
                if rec.state != LIVE:
                    continue
                r = redzone_report(pm.read, rec)
                if r:
                    reports.append(r)
                    if repair:
                        if rec.phys > rec.block:
                            pm.fill(rec.block, rec.phys - rec.block, RED_ACTIVE)
                        end = rec.phys + rec.size
                        pm.fill(end, rec.block + rec.csize - end, RED_ACTIVE)
            for rec in self._quarantine:
                r = poison_report(pm.read, rec)
                if r:
                    reports.append(r)
                    if repair:
                        pm.fill(rec.block, rec.csize, POISON_FREE)
            if reports and not repair:
                raise corruption(reports)
            self._pending.clear()
            return reports

    def _check_bookkeeping(self) -> None:
        problem = self._bookkeeping_problem()
        if problem:
            raise AssertionError(f"arena invariant broken: {problem}\n{self!r}\n"
                                 + self._mb.dump_all(log=False))

    def _bookkeeping_problem(self) -> str | None:
        """The first broken bookkeeping invariant in words, or None. O(live + slots)."""
        units = [u for u in self._anchors.values() if u.state != FREE]
        if sum(u.csize for u in units) != self._allocated:
            return "bytes_allocated differs from the sum of the live blocks and slots"
        if sum(u.csize for u in units if u.state == HELD) != self._held:
            return "held bytes differ from the sum of the held units"
        if sum(r.csize for r in self._quarantine) != self._quarantined:
            return "quarantined bytes differ from the sum of the quarantined blocks"
        for key, u in self._anchors.items():
            if u.anchor is None or id(u.anchor) != key:
                return f"{u!r} is filed under the wrong anchor"
        for u in units:
            if u.view is None:
                return f"{u!r} is handed out but the arena lost its array"
            align = self._align if u.align is None else u.align
            if u.phys % align or u.seq >= self._count or u.size > u.csize:
                return f"{u!r} is misaligned, misnumbered or larger than its unit"
        if self._slab is not None:
            problem = self._slab.problem()
            if problem:
                return f"size-class caches: {problem}"
            if sum(1 for _ in self._slab.in_use()) != sum(1 for u in units if type(u) is Slot):
                return "a slot in use is not filed as live"
        if self._large is not None:
            problem = self._large.problem()
            if problem:
                return f"large size classes: {problem}"
        return self._blocks_problem(units)

    def _blocks_problem(self, units: list[Unit]) -> str | None:
        """Blocks (records, quarantined records, large blocks, slabs) are disjoint, inside the
        memory and (memblock blocks) reserved."""
        blocks: list[tuple[int, int, int, Any]] = [
            (r.block, r.csize, r.order, r) for r in self._records.values()]
        blocks += [(b.phys, b.nbytes, b.order, b) for b in units if type(b) is Block]
        if self._large is not None:
            blocks += [(b.phys, b.nbytes, b.order, b) for b in self._large.free_blocks()]
        if self._slab is not None:
            blocks += [(sl.base, sl.nbytes, sl.order, sl) for sl in self._slab.slabs()]
        prev_end = -1
        for block, nbytes, order, what in sorted(blocks, key=lambda b: b[0]):
            if block < prev_end or not self._pm.contains(block, nbytes):
                return f"the block of {what!r} overlaps another or lies outside the memory"
            if type(what) is Record and (
                    not block <= what.phys <= what.phys + what.size <= block + nbytes
                    or what.phys % (what.align or self._align)):
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
        Afterwards every method raises ClosedError. O(units).
        """
        defer = bool_arg("defer", defer)
        with self._lock:
            if self._closed:
                return
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
            self._anchors.clear()
            self._fast = {}
            if self._slab is not None:
                self._slab.retire()   # a thread that found a cache before: no free slot now
            self._slab = None
            self._large = None
            self._quarantine.clear()
            self._freed.clear()
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
                    unit.vdtype = _U8
                unit.view = view

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

