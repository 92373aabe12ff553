"""Tests of :class:`arena.Arena`: the API, alignment, node placement, budget, errors, statistics,
scopes, threads, fork and the hand-over to the page allocator.

Debug-mode checks are in ``test_arena_debug.py``, the pytest plugin in ``test_arena_plugin.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from arena.arena import ARENA_PHYS_BASE, POISON_FREE, Arena, ArenaStats
from arena.errors import (
    ArenaError,
    ArenaMemoryError,
    BudgetExceededError,
    ClosedError,
    DoubleFreeError,
    ForeignBufferError,
    HandoverError,
    LiveViewsError,
)
from arena.memblock import NUMA_NO_NODE
from arena.physmem import host_nodes
from tests.arenas import arena_factory

SZ_1K = 1 << 10
SZ_4K = 4 << 10
SZ_1M = 1 << 20
SZ_1G = 1 << 30
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def make():
    """Arena factory; every arena made is closed at teardown. These tests prove the manual
    (C-style) lifetime with callers tracked; the garbage-collected lifetime has its own tests
    (test_arena_gc.py)."""
    yield from arena_factory(8 * SZ_1M, lifetime="manual", track_callers=True)


def addr(view: np.ndarray) -> int:
    """Real virtual address of a view's first byte."""
    return view.__array_interface__["data"][0]


def snapshot(a: Arena) -> tuple:
    """Everything observable about an arena's allocation state (for "nothing changed")."""
    return (a.stats(), list(a.memblock.reserved.regions), list(a.memblock.memory.regions),
            a.live())


def free_ranges(a: Arena) -> list[tuple[int, int]]:
    return [(s, e) for s, e, _ in a.memblock.for_each_free_mem_range() if s < e]


# -- basic API ------------------------------------------------------------------------------------

@pytest.mark.parametrize("slab", [True, False], ids=["slab", "memblock"])
def test_alloc_simple(make, slab):
    a = make(slab=slab)
    end = ARENA_PHYS_BASE + a.capacity
    v = a.alloc(100)
    assert v.dtype == np.uint8 and v.shape == (100,) and v.flags.writeable
    assert not v.any()
    info = a.info(v)
    # Top-down, as memblock_alloc(): the highest granule-aligned fit (with slab=True: the
    # highest 128-byte slot of a one-page kmalloc-128 slab at the top of memory).
    assert info.phys == end - 128 and info.size == 100 and info.reserved == 128
    assert info.align == 64 and info.node == 0 and info.requested_node is None
    assert info.address == addr(v) and a.physmem.phys_of(v) == info.phys
    assert info.caller.startswith(__file__) and info.caller.endswith("in test_alloc_simple")
    held = PAGE if slab else 128                 # memblock reserved the slab, or the block
    assert list(a.memblock.reserved.regions)[0][:2] == (end - held, held)
    v[:] = 7
    assert a.physmem.read(info.phys, 100) == b"\x07" * 100
    st = a.stats()
    assert (st.bytes_requested, st.bytes_allocated, st.live_allocations) == (100, 128, 1)
    a.free(v)
    assert a.memblock.reserved.cnt == (1 if slab else 0)   # an empty slab stays cached
    st = a.stats()
    assert (st.bytes_requested, st.bytes_allocated, st.live_allocations) == (0, 0, 0)
    assert (st.num_allocations, st.max_memory) == (1, 128)
    assert (st.free_bytes, st.slab_bytes) == ((a.capacity - held, held) if slab else
                                              (a.capacity, 0))
    a.check()
    assert a.release() >= 0 and a.memblock.reserved.cnt == 0   # release() gives slabs back


def test_alloc_twice_adjacent(make):
    a = make()
    x, y = a.alloc(64), a.alloc(1)
    assert a.info(y).phys == a.info(x).phys - 64
    assert a.memblock.reserved.cnt == 1          # the two reservations merge
    a.free(x)
    a.free(y)
    a.check()


