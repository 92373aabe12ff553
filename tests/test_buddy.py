"""Tests of arena.buddy.BuddyAllocator: hand-over, split and merge, allocation policy, node
fallback, bad input, the /proc formats, check(), and a model-based stateful test against a
page bitmap."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from arena.buddy import MAX_PAGE_ORDER, NUMA_NO_NODE, BuddyAllocator, BuddyBug
from arena.errors import ClosedError, DoubleFreeError, ForeignBufferError, LiveViewsError
from arena.memblock import Memblock
from arena.physmem import PhysicalMemory

PAGE = 4096


def kernel_blocks(spfn: int, epfn: int, max_order: int = MAX_PAGE_ORDER):
    """The kernel's chunking of ``[spfn, epfn)`` into buddy blocks, written
    independently of arena.memblock: ``(pfn, order)`` pairs in ascending order."""
    while spfn < epfn:
        order = max_order if spfn == 0 else min(max_order, (spfn & -spfn).bit_length() - 1)
        while spfn + (1 << order) > epfn:
            order -= 1
        yield spfn, order
        spfn += 1 << order


def hand_over(b: BuddyAllocator, spfn: int, epfn: int, nid: int = 0) -> None:
    """What memblock's free_all does for one free range."""
    for pfn, order in kernel_blocks(spfn, epfn, b.max_order):
        b.boot_free(pfn, order, nid)


def state(b: BuddyAllocator) -> str:
    """The whole state, for "nothing changed" assertions."""
    return b.dump(limit=1 << 30)


def free_area_of(b: BuddyAllocator, nid: int = 0) -> list[int]:
    return list(b.free_area(nid))


@pytest.fixture
def pm():
    mem = PhysicalMemory(16 << 20, phys_base=1 << 30)
    yield mem
    gc.collect()
    mem.close()


# -- construction ---------------------------------------------------------------------------

def test_defaults():
    b = BuddyAllocator()
    assert (b.page_size, b.max_order, b.physmem, b.nodes) == (4096, MAX_PAGE_ORDER, None, [])
    assert b.nr_free_pages() == 0 and b.managed_pages() == 0
    assert b.buddyinfo() == "" and b.zoneinfo() == ""
    b.check()


@pytest.mark.parametrize("kwargs, exc", [
    ({"page_size": 0}, ValueError), ({"page_size": 3000}, ValueError),
    ({"page_size": 4096.0}, TypeError), ({"page_size": True}, TypeError),
    ({"max_order": -1}, ValueError), ({"max_order": 63}, ValueError),
    ({"max_order": "10"}, TypeError), ({"max_order": None}, TypeError),
])
def test_bad_parameters(kwargs, exc):
    with pytest.raises(exc):
        BuddyAllocator(**kwargs)


# -- hand-over (boot_free) ------------------------------------------------------------------

def test_boot_free_simple():
    b = BuddyAllocator()
    b.boot_free(1024, 10, 0)
    assert b.nodes == [0]
    assert (b.nr_free_pages(), b.managed_pages(), b.nr_free_pages(0)) == (1024, 1024, 1024)
    assert free_area_of(b) == [0] * 10 + [1]
    assert list(b.free_blocks()) == [(1024, 10, 0)]
    b.check()


def test_boot_free_merges_buddies():
    b = BuddyAllocator()
    b.boot_free(5, 0, 0)
    b.boot_free(4, 0, 0)            # buddy of 5: merges to order 1 at 4
    assert list(b.free_blocks()) == [(4, 1, 0)]
    b.boot_free(6, 1, 0)            # buddy of 4/1: merges to order 2 at 4
    assert list(b.free_blocks()) == [(4, 2, 0)]
    b.check()


def test_boot_free_no_merge_beyond_max_order():
    b = BuddyAllocator(max_order=3)
    b.boot_free(0, 3, 0)
    b.boot_free(8, 3, 0)
    assert list(b.free_blocks()) == [(0, 3, 0), (8, 3, 0)]
    b.check()


