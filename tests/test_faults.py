"""Faults: failing system calls and exhausted resources in the middle of a sequence.

Injected with ``unittest.mock`` at the seams of :mod:`arena.physmem`: the module's
``mmap.mmap`` (replaced by a failing one, or by a subclass of the real one whose ``madvise``
fails on chosen advice values), ``_sys_mbind`` and ``host_nodes`` (the NUMA syscall helpers),
and a PhysicalMemory's ``view`` / ``zero`` (the last step of serving an allocation). Each test
shows a clear error (the package's class, carrying what failed), the state unchanged, and the
object still usable afterwards:

* the mapping cannot be made: ``ArenaMemoryError`` from ``PhysicalMemory`` and ``Arena``;
* ``mbind`` fails: construction goes on unbound, ``bind_status`` says why, memory works;
* ``madvise`` fails: ``MADV_HUGEPAGE`` → a warning and normal pages; ``MADV_POPULATE_WRITE`` →
  pages touched one by one; ``MADV_DONTNEED`` → ``OSError`` from ``release`` with nothing
  released (PhysicalMemory) or nothing lost (Arena);
* the budget, a node, or all memory runs out in the middle of a sequence; memblock's region
  array cannot grow (panic without ``allow_resize``, ``-ENOMEM`` when no room);
* the physical memory fails while an allocation is being served.
"""

from __future__ import annotations

import errno
import gc
import mmap
import warnings
from unittest import mock

import numpy as np
import pytest

from arena.arena import Arena
from arena.buddy import BuddyAllocator
from arena.errors import ArenaMemoryError, BudgetExceededError, MemblockPanic
from arena.memblock import ENOMEM, Memblock
from arena.physmem import MADV_DONTNEED, MADV_HUGEPAGE, MADV_POPULATE_WRITE, PhysicalMemory

PHYS_BASE = 1 << 30
REAL_MMAP = mmap.mmap


def failing_madvise(*advice: int) -> type:
    """A subclass of the real ``mmap.mmap`` whose ``madvise`` fails for ``advice`` (EINVAL).
    ``cls.fail`` can be changed later to switch the fault on and off."""

    class FailingMmap(REAL_MMAP):
        fail = set(advice)
        calls: list[int] = []

        def madvise(self, option: int, *args: int) -> None:
            FailingMmap.calls.append(option)
            if option in FailingMmap.fail:
                raise OSError(errno.EINVAL, f"injected madvise({option}) failure")
            super().madvise(option, *args)

    return FailingMmap


def arena_state(a: Arena) -> tuple:
    st = a.stats()
    return (st.bytes_allocated, st.bytes_requested, st.live_allocations, st.num_allocations,
            st.free_bytes, tuple((i.phys, i.size) for i in a.live()),
            tuple(a.memblock.reserved.regions), tuple(a.memblock.memory.regions),
            None if a.buddy is None else a.buddy.dump(limit=1 << 20))


def still_usable(a: Arena) -> None:
    v = a.alloc(1000)
    v[:] = 0x3C
    assert a.check() == []
    assert (v == 0x3C).all()
    a.free(v)


# -- the mapping -------------------------------------------------------------------------------

def test_failing_mmap_raises_arena_memory_error():
    with mock.patch("arena.physmem.mmap.mmap", side_effect=OSError(errno.ENOMEM, "injected")):
        with pytest.raises(ArenaMemoryError, match="cannot map") as exc:
            PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
        assert exc.value.size == 1 << 20
        with pytest.raises(ArenaMemoryError, match="injected"):
            Arena(1 << 20)
    with Arena(1 << 20) as a:  # nothing was left behind: the next one works
        still_usable(a)


# -- mbind -------------------------------------------------------------------------------------

def test_failing_mbind_leaves_the_slices_unbound_and_usable():
    with mock.patch("arena.physmem.host_nodes", return_value=frozenset({0, 1})), \
            mock.patch("arena.physmem._sys_mbind",
                       side_effect=OSError(errno.EIO, "injected mbind failure")) as mbind:
        pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE, nodes=2)
        a = Arena(1 << 20, nodes=2)
    assert mbind.call_count == 4
    for st in pm.bind_status():
        assert not st.bound and "mbind to host node" in st.reason and "injected" in st.reason
    pm.fill(PHYS_BASE, 4096, 7)
    assert pm.read(PHYS_BASE, 4) == b"\x07" * 4
    pm.close()
    v = a.alloc(100, node=1, strict_node=True)
    assert a.info(v).node == 1
    del v
    still_usable(a)
    a.close()


# -- madvise -----------------------------------------------------------------------------------

def test_failing_madv_hugepage_warns_and_uses_normal_pages():
    with mock.patch("arena.physmem.mmap.mmap", failing_madvise(MADV_HUGEPAGE)):
        with pytest.warns(RuntimeWarning, match="MADV_HUGEPAGE"):
            pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE, hugepages=True)
    assert pm.hugepages is False
    pm.fill(PHYS_BASE, 1 << 20, 1)
    pm.close()


