"""Tests of :mod:`arena.slab`, the kmalloc size-class caches, on their own: size classes, slab
orders, carving, the freelists, partial/empty slab policy, shrinking, per-node caches, the
any-node target, lookup by address, faults of the physical memory, ``check()`` and
``slabinfo()``, and that the slab layer holds no view of the memory.

The page source is a real :class:`arena.memblock.Memblock` over a real
:class:`arena.physmem.PhysicalMemory` (as :class:`arena.Arena` wires it); slots are taken and
given back the way the arena's fast paths do (pop from ``cache.free`` and mark the slot
``LIVE``; mark it ``FREE``, append it to ``slot.home`` — its slab's freelist — then
``slab_changed`` when the freelist holds 1 or all slots). Arrays are made over the memory's
exporter at ``slot.boff``, as the arena makes them; the slab layer itself holds none.
"""

from __future__ import annotations

import itertools
from unittest import mock

import numpy as np
import pytest

from arena.memblock import MEMBLOCK_ALLOC_ACCESSIBLE, Memblock, MemblockFlags
from arena.physmem import PhysicalMemory
from arena.slab import (
    KMALLOC_MAX_SIZE,
    KMALLOC_SIZES,
    MAX_SLAB_ORDER,
    MIN_OBJECTS,
    NUMA_NO_NODE,
    Slab,
    SlabAllocator,
    Slot,
    kmalloc_index,
    slab_order,
)
from arena.unit import FREE, LIVE

PHYS_BASE = 1 << 30
PS = 4096
SZ_64K = 64 << 10


class World:
    """A 2-node memory (``size`` bytes), a memblock over it, and a SlabAllocator fed by it."""

    def __init__(self, size: int = 2 * SZ_64K, nodes: int = 2, align: int = 64) -> None:
        self.pm = PhysicalMemory(size, phys_base=PHYS_BASE, nodes=nodes)
        self.mb = Memblock(self.pm, page_size=PS, max_numnodes=4)
        for sl in self.pm.slices:
            self.mb.add_node(sl.phys_start, sl.size, sl.nid, MemblockFlags.NONE)
        self.buf, delta = self.pm.exporter()
        self.sa = SlabAllocator(self.pm, self.pm.slices, page_size=PS, fast_align=align,
                                granule=align, buf_delta=delta)
        self.got: list[tuple[int, int, int, bool]] = []
        self.put: list[int] = []

    def get_pages(self, nbytes: int, order: int, nid: int, exact: bool) -> tuple[int, int] | None:
        self.got.append((nbytes, order, nid, exact))
        base = self.mb.alloc_range_nid(nbytes, PS, 0, MEMBLOCK_ALLOC_ACCESSIBLE, nid, exact)
        return (base, -1) if base else None

    def put_pages(self, slab: Slab) -> None:
        self.put.append(slab.base)
        self.mb.phys_free(slab.base, slab.nbytes)

    def take(self, index: int, nid: int = NUMA_NO_NODE) -> Slot | None:
        """Allocate one slot of class ``index`` like the arena does; None if none."""
        cache = self.sa.cache(index, nid)
        if not cache.free:
            cache = self.sa.refill(index, nid, self.get_pages, self.put_pages)
            if cache is None:
                return None
        slot = cache.free.pop()
        assert slot.state == FREE
        slot.view = np.ndarray((slot.csize,), np.uint8, self.buf, slot.boff)
        slot.state = LIVE
        slot.size = cache.size
        slot.seq = 0
        return slot

    def give(self, slot: Slot) -> None:
        """Free one slot like the arena does."""
        assert slot.state == LIVE
        slot.view = None
        slot.state = FREE
        free = slot.home
        assert free is slot.slab.free
        free.append(slot)
        if (len(free) == 1 or len(free) == slot.slab.nslots) and not slot.slab.is_cur:
            self.sa.slab_changed(slot.slab, self.put_pages)

    def drop_views(self) -> None:
        """Drop every array this world made (the slab layer holds none of its own)."""
        for slab in self.sa.slabs():
            for slot in slab.slots:
                slot.view = None
        self.buf = None

    def close(self) -> None:
        self.drop_views()
        self.pm.close()


