"""The indexed allocation search and the chunked region arrays of :mod:`arena.memblock`.

``Memblock`` finds free ranges through per-chunk bounds of the gaps between reserved regions
instead of the kernel's linear walk, and stores each region array as chunks. Both must be
invisible: the tests here run the fast search side by side with the kernel's linear walk (kept in
the module: ``mb._fast = False``) and with the independent plain port
:class:`arena.memblock_linear.LinearMemblock`, on random operation sequences, and compare every
result, every warning and every region array after every step. Chunks are shrunk to a few
regions (``_CHUNK_MAX``) so that splitting, merging, windows across chunks and the numpy
chunk search all run on small arrays; ``check()`` (which also verifies the chunk layout and
the gap bounds) runs after every step.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arena.memblock_store as memblock_store
from arena.errors import MemblockBug, MemblockPanic
from arena.memblock import NUMA_NO_NODE, Memblock, MemblockFlags
from arena.memblock_linear import LinearMemblock

PAGE = 4096
ALIGNS = (0, 1, 8, 64, 4096, 4096, 8192, 48, 3 * PAGE, 1 << 20)
FLAGS = (0, 0, 0, int(MemblockFlags.HOTPLUG), int(MemblockFlags.MIRROR),
         int(MemblockFlags.NOMAP), int(MemblockFlags.DRIVER_MANAGED),
         int(MemblockFlags.KHO_SCRATCH))
NIDS = (NUMA_NO_NODE, NUMA_NO_NODE, 0, 1, 2, 3, 64, 99)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Arrays built from now on use chunks of at most 4 regions."""
    monkeypatch.setattr(memblock_store, "_CHUNK_MAX", 4)
    return 4


# -- strategies ---------------------------------------------------------------------------------


def addrs(top: int) -> st.SearchStrategy[int]:
    """Addresses in the first pages, and near 0, the 4 GiB line and the top of the address
    space (for 32-bit the last two are the same line)."""
    return st.one_of(
        st.builds(lambda p, o: p * PAGE + o, st.integers(0, 48),
                  st.sampled_from((0, 0, 0, 64, 100, 2048))),
        st.sampled_from((top - 2 * PAGE, top - PAGE, top - 64, top - 1, top)),
        st.builds(lambda p, d: min(max(p + d, 0), top), st.sampled_from((0, 1 << 32, top)),
                  st.sampled_from((0, 1, -1, 64, -64, PAGE, -PAGE, 3 * PAGE, -3 * PAGE,
                                   1 << 20, -(1 << 20)))))