def test_boot_free_no_merge_across_nodes():
    b = BuddyAllocator()
    b.boot_free(0, 0, 0)
    b.boot_free(1, 0, 1)
    assert list(b.free_blocks()) == [(0, 0, 0), (1, 0, 1)]
    assert (b.nr_free_pages(0), b.nr_free_pages(1), b.nodes) == (1, 1, [0, 1])
    b.check()


def test_boot_free_kernel_chunks_merge_back():
    """Freeing [1, 37) in the kernel's chunks leaves exactly those blocks (nothing merges)."""
    b = BuddyAllocator()
    hand_over(b, 1, 37)
    assert sorted((p, o) for p, o, _ in b.free_blocks()) == list(kernel_blocks(1, 37))
    assert b.nr_free_pages() == 36
    b.check()


def test_boot_free_goes_to_tail():
    """Pages from memblock queue at the tail (FPI_TO_TAIL): allocation takes them in order."""
    b = BuddyAllocator()
    for pfn in (10, 20, 30):
        b.boot_free(pfn, 0, 0)
    assert [b.alloc_pages_phys(0) // PAGE for _ in range(3)] == [10, 20, 30]


@pytest.mark.parametrize("args, exc", [
    ((0, -1, 0), ValueError), ((0, 11, 0), ValueError), ((0, 1.0, 0), TypeError),
    ((0, True, 0), TypeError), ((0, None, 0), TypeError), ((0, "0", 0), TypeError),
    ((-1, 0, 0), ValueError), ((3, 1, 0), ValueError), ((2.0, 0, 0), TypeError),
    ((2, 0, -1), ValueError), ((2, 0, None), TypeError), ((2, 0, False), TypeError),
    ((64, 0, 0), ValueError),       # already managed (inside the order-6 block at 64)
    ((0, 7, 0), ValueError),        # overlaps the block at 64
    ((64, 6, 1), ValueError),       # same pages, other node
])
def test_boot_free_bad_input_changes_nothing(args, exc):
    b = BuddyAllocator()
    b.boot_free(64, 6, 0)
    before = state(b)
    with pytest.raises(exc):
        b.boot_free(*args)
    assert state(b) == before
    b.check()


def test_boot_free_numpy_integers():
    b = BuddyAllocator()
    b.boot_free(np.uint64(8), np.int32(3), np.int8(0))
    assert list(b.free_blocks()) == [(8, 3, 0)]


def test_boot_free_outside_physmem(pm):
    b = BuddyAllocator(pm)
    base = pm.phys_base // PAGE
    end = pm.phys_end // PAGE
    for pfn, order in ((base - 1, 0), (end, 0), (base - 1024, 10), (end, 10)):
        with pytest.raises(ValueError, match="outside physical memory"):
            b.boot_free(pfn, order, 0)
    assert state(b) == state(BuddyAllocator(pm))


# -- split and merge ------------------------------------------------------------------------

@pytest.mark.parametrize("order", range(MAX_PAGE_ORDER + 1))
def test_split_merge_round_trip(order):
    b = BuddyAllocator()
    b.boot_free(1024, 10, 0)
    phys = b.alloc_pages_phys(order)
    assert phys == 1024 * PAGE                       # the lower half is kept
    assert free_area_of(b) == [0] * order + [1] * (10 - order) + [0]
    assert b.nr_free_pages() == 1024 - (1 << order)
    b.check()
    b.free_pages(phys, order)
    assert list(b.free_blocks()) == [(1024, 10, 0)]
    assert b.nr_free_pages() == 1024
    b.check()


def test_alloc_smallest_order_first():
    b = BuddyAllocator()
    b.boot_free(1024, 10, 0)
    b.boot_free(7, 0, 0)
    assert b.alloc_pages_phys(0) == 7 * PAGE       # the order-0 block, not a split
    assert free_area_of(b) == [0] * 10 + [1]


def test_free_is_lifo():
    """A freed page goes to the head of its list and is handed out next."""
    b = BuddyAllocator()
    b.boot_free(1024, 10, 0)
    pages = [b.alloc_pages_phys(0) for _ in range(4)]        # 1024..1027
    b.boot_free(9, 0, 0)
    b.free_pages(pages[2], 0)         # 1026: its order-1 buddy 1024/1 is not free: head
    assert [pfn for pfn, o, _ in b.free_blocks() if o == 0] == [1026, 9]
    assert b.alloc_pages_phys(0) == pages[2]
    b.check()


def test_free_to_tail_when_merge_likely():
    """buddy_merge_likely: a freed block whose next-order buddy is free goes to the tail."""
    b = BuddyAllocator()
    b.boot_free(1024, 10, 0)
    a = b.alloc_pages_phys(1)         # 1024/1; halves 1026/1, 1028/2, ... free
    c = b.alloc_pages_phys(0)         # 1026 (1027 free)
    d = b.alloc_pages_phys(0)         # 1027
    assert (a, c, d) == (1024 * PAGE, 1026 * PAGE, 1027 * PAGE)
    b.boot_free(2, 1, 0)
    b.boot_free(9, 0, 0)
    b.free_pages(a, 1)                # buddy 1026/1 busy, but 1028/2 free: tail
    assert [pfn for pfn, o, _ in b.free_blocks() if o == 1] == [2, 1024]
    b.free_pages(d, 0)                # buddy 1026 busy, but 1024/1 free: tail
    assert [pfn for pfn, o, _ in b.free_blocks() if o == 0] == [9, 1027]
    b.free_pages(c, 0)                # merges all the way back
    assert sorted(b.free_blocks()) == [(2, 1, 0), (9, 0, 0), (1024, 10, 0)]
    b.check()


def test_many_orders_fill_and_drain():
    b = BuddyAllocator()
    hand_over(b, 3, 3000)
    total = b.nr_free_pages()
    got = []
    for order in (0, 3, 1, 5, 0, 2, 7, 4):
        phys = b.alloc_pages_phys(order)
        assert phys is not None and phys % (PAGE << order) == 0
        got.append((phys, order))
        b.check()
    spans = sorted((p // PAGE, p // PAGE + (1 << o)) for p, o in got)
    assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:], strict=False))     # disjoint
    for phys, order in reversed(got):
        b.free_pages(phys, order)
        b.check()
    assert b.nr_free_pages() == total
    assert sorted((p, o) for p, o, _ in b.free_blocks()) == list(kernel_blocks(3, 3000))