@pytest.fixture
def w():
    world = World()
    yield world
    world.close()


def idx(size: int) -> int:
    return KMALLOC_SIZES.index(size)


def reserved(w: World) -> list[tuple[int, int]]:
    return [(r.base, r.size) for r in w.mb.reserved.regions]


# -- size classes and slab orders -----------------------------------------------------------------

@pytest.mark.parametrize("size, align, want", [
    (1, 1, 8), (8, 8, 8), (9, 1, 16), (33, 1, 64), (65, 1, 96), (65, 32, 96), (65, 64, 128),
    (97, 64, 128), (129, 64, 192), (129, 128, 256), (193, 1, 256), (257, 1, 512),
    (1000, 1, 1024), (2049, 1, 4096), (4096, 4096, 4096), (0, 1, 8), (0, 64, 64),
    (1, 4096, 4096), (4097, 1, 8192), (8192, 4096, 8192), (8193, 1, None), (1, 8192, None),
    (100, 1 << 20, None),
])
def test_kmalloc_index(size, align, want):
    got = kmalloc_index(size, align, PS)
    assert (None if got is None else KMALLOC_SIZES[got]) == want


def test_kmalloc_index_classes_hold_and_align():
    for size in range(0, KMALLOC_MAX_SIZE + 1, 7):
        for shift in range(13):
            i = kmalloc_index(size, 1 << shift, PS)
            if i is None:
                assert 1 << shift > PS
                continue
            cls = KMALLOC_SIZES[i]
            assert cls >= size and min(cls & -cls, PS) >= 1 << shift
            assert all(s < size or min(s & -s, PS) < 1 << shift for s in KMALLOC_SIZES[:i])


@pytest.mark.parametrize("size, order", [(8, 0), (64, 0), (512, 0), (1024, 1), (2048, 2),
                                         (4096, 3)])
def test_slab_order(size, order):
    assert slab_order(size, PS) == order
    assert (PS << order) // size >= MIN_OBJECTS


def test_slab_order_capped():
    # kmalloc-8k would need order 4 for eight slots: the cap gives four slots of order 3.
    assert slab_order(8192, PS) == MAX_SLAB_ORDER and (PS << MAX_SLAB_ORDER) // 8192 == 4


def test_fast_table(w):
    fast = w.sa.fast
    assert 0 not in fast and -64 not in fast and KMALLOC_MAX_SIZE + 1 not in fast
    assert [fast[n].size for n in (1, 64, 65, 128, 129, 192, 193, 4096, 4097, 8192)] == \
        [64, 64, 128, 128, 192, 192, 256, 4096, 8192, 8192]
    assert all(fast[n].nid == 1 for n in fast)          # any-node: the last node at first
    coarse = World(align=PS)
    assert {c.size for c in coarse.sa.fast.values()} == {4096, 8192}
    assert len(coarse.sa.fast) == KMALLOC_MAX_SIZE
    assert {n for n, c in coarse.sa.fast.items() if c.size == 4096} == set(range(1, PS + 1))
    assert coarse.sa.index(1, 8) == idx(4096)         # one granule at least
    coarse.close()


# -- slabs: carving, order of slots, reuse --------------------------------------------------------

def test_new_slab_simple(w):
    s = w.take(idx(64))
    slab = s.slab
    top = PHYS_BASE + 2 * SZ_64K
    # The slab is the highest free page (memblock top-down), the slot its highest 64 bytes.
    assert (slab.base, slab.nbytes, slab.nid, slab.order) == (top - PS, PS, 1, -1)
    assert s.phys == top - 64 and s.off == PS - 64 and s.csize == 64
    assert s.home is slab.free and s.state == LIVE and s.nid == 1
    assert s.boff == s.phys - (w.pm.exporter()[1]) and w.pm.phys_of(s.view) == s.phys
    assert reserved(w) == [(top - PS, PS)]
    assert w.got == [(PS, 0, NUMA_NO_NODE, False)]
    assert slab.is_cur and slab.cache.cur is slab and slab.inuse == 1 and slab.nslots == 64
    assert (w.sa.nslabs, w.sa.slab_bytes) == (1, PS)
    assert w.sa.targets[idx(64)] is slab.cache
    w.sa.check()


