"""The kernel's ``tools/testing/memblock/tests/alloc_nid_api.c``, on real memory.

Kernel suite → here:

* ``memblock_alloc_nid_range_checks()`` (the range tests: ``simple`` … ``low_max``) → the
  ``test_<scenario>`` functions taking ``hb``. Each runs top-down and bottom-up (``direction``),
  zeroed and raw (``variant``: ``memblock_alloc_try_nid`` / ``memblock_alloc_try_nid_raw``, the
  kernel's ``TEST_F_NONE`` / ``TEST_F_RAW`` passes), and on both builds of the kernel harness
  (``hb``: the NUMA build with 16 nodes, and a memblock built without NUMA).
* ``__memblock_alloc_nid_numa_checks()`` → the ``test_numa_<scenario>`` functions (NUMA build
  only, over the 8 test nodes), plus ``test_alloc_node_on_correct_nid``.
* ``memblock_alloc_exact_nid_range_checks()`` and the exact file's NUMA tests →
  ``test_alloc_exact_nid_api.py`` collects the tests of this module again with the variant
  ``exact`` (``TEST_F_RAW | TEST_F_EXACT``). The NUMA tests therefore know whether the node is
  exact: without ``exact_nid`` an allocation that does not fit its node falls back to any node
  (and records nid ``NUMA_NO_NODE``); with it, it fails or, once ``min_addr`` is dropped, stays in
  its node.

Where a kernel test uses a different setup per direction, the test here uses the kernel's setup of
each direction. Expected regions follow ``mm/memblock.c`` (the newest code): an allocation is
reserved with flags ``MEMBLOCK_RSRV_KERN`` and the requested nid, so it does not merge with a
plain ``memblock_reserve`` region (flags 0, nid -1). Two NUMA scenarios of the kernel file expect
such a merge; they are marked ``Deviation`` below and listed in ``docs/sections/tests-nid.md``;
``test_numa_merge_before_v6_16`` shows the kernel's expectation holding on a v6.15 memblock.
"""

from __future__ import annotations

import pytest

from arena.memblock import NUMA_NO_NODE, Memblock, MemblockFlags
from tests.harness import (
    MAX_NUMNODES,
    MEM_SIZE,
    SMP_CACHE_BYTES,
    SZ_1K,
    Harness,
    assert_alloc,
    assert_reserved,
    region_end,
)

SZ_2, SZ_64, SZ_128, SZ_256, SZ_512 = 2, 64, 128, 256, 512

KERN = int(MemblockFlags.RSRV_KERN)  # every memblock allocation
NONE = int(MemblockFlags.NONE)  # memblock_reserve()


@pytest.fixture(params=["zeroed", "raw"])
def variant(request):
    """``TEST_F_NONE`` and ``TEST_F_RAW``: the two passes of ``memblock_alloc_nid_checks()``."""
    return request.param


class FlatHarness(Harness):
    """The harness of a memblock built without ``CONFIG_NUMA``: every region reads nid 0."""


@pytest.fixture(params=["numa", "flat"])
def hb(request, h, direction):
    """``h`` for both builds of the kernel harness: NUMA (16 nodes) and without NUMA."""
    if request.param == "numa":
        return h
    mb = Memblock(h.pm, numa=False, smp_cache_bytes=SMP_CACHE_BYTES)
    mb.set_bottom_up(direction == "bottom_up")
    return FlatHarness(h.pm, mb)


def reserved_is(h: Harness, *expected: tuple) -> None:
    """Whole-state check of ``reserved`` (then ``check()``); without NUMA every nid reads 0."""
    if isinstance(h, FlatHarness):
        expected = tuple((base, size, flags, 0) for base, size, flags, _ in expected)
    assert_reserved(h, expected)


def top_down(direction: str) -> bool:
    return direction == "top_down"


# The newest alloc_nid_api.c reserves the neighbours of an allocation with memblock_reserve_kern
# (flags RSRV_KERN, like the allocation, so they merge); earlier versions used memblock_reserve
# (flags 0: no merge with the newest code). Scenarios about merging run with both.
reserve_flavours = pytest.mark.parametrize("kern", [True, False], ids=["reserve_kern", "reserve"])


