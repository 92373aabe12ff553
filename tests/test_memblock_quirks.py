"""The kernel's documented quirks and edge rules, one test each.

Every expected value below is computed by hand from the kernel's rules and checked against
``mm/memblock.c``; the arithmetic is written out in the comments. Most tests run on a pure simulation, ``Memblock(None)`` (64-bit ``phys_addr_t``,
4 KiB pages, ``SMP_CACHE_BYTES`` 64, NUMA with ``MAX_NUMNODES`` 64), where the ``phys_*``
allocators may use any address. The tests that need the view-returning allocators use the
kernel-harness fixture ``h`` (memory at 1 GiB).
"""

from __future__ import annotations

import errno
import logging
import warnings

import pytest

from arena.errors import MemblockBug, MemblockPanic
from arena.memblock import (
    MEMBLOCK_ALLOC_ACCESSIBLE,
    MEMBLOCK_ALLOC_ANYWHERE,
    NUMA_NO_NODE,
    Memblock,
    MemblockFlags,
)

PHYS_ADDR_MAX = 2**64 - 1
PHYS_ADDR_MAX_32 = 2**32 - 1
MAX_NN = 64  # MAX_NUMNODES of Memblock(None)
SZ_1M = 1 << 20
SZ_16K, SZ_32K = 16 << 10, 32 << 10
KERN = int(MemblockFlags.RSRV_KERN)  # 0x20
HOTPLUG = int(MemblockFlags.HOTPLUG)
MIRROR = int(MemblockFlags.MIRROR)
NOMAP = int(MemblockFlags.NOMAP)
LOGGER = "arena.memblock"


# -- helpers --------------------------------------------------------------------------------------

def new(**kw) -> Memblock:
    return Memblock(None, **kw)


def regions(type_) -> list[tuple[int, int, int, int]]:
    """The valid entries ``[0, cnt)`` as ``(base, size, flags, nid)`` tuples."""
    return [
        (r.base, r.size, int(r.flags), r.nid)
        for r in (type_.regions[i] for i in range(type_.cnt))
    ]


def assert_type(type_, expected, total_size=None) -> None:
    """Whole-state assertion of one region array: every entry, ``cnt`` and ``total_size``."""
    assert regions(type_) == [tuple(e) for e in expected]
    assert type_.cnt == len(expected)
    if total_size is None:
        total_size = sum(e[1] for e in expected)
    assert type_.total_size == total_size


def free_ranges(mb, nid=NUMA_NO_NODE, flags=MemblockFlags.NONE, reverse=False):
    it = mb.for_each_free_mem_range_reverse if reverse else mb.for_each_free_mem_range
    return [tuple(r) for r in it(nid, flags)]


def pfn_ranges(mb, nid=NUMA_NO_NODE):
    return [tuple(r) for r in mb.for_each_mem_pfn_range(nid)]


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def dump_lines(mb, caplog) -> list[str]:
    """The lines of ``dump_all()``, whether it returns them or logs them."""
    caplog.clear()
    out = mb.dump_all()
    if isinstance(out, str):
        return out.splitlines()
    if out is not None:
        return list(out)
    return messages(caplog)


def is_line(msg: str, prefix: str) -> bool:
    """``msg`` is the debug line ``prefix`` followed by nothing or by the caller (``%pS``)."""
    return msg == prefix or msg.startswith(prefix + " ")


def assert_lines(msgs: list[str], prefixes: list[str]) -> None:
    assert len(msgs) == len(prefixes), msgs
    for m, p in zip(msgs, prefixes, strict=True):
        assert is_line(m, p), (m, p)


def pa(x: int, bits: int = 64) -> str:
    """``%pa``: 0x + zero-padded lower-case hex of the phys_addr_t width."""
    return f"0x{x % (1 << bits):0{bits // 4}x}"


def emitted(caplog, caught) -> str:
    """Everything said through logging or warnings (pr_warn/pr_err may be either)."""
    return caplog.text + "\n".join(str(x.message) for x in caught)


def fill_reserved(mb, n, base=0x100000, step=0x2000, size=0x1000):
    for i in range(n):
        assert mb.reserve(base + i * step, size) == 0


@pytest.fixture(autouse=True)
def _check_every_step(monkeypatch):
    """ARENA_CHECK=1: every Memblock made in these tests runs check() after each mutator."""
    monkeypatch.setenv("ARENA_CHECK", "1")


