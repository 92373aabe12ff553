"""Our port of the kernel's memblock test plan ``tools/testing/memblock/tests/alloc_api.c``.

``memblock_alloc`` and ``memblock_alloc_raw`` (the kernel runs the plan twice, TEST_F_NONE and
TEST_F_RAW: here the ``variant`` fixture) on MEM_SIZE bytes of real memory set up by
``setup_memblock``, in both directions (``direction`` fixture). Where the kernel has a
top-down and a bottom-up function for one scenario, one test here takes the direction and the
kernel's numbers for it. Each test ends with the allocation's address and content, then the
whole memblock state.

Reference: the newest kernel. Allocations reserve with flags RSRV_KERN and nid NUMA_NO_NODE, so
they merge only with ``memblock_reserve_kern`` regions; the newest alloc_api.c reserves with
``memblock_reserve_kern`` exactly where it expects a merge (the 2022 copy of the file used
``memblock_reserve``, which no longer merges).
"""

from __future__ import annotations

import pytest

from arena.memblock import NUMA_NO_NODE, MemblockFlags
from tests.harness import (
    MAX_NUMNODES,
    MEM_SIZE,
    SMP_CACHE_BYTES,
    SZ_1K,
    assert_alloc,
    assert_memblock_state,
)

SZ_2, SZ_8, SZ_16, SZ_64, SZ_128, SZ_256, SZ_512 = 2, 8, 16, 64, 128, 256, 512
NONE = int(MemblockFlags.NONE)
KERN = int(MemblockFlags.RSRV_KERN)


@pytest.fixture(params=["zeroed", "raw"])
def variant(request):
    """``run_memblock_alloc``: memblock_alloc (zeroed) or memblock_alloc_raw (untouched memory)."""
    return request.param


def setup(h) -> tuple[int, int]:
    """``setup_memblock()``; returns (start, end) of the memory, i.e. start_of/end_of DRAM."""
    h.setup_memblock()
    start, end = h.base(), h.base() + MEM_SIZE
    assert (h.mb.start_of_dram(), h.mb.end_of_dram()) == (start, end)
    return start, end


def plain(base: int, size: int) -> tuple:
    """A ``memblock_reserve`` region: flags 0, no node."""
    return (base, size, NONE, NUMA_NO_NODE)


def kern(base: int, size: int) -> tuple:
    """An allocated or ``memblock_reserve_kern`` region: flags RSRV_KERN, no node."""
    return (base, size, KERN, NUMA_NO_NODE)


def assert_state(h, reserved: list[tuple]) -> None:
    """Memory is still the one ``setup_memblock`` region; ``reserved`` is exactly as given."""
    assert_memblock_state(h.mb, [(h.base(), MEM_SIZE, NONE, MAX_NUMNODES)], reserved)


def alloc(h, variant: str, size: int, align: int, expected: int) -> None:
    """Allocate and check the address and the variant's content (zeroed or the 0x01 fill)."""
    assert_alloc(h, variant, h.alloc(variant, size, align), expected, size)


def test_alloc_simple(h, direction, variant):
    """A small aligned block at the end (top-down) or the start (bottom-up) of memory."""
    start, end = setup(h)
    expected = end - SMP_CACHE_BYTES if direction == "top_down" else start
    alloc(h, variant, SZ_2, SMP_CACHE_BYTES, expected)
    assert_state(h, [kern(expected, SZ_2)])


def test_alloc_disjoint(h, direction, variant):
    """Next to a misaligned 2-byte reservation the block goes to the next aligned address:
    two separate regions, the old one untouched."""
    start, end = setup(h)
    align = SMP_CACHE_BYTES * 2
    if direction == "top_down":
        r1, expected = (end - SZ_2, SZ_2), end - align
    else:
        r1, expected = (start + SZ_2, SZ_2), start + align
    h.mb.reserve(*r1)
    alloc(h, variant, SZ_16, align, expected)
    assert_state(h, sorted([plain(*r1), kern(expected, SZ_16)]))


def test_alloc_before(h, direction, variant):
    """First fit: room right next to an earlier kern reservation, on the side the search meets
    first (above it top-down, below it bottom-up); the two merge."""
    start, end = setup(h)
    if direction == "top_down":
        r1, size = (end - SZ_512 - SMP_CACHE_BYTES, SMP_CACHE_BYTES), SZ_512
        expected = end - size
    else:
        r1, size = (start + SZ_512, SZ_128), SZ_512
        expected = start
    h.mb.reserve_kern(*r1)
    alloc(h, variant, size, SMP_CACHE_BYTES, expected)
    assert_state(h, [kern(min(r1[0], expected), r1[1] + size)])