def reserve(h: Harness, kern: bool, base: int, size: int) -> tuple:
    """``memblock_reserve_kern`` or ``memblock_reserve``; returns the region it should create."""
    (h.mb.reserve_kern if kern else h.mb.reserve)(base, size)
    return (base, size, KERN if kern else NONE, NUMA_NO_NODE)


def node(h: Harness, nid: int):
    """The memory region of a test node (``setup_numa_memblock`` adds one region per node)."""
    return h.mb.memory.regions[nid]


# -- range tests (memblock_alloc_nid_range_checks) ---------------------------------------------


def test_simple(hb, direction, variant):
    """A region fits in [min_addr, max_addr): it ends at max_addr (top-down) / starts at min_addr."""
    hb.setup_memblock()
    size = SZ_128
    min_addr = hb.mb.start_of_dram() + SMP_CACHE_BYTES * 2
    max_addr = min_addr + SZ_512

    view = hb.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    base = max_addr - size if top_down(direction) else min_addr
    assert_alloc(hb, variant, view, base, size)
    reserved_is(hb, (base, size, KERN, NUMA_NO_NODE))


def test_end_misaligned(hb, direction, variant):
    """max_addr is 2 bytes past an aligned boundary: top-down ends at that boundary, below max_addr."""
    hb.setup_memblock()
    size, misalign = SZ_128, SZ_2
    min_addr = hb.mb.start_of_dram() + SMP_CACHE_BYTES * 2
    max_addr = min_addr + SZ_512 + misalign

    view = hb.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    base = max_addr - size - misalign if top_down(direction) else min_addr
    assert_alloc(hb, variant, view, base, size)
    assert base + size < max_addr
    reserved_is(hb, (base, size, KERN, NUMA_NO_NODE))


def test_start_misaligned(hb, direction, variant):
    """min_addr is 2 bytes past an aligned boundary: bottom-up starts at the next boundary."""
    hb.setup_memblock()
    size, misalign = SZ_128, SZ_2
    min_addr = hb.mb.start_of_dram() + misalign
    max_addr = min_addr + SZ_512

    view = hb.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    if top_down(direction):
        base = (max_addr - size) & ~(SMP_CACHE_BYTES - 1)
    else:
        base = min_addr + (SMP_CACHE_BYTES - misalign)
    assert_alloc(hb, variant, view, base, size)
    assert base + size < max_addr
    reserved_is(hb, (base, size, KERN, NUMA_NO_NODE))


def test_narrow_range(hb, direction, variant):
    """The range is narrower than the request: min_addr is dropped, the block ends at max_addr
    (top-down) or starts at the start of memory (bottom-up)."""
    hb.setup_memblock()
    size = SZ_256
    min_addr = hb.mb.start_of_dram() + SZ_512
    max_addr = min_addr + SMP_CACHE_BYTES

    view = hb.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    base = max_addr - size if top_down(direction) else hb.mb.start_of_dram()
    assert_alloc(hb, variant, view, base, size)
    reserved_is(hb, (base, size, KERN, NUMA_NO_NODE))