# -- allocation failure and nodes -----------------------------------------------------------

def test_alloc_fails_returns_none_state_kept():
    b = BuddyAllocator()
    b.boot_free(0, 3, 0)
    b.boot_free(16, 3, 0)
    before = state(b)
    assert b.alloc_pages_phys(4) is None
    assert state(b) == before


def test_alloc_empty_allocator():
    b = BuddyAllocator()
    assert b.alloc_pages_phys(0) is None
    with pytest.raises(ValueError, match="unknown node"):
        b.alloc_pages_phys(0, node=0)


@pytest.fixture
def two_nodes():
    b = BuddyAllocator()
    b.boot_free(0, 4, 0)        # node 0: pages 0..15
    b.boot_free(64, 6, 1)       # node 1: pages 64..127
    b.boot_free(256, 2, 2)      # node 2: pages 256..259
    return b


def test_numa_any_node_lowest_first(two_nodes):
    b = two_nodes
    assert b.alloc_pages_phys(0) == 0
    assert b.alloc_pages_phys(0, node=NUMA_NO_NODE) == 1 * PAGE
    assert b.alloc_pages_phys(5) == 64 * PAGE        # node 0 has no order-5 block
    b.check()


def test_numa_preferred_node(two_nodes):
    b = two_nodes
    assert b.alloc_pages_phys(0, node=2) == 256 * PAGE
    assert b.alloc_pages_phys(0, node=1) == 64 * PAGE


