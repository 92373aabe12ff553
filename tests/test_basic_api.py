"""Our port of the kernel's memblock test plan ``tools/testing/memblock/tests/basic_api.c``.

The kernel suite checks region bookkeeping: ``memblock_add``/``memblock_reserve`` (both are
``memblock_add_range`` on one array), ``memblock_remove``/``memblock_free`` (both are
``memblock_remove_range``), array doubling, direction setters, ``memblock_trim_memory``,
``memblock_overlaps_region`` and ``memblock_set_node``. The add/reserve and remove/free twins
are one test each here, parametrized by the API, with the kernel's own addresses per API.
Every test ends with a whole-state assertion of both arrays and ``check()``.

Reference: the newest kernel (empty arrays have ``cnt == 0``; ``memblock_add`` records nid
``MAX_NUMNODES``, ``memblock_reserve`` nid ``NUMA_NO_NODE`` and flags 0; the array allocated by a
doubling is reserved with ``memblock_reserve_kern``, i.e. flags RSRV_KERN). Addresses are
physical and mostly lie outside the test memory, as in the kernel suite: bookkeeping calls
accept any range.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from arena.memblock import NUMA_NO_NODE, MemblockFlags
from tests.harness import (
    INIT_MEMBLOCK_REGIONS,
    MAX_NUMNODES,
    MEM_SIZE,
    SMP_CACHE_BYTES,
    SZ_1M,
    SZ_2K,
    SZ_2M,
    SZ_4K,
    SZ_8K,
    SZ_16K,
    SZ_16M,
    SZ_32K,
    SZ_64K,
    SZ_128K,
    SZ_512K,
    assert_memblock_state,
    assert_regions,
    page_align,
)

SZ_2, SZ_8, SZ_16, SZ_64 = 2, 8, 16, 64
SZ_4M, SZ_8M, SZ_32M, SZ_64M = (SZ_1M << i for i in (2, 3, 5, 6))
SZ_128M, SZ_256M, SZ_512M = SZ_1M << 7, SZ_1M << 8, SZ_1M << 9
SZ_1G, SZ_2G = 1 << 30, 1 << 31

PHYS_ADDR_MAX = (1 << 64) - 1
MEMBLOCK_ALLOC_ANYWHERE = PHYS_ADDR_MAX
NONE = int(MemblockFlags.NONE)
HOTPLUG = int(MemblockFlags.HOTPLUG)
RSRV_KERN = int(MemblockFlags.RSRV_KERN)
# sizeof(struct memblock_region) with a 64-bit phys_addr_t, and the page-rounded size of the
# array that doubling from 128 to 256 entries reserves.
REGION_BYTES = 24
NEW_ARRAY_BYTES = page_align(2 * INIT_MEMBLOCK_REGIONS * REGION_BYTES)


@dataclass(frozen=True)
class Api:
    """One kernel entry point: which ``Memblock`` method, on which array, recording which nid."""

    op: str  # Memblock method (kernel name without memblock_)
    array: str  # "memory" or "reserved"
    nid: int  # nid the kernel stores in new regions
    adder: str  # the method that puts regions into that array (for remove/free set-ups)


ADD = Api("add", "memory", MAX_NUMNODES, "add")
RESERVE = Api("reserve", "reserved", NUMA_NO_NODE, "reserve")
REMOVE = Api("remove", "memory", MAX_NUMNODES, "add")
FREE = Api("free", "reserved", NUMA_NO_NODE, "reserve")


def run(h, api: Api, base: int, size: int) -> None:
    """Call the API under test (``memblock_free`` takes the kernel's identity-mapped pointer)."""
    assert getattr(h.mb, api.op)(base, size) == 0


def populate(h, api: Api, *regions: tuple[int, int]) -> None:
    """Put ``regions`` into the array the remove-side API works on."""
    for base, size in regions:
        assert getattr(h.mb, api.adder)(base, size) == 0


def assert_only(h, api: Api, regions, total: int | None = None) -> None:
    """Whole state: ``regions`` (base, size) with the API's flags 0 and nid, the other array empty."""
    expected = [(base, size, NONE, api.nid) for base, size in regions]
    memory, reserved = (expected, []) if api.array == "memory" else ([], expected)
    assert_memblock_state(h.mb, memory, reserved,
                          memory_total=total if api.array == "memory" else None,
                          reserved_total=total if api.array == "reserved" else None)


def params(**cases):
    """``pytest.param`` per API id: ``params(add=(...), reserve=(...))``."""
    apis = {"add": ADD, "reserve": RESERVE, "remove": REMOVE, "free": FREE}
    return [pytest.param(apis[name], *case, id=name) for name, case in cases.items()]


# -- memblock_initialization_check ----------------------------------------------------------------

def test_initialization(h):
    """A new memblock: both arrays empty with 128 slots and their names, top-down, no limit."""
    mb = h.mb
    for type_, name in ((mb.memory, "memory"), (mb.reserved, "reserved")):
        assert type_.name == name
        assert type_.cnt == 0
        assert type_.max == INIT_MEMBLOCK_REGIONS
        assert type_.total_size == 0
    assert mb.bottom_up is False
    assert mb.current_limit == MEMBLOCK_ALLOC_ANYWHERE
    assert_memblock_state(mb, [], [])


# -- memblock_add_range: memblock_add_*_check / memblock_reserve_*_check ----------------------------

@pytest.mark.parametrize("api, r", params(add=((SZ_1G, SZ_4M),), reserve=((SZ_2G, SZ_128M),)))
def test_add_range_simple(h, api, r):
    """One range into an empty array: one region, counter and total size updated."""
    run(h, api, *r)
    assert_only(h, api, [r])


def test_add_node_simple(h):
    """``memblock_add_node`` records the node and the flags it is given."""
    assert h.mb.add_node(SZ_1M, SZ_16M, 1, MemblockFlags.HOTPLUG) == 0
    assert_memblock_state(h.mb, [(SZ_1M, SZ_16M, HOTPLUG, 1)], [])


@pytest.mark.parametrize("api, r1, r2", params(
    add=((SZ_1G, SZ_8K), (SZ_1G + SZ_16K, SZ_8K)),
    reserve=((SZ_256M, SZ_16M), (SZ_512M, SZ_512M)),
))
def test_add_range_disjoint(h, api, r1, r2):
    """Two ranges with a gap between them stay two regions."""
    run(h, api, *r1)
    run(h, api, *r2)
    assert_only(h, api, [r1, r2])


@pytest.mark.parametrize("api, r1, r2", params(
    add=((SZ_512M, SZ_1G), (SZ_256M, SZ_512M)),
    reserve=((SZ_1G, SZ_1G), (SZ_128M, SZ_1G)),
))
def test_add_range_overlap_top(h, api, r1, r2):
    """r2 overlaps the start of r1: one region from r2.base to r1's end."""
    run(h, api, *r1)
    run(h, api, *r2)
    assert_only(h, api, [(r2[0], r1[0] - r2[0] + r1[1])])


@pytest.mark.parametrize("api, r1, r2", params(
    add=((SZ_128M, SZ_512M), (SZ_256M, SZ_1G)),
    reserve=((SZ_2K, SZ_128K), (SZ_128K, SZ_128K)),
))
def test_add_range_overlap_bottom(h, api, r1, r2):
    """r2 overlaps the end of r1: one region from r1.base to r2's end."""
    run(h, api, *r1)
    run(h, api, *r2)
    assert_only(h, api, [(r1[0], r2[0] - r1[0] + r2[1])])


@pytest.mark.parametrize("api, r1, r2", params(
    add=((SZ_8M, SZ_32M), (SZ_16M, SZ_1M)),
    reserve=((SZ_1M, SZ_8M), (SZ_2M, SZ_64K)),
))
def test_add_range_within(h, api, r1, r2):
    """r2 lies inside r1: nothing changes."""
    run(h, api, *r1)
    run(h, api, *r2)
    assert_only(h, api, [r1])


@pytest.mark.parametrize("api, r", params(add=((SZ_16K, SZ_2M),), reserve=((SZ_16K, SZ_2M),)))
def test_add_range_twice(h, api, r):
    """The same range twice: counter and total size count it once."""
    run(h, api, *r)
    run(h, api, *r)
    assert_only(h, api, [r])


@pytest.mark.parametrize("api", params(add=(), reserve=()))
def test_add_range_between(h, api):
    """A third range exactly filling the gap between two others merges all three."""
    r1, r2, r3 = (SZ_1G, SZ_8K), (SZ_1G + SZ_16K, SZ_8K), (SZ_1G + SZ_8K, SZ_8K)
    for r in (r1, r2, r3):
        run(h, api, *r)
    assert_only(h, api, [(r1[0], r1[1] + r2[1] + r3[1])])


@pytest.mark.parametrize("api", params(add=(), reserve=()))
def test_add_range_near_max(h, api):
    """A range running past PHYS_ADDR_MAX is cut to end at PHYS_ADDR_MAX."""
    base = PHYS_ADDR_MAX - SZ_1M
    run(h, api, base, SZ_2M)
    assert_only(h, api, [(base, PHYS_ADDR_MAX - base)])


def test_add_many(h):
    """The 129th memory region doubles ``memory`` (allow_resize); the new array is reserved."""
    mb = h.mb
    mb.allow_resize()
    # A block big enough for the doubled array, then 128 small blocks with gaps (no merging).
    base = page_align(h.base())
    size = gap = SZ_64
    assert mb.add(base, NEW_ARRAY_BYTES) == 0
    blocks = []
    at = base + NEW_ARRAY_BYTES + gap
    for i in range(INIT_MEMBLOCK_REGIONS):
        assert mb.add(at, size) == 0
        blocks.append((at, size))
        at += size + gap
        assert mb.memory.cnt == i + 2
        assert mb.memory.total_size == NEW_ARRAY_BYTES + (i + 1) * size
    assert mb.memory.max == 2 * INIT_MEMBLOCK_REGIONS
    # Top-down, the only fit for the new array is the big block.
    array = (base, NEW_ARRAY_BYTES, RSRV_KERN, NUMA_NO_NODE)
    assert_regions(mb.reserved, [array])

    # Adding still works after the doubling.
    assert mb.add(SZ_16K, SZ_16K) == 0
    memory = [(SZ_16K, SZ_16K), (base, NEW_ARRAY_BYTES), *blocks]
    assert mb.memory.max == 2 * INIT_MEMBLOCK_REGIONS
    assert_memblock_state(mb, [(b, s, NONE, MAX_NUMNODES) for b, s in memory], [array])


def setup_memory(h) -> list[tuple]:
    """The memory array after ``setup_memblock()``."""
    return [(h.base(), MEM_SIZE, NONE, MAX_NUMNODES)]


def fake(base: int) -> tuple:
    """A MEM_SIZE reservation made by the doubling tests (flags 0, no node)."""
    return (base, MEM_SIZE, NONE, NUMA_NO_NODE)


def reserve_129(h, bases: list[int], skip: int) -> None:
    """Reserve MEM_SIZE at every base except ``bases[skip]`` (filling ``reserved`` to 128 regions),
    then at ``bases[skip]``, which doubles the array; checks the counters on the way."""
    mb = h.mb
    for i, base in enumerate(bases):
        if i == skip:
            continue
        assert mb.reserve(base, MEM_SIZE) == 0
        n = i + 1 if i < skip else i
        assert (mb.reserved.cnt, mb.reserved.total_size) == (n, n * MEM_SIZE)
    assert mb.reserved.max == INIT_MEMBLOCK_REGIONS
    assert mb.reserve(bases[skip], MEM_SIZE) == 0
    assert mb.reserved.cnt == INIT_MEMBLOCK_REGIONS + 2
    assert mb.reserved.total_size == (INIT_MEMBLOCK_REGIONS + 1) * MEM_SIZE + NEW_ARRAY_BYTES
    assert mb.reserved.max == 2 * INIT_MEMBLOCK_REGIONS


def reserve_after_doubling(h, memory: list[tuple], reserved_before: list[tuple]) -> None:
    """``memblock_reserve`` still works after the doubling: a new first region (SZ_16K, SZ_16K)."""
    assert h.mb.reserve(SZ_16K, SZ_16K) == 0
    assert h.mb.reserved.max == 2 * INIT_MEMBLOCK_REGIONS
    assert_memblock_state(h.mb, memory, [(SZ_16K, SZ_16K, NONE, NUMA_NO_NODE), *reserved_before])


def memory_base(i: int) -> int:
    """``MEMORY_BASE(i)``: the i-th fake reservation, 32 KiB gaps between them (no merging)."""
    return SZ_128K + 2 * MEM_SIZE * i


def reserve_doubling_at(h, skip: int) -> None:
    """Memory from ``setup_memblock``; 128 fake reservations at ``MEMORY_BASE(i)`` leaving out
    index ``skip``, then the one at ``skip`` doubles ``reserved``. The new array comes from the
    top of memory (top-down) and is reserved with RSRV_KERN."""
    h.mb.allow_resize()
    h.setup_memblock()
    bases = [memory_base(i) for i in range(INIT_MEMBLOCK_REGIONS + 1)]
    reserve_129(h, bases, skip)
    array = (h.base() + MEM_SIZE - NEW_ARRAY_BYTES, NEW_ARRAY_BYTES, RSRV_KERN, NUMA_NO_NODE)
    reserve_after_doubling(h, setup_memory(h), [*map(fake, bases), array])


def test_reserve_many(h):
    """The 129th reservation (the highest) doubles ``reserved``."""
    reserve_doubling_at(h, INIT_MEMBLOCK_REGIONS)


@pytest.mark.parametrize("skip", range(INIT_MEMBLOCK_REGIONS + 1), ids=lambda s: f"skip{s}")
def test_reserve_all_locations(h, skip):
    """The reservation that doubles ``reserved`` may sit at any index of the full array."""
    reserve_doubling_at(h, skip)


@pytest.mark.parametrize("skip", range(1, INIT_MEMBLOCK_REGIONS + 2), ids=lambda s: f"skip{s}")
def test_reserve_many_may_conflict(h, skip):
    """The new array must not land on the range being reserved: memory is two MEM_SIZE blocks,
    block 0 and the block that the 129th reservation covers; the array goes to the top of block 0."""
    mb = h.mb
    mb.allow_resize()
    offset = page_align(h.base())

    def block(i: int) -> int:  # MEMORY_BASE_OFFSET(i, offset)
        return offset + 2 * MEM_SIZE * i

    assert mb.add(block(0), MEM_SIZE) == 0
    assert mb.add(block(skip), MEM_SIZE) == 0
    bases = [block(i) for i in range(1, INIT_MEMBLOCK_REGIONS + 2)]
    reserve_129(h, bases, skip - 1)
    array = (block(0) + SZ_32K - NEW_ARRAY_BYTES, NEW_ARRAY_BYTES, RSRV_KERN, NUMA_NO_NODE)
    assert mb.reserved.regions[0].base + mb.reserved.regions[0].size == block(0) + SZ_32K
    assert mb.reserved.regions[0].size == NEW_ARRAY_BYTES
    memory = [(block(0), MEM_SIZE, NONE, MAX_NUMNODES), (block(skip), MEM_SIZE, NONE, MAX_NUMNODES)]
    reserve_after_doubling(h, memory, [array, *map(fake, bases)])


# -- memblock_remove_range: memblock_remove_*_check / memblock_free_*_check -------------------------

@pytest.mark.parametrize("api, r1, r2", params(
    remove=((SZ_2K, SZ_4K), (SZ_128K, SZ_4M)),
    free=((SZ_4M, SZ_1M), (SZ_8M, SZ_1M)),
))
def test_remove_range_simple(h, api, r1, r2):
    """Removing the first of two regions leaves the second as regions[0]."""
    populate(h, api, r1, r2)
    run(h, api, *r1)
    assert_only(h, api, [r2])


@pytest.mark.parametrize("api, r1, r2", params(
    remove=((SZ_512K, SZ_4M), (SZ_64M, SZ_1G)),
    free=((SZ_2M, SZ_8K), (SZ_16M, SZ_128M)),
))
def test_remove_range_absent(h, api, r1, r2):
    """Removing a range that was never added changes nothing."""
    populate(h, api, r1)
    run(h, api, *r2)
    assert_only(h, api, [r1])


@pytest.mark.parametrize("api, r1, r2", params(
    remove=((SZ_32M, SZ_32M), (SZ_16M, SZ_32M)),
    free=((SZ_8M, SZ_32M), (SZ_1M, SZ_8M)),
))
def test_remove_range_overlap_top(h, api, r1, r2):
    """r2 overlaps the start of r1: only the intersection goes."""
    populate(h, api, r1)
    run(h, api, *r2)
    r2_end = r2[0] + r2[1]
    assert_only(h, api, [(r2_end, r1[0] + r1[1] - r2_end)])


@pytest.mark.parametrize("api, r1, r2", params(
    remove=((SZ_2M, SZ_64M), (SZ_32M, SZ_256M)),
    free=((SZ_8M, SZ_32M), (SZ_32M, SZ_32M)),
))
def test_remove_range_overlap_bottom(h, api, r1, r2):
    """r2 overlaps the end of r1: only the intersection goes."""
    populate(h, api, r1)
    run(h, api, *r2)
    assert_only(h, api, [(r1[0], r2[0] - r1[0])])


@pytest.mark.parametrize("api, r1, r2", params(
    remove=((SZ_1M, SZ_32M), (SZ_16M, SZ_1M)),
    free=((SZ_1M, SZ_8M), (SZ_4M, SZ_1M)),
))
def test_remove_range_within(h, api, r1, r2):
    """r2 inside r1: r1 is split into the parts below and above r2."""
    populate(h, api, r1)
    run(h, api, *r2)
    r1_end, r2_end = r1[0] + r1[1], r2[0] + r2[1]
    assert_only(h, api, [(r1[0], r2[0] - r1[0]), (r2_end, r1_end - r2_end)])


@pytest.mark.parametrize("api", params(remove=(), free=()))
def test_remove_range_only_region(h, api):
    """Removing the only region leaves an empty array (cnt 0, newest kernel)."""
    r1 = (SZ_2K, SZ_4K)
    populate(h, api, r1)
    run(h, api, *r1)
    assert_only(h, api, [])


@pytest.mark.parametrize("api", params(remove=(), free=()))
def test_remove_range_near_max(h, api):
    """A removal running past PHYS_ADDR_MAX only removes up to PHYS_ADDR_MAX."""
    r1 = (PHYS_ADDR_MAX - SZ_2M, SZ_2M)
    r2 = (PHYS_ADDR_MAX - SZ_1M, SZ_2M)
    populate(h, api, r1)
    run(h, api, *r2)
    assert_only(h, api, [(r1[0], r1[1] - (PHYS_ADDR_MAX - r2[0]))])


@pytest.mark.parametrize("api", params(remove=(), free=()))
def test_remove_range_overlap_two(h, api):
    """r3 overlaps the end of r1 and the start of r2: both intersections go."""
    r1, r2, r3 = (SZ_16M, SZ_32M), (SZ_64M, SZ_64M), (SZ_32M, SZ_64M)
    populate(h, api, r1, r2)
    run(h, api, *r3)
    r2_end, r3_end = r2[0] + r2[1], r3[0] + r3[1]
    assert_only(h, api, [(r1[0], r3[0] - r1[0]), (r3_end, r2_end - r3_end)])


# -- memblock_set_bottom_up / memblock_bottom_up ------------------------------------------------

def test_set_bottom_up(h):
    """``memblock_set_bottom_up`` sets the direction flag, both ways."""
    h.mb.set_bottom_up(False)
    assert h.mb.bottom_up is False
    h.mb.set_bottom_up(True)
    assert h.mb.bottom_up is True
    assert_memblock_state(h.mb, [], [])


def test_bottom_up(h):
    """``memblock_bottom_up()`` reads back what was set."""
    getter = h.mb.get_bottom_up
    h.mb.set_bottom_up(False)
    assert getter() is False and getter() == h.mb.bottom_up
    h.mb.set_bottom_up(True)
    assert getter() is True and getter() == h.mb.bottom_up


# -- memblock_trim_memory ------------------------------------------------------------------------

ALIGN = SMP_CACHE_BYTES


def trim(h, *regions: tuple[int, int]) -> None:
    for base, size in regions:
        assert h.mb.add(base, size) == 0
    h.mb.trim_memory(ALIGN)


def memory(*regions: tuple[int, int]) -> list[tuple]:
    return [(base, size, NONE, MAX_NUMNODES) for base, size in regions]


def test_trim_memory_aligned(h):
    """A region aligned at both ends is left alone."""
    r = (ALIGN, ALIGN * 4)
    trim(h, r)
    assert_memblock_state(h.mb, memory(r), [])


def test_trim_memory_too_small(h):
    """A region that holds no aligned block is removed (total_size drops by its size)."""
    r1, r2 = (ALIGN, ALIGN * 2), (ALIGN * 4, ALIGN - SZ_2)
    trim(h, r1, r2)
    assert_memblock_state(h.mb, memory(r1), [])


def test_trim_memory_unaligned_base(h):
    """An unaligned base is rounded up. Kernel quirk: total_size keeps the untrimmed sum."""
    offset = SZ_2
    r1, r2 = (ALIGN, ALIGN * 2), (ALIGN * 4 + offset, ALIGN * 2 - offset)
    trim(h, r1, r2)
    trimmed = (r2[0] + ALIGN - offset, r2[1] - (ALIGN - offset))
    assert_memblock_state(h.mb, memory(r1, trimmed), [], memory_total=r1[1] + r2[1])


def test_trim_memory_unaligned_end(h):
    """An unaligned end is rounded down. Kernel quirk: total_size keeps the untrimmed sum."""
    offset = SZ_2
    r1, r2 = (ALIGN, ALIGN * 2), (ALIGN * 4, ALIGN * 2 - offset)
    trim(h, r1, r2)
    trimmed = (r2[0], r2[1] - (ALIGN - offset))
    assert_memblock_state(h.mb, memory(r1, trimmed), [], memory_total=r1[1] + r2[1])


# -- memblock_overlaps_region ------------------------------------------------------------------

@pytest.mark.parametrize("base, size, overlaps", [
    pytest.param(SZ_1M, SZ_1M, False, id="far_below"),
    pytest.param(SZ_2G, SZ_1M, False, id="far_above"),
    pytest.param(SZ_1G - SZ_1M, SZ_1M, False, id="neighbor_below"),
    pytest.param(SZ_1G + SZ_4M, SZ_1M, False, id="neighbor_above"),
    pytest.param(SZ_1G - SZ_1M, SZ_2M, True, id="partial_start"),
    pytest.param(SZ_1G + SZ_2M, SZ_2M, True, id="partial_end"),
    pytest.param(SZ_1G, SZ_4M, True, id="same"),
    pytest.param(SZ_1G - SZ_2M, SZ_8M, True, id="covering"),
    pytest.param(SZ_1G + SZ_1M, SZ_1M, True, id="within"),
])
def test_overlaps_region(h, base, size, overlaps):
    """``memblock_overlaps_region(memory, base, size)`` against one region [1G, 1G + 4M)."""
    assert h.mb.add(SZ_1G, SZ_4M) == 0
    assert h.mb.overlaps_region(h.mb.memory, base, size) is overlaps
    assert_memblock_state(h.mb, memory((SZ_1G, SZ_4M)), [])


# -- memblock_set_node (CONFIG_NUMA) -----------------------------------------------------------

def test_set_node(h):
    """``memmap_init_reserved_pages``' loop: stamp ``reserved`` with the nid of the memory below it,
    redoing it when the array doubled meanwhile; every reserved region ends up on a valid node.

    Memory is split into node 0 and node 1 halves; 125 small reservations fill node 0 and one
    straddles the boundary. Stamping node 1 splits it, which doubles ``reserved``; the new array
    (RSRV_KERN) lands in node 0's free gap and gets node 0 on the second round.
    """
    mb = h.mb
    mb.allow_resize()
    assert mb.add(h.base(), MEM_SIZE) == 0
    start, half = mb.start_of_dram(), mb.phys_mem_size() // 2
    assert mb.set_node(start, half, mb.memory, 0) == 0
    assert mb.set_node(start + half, half, mb.memory, 1) == 0
    assert_regions(mb.memory, [(start, half, NONE, 0), (start + half, half, NONE, 1)])

    for i in range(125):
        assert mb.reserve(start + SZ_16 * i, SZ_8) == 0
    assert mb.reserve(start + half - SZ_8, SZ_16) == 0

    while True:
        max_before = mb.reserved.max
        for i in range(mb.memory.cnt):
            r = mb.memory.regions[i]
            assert mb.set_node(r.base, r.size, mb.reserved, r.nid) == 0
        if mb.reserved.max == max_before:
            break

    nids = [mb.reserved.regions[i].nid for i in range(mb.reserved.cnt)]
    assert all(0 <= nid < MAX_NUMNODES for nid in nids)
    assert nids == [0] * (len(nids) - 1) + [1]
    assert mb.reserved.max == 2 * INIT_MEMBLOCK_REGIONS
    array = (start + SZ_4K, NEW_ARRAY_BYTES, RSRV_KERN, 0)
    assert_memblock_state(
        mb,
        [(start, half, NONE, 0), (start + half, half, NONE, 1)],
        [*((start + SZ_16 * i, SZ_8, NONE, 0) for i in range(125)), array,
         (start + half - SZ_8, SZ_8, NONE, 0), (start + half, SZ_8, NONE, 1)],
    )
