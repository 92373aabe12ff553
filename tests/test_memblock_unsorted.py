"""memblock after ``trim_memory`` wrapped a region to address 0: the unsorted array.

``trim_memory`` rounds each memory region's start up with ``round_up``, which wraps to 0 for a
start within ``align`` of 2**64. The kernel then holds an unsorted, overlapping array and keeps
walking it linearly: ``memblock_add_range`` and ``memblock_isolate_range`` stop at the first
region (in array order) at or above the range's end, ``memblock_merge_regions`` BUGs on an
overlapping pair of its window (kernels < 6.3: of the whole array), ``memblock_search`` (behind
``is_memory`` and friends) bisects the unsorted array probe by probe, and
``memblock_overlaps_region`` looks at every region. ``Memblock`` must give exactly those answers.

The expected values below are worked out by hand from those loops; the random tests compare
``Memblock`` with ``arena.memblock_linear.LinearMemblock``, a plain port of the kernel's loops
written independently of it.
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.errors import MemblockBug, MemblockPanic
from arena.memblock import Memblock, MemblockFlags, MemblockWarning
from arena.memblock_linear import LinearMemblock

TOP = (1 << 64) - 1
PAGE = 4096
MiB = 1 << 20
HM = int(MemblockFlags.HOTPLUG | MemblockFlags.MIRROR)
NOMAP = int(MemblockFlags.NOMAP)


def regions(t) -> list[tuple[int, int, int, int]]:
    return [(r.base, r.size, int(r.flags), r.nid) for r in t.regions]


def wrapped_pair() -> Memblock:
    """memory [0xa00000, 0xf00000) HOTPLUG|MIRROR node 0, then [0, 2**64 - 1 MiB) node 1."""
    mb = Memblock()
    mb.add_node(0xffffffffffff0000, 0xffff, 1, 0)
    mb.add_node(0x905000, 0x67ba79, 0, HM)
    mb.trim_memory(0x100000)
    assert regions(mb.memory) == [(0xa00000, 0x500000, HM, 0), (0, TOP + 1 - MiB, 0, 1)]
    return mb


def test_add_breaks_at_index_0_and_inserts_a_third_region():
    """end = 0x95adf0 <= regions[0].base: the walk stops at index 0 and inserts there; the
    merge window (pairs 0-1) finds nothing to merge. A sorted lookup would see the new range
    inside [0, 2**64 - 1 MiB) and leave the array unchanged."""
    mb = wrapped_pair()
    assert mb.add_node(0x959df0, 0x1000, 3, 0) == 0
    assert regions(mb.memory) == [(0x959df0, 0x1000, 0, 3), (0xa00000, 0x500000, HM, 0),
                                  (0, TOP + 1 - MiB, 0, 1)]
    assert mb.memory.total_size == 0xffff + 0x67ba79 + 0x1000   # the trim kept the old sizes
    mb.check()


def test_binary_search_probes_the_wrapped_region():
    """memory [0x100000, 0x10100000) NOMAP, then [0, 2**64 - 1 MiB): memblock_search(0xff800)
    probes mid = 1 first, the wrapped region, which holds the address."""
    mb = Memblock()
    mb.add_node(0x100000, 0x10000000, 0, NOMAP)
    mb.add(0xffffffffffff0000, 0x2000)
    mb.trim_memory(0x100000)
    assert mb.is_memory(0xff800)
    assert mb.is_map_memory(0xff800)                 # the wrapped region is not NOMAP
    assert mb.is_region_memory(0xff800, 0x1000)
    assert mb.search_pfn_nid(0xff) == (64, 0, (TOP + 1 - MiB) >> 12)
    # 0x200000 lies in both; the first probe is the wrapped region, which is not NOMAP
    assert mb.is_memory(0x200000) and mb.is_map_memory(0x200000)


def test_binary_search_misses_what_a_sorted_lookup_finds():
    """Three regions [A, B, W] with W = [0, ...) wrapped: addr in A but probing mid = 1 (B)
    sends the search right (addr >= B.end is false, addr < B.base true: right = 1), then mid = 0
    finds A. An address below A and inside W only: mid = 1 -> left... -> not found, although
    W holds it."""
    mb = Memblock()
    mb.add(0x100000, 0x100000)                       # A
    mb.add(0x400000, 0x100000)                       # B
    mb.add(TOP - 0xfff0, 0xfff0)                     # W after the trim: [0, 2**64 - 1 MiB)
    mb.trim_memory(MiB)
    assert regions(mb.memory)[2][0] == 0
    assert mb.is_memory(0x180000)                    # A
    # 0x80000: probe B: addr < B.base -> right = 1; probe A: addr < A.base -> right = 0: miss
    assert not mb.is_memory(0x80000)
    assert not mb.is_region_memory(0x80000, 1)
    assert mb.search_pfn_nid(0x80) == (-1, None, None)
    # overlaps_region looks at every region: W overlaps [0x80000, +1)
    assert mb.overlaps_region("memory", 0x80000, 1)
    ref = LinearMemblock()
    for call in (("add", 0x100000, 0x100000), ("add", 0x400000, 0x100000),
                 ("add", TOP - 0xfff0, 0xfff0), ("trim_memory", MiB)):
        getattr(ref, call[0])(*call[1:])
    assert regions(mb.memory) == ref.memory.regions
    for addr in (0x80000, 0x180000, 0x480000, 0x600000, 0):
        assert mb.is_memory(addr) == ref.is_memory(addr), hex(addr)


def test_old_kernels_merge_the_whole_array_and_bug_on_the_overlap():
    """Kernels < 6.3 merge over the whole array after every add: the pair (A, W) overlaps
    (A ends at 0xf00000 > W's base 0), so the add BUGs; newer kernels look at the window only."""
    for version, bug in (((6, 1), True), (None, False)):
        mb = Memblock(kernel_version=version)
        mb.add_node(0xffffffffffff0000, 0xffff, 1, 0)
        mb.add_node(0x905000, 0x67ba79, 0, HM)
        mb.trim_memory(0x100000)
        if bug:
            with pytest.raises(MemblockBug, match=r"memory\[1\] overlaps memory\[2\]"):
                mb.add_node(0x959df0, 0x1000, 3, 0)
        else:
            assert mb.add_node(0x959df0, 0x1000, 3, 0) == 0


def test_remove_walks_linearly_and_sorted_lookups_come_back():
    """remove() in array order. [0x100000, 0x200000): regions[0] starts at 0xa00000 >= end, so
    the walk stops at once and nothing changes (a sorted lookup would cut the wrapped region).
    [0xa00000, 0xf00000): regions[0] lies inside (start_rgn 0); the wrapped region straddles
    the start, so its lower piece [0, 0xa00000) is inserted at index 1 and the walk goes on
    with the upper piece, which straddles the end and is split again; end_rgn is 3, so indices
    0..2 go, the lower piece [0, 0xa00000) included, although it lies outside the range. What
    is left, [0xf00000, 2**64 - 1 MiB), is sorted: the sorted lookups are back."""
    mb = wrapped_pair()
    before = mb.dump_all(log=False)
    assert mb.remove(0x100000, 0x100000) == 0
    assert mb.dump_all(log=False) == before
    assert mb.memory.unsorted
    assert mb.remove(0xa00000, 0x500000) == 0
    assert regions(mb.memory) == [(0xf00000, TOP + 1 - MiB - 0xf00000, 0, 1)]
    # total: 0xffff + 0x67ba79 from the adds, minus the three removed pieces
    assert mb.memory.total_size == (0xffff + 0x67ba79 - 0x500000 - 0xa00000 - 0x500000) % (TOP + 1)
    assert not mb.memory.unsorted
    mb.check()
    assert mb.is_memory(0xf00000) and not mb.is_memory(0xeff000)


def test_counting_pass_skips_regions_below_the_cursor():
    """cnt 3, max 4: the add needs a counting pass. It must skip the regions that end at or
    below its cursor, as the kernel's loop does: regions 0 and 1 lie wholly below the new
    range, so one new region is counted and the array does not double (a pass that took
    their ends as the cursor counted three)."""
    mb = Memblock(init_regions=4)
    mb.allow_resize()
    mb.add_node(0x100000, 0x4000000, 0)
    mb.add_node(0x8000000, 0x100000, 1)
    mb.add(TOP - 0x23456, 0x20000)
    mb.trim_memory(MiB)
    assert mb.memory.unsorted and mb.memory.max == 4
    assert mb.add(TOP - 1, 1) == 0
    assert mb.memory.max == 4 and mb.reserved.cnt == 0
    assert regions(mb.memory)[3] == (TOP - 1, 1, 0, 64)
    mb.check()


def test_cap_memory_range_removes_by_index():
    """cap [0xa00000, 0xf00000) on the wrapped pair isolates indices 0..2 as remove() does
    (the lower piece [0, 0xa00000) of the wrapped region among them) and keeps those, dropping
    only what lies after them: [0xf00000, 2**64 - 1 MiB)."""
    mb = wrapped_pair()
    mb.cap_memory_range(0xa00000, 0x500000)
    assert regions(mb.memory) == [(0xa00000, 0x500000, HM, 0), (0, 0xa00000, 0, 1),
                                  (0xa00000, 0x500000, 0, 1)]
    mb.check()


def test_set_node_and_flags_follow_the_linear_walk():
    mb = wrapped_pair()
    ref = LinearMemblock()
    for call in (("add_node", 0xffffffffffff0000, 0xffff, 1, 0),
                 ("add_node", 0x905000, 0x67ba79, 0, HM), ("trim_memory", 0x100000)):
        getattr(ref, call[0])(*call[1:])
    for call in (("mark_nomap", 0x800000, 0x400000), ("set_node", 0xb00000, 0x1000, "memory", 5),
                 ("clear_nomap", 0, 0x900000)):
        assert getattr(mb, call[0])(*call[1:]) == getattr(ref, call[0])(*call[1:])
        assert regions(mb.memory) == ref.memory.regions, call
        mb.check()


# -- random sequences against the linear reference -------------------------------------------

def near(points: tuple[int, ...]) -> st.SearchStrategy[int]:
    """Addresses within a few pages (and odd offsets) of the given points."""
    return st.builds(lambda p, d: min(max(p + d, 0), TOP), st.sampled_from(points),
                     st.sampled_from((0, 0, 1, -1, 64, -64, PAGE, -PAGE, 3 * PAGE, -3 * PAGE,
                                      0x10000, -0x10000, MiB, -MiB)))


ADDR = st.one_of(near((0, 1 << 32, TOP)), st.builds(lambda p: p * 0x10000, st.integers(0, 64)))
SIZE = st.one_of(st.sampled_from((0, 0, 1, 64, PAGE, 0x10000, MiB, 1 << 32, TOP, TOP // 2)),
                 st.integers(1, 4 * MiB))
# any alignment, as the kernel's mask macros take it: powers of two, 0, non-powers of two
ALIGN = st.one_of(st.sampled_from((0, 1, PAGE, 0x10000, MiB, 1 << 32, 1 << 63)),
                  st.sampled_from((3, 0x3000, 0x1001, (1 << 63) + 1, TOP, TOP // 3)),
                  st.integers(0, TOP))
NID = st.sampled_from((0, 1, 2, -1, 64))

OPS = st.one_of(
    st.tuples(st.just("add"), ADDR, SIZE),
    st.tuples(st.just("add_node"), ADDR, SIZE, NID, st.sampled_from((0, 0, NOMAP, HM))),
    st.tuples(st.sampled_from(("reserve", "reserve_kern", "phys_free", "remove")), ADDR, SIZE),
    st.tuples(st.just("trim_memory"), ALIGN),
    st.tuples(st.just("trim_memory"), ALIGN),
    st.tuples(st.just("cap_memory_range"), ADDR, SIZE),
    st.tuples(st.sampled_from(("mark_nomap", "clear_nomap", "mark_hotplug")), ADDR, SIZE),
    st.tuples(st.just("set_node"), ADDR, SIZE, st.sampled_from(("memory", "reserved")), NID),
    st.tuples(st.sampled_from(("is_memory", "is_reserved")), ADDR),
    st.tuples(st.sampled_from(("is_memory", "is_reserved")), ADDR),
    st.tuples(st.sampled_from(("is_region_memory", "is_region_reserved")), ADDR, SIZE),
    st.tuples(st.just("overlaps_region"), st.sampled_from(("memory", "reserved")), ADDR, SIZE),
    st.tuples(st.just("set_bottom_up"), st.booleans()),
    st.tuples(st.just("phys_alloc"), SIZE, st.sampled_from((0, 1, 64, PAGE, 0x3000))),
    st.tuples(st.just("alloc_range_nid"), SIZE, st.sampled_from((0, 64, PAGE)), ADDR, ADDR,
              NID, st.booleans()),
)

WRAP = [("add_node", 0x100000, 0x4000000, 0, 0), ("add_node", 0x8000000, 0x100000, 1, 0),
        ("add", TOP - 0x23456, 0x20000), ("reserve", 0x200000, 0x3000)]


def outcome(obj, op):
    try:
        return "ok", getattr(obj, op[0])(*op[1:])
    except MemblockPanic as e:
        return "panic", str(e)
    except MemblockBug:
        return "bug", None


def run_against_reference(steps, init):
    mb, ref = Memblock(None, init_regions=init), LinearMemblock(init_regions=init)
    mb.memory._cmax = mb.reserved._cmax = 4
    mb.allow_resize()
    ref.allow_resize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemblockWarning)
        for i, op in enumerate(steps):
            got, want = outcome(mb, op), outcome(ref, op)
            assert got == want, f"step {i} {op!r}"
            if got[0] != "ok":
                return
            for name in ("memory", "reserved"):
                ours, theirs = getattr(mb, name), getattr(ref, name)
                assert regions(ours) == theirs.regions, f"{name} after step {i} {op!r}"
                assert (ours.cnt, ours.max, ours.total_size) == (theirs.cnt, theirs.max,
                                                                  theirs.total_size)
            mb.check()


@settings(max_examples=250, deadline=None)
@given(steps=st.lists(OPS, max_size=40), align=ALIGN, init=st.sampled_from((4, 8, 128)))
def test_wrapped_arrays_against_the_linear_reference(steps, align, init):
    """Memory near 0, the 4 GiB line and 2**64, a trim with any alignment (so that regions
    near the top often wrap), then random adds, removes, reservations, flag and node changes,
    more trims, queries and allocations (size 0 too): every result, both arrays, ``cnt``,
    ``max`` and ``total_size`` equal the kernel's loops after every step."""
    run_against_reference([*WRAP, ("trim_memory", align), *steps], init)


@pytest.mark.parametrize("align", [MiB, 0x100000 + 1, 0x30000, 1 << 32, 3])
def test_wrapped_layouts_fixed_sequences(align):
    steps = [*WRAP, ("trim_memory", align), ("add_node", 0x959df0, 0x1000, 3, 0),
             ("is_memory", 0xff800), ("is_memory", 0x8000000), ("remove", 0x80000, 0x10000),
             ("mark_nomap", 0x100000, 0x200000), ("set_node", 0, 1 << 32, "memory", 2),
             ("overlaps_region", "memory", 0x50, 0), ("phys_alloc", 0x1000, PAGE),
             ("trim_memory", PAGE), ("is_region_memory", 0x100000, 0x1000)]
    run_against_reference(steps, 8)