@pytest.fixture
def dbg(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


# -- initial state --------------------------------------------------------------------------------

def test_initial_state_newest():
    mb = new()
    for t, name, mx in ((mb.memory, "memory", 128), (mb.reserved, "reserved", 128),
                        (mb.physmem, "physmem", 4)):
        assert (t.name, t.cnt, t.max, t.total_size) == (name, 0, mx, 0)
    assert mb.bottom_up is False
    assert mb.get_current_limit() == MEMBLOCK_ALLOC_ANYWHERE == PHYS_ADDR_MAX
    assert MEMBLOCK_ALLOC_ACCESSIBLE == 0


# -- the empty free range [x, x) ------------------------------------------------------------------

def _empty_range_memblock(**kw) -> Memblock:
    # memory [0x10000, 0x20000) nid MAX_NUMNODES; reserved [0x14000, 0x15000) {0, -1} and
    # [0x15000, 0x16000) {RSRV_KERN, -1}: adjacent, not merged, boundary 0x15000 inside memory.
    mb = new(**kw)
    mb.add(0x10000, 0x10000)
    mb.reserve(0x14000, 0x1000)
    mb.reserve_kern(0x15000, 0x1000)
    assert_type(mb.reserved, [(0x14000, 0x1000, 0, -1), (0x15000, 0x1000, KERN, -1)])
    return mb


def test_free_range_empty_between_unmerged_reserves_forward():
    """Gap 1 of reserved is [0x15000, 0x15000): the forward iterator yields it."""
    mb = _empty_range_memblock()
    assert free_ranges(mb) == [
        (0x10000, 0x14000, MAX_NN), (0x15000, 0x15000, MAX_NN), (0x16000, 0x20000, MAX_NN)]


def test_free_range_empty_between_unmerged_reserves_reverse():
    mb = _empty_range_memblock()
    assert free_ranges(mb, reverse=True) == [
        (0x16000, 0x20000, MAX_NN), (0x15000, 0x15000, MAX_NN), (0x10000, 0x14000, MAX_NN)]


def test_free_range_empty_tolerated_top_down():
    """[0x16000, 0x20000) clamps to the point 0x15800, then [0x15000, 0x15000) fails the test
    cand >= ts (round_down(0x14800, 0x1000) = 0x14000), then [0x10000, 0x14000) gives 0x13000."""
    mb = _empty_range_memblock()
    assert mb.phys_alloc_range(0x1000, 0x1000, 0x10000, 0x15800) == 0x13000
    assert_type(mb.reserved, [(0x13000, 0x1000, KERN, -1), (0x14000, 0x1000, 0, -1),
                              (0x15000, 0x1000, KERN, -1)])


def test_free_range_empty_size0_lands_in_it():
    """Size 0, top-down: the point 0x15800 gives round_down(0x15800) = 0x15000 < ts; the empty
    range [0x15000, 0x15000) gives 0x15000 >= ts: the answer is the reserved boundary, and
    nothing is recorded."""
    mb = _empty_range_memblock()
    assert mb.phys_alloc_range(0, 0x1000, 0x10000, 0x15800) == 0x15000
    assert mb.reserved.cnt == 2


def test_free_range_empty_tolerated_bottom_up():
    """Bottom-up from 0x14800: [0x10000, 0x14000) clamps to a point, the empty range gives
    cand 0x15000 which is not < te, then [0x16000, 0x20000) gives 0x16000."""
    mb = _empty_range_memblock()
    mb.set_bottom_up(True)
    assert mb.phys_alloc_range(0x1000, 0x1000, 0x14800, 0x20000) == 0x16000


# -- trim_memory ----------------------------------------------------------------------------------

def test_trim_memory_keeps_total_size():
    """[0x1800, 0x4800) -> [0x2000, 0x4000) without touching total_size; [0x10100, 0x10900)
    has round_up 0x11000 > round_down 0x10000, so it is removed (total -= 0x800)."""
    mb = new()
    mb.add(0x1800, 0x3000)
    mb.add(0x10100, 0x800)
    mb.trim_memory(0x1000)
    assert_type(mb.memory, [(0x2000, 0x2000, 0, MAX_NN)], total_size=0x3000)
    assert mb.phys_mem_size() == 0x3000


def test_trim_memory_reexamines_index_after_removal():
    mb = new()
    mb.add(0x100, 0x100)
    mb.add(0x300, 0x100)
    mb.add(0x2000, 0x1000)
    mb.trim_memory(0x1000)
    assert_type(mb.memory, [(0x2000, 0x1000, 0, MAX_NN)])


def test_trim_memory_non_power_of_two_align():
    """round_up(0x1000, 0x3000) = (0xfff | 0x2fff) + 1 = 0x3000;
    round_down(0x9000, 0x3000) = 0x9000 & ~0x2fff = 0x9000."""
    mb = new()
    mb.add(0x1000, 0x8000)
    mb.trim_memory(0x3000)
    assert_type(mb.memory, [(0x3000, 0x6000, 0, MAX_NN)], total_size=0x8000)


def test_trim_memory_zero_removes_everything():
    """align 0: round_up(x, 0) = round_down(x, 0) = 0 for every entry, so every entry
    (even one at base 0) is removed."""
    mb = new()
    mb.add(0, 0x1000)
    mb.add(0x5000, 0x3000)
    mb.trim_memory(0)
    assert_type(mb.memory, [])


def test_trim_memory_zero_after_trim_leaves_residue():
    """After a trim inflated total_size (0x3000 for 0x2000 of entries), trim_memory(0) removes
    the entry and total_size keeps the residue 0x1000 (the kernel WARNs: cnt 0, total != 0)."""
    mb = new()
    mb.add(0x1800, 0x3000)
    mb.trim_memory(0x1000)
    with pytest.warns(Warning):
        mb.trim_memory(0)
    assert mb.memory.cnt == 0
    assert mb.memory.total_size == 0x1000


def test_trim_wrapping_start_leaves_total_short_and_check_accepts_it(monkeypatch):
    """add(2**64 - 4097, 8192) is capped to 0x1000 bytes; trim_memory(2 MiB) rounds its start
    up to 2**64, which wraps to 0, and its end down to 2**64 - 2 MiB: the region grows to
    [0, 2**64 - 2 MiB) while total_size stays 0x1000. check() (and ARENA_CHECK=1, which runs
    it after the trim) accepts that state, because it is the kernel's."""
    mb = new()
    mb.add(PHYS_ADDR_MAX - 4096, 8192)
    mb.trim_memory(2 * SZ_1M)
    assert_type(mb.memory, [(0, 2**64 - 2 * SZ_1M, 0, MAX_NN)], total_size=0x1000)
    mb.check()
    monkeypatch.setenv("ARENA_CHECK", "1")
    auto = new()
    auto.add(PHYS_ADDR_MAX - 4096, 8192)
    auto.trim_memory(2 * SZ_1M)
    assert auto.memory.total_size == 0x1000


def test_trim_total_size_difference_is_tracked_exactly():
    """The trim's difference (0x1000 too much) stays exact through later adds and removes, so
    check() still catches a total that is off by one byte."""
    mb = new()
    mb.add(0x1800, 0x3000)
    mb.trim_memory(0x1000)                     # [0x2000, 0x4000), total 0x3000
    mb.add(0x8000, 0x2000)
    mb.remove(0x3000, 0x6000)                  # leaves [0x2000, 0x3000) and [0x9000, 0xa000)
    assert mb.memory.total_size == 0x2000 + 0x1000
    mb.check()
    mb.memory.total_size += 1
    with pytest.raises(MemblockBug, match="total_size .* left by trim_memory"):
        mb.check()
    mb.memory.total_size -= 1
    with pytest.warns(Warning, match="empty but total_size is 0x1000"):
        mb.remove(0, PHYS_ADDR_MAX)             # empty: the residue 0x1000 stays (a WARN)
    with pytest.warns(Warning, match="empty memory array has total_size 0x1000"):
        mb.add(0x5000, 0x1000)                  # the empty-array add resets the total
    assert mb.memory.total_size == 0x1000
    mb.check()


# -- cap_memory_range and mem_limit_remove_map ----------------------------------------------------

def test_cap_memory_range_keeps_nomap_split_unmerged():
    """memory [0x1000,0x4000) | NOMAP [0x4000,0x8000) | [0x8000,0x10000); cap [0x6000,0xa000):
    isolate splits NOMAP at 0x6000 and the last entry at 0xa000; non-NOMAP entries outside
    are removed; the two NOMAP halves stay separate although equal and adjacent."""
    mb = new()
    mb.add(0x1000, 0xf000)
    mb.mark_nomap(0x4000, 0x4000)
    mb.reserve(0x2000, 0x1000)
    mb.reserve(0x7000, 0x2000)
    mb.reserve(0x9800, 0x1000)
    mb.cap_memory_range(0x6000, 0x4000)
    assert_type(mb.memory, [(0x4000, 0x2000, NOMAP, MAX_NN), (0x6000, 0x2000, NOMAP, MAX_NN),
                            (0x8000, 0x2000, 0, MAX_NN)])
    assert_type(mb.reserved, [(0x7000, 0x2000, 0, -1), (0x9800, 0x800, 0, -1)])
    mb.check()  # the documented non-minimal state is valid


def test_cap_memory_range_nothing_inside_removes_all_map_memory():
    """start_rgn = end_rgn = 0 when nothing is inside: every non-NOMAP entry goes."""
    mb = new()
    mb.add(0x1000, 0x3000)
    mb.add(0x8000, 0x1000)
    mb.mark_nomap(0x8000, 0x1000)
    mb.add(0x10000, 0x1000)
    mb.reserve(0x1000, 0x100)
    mb.reserve(0x5800, 0x1000)
    mb.cap_memory_range(0x5000, 0x1000)
    assert_type(mb.memory, [(0x8000, 0x1000, NOMAP, MAX_NN)])
    assert_type(mb.reserved, [(0x5800, 0x800, 0, -1)])


def test_cap_memory_range_without_memory_changes_nothing(caplog):
    """No memory registered yet: warning, and reserved is not truncated."""
    caplog.set_level(logging.DEBUG)
    mb = new()
    mb.reserve(0x1000, 0x1000)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mb.cap_memory_range(0x5000, 0x1000)
    assert "memblock_cap_memory_range: No memory registered yet" in emitted(caplog, w)
    assert_type(mb.reserved, [(0x1000, 0x1000, 0, -1)])


def test_cap_memory_range_size0_is_noop():
    mb = new()
    mb.add(0x1000, 0x3000)
    mb.reserve(0x9000, 0x1000)
    mb.cap_memory_range(0x2000, 0)
    assert_type(mb.memory, [(0x1000, 0x3000, 0, MAX_NN)])
    assert_type(mb.reserved, [(0x9000, 0x1000, 0, -1)])


def test_cap_memory_range_end_not_overflow_checked():
    """cap(0x2000, 2**64 - 0x1000): memory is isolated with the capped size, but reserved is
    truncated above base + size, which wraps to 0x1000: every reservation goes, even
    [0x3000, 0x4000) inside the range."""
    mb = new()
    mb.add(0x1000, 0xf000)
    mb.reserve(0x3000, 0x1000)
    mb.reserve(0x800, 0x400)
    mb.cap_memory_range(0x2000, 2**64 - 0x1000)
    assert_type(mb.memory, [(0x2000, 0xe000, 0, MAX_NN)])
    assert_type(mb.reserved, [])


def test_mem_limit_remove_map_keeps_nomap_above_limit():
    """limit 0x1800 -> __find_max_addr = 0x1000 + 0x1800 = 0x2800 -> cap_memory_range(0, 0x2800):
    the NOMAP entry above stays, reserved above 0x2800 goes (also the one on NOMAP memory)."""
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.add(0x5000, 0x1000)
    mb.mark_nomap(0x5000, 0x1000)
    mb.add(0x8000, 0x1000)
    mb.reserve(0x1000, 0x100)
    mb.reserve(0x5000, 0x100)
    mb.mem_limit_remove_map(0x1800)
    assert_type(mb.memory, [(0x1000, 0x1800, 0, MAX_NN), (0x5000, 0x1000, NOMAP, MAX_NN)])
    assert_type(mb.reserved, [(0x1000, 0x100, 0, -1)])


def test_enforce_memory_limit_removes_nomap_too():
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.add(0x5000, 0x1000)
    mb.mark_nomap(0x5000, 0x1000)
    mb.enforce_memory_limit(0x1800)
    assert_type(mb.memory, [(0x1000, 0x1800, 0, MAX_NN)])


@pytest.mark.parametrize("limit", [0, 0x4001, 2**64 - 1])
def test_mem_limit_remove_map_noop(limit):
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.add(0x5000, 0x2000)
    mb.reserve(0x9000, 0x1000)
    mb.mem_limit_remove_map(limit)
    mb.enforce_memory_limit(limit)
    assert_type(mb.memory, [(0x1000, 0x2000, 0, MAX_NN), (0x5000, 0x2000, 0, MAX_NN)])
    assert_type(mb.reserved, [(0x9000, 0x1000, 0, -1)])


# -- enforce_memory_limit -------------------------------------------------------------------------

def test_enforce_memory_limit_equal_to_total():
    """limit == total (0x3000): __find_max_addr returns the end of the last entry (0x6000), not
    PHYS_ADDR_MAX, so reserved above 0x6000 is truncated although memory keeps everything."""
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.add(0x5000, 0x1000)
    mb.reserve(0x5800, 0x1000)
    mb.reserve(0x8000, 0x1000)
    mb.enforce_memory_limit(0x3000)
    assert_type(mb.memory, [(0x1000, 0x2000, 0, MAX_NN), (0x5000, 0x1000, 0, MAX_NN)])
    assert_type(mb.reserved, [(0x5800, 0x800, 0, -1)])


def test_enforce_memory_limit_above_total_is_noop():
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.add(0x5000, 0x1000)
    mb.reserve(0x8000, 0x1000)
    mb.enforce_memory_limit(0x3001)
    assert_type(mb.reserved, [(0x8000, 0x1000, 0, -1)])
    assert mb.memory.cnt == 2


def test_enforce_memory_limit_counts_nomap():
    """NOMAP entries count in __find_max_addr: 0x3000 - 0x2000 (NOMAP) = 0x1000 -> 0x6000."""
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.mark_nomap(0x1000, 0x2000)
    mb.add(0x5000, 0x2000)
    mb.enforce_memory_limit(0x3000)
    assert_type(mb.memory, [(0x1000, 0x2000, NOMAP, MAX_NN), (0x5000, 0x1000, 0, MAX_NN)])


# -- rounding with non-power-of-two align ---------------------------------------------------------

def test_alloc_non_power_of_two_align_top_down():
    """round_down(0x200000 - 0x1000, 0x3000) = 0x1ff000 & ~0x2fff = 0x1fd000 (not a multiple)."""
    mb = new()
    mb.add(0x100000, 0x100000)
    got = mb.phys_alloc(0x1000, 0x3000)
    assert got == 0x1fd000
    assert got % 0x3000 != 0
    assert_type(mb.reserved, [(0x1fd000, 0x1000, KERN, -1)])


def test_alloc_non_power_of_two_align_bottom_up():
    """round_up(0x101000, 0x3000) = (0x100fff | 0x2fff) + 1 = 0x103000 (not a multiple)."""
    mb = new()
    mb.add(0x101000, 0xff000)
    mb.set_bottom_up(True)
    got = mb.phys_alloc(0x1000, 0x3000)
    assert got == 0x103000
    assert got % 0x3000 != 0


def test_alloc_align0_uses_smp_cache_bytes():
    """align 0 -> SMP_CACHE_BYTES (64): round_down(0x200000 - 0x101, 64) = 0x1ffec0."""
    mb = new()
    mb.add(0x100000, 0x100000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the kernel dumps a stack trace here
        assert mb.phys_alloc(0x101, 0) == 0x1ffec0


def test_bottom_up_round_up_wrap_fails_at_once():
    """align 2**64 - 0x10 (mask: all bits but bit 4). Range [0x100011, 0x200000): round_up
    wraps to 0, and 0 < te and te - 0 >= 8 holds, so 0 (failure) is returned at once: the
    later range [2**64 - 0x1f, 2**64 - 1) is never tried although it would fit."""
    align = 2**64 - 0x10
    mb = new()
    mb.set_bottom_up(True)
    mb.add(0x100011, 0x200000 - 0x100011)
    mb.add(2**64 - 0x1f, 0x1f)  # capped to 0x1e bytes
    assert mb.phys_alloc(8, align) == 0
    assert mb.reserved.cnt == 0
    mb.remove(0x100011, 0x200000 - 0x100011)
    # ((2**64 - 0x20) | (2**64 - 0x11)) + 1 = 2**64 - 0x10, and te - cand = 0xf >= 8
    assert mb.phys_alloc(8, align) == 2**64 - 0x10


# -- size-0 allocations ---------------------------------------------------------------------------

def test_size0_alloc_top_down_returns_aligned_end(dbg):
    mb = new()
    mb.add(0x100000, 0xff800)  # ends at 0x1ff800
    dbg.clear()
    assert mb.phys_alloc(0, 0x1000) == 0x1ff000
    assert mb.reserved.cnt == 0 and mb.reserved.total_size == 0
    # the size-0 reserve is a no-op but still prints its line, end = base - 1
    assert is_line(messages(dbg)[-1],
                   f"__memblock_reserve: [{pa(0x1ff000)}-{pa(0x1fefff)}] nid=-1 flags=20")


def test_size0_alloc_top_down_can_be_end_of_memory():
    mb = new()
    mb.add(0x100000, 0x100000)
    assert mb.phys_alloc(0, 0x1000) == 0x200000
    assert mb.reserved.cnt == 0


def test_size0_alloc_bottom_up_returns_aligned_start():
    mb = new()
    mb.add(0x100800, 0x100000)
    mb.set_bottom_up(True)
    assert mb.phys_alloc(0, 0x1000) == 0x101000
    assert mb.reserved.cnt == 0


def test_size0_alloc_top_down_point_range_outside_memory():
    """A free range clamped to the single point `start` = 0x300000 qualifies top-down (te >= 0,
    cand = 0x300000 >= ts): the answer lies outside memory. Bottom-up never takes a point."""
    mb = new()
    mb.add(0x100000, 0x100000)
    assert mb.phys_alloc_range(0, 0x1000, 0x300000, 0x400000) == 0x300000
    mb.set_bottom_up(True)
    assert mb.phys_alloc_range(0, 0x1000, 0x300000, 0x400000) == 0


# -- base + size overflow -------------------------------------------------------------------------

def test_add_near_max_caps_size():
    mb = new()
    assert mb.add(PHYS_ADDR_MAX - SZ_1M, 2 * SZ_1M) == 0
    assert_type(mb.memory, [(PHYS_ADDR_MAX - SZ_1M, SZ_1M, 0, MAX_NN)])


def test_add_near_max_caps_size_32bit():
    mb = new(phys_addr_bits=32)
    assert mb.add(PHYS_ADDR_MAX_32 - SZ_1M, 2 * SZ_1M) == 0
    assert_type(mb.memory, [(PHYS_ADDR_MAX_32 - SZ_1M, SZ_1M, 0, MAX_NN)])


def test_add_top_bank_32bit_like_arm_trace():
    """The ARM trace's top bank [0xfec00000-0xffffffff] ends at 0xfffffffe after capping."""
    mb = new(phys_addr_bits=32)
    mb.add(0xfec00000, 0x1400000)
    assert_type(mb.memory, [(0xfec00000, 0x13fffff, 0, MAX_NN)])


@pytest.mark.parametrize("bits", [32, 64])
def test_add_reserve_at_phys_addr_max_is_noop(bits):
    mb = new(phys_addr_bits=bits)
    top = 2**bits - 1
    assert mb.add(top, 5) == 0
    assert mb.reserve(top, 5) == 0
    assert mb.memory.cnt == 0 and mb.reserved.cnt == 0


def test_reserve_near_max_caps_size():
    mb = new()
    mb.reserve(PHYS_ADDR_MAX - SZ_1M, 2 * SZ_1M)
    assert_type(mb.reserved, [(PHYS_ADDR_MAX - SZ_1M, SZ_1M, 0, -1)])


def test_debug_line_end_uses_uncapped_size(dbg):
    """The printed end is base + size - 1 with the uncapped size, wrapping."""
    mb = new()
    mb.add(PHYS_ADDR_MAX - SZ_1M, 2 * SZ_1M)
    assert_lines(messages(dbg), [f"memblock_add: [{pa(PHYS_ADDR_MAX - SZ_1M)}-{pa(SZ_1M - 2)}]"])


# -- add over existing entries --------------------------------------------------------------------

def test_add_fully_covered_changes_nothing():
    mb = new()
    mb.add_node(0x1000, 0x4000, 3, MemblockFlags.HOTPLUG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the kernel WARNs about nid/flags: print-only
        assert mb.add(0x2000, 0x1000) == 0
        assert mb.add_node(0x1000, 0x4000, 5, MemblockFlags.MIRROR) == 0
    assert_type(mb.memory, [(0x1000, 0x4000, HOTPLUG, 3)])


def test_add_overlap_only_gaps_get_new_attributes():
    mb = new()
    mb.add_node(0x2000, 0x1000, 3, MemblockFlags.HOTPLUG)
    with pytest.warns(Warning):  # WARN_ON(nid != existing nid): MAX_NUMNODES vs 3
        mb.add(0x1000, 0x4000)
    assert_type(mb.memory, [(0x1000, 0x1000, 0, MAX_NN), (0x2000, 0x1000, HOTPLUG, 3),
                            (0x3000, 0x2000, 0, MAX_NN)])


def test_add_and_add_node_max_numnodes_merge():
    """add() uses nid MAX_NUMNODES: it merges with add_node(.., MAX_NUMNODES) but not node 0."""
    mb = new()
    mb.add(0x1000, 0x1000)
    mb.add_node(0x2000, 0x1000, MAX_NN, MemblockFlags.NONE)
    mb.add_node(0x3000, 0x1000, 0, MemblockFlags.NONE)
    assert_type(mb.memory, [(0x1000, 0x2000, 0, MAX_NN), (0x3000, 0x1000, 0, 0)])


# -- reservation attributes and merging -----------------------------------------------------------

def test_reserve_and_allocation_do_not_merge():
    mb = new()
    mb.add(0x100000, 0x100000)
    mb.reserve(0x1ff000, 0x1000)
    assert mb.phys_alloc(0x1000, 0x1000) == 0x1fe000
    assert_type(mb.reserved, [(0x1fe000, 0x1000, KERN, -1), (0x1ff000, 0x1000, 0, -1)])


def test_reserve_kern_and_allocation_merge():
    mb = new()
    mb.add(0x100000, 0x100000)
    mb.reserve_kern(0x1ff000, 0x1000)
    assert mb.phys_alloc(0x1000, 0x1000) == 0x1fe000
    assert_type(mb.reserved, [(0x1fe000, 0x2000, KERN, -1)])


# -- array doubling -------------------------------------------------------------------------------

def test_double_memory_array(dbg):
    """basic_api memblock_add_many_check: the 129th memory entry doubles memory.regions; the new
    array (PAGE_ALIGN(256 * 24) = 8192 bytes) comes top-down from the first region, which is
    exactly that big: [0x100000, 0x102000)."""
    mb = new()
    mb.allow_resize()
    base = 0x100000
    mb.add(base, 8192)
    base += 8192 + 64
    for i in range(128):
        mb.add(base, 64)
        base += 128
        assert mb.memory.cnt == i + 2
        assert mb.memory.total_size == 8192 + (i + 1) * 64
    assert mb.memory.max == 256
    assert_type(mb.reserved, [(0x100000, 8192, KERN, -1)])
    assert f"memblock: memory is doubled to 256 at [{pa(0x100000)}-{pa(0x1017ff)}]" in messages(dbg)
    mb.add(SZ_16K, SZ_16K)
    assert regions(mb.memory)[0] == (SZ_16K, SZ_16K, 0, MAX_NN)
    assert mb.memory.cnt == 130
    assert mb.memory.total_size == 128 * 64 + 8192 + SZ_16K
    mb.check()


@pytest.mark.parametrize("skip", [0, 1, 64, 127, 128])
def test_double_reserved_array_all_locations(skip, dbg):
    """basic_api memblock_reserve_all_locations_check: reserving the 129th region doubles
    reserved; the array goes top-down into memory [0x10000000, +32K) above the pending range:
    0x10008000 - 0x2000 = 0x10006000. The debug line has no caller and ends at addr + new_size - 1
    (new_size 6144, not 8192)."""
    mem = 0x10000000
    mb = new()
    mb.allow_resize()
    mb.add(mem, SZ_32K)

    def base(i):
        return 128 * 1024 + 2 * SZ_32K * i

    for i in range(129):
        if i == skip:
            continue
        mb.reserve(base(i), SZ_32K)
        n = i + 1 if i < skip else i
        assert (mb.reserved.cnt, mb.reserved.total_size) == (n, n * SZ_32K)
    dbg.clear()
    mb.reserve(base(skip), SZ_32K)
    assert mb.reserved.cnt == 130 and mb.reserved.max == 256
    assert mb.reserved.total_size == 129 * SZ_32K + 8192
    assert regions(mb.reserved)[-1] == (mem + 0x6000, 8192, KERN, -1)
    assert_lines(messages(dbg), [
        f"__memblock_reserve: [{pa(base(skip))}-{pa(base(skip) + SZ_32K - 1)}] nid=-1 flags=0",
        f"memblock: reserved is doubled to 256 at [{pa(mem + 0x6000)}-{pa(mem + 0x6000 + 6143)}]",
        f"__memblock_reserve: [{pa(mem + 0x6000)}-{pa(mem + 0x7fff)}] nid=-1 flags=20",
    ])
    assert messages(dbg)[1] == (
        f"memblock: reserved is doubled to 256 at [{pa(mem + 0x6000)}-{pa(mem + 0x77ff)}]")
    mb.reserve(SZ_16K, SZ_16K)
    assert regions(mb.reserved)[0][:2] == (SZ_16K, SZ_16K)
    assert mb.reserved.cnt == 131
    mb.check()


def test_double_reserved_array_may_conflict():
    """basic_api memblock_reserve_many_may_conflict_check: when memory region `skip` is exactly
    the pending range, the array goes to the top of memory region 0: first try above the
    pending range finds nothing, the retry [0, pending base) takes [off + 0x6000, off + 0x8000)."""
    off = 0x100000

    def at(i):
        return off + 2 * SZ_32K * i

    for skip in range(1, 130):
        mb = new()
        mb.allow_resize()
        mb.add(at(0), SZ_32K)
        mb.add(at(skip), SZ_32K)
        for i in range(1, 130):
            if i != skip:
                mb.reserve(at(i), SZ_32K)
        mb.reserve(at(skip), SZ_32K)
        assert mb.reserved.cnt == 130 and mb.reserved.max == 256
        assert mb.reserved.total_size == 129 * SZ_32K + 8192
        assert regions(mb.reserved)[0] == (off + 0x6000, 8192, KERN, -1)


def test_double_reserved_array_pending_at_zero_may_overlap():
    """Pending range [0, 0x8000), [0x8000, 0x10000) already reserved: the first try (above
    0x8000) fails; the retry's end min(0, limit) = 0 is the ACCESSIBLE sentinel and is pumped to
    current_limit, so the array lands at [0x6000, 0x8000), inside the pending range."""
    mb = new()
    mb.allow_resize()
    mb.add(0, 0x10000)
    mb.reserve(0x8000, 0x8000)
    fill_reserved(mb, 127)
    mb.reserve(0, 0x8000)
    assert mb.reserved.max == 256 and mb.reserved.cnt == 130
    assert regions(mb.reserved)[:3] == [(0, 0x6000, 0, -1), (0x6000, 0x2000, KERN, -1),
                                        (0x8000, 0x8000, 0, -1)]
    assert mb.reserved.total_size == 0x6000 + 0x2000 + 0x8000 + 127 * 0x1000


def test_isolate_pre_doubles_on_free_of_nothing(dbg):
    """phys_free of a never-reserved range with reserved.cnt = 127: isolate needs cnt + 2 <=
    max and doubles first. Above the pending [0x5000000, +4K) there is no memory; the retry
    below it takes the top of memory: round_down(0x1100000 - 0x2000) = 0x10fe000."""
    mb = new()
    mb.allow_resize()
    mb.add(0x100000, 0x1000000)
    fill_reserved(mb, 127)
    dbg.clear()
    assert mb.phys_free(0x5000000, 0x1000) == 0
    assert mb.reserved.max == 256 and mb.reserved.cnt == 128
    assert regions(mb.reserved)[-1] == (0x10fe000, 0x2000, KERN, -1)
    assert mb.reserved.total_size == 127 * 0x1000 + 0x2000
    assert (f"memblock: reserved is doubled to 256 at [{pa(0x10fe000)}-{pa(0x10ff7ff)}]"
            in messages(dbg))


def _snapshot(mb):
    return [(regions(t), t.cnt, t.max, t.total_size) for t in (mb.memory, mb.reserved, mb.physmem)]


def test_resize_without_permission_panics_memory():
    mb = new()
    for i in range(128):
        mb.add(0x100000 + i * 0x2000, 0x1000)
    before = _snapshot(mb)
    with pytest.raises(MemblockPanic, match="memblock: cannot resize memory array"):
        mb.add(0x900000, 0x1000)
    assert _snapshot(mb) == before


def test_resize_without_permission_panics_reserved():
    mb = new()
    mb.add(0x100000, 0x1000000)
    fill_reserved(mb, 128)
    before = _snapshot(mb)
    with pytest.raises(MemblockPanic, match="memblock: cannot resize reserved array"):
        mb.reserve(0x900000, 0x1000)
    assert _snapshot(mb) == before
    with pytest.raises(MemblockPanic, match="memblock: cannot resize reserved array"):
        mb.phys_alloc(0x1000, 0x1000)
    assert _snapshot(mb) == before


def test_isolate_pre_doubling_panics_without_permission():
    mb = new()
    mb.add(0x100000, 0x1000000)
    fill_reserved(mb, 127)
    before = _snapshot(mb)
    with pytest.raises(MemblockPanic, match="memblock: cannot resize reserved array"):
        mb.phys_free(0x5000000, 0x1000)
    assert _snapshot(mb) == before


def test_double_fails_without_space(caplog):
    """No memory for a new array: pr_err, -ENOMEM, array unchanged."""
    caplog.set_level(logging.DEBUG)
    mb = new()
    mb.allow_resize()
    fill_reserved(mb, 128)
    before = _snapshot(mb)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert mb.reserve(0x900000, 0x1000) == -errno.ENOMEM
    assert _snapshot(mb) == before
    assert ("memblock: Failed to double reserved array from 128 to 256 entries !"
            in emitted(caplog, w))


# -- queries on edge inputs -----------------------------------------------------------------------

def test_queries_on_empty_memblock():
    """memblock_search runs once on cnt 0 and reads the zeroed slot 0: never found."""
    mb = new()
    assert not mb.is_memory(0)
    assert not mb.is_reserved(0)
    assert not mb.is_map_memory(0)
    assert not mb.is_region_memory(0, 0)
    assert not mb.is_region_reserved(0, 0x1000)
    assert mb.search_pfn_nid(0)[0] == NUMA_NO_NODE
    assert mb.start_of_dram() == 0


def test_queries_after_removing_everything():
    mb = new()
    mb.add(0x1000, 0x1000)
    mb.remove(0x1000, 0x1000)
    assert mb.memory.cnt == 0
    assert not mb.is_memory(0) and not mb.is_memory(0x1000)
    assert mb.start_of_dram() == 0


def test_end_of_dram_empty_kernel_6_10_is_0():
    assert new(kernel_version=(6, 10)).end_of_dram() == 0


def test_end_of_dram_empty_newest_is_0():
    """Undefined in the newest kernel (reads index -1); the implementation returns 0."""
    mb = new()
    assert mb.end_of_dram() == 0
    mb.add(0x1000, 0x1000)
    assert mb.end_of_dram() == 0x2000
    mb.remove(0x1000, 0x1000)
    assert mb.end_of_dram() == 0


def test_overlaps_region_size0():
    """With size 0 only a probe strictly inside an entry overlaps."""
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.reserve(0x1000, 0x2000)
    assert not mb.overlaps_region(mb.memory, 0x1000, 0)
    assert mb.overlaps_region(mb.memory, 0x2000, 0)
    assert not mb.overlaps_region(mb.memory, 0x3000, 0)
    assert not mb.is_region_reserved(0x1000, 0)
    assert mb.is_region_reserved(0x1001, 0)
    assert mb.overlaps_region(mb.memory, 0x2fff, 1)
    assert not mb.overlaps_region(mb.memory, 0x3000, 0x1000)


def test_overlaps_region_caps_size():
    mb = new()
    mb.reserve(0x1000, 0x1000)
    assert mb.overlaps_region(mb.reserved, 0x1800, PHYS_ADDR_MAX)
    assert not mb.overlaps_region(mb.reserved, PHYS_ADDR_MAX, 0x10000)


def test_is_region_memory_size0():
    mb = new()
    mb.add(0x1000, 0x2000)
    assert mb.is_region_memory(0x1000, 0)
    assert mb.is_region_memory(0x2fff, 0)
    assert not mb.is_region_memory(0x3000, 0)
    assert not mb.is_region_memory(0x500, 0)


def test_is_region_memory_single_entry_only():
    """Two adjacent unmerged entries: only the entry containing base counts."""
    mb = new()
    mb.add(0x1000, 0x1000)
    mb.add_node(0x2000, 0x1000, 1, MemblockFlags.NONE)
    assert mb.memory.cnt == 2
    assert mb.is_region_memory(0x1000, 0x1000)
    assert not mb.is_region_memory(0x1000, 0x2000)


def test_is_map_memory_nomap():
    mb = new()
    mb.add(0x1000, 0x2000)
    mb.mark_nomap(0x2000, 0x1000)
    assert mb.is_map_memory(0x1fff) and not mb.is_map_memory(0x2000)
    assert mb.is_memory(0x2000)


def test_search_pfn_nid_returns_pfn_down_of_base():
    """[0x1800, 0x4800) on node 2: start PFN_DOWN(0x1800) = 1 (not PFN_UP = 2), end 4."""
    mb = new()
    mb.add_node(0x1800, 0x3000, 2, MemblockFlags.NONE)
    assert tuple(mb.search_pfn_nid(2)) == (2, 1, 4)
    assert tuple(mb.search_pfn_nid(4)) == (2, 1, 4)
    assert mb.search_pfn_nid(1)[0] == NUMA_NO_NODE
    assert mb.search_pfn_nid(5)[0] == NUMA_NO_NODE


def test_for_each_mem_pfn_range_skips_sub_page_entries():
    """[0x1100,0x1900): PFN_UP 2 >= PFN_DOWN 1, skipped; [0x3800,0x5800) -> (4, 5);
    [0x6800,0x7800) spans a page boundary but holds no whole page (7 >= 7), skipped."""
    mb = new()
    mb.add(0x1100, 0x800)
    mb.add(0x3800, 0x2000)
    mb.add(0x6800, 0x1000)
    mb.add_node(0x8000, 0x1000, 1, MemblockFlags.NONE)
    everything = [(4, 5, MAX_NN), (8, 9, 1)]
    assert pfn_ranges(mb) == everything
    assert pfn_ranges(mb, MAX_NN) == everything  # invalid nid: any node
    assert pfn_ranges(mb, 99) == everything
    assert pfn_ranges(mb, 1) == [(8, 9, 1)]
    assert pfn_ranges(mb, 0) == []


def test_for_each_mem_range_skips_nomap_only():
    mb = new()
    mb.add(0x1000, 0x1000)
    mb.add_node(0x3000, 0x1000, 0, MemblockFlags.HOTPLUG)
    mb.add(0x5000, 0x1000)
    mb.mark_nomap(0x5000, 0x1000)
    assert [tuple(r)[:2] for r in mb.for_each_mem_range()] == [(0x1000, 0x2000), (0x3000, 0x4000)]


def test_for_each_reserved_mem_region_is_raw():
    mb = new()
    mb.reserve(0x1000, 0x1000)
    mb.reserve_kern(0x2000, 0x1000)
    got = [(r.base, r.size, int(r.flags), r.nid) for r in mb.for_each_reserved_mem_region()]
    assert got == [(0x1000, 0x1000, 0, -1), (0x2000, 0x1000, KERN, -1)]


# -- allocation rules -----------------------------------------------------------------------------

def test_allocation_never_returns_page0():
    mb = new()
    mb.add(0, 0x4000)
    assert [mb.phys_alloc(0x1000, 0x1000) for _ in range(4)] == [0x3000, 0x2000, 0x1000, 0]
    assert_type(mb.reserved, [(0x1000, 0x3000, KERN, -1)])


def test_allocation_never_returns_page0_bottom_up():
    mb = new()
    mb.add(0, 0x4000)
    mb.set_bottom_up(True)
    assert mb.phys_alloc(0x1000, 0x1000) == 0x1000
    assert mb.phys_alloc_range(0x1000, 0x1000, 0, 0x1000) == 0


def test_phys_alloc_range_start_above_end_no_retry():
    mb = new()
    mb.add(0x100000, 0x100000)
    assert mb.phys_alloc_range(0x1000, 0x1000, 0x180000, 0x170000) == 0
    assert mb.reserved.cnt == 0


def test_phys_alloc_range_ignores_current_limit():
    mb = new()
    mb.add(0x100000, 0x100000)
    mb.set_current_limit(0x180000)
    assert mb.phys_alloc_range(0x1000, 0x1000, 0, 0x200000) == 0x1ff000
    assert mb.phys_alloc(0x1000, 0x1000) == 0x17f000  # ACCESSIBLE -> current_limit


def test_min_addr_above_max_addr_retries_from_0(h, direction):
    """Window [base + 0x6000, base + 0x2000) is empty; alloc_internal retries with min 0."""
    h.setup_memblock()
    b = h.base()
    view = h.mb.alloc_try_nid(0x1000, 0x1000, b + 0x6000, b + 0x2000, NUMA_NO_NODE)
    want = b + 0x1000 if direction == "top_down" else b
    assert h.phys(view) == want
    assert_type(h.mb.reserved, [(want, 0x1000, KERN, -1)])


def test_alloc_range_nid_invalid_nid_stored_verbatim():
    """An invalid nid (99, MAX_NUMNODES) means "any node" for searching but is recorded."""
    mb = new()
    mb.add_node(0x100000, 0x10000, 0, MemblockFlags.NONE)
    mb.add_node(0x110000, 0x10000, 1, MemblockFlags.NONE)
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 99) == 0x11f000
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, MAX_NN) == 0x11e000
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 0) == 0x10f000
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, NUMA_NO_NODE) == 0x11d000
    assert_type(mb.reserved, [(0x10f000, 0x1000, KERN, 0), (0x11d000, 0x1000, KERN, -1),
                              (0x11e000, 0x1000, KERN, MAX_NN), (0x11f000, 0x1000, KERN, 99)])