def test_slots_top_down_never_overlap(w):
    slots = [w.take(idx(192)) for _ in range(40)]      # 21 slots a page: two slabs
    spans = sorted((s.phys, s.phys + s.csize) for s in slots)
    assert all(a_end <= b for (_, a_end), (b, _) in itertools.pairwise(spans))
    assert all(s.phys % 64 == 0 for s in slots)
    first = slots[0].slab
    assert [s.phys for s in slots[:3]] == [first.base + 20 * 192, first.base + 19 * 192,
                                           first.base + 18 * 192]
    assert w.sa.nslabs == 2 and slots[-1].slab is not first and slots[-1].slab.is_cur
    for i, s in enumerate(slots):               # a fill pattern in every slot survives
        s.view[:] = i + 1
    for i, s in enumerate(slots):
        assert (w.pm.view(s.phys, s.csize) == i + 1).all()
    w.sa.check()


def test_slot_reused_last_in_first_out(w):
    a, b = w.take(idx(64)), w.take(idx(64))
    w.give(a)
    assert w.take(idx(64)) is a
    w.give(b)
    w.give(a)
    assert w.take(idx(64)) is a and w.take(idx(64)) is b
    assert w.sa.nslabs == 1 and len(w.got) == 1


def test_new_slab_is_zeroed_and_untouched(w):
    top = PHYS_BASE + 2 * SZ_64K
    w.pm.fill(top - PS, PS, 0x77)                 # old contents where the slab will go
    s = w.take(idx(64))
    assert not w.pm.view(s.slab.base, PS).any()
    fresh = World()
    s2 = fresh.take(idx(4096))
    assert fresh.pm.resident_bytes() == 0          # never-written pages were not touched
    assert s2.slab.nbytes == 8 * PS
    fresh.close()


# -- partial lists, the spare empty slab, discard and shrink --------------------------------------

def test_full_slab_becomes_partial(w):
    slots = [w.take(idx(512)) for _ in range(16)]  # two one-page slabs of 8
    first, second = slots[0].slab, slots[8].slab
    assert first is not second and second.is_cur and not first.free
    cache = second.cache
    assert cache.partial == []
    w.give(slots[3])
    assert cache.partial == [first]
    w.give(slots[9])                               # the current slab: no list changes
    assert cache.partial == [first]
    w.sa.check()


def test_refill_prefers_current_then_partial(w):
    slots = [w.take(idx(512)) for _ in range(16)]
    first, second = slots[0].slab, slots[8].slab
    w.give(slots[0])                               # first: partial, one free slot
    got = w.take(idx(512))                         # second is full: refill takes first
    assert got is slots[0] and first.is_cur and not second.is_cur
    assert len(w.got) == 2                         # no new slab
    w.sa.check()


def test_empty_slab_kept_as_spare_then_discarded(w):
    slots = [w.take(idx(512)) for _ in range(24)]  # three slabs, the last current
    a, b, c = slots[0].slab, slots[8].slab, slots[16].slab
    for s in slots[:8]:
        w.give(s)
    assert a in c.cache.partial and w.put == []    # the only empty one: kept as the spare
    for s in slots[8:16]:
        w.give(s)
    assert w.put == [b.base]                        # a second empty one goes back
    assert c.cache.partial == [a] and w.sa.nslabs == 2
    assert all(w.sa.find(s.phys) == (None, None) for s in slots[8:16])
    for s in slots[16:]:
        w.give(s)                                   # the current slab empties: it stays
    assert c.is_cur and w.sa.nslabs == 2
    w.sa.check()
    assert w.sa.empty_slabs() == sorted([a, c], key=lambda s: s.base)


