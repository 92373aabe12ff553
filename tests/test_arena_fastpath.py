"""The arena's fast path for small objects: the kmalloc size-class caches (:mod:`arena.slab`)
behind :meth:`arena.Arena.alloc` / :meth:`arena.Arena.free`.

What goes to the caches (sizes up to 4 KiB at the default or a class-compatible alignment, any
node) and what stays with memblock; slots never overlap and keep their contents; slabs are
reused and given back (reset, release, handover, the spare policy); zeroing; exact statistics
and the budget; the free fast path and every fallback to the general one (views of views,
double and foreign frees, stale arrays); scopes, info/leaks, close, threads, fork, faults and
``ARENA_CHECK=1``.
"""

from __future__ import annotations

import inspect
import os
import threading
from typing import Any
from unittest import mock

import numpy as np
import pytest

from arena.arena import ARENA_PHYS_BASE, Arena
from arena.errors import (
    BudgetExceededError,
    ClosedError,
    DoubleFreeError,
    ForeignBufferError,
    LiveViewsError,
)
from arena.slab import KMALLOC_SIZES, Slot
from tests.arenas import arena_factory

PAGE = os.sysconf("SC_PAGE_SIZE")
SZ_1M = 1 << 20


@pytest.fixture
def make():
    """The manual (C-style) lifetime with callers tracked; the garbage-collected lifetime has
    its own tests (test_arena_gc.py)."""
    yield from arena_factory(4 * SZ_1M, defer=True, lifetime="manual", track_callers=True)


def addr(v: np.ndarray) -> int:
    return v.__array_interface__["data"][0]


def is_slot(a: Arena, v: np.ndarray) -> bool:
    """The allocation ``v`` is a slot of a slab (not a memblock or buddy block)."""
    assert a.slab is not None
    return a.slab.find(a.physmem.phys_of(v))[1] is not None


def snapshot(a: Arena) -> tuple:
    return (a.stats(), list(a.memblock.reserved.regions), a.live())


# -- what the caches serve ----------------------------------------------------------------------

@pytest.mark.parametrize("nbytes, reserved", [(1, 64), (64, 64), (65, 128), (100, 128),
                                              (129, 192), (193, 256), (1000, 1024),
                                              (2049, 4096), (4096, 4096)])
def test_small_requests_are_slots(make, nbytes, reserved):
    a = make()
    v = a.alloc(nbytes)
    info = a.info(v)
    assert is_slot(a, v) and info.reserved == reserved and info.size == nbytes
    assert info.phys % 64 == 0 and addr(v) % 64 == 0 and info.align == 64
    assert v.shape == (nbytes,) and v.dtype == np.uint8 and v.flags.writeable
    assert a.stats().slab_bytes == a.memblock.reserved.total_size
    a.free(v)
    a.check()


def test_what_memblock_keeps_serving(make):
    a = make(nodes=2)
    # Requests no size class serves: small ones aligned beyond their class, and large ones
    # whose class could never be retained (over the arena's retain limit).
    cases = [a.alloc(100, align=2 * PAGE), a.alloc(a.large.limit + 1),
             a.alloc(10, align=8 * PAGE, node=1, strict_node=True)]
    for v in cases:
        assert a.slab.find(a.info(v).phys) == (None, None)
        assert a.info(v).reserved == _round_up(a.info(v).size, 64)   # exact, no class padding
    assert a.stats().slab_bytes == 0 and a.stats().retained_bytes == 0
    assert a.info(cases[2]).node == 1
    for v in cases:
        a.free(v)
    for arena in (make(debug=True), make(slab=False)):
        assert arena.slab is None and arena.large is None
        w = arena.alloc(64)
        assert arena.memblock.reserved.total_size == (64 + 2 * 64 if arena.debug else 64)
        arena.free(w)