def test_alloc_range_nid_fallback_records_no_node():
    """Node 0 full: step b (any node) reserves with nid -1; exact_nid has no fallback; an
    invalid nid with exact_nid still searches any node and keeps its own value."""
    mb = new()
    mb.add_node(0x100000, 0x10000, 0, MemblockFlags.NONE)
    mb.add_node(0x110000, 0x10000, 1, MemblockFlags.NONE)
    mb.reserve(0x100000, 0x10000)
    assert mb.alloc_range_nid(0x1000, 0x1000, 0, 0x120000, 0, True) == 0
    assert mb.alloc_range_nid(0x1000, 0x1000, 0, 0x120000, 0, False) == 0x11f000
    assert mb.alloc_range_nid(0x1000, 0x1000, 0, 0x120000, 99, True) == 0x11e000
    assert regions(mb.reserved)[1:] == [(0x11e000, 0x1000, KERN, 99), (0x11f000, 0x1000, KERN, -1)]


def test_alloc_range_nid_no_min_retry():
    mb = new()
    mb.add(0x100000, 0x100000)
    assert mb.alloc_range_nid(0x1000, 0x1000, 0x1c0000, 0x1b0000, NUMA_NO_NODE, False) == 0


def test_allocation_never_spans_two_entries():
    """Contiguous entries with different nid are separate free ranges."""
    mb = new()
    mb.add_node(0x100000, 0x1000, 0, MemblockFlags.NONE)
    mb.add_node(0x101000, 0x1000, 1, MemblockFlags.NONE)
    assert mb.phys_alloc(0x2000, 0x1000) == 0