def test_alloc_zero_and_raw(make):
    a = make()
    v = a.alloc(SZ_4K)
    phys = a.info(v).phys
    v[:] = 0x41
    a.free(v)
    raw = a.alloc(SZ_4K, zero=False)             # same place (top-down), old contents kept
    assert a.info(raw).phys == phys and (raw == 0x41).all()
    a.free(raw)
    z = a.alloc(SZ_4K)
    assert a.info(z).phys == phys and not z.any()
    a.free(z)


def test_alloc_size_zero(make):
    a = make()
    e1, e2 = a.alloc(0), a.alloc(0)
    assert e1.shape == (0,) and e2.shape == (0,)
    assert a.info(e1).phys != a.info(e2).phys and a.info(e1).reserved == 64
    assert a.owns(e1)
    a.free(e1)
    a.free(e2)
    assert a.stats().bytes_allocated == 0


def test_alloc_array(make):
    a = make()
    m = a.alloc_array((3, 5), np.float64)
    assert m.shape == (3, 5) and m.dtype == np.float64 and m.flags.c_contiguous
    assert not m.any() and a.info(m).size == 120
    m[:] = np.arange(15).reshape(3, 5)
    s = a.alloc_array(4, np.dtype([("x", "<i4"), ("y", "<f8")], align=True), align=1)
    assert s.shape == (4,) and a.info(s).align == 8   # at least the dtype's alignment
    sub = a.alloc_array(2, ("<f4", (3,)))
    assert sub.shape == (2, 3) and sub.dtype == np.float32
    empty = a.alloc_array((0, 4), np.int16)
    assert empty.shape == (0, 4)
    listed = a.alloc_array([2, np.int64(3)], np.int8)
    assert listed.shape == (2, 3)
    for arr in (m, s, sub, empty, listed):
        a.free(arr)
    with pytest.raises(TypeError, match="object"):
        a.alloc_array(3, object)
    with pytest.raises(ValueError, match="negative"):
        a.alloc_array((2, -1), np.float32)
    with pytest.raises(TypeError):
        a.alloc_array((2.0, 3), np.float32)
    assert a.stats().num_allocations == 5


def test_free_accepts_views_of_same_bytes(make):
    a = make()
    v = a.alloc(64)
    for view in (v.view(np.float32), v.reshape(8, 8), v.reshape(8, 8).T, v[:]):
        assert a.owns(view)
        assert a.info(view).phys == a.info(v).phys
    a.free(v.view(np.float32).reshape(4, 4))
    assert not a.owns(v)


def test_free_foreign(make):
    a, b = make(), make()
    v = a.alloc(64)
    other = b.alloc(64)
    before = snapshot(a)
    for bad in (np.zeros(64, np.uint8), v[1:], v[:-1], v[::2], v.reshape(8, 8)[:, :4], other,
                v[:0]):
        assert not a.owns(bad)
        with pytest.raises(ForeignBufferError):
            a.free(bad)
        with pytest.raises(ForeignBufferError):
            a.info(bad)
    for bad in (b"x" * 64, [0] * 64, None, 5):
        with pytest.raises(TypeError):
            a.free(bad)
        with pytest.raises(TypeError):
            a.owns(bad)
    assert snapshot(a) == before
    assert issubclass(ForeignBufferError, ValueError)
    a.free(v)
    b.free(other)


def test_free_twice(make):
    a = make()
    v = a.alloc(100)
    keep = a.alloc(100)
    a.free(v)
    before = snapshot(a)
    with pytest.raises(DoubleFreeError, match="already freed"):
        a.free(v)
    with pytest.raises(DoubleFreeError):
        a.info(v)
    assert not a.owns(v)
    assert snapshot(a) == before
    assert issubclass(DoubleFreeError, ValueError) and issubclass(DoubleFreeError, ArenaError)
    a.free(keep)


def test_free_reused_address_is_the_new_allocation(make):
    # Documented limit of the manual lifetime: once the address is handed out again, the old
    # array is the new one (the garbage-collected lifetime never reuses memory an array views).
    a = make()
    v = a.alloc(100)
    a.free(v)
    w = a.alloc(100)
    assert a.info(w).phys == a.physmem.phys_of(v)
    a.free(v)
    assert not a.owns(w)