def test_numa_fallback_ascending(two_nodes):
    b = two_nodes
    assert b.alloc_pages_phys(3, node=2) == 0          # node 2 too small: node 0 next
    assert b.alloc_pages_phys(4, node=2) == 64 * PAGE  # node 0 too small now: node 1
    assert b.alloc_pages_phys(6, node=2) is None
    b.check()


def test_numa_strict_node(two_nodes):
    b = two_nodes
    before = state(b)
    assert b.alloc_pages_phys(3, node=2, strict_node=True) is None
    assert state(b) == before
    assert b.alloc_pages_phys(2, node=2, strict_node=True) == 256 * PAGE
    assert b.nr_free_pages(2) == 0


def test_numa_counts(two_nodes):
    b = two_nodes
    b.alloc_pages_phys(2, node=1)
    assert [b.nr_free_pages(n) for n in (0, 1, 2)] == [16, 60, 4]
    assert [b.managed_pages(n) for n in (0, 1, 2)] == [16, 64, 4]
    assert (b.nr_free_pages(), b.managed_pages()) == (80, 84)


@pytest.mark.parametrize("kwargs, exc", [
    ({"order": -1}, ValueError), ({"order": 11}, ValueError), ({"order": 1.0}, TypeError),
    ({"order": True}, TypeError), ({"order": None}, TypeError),
    ({"order": 0, "node": 3}, ValueError), ({"order": 0, "node": -2}, ValueError),
    ({"order": 0, "node": "1"}, TypeError), ({"order": 0, "node": 1.0}, TypeError),
    ({"order": 0, "node": True}, TypeError), ({"order": 0, "strict_node": 1}, TypeError),
    ({"order": 0, "strict_node": None}, TypeError),
])
def test_alloc_bad_input_changes_nothing(two_nodes, kwargs, exc):
    b = two_nodes
    before = state(b)
    with pytest.raises(exc):
        b.alloc_pages_phys(**kwargs)
    assert state(b) == before


NP_INTS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


@pytest.mark.parametrize("kind", NP_INTS)
def test_numpy_integer_arguments_are_converted_first(kind):
    """numpy integers of every width work as order and node: an ``int8`` order used to take
    the block off the free list and then overflow in the page counters (1024 free pages do
    not fit an int8), leaving ``nr_free_pages`` wrong and ``check()`` failing."""
    b = BuddyAllocator()
    b.boot_free(0, 10, 0)
    b.boot_free(1024, 10, 1)
    assert b.alloc_pages_phys(kind(7), node=kind(1)) == 1024 * PAGE
    assert b.nr_free_pages(kind(1)) == 1024 - 128 and b.nr_free_pages() == 2048 - 128
    b.check()
    b.free_pages(1024 * PAGE, kind(7))
    assert b.nr_free_pages() == 2048
    assert list(b.free_blocks()) == [(0, 10, 0), (1024, 10, 1)]
    b.check()


@pytest.mark.parametrize("kind", NP_INTS)
def test_numpy_integer_order_for_views(pm, kind):
    b = BuddyAllocator(pm)
    base = pm.phys_base // PAGE
    hand_over(b, base, base + 1024)
    v = b.alloc_pages(kind(7), node=kind(0), strict_node=np.bool_(True))
    assert v.nbytes == 128 * PAGE and b.nr_free_pages() == 1024 - 128
    b.check()
    b.free_pages(v, kind(7))
    assert b.nr_free_pages() == 1024
    b.check()
    del v


@pytest.mark.parametrize("method", ["nr_free_pages", "managed_pages", "free_area", "free_blocks"])
def test_queries_unknown_node(two_nodes, method):
    with pytest.raises(ValueError, match="unknown node"):
        list(getattr(two_nodes, method)(5) or ())


# -- free_pages: bad input ------------------------------------------------------------------

@pytest.fixture
def busy():
    """Pages 64..127 on node 0; allocated: 64/2 (64..67) and 68/0; 69 and the rest free."""
    b = BuddyAllocator()
    b.boot_free(64, 6, 0)
    assert b.alloc_pages_phys(2) == 64 * PAGE
    assert b.alloc_pages_phys(0) == 68 * PAGE
    return b