# -- mark_mirror ----------------------------------------------------------------------------------

def test_mark_mirror_is_noop_without_mirrored_kernelcore():
    """The harness's setting (mirrored_kernelcore false): nothing marked, no mirror mode."""
    mb = new()
    assert mb.mirrored_kernelcore is False
    mb.add(0x100000, 0x100000)
    assert mb.mark_mirror(0x100000, 0x1000) == 0
    assert_type(mb.memory, [(0x100000, 0x100000, 0, MAX_NN)])
    assert not mb.has_mirror()
    assert mb.phys_alloc(0x1000, 0x1000) == 0x1ff000


def test_mark_mirror_with_mirrored_kernelcore():
    """kernelcore=mirror: MIRROR is set, allocations try mirrored memory first."""
    mb = new()
    mb.mirrored_kernelcore = True
    mb.add(0x100000, 0x100000)
    assert mb.mark_mirror(0x100000, 0x1000) == 0
    assert_type(mb.memory, [(0x100000, 0x1000, MIRROR, MAX_NN), (0x101000, 0xff000, 0, MAX_NN)])
    assert mb.has_mirror()
    assert mb.phys_alloc(0x800, 0x800) == 0x100800
    assert mb.phys_alloc(0x800, 0x800) == 0x100000
    # mirror exhausted: warning, then any memory
    assert mb.phys_alloc(0x1000, 0x1000) == 0x1ff000


