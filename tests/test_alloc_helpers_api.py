"""Our port of the kernel's memblock test plan ``tools/testing/memblock/tests/alloc_helpers_api.c``.

``memblock_alloc_from(size, align, min_addr)`` (zeroing; the kernel plan has no raw variant) on
MEM_SIZE bytes of real memory set up by ``setup_memblock``, in both directions (``direction``
fixture). Where the kernel has a top-down and a bottom-up function for one scenario, one test
here takes the direction and the kernel's numbers for it. Each test ends with the allocation's
address and zeroed content, then the whole memblock state.

Reference: the newest kernel. Allocations reserve with flags RSRV_KERN and nid NUMA_NO_NODE; the
newest alloc_helpers_api.c reserves with ``memblock_reserve_kern`` where it expects a merge.
When nothing fits above ``min_addr`` the kernel retries from address 0 ("prioritize granting
memory over satisfying the minimal address").
"""

from __future__ import annotations

from arena.memblock import NUMA_NO_NODE, MemblockFlags
from tests.harness import (
    MAX_NUMNODES,
    MEM_SIZE,
    SMP_CACHE_BYTES,
    assert_alloc,
    assert_memblock_state,
)

SZ_2, SZ_8, SZ_16, SZ_32, SZ_64, SZ_128 = 2, 8, 16, 32, 64, 128
NONE = int(MemblockFlags.NONE)
KERN = int(MemblockFlags.RSRV_KERN)


def setup(h) -> tuple[int, int]:
    """``setup_memblock()``; returns (start, end) of the memory, i.e. start_of/end_of DRAM."""
    h.setup_memblock()
    start, end = h.base(), h.base() + MEM_SIZE
    assert (h.mb.start_of_dram(), h.mb.end_of_dram()) == (start, end)
    return start, end


def alloc_from(h, size: int, min_addr: int, expected: int) -> None:
    """``memblock_alloc_from`` with SMP_CACHE_BYTES alignment; checks the address and zeroing."""
    assert_alloc(h, "zeroed", h.mb.alloc_from(size, SMP_CACHE_BYTES, min_addr), expected, size)


def assert_state(h, reserved: list[tuple]) -> None:
    """Memory is still the one ``setup_memblock`` region; ``reserved`` is exactly as given."""
    assert_memblock_state(h.mb, [(h.base(), MEM_SIZE, NONE, MAX_NUMNODES)], reserved)


def test_alloc_from_simple(h, direction):
    """An aligned ``min_addr`` with room above it: the block starts exactly there."""
    _, end = setup(h)
    min_addr = end - SMP_CACHE_BYTES
    alloc_from(h, SZ_16, min_addr, min_addr)
    assert_state(h, [(min_addr, SZ_16, KERN, NUMA_NO_NODE)])


def test_alloc_from_misaligned(h, direction):
    """A misaligned ``min_addr``: the block starts at the next aligned address."""
    _, end = setup(h)
    min_addr = end - (SMP_CACHE_BYTES * 2 - 1)
    expected = end - SMP_CACHE_BYTES
    alloc_from(h, SZ_32, min_addr, expected)
    assert_state(h, [(expected, SZ_32, KERN, NUMA_NO_NODE)])


def test_alloc_from_high_addr(h, direction):
    """``min_addr`` too close to the end for the block: it is dropped and the block goes where
    the plain search puts it (the end top-down, the start bottom-up)."""
    start, end = setup(h)
    if direction == "top_down":
        min_addr, expected = end - SZ_16, end - SMP_CACHE_BYTES
    else:
        min_addr, expected = end - SZ_8, start
    alloc_from(h, SZ_32, min_addr, expected)
    assert_state(h, [(expected, SZ_32, KERN, NUMA_NO_NODE)])


def test_alloc_from_no_space_above(h, direction):
    """Everything above ``min_addr`` that could hold the block is reserved: the block goes below.
    Top-down it lands right under the kern reservation at ``min_addr`` and merges with it;
    bottom-up it lands at the start of memory, apart from the plain reservation."""
    start, end = setup(h)
    size = SZ_64
    if direction == "top_down":
        min_addr = end - SMP_CACHE_BYTES * 2
        r2 = (min_addr, SZ_2)
        h.mb.reserve_kern(*r2)
        expected = min_addr - size
        reserved = [(expected, size + r2[1], KERN, NUMA_NO_NODE)]
    else:
        min_addr = start + SZ_128
        r2 = (min_addr - SMP_CACHE_BYTES, end - min_addr)
        h.mb.reserve(*r2)
        expected = start
        reserved = [(start, size, KERN, NUMA_NO_NODE), (*r2, NONE, NUMA_NO_NODE)]
    alloc_from(h, size, min_addr, expected)
    assert_state(h, reserved)


def test_alloc_from_min_addr_cap(h, direction):
    """``min_addr`` below the start of memory: the search starts at the start of memory. Top-down
    the rest of memory is kern-reserved first, so the block lands at the start and merges."""
    start, _ = setup(h)
    size = SZ_64
    min_addr = start - SMP_CACHE_BYTES * 3
    if direction == "top_down":
        h.mb.reserve_kern(start + size, MEM_SIZE - size)
        reserved = [(start, MEM_SIZE, KERN, NUMA_NO_NODE)]
    else:
        reserved = [(start, size, KERN, NUMA_NO_NODE)]
    alloc_from(h, size, min_addr, start)
    assert_state(h, reserved)