@pytest.mark.parametrize("addr, order, exc, match", [
    (69 * PAGE, 0, DoubleFreeError, "already free"),       # free page
    (96 * PAGE, 5, DoubleFreeError, "already free"),       # free block of order 5
    (100 * PAGE, 0, DoubleFreeError, "already free"),      # inside a free block
    (65 * PAGE, 0, ForeignBufferError, "not its start"),   # inside an allocation
    (64 * PAGE, 1, ForeignBufferError, "order 2"),         # wrong order
    (68 * PAGE, 1, ForeignBufferError, "order 0"),         # wrong order
    (8 * PAGE, 0, ForeignBufferError, "not allocated"),    # never managed
    (200 * PAGE, 0, ForeignBufferError, "not allocated"),  # never managed
    (64 * PAGE + 1, 2, ForeignBufferError, "not a page"),  # misaligned
    (-PAGE, 0, ForeignBufferError, "not a page"),
    (64 * PAGE, -1, ValueError, "out of range"),
    (64 * PAGE, 11, ValueError, "out of range"),
    (64.0 * PAGE, 2, TypeError, "int"),
    ("0x40000", 2, TypeError, "int"),
    (None, 2, TypeError, "int"),
    (True, 0, TypeError, "int"),
    (64 * PAGE, 2.0, TypeError, "int"),
])
def test_free_bad_input_changes_nothing(busy, addr, order, exc, match):
    before = state(busy)
    with pytest.raises(exc, match=match):
        busy.free_pages(addr, order)
    assert state(busy) == before
    busy.check()


def test_free_twice(busy):
    busy.free_pages(68 * PAGE, 0)            # merges with 69 and up
    before = state(busy)
    with pytest.raises(DoubleFreeError):
        busy.free_pages(68 * PAGE, 0)
    assert state(busy) == before


def test_free_numpy_integer_address(busy):
    busy.free_pages(np.uint64(68 * PAGE), np.int64(0))
    busy.free_pages(np.int64(64 * PAGE), 2)
    assert list(busy.free_blocks()) == [(64, 6, 0)]


# -- views over physical memory ------------------------------------------------------------

def test_alloc_pages_view(pm):
    b = BuddyAllocator(pm)
    base = pm.phys_base // PAGE
    hand_over(b, base, base + 2048)
    v = b.alloc_pages(3)
    assert v.dtype == np.uint8 and v.shape == (8 * PAGE,) and v.flags.writeable
    assert pm.phys_of(v) == pm.phys_base
    assert v.__array_interface__["data"][0] % (8 * PAGE) == 0     # real address aligned too
    v[:] = 0xAB
    assert pm.read(pm.phys_base, 8 * PAGE) == b"\xab" * (8 * PAGE)
    w = b.alloc_pages(0, node=0, strict_node=True)
    assert pm.phys_of(w) == pm.phys_base + 8 * PAGE
    b.free_pages(v, 3)
    b.free_pages(w, 0)
    assert b.nr_free_pages() == 2048
    b.check()


def test_alloc_pages_view_failure(pm):
    b = BuddyAllocator(pm)
    assert b.alloc_pages(0) is None


def test_alloc_pages_without_physmem():
    b = BuddyAllocator()
    b.boot_free(0, 0, 0)
    before = state(b)
    with pytest.raises(ValueError, match="no physmem"):
        b.alloc_pages(0)
    assert state(b) == before
    with pytest.raises(ForeignBufferError, match="no physmem"):
        b.free_pages(np.zeros(PAGE, np.uint8), 0)