def test_mark_mirror_outside_memory_still_enables_mirror_mode(caplog):
    """system_has_some_mirror is set even if the range holds no memory: every allocation then
    tries mirror first, fails, warns, and falls back."""
    caplog.set_level(logging.DEBUG)
    mb = new()
    mb.mirrored_kernelcore = True
    mb.add(0x100000, 0x100000)
    assert mb.mark_mirror(0x900000, 0x1000) == 0
    assert mb.has_mirror()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert mb.phys_alloc(0x1000, 0x1000) == 0x1ff000
    assert "Could not allocate 0x0000000000001000 bytes of mirrored memory" in emitted(caplog, w)


def test_mark_mirror_ungated_before_6_0():
    mb = new(kernel_version=(5, 19))
    mb.add(0x100000, 0x100000)
    mb.mark_mirror(0x100000, 0x1000)
    assert regions(mb.memory)[0] == (0x100000, 0x1000, MIRROR, MAX_NN)


# -- size-0 and no-op mutators --------------------------------------------------------------------

def test_size0_mutators_are_noops(dbg):
    mb = new()
    mb.add(0x1000, 0x3000)
    mb.reserve(0x2000, 0x1000)
    before = _snapshot(mb)
    dbg.clear()
    for f in (mb.add, mb.remove, mb.reserve, mb.reserve_kern, mb.phys_free, mb.mark_hotplug,
              mb.clear_hotplug, mb.mark_mirror, mb.mark_nomap, mb.clear_nomap,
              mb.reserved_mark_noinit):
        assert f(0x2000, 0) == 0
    assert mb.add_node(0x2000, 0, 1, MemblockFlags.NONE) == 0
    assert _snapshot(mb) == before
    e = pa(0x1fff)
    assert_lines(messages(dbg), [
        f"memblock_add: [{pa(0x2000)}-{e}]",
        f"memblock_remove: [{pa(0x2000)}-{e}]",
        f"__memblock_reserve: [{pa(0x2000)}-{e}] nid=-1 flags=0",
        f"__memblock_reserve: [{pa(0x2000)}-{e}] nid=-1 flags=20",
        f"memblock_phys_free: [{pa(0x2000)}-{e}]",
        f"memblock_add_node: [{pa(0x2000)}-{e}] nid=1 flags=0",
    ])


