"""arena.physmem pages: sparse mapping, residency (mincore), release, zero without faults,
huge pages, populate, memory checks, and what a forked child sees.

Residency is measured with ``resident_bytes()`` (mincore over the mapping), which is exact;
process RSS is only checked with generous margins.
"""

from __future__ import annotations

import gc
import os

import numpy as np
import psutil
import pytest

from arena.errors import ArenaMemoryError
from arena.physmem import PAGE_SIZE, PhysicalMemory
from arena.sizes import human_size

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def _thp_mode() -> str:
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return "unavailable"
    return text.split("[")[1].split("]")[0]


THP = _thp_mode()
# Without hugepages=True, THP may still back pages in "always" mode: allow one huge page.
TOUCH_MAX = 2 * MiB if THP == "always" else PAGE_SIZE


def rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.fixture
def pm():
    mem = PhysicalMemory(64 * MiB, phys_base=GiB)
    yield mem
    gc.collect()
    mem.close()


def test_64_gib_maps_sparse():
    before = rss()
    with PhysicalMemory("64 GiB") as mem:
        assert mem.size == 64 * GiB
        assert mem.resident_bytes() == 0
        assert rss() - before < 32 * MiB          # nothing near 64 GiB was committed
        last = mem.phys_end - PAGE_SIZE
        mem.fill(last, PAGE_SIZE, 0x42)
        mem.fill(0, 1, 0x43)
        assert 2 * PAGE_SIZE <= mem.resident_bytes() <= 2 * TOUCH_MAX
        assert mem.read(last, 2) == b"\x42\x42"
        assert mem.read(0, 2) == b"\x43\0"
        mem.zero(0, mem.size)                      # touches only the two written pages
        assert mem.resident_bytes() <= 2 * TOUCH_MAX
        assert mem.read(last, 1) == b"\0"
    assert rss() - before < 32 * MiB


def test_resident_bytes_counts_touched_pages(pm):
    b = pm.phys_base
    assert pm.resident_bytes() == 0
    v = pm.view(b + 10 * PAGE_SIZE, 3 * PAGE_SIZE)
    assert pm.resident_bytes() == 0               # handing out a view faults nothing
    v[::PAGE_SIZE] = 1
    assert 3 * PAGE_SIZE <= pm.resident_bytes() <= 3 * TOUCH_MAX
    if TOUCH_MAX == PAGE_SIZE:
        assert pm.resident_bytes(b + 10 * PAGE_SIZE, 3 * PAGE_SIZE) == 3 * PAGE_SIZE
        assert pm.resident_bytes(b + 11 * PAGE_SIZE + 5, 1) == PAGE_SIZE   # whole page counts
        assert pm.resident_bytes(b, 10 * PAGE_SIZE) == 0


def test_release_drops_rss_and_zeroes(pm):
    b = pm.phys_base
    v = pm.view(b, 8 * MiB)
    v[:] = 0x77
    assert pm.resident_bytes() >= 8 * MiB
    pm.release(b + 4 * MiB, 4 * MiB)
    assert 4 * MiB <= pm.resident_bytes() <= 4 * MiB + TOUCH_MAX
    assert pm.resident_bytes(b + 4 * MiB, 4 * MiB) <= TOUCH_MAX
    # read() of the released part returns zeros without faulting it back in
    assert pm.read(b + 4 * MiB - 1, 4 * MiB + 1) == b"\x77" + bytes(4 * MiB)
    assert pm.resident_bytes(b + 4 * MiB, 4 * MiB) <= TOUCH_MAX
    assert not v[4 * MiB:].any()                   # the view stays valid and reads zero
    assert (v[:4 * MiB] == 0x77).all()
    pm.check()