@reserve_flavours
def test_reserved_with_space(hb, direction, variant, kern):
    """Reserved r2 below and r1 above the range, with room to spare: the block lands at the top
    (top-down) / bottom (bottom-up) of the gap, merging with r1 / r2 if they are RSRV_KERN."""
    hb.setup_memblock()
    r3_size, gap = SZ_64, SMP_CACHE_BYTES
    r1_base, r1_size = hb.mb.end_of_dram() - SMP_CACHE_BYTES * 2, SMP_CACHE_BYTES
    r2_size = SZ_128
    r2_base = r1_base - (r3_size + gap + r2_size)
    min_addr, max_addr = r2_base + r2_size, r1_base
    r1 = reserve(hb, kern, r1_base, r1_size)
    r2 = reserve(hb, kern, r2_base, r2_size)

    view = hb.alloc_nid(variant, r3_size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    base = max_addr - r3_size if top_down(direction) else min_addr
    assert_alloc(hb, variant, view, base, r3_size)
    if not kern:
        reserved_is(hb, r2, (base, r3_size, KERN, NUMA_NO_NODE), r1)
    elif top_down(direction):
        reserved_is(hb, r2, (base, r1_size + r3_size, KERN, NUMA_NO_NODE))
    else:
        reserved_is(hb, (r2_base, r2_size + r3_size, KERN, NUMA_NO_NODE), r1)


@reserve_flavours
def test_reserved_no_space(hb, direction, variant, kern):
    """The gap between r2 and r1 is too small: min_addr is dropped; top-down the block lands just
    below r2 (merging with it if RSRV_KERN), bottom-up at the start of memory.

    The kernel's top-down check reserves with memblock_reserve_kern, its bottom-up one with
    memblock_reserve; both flavours run in both directions here.
    """
    hb.setup_memblock()
    r3_size, gap = SZ_256, SMP_CACHE_BYTES
    r1_base, r1_size = hb.mb.end_of_dram() - SMP_CACHE_BYTES * 2, SMP_CACHE_BYTES
    r2_size = SZ_128
    r2_base = r1_base - (r2_size + gap)
    min_addr, max_addr = r2_base + r2_size, r1_base
    r1 = reserve(hb, kern, r1_base, r1_size)
    r2 = reserve(hb, kern, r2_base, r2_size)

    view = hb.alloc_nid(variant, r3_size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    base = r2_base - r3_size if top_down(direction) else hb.mb.start_of_dram()
    assert_alloc(hb, variant, view, base, r3_size)
    if top_down(direction) and kern:
        reserved_is(hb, (base, r2_size + r3_size, KERN, NUMA_NO_NODE), r1)
    else:
        reserved_is(hb, (base, r3_size, KERN, NUMA_NO_NODE), r2, r1)


def test_cap_max(hb, direction, variant):
    """max_addr lies beyond the end of memory: the search is capped at the end of memory."""
    hb.setup_memblock()
    size = SZ_256
    start, end = hb.mb.start_of_dram(), hb.mb.end_of_dram()
    min_addr = end - SZ_1K if top_down(direction) else start + SZ_1K
    max_addr = end + SZ_256

    view = hb.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    base = end - size if top_down(direction) else min_addr
    assert_alloc(hb, variant, view, base, size)
    reserved_is(hb, (base, size, KERN, NUMA_NO_NODE))


def test_cap_min(hb, direction, variant):
    """min_addr lies below the start of memory (top-down check) / at it (bottom-up check)."""
    hb.setup_memblock()
    size = SZ_1K
    start, end = hb.mb.start_of_dram(), hb.mb.end_of_dram()
    if top_down(direction):
        min_addr, max_addr = start - SZ_256, end
    else:
        min_addr, max_addr = start, end - SZ_256

    view = hb.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    base = end - size if top_down(direction) else start
    assert_alloc(hb, variant, view, base, size)
    reserved_is(hb, (base, size, KERN, NUMA_NO_NODE))


@reserve_flavours
def test_min_reserved(hb, direction, variant, kern):
    """min_addr is right after a reserved region: the block fills [min_addr, max_addr) and merges
    with it if it is RSRV_KERN."""
    hb.setup_memblock()
    r1_size, r2_size = SZ_128, SZ_64
    max_addr = hb.mb.end_of_dram()
    min_addr = max_addr - r2_size
    reserved_base = min_addr - r1_size
    r1 = reserve(hb, kern, reserved_base, r1_size)

    view = hb.alloc_nid(variant, r2_size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    assert_alloc(hb, variant, view, min_addr, r2_size)
    if kern:
        reserved_is(hb, (reserved_base, r1_size + r2_size, KERN, NUMA_NO_NODE))
    else:
        reserved_is(hb, r1, (min_addr, r2_size, KERN, NUMA_NO_NODE))


@reserve_flavours
def test_max_reserved(hb, direction, variant, kern):
    """max_addr is right before a reserved region: the block fills [min_addr, max_addr) and merges
    with it if it is RSRV_KERN."""
    hb.setup_memblock()
    r1_size, r2_size = SZ_64, SZ_128
    max_addr = hb.mb.end_of_dram() - r1_size
    min_addr = max_addr - r2_size
    r1 = reserve(hb, kern, max_addr, r1_size)

    view = hb.alloc_nid(variant, r2_size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    assert_alloc(hb, variant, view, min_addr, r2_size)
    if kern:
        reserved_is(hb, (min_addr, r1_size + r2_size, KERN, NUMA_NO_NODE))
    else:
        reserved_is(hb, (min_addr, r2_size, KERN, NUMA_NO_NODE), r1)


def test_exact_address(hb, direction, variant):
    """The range is exactly the requested size: the block is [min_addr, max_addr)."""
    hb.setup_memblock()
    size = SZ_1K
    min_addr = hb.mb.start_of_dram() + SMP_CACHE_BYTES
    max_addr = min_addr + size

    view = hb.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    assert_alloc(hb, variant, view, min_addr, size)
    reserved_is(hb, (min_addr, size, KERN, NUMA_NO_NODE))


@reserve_flavours
def test_reserved_full_merge(hb, direction, variant, kern):
    """The gap between r2 and r1 is exactly the request: all three merge into one region if the
    neighbours are RSRV_KERN."""
    hb.setup_memblock()
    r3_size = SZ_64
    r1_base, r1_size = hb.mb.end_of_dram() - SMP_CACHE_BYTES * 2, SMP_CACHE_BYTES
    r2_size = SZ_128
    r2_base = r1_base - (r3_size + r2_size)
    min_addr, max_addr = r2_base + r2_size, r1_base
    r1 = reserve(hb, kern, r1_base, r1_size)
    r2 = reserve(hb, kern, r2_base, r2_size)

    view = hb.alloc_nid(variant, r3_size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    assert_alloc(hb, variant, view, min_addr, r3_size)
    if kern:
        reserved_is(hb, (r2_base, r1_size + r2_size + r3_size, KERN, NUMA_NO_NODE))
    else:
        reserved_is(hb, r2, (min_addr, r3_size, KERN, NUMA_NO_NODE), r1)


def test_reserved_all(hb, direction, variant):
    """Everything but a too-small gap is reserved: no allocation, nothing changes."""
    hb.setup_memblock()
    r3_size, gap = SZ_256, SMP_CACHE_BYTES
    r1_base, r1_size = hb.mb.end_of_dram() - SMP_CACHE_BYTES, SMP_CACHE_BYTES
    r2_base, r2_size = hb.mb.start_of_dram(), MEM_SIZE - (r1_size + gap)
    min_addr, max_addr = r2_base + r2_size, r1_base
    hb.mb.reserve(r1_base, r1_size)
    hb.mb.reserve(r2_base, r2_size)

    view = hb.alloc_nid(variant, r3_size, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    assert view is None
    reserved_is(hb, (r2_base, r2_size, NONE, NUMA_NO_NODE), (r1_base, r1_size, NONE, NUMA_NO_NODE))


def test_low_max(hb, direction, variant):
    """max_addr is too close to the start of memory: no allocation, nothing reserved."""
    hb.setup_memblock()
    min_addr = hb.mb.start_of_dram()
    max_addr = min_addr + SMP_CACHE_BYTES

    view = hb.alloc_nid(variant, SZ_1K, SMP_CACHE_BYTES, min_addr, max_addr, NUMA_NO_NODE)

    assert view is None
    reserved_is(hb)


# -- NUMA tests (__memblock_alloc_nid_numa_checks and the exact file's NUMA checks) -------------
#
# Node sizes (MEM_SIZE = 32 KiB split 2500/625/1250/1250/625/625/2500/625 basis points):
# 8 KiB, 2 KiB, 4 KiB, 4 KiB, 2 KiB, 2 KiB, 8 KiB, 2 KiB, one memory region each.


def alloc_numa(h: Harness, variant: str, size: int, min_addr: int, max_addr: int, nid: int):
    return h.alloc_nid(variant, size, SMP_CACHE_BYTES, min_addr, max_addr, nid)


def whole_memory(h: Harness) -> tuple[int, int]:
    return h.mb.start_of_dram(), h.mb.end_of_dram()


def placed(direction: str, region_base: int, region_stop: int, size: int) -> int:
    """Where a block of ``size`` lands in a free range: at its top (top-down) or its bottom."""
    return region_stop - size if top_down(direction) else region_base


def test_numa_simple(h, direction, variant):
    """The requested node has room: the block is at its end (top-down) / its start (bottom-up)."""
    h.setup_numa_memblock()
    nid = 3
    req = node(h, nid)
    assert req.size >= 4
    size = req.size // 4

    view = alloc_numa(h, variant, size, *whole_memory(h), nid)

    base = placed(direction, req.base, region_end(req), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, (base, size, KERN, nid))


def test_numa_small_node(h, direction, variant):
    """The requested node is too small: fall back to the last (top-down, node 6) / first
    (bottom-up, node 0) node that fits; exact: no allocation."""
    h.setup_numa_memblock()
    size = 2 * node(h, 1).size

    view = alloc_numa(h, variant, size, *whole_memory(h), 1)

    if variant == "exact":
        assert view is None
        reserved_is(h)
        return
    exp = node(h, 6 if top_down(direction) else 0)
    base = placed(direction, exp.base, region_end(exp), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, (base, size, KERN, NUMA_NO_NODE))


def test_numa_node_reserved(h, direction, variant):
    """The requested node is fully reserved: fall back to node 6 (top-down) / node 0 (bottom-up);
    exact: no allocation."""
    h.setup_numa_memblock()
    req = node(h, 2)
    rsv = (req.base, req.size, NONE, NUMA_NO_NODE)
    size = req.size
    h.mb.reserve(req.base, req.size)

    view = alloc_numa(h, variant, size, *whole_memory(h), 2)

    if variant == "exact":
        assert view is None
        reserved_is(h, rsv)
        return
    exp = node(h, 6 if top_down(direction) else 0)
    base = placed(direction, exp.base, region_end(exp), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, *sorted([rsv, (base, size, KERN, NUMA_NO_NODE)]))


@reserve_flavours
def test_numa_part_reserved(h, direction, variant, kern):
    """The first half of the requested node is reserved, the rest has room: the block stays in
    the node, at its end (top-down) / right after the reserved half (bottom-up).

    Deviation: the kernel's bottom-up check reserves the half with memblock_reserve and expects
    the block to merge with it into one region. The block is recorded with flags RSRV_KERN and
    nid 4, the reserved half with nid -1 (and flags 0 with memblock_reserve), so they never merge.
    """
    h.setup_numa_memblock()
    nid = 4
    req = node(h, nid)
    assert req.size >= 8
    r1 = reserve(h, kern, req.base, req.size // 2)
    size = r1[1] // 4

    view = alloc_numa(h, variant, size, *whole_memory(h), nid)

    base = placed(direction, r1[0] + r1[1], region_end(req), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, r1, (base, size, KERN, nid))


def test_numa_part_reserved_fallback(h, direction, variant):
    """The middle of the requested node is reserved and neither free piece fits: fall back to
    node 7 (top-down) / node 0 (bottom-up); exact (``part_reserved_fail``): no allocation."""
    h.setup_numa_memblock()
    req = node(h, 4)
    assert req.size >= 4
    size = req.size // 2
    r1 = (req.base + size // 2, size, NONE, NUMA_NO_NODE)
    h.mb.reserve(r1[0], r1[1])

    view = alloc_numa(h, variant, size, *whole_memory(h), 4)

    if variant == "exact":
        assert view is None
        reserved_is(h, r1)
        return
    exp = node(h, 7 if top_down(direction) else 0)
    base = placed(direction, exp.base, region_end(exp), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, *sorted([r1, (base, size, KERN, NUMA_NO_NODE)]))


def test_numa_split_range_low(h, direction, variant):
    """The range straddles the end of the requested node and too little of it is in the node:
    min_addr is dropped and the block lands in the requested node."""
    h.setup_numa_memblock()
    nid = 2
    req = node(h, nid)
    size = SZ_512
    min_addr = region_end(req) - SZ_256
    max_addr = min_addr + size

    view = alloc_numa(h, variant, size, min_addr, max_addr, nid)

    base = placed(direction, req.base, region_end(req), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, (base, size, KERN, nid))


def test_numa_split_range_high(h, direction, variant):
    """The range straddles the start of the requested node (3), with too little in it: min_addr
    is dropped, the node is still too small below max_addr, so fall back to any node: the end of
    node 2 (top-down) / the start of node 0 (bottom-up); exact: no allocation."""
    h.setup_numa_memblock()
    req = node(h, 3)
    size = SZ_512
    min_addr = req.base - SZ_256
    max_addr = min_addr + size

    view = alloc_numa(h, variant, size, min_addr, max_addr, 3)

    if variant == "exact":
        assert view is None
        reserved_is(h)
        return
    exp = node(h, 2 if top_down(direction) else 0)
    base = placed(direction, exp.base, region_end(exp), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, (base, size, KERN, NUMA_NO_NODE))


def test_numa_no_overlap_split(h, direction, variant):
    """The range straddles nodes 5 and 6 and the requested node (2) ends before it: min_addr is
    dropped and the block lands in the requested node."""
    h.setup_numa_memblock()
    nid = 2
    req = node(h, nid)
    size = SZ_512
    min_addr = node(h, 6).base - SZ_256
    max_addr = min_addr + size

    view = alloc_numa(h, variant, size, min_addr, max_addr, nid)

    base = placed(direction, req.base, region_end(req), size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, (base, size, KERN, nid))


def test_numa_no_overlap_low(h, direction, variant):
    """The range covers nodes 2..5 and the requested node (0) lies below it: any node within the
    range serves (end of node 5 / start of node 2); exact: min_addr is dropped and the block
    lands in node 0."""
    h.setup_numa_memblock()
    nid = 0
    size = SZ_64
    min_addr, max_addr = node(h, 2).base, region_end(node(h, 5))

    view = alloc_numa(h, variant, size, min_addr, max_addr, nid)

    if variant == "exact":
        req = node(h, nid)
        base, got_nid = placed(direction, req.base, region_end(req), size), nid
    else:
        base, got_nid = placed(direction, min_addr, max_addr, size), NUMA_NO_NODE
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, (base, size, KERN, got_nid))


def test_numa_no_overlap_high(h, direction, variant):
    """The range covers nodes 2..5 and the requested node (7) lies above it: any node within the
    range serves (end of node 5 / start of node 2); exact: no allocation."""
    h.setup_numa_memblock()
    size = SZ_64
    min_addr, max_addr = node(h, 2).base, region_end(node(h, 5))

    view = alloc_numa(h, variant, size, min_addr, max_addr, 7)

    if variant == "exact":
        assert view is None
        reserved_is(h)
        return
    base = placed(direction, min_addr, max_addr, size)
    assert_alloc(h, variant, view, base, size)
    reserved_is(h, (base, size, KERN, NUMA_NO_NODE))


def test_numa_large_region(h, direction, variant):
    """Half of MEM_SIZE fits in no node: no allocation."""
    h.setup_numa_memblock()

    view = alloc_numa(h, variant, MEM_SIZE // 2, *whole_memory(h), 3)

    assert view is None
    reserved_is(h)


@reserve_flavours
def test_numa_reserved_full_merge(h, direction, variant, kern):
    """The range is exactly node 6, between r2 (end of node 5) and r1 (start of node 7): the
    block is node 6.

    Deviation: the kernel reserves r1 and r2 with memblock_reserve and expects r2, the block and
    r1 to merge into one region. The block is recorded with flags RSRV_KERN and nid 6, r1 and r2
    with nid -1 (and flags 0 with memblock_reserve), so they stay three regions.
    """
    h.setup_numa_memblock()
    nid = 6
    req = node(h, nid)
    size = req.size
    r1_base = node(h, nid + 1).base
    r2_base = r1_base - (size + SZ_128)
    min_addr, max_addr = r2_base + SZ_128, r1_base
    r1 = reserve(h, kern, r1_base, SZ_128)
    r2 = reserve(h, kern, r2_base, SZ_128)

    view = alloc_numa(h, variant, size, min_addr, max_addr, nid)

    assert min_addr == req.base
    assert_alloc(h, variant, view, req.base, size)
    reserved_is(h, r2, (req.base, size, KERN, nid), r1)


@pytest.mark.parametrize("scenario", ["numa_part_reserved", "numa_reserved_full_merge"])
def test_numa_merge_before_v6_16(h, direction, variant, scenario):
    """Deviations 1 and 2 hold as the kernel file expects on a memblock of v6.15, where
    ``memblock_reserve`` and allocations both record flags 0 and nid ``MAX_NUMNODES``: the block
    merges with the plain reservations next to it (``part_reserved``: bottom-up only, top-down
    the block is not adjacent)."""
    mb = Memblock(h.pm, smp_cache_bytes=SMP_CACHE_BYTES, max_numnodes=MAX_NUMNODES,
                  kernel_version=(6, 15))
    mb.set_bottom_up(not top_down(direction))
    old = Harness(h.pm, mb)
    old.setup_numa_memblock()
    if scenario == "numa_part_reserved":
        nid, req = 4, node(old, 4)
        r1_base, r1_size = req.base, req.size // 2
        size = r1_size // 4
        min_addr, max_addr = whole_memory(old)
        base = placed(direction, r1_base + r1_size, region_end(req), size)
        old.mb.reserve(r1_base, r1_size)
        if top_down(direction):
            expected = [(r1_base, r1_size, NONE, MAX_NUMNODES), (base, size, NONE, MAX_NUMNODES)]
        else:
            expected = [(r1_base, r1_size + size, NONE, MAX_NUMNODES)]
    else:
        nid, req = 6, node(old, 6)
        size = req.size
        r1_base = node(old, 7).base
        r2_base = r1_base - (size + SZ_128)
        min_addr, max_addr = r2_base + SZ_128, r1_base
        base = req.base
        old.mb.reserve(r1_base, SZ_128)
        old.mb.reserve(r2_base, SZ_128)
        expected = [(r2_base, SZ_128 + size + SZ_128, NONE, MAX_NUMNODES)]

    view = alloc_numa(old, variant, size, min_addr, max_addr, nid)

    assert_alloc(old, variant, view, base, size)
    reserved_is(old, *expected)


def test_numa_split_all_reserved(h, direction, variant):
    """Everything is reserved but a gap across the node 6 / node 7 boundary that fits the request
    only as a whole: a block never spans two memory regions, so no allocation (NUMA_NO_NODE)."""
    h.setup_numa_memblock()
    size = SZ_256
    r2_base = node(h, 7).base + SZ_128
    r2 = (r2_base, h.mb.end_of_dram() - r2_base, NONE, NUMA_NO_NODE)
    r1 = (h.mb.start_of_dram(), MEM_SIZE - (r2[1] + size), NONE, NUMA_NO_NODE)
    min_addr, max_addr = r1[0] + r1[1], r2[0]
    h.mb.reserve(r1[0], r1[1])
    h.mb.reserve(r2[0], r2[1])

    view = alloc_numa(h, variant, size, min_addr, max_addr, NUMA_NO_NODE)

    assert view is None
    reserved_is(h, r1, r2)


def test_alloc_node_on_correct_nid(h, direction):
    """``memblock_alloc_node`` on node 2: the block is zeroed, in node 2, and recorded with nid 2."""
    h.setup_numa_memblock()
    nid = 2
    req = node(h, nid)
    size = SZ_512

    view = h.mb.alloc_node(size, SMP_CACHE_BYTES, nid)

    assert req.nid == nid
    base = placed(direction, req.base, region_end(req), size)
    assert_alloc(h, "zeroed", view, base, size)
    reserved_is(h, (base, size, KERN, nid))


# -- bad input: a caller's mistake raises and changes nothing -----------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        pytest.param((-1, SMP_CACHE_BYTES, 0, 0, NUMA_NO_NODE), ValueError, id="size-negative"),
        pytest.param((True, SMP_CACHE_BYTES, 0, 0, NUMA_NO_NODE), TypeError, id="size-bool"),
        pytest.param((64.0, SMP_CACHE_BYTES, 0, 0, NUMA_NO_NODE), TypeError, id="size-float"),
        pytest.param((64, "32", 0, 0, NUMA_NO_NODE), TypeError, id="align-str"),
        pytest.param((64, SMP_CACHE_BYTES, None, 0, NUMA_NO_NODE), TypeError, id="min-none"),
        pytest.param((64, SMP_CACHE_BYTES, 0, -2, NUMA_NO_NODE), ValueError, id="max-negative"),
        pytest.param((64, SMP_CACHE_BYTES, 0, 0, False), TypeError, id="nid-bool"),
        pytest.param((64, SMP_CACHE_BYTES, 0, 0, None), TypeError, id="nid-none"),
    ],
)
def test_bad_input(h, variant, args, error):
    """Wrong types and negative sizes/addresses raise before anything changes."""
    h.setup_numa_memblock()
    h.mb.reserve(h.mb.start_of_dram(), SZ_64)
    rsv = h.mb.reserved
    before = [(rsv.regions[i].base, rsv.regions[i].size, int(rsv.regions[i].flags), rsv.regions[i].nid)
              for i in range(rsv.cnt)]

    with pytest.raises(error):
        h.alloc_nid(variant, *args)

    reserved_is(h, *before)