def trim_aligns(top: int) -> st.SearchStrategy[int]:
    """Any alignment, as the kernel's round_up/round_down mask macros take it: 0, powers of
    two, non-powers of two (bit masks, not multiples), and up to the whole address space."""
    return st.one_of(st.sampled_from((PAGE, 3 * PAGE, 20 * PAGE, 0, 1, 3, 0x1001, 1 << 20,
                                      1 << 31, top // 2 + 1, top // 3, top)),
                     st.integers(0, top))


def sizes(top: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.builds(lambda p, o: p * PAGE + o, st.integers(0, 8), st.sampled_from((0, 0, 64, 100))),
        st.integers(1, 300),
        st.sampled_from((0, top, top // 2)))


def ops(top: int) -> st.SearchStrategy[tuple]:
    a, s = addrs(top), sizes(top)
    limit = st.one_of(a, st.sampled_from((0, 1, top)))
    align = st.one_of(st.sampled_from(ALIGNS), st.sampled_from((1 << 31, top // 2 + 1, top)))
    nid = st.sampled_from(NIDS)
    return st.one_of(
        st.tuples(st.just("add"), a, s),
        st.tuples(st.just("add_node"), a, s, st.integers(0, 3), st.sampled_from(FLAGS)),
        st.tuples(st.sampled_from(("reserve", "reserve_kern", "phys_free", "remove")), a, s),
        st.tuples(st.sampled_from(("reserve", "reserve_kern", "phys_free")), a, s),
        st.tuples(st.sampled_from(("mark_mirror", "mark_nomap", "clear_nomap", "mark_hotplug",
                                   "clear_hotplug", "mark_kho_scratch", "reserved_mark_noinit")),
                  a, s),
        st.tuples(st.just("set_node"), a, s, st.sampled_from(("memory", "reserved")), nid),
        st.tuples(st.just("set_bottom_up"), st.booleans()),
        st.tuples(st.just("set_current_limit"), limit),
        st.tuples(st.just("attr"), st.sampled_from(("movable_node", "kho_scratch_only")),
                  st.booleans()),
        st.tuples(st.just("phys_alloc"), s, align),
        st.tuples(st.just("phys_alloc"), s, align),
        st.tuples(st.just("phys_alloc_range"), s, align, limit, limit),
        st.tuples(st.just("alloc_range_nid"), s, align, limit, limit, nid, st.booleans()),
        st.tuples(st.just("phys_alloc_try_nid"), s, align, nid),
        st.tuples(st.just("enforce_memory_limit"), st.sampled_from((PAGE, 3 * PAGE, 20 * PAGE, 0))),
        st.tuples(st.just("trim_memory"), trim_aligns(top)),
        st.tuples(st.sampled_from(("is_memory", "is_reserved", "is_map_memory")), a),
        st.tuples(st.sampled_from(("is_region_memory", "is_region_reserved")), a, s),
        st.tuples(st.just("overlaps_region"), st.sampled_from(("memory", "reserved")), a, s),
        st.tuples(st.just("phys_alloc"), st.just(0), align),
        st.tuples(st.just("cap_memory_range"), a, s),
    )


def configs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "phys_addr_bits": st.sampled_from((64, 64, 32)),
        "numa": st.sampled_from((True, True, False)),
        "init_regions": st.sampled_from((4, 8, 128)),
        "kernel_version": st.sampled_from((None, None, (6, 1), (5, 10))),
        "bottom_up_kernel_end": st.sampled_from((None, None, 6 * PAGE)),
    })


# -- running two allocators side by side ---------------------------------------------------------


def make(cfg: dict[str, Any], fast: bool, chunk: int | None = None) -> Memblock:
    mb = Memblock(None, max_numnodes=16, smp_cache_bytes=32, **cfg)
    if chunk:
        for t in (mb.memory, mb.reserved, mb.physmem):
            t._cmax = chunk
    mb.allow_resize()
    mb.mirrored_kernelcore = True
    mb._fast = fast
    return mb


def apply(obj: Any, op: tuple) -> tuple[Any, list[str]]:
    """Run one operation; its result (or exception) and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if op[0] == "attr":
                setattr(obj, op[1], op[2])
                out: Any = ("ok", None)
            else:
                out = ("ok", getattr(obj, op[0])(*op[1:]))
        except (MemblockPanic, MemblockBug, ValueError) as e:
            out = (type(e).__name__, str(e))
    return out, [str(w.message) for w in caught]


def state(mb: Memblock) -> list:
    return [(list(t.regions), t.cnt, t.max, t.total_size)
            for t in (mb.memory, mb.reserved, mb.physmem)]


def checked(mb: Memblock) -> str:
    """``check()``'s verdict: "" or its message's first line. (A few kernel quirks break the
    invariants, e.g. trim_memory wrapping near the top of the address space; then both break.)"""
    try:
        mb.check()
    except MemblockBug as e:
        return str(e).splitlines()[0]
    return ""


def run_pair(cfg: dict[str, Any], steps: list[tuple], chunk: int | None = None) -> None:
    fast, ref = make(cfg, True, chunk), make(cfg, False, chunk)
    for i, op in enumerate(steps):
        got, want = apply(fast, op), apply(ref, op)
        assert got == want, f"step {i} {op!r}"
        assert state(fast) == state(ref), f"arrays differ after step {i} {op!r}"
        assert checked(fast) == checked(ref), f"check() differs after step {i} {op!r}"
        if got[0][0] != "ok":
            break


SETUP = [("add_node", PAGE, 24 * PAGE, 0, 0), ("add_node", 26 * PAGE, 8 * PAGE, 1, 0),
         ("add_node", 34 * PAGE, 10 * PAGE, 2, 0)]


@settings(max_examples=150, deadline=None)
@given(cfg=configs(), data=st.data())
def test_fast_search_equals_linear_walk(cfg, data):
    """Random sequences: the indexed search gives every result, warning and array of the
    kernel's linear walk (nodes, mirror/nomap/hotplug/scratch flags, limits, both directions,
    32-bit, old kernels, array doubling, trimming and capping)."""
    top = (1 << cfg["phys_addr_bits"]) - 1
    steps = data.draw(st.lists(ops(top), max_size=60))
    run_pair(cfg, [*SETUP, *steps], chunk=data.draw(st.sampled_from((4, 5, 8))))


@settings(max_examples=60, deadline=None)
@given(cfg=configs(), data=st.data())
def test_fast_search_equals_linear_walk_default_chunks(cfg, data):
    """The same with the real chunk length (arrays stay in one chunk here)."""
    top = (1 << cfg["phys_addr_bits"]) - 1
    run_pair(cfg, [*SETUP, *data.draw(st.lists(ops(top), max_size=40))])


# -- the independent reference ---------------------------------------------------------------------

REF_OPS = st.one_of(
    st.tuples(st.just("add"), addrs((1 << 64) - 1), sizes((1 << 64) - 1)),
    st.tuples(st.just("add_node"), addrs((1 << 64) - 1), sizes((1 << 64) - 1),
              st.integers(0, 3), st.just(0)),
    st.tuples(st.sampled_from(("reserve", "reserve_kern", "phys_free", "remove")),
              addrs((1 << 64) - 1), sizes((1 << 64) - 1)),
    st.tuples(st.just("set_bottom_up"), st.booleans()),
    st.tuples(st.just("set_current_limit"), st.one_of(addrs((1 << 64) - 1), st.just(0))),
    st.tuples(st.just("phys_alloc"), sizes((1 << 64) - 1), st.sampled_from(ALIGNS)),
    st.tuples(st.just("phys_alloc_range"), sizes((1 << 64) - 1), st.sampled_from(ALIGNS),
              addrs((1 << 64) - 1), addrs((1 << 64) - 1)),
    st.tuples(st.just("alloc_range_nid"), sizes((1 << 64) - 1), st.sampled_from(ALIGNS),
              addrs((1 << 64) - 1), addrs((1 << 64) - 1), st.sampled_from(NIDS),
              st.booleans()),
    st.tuples(st.just("phys_alloc"), st.just(0), st.sampled_from(ALIGNS)),
    st.tuples(st.just("trim_memory"), trim_aligns((1 << 64) - 1)),
    st.tuples(st.sampled_from(("mark_nomap", "clear_nomap", "mark_hotplug")),
              addrs((1 << 64) - 1), sizes((1 << 64) - 1)),
    st.tuples(st.just("set_node"), addrs((1 << 64) - 1), sizes((1 << 64) - 1),
              st.sampled_from(("memory", "reserved")), st.sampled_from(NIDS)),
    st.tuples(st.sampled_from(("is_memory", "is_reserved")), addrs((1 << 64) - 1)),
    st.tuples(st.sampled_from(("is_region_memory", "is_region_reserved")),
              addrs((1 << 64) - 1), sizes((1 << 64) - 1)),
    st.tuples(st.just("overlaps_region"), st.sampled_from(("memory", "reserved")),
              addrs((1 << 64) - 1), sizes((1 << 64) - 1)),
)


# 8 GiB from the 4 GiB line (survives most trims) and memory just below 2**64 (a trim with an
# alignment above 0x23456 wraps its start to 0, leaving the array unsorted).
TOP_MEMORY = [("add_node", 1 << 32, 1 << 33, 1, 0), ("add_node", (1 << 64) - 0x23456, 0x20000, 2, 0)]


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(REF_OPS, max_size=60), init=st.sampled_from((4, 8, 128)),
       top=st.booleans(), align=trim_aligns((1 << 64) - 1))
def test_small_chunks_against_linear_ref(steps, init, top, align):
    """Chunked storage and the fast search against ``arena.memblock_linear.LinearMemblock`` (lists of
    tuples, the kernel's loops): every result and both arrays after every step; half the runs
    start with memory at the top of the address space and a trim with any alignment, which
    often leaves the array unsorted."""
    if top:
        steps = [*TOP_MEMORY, ("trim_memory", align), *steps]
    mb = Memblock(None, init_regions=init)
    mb.memory._cmax = mb.reserved._cmax = 4
    ref = LinearMemblock(init_regions=init)
    mb.allow_resize()
    ref.allow_resize()
    for i, op in enumerate([*SETUP[:2], *steps]):
        got, want = apply(mb, op)[0], apply(ref, op)[0]
        if got[0] == want[0] == "MemblockBug":
            break                    # both BUG (the texts differ); the kernel stops here
        assert got == want, f"step {i} {op!r}"
        for name in ("memory", "reserved"):
            ours, theirs = getattr(mb, name), getattr(ref, name)
            assert list(ours.regions) == theirs.regions, f"{name} after step {i} {op!r}"
            assert (ours.cnt, ours.max, ours.total_size) == (theirs.cnt, theirs.max,
                                                              theirs.total_size)
        mb.check()
        if got[0] != "ok":
            break


# -- many regions ----------------------------------------------------------------------------------


def random_layout(n: int, seed: int, chunk: int | None = None) -> Memblock:
    """Memory on two nodes (one part mirrored, one NOMAP) with ``n`` reservations of random
    sizes and gaps (some adjacent with other flags: the kernel's empty ranges)."""
    rnd = random.Random(seed)
    mb = Memblock(None, init_regions=4)
    if chunk:
        mb.memory._cmax = mb.reserved._cmax = chunk
    mb.allow_resize()
    span = n * 6 * PAGE
    mb.add_node(PAGE, span // 2, 0)
    mb.add_node(PAGE + span // 2, span // 2 + 64 * PAGE, 1)
    mb.mirrored_kernelcore = True
    mb.mark_mirror(PAGE + span // 4, span // 8)
    mb.mark_nomap(PAGE + span // 2 + span // 8, PAGE * 5)
    addr = 2 * PAGE
    for _ in range(n):
        size = rnd.choice((64, 100, PAGE, 3 * PAGE, rnd.randrange(1, 2 * PAGE)))
        (mb.reserve if rnd.random() < 0.7 else mb.reserve_kern)(addr, size)
        addr += size + rnd.choice((0, 0, 64, 200, PAGE, PAGE, 2 * PAGE, 5 * PAGE + 8))
    mb.system_has_some_mirror = False
    mb.check()
    return mb


def compare_queries(mb: Memblock, rnd: random.Random, count: int) -> int:
    """Random searches, fast against linear on the same state; returns how many found memory."""
    found = 0
    top = mb.end_of_dram()
    for _ in range(count):
        size = rnd.choice((1, 64, 100, PAGE, 2 * PAGE, 3 * PAGE, 5 * PAGE + 8, 6 * PAGE,
                           64 * PAGE, rnd.randrange(1, 8 * PAGE)))
        align = rnd.choice(ALIGNS[1:] + (3 * PAGE, 5 * 64))
        start = rnd.choice((0, 0, rnd.randrange(top)))
        end = rnd.choice((0, top, rnd.randrange(top), (1 << 64) - 1))
        nid = rnd.choice((NUMA_NO_NODE, 0, 1, 5))
        flags = rnd.choice((0, 0, int(MemblockFlags.MIRROR), int(MemblockFlags.NOMAP)))
        mb.set_bottom_up(rnd.random() < 0.5)
        mb._fast = True
        got = mb._find_in_range_node(size, align, start, end, nid, flags)
        mb._fast = False
        want = mb._find_in_range_node(size, align, start, end, nid, flags)
        mb._fast = True
        assert got == want, (size, align, start, end, nid, flags, mb.bottom_up)
        found += bool(got)
    mb.check()    # the searches only tightened gap bounds, and kept them valid
    return found


@pytest.mark.parametrize("chunk", [4, 16, None])
def test_many_regions_queries(chunk):
    """A few thousand reservations of random sizes and gaps: random searches (sizes around the
    gap lengths, odd alignments, windows, nodes, mirror/nomap) agree with the linear walk."""
    mb = random_layout(1500, seed=chunk or 64, chunk=chunk)
    assert mb.reserved.cnt > 1000
    found = compare_queries(mb, random.Random(7), 120)
    assert 10 < found < 120           # both outcomes were exercised


def test_many_regions_allocate_and_free(small_chunks):
    """Allocations and frees interleaved on a large layout, fast and linear side by side."""
    rnd = random.Random(3)
    a, b = random_layout(600, 1, 8), random_layout(600, 1, 8)
    b._fast = False
    live: list[tuple[int, int]] = []
    for step in range(400):
        if live and rnd.random() < 0.4:
            base, size = live.pop(rnd.randrange(len(live)))
            assert a.phys_free(base, size) == b.phys_free(base, size) == 0
        else:
            size = rnd.choice((64, PAGE, 2 * PAGE, 5 * PAGE, rnd.randrange(1, 9 * PAGE)))
            align = rnd.choice((64, PAGE, 3 * PAGE))
            nid = rnd.choice((NUMA_NO_NODE, 0, 1))
            a.set_bottom_up(step % 3 == 0)
            b.set_bottom_up(step % 3 == 0)
            got = a.alloc_range_nid(size, align, 0, 0, nid)
            assert got == b.alloc_range_nid(size, align, 0, 0, nid), step
            if got:
                live.append((got, size))
        assert state(a) == state(b), step
    a.check()


def test_fragmented_scan_skips_every_small_gap():
    """The benchmark's layout: every gap shorter than the request, so the allocation lands
    below all of them (top-down) - the same address as the linear walk."""
    n = 3000
    mb = Memblock(None, init_regions=2 * n + 16)
    mb.add(1 << 30, (64 << 20) + 2 * n * PAGE)
    rnd = random.Random(5)
    frag = (1 << 30) + (64 << 20)
    for i in range(n):
        mb.reserve(frag + 2 * i * PAGE, rnd.randrange(64, PAGE + 1, 64))
    got = mb.phys_alloc(2 * PAGE, PAGE)
    assert got == frag - 2 * PAGE
    mb.phys_free(got, 2 * PAGE)
    mb._fast = False
    assert mb.phys_alloc(2 * PAGE, PAGE) == got
    mb.check()


# -- edge cases of the search ----------------------------------------------------------------------


@pytest.mark.parametrize("bottom_up", [False, True])
def test_empty_ranges_and_size_zero(small_chunks, bottom_up):
    """Adjacent reservations with different flags leave the kernel's empty range [x, x)
    inside memory; size 0 takes the linear walk and finds it as the kernel does."""
    pair = [make({}, fast) for fast in (True, False)]
    for mb in pair:
        mb.set_bottom_up(bottom_up)
        mb.add(PAGE, 32 * PAGE)
        for i in range(8):
            mb.reserve(2 * PAGE + i * 3 * PAGE, PAGE)
            mb.reserve_kern(3 * PAGE + i * 3 * PAGE, PAGE)
    for size, align in [(0, 1), (0, PAGE), (0, 3 * PAGE), (1, 1), (PAGE, PAGE), (2 * PAGE, 1)]:
        for start, end in [(0, 0), (5 * PAGE, 9 * PAGE), (9 * PAGE, 9 * PAGE), (33 * PAGE, 0)]:
            got = [mb._find_in_range_node(size, align, start, end, NUMA_NO_NODE, 0)
                   for mb in pair]
            assert got[0] == got[1], (size, align, start, end)


@pytest.mark.parametrize("bottom_up", [False, True])
def test_round_up_wrap_near_the_top_of_32_bit_space(small_chunks, bottom_up):
    """Memory up to the last byte of a 32-bit space with a huge alignment: the kernel's
    round_up() wraps to 0 (and the bottom-up walk stops); the result must be the same."""
    pair = [make({"phys_addr_bits": 32}, fast) for fast in (True, False)]
    for mb in pair:
        mb.set_bottom_up(bottom_up)
        mb.add(0x1000, 0xFFFFE000)
        for i in range(12):
            mb.reserve(0xF0000000 + i * 0x1000000, 0x10000)
    for size in (1, 0x1000, 0x8000000):
        for align in (0x80000000, 0x40000000, 0x10000000, 0xFFFFFFFF, 0x3000):
            for start in (0, 0x90000000, 0xFFFFF000):
                got = [mb._find_in_range_node(size, align, start, 0, NUMA_NO_NODE, 0)
                       for mb in pair]
                assert got[0] == got[1], (size, align, start)


def test_no_memory_and_no_reservations(small_chunks):
    """Empty arrays (also with the dummy entry of kernels <= 6.10) never find anything."""
    for kv in (None, (6, 1)):
        mb = make({"kernel_version": kv}, True)
        assert mb.phys_alloc(PAGE, PAGE) == 0
        mb.add(PAGE, 8 * PAGE)
        assert mb.phys_alloc(PAGE, PAGE) == 8 * PAGE
        mb.set_bottom_up(True)
        assert mb.phys_alloc(PAGE, PAGE) == PAGE
        mb.check()


# -- the chunked arrays ----------------------------------------------------------------------------


def test_chunks_split_and_merge(small_chunks):
    """Regions added and removed at random keep the chunk layout valid (check() verifies chunk
    lengths, keys and gap bounds) and the region sequence exact."""
    rnd = random.Random(11)
    mb = Memblock(None, init_regions=1024)
    model: set[int] = set()
    for _ in range(1500):
        page = rnd.randrange(200)
        if rnd.random() < 0.55:
            mb.reserve((page * 2 + 1) * PAGE, PAGE)
            model.add(page)
        else:
            mb.phys_free((page * 2 + 1) * PAGE, PAGE)
            model.discard(page)
        mb.check()
    assert [r.base for r in mb.reserved.regions] == [(p * 2 + 1) * PAGE for p in sorted(model)]
    assert len(mb.reserved._cb) > 5
    assert all(len(c) <= 4 for c in mb.reserved._cb)
    regions = list(mb.reserved.regions)
    assert [mb.reserved.regions[i] for i in range(len(regions))] == regions
    assert mb.reserved.regions[-1] == regions[-1]
    assert mb.phys_free(0, 1 << 40) == 0 and mb.reserved.cnt == 0
    mb.check()


def test_large_removal_spans_many_chunks(small_chunks):
    """One removal across dozens of chunks, with split regions at both ends."""
    mb = Memblock(None, init_regions=4)
    mb.allow_resize()
    mb.add(PAGE, 1000 * PAGE)
    for i in range(100):
        mb.reserve((2 + 4 * i) * PAGE, 2 * PAGE)
    mb.mark_nomap(3 * PAGE, 300 * PAGE)
    assert mb.memory.cnt == 3
    assert mb.phys_free(3 * PAGE, 300 * PAGE) == 0
    assert [r.base for r in mb.reserved.regions][:2] == [2 * PAGE, 303 * PAGE]
    mb.check()
    assert mb.set_node(0, 1 << 30, "reserved", 3) == 0
    assert {r.nid for r in mb.reserved.regions} == {3}
    mb.check()


def test_flat_column_views():
    """``_base``/``_size``/``_flags``/``_nid`` read and write through to the chunks; a write
    bypasses the invariants, and check() reports what it broke."""
    mb = Memblock()
    mb.add(0x100000, 0x1000)
    mb.add(0x200000, 0x1000)
    assert list(mb.memory._base) == [0x100000, 0x200000]
    assert mb.memory._size[-1] == 0x1000 and len(mb.memory._nid) == 2
    assert mb.memory._base.itemsize == 8 and mb.memory._flags.itemsize == 1
    mb.memory._size[0] = 0x200000
    with pytest.raises(MemblockBug, match="overlaps"):
        mb.check()
    with pytest.raises(IndexError):
        mb.memory._base[2]


def test_metadata_per_region():
    """Python memory per reserved region (tracemalloc) stays far below 100 bytes."""
    n = 5_000     # measures the same per-region cost as 50,000, in a tenth of the time
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        mb = Memblock(None, init_regions=2 * n + 16)
        mb._autocheck = False          # ARENA_CHECK=1 would make the build quadratic
        mb.add(PAGE, 4 * n * PAGE)
        for i in range(n):
            mb.reserve((2 + 2 * i) * PAGE, 64 + (i % 50) * 64)
        per_region = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert mb.reserved.cnt == n
    assert per_region < 60, per_region


@pytest.mark.parametrize("chunk", [4, None])
def test_bug_mid_operation_leaves_storage_consistent(chunk):
    """A kernel BUG raised half-way through an operation (a merge meeting an overlap that a raw
    column write made; kernels < 6.3 merge the whole array after cap_memory_range) still
    leaves the count, the arrays and the dump in step."""
    mb = make({"kernel_version": (6, 1)}, True, chunk)
    for i in range(6):
        mb.add((1 + 2 * i) * PAGE, PAGE)
    mb.cap_memory_range(0, 1 << 30)                  # the array may now be non-minimal
    mb.memory._size[2] = 2 * PAGE + 64               # region 2 now overlaps region 3
    with pytest.raises(MemblockBug, match="overlaps") as e:
        mb.add(20 * PAGE, PAGE)                      # inserts, then merges the whole array
    regions = list(mb.memory.regions)
    assert len(regions) == 7
    assert mb.memory.cnt == len(regions) == sum(map(len, mb.memory._cb))
    assert f"memory.cnt  = {len(regions):#x}" in str(e.value)


def test_regions_iterate_by_index_while_changing(small_chunks):
    """Iterating ``regions`` goes by index, as the kernel's loops do, also when the caller
    changes the array in between (here: freeing each region it visits)."""
    mb = Memblock(None, init_regions=64)
    for i in range(12):
        mb.reserve((1 + 2 * i) * PAGE, PAGE)
    seen = []
    for r in mb.reserved.regions:
        seen.append(r.base)
        mb.phys_free(r.base, r.size)
    assert seen == [(1 + 4 * i) * PAGE for i in range(6)]     # every other one, by index
    assert [r.base for r in mb.reserved.regions] == [(3 + 4 * i) * PAGE for i in range(6)]
    mb.check()