def test_failing_madv_populate_falls_back_to_touching_pages():
    with mock.patch("arena.physmem.mmap.mmap", failing_madvise(MADV_POPULATE_WRITE)):
        pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE, populate=True)
    assert pm.resident_bytes() == 1 << 20
    assert pm.read(PHYS_BASE, 1 << 20) == bytes(1 << 20)
    pm.close()


def test_failing_madv_dontneed_releases_nothing():
    cls = failing_madvise()
    with mock.patch("arena.physmem.mmap.mmap", cls):
        pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    pm.fill(PHYS_BASE, 8192, 0xAB)
    before = (pm.read(PHYS_BASE, 1 << 20), tuple(pm._written), pm.resident_bytes())
    cls.fail = {MADV_DONTNEED}
    with pytest.raises(OSError, match="injected"):
        pm.release(PHYS_BASE, 8192)
    assert (pm.read(PHYS_BASE, 1 << 20), tuple(pm._written), pm.resident_bytes()) == before
    cls.fail = set()
    pm.release(PHYS_BASE, 8192)  # usable again: now it works
    assert pm.read(PHYS_BASE, 8192) == bytes(8192)
    pm.close()


def test_failing_madv_dontneed_in_arena_release_loses_nothing():
    cls = failing_madvise()
    with mock.patch("arena.physmem.mmap.mmap", cls):
        a = Arena(1 << 20, nodes=2, retain=0)   # no retained blocks: see the next test
    keep = [a.alloc(50_000) for _ in range(4)]
    for i, v in enumerate(keep):
        v[:] = i + 1
    a.free(keep.pop(1))
    before = arena_state(a)
    cls.fail = {MADV_DONTNEED}
    with pytest.raises(OSError, match="injected"):
        a.release()
    assert arena_state(a) == before
    assert [int(v[0]) for v in keep] == [1, 3, 4] and all((v == v[0]).all() for v in keep)
    cls.fail = set()
    assert a.release() > 0
    still_usable(a)
    del keep, v
    a.close()


def test_failing_madv_dontneed_in_arena_release_keeps_retained_blocks():
    cls = failing_madvise()
    with mock.patch("arena.physmem.mmap.mmap", cls):
        a = Arena(1 << 20, nodes=2)
    keep = [a.alloc(50_000) for _ in range(4)]
    a.free(keep.pop(1))                             # its array dies: the block is retained
    assert a.stats().retained_bytes > 0
    before = arena_state(a), a.stats().retained_bytes
    cls.fail = {MADV_DONTNEED}
    try:
        with pytest.raises(OSError, match="injected"):
            a.release()
        assert (arena_state(a), a.stats().retained_bytes) == before
    finally:
        cls.fail = set()
        del keep
        a.close(defer=True)


# -- exhausted resources in the middle of a sequence ------------------------------------------

def test_budget_exhausted_mid_sequence():
    with Arena(1 << 20, budget=10_000, align=64, slab=False) as a:
        views = [a.alloc(3000) for _ in range(3)]  # 3 x 3008 = 9024 bytes held
        before = arena_state(a)
        with pytest.raises(BudgetExceededError, match="budget") as exc:
            a.alloc(1000)
        e = exc.value
        assert (e.size, e.align) == (1000, 64) and e.free_bytes > 0
        assert arena_state(a) == before
        extra = a.alloc(900)                 # 9024 + 960 still fits (kept: a dropped
        assert extra is not None             # array's memory would be reused at once)
        with pytest.raises(BudgetExceededError):
            a.alloc(64)
        a.free(views.pop())
        still_usable(a)
        del views, extra


def test_budget_exhausted_mid_sequence_with_size_classes():
    """Small requests served by the size-class caches count against the budget too."""
    with Arena(1 << 20, budget=8192, align=64) as a:
        views = []
        with pytest.raises(BudgetExceededError):
            while True:
                views.append(a.alloc(200))
        assert a.stats().bytes_allocated <= 8192
        before = arena_state(a)
        with pytest.raises(BudgetExceededError):
            a.alloc(200)
        assert arena_state(a) == before
        a.free(views.pop())
        views.append(a.alloc(200))
        a.check()
        del views


def test_node_exhausted_mid_sequence():
    with Arena(256 << 10, nodes=2) as a:
        held = []
        while True:
            try:
                held.append(a.alloc(16 << 10, node=1, strict_node=True))
            except ArenaMemoryError as exc:
                assert exc.node == 1 and "node 1 only" in str(exc)
                break
        before = arena_state(a)
        with pytest.raises(ArenaMemoryError):
            a.alloc(16 << 10, node=1, strict_node=True)
        assert arena_state(a) == before
        v = a.alloc(16 << 10, node=1)  # preferred, not strict: falls back to node 0
        assert a.info(v).node == 0
        a.free(held.pop())
        w = a.alloc(16 << 10, node=1, strict_node=True)
        assert a.info(w).node == 1
        still_usable(a)
        del held, v, w