def test_alloc_after(h, direction, variant):
    """Second fit: the space beyond the kern reservation is too small, so the block goes to its
    other side; the two merge."""
    start, end = setup(h)
    size = SZ_512
    if direction == "top_down":
        r1 = (end - SMP_CACHE_BYTES, SZ_8)
        expected = r1[0] - size
    else:
        r1 = (start + SMP_CACHE_BYTES, SZ_64)
        expected = r1[0] + r1[1]
    h.mb.reserve_kern(*r1)
    alloc(h, variant, size, SMP_CACHE_BYTES, expected)
    assert_state(h, [kern(min(r1[0], expected), r1[1] + size)])


def test_alloc_second_fit(h, direction, variant):
    """The gap between two kern reservations is too small: the block goes beyond the second
    one met and merges with it."""
    start, end = setup(h)
    size = SZ_1K
    if direction == "top_down":
        r1 = (end - SZ_512, SZ_512)
        r2 = (r1[0] - SZ_512, SZ_256)
        expected = r2[0] - size
        reserved = [kern(expected, r2[1] + size), kern(*r1)]
    else:
        r1 = (start, SZ_512)
        r2 = (r1[0] + r1[1] + SZ_512, SZ_256)
        expected = r2[0] + r2[1]
        reserved = [kern(*r1), kern(r2[0], r2[1] + size)]
    h.mb.reserve_kern(*r1)
    h.mb.reserve_kern(*r2)
    alloc(h, variant, size, SMP_CACHE_BYTES, expected)
    assert_state(h, reserved)


def test_alloc_in_between(h, direction, variant):
    """The gap between two kern reservations is exactly the block's size: all three merge."""
    start, end = setup(h)
    gap, size = SMP_CACHE_BYTES, SZ_64
    rgn_size = (MEM_SIZE - (2 * gap + size)) // 2
    r1 = (end - (gap + rgn_size), rgn_size)
    r2 = (start + gap, rgn_size)
    h.mb.reserve_kern(*r1)
    h.mb.reserve_kern(*r2)
    alloc(h, variant, size, SMP_CACHE_BYTES, r2[0] + r2[1])
    assert_state(h, [kern(r2[0], r1[1] + r2[1] + size)])


def test_alloc_small_gaps(h, direction, variant):
    """Memory striped with reservations whose gaps are all too small: no allocation."""
    start, end = setup(h)
    region_size, gap = SZ_1K, SZ_256
    reserved = []
    region_end = start
    while region_end < end:
        h.mb.reserve(region_end + gap, region_size)
        reserved.append(plain(region_end + gap, region_size))
        region_end += gap + region_size
    assert h.alloc(variant, region_size, SMP_CACHE_BYTES) is None
    assert_state(h, reserved)


def test_alloc_all_reserved(h, direction, variant):
    """All memory reserved: no allocation."""
    start, _ = setup(h)
    h.mb.reserve(start, MEM_SIZE)
    assert h.alloc(variant, SZ_256, SMP_CACHE_BYTES) is None
    assert_state(h, [plain(start, MEM_SIZE)])


def test_alloc_no_space(h, direction, variant):
    """Only 256 bytes left, 1 KiB asked: no allocation."""
    start, _ = setup(h)
    h.mb.reserve(start, MEM_SIZE - SZ_256)
    assert h.alloc(variant, SZ_1K, SMP_CACHE_BYTES) is None
    assert_state(h, [plain(start, MEM_SIZE - SZ_256)])


def test_alloc_limited_space(h, direction, variant):
    """Exactly the last 256 bytes left: they are allocated and merge with the kern reservation."""
    start, _ = setup(h)
    available = SZ_256
    h.mb.reserve_kern(start, MEM_SIZE - available)
    alloc(h, variant, available, SMP_CACHE_BYTES, start + MEM_SIZE - available)
    assert_state(h, [kern(start, MEM_SIZE)])


def test_alloc_no_memory(h, direction, variant):
    """No memory registered: no allocation, nothing reserved."""
    assert h.alloc(variant, SZ_1K, SMP_CACHE_BYTES) is None
    assert_memblock_state(h.mb, [], [])


def test_alloc_too_large(h, direction, variant):
    """A block larger than all memory: no allocation, nothing reserved."""
    setup(h)
    assert h.alloc(variant, MEM_SIZE + SZ_2, SMP_CACHE_BYTES) is None
    assert_state(h, [])