def test_free_bad_views_change_nothing(pm):
    b = BuddyAllocator(pm)
    base = pm.phys_base // PAGE
    hand_over(b, base, base + 64)
    v = b.alloc_pages(2)
    before = state(b)
    bad = [
        (v[:PAGE], 2, "not a whole order-2"),        # part of the allocation
        (v[PAGE:], 2, "not a whole order-2"),
        (v, 1, "not a whole order-1"),               # wrong order
        (v.copy(), 2, "does not lie"),               # a copy
        (np.zeros(4 * PAGE, np.uint8), 2, "does not lie"),
        (pm.view(pm.phys_base + 32 * PAGE, 4 * PAGE), 2, "already free"),
    ]
    for arr, order, match in bad:
        with pytest.raises((ForeignBufferError, DoubleFreeError), match=match):
            b.free_pages(arr, order)
        assert state(b) == before
    b.free_pages(v, 2)
    b.check()


def test_free_after_close():
    mem = PhysicalMemory(1 << 20)
    b = BuddyAllocator(mem)
    b.boot_free(0, 8, 0)
    phys = b.alloc_pages_phys(0)
    gc.collect()
    mem.close()
    arr = np.zeros(PAGE, np.uint8)
    with pytest.raises(ClosedError):
        b.free_pages(arr, 0)
    b.free_pages(phys, 0)      # by address, the bookkeeping still works


# -- kernel output formats ------------------------------------------------------------------

def test_buddyinfo_format():
    b = BuddyAllocator(max_order=3)
    b.boot_free(1, 0, 0)
    b.boot_free(4, 2, 0)
    b.boot_free(8, 2, 0)
    b.boot_free(16, 3, 0)
    b.boot_free(40, 1, 3)
    assert b.buddyinfo() == (
        "Node 0, zone   Normal      1      0      2      1 \n"
        "Node 3, zone   Normal      0      1      0      0 \n"
    )


def test_buddyinfo_default_orders():
    b = BuddyAllocator()
    b.boot_free(0, 10, 0)
    line = b.buddyinfo()
    assert line == "Node 0, zone   Normal " + "     0 " * 10 + "     1 \n"
    assert len(line.split()) == 4 + 11


def test_zoneinfo_without_memblock(two_nodes):
    b = two_nodes
    b.alloc_pages_phys(1, node=1)
    assert b.zoneinfo() == (
        "Node 0, zone   Normal\n  pages free     16\n        spanned  16\n"
        "        present  16\n        managed  16\n        reserved 0\n"
        "Node 1, zone   Normal\n  pages free     62\n        spanned  64\n"
        "        present  64\n        managed  64\n        reserved 0\n"
        "Node 2, zone   Normal\n  pages free     4\n        spanned  4\n"
        "        present  4\n        managed  4\n        reserved 0\n"
    )


def memblock_with(*regions):
    """A pure-simulation Memblock whose memory is the given ``(base, size, nid)`` regions."""
    mb = Memblock()
    for base, size, nid in regions:
        mb.add_node(base, size, nid)
    return mb


def test_zoneinfo_with_memblock():
    # node 0: [0x1000, 0x11800) -> pfns 1..16 (partial last page dropped), hole, [0x20000, 0x30000)
    # node 1: [0x100000, 0x104000) all reserved (no managed pages); node 2 not in memory at all
    mb = memblock_with((0x1000, 0x10800, 0), (0x20000, 0x10000, 0), (0x100000, 0x4000, 1))
    b = BuddyAllocator()
    hand_over(b, 2, 16)
    hand_over(b, 32, 40)
    b.boot_free(50, 0, 2)
    assert b.zoneinfo(mb) == (
        "Node 0, zone   Normal\n  pages free     22\n        spanned  47\n"
        "        present  32\n        managed  22\n        reserved 10\n"
        "Node 1, zone   Normal\n  pages free     0\n        spanned  4\n"
        "        present  4\n        managed  0\n        reserved 4\n"
        "Node 2, zone   Normal\n  pages free     1\n        spanned  0\n"
        "        present  0\n        managed  1\n        reserved 0\n"
    )
    assert b.buddyinfo(mb).splitlines()[1] == "Node 1, zone   Normal" + "      0" * 11 + " "


# -- check() --------------------------------------------------------------------------------

