"""memblock's hand-over to the buddy allocator: ``Memblock.free_all`` and ``free_late``.

The expected blocks are computed here independently of arena.memblock, from a page-level
model: a page is released iff it lies wholly inside a memory region that is neither NOMAP nor
DRIVER_MANAGED and no byte of it is reserved; each maximal run of such pages inside one region
is cut into buddy blocks by the kernel's rule (``kernel_blocks`` in test_buddy.py).
Only the memory region table (which regions are separate) is read from memblock after the
hand-over (its merging is tested by test_basic_api.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arena.buddy import BuddyAllocator
from arena.errors import HandoverError
from arena.memblock import Memblock, MemblockFlags
from tests.harness import NODE_FRACTIONS, PHYS_BASE, SZ_1M, SZ_4K
from tests.test_buddy import kernel_blocks

SZ_4M = 4 * SZ_1M
B = PHYS_BASE            # where the harness memory starts
BP = B // 4096

PAGE = 4096
SKIPPED = MemblockFlags.NOMAP | MemblockFlags.DRIVER_MANAGED


class Recorder:
    """A buddy allocator that also records every ``boot_free`` call, in order."""

    def __init__(self, physmem=None, max_order: int = 10) -> None:
        self.buddy = BuddyAllocator(physmem, max_order=max_order)
        self.calls: list[tuple[int, int, int]] = []

    @property
    def max_order(self) -> int:
        return self.buddy.max_order

    def boot_free(self, pfn: int, order: int, nid: int) -> None:
        self.calls.append((pfn, order, nid))
        self.buddy.boot_free(pfn, order, nid)


def expected_blocks(mb: Memblock, max_order: int = 10) -> list[tuple[int, int, int]]:
    """``(pfn, order, nid)`` of every block free_all must release, in order (see module doc)."""
    page = mb.page_size
    reserved = [(r.base, r.base + r.size) for r in mb.reserved.regions]
    out = []
    for region in mb.memory.regions:
        if region.flags & SKIPPED:
            continue
        nid = region.nid if 0 <= region.nid < mb.max_numnodes else 0
        first = -(-region.base // page)
        last = (region.base + region.size) // page
        if first >= last:
            continue
        busy = np.zeros(last - first + 2, bool)       # a busy sentinel at both ends
        busy[0] = busy[-1] = True
        for rs, re in reserved:
            lo, hi = max(rs // page, first), min(-(-re // page), last)
            if lo < hi:
                busy[lo - first + 1:hi - first + 1] = True
        edges = np.flatnonzero(np.diff(busy.astype(np.int8)))
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            out += [(p, o, nid) for p, o in kernel_blocks(first + int(start), first + int(end), max_order)]
    return out


def hand_over(mb: Memblock, physmem=None, max_order: int = 10) -> tuple[int, Recorder]:
    """free_all into a recording buddy; checks the calls against the model and the counts."""
    rec = Recorder(physmem, max_order)
    pages = mb.free_all(rec)
    assert rec.calls == expected_blocks(mb, max_order)
    assert pages == sum(1 << o for _, o, _ in rec.calls) == rec.buddy.nr_free_pages()
    assert rec.buddy.managed_pages() == pages
    rec.buddy.check()
    mb.check()
    return pages, rec


# -- literal cases --------------------------------------------------------------------------

def test_free_all_simple():
    mb = Memblock()
    mb.add(0x1000, 0x24000)                    # pfns [1, 37)
    pages, rec = hand_over(mb)
    assert pages == 36
    assert rec.calls == [(1, 0, 0), (2, 1, 0), (4, 2, 0), (8, 3, 0), (16, 4, 0), (32, 2, 0), (36, 0, 0)]


def _refusal_layout() -> Memblock:
    """Two nodes of memory, one part hot-pluggable, a reservation, NUMA: every pass of
    free_all (HOTPLUG clearing, nid stamping of reserved) would change something."""
    mb = Memblock()
    mb.add_node(0x100000, SZ_4M, 0)
    mb.add_node(0x100000 + SZ_4M, SZ_4M, 1)
    mb.mark_hotplug(0x200000, SZ_1M)
    mb.reserve(0x140000, 0x2800)
    mb.reserve(0x100000 + SZ_4M + 0x3000, 0x1000)
    return mb


def _assert_refused(mb: Memblock, buddy: BuddyAllocator, match: str) -> None:
    before = (mb.dump_all(log=False), mb.memory.max, mb.reserved.max, mb.kho_scratch_only)
    managed = buddy.managed_pages()
    with pytest.raises(ValueError, match=match):
        mb.free_all(buddy)
    assert (mb.dump_all(log=False), mb.memory.max, mb.reserved.max,
            mb.kho_scratch_only) == before
    assert not mb.handed_over
    assert buddy.managed_pages() == managed          # not one page handed over
    mb.check()
    buddy.check()


def test_free_all_refuses_another_page_size_before_the_first_page():
    mb = _refusal_layout()
    _assert_refused(mb, BuddyAllocator(page_size=2 * PAGE), "page_size")
    hand_over(mb)                                     # a fitting buddy still gets everything


def test_free_all_refuses_pages_outside_the_buddys_memory_before_the_first_page():
    """The buddy's memory covers the first node only: the second node's pages used to fail
    halfway, leaving the buddy with the first node while memblock had not handed over."""
    from arena.physmem import PhysicalMemory
    with PhysicalMemory(SZ_4M + SZ_1M) as pm:
        mb = _refusal_layout()
        _assert_refused(mb, BuddyAllocator(pm), "outside")


def test_free_all_refuses_pages_already_managed_before_the_first_page():
    mb = _refusal_layout()
    buddy = BuddyAllocator()
    buddy.boot_free((0x100000 + SZ_4M + SZ_1M) // PAGE, 0, 1)    # one page of node 1
    _assert_refused(mb, buddy, "already managed")


def test_free_all_from_pfn_zero():
    """pfn 0 starts with MAX_PAGE_ORDER (ctz(0) is not used)."""
    mb = Memblock()
    mb.add(0, 3 * 1024 * PAGE + 5 * PAGE)
    pages, rec = hand_over(mb)
    assert pages == 3077
    assert rec.calls == [(0, 10, 0), (1024, 10, 0), (2048, 10, 0), (3072, 2, 0), (3076, 0, 0)]


def test_free_all_max_order_from_buddy():
    mb = Memblock()
    mb.add(0, 64 * PAGE)
    pages, rec = hand_over(mb, max_order=3)
    assert pages == 64
    assert rec.calls == [(p, 3, 0) for p in range(0, 64, 8)]


def test_free_all_reserved_stays_out():
    mb = Memblock()
    mb.add(0x100000, SZ_1M)                    # pfns [256, 512)
    mb.reserve(0x140000, 0x2800)               # pfns 320, 321 and half of 322
    pages, rec = hand_over(mb)
    assert pages == 256 - 3
    assert rec.calls == [(256, 6, 0), (323, 0, 0), (324, 2, 0), (328, 3, 0), (336, 4, 0),
                         (352, 5, 0), (384, 7, 0)]
    assert all(not 320 <= p < 323 for p, o, _ in rec.buddy.free_blocks() for p in range(p, p + (1 << o)))


def test_free_all_odd_alignments():
    """Partial pages at either end of a free range are not released (PFN_UP / PFN_DOWN)."""
    mb = Memblock()
    mb.add(0x1234, 0x56789)                    # [0x1234, 0x579bd): whole pfns [2, 0x57)
    mb.reserve(0x5001, 1)                      # a one-byte reservation takes page 5
    mb.reserve(0x20fff, 0x1002)                # pages 0x20, 0x21 and 0x22
    pages, rec = hand_over(mb)
    assert pages == (0x57 - 2) - 1 - 3
    assert rec.calls[:3] == [(2, 1, 0), (4, 0, 0), (6, 1, 0)]


def test_free_all_holes():
    mb = Memblock()
    for base, size in ((0x10000, 0x7000), (0x40000, 0x100000), (0x400000, 0x3000), (0x800000, 0x800)):
        mb.add(base, size)
    pages, rec = hand_over(mb)
    assert pages == 7 + 256 + 3                # the last region holds no whole page
    assert max(p + (1 << o) for p, o, _ in rec.calls) == 0x403


def test_free_all_numa_nodes_adjacent():
    """Adjacent regions of different nodes are separate ranges: chunking restarts at the
    boundary, and the buddy allocator never merges across it."""
    mb = Memblock()
    mb.add_node(0, 3 * PAGE, 0)
    mb.add_node(3 * PAGE, 13 * PAGE, 1)
    mb.add_node(16 * PAGE, 16 * PAGE, 0)
    pages, rec = hand_over(mb)
    assert pages == 32
    assert rec.calls == [(0, 1, 0), (2, 0, 0), (3, 0, 1), (4, 2, 1), (8, 3, 1), (16, 4, 0)]
    assert (rec.buddy.nr_free_pages(0), rec.buddy.nr_free_pages(1)) == (19, 13)
    assert rec.buddy.nodes == [0, 1]


def test_free_all_nomap_and_driver_managed_skipped():
    mb = Memblock()
    mb.add(0x100000, 0x400000)
    mb.mark_nomap(0x200000, 0x100000)
    mb.add_node(0x600000, 0x100000, 0, MemblockFlags.DRIVER_MANAGED)
    pages, rec = hand_over(mb)
    assert pages == 0x300
    assert all(not 0x200 <= p < 0x300 and p < 0x500 for p, _, _ in rec.calls)


def test_free_all_hotplug_merges_first():
    """free_all clears HOTPLUG first, so regions that differed only by it become one range."""
    mb = Memblock()
    mb.add_node(0, 2 * PAGE, 0, MemblockFlags.HOTPLUG)
    mb.add_node(2 * PAGE, 6 * PAGE, 0)
    assert mb.memory.cnt == 2
    pages, rec = hand_over(mb)
    assert mb.memory.cnt == 1
    assert rec.calls == [(0, 3, 0)]


def test_free_all_adjacent_reserved_unmerged():
    """Adjacent reserved regions with different flags leave an empty free range: skipped."""
    mb = Memblock()
    mb.add(0, 16 * PAGE)
    mb.reserve(4 * PAGE, 2 * PAGE)
    mb.reserve_kern(6 * PAGE, 2 * PAGE)
    assert mb.reserved.cnt == 2
    pages, rec = hand_over(mb)
    assert rec.calls == [(0, 2, 0), (8, 3, 0)]


def test_free_all_all_reserved():
    mb = Memblock()
    mb.add(0x1000, 0x10000)
    mb.reserve(0, 0x20000)
    pages, rec = hand_over(mb)
    assert (pages, rec.calls, rec.buddy.buddyinfo()) == (0, [], "")


def test_free_all_empty():
    mb = Memblock()
    pages, rec = hand_over(mb)
    assert (pages, rec.calls) == (0, [])


def test_free_all_without_numa():
    mb = Memblock(numa=False)
    mb.add(0, 8 * PAGE)
    mb.add(8 * PAGE, 8 * PAGE)
    pages, rec = hand_over(mb)
    assert rec.calls == [(0, 4, 0)]


def test_free_all_harness_numa(h):
    """The kernel harness's 8 NUMA node fractions (of 4 MiB here: the harness's 32 KiB gives
    nodes smaller than a page) over real memory, with allocations before the hand-over; the
    buddy allocator then serves views of exactly the released pages."""
    mb = h.mb
    base = h.base()
    sizes = []
    for nid, frac in enumerate(NODE_FRACTIONS):
        size = SZ_4M * frac // 10000
        mb.add_node(base, size, nid, MemblockFlags.HOTPLUG)
        base += size
        sizes.append(size // PAGE)
    kept = [mb.alloc_node(SZ_4K, SZ_4K, 6), mb.alloc(100, 64), mb.alloc_node(SZ_4K, SZ_4K, 1)]
    assert all(v is not None for v in kept)
    pages, rec = hand_over(mb, h.pm)
    b = rec.buddy
    assert pages == SZ_4M // PAGE - 3
    assert b.nodes == list(range(8))
    assert [b.managed_pages(n) for n in b.nodes] == [s - (n in (1, 6, 7)) for n, s in enumerate(sizes)]
    info = b.zoneinfo(mb).split("Node ")[1:]
    assert len(info) == 8
    assert "present  64\n" in info[1] and "managed  63\n" in info[1] and "reserved 1\n" in info[1]
    assert len(b.buddyinfo(mb).splitlines()) == 8
    views = []
    while (v := b.alloc_pages(0)) is not None:
        phys = h.pm.phys_of(v)
        assert not mb.is_reserved(phys) and mb.is_memory(phys)
        views.append(v)
    assert len(views) == pages and b.nr_free_pages() == 0
    for v in views:
        b.free_pages(v, 0)
    b.check()
    assert b.nr_free_pages() == pages


# -- after the hand-over --------------------------------------------------------------------

@pytest.fixture
def handed(h):
    mb = h.mb
    mb.add(B + 0x100000, 0x800000)
    mb.reserve(B + 0x200000, 0x5800)
    _, rec = hand_over(mb, h.pm)
    return mb, rec


@pytest.mark.parametrize("call", [
    lambda mb: mb.alloc(SZ_4K, SZ_4K),
    lambda mb: mb.alloc_raw(SZ_4K, SZ_4K),
    lambda mb: mb.phys_alloc(SZ_4K, SZ_4K),
    lambda mb: mb.alloc_try_nid(SZ_4K, SZ_4K, 0, 0, -1),
    lambda mb: mb.phys_alloc_try_nid(SZ_4K, SZ_4K, 0),
    lambda mb: mb.free_all(BuddyAllocator()),
])
def test_memblock_refuses_after_handover(handed, call):
    mb, rec = handed
    before = (mb.dump_all(log=False), rec.buddy.dump(limit=1 << 30))
    with pytest.raises(HandoverError):
        call(mb)
    assert (mb.dump_all(log=False), rec.buddy.dump(limit=1 << 30)) == before


def test_free_late_whole_pages_only(handed):
    mb, rec = handed
    rec.calls.clear()
    free_before = rec.buddy.nr_free_pages()
    reserved_before = mb.dump_all(log=False)
    mb.free_late(B + 0x200800, 0x4800)         # [0x200800, 0x205000): pages 0x201..0x204
    assert rec.calls == [(BP + p, 0, 0) for p in range(0x201, 0x205)]
    assert rec.buddy.nr_free_pages() == free_before + 4
    assert mb.dump_all(log=False) == reserved_before       # reserved is not touched
    rec.buddy.check()
    mb.free_late(B + 0x200000, 0x1000)
    mb.free_late(B + 0x205000, 0x1000)         # page 0x205 is only half reserved
    assert rec.buddy.nr_free_pages() == free_before + 6
    assert (BP + 0x200, 9, 0) in rec.buddy.free_blocks()   # merged back to the full block
    rec.buddy.check()
    v = rec.buddy.alloc_pages(9)
    assert rec.buddy.physmem.phys_of(v) == B + 0x200000


def test_free_late_smaller_than_a_page(handed):
    mb, rec = handed
    rec.calls.clear()
    mb.free_late(B + 0x200800, 0x800)
    mb.free_late(B + 0x201001, 0xfff)
    assert rec.calls == []


def test_free_late_before_free_all():
    mb = Memblock()
    mb.add(0, SZ_1M)
    mb.reserve(0, SZ_4K)
    with pytest.raises(HandoverError):
        mb.free_late(0, SZ_4K)


def test_free_late_twice_rejected(handed):
    mb, rec = handed
    mb.free_late(B + 0x200000, 0x1000)
    before = rec.buddy.dump(limit=1 << 30)
    with pytest.raises(ValueError, match="already managed"):
        mb.free_late(B + 0x200000, 0x1000)
    assert rec.buddy.dump(limit=1 << 30) == before
    with pytest.raises(ValueError, match="already managed"):
        mb.free_late(B + 0x300000, 0x1000)     # a page free_all released


def test_free_late_outside_memory(handed):
    mb, rec = handed
    before = rec.buddy.dump(limit=1 << 30)
    with pytest.raises(ValueError):
        mb.free_late(B + 0x80000, 0x1000)
    assert rec.buddy.dump(limit=1 << 30) == before


# -- random memory maps ---------------------------------------------------------------------

region_st = st.tuples(
    st.integers(0, 40 * PAGE),                 # gap before the region (0 = adjacent)
    st.integers(1, 300 * PAGE),                # size in bytes (odd sizes too)
    st.integers(0, 2),                         # node
    st.sampled_from([MemblockFlags.NONE, MemblockFlags.HOTPLUG, MemblockFlags.NOMAP,
                     MemblockFlags.DRIVER_MANAGED, MemblockFlags.MIRROR]),
)
reserve_st = st.tuples(st.integers(0, 1200 * PAGE), st.integers(1, 50 * PAGE), st.booleans())


@pytest.mark.filterwarnings("ignore::arena.memblock.MemblockWarning")   # overlapping reserves
@given(
    start=st.integers(0, 3 * PAGE),
    regions=st.lists(region_st, min_size=0, max_size=5),
    reserves=st.lists(reserve_st, max_size=8),
    max_order=st.integers(0, 10),
    numa=st.booleans(),
)
def test_free_all_random_maps(start, regions, reserves, max_order, numa):
    mb = Memblock(numa=numa)
    base = start
    for gap, size, nid, flags in regions:
        base += gap
        mb.add_node(base, size, nid, flags)
        base += size
    for rbase, rsize, kern in reserves:
        (mb.reserve_kern if kern else mb.reserve)(rbase, rsize)
    pages, rec = hand_over(mb, max_order=max_order)
    # per node: managed pages equal the model's count, and zoneinfo agrees
    per_node: dict[int, int] = {}
    for _, order, nid in rec.calls:
        per_node[nid] = per_node.get(nid, 0) + (1 << order)
    assert {n: rec.buddy.managed_pages(n) for n in rec.buddy.nodes} == per_node
    assert rec.buddy.buddyinfo().count("\n") == len(per_node)
    with pytest.raises(HandoverError):
        mb.phys_alloc(PAGE, PAGE)