def test_empty_slab_discarded_when_current_is_empty(w):
    slots = [w.take(idx(512)) for _ in range(9)]   # a full, b current with one slot
    a, b = slots[0].slab, slots[8].slab
    w.give(slots[8])                                # b (current) empty
    for s in slots[:8]:
        w.give(s)
    assert w.put == [a.base] and w.sa.nslabs == 1 and b.is_cur


def test_shrink(w):
    keep = w.take(idx(64))
    slots = [w.take(idx(1024)) for _ in range(10)]
    for s in slots:
        w.give(s)
    before = w.sa.slab_bytes
    assert w.sa.shrink(w.put_pages) == before - PS   # everything but keep's slab
    assert w.sa.nslabs == 1 and w.sa.find(keep.phys) == (keep.slab, keep)
    assert w.sa.cache(idx(1024), NUMA_NO_NODE).cur is None
    assert w.sa.cache(idx(1024), NUMA_NO_NODE).free == []
    assert reserved(w) == [(keep.slab.base, PS)]
    w.sa.check()
    s = w.take(idx(1024))                             # a new slab after the shrink
    assert s is not None and w.sa.nslabs == 2
    w.give(keep)
    w.give(s)
    assert w.sa.shrink(w.put_pages) == PS + 2 * PS and w.sa.nslabs == 0 and reserved(w) == []
    assert w.sa.pages == {} and w.sa.slab_bytes == 0
    w.sa.check()


# -- nodes -------------------------------------------------------------------------------------

def test_per_node_caches(w):
    s0 = w.take(idx(64), nid=0)
    s1 = w.take(idx(64), nid=1)
    assert (s0.slab.nid, s1.slab.nid) == (0, 1)
    assert s0.slab.base == PHYS_BASE + SZ_64K - PS    # the top of node 0
    assert w.got[0][2:] == (0, True)                   # node requests: that node only
    assert s0.slab.cache is w.sa.caches[0][idx(64)] and s0.slab.cache is not s1.slab.cache
    assert w.sa.cache(idx(64), 0) is s0.slab.cache
    w.sa.check()