def test_size0_at_address0_prints_wrapped_end(dbg):
    mb = new()
    mb.add(0, 0)
    mb32 = new(phys_addr_bits=32)
    mb32.add(0, 0)
    assert_lines(messages(dbg), [f"memblock_add: [{pa(0)}-{pa(PHYS_ADDR_MAX)}]",
                                 "memblock_add: [0x00000000-0xffffffff]"])


def test_free_never_reserved_and_double_free():
    mb = new()
    mb.add(0x100000, 0x100000)
    mb.reserve(0x1000, 0x1000)
    assert mb.phys_free(0x8000, 0x1000) == 0
    assert mb.phys_free(0x1000, 0x1000) == 0
    assert mb.phys_free(0x1000, 0x1000) == 0
    assert_type(mb.reserved, [])


def test_reserve_outside_memory_is_accepted():
    mb = new()
    mb.add(0x100000, 0x1000)
    assert mb.reserve(0x900000000, 0x1000) == 0
    assert mb.remove(0x700000000, 0x1000) == 0
    assert_type(mb.reserved, [(0x900000000, 0x1000, 0, -1)])


def test_mark_outside_memory_returns_0():
    mb = new()
    mb.add(0x100000, 0x1000)
    assert mb.mark_nomap(0x900000, 0x1000) == 0
    assert mb.reserved_mark_noinit(0x900000, 0x1000) == 0
    assert_type(mb.memory, [(0x100000, 0x1000, 0, MAX_NN)])


def test_set_node_splits_and_merges():
    mb = new()
    mb.add(0x1000, 0x4000)
    assert mb.set_node(0x2000, 0x1000, mb.memory, 3) == 0
    assert_type(mb.memory, [(0x1000, 0x1000, 0, MAX_NN), (0x2000, 0x1000, 0, 3),
                            (0x3000, 0x2000, 0, MAX_NN)])
    assert mb.set_node(0x2000, 0x1000, mb.memory, MAX_NN) == 0
    assert_type(mb.memory, [(0x1000, 0x4000, 0, MAX_NN)])


def test_numa_off_ignores_nid():
    mb = new(numa=False)
    mb.add_node(0x1000, 0x1000, 3, MemblockFlags.NONE)
    mb.add(0x2000, 0x1000)
    assert_type(mb.memory, [(0x1000, 0x2000, 0, 0)])
    mb.set_node(0x1000, 0x1000, mb.memory, 5)
    assert mb.memory.cnt == 1 and mb.memory.regions[0].nid == 0


# -- dump format ----------------------------------------------------------------------------------

def test_dump_format_64bit(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    mb = new()
    mb.add(0x100000, 0x7ff00000)
    mb.add_node(0x80000000, 0x1000, 0, MemblockFlags.NONE)
    mb.reserve(0x1000, 0x1000)
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 0) == 0x80000000
    assert dump_lines(mb, caplog) == [
        "MEMBLOCK configuration:",
        " memory size = 0x000000007ff01000 reserved size = 0x0000000000002000",
        " memory.cnt  = 0x2",
        " memory[0x0]\t[0x0000000000100000-0x000000007fffffff], 0x000000007ff00000 bytes flags: 0x0",
        " memory[0x1]\t[0x0000000080000000-0x0000000080000fff], 0x0000000000001000 bytes on node 0 flags: 0x0",
        " reserved.cnt  = 0x2",
        " reserved[0x0]\t[0x0000000000001000-0x0000000000001fff], 0x0000000000001000 bytes flags: 0x0",
        " reserved[0x1]\t[0x0000000080000000-0x0000000080000fff], 0x0000000000001000 bytes on node 0 flags: 0x20",
    ]