def test_every_other_request_is_a_size_class(make):
    a = make(nodes=2)
    cases = [a.alloc(0), a.alloc(4097), a.alloc(100, node=0),
             a.alloc(100, node=1, strict_node=True), a.alloc_array(0, np.int8)]
    for v in cases:
        assert is_slot(a, v)
    assert [a.info(v).node for v in cases[2:4]] == [0, 1]
    assert a.info(cases[1]).reserved == 8192
    for v in cases:
        a.free(v)


def _round_up(x, a):
    return (x + a - 1) & -a


@pytest.mark.parametrize("align, reserved", [(1, 64), (8, 64), (64, 64), (128, 128),
                                             (1024, 1024), (4096, 4096)])
def test_explicit_alignment_picks_an_aligned_class(make, align, reserved):
    a = make()
    v = a.alloc(10, align=align)
    info = a.info(v)
    assert is_slot(a, v) and info.reserved == reserved and info.align == align
    assert info.phys % align == 0 and addr(v) % align == 0
    a.free(v)


def test_granule_of_the_arena(make):
    fine = make(align=1)
    sizes = [fine.info(fine.alloc(n)).reserved for n in (1, 8, 9, 33, 65, 97, 129)]
    assert sizes == [8, 8, 16, 64, 96, 128, 192]
    coarse = make(align=PAGE)
    v = coarse.alloc(1)
    assert coarse.info(v).reserved == PAGE and is_slot(coarse, v)
    assert coarse.info(coarse.alloc(10, align=8)).reserved == PAGE   # never below a granule
    fine.reset()
    coarse.reset()


def test_alloc_array_slots(make):
    a = make()
    m = a.alloc_array((3, 5), np.float64)
    s = a.alloc_array(4, np.dtype([("x", "<i4"), ("y", "<f8")], align=True), align=1)
    assert is_slot(a, m) and is_slot(a, s)
    assert a.info(m).reserved == 128 and a.info(s).align == 8 and a.info(s).reserved == 64
    assert m.shape == (3, 5) and not m.any()
    a.free(m)                       # the returned (reshaped) array itself: the fast path
    a.free(s.view(np.uint8))        # a view of it: the general path
    assert a.stats().live_allocations == 0


# -- slots: placement, contents, reuse --------------------------------------------------------------

def test_slots_never_overlap_and_keep_contents(make):
    a = make(8 * SZ_1M)
    rng = np.random.default_rng(5)
    live: dict[int, tuple[np.ndarray, int]] = {}
    for i in range(3000):
        if live and rng.random() < 0.4:
            key = int(rng.choice(list(live)))
            v, byte = live.pop(key)
            assert (v == byte).all(), "a slot's contents changed"
            a.free(v)
        else:
            n = int(rng.integers(1, 4097))
            v = a.alloc(n, zero=bool(rng.integers(2)))
            byte = i % 251 + 1
            v[:] = byte
            live[i] = (v, byte)
        if i % 500 == 0:
            a.check()
    spans = sorted((a.info(v).phys, a.info(v).phys + a.info(v).reserved)
                   for v, _ in live.values())
    assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:], strict=False))
    for v, byte in live.values():
        assert (v == byte).all()
    a.check()
    st = a.stats()
    assert st.live_allocations == len(live)
    assert st.bytes_requested == sum(v.nbytes for v, _ in live.values())
    assert st.bytes_allocated == sum(a.info(v).reserved for v, _ in live.values())


def test_slot_reused_and_slabs_stay_few(make):
    a = make()
    v = a.alloc(64)
    phys = a.info(v).phys
    a.free(v)
    for _ in range(100):
        w = a.alloc(64)
        assert a.info(w).phys == phys               # the same slot, every time
        a.free(w)
    views = [a.alloc(64) for _ in range(1000)]      # 64 per page: 16 one-page slabs
    assert a.stats().slab_bytes == 16 * PAGE
    assert a.memblock.reserved.cnt == 1             # adjacent slabs merge in memblock
    for w in views:
        a.free(w)
    # Emptied slabs stay as spares while the retain budget allows (a batch allocated again
    # takes no new pages): a 4 MiB arena keeps 1/16 of its 1 MiB retain limit per cache.
    assert a.stats().slab_bytes == 16 * PAGE
    small = make(retain=0)
    views = [small.alloc(64) for _ in range(1000)]
    for w in views:
        small.free(w)
    assert small.stats().slab_bytes <= 2 * PAGE   # the current one and one spare
    a.release_unused()
    assert a.stats().slab_bytes == 0
    a.check()