def test_write_through_a_view_from_before_release_is_seen(pm):
    """A view made before release() stays valid; what it writes afterwards is read back by
    read() and cleared by zero() (the "never written" mark is not trusted for viewed pages)."""
    b = pm.phys_base
    v = pm.view(b, 4 * PAGE_SIZE)
    v[:] = 1
    pm.release(b, 4 * PAGE_SIZE)
    v[PAGE_SIZE:2 * PAGE_SIZE] = 7                   # written behind the record's back
    assert pm.read(b + PAGE_SIZE, 4) == b"\7" * 4
    assert pm.read(b, 4 * PAGE_SIZE) == bytes(PAGE_SIZE) + b"\7" * PAGE_SIZE + bytes(2 * PAGE_SIZE)
    pm.zero(b, 4 * PAGE_SIZE)
    assert pm.read(b, 4 * PAGE_SIZE) == bytes(4 * PAGE_SIZE)
    # Viewed pages left untouched since the release are still not faulted in by zero().
    if TOUCH_MAX == PAGE_SIZE:
        assert pm.resident_bytes(b + 2 * PAGE_SIZE, 2 * PAGE_SIZE) == 0
    assert not v.any()
    pm.check()
    del v


def test_release_then_zero_does_not_touch(pm):
    b = pm.phys_base
    pm.fill(b, 16 * MiB, 1)
    pm.release(b, 16 * MiB)
    assert pm.resident_bytes() == 0
    pm.zero(b, pm.size)
    assert pm.resident_bytes() == 0
    assert pm._written == []