def test_dump_lists_physmem_with_phys_map(caplog):
    """CONFIG_HAVE_MEMBLOCK_PHYS_MAP: physmem is dumped after reserved."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    mb = new(phys_map=True)
    mb.physmem_add(0x1000, 0x1000)
    assert dump_lines(mb, caplog) == [
        "MEMBLOCK configuration:",
        " memory size = 0x0000000000000000 reserved size = 0x0000000000000000",
        " memory.cnt  = 0x0",
        " reserved.cnt  = 0x0",
        " physmem.cnt  = 0x1",
        " physmem[0x0]\t[0x0000000000001000-0x0000000000001fff], 0x0000000000001000 bytes flags: 0x0",
    ]


def test_dump_format_hex_index_and_flags(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    mb = new()
    for i in range(11):
        mb.add_node(0x10000 * (i + 1), 0x1000, 0, MemblockFlags.NONE)
    mb.mark_nomap(0x10000 * 11, 0x1000)
    mb.mark_hotplug(0x10000 * 11, 0x1000)
    lines = dump_lines(mb, caplog)
    assert " memory.cnt  = 0xb" in lines
    assert (" memory[0xa]\t[0x00000000000b0000-0x00000000000b0fff], 0x0000000000001000 bytes"
            " on node 0 flags: 0x5") in lines


def test_dump_format_32bit(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    mb = new(phys_addr_bits=32)
    mb.add_node(0x100000, 0x1000, 2, MemblockFlags.HOTPLUG)
    assert dump_lines(mb, caplog) == [
        "MEMBLOCK configuration:",
        " memory size = 0x00001000 reserved size = 0x00000000",
        " memory.cnt  = 0x1",
        " memory[0x0]\t[0x00100000-0x00100fff], 0x00001000 bytes on node 2 flags: 0x1",
        " reserved.cnt  = 0x0",
    ]


def test_dump_format_numa_off(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    mb = new(numa=False)
    mb.add_node(0x1000, 0x1000, 0, MemblockFlags.NONE)
    lines = dump_lines(mb, caplog)
    assert " memory[0x0]\t[0x0000000000001000-0x0000000000001fff], 0x0000000000001000 bytes flags: 0x0" in lines


# -- debug lines ----------------------------------------------------------------------------------

def test_debug_lines_mutators(dbg):
    mb = new()
    mb.add(0x1000, 0x1000)
    mb.add_node(0x3000, 0x1000, 3, MemblockFlags.HOTPLUG)
    mb.remove(0x3000, 0x800)
    mb.reserve(0x1000, 0x100)
    mb.reserve_kern(0x1100, 0x100)
    mb.phys_free(0x1000, 0x100)
    assert_lines(messages(dbg), [
        f"memblock_add: [{pa(0x1000)}-{pa(0x1fff)}]",
        f"memblock_add_node: [{pa(0x3000)}-{pa(0x3fff)}] nid=3 flags=1",
        f"memblock_remove: [{pa(0x3000)}-{pa(0x37ff)}]",
        f"__memblock_reserve: [{pa(0x1000)}-{pa(0x10ff)}] nid=-1 flags=0",
        f"__memblock_reserve: [{pa(0x1100)}-{pa(0x11ff)}] nid=-1 flags=20",
        f"memblock_phys_free: [{pa(0x1000)}-{pa(0x10ff)}]",
    ])


def test_debug_lines_phys_alloc(dbg):
    mb = new()
    mb.add_node(0x100000, 0x100000, 1, MemblockFlags.NONE)
    dbg.clear()
    assert mb.phys_alloc(0x1000, 0x1000) == 0x1ff000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # align 0: the kernel dumps a stack trace
        assert mb.phys_alloc_range(0x1000, 0, 0x100000, 0x180000) == 0x17f000
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 1) == 0x1fe000
    assert mb.phys_alloc_range(0x1000, 0x1000, 0x300000, 0x400000) == 0
    assert_lines(messages(dbg), [
        f"memblock_phys_alloc_range: 4096 bytes align=0x1000 from={pa(0)} max_addr={pa(0)}",
        f"__memblock_reserve: [{pa(0x1ff000)}-{pa(0x1fffff)}] nid=-1 flags=20",
        f"memblock_phys_alloc_range: 4096 bytes align=0x0 from={pa(0x100000)} max_addr={pa(0x180000)}",
        f"__memblock_reserve: [{pa(0x17f000)}-{pa(0x17ffff)}] nid=-1 flags=20",
        f"__memblock_reserve: [{pa(0x1fe000)}-{pa(0x1fefff)}] nid=1 flags=20",
        f"memblock_phys_alloc_range: 4096 bytes align=0x1000 from={pa(0x300000)} max_addr={pa(0x400000)}",
    ])


def test_debug_lines_alloc_fallback(dbg):
    """Node 0 full: no reserve line for the failed step a, one for step b (nid=-1)."""
    mb = new()
    mb.add_node(0x100000, 0x10000, 0, MemblockFlags.NONE)
    mb.add_node(0x110000, 0x10000, 1, MemblockFlags.NONE)
    mb.reserve(0x100000, 0x10000)
    dbg.clear()
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 0) == 0x11f000
    assert_lines(messages(dbg), [f"__memblock_reserve: [{pa(0x11f000)}-{pa(0x11ffff)}] nid=-1 flags=20"])


def test_debug_lines_virt_allocators(h, dbg):
    h.setup_memblock()
    mb, b = h.mb, h.base()
    dbg.clear()
    calls = [
        (lambda: mb.alloc(64, 0), "memblock_alloc_try_nid: 64 bytes align=0x0 nid=-1"
         f" from={pa(0)} max_addr={pa(0)}"),
        (lambda: mb.alloc_raw(64, 64), "memblock_alloc_try_nid_raw: 64 bytes align=0x40 nid=-1"
         f" from={pa(0)} max_addr={pa(0)}"),
        (lambda: mb.alloc_from(64, 64, b), "memblock_alloc_try_nid: 64 bytes align=0x40 nid=-1"
         f" from={pa(b)} max_addr={pa(0)}"),
        (lambda: mb.alloc_low(64, 64), "memblock_alloc_try_nid: 64 bytes align=0x40 nid=-1"
         f" from={pa(0)} max_addr={pa(0xffffffff)}"),
        (lambda: mb.alloc_node(64, 64, 0), "memblock_alloc_try_nid: 64 bytes align=0x40 nid=0"
         f" from={pa(0)} max_addr={pa(0)}"),
        (lambda: mb.alloc_try_nid(64, 64, b, b + 0x4000, 3),
         f"memblock_alloc_try_nid: 64 bytes align=0x40 nid=3 from={pa(b)} max_addr={pa(b + 0x4000)}"),
        (lambda: mb.alloc_try_nid_raw(64, 64, b, b + 0x4000, 3),
         f"memblock_alloc_try_nid_raw: 64 bytes align=0x40 nid=3 from={pa(b)} max_addr={pa(b + 0x4000)}"),
        (lambda: mb.alloc_exact_nid_raw(64, 64, b, b + 0x4000, NUMA_NO_NODE),
         f"memblock_alloc_exact_nid_raw: 64 bytes align=0x40 nid=-1 from={pa(b)} max_addr={pa(b + 0x4000)}"),
    ]
    for call, line in calls:
        dbg.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # align 0
            view = call()
        assert view is not None
        msgs = messages(dbg)
        assert is_line(msgs[0], line), (msgs, line)
        assert msgs[1].startswith("__memblock_reserve: [")


def test_debug_line_free_view(h, dbg):
    h.setup_memblock()
    view = h.mb.alloc(0x100, 0x100)
    p = h.phys(view)
    dbg.clear()
    h.mb.free(view, 0x100)
    assert_lines(messages(dbg), [f"memblock_phys_free: [{pa(p)}-{pa(p + 0xff)}]"])
    assert h.mb.reserved.cnt == 0


def test_debug_lines_32bit(dbg):
    mb = new(phys_addr_bits=32)
    mb.add(0x100000, 0x100000)
    assert mb.phys_alloc(0x1000, 0x1000) == 0x1ff000
    assert_lines(messages(dbg), [
        "memblock_add: [0x00100000-0x001fffff]",
        "memblock_phys_alloc_range: 4096 bytes align=0x1000 from=0x00000000 max_addr=0x00000000",
        "__memblock_reserve: [0x001ff000-0x001fffff] nid=-1 flags=20",
    ])


# -- kernel_version switches ----------------------------------------------------------------------

OLD_DUMMY = (" {}[0x0]\t[0x0000000000000000-0xffffffffffffffff], 0x0000000000000000 bytes"
             "{} flags: 0x0")


def test_v6_10_dummy_entry():
    mb = new(kernel_version=(6, 10))
    assert (mb.memory.cnt, mb.reserved.cnt) == (1, 1)
    assert mb.memory.total_size == 0
    mb.add(0x1000, 0x1000)
    assert_type(mb.memory, [(0x1000, 0x1000, 0, MAX_NN)])
    mb.remove(0x1000, 0x1000)
    assert mb.memory.cnt == 1 and mb.memory.total_size == 0
    r = mb.memory.regions[0]
    assert (r.base, r.size, int(r.flags), r.nid) == (0, 0, 0, MAX_NN)
    assert mb.end_of_dram() == 0 and mb.start_of_dram() == 0
    assert not mb.is_memory(0)


def test_v6_11_no_dummy_entry():
    mb = new(kernel_version=(6, 11))
    assert (mb.memory.cnt, mb.reserved.cnt) == (0, 0)


def test_v6_10_dump_of_dummy(caplog):
    """The static dummy has nid 0 (" on node 0"); one recreated by removal has MAX_NUMNODES."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    mb = new(kernel_version=(6, 10))
    lines = dump_lines(mb, caplog)
    assert lines[:6] == [
        "MEMBLOCK configuration:",
        " memory size = 0x0000000000000000 reserved size = 0x0000000000000000",
        " memory.cnt  = 0x1",
        OLD_DUMMY.format("memory", " on node 0"),
        " reserved.cnt  = 0x1",
        OLD_DUMMY.format("reserved", " on node 0"),
    ]
    mb.add(0x1000, 0x1000)
    mb.remove(0x1000, 0x1000)
    assert OLD_DUMMY.format("memory", "") in dump_lines(mb, caplog)


def test_v6_10_free_ranges_on_empty():
    mb = new(kernel_version=(6, 10))
    assert free_ranges(mb) == []
    assert mb.phys_alloc(0x1000, 0x1000) == 0


def test_v6_15_reservation_attributes(dbg):
    """Before 6.16 reserve and allocations both record {flags 0, nid MAX_NUMNODES}: they merge;
    and the debug line is `memblock_reserve: [B-E]` without nid/flags."""
    mb = new(kernel_version=(6, 15))
    mb.add(0x100000, 0x100000)
    mb.reserve(0x1ff000, 0x1000)
    dbg.clear()
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, NUMA_NO_NODE) == 0x1fe000
    assert_type(mb.reserved, [(0x1fe000, 0x2000, 0, MAX_NN)])
    assert_lines(messages(dbg), [f"memblock_reserve: [{pa(0x1fe000)}-{pa(0x1fefff)}]"])


def test_v6_15_allocation_with_node_records_max_numnodes():
    mb = new(kernel_version=(6, 15))
    mb.add_node(0x100000, 0x100000, 1, MemblockFlags.NONE)
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 1) == 0x1ff000
    assert_type(mb.reserved, [(0x1ff000, 0x1000, 0, MAX_NN)])


def test_v6_15_double_array_plain_reserve():
    mb = new(kernel_version=(6, 15))
    mb.allow_resize()
    mb.add(0x100000, 0x1000000)
    fill_reserved(mb, 127)
    mb.phys_free(0x5000000, 0x1000)
    assert regions(mb.reserved)[-1] == (0x10fe000, 0x2000, 0, MAX_NN)


def test_v6_6_resize_without_permission_returns_enomem():
    mb = new(kernel_version=(6, 6))
    for i in range(128):
        mb.add(0x100000 + i * 0x2000, 0x1000)
    before = _snapshot(mb)
    assert mb.add(0x900000, 0x1000) == -errno.ENOMEM
    assert _snapshot(mb) == before