def test_zeroing(make):
    a = make()
    v = a.alloc(100)
    phys = a.info(v).phys
    v[:] = 0xAB
    a.free(v)
    raw = a.alloc(100, zero=False)                  # the same slot: old contents kept
    assert a.info(raw).phys == phys and (raw == 0xAB).all()
    raw[:] = 0xCD
    a.free(raw)
    z = a.alloc(128)                                # zeroed, up to the end of the slot
    assert a.info(z).phys == phys and not z.any()
    a.free(z)


def test_fresh_slots_are_not_touched(make):
    a = make(64 * SZ_1M)
    views = [a.alloc(4096) for _ in range(64)]      # 8 slabs of 32 KiB, never written
    assert a.stats().resident_bytes == 0             # (reading maps the zero page: after)
    assert all(not v.any() for v in views)
    for v in views:
        a.free(v)


# -- statistics and budget --------------------------------------------------------------------------

def test_stats_exact(make):
    a = make(4 * SZ_1M, nodes=2)
    x = a.alloc(100)           # slot of 128
    y = a.alloc(1000)          # slot of 1024
    z = a.alloc(100, node=0)   # slot of 128 in node 0's own slab
    st = a.stats()
    assert (st.bytes_requested, st.bytes_allocated, st.live_allocations) == (1200, 1280, 3)
    assert (st.total_bytes_allocated, st.max_memory, st.num_allocations) == (1280, 1280, 3)
    assert st.slab_bytes == PAGE + 2 * PAGE + PAGE
    assert st.free_bytes == a.capacity - st.slab_bytes
    assert st.free_bytes + a.memblock.reserved.total_size == a.capacity
    assert [n.live_allocations for n in st.per_node] == [1, 2]
    assert [n.bytes_allocated for n in st.per_node] == [128, 1152]
    a.free(x)
    a.free(z)
    st = a.stats()
    assert (st.bytes_requested, st.bytes_allocated, st.live_allocations) == (1000, 1024, 1)
    assert (st.total_bytes_allocated, st.max_memory) == (1280, 1280)
    assert [i.seq for i in a.live()] == [1]
    w = a.alloc(120)           # the fast path: a free slot in the current slab
    st = a.stats()
    assert (st.bytes_requested, st.bytes_allocated, st.live_allocations) == (1120, 1152, 2)
    assert (st.total_bytes_allocated, st.max_memory, st.num_allocations) == (1408, 1280, 4)
    a.free(y)
    a.free(w)
    assert a.stats().bytes_allocated == 0
    a.check()


def test_budget_counts_slots(make):
    a = make(budget=1024)
    x = a.alloc(500)                                # a 512 slot
    assert is_slot(a, x) and a.stats().budget_remaining == 512
    before = snapshot(a)
    with pytest.raises(BudgetExceededError):
        a.alloc(513)                                # 1024 slot, 576 memblock: neither fits
    assert snapshot(a) == before
    y = a.alloc(300)                                # 512 slot fits exactly
    assert is_slot(a, y) and a.stats().budget_remaining == 0
    a.free(x)
    a.free(y)
    b = make(budget=1000)
    v = b.alloc(600)                                # a 1024 slot would not fit: memblock 640
    assert not is_slot(b, v) and b.info(v).reserved == 640
    b.free(v)


# -- freeing: fast path and fallbacks ----------------------------------------------------------------

