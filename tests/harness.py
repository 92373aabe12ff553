"""Our Python counterpart of the kernel's memblock test harness (tools/testing/memblock).

The kernel harness mallocs ``PHYS_MEM_SIZE`` bytes, fills them with 0x01, and registers only the
first ``MEM_SIZE`` bytes as memory (``setup_memblock``) or splits them into 8 NUMA nodes by
fractions in basis points (``setup_numa_memblock``). Here the "physical memory" is a real
:class:`arena.physmem.PhysicalMemory` mapping, shared by the whole test session and refilled with
0x01 before every test, and each test gets a fresh :class:`arena.memblock.Memblock` built with
the harness's architecture parameters (``SMP_CACHE_BYTES`` 32, ``PAGE_SIZE`` 4096, 16 nodes).

Facts carried over from the kernel harness (numbers only, no code): MEM_SIZE 32 KiB,
PHYS_MEM_SIZE 16 MiB, 8 test nodes, 128 initial regions per array.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from arena.memblock import NUMA_NO_NODE, Memblock, MemblockFlags
from arena.physmem import PhysicalMemory

SZ_1K = 1 << 10
SZ_2K, SZ_4K, SZ_8K, SZ_16K, SZ_32K, SZ_64K = (SZ_1K << i for i in range(1, 7))
SZ_128K, SZ_256K, SZ_512K = SZ_1K << 7, SZ_1K << 8, SZ_1K << 9
SZ_1M = 1 << 20
SZ_2M, SZ_16M = 2 * SZ_1M, 16 * SZ_1M

PAGE_SIZE = 4096
SMP_CACHE_BYTES = 32
MEM_SIZE = SZ_32K
PHYS_MEM_SIZE = SZ_16M
NUMA_NODES = 8
MAX_NUMNODES = 16
INIT_MEMBLOCK_REGIONS = 128
# Where the harness's "malloc'ed" physical memory starts. Page aligned and well above page 0,
# so that page 0 (never handed out by memblock) is not part of the test memory.
PHYS_BASE = 1 << 30

# Node sizes of the NUMA tests, in basis points of MEM_SIZE.
NODE_FRACTIONS = (2500, 625, 1250, 1250, 625, 625, 2500, 625)

FILL_BYTE = 0x01

ALLOC_VARIANTS = ("zeroed", "raw", "exact")


def page_align(x: int) -> int:
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass
class Harness:
    """One test's world: the shared physical memory and a fresh memblock."""

    pm: PhysicalMemory
    mb: Memblock

    # -- the kernel harness's setup helpers ---------------------------------------------------

    def base(self) -> int:
        """``dummy_physical_memory_base()``: where the test memory starts."""
        return self.pm.phys_base

    def fill(self) -> None:
        """``fill_memblock()``: every byte of the physical memory becomes 0x01."""
        self.pm.fill(self.pm.phys_base, self.pm.size, FILL_BYTE)

    def setup_memblock(self) -> None:
        """``setup_memblock()``: MEM_SIZE bytes of memory at the base, refilled with 0x01."""
        self.mb.add(self.base(), MEM_SIZE)
        self.fill()

    def setup_numa_memblock(self, fractions: Sequence[int] = NODE_FRACTIONS, *, hotplug: bool = True) -> None:
        """``setup_numa_memblock()``: 8 nodes carved out of MEM_SIZE by basis points.

        The kernel harness marks the nodes HOTPLUG unless it runs with ``--movable-node``.
        """
        flags = MemblockFlags.HOTPLUG if hotplug else MemblockFlags.NONE
        base = self.base()
        for nid, frac in enumerate(fractions):
            assert frac <= 10000
            size = MEM_SIZE * frac // 10000
            self.mb.add_node(base, size, nid, flags)
            base += size
        self.fill()

    # -- allocation variants (TEST_F_NONE / TEST_F_RAW / TEST_F_RAW|TEST_F_EXACT) ---------------

    def alloc_nid(self, variant: str, size: int, align: int, min_addr: int, max_addr: int,
                  nid: int = NUMA_NO_NODE) -> np.ndarray | None:
        """``run_memblock_alloc_nid``: the try_nid / try_nid_raw / exact_nid_raw variant."""
        if variant == "zeroed":
            return self.mb.alloc_try_nid(size, align, min_addr, max_addr, nid)
        if variant == "raw":
            return self.mb.alloc_try_nid_raw(size, align, min_addr, max_addr, nid)
        if variant == "exact":
            return self.mb.alloc_exact_nid_raw(size, align, min_addr, max_addr, nid)
        raise AssertionError(variant)

    def alloc(self, variant: str, size: int, align: int) -> np.ndarray | None:
        """``run_memblock_alloc``: ``memblock_alloc`` or ``memblock_alloc_raw``."""
        if variant == "zeroed":
            return self.mb.alloc(size, align)
        return self.mb.alloc_raw(size, align)

    def phys(self, view: np.ndarray | None) -> int:
        """Physical address of an allocation, 0 for a failed one (the kernel's NULL)."""
        return 0 if view is None else self.mb.virt_to_phys(view)