def test_owns_info_live(make):
    a = make(nodes=2)
    x = a.alloc(10)
    y = a.alloc(20, node=0)
    z = a.alloc_array(3, np.int64, node=1)
    infos = a.live()
    assert [i.size for i in infos] == [10, 20, 24] and [i.seq for i in infos] == [0, 1, 2]
    assert [i.requested_node for i in infos] == [None, 0, 1]
    assert infos[2].node == 1 and infos[1].node == 0
    for i in infos:
        assert i.caller.endswith("in test_owns_info_live")
    for v in (x, y, z):
        a.free(v)
    assert a.live() == []


def test_leaks_by_call_site(make):
    a = make()

    def helper(n):
        return [a.alloc(32) for _ in range(n)]

    kept = helper(3) + [a.alloc(1000)]
    sites = a.leaks()
    assert [(s.count, s.nbytes) for s in sites] == [(1, 1000), (3, 96)]
    assert sites[1].site.endswith("in <listcomp>") or sites[1].site.endswith("in helper")
    assert "still live" in a.format_leaks()
    for v in kept:
        a.free(v)
    assert a.leaks() == [] and a.format_leaks() == ""


# -- alignment ------------------------------------------------------------------------------------

@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_alignment_real_addresses(make, debug):
    a = make(16 * SZ_1M, debug=debug, quarantine=0)   # quarantined blocks would fill the slots
    for shift in range(31):                      # 1 B .. 1 GiB
        align = 1 << shift
        for size in (1, 100, 3 * SZ_4K):
            v = a.alloc(size, align=align)
            info = a.info(v)
            assert info.phys % align == 0, (align, size)
            assert addr(v) % align == 0, (align, size)
            assert info.align == align
            a.free(v)
    a.check()


def test_alignment_default_and_array(make):
    a = make(align=SZ_4K)
    v = a.alloc(1)
    m = a.alloc_array(10, np.complex128)
    assert addr(v) % SZ_4K == 0 and addr(m) % SZ_4K == 0
    assert a.info(v).reserved == SZ_4K            # the granule is the arena's align
    a.free(v)
    a.free(m)


def test_alignment_1g_in_small_arena(make):
    a = make(2 * SZ_1M)
    v = a.alloc(10, align=SZ_1G)
    assert a.info(v).phys == ARENA_PHYS_BASE and addr(v) % SZ_1G == 0
    a.free(v)


@pytest.mark.parametrize("align, exc", [(0, ValueError), (3, ValueError), (-64, ValueError),
                                        (2 * SZ_1G, ValueError), (True, TypeError),
                                        (64.0, TypeError), ("64", TypeError)])
def test_alignment_bad(make, align, exc):
    a = make()
    before = snapshot(a)
    with pytest.raises(exc):
        a.alloc(10, align=align)
    with pytest.raises(exc):
        a.alloc_array(10, np.int8, align=align)
    assert snapshot(a) == before
    with pytest.raises(exc):
        Arena(SZ_1M, align=align)


# -- node placement -------------------------------------------------------------------------------

@pytest.mark.parametrize("nnodes", range(1, 9))
def test_numa_node_placement(make, nnodes):
    a = make(nnodes * SZ_1M, nodes=nnodes)
    slices = a.physmem.slices
    assert a.nodes == tuple(range(nnodes))
    for sl in slices:
        for strict in (False, True):
            v = a.alloc(1000, node=sl.nid, strict_node=strict)
            info = a.info(v)
            assert info.node == sl.nid and info.requested_node == sl.nid
            # memblock_alloc_try_nid(): the highest fit inside the node.
            assert info.phys == sl.phys_start + sl.size - 1024
            a.free(v)
    st = a.stats()
    assert [n.capacity for n in st.per_node] == [sl.size for sl in slices]
    a.check()