def test_free_views_of_the_same_bytes(make):
    a = make()
    for view_of in (lambda v: v.view(np.float32), lambda v: v.reshape(8, 8),
                    lambda v: v.reshape(8, 8).T, lambda v: v[:], lambda v: v.view(np.int8)):
        v = a.alloc(64)
        w = view_of(v)
        assert a.owns(w) and a.info(w).phys == a.info(v).phys
        a.free(w)
        assert not a.owns(v) and a.stats().live_allocations == 0
        with pytest.raises(DoubleFreeError, match="already freed"):
            a.free(v)                               # the original, now freed
    a.check()


def test_free_foreign_and_partial(make):
    a, b = make(), make()
    v = a.alloc(100)
    other = b.alloc(100)
    before = snapshot(a)
    for bad in (v[1:], v[:-1], v[::2], v[::-1], v[:0], np.zeros(100, np.uint8), other,
                v.reshape(10, 10)[:, :5]):
        assert not a.owns(bad)
        with pytest.raises(ForeignBufferError):
            a.free(bad)
    for bad in (b"x", None, 5, [1]):
        with pytest.raises(TypeError):
            a.free(bad)
    never = a.physmem.view(a.info(v).phys - 128, 128)   # a slot never handed out
    with pytest.raises(ForeignBufferError, match="not an allocation"):
        a.free(never)
    assert snapshot(a) == before
    a.free(v)
    b.free(other)


def test_double_free_remembered_after_the_slab_is_gone(make):
    a = make()
    v = a.alloc(64)
    a.free(v)
    with pytest.raises(DoubleFreeError):
        a.free(v)
    a.release_unused()
    assert a.stats().slab_bytes == 0   # the slab went back
    with pytest.raises(DoubleFreeError, match="already freed"):
        a.free(v)


def test_stale_array_is_the_new_allocation(make):
    # Documented limit of the manual lifetime: once the slot is handed out again, the old array
    # is the new one.
    a = make()
    v = a.alloc(64)
    a.free(v)
    w = a.alloc(64)
    assert a.info(w).phys == a.physmem.phys_of(v) and a.owns(v)
    a.free(v)
    assert not a.owns(w) and a.stats().live_allocations == 0


def test_free_of_a_copy_is_refused(make):
    # The fast path finds the unit through the array's base (the unit's anchor): a copy owns
    # its data, so it names no anchor and changes nothing.
    a = make()
    v = a.alloc(64)
    c = v.copy()
    before = snapshot(a)
    with pytest.raises(ForeignBufferError):
        a.free(c)
    assert snapshot(a) == before and a._anchors[id(v.base)].view is v
    a.free(v)


# -- introspection ---------------------------------------------------------------------------------

def here() -> int:
    return inspect.currentframe().f_back.f_lineno


def test_info_live_leaks_of_slots(make):
    a = make()
    x = a.alloc(10); line_x = here()  # noqa: E702
    y = a.alloc(20, align=8); line_y = here()  # noqa: E702
    infos = a.live()
    assert [i.size for i in infos] == [10, 20] and [i.seq for i in infos] == [0, 1]
    assert infos[0].caller == f"{__file__}:{line_x} in test_info_live_leaks_of_slots"
    assert infos[1].caller == f"{__file__}:{line_y} in test_info_live_leaks_of_slots"
    assert infos[1].align == 8 and infos[0].align == 64 and infos[0].requested_node is None
    assert infos[0].address == addr(x) and infos[0].stack == (infos[0].caller,)

    def helper():
        return [a.alloc(32) for _ in range(3)]

    kept = helper()
    sites = a.leaks()
    assert [(s.count, s.nbytes) for s in sites] == [(3, 96), (1, 20), (1, 10)]
    assert "3 allocation(s)" not in a.format_leaks() and "5 allocation(s)" in a.format_leaks()
    for v in kept + [x, y]:
        a.free(v)
    assert a.leaks() == []


def test_dump_shows_slabinfo(make, capsys):
    a = make()
    v = a.alloc(64)
    a.dump()
    out = capsys.readouterr().out
    assert out.startswith("MEMBLOCK configuration:") and "slabinfo - version: 2.1" in out
    assert "kmalloc-64" in out
    a.free(v)