def verify_contents(view: np.ndarray | None, size: int, variant: str) -> None:
    """``verify_mem_content``: zeroed allocations read 0, raw ones still hold the 0x01 fill."""
    assert view is not None
    assert view.size == size
    if variant == "zeroed":
        assert not view.any(), "zeroed allocation holds non-zero bytes"
    else:
        assert (view != 0).all(), "raw allocation was written to"


def assert_regions(type_, expected: Iterable[tuple], total_size: int | None = None) -> None:
    """Whole-state assertion: ``cnt`` and every region, then ``total_size``.

    Each expected item is ``(base, size)`` or ``(base, size, flags)`` or
    ``(base, size, flags, nid)``; fields not given are not compared.
    """
    expected = list(expected)
    got = [type_.regions[i] for i in range(type_.cnt)]
    assert type_.cnt == len(expected), f"{type_.name}.cnt {type_.cnt} != {len(expected)}: {got}"
    for i, (region, exp) in enumerate(zip(got, expected, strict=True)):
        actual = (region.base, region.size, int(region.flags), region.nid)[: len(exp)]
        assert actual == tuple(exp), f"{type_.name}[{i}] = {actual}, expected {tuple(exp)}"
    if total_size is None:
        total_size = sum(e[1] for e in expected)
    assert type_.total_size == total_size, f"{type_.name}.total_size {type_.total_size:#x} != {total_size:#x}"


# -- helpers appended for test_alloc_nid_api.py / test_alloc_exact_nid_api.py -------------------

def region_end(region) -> int:
    """``region_end()``: the exclusive end ``base + size`` of a memblock region, in bytes."""
    return region.base + region.size


def assert_alloc(h: Harness, variant: str, view: np.ndarray | None, base: int, size: int) -> None:
    """An allocation succeeded at physical ``base``, ``size`` bytes long, with the variant's content."""
    assert view is not None, f"allocation of {size:#x} bytes failed, expected it at {base:#x}"
    assert h.phys(view) == base, f"allocated at {h.phys(view):#x}, expected {base:#x}"
    verify_contents(view, size, variant)


def assert_reserved(h: Harness, expected: Iterable[tuple], *, numa: bool = True) -> None:
    """Whole-state check of ``h.mb.reserved`` (then ``h.mb.check()``).

    Items are ``(base, size, flags, nid)`` sorted by base. With ``numa=False`` (a memblock built
    without NUMA, whose kernel regions have no nid field) the nid is not compared.
    """
    assert_regions(h.mb.reserved, [tuple(e) if numa else tuple(e)[:3] for e in expected])
    h.mb.check()


def assert_memblock_state(mb: Memblock, memory: Iterable[tuple], reserved: Iterable[tuple], *,
                          memory_total: int | None = None, reserved_total: int | None = None) -> None:
    """Whole-state assertion of a memblock: both region arrays (see :func:`assert_regions`),
    then ``mb.check()``. ``*_total`` overrides the expected ``total_size`` (kernel quirks)."""
    assert_regions(mb.memory, memory, memory_total)
    assert_regions(mb.reserved, reserved, reserved_total)
    mb.check()