def corrupt_unmerged(b):
    b._free[0] = (0, 0)
    b._lists[0][0][0] = None
    b._free[1] = (0, 0)
    b._lists[0][0][1] = None


@pytest.mark.parametrize("corrupt, match", [
    (corrupt_unmerged, "not merged|managed range|cover"),
    (lambda b: b._nr_free.__setitem__(0, 5), "nr_free"),
    (lambda b: b._lists[0][3].__setitem__(64, None), "on list"),
    (lambda b: b._free.__setitem__(200, (0, 0)), "on the lists"),
    (lambda b: b._allocated.__setitem__(65, (1, 0)), "misaligned"),
    (lambda b: b._allocated.__setitem__(64, (0, 0)), "overlaps"),
    (lambda b: b._managed.__setitem__(0, 7), "managed counts"),
    (lambda b: (b._rend.__setitem__(0, 200), b._managed.__setitem__(0, 136)), "cover"),
])
def test_check_detects(corrupt, match):
    b = BuddyAllocator()
    b.boot_free(64, 6, 0)
    b.check()
    corrupt(b)
    with pytest.raises(BuddyBug, match=match) as info:
        b.check()
    assert isinstance(info.value, AssertionError)
    assert "BuddyAllocator: page_size=4096" in str(info.value)


def test_check_env_switch(monkeypatch):
    monkeypatch.setenv("ARENA_CHECK", "1")
    b = BuddyAllocator()
    b.boot_free(64, 6, 0)
    b._nr_free[0] += 1
    with pytest.raises(BuddyBug):
        b.alloc_pages_phys(0)


def test_dump_limit():
    b = BuddyAllocator()
    for pfn in range(1, 100, 2):
        b.boot_free(pfn, 0, 0)
    assert "... (+34)" in b.dump()
    assert "..." not in b.dump(limit=1000)


# -- model-based stateful test: random alloc/free against a page bitmap --------------------

SPAN = 4096     # pages of physical memory in the model