# -- scopes, reset, release, hand-over ---------------------------------------------------------------

def test_scope_frees_its_slots_only(make):
    a = make()
    outer = a.alloc(64)
    got: list[np.ndarray] = []
    with a.scope():
        x = a.alloc(64)
        a.alloc(100)
        a.free(x)                  # x's slot goes back ...
        t = threading.Thread(target=lambda: got.append(a.alloc(64)))
        t.start()
        t.join()                   # ... and another thread gets it: not the scope's
        assert a.info(got[0]).phys == a.physmem.phys_of(x)
    assert a.owns(outer) and a.owns(got[0])
    assert sorted(i.size for i in a.live()) == [64, 64]
    a.free(outer)
    a.free(got[0])


def test_reset_gives_slabs_back(make):
    a = make(nodes=2)
    for i in range(300):
        a.alloc(1 + i * 13 % 4096)
    assert a.stats().slab_bytes > 0
    a.reset()
    st = a.stats()
    assert (st.live_allocations, st.bytes_allocated, st.slab_bytes) == (0, 0, 0)
    assert a.memblock.reserved.cnt == 0 and st.free_bytes == a.capacity
    a.check()


def test_release_gives_empty_slabs_back(make):
    a = make()
    keep = a.alloc(64)
    keep[:] = 3
    views = [a.alloc(4096) for _ in range(40)]
    for v in views:
        v[:] = 1
    for v in views:
        a.free(v)
    before = a.stats().resident_bytes
    released = a.release()
    st = a.stats()
    assert released >= 2 * 8 * PAGE and st.slab_bytes == PAGE   # only keep's slab is left
    assert st.resident_bytes < before and (keep == 3).all()
    a.free(keep)


def test_handover_with_slabs(make):
    a = make(4 * SZ_1M)
    early = a.alloc(64)                      # a slot in a memblock slab
    spare = [a.alloc(1024) for _ in range(8)]
    for v in spare:
        a.free(v)                            # an empty slab: handed to the buddy allocator
    buddy = a.handover()
    assert a.stats().slab_bytes == PAGE       # the empty slabs went with the free memory
    assert buddy.nr_free_pages() * PAGE == a.stats().free_bytes
    free_before = buddy.nr_free_pages()
    late = a.alloc(2000)                      # a new kmalloc-2048 slab: a buddy block of order 2
    assert is_slot(a, late) and a.slab.find(a.info(late).phys)[0].order == 2
    assert buddy.nr_free_pages() == free_before - 4
    again = a.alloc(64)                       # the early slab still serves
    assert a.info(again).phys == a.info(early).phys - 64
    for v in (early, late, again):
        a.free(v)
    a.release()                               # both slabs go back to the buddy allocator
    assert buddy.nr_free_pages() == free_before + 1
    assert a.stats().slab_bytes == 0
    a.check()


# -- lifetime ------------------------------------------------------------------------------------

def test_close_refused_changes_nothing():
    a = Arena(SZ_1M, lifetime="manual", track_callers=True)
    v = a.alloc(64)
    leaked = a.alloc(64)
    leaked_phys = a.info(leaked).phys
    del leaked                               # nobody but the arena holds it
    before = snapshot(a)
    with pytest.raises(LiveViewsError):
        a.close()
    assert snapshot(a) == before and not a.closed
    assert a.owns(v)
    a.free(v)                                # the fast path still works
    w = a.alloc(64)
    assert a.info(w).phys != leaked_phys
    a.free(w)
    del v, w
    a.close()                                # the leaked slot's array goes with the arena
    assert a.closed and a.physmem.closed
    with pytest.raises(ClosedError):
        a.alloc(64)
    with pytest.raises(ClosedError):
        a.free(np.zeros(4, np.uint8))