def test_memory_exhausted_then_recovers():
    with Arena(256 << 10) as a:
        held = []
        with pytest.raises(ArenaMemoryError) as exc:
            while True:
                held.append(a.alloc(10_000))
        assert exc.value.largest_free < 10_048
        before = arena_state(a)
        with pytest.raises(ArenaMemoryError):
            a.alloc(10_000)
        assert arena_state(a) == before
        a.free(held.pop(3))
        held.append(a.alloc(10_000))
        a.check()
        del held


def test_region_array_cannot_grow_without_allow_resize():
    pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    mb = Memblock(pm, init_regions=2)
    mb.add(PHYS_BASE, 1 << 20)
    mb.reserve(PHYS_BASE, 64)
    mb.reserve(PHYS_BASE + 4096, 64)
    before = tuple(mb.reserved.regions), mb.reserved.max
    with pytest.raises(MemblockPanic, match="cannot resize reserved"):
        mb.reserve(PHYS_BASE + 8192, 64)
    assert (tuple(mb.reserved.regions), mb.reserved.max) == before
    mb.check()
    mb.allow_resize()
    assert mb.reserve(PHYS_BASE + 8192, 64) == 0  # usable: now it grows
    assert mb.reserved.max == 4
    mb.check()
    pm.close()


def test_region_array_without_room_to_grow_returns_enomem():
    """All memory reserved: doubling finds no page, the kernel's ``-ENOMEM``, state kept."""
    pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    mb = Memblock(pm, init_regions=2)
    mb.allow_resize()
    mb.add(PHYS_BASE, 64 << 10)
    mb.reserve(PHYS_BASE, 64 << 10)
    mb.reserve(PHYS_BASE + (128 << 10), 64)   # outside memory: 2 regions, array full
    before = tuple(mb.reserved.regions), mb.reserved.max
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert mb.reserve(PHYS_BASE + (256 << 10), 64) == -ENOMEM
    assert (tuple(mb.reserved.regions), mb.reserved.max) == before
    with warnings.catch_warnings():  # freeing needs a split, so it cannot grow either
        warnings.simplefilter("ignore")
        assert mb.phys_free(PHYS_BASE + (32 << 10), 4096) == -ENOMEM
    assert (tuple(mb.reserved.regions), mb.reserved.max) == before
    assert mb.add(PHYS_BASE + (512 << 10), 64 << 10) == 0  # room for the new array
    assert mb.reserve(PHYS_BASE + (256 << 10), 64) == 0
    assert mb.reserved.max == 4
    mb.check()
    pm.close()


# -- the physical memory fails while an allocation is served ----------------------------------

@pytest.mark.parametrize("step", ["view", "zero"])
def test_arena_alloc_fault_leaves_the_arena_unchanged(step):
    with Arena(1 << 20) as a:
        keep = a.alloc(100)
        before = arena_state(a)
        with mock.patch.object(a.physmem, step, side_effect=MemoryError("injected")):
            with pytest.raises(MemoryError, match="injected"):
                a.alloc(5000)
        assert arena_state(a) == before
        still_usable(a)
        del keep


@pytest.mark.parametrize("step", ["view", "zero"])
def test_memblock_alloc_fault_leaves_memblock_unchanged(step):
    pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    mb = Memblock(pm)
    mb.add(PHYS_BASE, 1 << 20)
    before = tuple(mb.reserved.regions)
    with mock.patch.object(pm, step, side_effect=MemoryError("injected")):
        with pytest.raises(MemoryError, match="injected"):
            mb.alloc(5000, 64)
    assert tuple(mb.reserved.regions) == before
    assert mb.alloc(5000, 64) is not None
    gc.collect()
    pm.close()


def test_buddy_alloc_fault_leaves_the_page_allocator_unchanged():
    pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    mb = Memblock(pm)
    mb.add(PHYS_BASE, 1 << 20)
    buddy = BuddyAllocator(pm, max_order=4)
    mb.free_all(buddy)
    before = buddy.dump(limit=1 << 20), buddy.nr_free_pages()
    with mock.patch.object(pm, "view", side_effect=MemoryError("injected")):
        with pytest.raises(MemoryError, match="injected"):
            buddy.alloc_pages(2)
    assert (buddy.dump(limit=1 << 20), buddy.nr_free_pages()) == before
    v = buddy.alloc_pages(2)
    assert isinstance(v, np.ndarray) and v.nbytes == 4 << 12
    buddy.free_pages(v, 2)
    buddy.check()
    del v
    pm.close()
