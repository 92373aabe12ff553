"""Size-class caches for small allocations: the kernel's ``kmalloc`` caches (SLUB) in miniature.

Kernel counterpart: ``mm/slub.c`` and ``mm/slab_common.c``. Once the kernel's page allocator
runs, ``kmalloc(size)`` does not carve each object out of the page allocator: it rounds the size
up to a *size class* (``kmalloc_index()``: 8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048,
4096 bytes), and each class is a cache (``kmalloc_caches[]``) of *slabs*: whole pages cut into
equal slots. Allocating pops a free slot, freeing pushes it back; pages move only when a slab is
made (``new_slab()``) or given back (``discard_slab()``). This module is that layer for
:class:`arena.Arena`: slabs come from a *page source* (memblock before the hand-over, the buddy
allocator after it, supplied by the arena), and the arena's small requests become a list pop and
a slice of the slab's view.

Invariants (checked by :meth:`SlabAllocator.check`, O(slabs + slots)):

* A slab is ``page_size << order`` bytes of whole pages, page aligned, on one node, obtained
  from the page source as one block; slabs are disjoint, and every page of a slab maps to it
  in :attr:`SlabAllocator.pages`.
* A slab of a cache of slot size ``size`` has ``nslots = nbytes // size`` slots at offsets
  ``0, size, 2 * size, ...`` (the tail is unused). A slot's physical address is a multiple of
  its cache's alignment (the largest power of two dividing ``size``, at most a page).
* Every slot is either handed out (``state`` not ``FREE``) or on its slab's freelist,
  exactly once.
* A cache's current slab ``cur`` is the one allocations pop from: ``cache.free is
  cur.free`` (``cache.free`` is a fresh empty list when there is no current slab). ``partial``
  holds the cache's other slabs with at least one free slot, at most ``max_empty`` of them
  completely free; a full slab that is not current is on no list (``pages`` finds it).
* A slot that was never handed out since its slab was made (``seq`` -1) reads as zero.

Policy (measured reasons in comments, the numbers in ``bench/RESULTS.md``): slabs hold at least
:data:`MIN_OBJECTS` slots (the kernel's ``calculate_order()`` aims at several per slab; the page
source costs much more per block here than a slot, so a slab amortises it over its slots); slots are handed out top-down (highest
address first, like memblock's default) and reused last-in first-out; a slab that becomes
empty stays while it is the cache's current slab or one of its ``max_empty`` spares (the
kernel's ``min_partial``; here as many as ``keep_empty`` bytes allow, at least one), so that a
program that frees a batch and allocates it again never takes pages from the page source and
gives them back; :meth:`SlabAllocator.shrink` (``kmem_cache_shrink()``) gives every empty slab
back.

Not thread-safe: the arena serialises every call with its lock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Any

from arena.constants import NUMA_NO_NODE
from arena.errors import InvariantError
from arena.unit import FREE, Unit

__all__ = [
    "KMALLOC_SIZES",
    "KMALLOC_MAX_SIZE",
    "MIN_OBJECTS",
    "NUMA_NO_NODE",
    "KmemCache",
    "Slab",
    "Slot",
    "SlabAllocator",
    "kmalloc_index",
    "slab_order",
]

#: The kernel's kmalloc size classes (``kmalloc_info[]`` with ``KMALLOC_MIN_SIZE`` 8, up to
#: ``kmalloc-8k``, SLUB's largest cache with 4 KiB pages), bytes.
KMALLOC_SIZES: tuple[int, ...] = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096,
                                  8192)
#: The largest size class (bytes); larger requests are not served by the caches.
KMALLOC_MAX_SIZE: int = KMALLOC_SIZES[-1]
#: A slab holds at least this many slots (fewer only if a single slot is larger than
#: ``page_size << MAX_SLAB_ORDER``). Eight 4 KiB slots make the kernel's order-3 kmalloc-4k slab.
MIN_OBJECTS = 8
#: The largest slab order (the kernel's ``slub_max_order`` default, ``PAGE_ALLOC_COSTLY_ORDER``).
MAX_SLAB_ORDER = 3


# Per class, its size in zero bytes: a used slot is cleared by copying these into it.
_ZEROS = [bytes(size) for size in KMALLOC_SIZES]


def _class_align(size: int, page_size: int) -> int:
    """Alignment every slot of a class has inside a page-aligned slab: the largest power of
    two dividing ``size``, at most a page."""
    return min(size & -size, page_size)


def kmalloc_index(size: int, align: int, page_size: int = 4096) -> int | None:
    """Index into :data:`KMALLOC_SIZES` of the smallest class holding ``size`` bytes at
    alignment ``align`` (a power of two), or ``None`` if no class does (too large, or aligned
    beyond what the class's slots guarantee).

    Kernel counterpart: ``kmalloc_index()`` plus the alignment rule of ``kmalloc``
    (``ARCH_KMALLOC_MINALIGN``; here any power of two). ``size`` 0 gives the smallest class
    that satisfies ``align``. O(classes).
    """
    for i, s in enumerate(KMALLOC_SIZES):
        if s >= size and _class_align(s, page_size) >= align:
            return i
    return None


def slab_order(size: int, page_size: int) -> int:
    """Page order of a slab of ``size``-byte slots: the smallest order holding
    :data:`MIN_OBJECTS` slots, at most :data:`MAX_SLAB_ORDER` (the kernel's
    ``calculate_order()`` in spirit). O(1)."""
    order = 0
    while (page_size << order) < MIN_OBJECTS * size and order < MAX_SLAB_ORDER:
        order += 1
    return order


class Slot(Unit):
    """One slot of a slab: a :class:`arena.unit.Unit` whose ``home`` is its slab's freelist.
    Kernel counterpart: an object of a ``kmem_cache``. Adds ``slab`` and ``off`` (offset of the
    slot in the slab, bytes)."""

    __slots__ = ("slab", "off")

    def __init__(self, slab: Slab, off: int, boff: int) -> None:
        super().__init__(slab.base + off, boff, slab.cache.size, slab.nid, slab.free)
        self.slab = slab
        self.off = off

    def __repr__(self) -> str:
        state = "free" if self.state == FREE else f"in use ({self.size} B, seq {self.seq})"
        return f"<Slot {self.phys:#x} of {self.slab.cache.name} node {self.slab.nid}, {state}>"


class Slab:
    """``page_size << order`` bytes of whole pages cut into the slots of one cache.

    Kernel counterpart: a slab (``struct slab``). ``base`` physical address; ``nbytes``;
    ``order`` — the buddy order it came with, or -1 for a memblock block; ``nid`` its node;
    ``cache``; ``slots`` (by index, ascending address); ``free`` (the freelist: free slots, the
    next one to hand out last). ``boff`` is the buffer offset of ``base`` (see
    :class:`arena.unit.Unit`).
    """

    __slots__ = ("base", "nbytes", "order", "nid", "cache", "slots", "free", "nslots", "is_cur")

    def __init__(self, cache: KmemCache, base: int, order: int, nid: int,
                 boff: int = 0) -> None:
        self.base = base
        self.nbytes = cache.slab_bytes
        self.order = order
        self.nid = nid
        self.cache = cache
        self.is_cur = False   # the cache's current slab (tested on every free: no call)
        self.free: list[Slot] = []
        self.nslots = cache.slab_bytes // cache.size
        size = cache.size
        self.slots = [Slot(self, i * size, boff + i * size) for i in range(self.nslots)]
        self.free.extend(self.slots)  # pop() takes the highest address first (top-down)

    @property
    def inuse(self) -> int:
        """Slots in use."""
        return self.nslots - len(self.free)

    def __repr__(self) -> str:
        return (f"<Slab [{self.base:#x}-{self.base + self.nbytes - 1:#x}] {self.cache.name} "
                f"node {self.nid}, {self.inuse}/{self.nslots} in use>")


class KmemCache:
    """The slabs of one size class on one node. Kernel counterpart: ``struct kmem_cache``
    (one of ``kmalloc_caches[]``) with its per-node partial list.

    ``index`` into :data:`KMALLOC_SIZES`, ``size`` and ``align`` of the slots (bytes), ``nid``,
    ``slab_bytes``/``slab_order``, ``zeros`` (``size`` zero bytes, to clear a slot); ``cur`` (current slab or ``None``), ``free`` (its freelist),
    ``partial`` (other slabs with free slots), ``nalloc`` (slots handed out from it, ever).
    """

    __slots__ = ("index", "size", "align", "nid", "slab_bytes", "slab_order", "cur", "free",
                 "partial", "name", "zeros", "large", "max_empty", "nalloc")

    def __init__(self, index: int, nid: int, page_size: int) -> None:
        self.index = index
        self.size = KMALLOC_SIZES[index]
        self.align = _class_align(self.size, page_size)
        self.nid = nid
        self.slab_order = slab_order(self.size, page_size)
        self.slab_bytes = page_size << self.slab_order
        self.cur: Slab | None = None
        self.free: list[Slot] = []
        self.partial: list[Slab] = []
        self.name = f"kmalloc-{self.size}"
        self.zeros = _ZEROS[index]
        self.large = False   # see arena.largecache.LargeCache
        self.max_empty = 1   # empty slabs kept besides the current one
        self.nalloc = 0      # slots handed out from this cache, ever (per-class statistics)

    def _set_cur(self, slab: Slab | None) -> None:
        if self.cur is not None:
            self.cur.is_cur = False
        self.cur = slab
        if slab is None:
            self.free = []
        else:
            slab.is_cur = True
            self.free = slab.free

    def __repr__(self) -> str:
        return f"<KmemCache {self.name} node {self.nid}, {len(self.partial)} partial>"


#: ``get_pages(nbytes, order, nid, exact) -> (base, order) | None``: a reserved, page-aligned
#: block of ``nbytes = page_size << order`` bytes on node ``nid`` (``NUMA_NO_NODE`` = any node;
#: ``exact`` = that node only), and the buddy order it came with (-1: not from the buddy
#: allocator); ``None`` if there is none. Must change nothing when it returns ``None``.
GetPages = Callable[[int, int, int, bool], tuple[int, int] | None]
#: ``put_pages(slab)``: give the slab's block back to where it came from.
PutPages = Callable[[Slab], None]


class SlabAllocator:
    """The kmalloc caches of every node over one page source.

    ``SlabAllocator(physmem, slices, *, page_size, fast_align, granule)``

    * ``slices`` — the memory's node slices ``(nid, phys_start, size)``, ascending
      (:attr:`arena.physmem.PhysicalMemory.slices`).
    * The page source (see :data:`GetPages`, :data:`PutPages`) is passed to the calls that
      take or give pages (it changes at the hand-over, and holding it here would tie this
      object and its owner in a reference cycle).
    * ``fast_align``/``granule`` — the default alignment and the smallest slot size of the
      user's requests: :attr:`fast` maps every request size ``1 .. KMALLOC_MAX_SIZE`` that a
      class serves at that alignment to the cache ``NUMA_NO_NODE`` requests use.

    Any-node requests are served by the caches of the node the last any-node slab of their
    class came from (the kernel's "local node"); a request for a node uses that node's caches.
    """

    def __init__(self, physmem: Any, slices: list[Any], *, page_size: int, fast_align: int,
                 granule: int, buf_delta: int = 0, keep_empty: int = 0) -> None:
        self._pm = physmem
        self._buf_delta = buf_delta
        self.nids = [sl[0] for sl in slices]
        self._starts = [sl[1] for sl in slices]
        self.page_size = page_size
        self._shift = page_size.bit_length() - 1
        self.caches: dict[int, list[KmemCache]] = {
            nid: [KmemCache(i, nid, page_size) for i in range(len(KMALLOC_SIZES))]
            for nid in self.nids}
        for caches in self.caches.values():
            for cache in caches:
                cache.max_empty = max(1, keep_empty // cache.slab_bytes)
        #: Per class, the cache that any-node requests use.
        self.targets: list[KmemCache] = list(self.caches[self.nids[-1]])
        #: page number -> slab, for every page of every slab.
        self.pages: dict[int, Slab] = {}
        self.nslabs = 0
        self.slab_bytes = 0
        self.granule = granule
        # Request size -> any-node cache, for requests at the default alignment (a dict:
        # negative sizes miss, as they must, where a list would wrap around).
        self._fast_sizes: list[list[int]] = [[] for _ in KMALLOC_SIZES]
        self.fast: dict[int, KmemCache] = {}
        for n in range(1, KMALLOC_MAX_SIZE + 1):
            ci = kmalloc_index(max(n, granule), fast_align, page_size)
            if ci is not None:
                self._fast_sizes[ci].append(n)
                self.fast[n] = self.targets[ci]

    # -- lookup ------------------------------------------------------------------------------

    def index(self, size: int, align: int) -> int | None:
        """The class of a request of ``size`` bytes (at least one granule) at ``align``, or
        ``None`` (see :func:`kmalloc_index`). O(classes)."""
        return kmalloc_index(max(size, self.granule, 1), align, self.page_size)

    def _nid_of(self, phys: int) -> int:
        return self.nids[bisect_right(self._starts, phys) - 1]

    def cache(self, index: int, nid: int) -> KmemCache:
        """The cache of class ``index`` for node ``nid`` (``NUMA_NO_NODE``: the any-node one)."""
        return self.targets[index] if nid == NUMA_NO_NODE else self.caches[nid][index]

    def find(self, phys: int) -> tuple[Slab | None, Slot | None]:
        """The slab holding ``phys`` (``None`` if none) and the slot starting exactly there
        (``None`` if ``phys`` is not a slot's first byte). O(1)."""
        slab = self.pages.get(phys >> self._shift)
        if slab is None:
            return None, None
        idx, rem = divmod(phys - slab.base, slab.cache.size)
        if rem or idx >= slab.nslots:
            return slab, None
        return slab, slab.slots[idx]

    def slabs(self) -> Iterator[Slab]:
        """Every slab, once each, by ascending address. O(slabs log slabs)."""
        seen = {id(s): s for s in self.pages.values()}
        yield from sorted(seen.values(), key=lambda s: s.base)

    def in_use(self) -> Iterator[Slot]:
        """Every slot in use. O(slots)."""
        for slab in self.slabs():
            for slot in slab.slots:
                if slot.state != FREE:
                    yield slot

    # -- refill: ___slab_alloc() --------------------------------------------------------------

    def refill(self, index: int, nid: int, get_pages: GetPages,
               put_pages: PutPages) -> KmemCache | None:
        """A cache of class ``index`` with a free slot for a request on node ``nid``, or
        ``None`` if no slab can be made (the caller then falls back to its page source).

        Kernel counterpart: ``___slab_alloc()``: the current slab first, then a partial slab,
        then (any-node requests) another node's slabs, then a new slab (``new_slab()``) from
        the page source — on node ``nid`` only, or on any node for ``NUMA_NO_NODE``.
        Changes nothing when it returns ``None`` or raises (a failing physical memory: the
        new slab's pages go back through ``put_pages``). O(nodes + partial) plus the page
        source.
        """
        if nid != NUMA_NO_NODE:
            cache = self.caches[nid][index]
            if cache.free or self._take_partial(cache):
                return cache
            slab = self._new_slab(index, nid, True, get_pages, put_pages)
            return None if slab is None else cache
        cache = self.targets[index]
        if cache.free or self._take_partial(cache):
            return cache
        for n in self.nids:  # another node's cache with room
            other = self.caches[n][index]
            if other.free or self._take_partial(other):
                self._retarget(index, other)
                return other
        slab = self._new_slab(index, NUMA_NO_NODE, False, get_pages, put_pages)
        if slab is None:
            return None
        self._retarget(index, slab.cache)
        return slab.cache

    def _take_partial(self, cache: KmemCache) -> bool:
        """Make a partial slab current (the current one is full: no list keeps it)."""
        if not cache.partial:
            return False
        cache._set_cur(cache.partial.pop())
        return True

    def _retarget(self, index: int, cache: KmemCache) -> None:
        if self.targets[index] is cache:
            return
        self.targets[index] = cache
        fast = self.fast
        for n in self._fast_sizes[index]:
            fast[n] = cache

    def _new_slab(self, index: int, nid: int, exact: bool, get_pages: GetPages,
                  put_pages: PutPages) -> Slab | None:
        """``new_slab()``: a block from the page source, zeroed (pages never written are not
        touched), cut into slots and made current in the cache of the node it lies on."""
        proto = self.caches[self.nids[0]][index]
        block = get_pages(proto.slab_bytes, proto.slab_order, nid, exact)
        if block is None:
            return None
        base, order = block
        got = self._nid_of(base)
        cache = self.caches[got][index]
        slab = Slab(cache, base, order, got, base - self._buf_delta)
        pm = self._pm
        try:
            pm.zero(base, cache.slab_bytes)
            pm.view(base, cache.slab_bytes)   # records the slab as written: slots are handed out
        except BaseException:   # the memory failed: the pages go back, nothing changed
            put_pages(slab)
            raise
        cache._set_cur(slab)
        first = base >> self._shift
        for p in range(first, first + (cache.slab_bytes >> self._shift)):
            self.pages[p] = slab
        self.nslabs += 1
        self.slab_bytes += cache.slab_bytes
        return slab

    # -- free: __slab_free() ------------------------------------------------------------------

    def slab_changed(self, slab: Slab, put_pages: PutPages) -> None:
        """Call after a free made ``slab``'s freelist hold 1 or all of its slots.

        Kernel counterpart: the slow part of ``__slab_free()``: a full slab with a free slot
        joins the partial list; an empty slab that is not current is discarded when the cache
        already keeps ``max_empty`` empty ones (otherwise it stays as a spare). O(partial).
        """
        cache = slab.cache
        if slab.is_cur:
            return
        n = len(slab.free)
        if n == 1:
            cache.partial.append(slab)
        if n == slab.nslots:
            cur = cache.cur
            spares = int(cur is not None and len(cur.free) == cur.nslots)
            for p in cache.partial:
                if p is not slab and len(p.free) == p.nslots:
                    spares += 1
                    if spares >= cache.max_empty:
                        break
            if spares >= cache.max_empty:
                self.discard(slab, put_pages)

    def discard(self, slab: Slab, put_pages: PutPages) -> None:
        """``discard_slab()``: give an empty slab's pages back (``put_pages``). O(partial)."""
        if len(slab.free) != slab.nslots:
            raise InvariantError(f"discarding {slab!r}, which has slots in use")
        cache = slab.cache
        if slab is cache.cur:
            cache._set_cur(None)
        else:
            cache.partial.remove(slab)
        first = slab.base >> self._shift
        for p in range(first, first + (slab.nbytes >> self._shift)):
            del self.pages[p]
        self.nslabs -= 1
        self.slab_bytes -= slab.nbytes
        put_pages(slab)

    def empty_slabs(self) -> list[Slab]:
        """The slabs with no slot in use, by ascending address. O(slabs)."""
        return [slab for slab in self.slabs() if len(slab.free) == slab.nslots]

    def shrink(self, put_pages: PutPages) -> int:
        """``kmem_cache_shrink()`` of every cache: discard every empty slab (current ones
        too). Returns the bytes given back. O(slabs)."""
        empty = self.empty_slabs()
        for slab in empty:
            self.discard(slab, put_pages)
        return sum(slab.nbytes for slab in empty)

    # -- lifetime ------------------------------------------------------------------------------

    def retire(self) -> None:
        """Leave every cache without a current slab, so that a fast path that looked a cache
        up before its owner closed finds no free slot. O(caches)."""
        for caches in self.caches.values():
            for cache in caches:
                cache._set_cur(None)

    # -- checks and dump ---------------------------------------------------------------------

    def slabinfo(self) -> str:
        """The caches in the format of the kernel's ``/proc/slabinfo`` (version 2.1; SLUB has
        no tunables, so they are 0), one line per size class holding slabs (all nodes
        together), largest first. O(slabs)."""
        lines = ["slabinfo - version: 2.1",
                 "# name            <active_objs> <num_objs> <objsize> <objperslab> "
                 "<pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata "
                 "<active_slabs> <num_slabs> <sharedavail>"]
        per_class: dict[int, list[Slab]] = {}
        for slab in self.slabs():
            per_class.setdefault(slab.cache.index, []).append(slab)
        for index in sorted(per_class, reverse=True):
            slabs = per_class[index]
            cache = slabs[0].cache
            active = sum(s.inuse for s in slabs)
            total = sum(s.nslots for s in slabs)
            lines.append(f"{cache.name:<17} {active:6d} {total:6d} {cache.size:6d} "
                         f"{slabs[0].nslots:4d} {1 << cache.slab_order:4d} : tunables "
                         f"{0:4d} {0:4d} {0:4d} : slabdata {len(slabs):6d} {len(slabs):6d} "
                         f"{0:6d}")
        return "\n".join(lines) + "\n"

    def check(self) -> None:
        """Verify every invariant of the module docstring; :class:`InvariantError` with the slabs
        and :meth:`slabinfo` if one is broken. O(slabs + slots)."""
        problem = self.problem()
        if problem:
            raise InvariantError(f"slab invariant broken: {problem}\n"
                                 + "".join(f"{s!r}\n" for s in self.slabs()) + self.slabinfo())


    def problem(self) -> str | None:
        """The first broken invariant (see the module docstring) in words, or ``None``.
        O(slabs + slots)."""
        slabs = list(self.slabs())
        ps = self.page_size
        prev_end = -1
        for slab in slabs:
            cache = slab.cache
            if slab.base % ps or slab.nbytes != cache.slab_bytes or slab.base < prev_end:
                return f"{slab!r} is misaligned, of the wrong size or overlaps"
            prev_end = slab.base + slab.nbytes
            if self._nid_of(slab.base) != slab.nid or self._nid_of(prev_end - 1) != slab.nid \
                    or cache.nid != slab.nid or self.caches[slab.nid][cache.index] is not cache:
                return f"{slab!r} is filed under the wrong node"
            first = slab.base >> self._shift
            if any(self.pages.get(p) is not slab
                   for p in range(first, first + (slab.nbytes >> self._shift))):
                return f"the page table does not map every page of {slab!r}"
            on_list = {id(s) for s in slab.free}
            if len(on_list) != len(slab.free):
                return f"a slot is twice on the freelist of {slab!r}"
            for i, slot in enumerate(slab.slots):
                if slot.slab is not slab or slot.off != i * cache.size or \
                        slot.phys != slab.base + slot.off or slot.phys % cache.align or \
                        slot.home is not slab.free or slot.csize != cache.size or \
                        slot.boff != slot.phys - self._buf_delta:
                    return f"{slot!r} is misplaced"
                if (slot.state == FREE) != (id(slot) in on_list):
                    return f"{slot!r} is neither in use nor free, or both"
                if slot.state != FREE and slot.size > cache.size:
                    return f"{slot!r} holds more than its class"
        if len(slabs) != self.nslabs or sum(s.nbytes for s in slabs) != self.slab_bytes:
            return "the slab count or byte total is wrong"
        for nid, caches in self.caches.items():
            for cache in caches:
                if cache.cur is None:
                    if cache.free:
                        return f"{cache!r} has a freelist but no current slab"
                elif cache.free is not cache.cur.free or cache.cur.cache is not cache or \
                        not cache.cur.is_cur or \
                        self.pages.get(cache.cur.base >> self._shift) is not cache.cur:
                    return f"{cache!r}: the current slab is not its own"
                if any(p.cache is not cache or not p.free or p.is_cur
                       or self.pages.get(p.base >> self._shift) is not p for p in cache.partial):
                    return f"{cache!r}: a partial slab is full, current or not its own"
                if len({id(p) for p in cache.partial}) != len(cache.partial):
                    return f"{cache!r}: a slab is twice on the partial list"
                if sum(len(p.free) == p.nslots for p in cache.partial) > cache.max_empty:
                    return f"{cache!r} keeps more than {cache.max_empty} empty partial slabs"
                if nid != cache.nid:
                    return f"{cache!r} is filed under node {nid}"
        for slab in slabs:
            cache = slab.cache
            if slab is not cache.cur and slab.free and slab not in cache.partial:
                return f"{slab!r} has free slots but is on no list"
        for i, t in enumerate(self.targets):
            if t.index != i or self.caches[t.nid][i] is not t:
                return f"the any-node target of class {i} is wrong"
        for n, t in self.fast.items():
            if self.targets[t.index] is not t or n > t.size:
                return f"the fast table maps size {n} wrongly"
        return None