@pytest.mark.parametrize("nnodes", [2, 8])
def test_numa_fallback_and_strict(make, nnodes):
    a = make(nnodes * SZ_1M, nodes=nnodes)
    target = nnodes - 1
    fill = a.alloc(SZ_1M, node=target, strict_node=True)    # node `target` is now full
    assert a.stats().per_node[target].free_bytes == 0
    v = a.alloc(100, node=target)                            # falls back like try_nid
    assert a.info(v).node != target
    before = snapshot(a)
    with pytest.raises(ArenaMemoryError) as ei:
        a.alloc(100, node=target, strict_node=True)
    assert ei.value.node == target and ei.value.size == 100 and ei.value.align == 64
    assert snapshot(a) == before
    a.free(fill)
    a.free(v)


def test_numa_bad_node(make):
    a = make(2 * SZ_1M, nodes=2)
    before = snapshot(a)
    for node, exc in ((2, ValueError), (99, ValueError), (-2, ValueError), ("0", TypeError),
                      (1.0, TypeError), (True, TypeError)):
        with pytest.raises(exc):
            a.alloc(10, node=node)
    with pytest.raises(ValueError, match="strict_node"):
        a.alloc(10, strict_node=True)
    assert snapshot(a) == before
    v = a.alloc(10, node=NUMA_NO_NODE)                      # the kernel's "any node"
    assert a.info(v).requested_node is None
    a.free(v)


@pytest.mark.skipif(0 not in host_nodes(), reason="host has no NUMA node 0")
def test_numa_real_binding_node0(make):
    a = make(2 * SZ_1M, nodes=[SZ_1M, SZ_1M])
    status = a.physmem.bind_status()
    assert status[0].bound and status[0].host_node == 0
    v = a.alloc(SZ_4K, node=0, strict_node=True, align=SZ_4K)
    v[:] = 1                                                 # fault the page in
    assert a.physmem.node_of_page(a.info(v).phys) == 0
    if 1 not in host_nodes():
        assert not status[1].bound and "no node 1" in status[1].reason
    a.free(v)


# -- budget ---------------------------------------------------------------------------------------

def test_budget_exhaustion(make):
    a = make(budget=1024)
    x = a.alloc(500)                                          # holds 512
    assert a.stats().budget_remaining == 512
    before = snapshot(a)
    with pytest.raises(BudgetExceededError) as ei:
        a.alloc(513)                                          # would hold 576
    assert isinstance(ei.value, ArenaMemoryError) and isinstance(ei.value, MemoryError)
    assert ei.value.size == 513 and ei.value.free_bytes > 0
    assert snapshot(a) == before
    y = a.alloc(512)
    assert a.stats().budget_remaining == 0
    with pytest.raises(BudgetExceededError):
        a.alloc(0)                                            # still one granule
    a.free(x)
    z = a.alloc(1, align=SZ_1M)                               # alignment gaps are not counted
    st = a.stats()
    assert (st.budget, st.budget_remaining, st.max_memory) == (1024, 448, 1024)
    a.free(y)
    a.free(z)


def test_budget_zero_and_strings(make):
    a = make(budget=0)
    with pytest.raises(BudgetExceededError):
        a.alloc(1)
    b = make(budget="4 KiB")
    assert b.budget == 4096
    with pytest.raises(ValueError):
        Arena(SZ_1M, budget=-1)
    with pytest.raises(TypeError):
        Arena(SZ_1M, budget=1.5)


def test_out_of_memory(make):
    a = make(SZ_1M)
    big = a.alloc(SZ_1M - SZ_4K)
    before = snapshot(a)
    with pytest.raises(ArenaMemoryError) as ei:
        a.alloc(2 * SZ_4K)
    assert ei.value.free_bytes == SZ_4K and ei.value.largest_free == SZ_4K
    assert "largest free block 4096" in str(ei.value)
    assert snapshot(a) == before
    a.free(big)
    with pytest.raises(ArenaMemoryError):
        a.alloc(2 * SZ_1M)


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc", [
    ({"nbytes": -1}, ValueError), ({"nbytes": 1 << 62}, ValueError),
    ({"nbytes": 1.0}, TypeError), ({"nbytes": "10"}, TypeError), ({"nbytes": None}, TypeError),
    ({"nbytes": True}, TypeError), ({"nbytes": 10, "zero": 1}, TypeError),
    ({"nbytes": 10, "strict_node": None}, TypeError), ({"nbytes": 10, "node": 5}, ValueError),
])
def test_alloc_bad_input(make, kwargs, exc):
    a = make()
    keep = a.alloc(10)
    before = snapshot(a)
    with pytest.raises(exc):
        a.alloc(**kwargs)
    assert snapshot(a) == before
    a.free(keep)