class BuddyMachine(RuleBasedStateMachine):
    """Drives a BuddyAllocator over real memory next to a page-level model.

    Model: per page, its node (-1 = not managed) and owner (0 = free, else the allocation's
    fill byte). Every allocation is filled with its byte, so an overlap shows as a lost write.
    """

    @initialize(
        max_order=st.integers(0, MAX_PAGE_ORDER),
        cuts=st.lists(st.integers(0, SPAN), min_size=2, max_size=8, unique=True),
        nids=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    )
    def setup(self, max_order, cuts, nids):
        self.pm = PhysicalMemory(SPAN * PAGE, phys_base=1 << 30)
        self.base = self.pm.phys_base // PAGE
        self.b = BuddyAllocator(self.pm, max_order=max_order)
        self.node = np.full(SPAN, -1, np.int64)
        self.owner = np.zeros(SPAN, np.int64)
        self.allocs: dict[int, tuple[int, np.ndarray, int]] = {}   # pfn -> (order, view, byte)
        self.next_byte = 1
        cuts = sorted(cuts)
        for (s, e), nid in zip(zip(cuts[::2], cuts[1::2], strict=False), nids, strict=False):
            hand_over(self.b, self.base + s, self.base + e, nid)
            self.node[s:e] = nid

    def teardown(self):
        if hasattr(self, "pm"):
            self.allocs.clear()
            try:
                self.pm.close()
            except LiveViewsError:      # a view kept alive by a traceback: collect it first
                gc.collect()
                self.pm.close()

    def nodes(self):
        return sorted(set(self.node[self.node >= 0].tolist()))

    def fits(self, order, nid):
        """An aligned range of 2**order pages, all free and all on node nid, exists.

        By the buddy invariant (free buddies always merged) such a range lies inside one free
        block of order >= order, so the allocator must find it."""
        n = 1 << order
        usable = (self.node == nid) & (self.owner == 0)
        usable = usable[: SPAN // n * n].reshape(-1, n)
        return bool(usable.all(axis=1).any())

    @rule(data=st.data(), order=st.integers(0, MAX_PAGE_ORDER), strict=st.booleans())
    def alloc(self, data, order, strict):
        assume(order <= self.b.max_order)
        nodes = self.nodes()
        node = data.draw(st.sampled_from([None, *nodes]))
        before = self.b.dump(limit=1 << 30)
        v = self.b.alloc_pages(order, node=node, strict_node=strict)
        if node is None:
            candidates = nodes
        elif strict:
            candidates = [node]
        else:
            candidates = [node] + [n for n in nodes if n != node]
        expect_nid = next((n for n in candidates if self.fits(order, n)), None)
        if v is None:
            assert expect_nid is None, f"order {order} fits on node {expect_nid} but alloc failed"
            assert self.b.dump(limit=1 << 30) == before
            return
        pfn = self.pm.phys_of(v) // PAGE - self.base
        n = 1 << order
        assert pfn % n == 0 and v.nbytes == n * PAGE
        assert (self.owner[pfn:pfn + n] == 0).all(), "allocated pages that are not free"
        assert (self.node[pfn:pfn + n] == expect_nid).all(), "wrong node"
        byte = self.next_byte
        self.next_byte = self.next_byte % 255 + 1
        v.fill(byte)
        self.owner[pfn:pfn + n] = byte
        self.allocs[pfn] = (order, v, byte)

    @precondition(lambda self: self.allocs)
    @rule(data=st.data(), by_view=st.booleans())
    def free(self, data, by_view):
        pfn = data.draw(st.sampled_from(sorted(self.allocs)))
        order, v, byte = self.allocs.pop(pfn)
        assert v.tobytes() == bytes([byte]) * v.nbytes, "an allocation's contents changed"
        self.b.free_pages(v if by_view else (self.base + pfn) * PAGE, order)
        self.owner[pfn:pfn + (1 << order)] = 0

    @rule(pfn=st.integers(-8, SPAN + 8), order=st.integers(-1, MAX_PAGE_ORDER + 1))
    def bad_free(self, pfn, order):
        # (only the order: a local holding the view would keep it alive past a failed assume)
        assume(self.allocs.get(pfn, (None,))[0] != order)
        before = self.b.dump(limit=1 << 30)
        if not 0 <= order <= self.b.max_order:
            expected: type[Exception] = ValueError
        elif 0 <= pfn < SPAN and self.node[pfn] >= 0 and self.owner[pfn] == 0:
            expected = DoubleFreeError
        else:
            expected = ForeignBufferError
        with pytest.raises(expected):
            self.b.free_pages((self.base + pfn) * PAGE, order)
        assert self.b.dump(limit=1 << 30) == before

    @rule(order=st.sampled_from([-3, -1, MAX_PAGE_ORDER + 1, 40]))
    def bad_order(self, order):
        before = self.b.dump(limit=1 << 30)
        with pytest.raises(ValueError):
            self.b.alloc_pages(order)
        assert self.b.dump(limit=1 << 30) == before

    @invariant()
    def consistent(self):
        if not hasattr(self, "b"):
            return
        self.b.check()
        for nid in self.nodes():
            managed = int((self.node == nid).sum())
            free = int(((self.node == nid) & (self.owner == 0)).sum())
            assert self.b.managed_pages(nid) == managed
            assert self.b.nr_free_pages(nid) == free
        assert self.b.nr_free_pages() == int(((self.node >= 0) & (self.owner == 0)).sum())


TestBuddyMachine = BuddyMachine.TestCase


def test_overlaps_managed_answers_for_whole_ranges():
    b = BuddyAllocator()
    b.boot_free(8, 3, 0)                     # pages [8, 16)
    assert not b.overlaps_managed(0, 8)
    assert b.overlaps_managed(0, 9)
    assert b.overlaps_managed(15)
    assert not b.overlaps_managed(16, 100)
    assert not b.overlaps_managed(10, 0)
    with pytest.raises(ValueError):
        b.overlaps_managed(-1)
    with pytest.raises(TypeError):
        b.overlaps_managed(1.0)