def test_zero_of_fresh_gigabyte_adds_no_rss():
    with PhysicalMemory("1 GiB") as mem:
        mem.zero(0, mem.size)
        assert mem.resident_bytes() == 0
        mem.fill(mem.size // 2, 100, 9)
        mem.zero(0, mem.size)
        assert mem.resident_bytes() <= TOUCH_MAX
        assert mem.read(mem.size // 2, 100) == bytes(100)


def test_zero_only_touches_written_pages(pm):
    b = pm.phys_base
    v = pm.view(b + 5 * PAGE_SIZE, 100)   # handed out: "possibly written", zeroed for real
    pm.fill(b + 9 * PAGE_SIZE + 10, 20, 0xFF)
    pm.zero(b, pm.size)
    assert 2 * PAGE_SIZE <= pm.resident_bytes() <= 2 * TOUCH_MAX
    if TOUCH_MAX == PAGE_SIZE:   # no other page was touched
        assert pm.resident_bytes(b + 5 * PAGE_SIZE, PAGE_SIZE) == PAGE_SIZE
        assert pm.resident_bytes(b + 9 * PAGE_SIZE, PAGE_SIZE) == PAGE_SIZE
    assert not v.any()
    assert pm.read(b + 9 * PAGE_SIZE, PAGE_SIZE) == bytes(PAGE_SIZE)


def test_read_of_unwritten_memory_faults_nothing(pm):
    assert pm.read(pm.phys_base, pm.size) == bytes(pm.size)
    assert pm.resident_bytes() == 0


def test_released_memory_rewrites_fine(pm):
    b = pm.phys_base
    pm.fill(b, PAGE_SIZE, 5)
    pm.release(b, PAGE_SIZE)
    pm.fill(b + 100, 10, 6)
    assert pm.read(b + 98, 14) == b"\0\0" + b"\6" * 10 + b"\0\0"


@pytest.mark.skipif(THP in ("never", "unavailable"), reason=f"transparent hugepages: {THP}")
def test_hugepages_back_a_touch_with_a_huge_page():
    with PhysicalMemory("64 MiB", hugepages=True) as mem:
        assert mem.hugepages
        mem.fill(2 * MiB + 100, 1, 1)
        # one write faults a whole 2 MiB page (when the kernel has one free)
        assert mem.resident_bytes(2 * MiB, 2 * MiB) in (PAGE_SIZE, 2 * MiB)
        mem.release(2 * MiB, 2 * MiB)
        assert mem.resident_bytes() == 0
        assert mem.read(2 * MiB + 100, 1) == b"\0"


def test_populate_prefaults_zero_pages():
    with PhysicalMemory("8 MiB", populate=True) as mem:
        assert mem.resident_bytes() == 8 * MiB
        assert mem.read(0, mem.size) == bytes(mem.size)
        assert mem._written == []             # populated pages are zero: nothing to zero later


def test_populate_larger_than_available_is_refused():
    avail = psutil.virtual_memory().available
    size = (avail + GiB) // PAGE_SIZE * PAGE_SIZE
    before = rss()
    with pytest.raises(ArenaMemoryError, match="populate") as info:
        PhysicalMemory(size, populate=True)
    assert info.value.size == size
    assert f"pre-fault {human_size(size)} but only " in str(info.value)   # sizes as people read them
    assert rss() - before < 64 * MiB


def test_noreserve_false_beyond_ram_and_swap_is_refused():
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    size = (vm.total + swap.total + GiB) // PAGE_SIZE * PAGE_SIZE
    with pytest.raises(ArenaMemoryError, match="noreserve") as info:
        PhysicalMemory(size, noreserve=False)
    assert f"commits {human_size(size)}, more than RAM + swap ({human_size(vm.total)}" in str(
        info.value)


def test_noreserve_false_small_works():
    with PhysicalMemory("4 MiB", noreserve=False) as mem:
        mem.fill(0, 4 * MiB, 3)
        assert mem.read(4 * MiB - 1, 1) == b"\3"


# -- fork: the child gets a private copy-on-write copy ------------------------------------------

def test_fork_child_sees_private_copy(pm):
    b = pm.phys_base
    v = pm.view(b, 2 * PAGE_SIZE, np.uint32)
    v[:] = 0x11223344
    pid = os.fork()
    if pid == 0:   # child: sees the parent's data, writes its own copy, exits without cleanup
        code = 0
        try:
            if not (v == 0x11223344).all() or pm.read(b, 1) != b"\x44":
                code = 3
            v[:] = 0xDEADBEEF
            pm.fill(b + 4 * MiB, PAGE_SIZE, 0x99)
            if pm.read(b, 4) != b"\xef\xbe\xad\xde":
                code = 4
        except BaseException:
            code = 5
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert (v == 0x11223344).all()            # the child's writes stayed in the child
    assert pm.read(b + 4 * MiB, PAGE_SIZE) == bytes(PAGE_SIZE)


def test_parent_writes_after_fork_not_seen_by_child(pm):
    b = pm.phys_base
    pm.fill(b, 16, 1)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)                         # wait until the parent has written
        os._exit(0 if pm.read(b, 16) == b"\1" * 16 else 6)
    os.close(r)
    pm.fill(b, 16, 2)
    os.write(w, b"x")
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert pm.read(b, 1) == b"\2"


def test_release_of_unviewed_memory_costs_no_page_table_look_later():
    from unittest import mock

    from arena.physmem import PhysicalMemory

    with PhysicalMemory(1 << 20) as pm:
        pm.fill(pm.phys_base, 1 << 16, 7)
        pm.release(pm.phys_base, 1 << 16, unviewed=True)
        with mock.patch.object(PhysicalMemory, "_touched_pieces",
                               side_effect=AssertionError("page table read")):
            pm.zero(pm.phys_base, 1 << 16)           # nothing to zero, nothing to look up
            assert pm.read(pm.phys_base, 1 << 16) == bytes(1 << 16)
        assert pm.resident_bytes(pm.phys_base, 1 << 16) == 0
        with pytest.raises(TypeError, match="unviewed"):
            pm.release(pm.phys_base, 4096, unviewed="yes")
        pm.fill(pm.phys_base, 4096, 1)
        pm.release(pm.phys_base, 4096)              # a view might still write: looked up later
        with mock.patch.object(PhysicalMemory, "_touched_pieces", return_value=[]) as look:
            pm.zero(pm.phys_base, 4096)
        assert look.called


def test_advise_hugepages_is_best_effort_and_checks_its_range():
    from arena.physmem import PhysicalMemory

    with PhysicalMemory(8 << 20) as pm:
        assert pm.advise_hugepages(pm.phys_base, 4 << 20) in (True, False)
        with pytest.raises(ValueError, match="whole"):
            pm.advise_hugepages(pm.phys_base + 1, 4096)
        with pytest.raises(ValueError, match="outside"):
            pm.advise_hugepages(pm.phys_base, 16 << 20)


def test_large_blocks_of_4_mib_and_more_are_2_mib_aligned():
    from arena import Arena

    with Arena(64 << 20) as a:
        v = a.alloc(5 << 20)
        assert a.info(v).phys % (2 << 20) == 0 and v.__array_interface__["data"][0] % (2 << 20) == 0
        w = a.alloc(100_000)
        assert a.info(w).reserved < 4 << 20
        del v, w