def test_node_full_changes_nothing(w):
    node1 = w.pm.slices[1]
    w.mb.reserve(node1.phys_start, node1.size - PS // 2)   # less than a page left on node 1
    before = (reserved(w), w.sa.nslabs, dict(w.sa.pages))
    assert w.take(idx(64), nid=1) is None
    assert (reserved(w), w.sa.nslabs, dict(w.sa.pages)) == before
    s = w.take(idx(64))                                     # any node: lands on node 0
    assert s.slab.nid == 0 and w.sa.targets[idx(64)].nid == 0
    assert w.sa.fast[64] is w.sa.caches[0][idx(64)]         # the fast table follows
    w.sa.check()


def test_any_node_takes_room_on_other_nodes_first(w):
    first = w.take(idx(512))                     # any node: a slab at the top, node 1
    t = w.take(idx(512), nid=0)                  # a node-0 slab with 7 free slots
    assert (first.slab.nid, t.slab.nid) == (1, 0)
    for _ in range(7):                            # the any-node target (node 1) fills up
        assert w.take(idx(512)).slab is first.slab
    assert w.sa.targets[idx(512)].nid == 1 and not first.slab.free
    s = w.take(idx(512))                         # room on node 0: no new slab
    assert s.slab is t.slab and w.sa.targets[idx(512)].nid == 0 and w.sa.nslabs == 2
    assert w.sa.fast[512] is t.slab.cache
    w.sa.check()


def test_memory_exhausted_returns_none(w):
    w.mb.reserve(PHYS_BASE, 2 * SZ_64K - PS)      # one page left
    assert w.take(idx(64)) is not None
    assert w.take(idx(1024)) is None              # needs two pages
    w.sa.check()


# -- lookup ------------------------------------------------------------------------------------

def test_find(w):
    s = w.take(idx(96))
    slab = s.slab
    assert w.sa.find(s.phys) == (slab, s)
    assert w.sa.find(s.phys + 1) == (slab, None)
    assert w.sa.find(slab.base + 42 * 96) == (slab, None)  # the unused tail of the page
    assert w.sa.find(slab.base + 42 * 96 + 32) == (slab, None)
    assert w.sa.find(slab.base - 1) == (None, None)
    assert w.sa.find(slab.base) == (slab, slab.slots[0])
    assert list(w.sa.in_use()) == [s] and list(w.sa.slabs()) == [slab]


# -- faults, lifetime, checks ------------------------------------------------------------------

@pytest.mark.parametrize("step", ["view", "zero"])
def test_failing_memory_gives_pages_back(w, step):
    before = reserved(w)
    with mock.patch.object(w.pm, step, side_effect=MemoryError("injected")):
        with pytest.raises(MemoryError, match="injected"):
            w.take(idx(64))
    assert reserved(w) == before and w.sa.nslabs == 0 and w.sa.pages == {}
    assert w.sa.cache(idx(64), NUMA_NO_NODE).cur is None
    w.sa.check()
    assert w.take(idx(64)) is not None


def test_slab_layer_holds_no_view(w):
    # Slabs in use, spare and partial, on both nodes; then every array the world made is
    # dropped. The allocator stays alive with slots in use, and the memory still closes:
    # nothing in the slab layer exports the mapping.
    used = [w.take(idx(64)), w.take(idx(512), nid=0), w.take(idx(4096))]
    spare = [w.take(idx(1024)) for _ in range(4)]
    for s in spare:
        s.view[:] = 5
        w.give(s)
    for s in used:
        s.view[:] = 7
    assert w.sa.nslabs == 4 and all(s.state == LIVE for s in used)
    w.sa.check()
    w.sa.retire()
    w.drop_views()
    w.pm.close()                          # raises LiveViewsError if anything holds a view
    assert w.pm.closed and w.sa.nslabs == 4 and all(s.state == LIVE for s in used)


def test_check_catches_broken_invariants(w):
    s = w.take(idx(64))
    w.sa.check()
    s.home.append(s)                      # in use and on the freelist
    with pytest.raises(AssertionError, match="neither in use nor free, or both") as ei:
        w.sa.check()
    assert "slabinfo - version: 2.1" in str(ei.value)
    s.home.pop()
    s.home.append(s.slab.free[0])         # twice on the freelist
    with pytest.raises(AssertionError, match="twice"):
        w.sa.check()
    s.home.pop()
    s.state = FREE                        # marked free but on no freelist
    with pytest.raises(AssertionError, match="neither in use nor free, or both"):
        w.sa.check()
    s.state = LIVE
    home, s.home = s.home, []             # its home is not its slab's freelist
    with pytest.raises(AssertionError, match="misplaced"):
        w.sa.check()
    s.home = home
    w.sa.nslabs += 1
    with pytest.raises(AssertionError, match="slab count"):
        w.sa.check()
    w.sa.nslabs -= 1
    w.sa.check()


def test_slabinfo(w):
    for _ in range(3):
        w.take(idx(64))
    w.take(idx(4096))
    lines = w.sa.slabinfo().splitlines()
    assert lines[0] == "slabinfo - version: 2.1" and lines[1].startswith("# name")
    assert lines[2].split() == ["kmalloc-4096", "1", "8", "4096", "8", "8", ":", "tunables",
                                "0", "0", "0", ":", "slabdata", "1", "1", "0"]
    assert lines[3].split()[:6] == ["kmalloc-64", "3", "64", "64", "64", "1"]
    assert len(lines) == 4


def test_slot_and_slab_repr(w):
    s = w.take(idx(128))
    assert "kmalloc-128" in repr(s) and "in use" in repr(s)
    assert "1/32 in use" in repr(s.slab) and "kmalloc-128 node 1" in repr(s.slab.cache)
    assert w.pm.phys_of(s.view) == s.phys and s.view.nbytes == 128
