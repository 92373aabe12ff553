"""Targeted tests of ``arena.memblock`` and ``arena.kernel``: the printed text (dump and debug
lines, checked against real ``memblock=debug`` boot logs), the ``kernel_version`` switches, array
doubling, the hand-over to a page allocator, ``check()`` and the kernel-spelled face.

The kernel suite's scenarios live in ``test_basic_api.py`` and ``test_alloc*.py``; quirks and bad
input in ``test_memblock_quirks.py`` / ``test_memblock_badinput.py``.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

import arena.kernel as K
from arena.errors import HandoverError, MemblockBug, MemblockPanic
from arena.memblock import (
    ENOMEM,
    MEMBLOCK_ALLOC_ANYWHERE,
    NUMA_NO_NODE,
    Memblock,
    MemblockFlags,
    MemblockWarning,
)
from arena.physmem import PhysicalMemory

SZ_4K = 4096
SZ_1M = 1 << 20
RSRV_KERN = int(MemblockFlags.RSRV_KERN)


def regions(t):
    return [(r.base, r.size, int(r.flags), r.nid) for r in t.regions]


def debug_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "arena.memblock"]


@pytest.fixture
def debug(caplog):
    caplog.set_level(logging.INFO, logger="arena.memblock")
    return caplog


# -- dump text against real boot logs ---------------------------------------------------------

# x86_64 QEMU, kernel 6.6.41 (tests/data/x86_64-qemu-numa-6.6.41.log, the first dump): the
# e820 memory after memblock_trim_memory(PAGE_SIZE), whose total_size stays untrimmed.
X86_66_DUMP = """\
MEMBLOCK configuration:
 memory size = 0x00000000fff7ec00 reserved size = 0x000000000267a000
 memory.cnt  = 0x3
 memory[0x0]\t[0x0000000000001000-0x000000000009efff], 0x000000000009e000 bytes flags: 0x0
 memory[0x1]\t[0x0000000000100000-0x00000000bffdffff], 0x00000000bfee0000 bytes flags: 0x0
 memory[0x2]\t[0x0000000100000000-0x000000013fffffff], 0x0000000040000000 bytes flags: 0x0
 reserved.cnt  = 0x3
 reserved[0x0]\t[0x0000000000000000-0x000000000000ffff], 0x0000000000010000 bytes flags: 0x0
 reserved[0x1]\t[0x000000000009f000-0x00000000000fffff], 0x0000000000061000 bytes flags: 0x0
 reserved[0x2]\t[0x0000000001000000-0x0000000003608fff], 0x0000000002609000 bytes flags: 0x0"""


def x86_66():
    mb = Memblock(kernel_version=(6, 6), max_numnodes=64)
    for base, last in ((0x1000000, 0x35FFFFF), (0x0, 0xFFFF), (0x9F000, 0xFFFFF),
                       (0xF5470, 0xF547F), (0xF5480, 0xF5557), (0x3600000, 0x3608FFF)):
        assert mb.reserve(base, last - base + 1) == 0
    for base, last in ((0x1000, 0x9FBFF), (0x100000, 0xBFFDFFFF), (0x100000000, 0x13FFFFFFF)):
        assert mb.add(base, last - base + 1) == 0
    mb.trim_memory(SZ_4K)
    return mb


def test_dump_64bit_numa_matches_boot_log_6_6():
    mb = x86_66()
    assert mb.dump_all() == X86_66_DUMP
    mb.check()  # the inflated total_size is a documented quirk, not a broken invariant


def test_dump_64bit_node_text_newest():
    mb = Memblock(max_numnodes=16)
    mb.add_node(0x100000, 0x7FF00000, 0)
    mb.add_node(0x80000000, 0x40000000, 1, MemblockFlags.HOTPLUG)
    mb.reserve(0x1000000, 0x1000)
    assert mb.phys_alloc_try_nid(0x1000, 0x1000, 1) == 0xBFFFF000
    assert mb.dump_all().splitlines()[2:] == [
        " memory.cnt  = 0x2",
        " memory[0x0]\t[0x0000000000100000-0x000000007fffffff], 0x000000007ff00000 bytes "
        "on node 0 flags: 0x0",
        " memory[0x1]\t[0x0000000080000000-0x00000000bfffffff], 0x0000000040000000 bytes "
        "on node 1 flags: 0x1",
        " reserved.cnt  = 0x2",
        " reserved[0x0]\t[0x0000000001000000-0x0000000001000fff], 0x0000000000001000 bytes "
        "flags: 0x0",
        " reserved[0x1]\t[0x00000000bffff000-0x00000000bfffffff], 0x0000000000001000 bytes "
        "on node 1 flags: 0x20",
    ]


def test_x86_66_allocations_land_where_the_kernel_put_them():
    mb = x86_66()
    assert mb.phys_alloc_range(28672, 0x1000, 0, 0x100000) == 0x98000
    mb.reserve(0, 0x100000)
    assert mb.phys_alloc_range(2 * SZ_1M, 2 * SZ_1M, 0x100000, 0x140000000) == 0x13FE00000
    assert mb.phys_free(0x13FE00000, 2 * SZ_1M) == 0
    assert mb.phys_alloc_range(SZ_4K, SZ_4K, 0x120000000, 0x140000000) == 0x13FFFF000
    assert mb.phys_alloc_range(SZ_4K, SZ_4K, 0x120000000, 0x140000000) == 0x13FFFE000
    mb.check()


# ARM32 Cortex-A9, kernel 5.10, 32-bit phys_addr_t, no NUMA (tests/data/arm32-hisi-ca9-5.10.log).
ARM_BANKS = ((0x80A00000, 0x855FFFFF), (0x86A00000, 0x87DFFFFF), (0x8BD00000, 0x8C4FFFFF),
             (0x8E300000, 0x8ECFFFFF), (0x90D00000, 0xBFFFFFFF), (0xCC000000, 0xDC9FFFFF),
             (0xE0800000, 0xE0BFFFFF), (0xF5300000, 0xF5BFFFFF), (0xF5C00000, 0xF6FFFFFF),
             (0xFE100000, 0xFEBFFFFF), (0xFEC00000, 0xFFFFFFFF), (0xDE700000, 0xDE9FFFFF),
             (0xF4B00000, 0xF52FFFFF), (0xFDA00000, 0xFE0FFFFF))
ARM_RESERVES = ((0x80A01000, 0x80A02D2E), (0x80B00000, 0x812E8057), (0x83000000, 0x84FFFFFF),
                (0x80A04000, 0x80A07FFF), (0x80A00000, 0x80A02FFF))
ARM_DUMP = """\
MEMBLOCK configuration:
 memory size = 0x4c0fffff reserved size = 0x027ef058
 memory.cnt  = 0xa
 memory[0x0]\t[0x80a00000-0x855fffff], 0x04c00000 bytes flags: 0x0
 memory[0x1]\t[0x86a00000-0x87dfffff], 0x01400000 bytes flags: 0x0
 memory[0x2]\t[0x8bd00000-0x8c4fffff], 0x00800000 bytes flags: 0x0
 memory[0x3]\t[0x8e300000-0x8ecfffff], 0x00a00000 bytes flags: 0x0
 memory[0x4]\t[0x90d00000-0xbfffffff], 0x2f300000 bytes flags: 0x0
 memory[0x5]\t[0xcc000000-0xdc9fffff], 0x10a00000 bytes flags: 0x0
 memory[0x6]\t[0xde700000-0xde9fffff], 0x00300000 bytes flags: 0x0
 memory[0x7]\t[0xe0800000-0xe0bfffff], 0x00400000 bytes flags: 0x0
 memory[0x8]\t[0xf4b00000-0xf6ffffff], 0x02500000 bytes flags: 0x0
 memory[0x9]\t[0xfda00000-0xfffffffe], 0x025fffff bytes flags: 0x0
 reserved.cnt  = 0x4
 reserved[0x0]\t[0x80a00000-0x80a02fff], 0x00003000 bytes flags: 0x0
 reserved[0x1]\t[0x80a04000-0x80a07fff], 0x00004000 bytes flags: 0x0
 reserved[0x2]\t[0x80b00000-0x812e8057], 0x007e8058 bytes flags: 0x0
 reserved[0x3]\t[0x83000000-0x84ffffff], 0x02000000 bytes flags: 0x0"""


def arm_510():
    mb = Memblock(phys_addr_bits=32, numa=False, kernel_version=(5, 10))
    for base, last in ARM_BANKS:
        mb.add(base, last - base + 1)
    for base, last in ARM_RESERVES:
        mb.reserve(base, last - base + 1)
    return mb


def test_dump_32bit_matches_boot_log_5_10(debug):
    mb = arm_510()
    assert mb.dump_all() == ARM_DUMP
    # dump_all() also logs each line, as the kernel prints them
    assert debug_lines(debug)[-len(ARM_DUMP.splitlines()):] == ARM_DUMP.splitlines()
    mb.check()


def test_32bit_allocations_and_lines_match_boot_log_5_10(debug):
    mb = arm_510()
    mb.set_current_limit(0xB0200000)
    got = [mb.alloc_range_nid(2 * SZ_1M, 2 * SZ_1M, 0, 0, NUMA_NO_NODE),
           mb.alloc_range_nid(SZ_4K, SZ_4K, 0, 0, NUMA_NO_NODE),
           mb.alloc_range_nid(40, 4, 0, 0, NUMA_NO_NODE)]
    assert got == [0xB0000000, 0xAFFFF000, 0xAFFFEFD8]
    assert debug_lines(debug)[-1] == (
        "memblock_reserve: [0xafffefd8-0xafffefff] "
        "test_32bit_allocations_and_lines_match_boot_log_5_10")
    mb.phys_free(0xAFFBF000, 0)
    assert debug_lines(debug)[-1].startswith("memblock_free: [0xaffbf000-0xaffbefff] ")


def test_mips_511_bottom_up_starts_at_first_page():
    mb = Memblock(phys_addr_bits=32, numa=False, kernel_version=(5, 11))
    for base, last in ((0x0, 0x0FFFFFFF), (0x20000000, 0x4FFFFFFF), (0x90000000, 0xCFFFFFFF)):
        mb.add(base, last - base + 1)
    mb.reserve(0xAA7600, 0xAAA0A0 - 0xAA7600 + 1)
    mb.reserve(0x10000, 0x18313CF - 0x10000 + 1)
    mb.set_bottom_up(True)
    assert mb.phys_alloc_try_nid(10913, 0x40, NUMA_NO_NODE) == 0x1000
    assert mb.phys_alloc_try_nid(32680, 4, NUMA_NO_NODE) == 0x3AA4
    assert mb.phys_alloc_try_nid(25, 4, NUMA_NO_NODE) == 0xBA4C


def test_bottom_up_kernel_end_rule_before_5_11():
    mb = Memblock(kernel_version=(5, 10), bottom_up_kernel_end=0x2000000)
    mb.add(0, 0x10000000)
    mb.set_bottom_up(True)
    assert mb.phys_alloc(SZ_4K, SZ_4K) == 0x2000000          # above the kernel image
    mb.set_current_limit(0x1000000)                           # end below the kernel end:
    assert mb.phys_alloc(SZ_4K, SZ_4K) == 0x1000000 - SZ_4K   # top-down
    mb.set_current_limit(MEMBLOCK_ALLOC_ANYWHERE)
    mb.reserve(0x2001000, 0x10000000 - 0x2001000)             # nothing free above the kernel
    with pytest.warns(MemblockWarning, match="bottom-up allocation failed"):
        assert mb.phys_alloc(SZ_4K, SZ_4K) == 0x1FFF000       # falls back to top-down


# -- debug lines ------------------------------------------------------------------------------

def test_debug_lines_newest(debug):
    mb = Memblock(max_numnodes=16)
    mb.add(0x1000000, 0x1000000)
    mb.add_node(0x3000000, 0x1000, 3, MemblockFlags.HOTPLUG)
    mb.remove(0x3000000, 0)
    mb.reserve(0x1000000, 0x10)
    mb.reserve_kern(0x1100000, 0x10)
    mb.phys_free(0x1100000, 0x10)
    mb.phys_alloc_range(0x100, 0, 0x1000, 0x2000000)
    mb.phys_alloc_try_nid(0x100, 0x40, 0)   # prints only its reservation
    assert debug_lines(debug) == [
        "memblock_add: [0x0000000001000000-0x0000000001ffffff] test_debug_lines_newest",
        "memblock_add_node: [0x0000000003000000-0x0000000003000fff] nid=3 flags=1 "
        "test_debug_lines_newest",
        "memblock_remove: [0x0000000003000000-0x0000000002ffffff] test_debug_lines_newest",
        "__memblock_reserve: [0x0000000001000000-0x000000000100000f] nid=-1 flags=0 "
        "test_debug_lines_newest",
        "__memblock_reserve: [0x0000000001100000-0x000000000110000f] nid=-1 flags=20 "
        "test_debug_lines_newest",
        "memblock_phys_free: [0x0000000001100000-0x000000000110000f] test_debug_lines_newest",
        "memblock_phys_alloc_range: 256 bytes align=0x0 from=0x0000000000001000 "
        "max_addr=0x0000000002000000 test_debug_lines_newest",
        "__memblock_reserve: [0x0000000001ffff00-0x0000000001ffffff] nid=-1 flags=20 "
        "test_debug_lines_newest",
        # node 0 has no memory: the any-node fallback records nid -1
        "__memblock_reserve: [0x0000000003000f00-0x0000000003000fff] nid=-1 flags=20 "
        "test_debug_lines_newest",
    ]


def test_debug_lines_of_memory_allocations(debug):
    with PhysicalMemory(SZ_1M, phys_base=SZ_1M) as pm:
        mb = Memblock(pm)
        mb.add(SZ_1M, SZ_1M)
        a = mb.alloc(64, 0)
        b = mb.alloc_exact_nid_raw(64, 64, SZ_1M, 0, 0)
        lines = debug_lines(debug)
        del a, b
    assert lines[1] == ("memblock_alloc_try_nid: 64 bytes align=0x0 nid=-1 from=0x0000000000000000"
                        " max_addr=0x0000000000000000 test_debug_lines_of_memory_allocations")
    assert lines[3].startswith("memblock_alloc_exact_nid_raw: 64 bytes align=0x40 nid=0 "
                               "from=0x0000000000100000 max_addr=0x0000000000000000 ")


def test_no_caller_lookup_when_logging_is_off(caplog, monkeypatch):
    import arena.memblock_dump as M  # the debug lines name their caller here

    caplog.set_level(logging.WARNING, logger="arena.memblock")
    monkeypatch.setattr(M, "_caller", lambda: pytest.fail("caller looked up with logging off"))
    mb = Memblock()
    mb.add(0x100000, 0x100000)
    mb.reserve(0x100000, 0x10)
    assert mb.phys_alloc(0x10, 0x10)


# -- kernel_version switches ------------------------------------------------------------------

def test_dummy_entry_up_to_6_10():
    old = Memblock(max_numnodes=16, kernel_version=(6, 10))
    new = Memblock(max_numnodes=16, kernel_version=(6, 11))
    assert (old.memory.cnt, old.reserved.cnt, new.memory.cnt) == (1, 1, 0)
    assert regions(old.memory) == [(0, 0, 0, 0)]
    assert old.dump_all().splitlines()[2:4] == [
        " memory.cnt  = 0x1",
        " memory[0x0]\t[0x0000000000000000-0xffffffffffffffff], 0x0000000000000000 bytes "
        "on node 0 flags: 0x0"]
    assert new.dump_all().splitlines()[2:4] == [" memory.cnt  = 0x0", " reserved.cnt  = 0x0"]
    old.add(0x1000, 0x1000)
    assert old.memory.cnt == 1 and regions(old.memory) == [(0x1000, 0x1000, 0, 16)]
    old.remove(0x1000, 0x1000)
    # the dummy recreated by removal has nid MAX_NUMNODES: no node text
    assert regions(old.memory) == [(0, 0, 0, 16)]
    assert old.dump_all().splitlines()[3].endswith("0x0000000000000000 bytes flags: 0x0")
    assert old.end_of_dram() == 0 and old.start_of_dram() == 0
    old.check()


def test_reservation_attributes_before_6_16(debug):
    old = Memblock(max_numnodes=16, kernel_version=(6, 15))
    new = Memblock(max_numnodes=16)
    for mb in (old, new):
        mb.add(0x100000, 0x100000)
        mb.reserve(0x1FF000, 0x1000)
        assert mb.phys_alloc(0x1000, 0x1000) == 0x1FE000
    # before 6.16 an allocation merges with an adjacent plain reservation
    assert regions(old.reserved) == [(0x1FE000, 0x2000, 0, 16)]
    assert regions(new.reserved) == [(0x1FE000, 0x1000, RSRV_KERN, -1), (0x1FF000, 0x1000, 0, -1)]
    lines = debug_lines(debug)
    assert lines[1] == "memblock_reserve: [0x00000000001ff000-0x00000000001fffff] " \
                       "test_reservation_attributes_before_6_16"
    assert lines[5].startswith("__memblock_reserve: [0x00000000001ff000-0x00000000001fffff] "
                               "nid=-1 flags=0 ")


def test_free_name_before_5_16(debug):
    Memblock(kernel_version=(5, 15)).phys_free(0x1000, 0x1000)
    Memblock(kernel_version=(5, 16)).phys_free(0x1000, 0x1000)
    Memblock(kernel_version=(5, 15)).add_node(0x1000, 0x1000, 2)
    lines = debug_lines(debug)
    assert lines[0].startswith("memblock_free: [0x0000000000001000-0x0000000000001fff] ")
    assert lines[1].startswith("memblock_phys_free: [")
    assert lines[2] == "memblock_add_node: [0x0000000000001000-0x0000000000001fff] nid=2 " \
                       "test_free_name_before_5_16"


def fill_reserved(mb, n):
    for i in range(n):
        assert mb.reserve(0x10000 + i * 0x100, 0x10) == 0


def test_resize_without_permission_6_6_enomem_6_7_panic():
    old = Memblock(kernel_version=(6, 6), init_regions=8)
    fill_reserved(old, 8)
    before = regions(old.reserved)
    assert old.reserve(0x900000, 0x10) == -ENOMEM
    assert regions(old.reserved) == before
    new = Memblock(kernel_version=(6, 7), init_regions=8)
    fill_reserved(new, 8)
    with pytest.raises(MemblockPanic, match="^memblock: cannot resize reserved array$"):
        new.reserve(0x900000, 0x10)
    assert regions(new.reserved) == before


def test_old_node_rules_before_6_10():
    old = Memblock(max_numnodes=16, kernel_version=(6, 9))
    new = Memblock(max_numnodes=16)
    for mb in (old, new):
        mb.add_node(0x100000, 0x100000, 0)
        mb.add_node(0x200000, 0x100000, 1)
    # an out-of-range nid is "any node" for numa_valid_node(), a filter matching nothing before
    assert list(new.for_each_free_mem_range(99)) == [(0x100000, 0x200000, 0),
                                                     (0x200000, 0x300000, 1)]
    assert list(old.for_each_free_mem_range(99)) == []
    # ... so the allocation is served by the any-node fallback
    assert old.phys_alloc_try_nid(0x1000, 0x1000, 99) == 0x2FF000
    assert new.phys_alloc_try_nid(0x1000, 0x1000, 99) == 0x2FF000
    assert regions(old.reserved)[0][3] == 16 and regions(new.reserved)[0][3] == 99
    # for_each_mem_pfn_range: NUMA_NO_NODE matched only nid -1 entries before 6.10
    assert list(old.for_each_mem_pfn_range(NUMA_NO_NODE)) == []
    assert len(list(old.for_each_mem_pfn_range(16))) == 2
    assert len(list(new.for_each_mem_pfn_range(NUMA_NO_NODE))) == 2
    with pytest.warns(MemblockWarning, match="MAX_NUMNODES is deprecated"):
        assert old.phys_alloc_try_nid(0x1000, 0x1000, 16) == 0x2FE000


def test_dump_node_text_before_6_10():
    old = Memblock(max_numnodes=16, kernel_version=(6, 9))
    new = Memblock(max_numnodes=16)
    for mb in (old, new):
        mb.add_node(0x100000, 0x1000, NUMA_NO_NODE)
    assert old.dump_all().splitlines()[3].endswith(" bytes on node -1 flags: 0x0")
    assert new.dump_all().splitlines()[3].endswith(" bytes flags: 0x0")


def nomap_split(mb):
    """cap_memory_range leaves a NOMAP region split in two equal neighbours."""
    mb.add(0x100000, 0x300000)
    mb.mark_nomap(0x100000, 0x200000)
    mb.cap_memory_range(0x200000, 0x200000)
    assert regions(mb.memory) == [(0x100000, 0x100000, 4, mb.max_numnodes),
                                  (0x200000, 0x100000, 4, mb.max_numnodes),
                                  (0x300000, 0x100000, 0, mb.max_numnodes)]
    mb.check()   # allowed non-minimal state


def test_whole_array_merge_up_to_6_2():
    old = Memblock(kernel_version=(6, 2))
    new = Memblock(kernel_version=(6, 3))
    for mb in (old, new):
        nomap_split(mb)
        mb.add(0x800000, 0x1000)
    assert len(new.memory) == 4
    assert regions(old.memory)[:2] == [(0x100000, 0x200000, 4, 64), (0x300000, 0x100000, 0, 64)]


def test_mirror_gate_since_6_0():
    old = Memblock(kernel_version=(5, 19))
    new = Memblock()
    for mb in (old, new):
        mb.add(0x100000, 0x200000)
        assert mb.mark_mirror(0x200000, 0x100000) == 0
    assert not new.has_mirror() and regions(new.memory)[0][2] == 0
    assert old.has_mirror() and regions(old.memory)[1] == (0x200000, 0x100000, 2, 64)
    new.mirrored_kernelcore = True
    new.mark_mirror(0x100000, 0x80000)
    # mirrored memory is tried first
    assert new.phys_alloc(0x1000, 0x1000) == 0x17F000


def test_kernel_version_argument_is_checked():
    with pytest.raises(TypeError):
        Memblock(kernel_version=6.6)
    with pytest.raises(ValueError):
        Memblock(kernel_version=(1, 0))
    assert Memblock(kernel_version=(5, 10)).kernel_version == (5, 10)


# -- array doubling ---------------------------------------------------------------------------

def test_reserved_doubles_and_reserves_its_new_array(debug):
    mb = Memblock(init_regions=8, max_numnodes=16)
    mb.add(0x100000, 0x100000)
    mb.allow_resize()
    fill_reserved(mb, 8)
    assert mb.reserve(0x900000, 0x10) == 0
    assert mb.reserved.max == 16 and mb.reserved.cnt == 10
    # 16 * 24 bytes, page aligned, at the top of memory, reserved with RSRV_KERN
    assert regions(mb.reserved)[-2] == (0x1FF000, 0x1000, RSRV_KERN, NUMA_NO_NODE)
    assert "memblock: reserved is doubled to 16 at [0x00000000001ff000-0x00000000001ff17f]" \
        in debug_lines(debug)
    # the second doubling frees the first dynamic array
    for i in range(8):
        mb.reserve(0x20000 + i * 0x100, 0x10)
    assert mb.reserved.max == 32
    assert regions(mb.reserved)[-2] == (0x1FE000, 0x1000, RSRV_KERN, NUMA_NO_NODE)
    assert any(line.startswith("memblock_phys_free: [0x00000000001ff000-0x00000000001fffff]")
               for line in debug_lines(debug))
    mb.check()


def test_doubling_failure_returns_enomem_with_error_line(caplog):
    mb = Memblock(init_regions=4)
    mb.allow_resize()
    fill_reserved(mb, 4)                 # no memory at all: nowhere to put a new array
    assert mb.reserve(0x900000, 0x10) == -ENOMEM
    assert "memblock: Failed to double reserved array from 4 to 8 entries !" in caplog.text


# -- hand-over to the page allocator ------------------------------------------------------------

class FakeBuddy:
    max_order = 3

    def __init__(self):
        self.calls = []

    def boot_free(self, pfn, order, nid):
        self.calls.append((pfn, order, nid))


def test_free_all_block_order():
    mb = Memblock(max_numnodes=4)
    mb.add_node(0x1000, 0xF000, 0, MemblockFlags.HOTPLUG)     # pfns 1..15
    mb.add_node(0x10000, 0x8000, 1)                          # pfns 16..23
    mb.reserve(0x5000, 0x1800)                               # pfns 5,6 reserved (partly 6)
    mb.mark_nomap(0x12000, 0x1000)                           # pfn 18 is NOMAP
    buddy = FakeBuddy()
    pages = mb.free_all(buddy)
    assert buddy.calls == [
        (1, 0, 0), (2, 1, 0), (4, 0, 0),                     # [1, 5)
        (7, 0, 0), (8, 3, 0),                                # [7, 16)
        (16, 1, 1),                                          # [16, 18)
        (19, 0, 1), (20, 2, 1),                              # [19, 24)
    ]
    assert pages == sum(1 << o for _, o, _ in buddy.calls) == 4 + 9 + 2 + 5
    assert mb.handed_over
    # HOTPLUG cleared, reserved stamped with the memory node
    assert regions(mb.memory)[0] == (0x1000, 0xF000, 0, 0)
    assert regions(mb.reserved) == [(0x5000, 0x1800, 0, 0)]
    with pytest.raises(HandoverError):
        mb.phys_alloc(0x1000, 0)
    with pytest.raises(HandoverError):
        mb.free_all(buddy)
    buddy.calls.clear()
    mb.free_late(0x5000, 0x1800)                             # whole pages only: pfn 5
    assert buddy.calls == [(5, 0, 0)]
    assert regions(mb.reserved) == [(0x5000, 0x1800, 0, 0)]  # untouched
    with pytest.raises(ValueError):
        mb.free_late(0x30000, 0x1000)                        # not memory


def test_free_all_caps_orders_and_needs_handover_for_free_late():
    mb = Memblock(numa=False)
    mb.add(0, 64 * SZ_4K)
    with pytest.raises(HandoverError):
        mb.free_late(0, SZ_4K)
    buddy = FakeBuddy()
    buddy.max_order = 4
    assert mb.free_all(buddy) == 64                          # page 0 is free memory too
    assert buddy.calls == [(0, 4, 0), (16, 4, 0), (32, 4, 0), (48, 4, 0)]


# -- memory-returning variants ------------------------------------------------------------------

def test_memory_variants_need_and_respect_physmem():
    mb = Memblock()
    mb.add(SZ_1M, SZ_1M)
    with pytest.raises(ValueError, match="PhysicalMemory"):
        mb.alloc(64, 0)
    assert mb.reserved.cnt == 0
    with PhysicalMemory(SZ_1M, phys_base=SZ_1M) as pm:
        mb = Memblock(pm)
        mb.add(SZ_1M, 2 * SZ_1M)                  # more memory than the PhysicalMemory has
        with pytest.raises(ValueError, match="outside the physical memory"):
            mb.alloc(64, 0)                       # top-down would pick [3M - 64, 3M)
        assert mb.reserved.cnt == 0
        assert mb.phys_alloc(64, 0) == 3 * SZ_1M - 64                      # phys_* may
        mb.set_current_limit(2 * SZ_1M)
        v = mb.alloc_low(SZ_4K, SZ_4K)
        assert v is not None and mb.virt_to_phys(v) == 2 * SZ_1M - SZ_4K
        assert v.size == SZ_4K and not v.any()
        del v


def test_zeroed_allocation_does_not_touch_fresh_pages():
    with PhysicalMemory(16 * SZ_1M) as pm:
        mb = Memblock(pm)
        mb.add(SZ_1M, 15 * SZ_1M)
        before = pm.resident_bytes()
        v = mb.alloc(8 * SZ_1M, SZ_4K)
        assert v is not None and v.size == 8 * SZ_1M and v.dtype == np.uint8
        assert pm.resident_bytes() == before
        assert not v[:4096].any()
        v[:] = 7
        assert mb.free(v) == 0 and mb.reserved.cnt == 0
        w = mb.alloc(SZ_4K, SZ_4K)
        assert w is not None and not w.any()       # written pages are zeroed again
        r = mb.alloc_raw(SZ_4K, SZ_4K)
        assert r is not None and (r == 7).all()    # raw ones are not
        assert mb.free(None) == 0
        del v, w, r


# -- check() ------------------------------------------------------------------------------------

def test_check_catches_broken_invariants():
    mb = Memblock()
    mb.add(0x100000, 0x1000)
    mb.add(0x200000, 0x1000)
    mb.check()
    mb.memory._size[0] = 0x200000                 # now overlaps the next region
    with pytest.raises(MemblockBug, match="overlaps") as e:
        mb.check()
    assert "MEMBLOCK configuration:" in str(e.value)
    mb = Memblock()
    mb.reserve(0x100000, 0x1000)
    mb.reserved.total_size += 1
    with pytest.raises(MemblockBug, match="total_size"):
        mb.check()


def test_arena_check_env_checks_every_mutator(monkeypatch):
    monkeypatch.setenv("ARENA_CHECK", "1")
    mb = Memblock()
    mb.add(0x100000, 0x1000)
    mb.memory.total_size = 5
    with pytest.raises(MemblockBug):
        mb.reserve(0x100000, 0x10)


def test_state_unchanged_after_python_mistakes():
    mb = Memblock(phys_addr_bits=32)
    mb.add(0x100000, 0x1000)
    snap = (regions(mb.memory), regions(mb.reserved))
    for call in (lambda: mb.add(True, 1), lambda: mb.reserve(1.0, 1), lambda: mb.add(-1, 1),
                 lambda: mb.add(1 << 32, 1), lambda: mb.add_node(0, 1, "0"),
                 lambda: mb.add_node(0, 1, 0, 0x80), lambda: mb.phys_alloc(None, 0)):
        with pytest.raises((TypeError, ValueError)):
            call()
    assert (regions(mb.memory), regions(mb.reserved)) == snap
    mb.set_current_limit(MEMBLOCK_ALLOC_ANYWHERE)   # the 64-bit constant means 0xffffffff here
    assert mb.current_limit == 0xFFFFFFFF
    assert mb.add(np.uint32(0x200000), np.int64(0x1000)) == 0


def test_regions_view_is_read_only_and_compact():
    mb = Memblock()
    mb.add(0x100000, 0x1000)
    r = mb.memory.regions
    assert r[0] == r[-1] and r[0].end == 0x101000 and isinstance(r[0].flags, MemblockFlags)
    with pytest.raises(IndexError):
        r[1]
    with pytest.raises(TypeError):
        r[0] = r[0]
    with pytest.raises(AttributeError):
        r[0].base = 0
    assert mb.memory._base.itemsize == 8 and mb.memory._flags.itemsize == 1


# -- the kernel-spelled face --------------------------------------------------------------------

def test_kernel_face():
    mb = K.reset(max_numnodes=16)
    assert mb is K.memblock
    K.memblock_add(0x100000, 0x7FF00000)
    K.memblock_reserve(0x1000000, 0x2600000)
    assert K.memblock_phys_alloc(0x1000, 0x1000) == 0x7FFFF000
    assert K.memblock_start_of_DRAM() == 0x100000 and K.memblock_end_of_DRAM() == 0x80000000
    assert K.memblock_is_reserved(0x1000000) and not K.memblock_bottom_up()
    assert K.memblock_overlaps_region(K.memblock.reserved, 0x35FFFFF, 2)
    assert K.memblock_dump_all() == mb.dump_all()
    assert K.memblock_add.__name__ == "memblock_add" and "memory" in K.memblock_add.__doc__
    with pytest.raises(ValueError):
        K.reset(phys_addr_bits=16)                 # bad arguments keep the old state
    assert K.memblock.reserved.cnt == 2
    K.reset(numa=False)
    assert mb.memory.cnt == 0 and not mb.numa
    for name in K.__all__:
        assert getattr(K, name) is not None
        if callable(getattr(K, name)) and name.startswith(("memblock_", "for_each_")):
            assert getattr(K, name).__doc__


def test_size_zero_allocation_returns_an_empty_view_and_reserves_nothing():
    with PhysicalMemory(SZ_1M, phys_base=SZ_1M) as pm:
        mb = Memblock(pm)
        mb.add(SZ_1M, SZ_1M)
        v = mb.alloc(0, SZ_4K)                      # top-down: the very end of memory
        assert v is not None and v.size == 0 and mb.reserved.cnt == 0
        mb.set_bottom_up(True)
        w = mb.alloc_raw(0, SZ_4K)                  # bottom-up: the aligned start
        assert w is not None and mb.virt_to_phys(w) == SZ_1M
        del v, w


def test_closed_physmem_refused_before_reserving():
    pm = PhysicalMemory(SZ_1M, phys_base=SZ_1M)
    mb = Memblock(pm)
    mb.add(SZ_1M, SZ_1M)
    pm.close()
    with pytest.raises(ValueError, match="closed"):
        mb.alloc(64, 0)
    assert mb.reserved.cnt == 0


@pytest.mark.parametrize("bottom_up", [False, True])
def test_size_zero_allocation_returns_an_empty_view_at_the_kernels_address(bottom_up):
    """A size-0 allocation succeeds with the kernel's address (top-down: the aligned end of
    memory, i.e. one past the last byte) and reserves nothing; its empty view maps back."""
    pm = PhysicalMemory(1 << 20, phys_base=1 << 20)
    mb = Memblock(pm)
    mb.add(1 << 20, 1 << 20)
    mb.set_bottom_up(bottom_up)
    view = mb.alloc(0, 4096)
    assert view is not None and view.size == 0
    expected = (1 << 20) if bottom_up else (2 << 20)
    assert mb.virt_to_phys(view) == expected
    assert mb.reserved.cnt == 0
    del view
    pm.close()