class _CountingLock:
    """The arena's lock, with a count of the threads that have reached it: the test knows a
    worker is past the fast path's lookup and waiting for the lock, without sleeping."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.arrived = threading.Semaphore(0)

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        self.arrived.release()
        return self.lock.acquire(*args, **kwargs)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> _CountingLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_alloc_and_free_racing_close():
    # The fast paths look the cache up before they take the lock: a close in between must
    # still end in ClosedError. Both workers are known to wait for the lock the main thread
    # holds before the close happens.
    a = Arena(SZ_1M, lifetime="manual", track_callers=True)
    v = a.alloc(64)
    a.free(a.alloc(64))
    errors: list[BaseException] = []
    results: list[Any] = []

    def worker(fn) -> None:
        try:
            results.append(fn())
        except ClosedError as exc:
            errors.append(exc)

    real = a._lock
    real.acquire()
    gate = a._lock = _CountingLock(real)
    threads = [threading.Thread(target=worker, args=(fn,))
               for fn in (lambda: a.alloc(64), lambda: a.free(v))]
    for t in threads:
        t.start()
    for _ in threads:                       # both workers are now blocked on the lock
        assert gate.arrived.acquire(timeout=30), "a worker never reached the arena's lock"
    a.close(defer=True)
    real.release()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 2 and results == [] and a.closed


def test_close_with_leaked_slot_in_context_manager():
    with Arena(SZ_1M, lifetime="manual", track_callers=True) as a:
        a.alloc(100)                         # leaked; the array is dropped at once
    assert a.closed and a.physmem.closed


# -- threads, fork, check mode, faults ----------------------------------------------------------------

def test_threads_small_allocations(make):
    a = make(16 * SZ_1M)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine: list[tuple[np.ndarray, int]] = []
        try:
            for i in range(1500):
                if mine and rng.random() < 0.45:
                    v, tag = mine.pop(int(rng.integers(len(mine))))
                    assert (v == tag).all(), "another thread wrote into my slot"
                    a.free(v if i % 3 else v.view(np.int8))
                else:
                    v = a.alloc(int(rng.integers(1, 600)), zero=bool(i % 2))
                    tag = (seed * 31 + i) % 255 + 1
                    v[:] = tag
                    mine.append((v, tag))
            for v, tag in mine:
                assert (v == tag).all()
                a.free(v)
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
    assert a.check() == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_uses_the_caches(make):
    a = make()
    v = a.alloc(64)
    v[:] = 5
    before = snapshot(a)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            w = a.alloc(64)
            a.free(v)
            a.free(w)
            assert a.stats().live_allocations == 0
            a.check()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert snapshot(a) == before and (v == 5).all()
    a.free(v)


def test_arena_check_mode_uses_the_general_path(make, monkeypatch):
    monkeypatch.setenv("ARENA_CHECK", "1")
    a = make()
    assert a._fast == {}
    calls = []
    real = a._check_bookkeeping
    monkeypatch.setattr(a, "_check_bookkeeping", lambda: (calls.append(1), real()))
    v = a.alloc(64)
    assert is_slot(a, v) and calls
    n = len(calls)
    a.free(v)
    assert len(calls) > n


@pytest.mark.parametrize("step", ["view", "zero"])
def test_failing_memory_while_making_a_slab(make, step):
    a = make()
    keep = a.alloc(100)
    before = snapshot(a)
    with mock.patch.object(a.physmem, step, side_effect=MemoryError("injected")):
        with pytest.raises(MemoryError, match="injected"):
            a.alloc(1000)                    # needs a new kmalloc-1024 slab
    assert snapshot(a) == before
    v = a.alloc(1000)
    assert is_slot(a, v)
    a.free(v)
    a.free(keep)


def test_bookkeeping_check_catches_a_lost_slot(make):
    a = make()
    v = a.alloc(64)
    slot = a._anchors.pop(id(v.base))
    with pytest.raises(AssertionError, match="arena invariant broken"):
        a.check()
    a._anchors[id(v.base)] = slot
    assert a.check() == [] and isinstance(slot, Slot)
    assert KMALLOC_SIZES[-1] == 8192 and ARENA_PHYS_BASE == 1 << 30
    a.free(v)