def test_v6_6_allocation_fails_when_reserved_full():
    mb = new(kernel_version=(6, 6))
    mb.add(0x10000000, 0x1000000)
    fill_reserved(mb, 128)
    before = _snapshot(mb)
    assert mb.phys_alloc(0x1000, 0x1000) == 0
    assert mb.reserve(0x900000, 0x1000) == -errno.ENOMEM
    assert _snapshot(mb) == before


def test_v6_6_isolate_pre_doubling_returns_enomem():
    mb = new(kernel_version=(6, 6))
    mb.add(0x100000, 0x1000000)
    fill_reserved(mb, 127)
    before = _snapshot(mb)
    assert mb.phys_free(0x5000000, 0x1000) == -errno.ENOMEM
    assert _snapshot(mb) == before


def test_v6_7_resize_without_permission_panics():
    mb = new(kernel_version=(6, 7))
    for i in range(128):
        mb.add(0x100000 + i * 0x2000, 0x1000)
    with pytest.raises(MemblockPanic, match="memblock: cannot resize memory array"):
        mb.add(0x900000, 0x1000)


def test_v6_9_invalid_nid_is_a_node_filter():
    """Before numa_valid_node (6.10) nid 99 filtered every memory entry: step a finds nothing,
    step b (nid != NUMA_NO_NODE) serves it; with exact_nid it fails."""
    mb = new(kernel_version=(6, 9))
    mb.add_node(0x100000, 0x10000, 0, MemblockFlags.NONE)
    mb.add_node(0x110000, 0x10000, 1, MemblockFlags.NONE)
    assert free_ranges(mb, 99) == []
    assert mb.alloc_range_nid(0x1000, 0x1000, 0, 0x120000, 99, True) == 0
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 99) == 0x11f000
    assert_type(mb.reserved, [(0x11f000, 0x1000, 0, MAX_NN)])


def test_v6_9_max_numnodes_means_no_node_with_warning():
    mb = new(kernel_version=(6, 9))
    mb.add_node(0x100000, 0x10000, 0, MemblockFlags.NONE)
    with pytest.warns(Warning, match="Usage of MAX_NUMNODES is deprecated"):
        assert mb.phys_alloc_try_nid(0x1000, 0x1000, MAX_NN) == 0x10f000


def test_v6_9_pfn_range_node_rules():
    """<= 6.9: MAX_NUMNODES matches all; NUMA_NO_NODE only entries whose nid is -1."""
    mb = new(kernel_version=(6, 9))
    mb.add(0x1000, 0x1000)
    mb.add_node(0x3000, 0x1000, 1, MemblockFlags.NONE)
    mb.add_node(0x5000, 0x1000, NUMA_NO_NODE, MemblockFlags.NONE)
    assert pfn_ranges(mb, MAX_NN) == [(1, 2, MAX_NN), (3, 4, 1), (5, 6, -1)]
    assert pfn_ranges(mb, NUMA_NO_NODE) == [(5, 6, -1)]
    assert pfn_ranges(mb, 1) == [(3, 4, 1)]


@pytest.mark.parametrize(("version", "node"), [((6, 9), " on node -1"), ((6, 10), "")])
def test_dump_node_text_version_rule(version, node, caplog):
    """<= 6.9 the node was printed unless nid == MAX_NUMNODES, so -1 printed "on node -1"."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    mb = new(kernel_version=version)
    mb.add_node(0x1000, 0x1000, NUMA_NO_NODE, MemblockFlags.NONE)
    line = (" memory[0x0]\t[0x0000000000001000-0x0000000000001fff], 0x0000000000001000 bytes"
            f"{node} flags: 0x0")
    assert line in dump_lines(mb, caplog)


def _nonminimal_after_cap(version):
    mb = new(kernel_version=version)
    mb.add(0x1000, 0xf000)
    mb.mark_nomap(0x4000, 0x4000)
    mb.cap_memory_range(0x6000, 0x4000)
    assert mb.memory.cnt == 3
    mb.add(0x20000, 0x1000)
    return regions(mb.memory)


def test_windowed_merge_keeps_distant_pair_split():
    """Since 6.3 merge_regions only looks at the touched window: the split NOMAP pieces left by
    cap_memory_range stay split when an unrelated region is added."""
    assert _nonminimal_after_cap(None) == [
        (0x4000, 0x2000, NOMAP, MAX_NN), (0x6000, 0x2000, NOMAP, MAX_NN),
        (0x8000, 0x2000, 0, MAX_NN), (0x20000, 0x1000, 0, MAX_NN)]


def test_whole_array_merge_before_6_3():
    assert _nonminimal_after_cap((6, 2)) == [
        (0x4000, 0x4000, NOMAP, MAX_NN), (0x8000, 0x2000, 0, MAX_NN),
        (0x20000, 0x1000, 0, MAX_NN)]


@pytest.mark.parametrize(("version", "warns"), [(None, False), ((6, 15), True)])
def test_add_flag_warning_version_rule(version, warns):
    """Since 6.16 the flags WARN of add_range fires only for a non-zero flags argument."""
    mb = new(kernel_version=version)
    mb.add_node(0x2000, 0x1000, MAX_NN, MemblockFlags.HOTPLUG)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mb.add(0x1000, 0x4000)
    assert bool(w) is warns
    assert regions(mb.memory)[1] == (0x2000, 0x1000, HOTPLUG, MAX_NN)


def test_v5_15_debug_line_names(dbg):
    """< 5.16: add_node prints no flags=, the physical free prints as memblock_free."""
    mb = new(kernel_version=(5, 15))
    mb.add_node(0x1000, 0x1000, 3, MemblockFlags.NONE)
    mb.phys_free(0x1000, 0x100)
    assert_lines(messages(dbg), [
        f"memblock_add_node: [{pa(0x1000)}-{pa(0x1fff)}] nid=3",
        f"memblock_free: [{pa(0x1000)}-{pa(0x10ff)}]",
    ])


def test_v5_2_phys_alloc_range_clamped_to_current_limit():
    """v5.1-5.3: alloc_range_nid clamped end to current_limit for the phys family too."""
    mb = new(kernel_version=(5, 2))
    mb.add(0x100000, 0x100000)
    mb.set_current_limit(0x180000)
    assert mb.phys_alloc_range(0x1000, 0x1000, 0, 0x200000) == 0x17f000


def test_bottom_up_kernel_end_rule():
    """<= 5.10: bottom-up only above the kernel image when end > kernel_end, else top-down."""
    mb = new(bottom_up_kernel_end=0x180000)
    mb.set_bottom_up(True)
    mb.add(0x100000, 0x100000)
    assert mb.phys_alloc(0x1000, 0x1000) == 0x180000
    assert mb.phys_alloc_range(0x1000, 0x1000, 0, 0x170000) == 0x16f000


def test_bottom_up_kernel_end_miss_falls_back_top_down():
    mb = new(bottom_up_kernel_end=0x180000)
    mb.set_bottom_up(True)
    mb.add(0x100000, 0x100000)
    mb.reserve(0x180000, 0x80000)
    with pytest.warns(Warning, match="bottom-up allocation failed"):
        assert mb.phys_alloc(0x1000, 0x1000) == 0x17f000


# -- should_skip_region ---------------------------------------------------------------------------

def _flagged_memory(**kw):
    mb = new(**kw)
    mb.add_node(0x1000, 0x1000, 0, MemblockFlags.NONE)
    mb.add_node(0x3000, 0x1000, 1, MemblockFlags.NOMAP)
    mb.add_node(0x5000, 0x1000, 1, MemblockFlags.MIRROR)
    mb.add_node(0x7000, 0x1000, 1, MemblockFlags.DRIVER_MANAGED)
    mb.add_node(0x9000, 0x1000, 1, MemblockFlags.HOTPLUG)
    return mb


@pytest.mark.parametrize(("nid", "flags", "starts"), [
    (NUMA_NO_NODE, MemblockFlags.NONE, [0x1000, 0x5000, 0x9000]),
    (NUMA_NO_NODE, MemblockFlags.MIRROR, [0x5000]),
    (NUMA_NO_NODE, MemblockFlags.NOMAP, [0x1000, 0x3000, 0x5000, 0x9000]),
    (NUMA_NO_NODE, MemblockFlags.DRIVER_MANAGED, [0x1000, 0x5000, 0x7000, 0x9000]),
    (NUMA_NO_NODE, MemblockFlags.KHO_SCRATCH, []),
    (1, MemblockFlags.NONE, [0x5000, 0x9000]),
    (99, MemblockFlags.NONE, [0x1000, 0x5000, 0x9000]),
    (MAX_NN, MemblockFlags.NONE, [0x1000, 0x5000, 0x9000]),
])
def test_should_skip_region_rules(nid, flags, starts):
    mb = _flagged_memory()
    assert [r[0] for r in free_ranges(mb, nid, flags)] == starts
    assert [r[0] for r in free_ranges(mb, nid, flags, reverse=True)] == starts[::-1]


def test_should_skip_region_movable_node():
    mb = _flagged_memory()
    mb.movable_node = True
    assert [r[0] for r in free_ranges(mb)] == [0x1000, 0x5000]
    assert [r[0] for r in free_ranges(mb, NUMA_NO_NODE, MemblockFlags.HOTPLUG)] == [
        0x1000, 0x5000, 0x9000]