def test_alloc_numpy_ints(make):
    a = make(nodes=2)
    v = a.alloc(np.int64(100), align=np.uint32(128), node=np.int8(1))
    assert a.info(v).align == 128 and a.info(v).node == 1
    a.free(v)


@pytest.mark.parametrize("kwargs, exc", [
    ({"size": 0}, ValueError), ({"size": -4096}, ValueError), ({"size": 1.5}, TypeError),
    ({"size": None}, TypeError), ({"size": SZ_1M, "debug": "yes"}, TypeError),
    ({"size": SZ_1M, "hugepages": 1}, TypeError), ({"size": SZ_1M, "nodes": 0}, ValueError),
    ({"size": SZ_1M, "quarantine": -1}, ValueError),
])
def test_constructor_bad_input(kwargs, exc):
    with pytest.raises(exc):
        Arena(**kwargs)


def test_constructor_rounds_to_pages(make):
    a = make(10_000)
    assert a.capacity == -(-10_000 // PAGE) * PAGE
    assert make("1 MiB").capacity == SZ_1M


def test_debug_from_environment(monkeypatch, make):
    monkeypatch.setenv("ARENA_DEBUG", "1")
    assert make(SZ_1M).debug
    monkeypatch.setenv("ARENA_DEBUG", "0")
    assert not make(SZ_1M).debug
    assert make(SZ_1M, debug=True).debug


# -- scope, reset, release ------------------------------------------------------------------------

def test_scope(make):
    a = make()
    outer = a.alloc(10)
    with a.scope() as s:
        assert s is a
        x = a.alloc(10)
        y = a.alloc(20)
        a.free(x)
        with a.scope():
            z = a.alloc(30)
        assert not a.owns(z)
        w = a.alloc(40)
        assert a.owns(y) and a.owns(w)
    assert not a.owns(y) and not a.owns(w) and a.owns(outer)
    assert [i.size for i in a.live()] == [10]
    a.free(outer)


def test_scope_exception_frees(make):
    a = make()
    with pytest.raises(KeyError), a.scope():
        a.alloc(100)
        raise KeyError("boom")
    assert a.live() == []


def test_scope_per_thread(make):
    a = make()
    other: list[np.ndarray] = []
    with a.scope():
        t = threading.Thread(target=lambda: other.append(a.alloc(50)))
        t.start()
        t.join()
        a.alloc(60)
    assert [i.size for i in a.live()] == [50]       # the other thread's is not the scope's
    a.free(other.pop())


def test_reset(make):
    a = make(nodes=2)
    for i in range(200):
        a.alloc(i, node=i % 2)
    assert a.stats().live_allocations == 200
    a.reset()
    st = a.stats()
    assert (st.live_allocations, st.bytes_allocated, st.bytes_requested) == (0, 0, 0)
    assert st.num_allocations == 200 and st.free_bytes == a.capacity - (
        a.memblock.reserved.total_size)      # only memblock's own region arrays stay reserved
    a.check()


def test_release(make):
    a = make(16 * SZ_1M)
    keep = a.alloc(SZ_4K)
    keep[:] = 9
    big = a.alloc(8 * SZ_1M)
    big[:] = 1
    assert a.stats().resident_bytes >= 8 * SZ_1M
    a.free(big)
    released = a.release()
    assert released >= 8 * SZ_1M
    st = a.stats()
    assert st.resident_bytes <= 2 * SZ_4K
    assert (keep == 9).all()
    again = a.alloc(8 * SZ_1M)                  # zeroing released pages touches nothing
    assert a.stats().resident_bytes <= 2 * SZ_4K
    assert not again.any()
    a.free(again)
    a.free(keep)


# -- statistics -----------------------------------------------------------------------------------

def test_stats_fragmentation(make):
    a = make(SZ_1M, align=SZ_4K, slab=False)     # memblock blocks, not 4 KiB slab slots
    blocks = [a.alloc(SZ_4K) for _ in range(4)]
    a.free(blocks[1])     # top-down: blocks[1] lies between blocks[0] and blocks[2]
    sizes = [e - s for s, e in free_ranges(a)]
    assert sorted(sizes) == [SZ_4K, SZ_1M - 4 * SZ_4K]
    st = a.stats()
    total = sum(sizes)
    assert st.free_bytes == total and st.largest_free_block == max(sizes)
    assert st.fragmentation == pytest.approx(1 - sum(s * s for s in sizes) / total ** 2)
    assert 0 < st.fragmentation < 1
    for i in (0, 2, 3):
        a.free(blocks[i])
    assert a.stats().fragmentation == 0.0


def test_stats_fields(make):
    a = make(4 * SZ_1M, nodes=2, budget=SZ_1M)
    x = a.alloc(100, node=0)
    y = a.alloc(1000, node=1)
    a.free(x)
    st = a.stats()
    assert isinstance(st, ArenaStats)
    with pytest.raises(AttributeError):
        st.capacity = 0  # type: ignore[misc]
    assert st.capacity == 4 * SZ_1M
    assert (st.bytes_requested, st.bytes_allocated) == (1000, 1024)
    assert (st.total_bytes_allocated, st.max_memory, st.num_allocations) == (1152, 1152, 2)
    assert (st.live_allocations, st.budget, st.budget_remaining) == (1, SZ_1M, SZ_1M - 1024)
    assert st.free_bytes == 4 * SZ_1M - st.slab_bytes and st.quarantined_bytes == 0
    assert [n.nid for n in st.per_node] == [0, 1]
    assert [n.bytes_allocated for n in st.per_node] == [0, 1024]
    assert [n.live_allocations for n in st.per_node] == [0, 1]
    assert sum(n.free_bytes for n in st.per_node) == st.free_bytes
    assert st.resident_bytes == sum(n.resident_bytes for n in st.per_node)
    out = io.StringIO()
    a.print_stats(file=out)
    text = out.getvalue()
    for name in ("capacity", "bytes_allocated", "max_memory", "num_allocations",
                 "fragmentation", "budget_remaining", "resident_bytes"):
        assert name in text
    assert "1,152" in text
    out = io.StringIO()
    a.dump(file=out)
    assert out.getvalue().startswith("MEMBLOCK configuration:")
    assert " reserved.cnt  = 0x2" in out.getvalue()   # one slab per node
    a.free(y)


# -- lifetime -------------------------------------------------------------------------------------

def test_close_and_use_after_close():
    a = Arena(SZ_1M, lifetime="manual", track_callers=True)
    v = a.alloc(10)
    with pytest.raises(LiveViewsError):
        a.close()
    assert not a.closed
    a.free(v)                                   # still fully usable
    del v
    a.close()
    a.close()                                   # idempotent
    assert a.closed
    arr = np.zeros(4, np.uint8)
    for call in (lambda: a.alloc(1), lambda: a.alloc_array(1, np.int8), lambda: a.free(arr),
                 lambda: a.owns(arr), lambda: a.info(arr), a.live, a.leaks, a.stats, a.reset,
                 a.release, a.check, a.dump, a.handover, a.print_stats, a.format_leaks):
        with pytest.raises(ClosedError):
            call()
    with pytest.raises(ClosedError), a.scope():
        pass


def test_context_manager():
    with Arena(SZ_1M, lifetime="manual", track_callers=True) as a:
        v = a.alloc(10)
        a.free(v)
        del v
    assert a.closed and a.physmem.closed
    assert "closed" in repr(a)


def test_context_manager_with_arrays_alive():
    with Arena(SZ_1M, debug=True, lifetime="manual") as a:
        v = a.alloc(10)
        v[:] = 4
        a.free(v)
    assert a.closed and not a.physmem.closed     # retired; unmapped with the last array
    assert (v == POISON_FREE).all()               # the memory is still mapped
    with pytest.raises(ClosedError):
        a.alloc(1)
    b = Arena(SZ_1M, lifetime="manual", track_callers=True)
    w = b.alloc(10)
    with pytest.raises(LiveViewsError):
        b.close()
    b.close(defer=True)
    assert b.closed and (w == 0).all()


# -- threads and fork -----------------------------------------------------------------------------

@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_threads_hammer_one_arena(make, debug):
    a = make(16 * SZ_1M, nodes=2, debug=debug)
    errors: list[BaseException] = []
    counts: list[int] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine: list[tuple[np.ndarray, int]] = []
        count = 0
        try:
            for i in range(300):
                if mine and rng.random() < 0.45:
                    v, tag = mine.pop(int(rng.integers(len(mine))))
                    assert (v == tag).all(), "another thread wrote into my allocation"
                    a.free(v)
                else:
                    v = a.alloc(int(rng.integers(1, 3000)), align=1 << int(rng.integers(0, 13)),
                                node=int(rng.integers(2)))
                    tag = (seed * 31 + i) % 255 + 1
                    v[:] = tag
                    mine.append((v, tag))
                    count += 1
            for v, tag in mine:
                assert (v == tag).all()
                a.free(v)
            counts.append(count)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    st = a.stats()
    assert (st.live_allocations, st.bytes_allocated) == (0, 0)
    assert st.num_allocations == sum(counts)
    assert a.check() == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_private_copy(make):
    a = make()
    v = a.alloc(100)
    v[:] = 5
    before = snapshot(a)
    pid = os.fork()
    if pid == 0:  # the child: a usable private copy
        code = 1
        try:
            assert (v == 5).all() and a.owns(v)
            v[:] = 6
            w = a.alloc(200)
            w[:] = 7
            a.free(v)
            a.check()
            assert a.stats().live_allocations == 1
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert (v == 5).all()                        # the child's writes stayed in the child
    assert snapshot(a) == before
    a.free(v)
    a.check()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_other_thread_allocates(make):
    a = make()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            a.free(a.alloc(64))

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    a.check()                    # consistent: the lock was held across fork
                    a.free(a.alloc(10))
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0
    finally:
        stop.set()
        t.join()
    a.check()


# -- hand-over to the page allocator ----------------------------------------------------

def test_handover(make):
    a = make(8 * SZ_1M, nodes=2)
    old = a.alloc(3 * SZ_4K, align=SZ_4K, node=1)
    old[:] = 3
    small = a.alloc(100)
    buddy = a.handover()
    assert a.buddy is buddy
    free_before = buddy.nr_free_pages()
    assert free_before * PAGE == a.stats().free_bytes
    new = a.alloc(100, node=0)    # a slot of a new one-page kmalloc-128 slab from the buddy
    info = a.info(new)
    assert info.reserved == 128 and info.node == 0
    assert buddy.nr_free_pages() == free_before - 1
    two = a.alloc(5 * SZ_4K, node=1, strict_node=True)
    assert a.info(two).reserved == 8 * PAGE and a.info(two).node == 1
    assert a.info(two).phys % (8 * PAGE) == 0
    assert (old == 3).all()                                      # earlier allocations intact
    a.free(old)                                                  # memblock_free_late()
    assert buddy.nr_free_pages() == free_before - 1 - 8 + 3
    a.free(new)
    a.free(two)
    a.free(small)
    assert buddy.nr_free_pages() == free_before - 1 - 8 + 3   # the caches keep what they had
    a.release_unused()             # the slabs and the large block go back to the page allocator
    assert buddy.nr_free_pages() == free_before + 3 + 1       # + small's slab, from memblock
    with pytest.raises(ArenaMemoryError, match="largest block"):
        a.alloc(8 * SZ_1M)
    with pytest.raises(HandoverError):
        a.handover()
    st = a.stats()
    assert st.live_allocations == 0 and st.bytes_allocated == 0
    a.check()
    out = io.StringIO()
    a.dump(file=out)
    assert "zone   Normal" in out.getvalue()
    assert a.release() >= 0


def test_handover_budget_and_debug(make):
    a = make(4 * SZ_1M, budget=3 * PAGE, debug=True)
    a.handover()
    x = a.alloc(PAGE - 32)         # with red zones: two pages
    assert a.info(x).reserved == 2 * PAGE
    with pytest.raises(BudgetExceededError):
        a.alloc(PAGE)
    y = a.alloc(10)
    a.free(x)
    a.free(y)
    assert a.check() == []


# -- model-based stateful test --------------------------------------------------------------------

class ArenaMachine(RuleBasedStateMachine):
    """Drives an arena and a model (live allocations with their fill byte) side by side; after
    every step the arena's bookkeeping, the contents of every allocation (an overlap or lost
    write shows at once), alignment and the budget are compared with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.a: Arena | None = None
        self.model: dict[int, tuple[np.ndarray, int, int]] = {}   # key -> (view, size, byte)
        self.scopes: list[tuple[contextlib.ExitStack, set[int]]] = []
        self.next_key = 0

    @initialize(debug=st.booleans(), budget=st.sampled_from([None, 64 * SZ_1K]),
                align=st.sampled_from([1, 64, 256]))
    def setup(self, debug: bool, budget: int | None, align: int) -> None:
        self.a = Arena(256 * SZ_1K, nodes=2, debug=debug, budget=budget, align=align,
                       quarantine=8 * SZ_1K)

    @rule(size=st.integers(0, 40 * SZ_1K), align_shift=st.integers(0, 14),
          node=st.sampled_from([None, 0, 1]), strict=st.booleans(), zero=st.booleans())
    def alloc(self, size: int, align_shift: int, node: int | None, strict: bool,
              zero: bool) -> None:
        assert self.a is not None
        strict = strict and node is not None
        before = snapshot(self.a)
        try:
            v = self.a.alloc(size, align=1 << align_shift, node=node, strict_node=strict,
                             zero=zero)
        except ArenaMemoryError:
            assert snapshot(self.a) == before
            return
        info = self.a.info(v)
        assert info.phys % (1 << align_shift) == 0 and addr(v) % (1 << align_shift) == 0
        if strict:
            assert info.node == node
        if zero:
            assert not v.any()
        byte = self.next_key % 251 + 1
        v[:] = byte
        self.model[self.next_key] = (v, size, byte)
        if self.scopes:
            self.scopes[-1][1].add(self.next_key)
        self.next_key += 1

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        assert self.a is not None
        key = data.draw(st.sampled_from(sorted(self.model)))
        v, _, _ = self.model.pop(key)
        self.a.free(v)
        with pytest.raises(DoubleFreeError):
            self.a.free(v)

    @rule()
    def enter_scope(self) -> None:
        assert self.a is not None
        stack = contextlib.ExitStack()
        stack.enter_context(self.a.scope())
        self.scopes.append((stack, set()))

    @precondition(lambda self: self.scopes)
    @rule()
    def exit_scope(self) -> None:
        stack, keys = self.scopes.pop()
        stack.close()
        for key in keys:
            self.model.pop(key, None)

    @rule()
    def reset(self) -> None:
        assert self.a is not None
        self.a.reset()
        self.model.clear()

    @invariant()
    def agrees_with_model(self) -> None:
        a = self.a
        if a is None:
            return
        assert a.check() == []
        st_ = a.stats()
        assert st_.live_allocations == len(self.model)
        assert st_.bytes_requested == sum(size for _, size, _ in self.model.values())
        assert st_.free_bytes + a.memblock.reserved.total_size == a.capacity
        if st_.budget is not None:
            assert st_.bytes_allocated <= st_.budget
        for v, _, byte in self.model.values():
            assert (v == byte).all(), "an allocation's contents changed"

    def teardown(self) -> None:
        for stack, _ in reversed(self.scopes):
            stack.close()
        self.model.clear()
        if self.a is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                self.a.close()


ArenaMachine.TestCase.settings = settings(settings.default, stateful_step_count=30,
                                          deadline=None)
TestArenaMachine = ArenaMachine.TestCase
