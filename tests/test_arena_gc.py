"""The garbage-collected lifetime (the default) and the size classes for every size.

A unit goes back for reuse when no array views it any more: the array handed out and every
view derived from it. These tests prove that a stale or derived view never aliases a new
allocation, that the steady state never reaches memblock, and what the statistics say.
"""

from __future__ import annotations

import asyncio
import threading
from unittest import mock

import numpy as np
import pytest

from arena import Arena
from arena.errors import (
    ArenaMemoryError,
    BudgetExceededError,
    DoubleFreeError,
    ForeignBufferError,
    LiveViewsError,
)
from arena.largecache import LargeCaches, large_class_pages
from arena.tracking import UNTRACKED
from tests.arenas import arena_factory

SZ_1M = 1 << 20
PAGE = 4096


@pytest.fixture
def make():
    yield from arena_factory(32 * SZ_1M, defer=True)


def churn(a: Arena, nbytes: int, n: int = 200, value: int = 0x77) -> list[np.ndarray]:
    """Allocate ``n`` arrays of ``nbytes`` (dropping most of them), filling each with
    ``value``; returns the ones kept."""
    kept = []
    for i in range(n):
        x = a.alloc(nbytes)
        x[:] = value
        if i % 10 == 0:
            kept.append(x)
    return kept


# -- lifetime -----------------------------------------------------------------------------------

def test_gc_is_the_default_and_drop_frees(make):
    a = make()
    assert a.lifetime == "gc"
    x = a.alloc(100)
    y = a.alloc(100_000)
    st = a.stats()
    big = large_class_pages(-(-100_000 // PAGE)) * PAGE     # 25 pages -> the 28-page class
    assert big == 28 * PAGE
    assert st.live_allocations == 2 and st.bytes_allocated == 128 + big
    del x, y
    st = a.stats()
    assert st.live_allocations == 0 and st.bytes_allocated == 0 and st.held_bytes == 0
    assert st.retained_bytes == big         # the large block waits for reuse
    a.check()


DERIVED = {
    "slice": lambda v: v[1:],
    "view": lambda v: v.view(np.uint32),
    "reshape": lambda v: v.reshape(16, -1),
    "memoryview": lambda v: memoryview(v),
    "frombuffer": lambda v: np.frombuffer(memoryview(v), np.uint8),
    "frombuffer-array": lambda v: np.frombuffer(v, np.uint8),
    "slice-of-slice": lambda v: v[4:][::2],
    "as_strided": lambda v: np.lib.stride_tricks.as_strided(v, (8,), (8,)),
    "transpose": lambda v: v.reshape(16, -1).T,
}


@pytest.mark.parametrize("nbytes", [64, 4096, 64 << 10])
@pytest.mark.parametrize("kind", sorted(DERIVED))
def test_derived_views_keep_the_block(make, kind, nbytes):
    a = make()
    v = a.alloc(nbytes)
    v[:] = 0x5C
    d = DERIVED[kind](v)
    del v                                   # only the derived view is left
    others = churn(a, nbytes)               # reuse pressure on the same size class
    assert all((o == 0x77).all() for o in others)
    data = np.asarray(d).view(np.uint8) if not isinstance(d, memoryview) else np.asarray(d)
    assert (data == 0x5C).all()             # never overwritten by another allocation
    assert a.stats().live_allocations == 1 + len(others)
    del d, data
    del others
    assert a.stats().live_allocations == 0
    a.check()


def test_free_gives_up_the_claim_and_reuse_waits_for_the_views(make):
    a = make()
    v = a.alloc(64)
    v[:] = 9
    a.free(v)
    st = a.stats()
    assert (st.bytes_allocated, st.held_bytes, st.live_allocations) == (0, 64, 0)
    with pytest.raises(DoubleFreeError):
        a.free(v)
    others = churn(a, 64)
    assert (v == 9).all()                    # still ours to read: never reused meanwhile
    del v
    assert a.stats().held_bytes == 0
    del others
    a.check()


@pytest.mark.parametrize("how", ["reset", "scope"])
def test_stale_views_after_reset_or_scope_never_alias(make, how):
    a = make()
    if how == "reset":
        stale = a.alloc(256)
        stale[:] = 1
        a.reset()
    else:
        with a.scope():
            stale = a.alloc(256)
            stale[:] = 1
    assert a.stats().held_bytes == 256 and a.stats().live_allocations == 0
    fresh = [a.alloc(256) for _ in range(100)]
    for f in fresh:
        f[:] = 2
    assert (stale == 1).all()
    del stale, fresh, f
    st = a.stats()
    assert st.held_bytes == 0 and st.bytes_allocated == 0


def test_close_refuses_while_views_live(make):
    a = make()
    v = a.alloc(64)[3:]
    before = a.stats()
    with pytest.raises(LiveViewsError):
        a.close()
    assert not a.closed and a.stats() == before
    assert not a.owns(v)                    # a part of the allocation, found after the refusal
    a.free(v.base[:64])                     # the whole, through the anchor the arena kept
    assert a.stats().held_bytes == 64
    del v
    a.close()
    assert a.closed


def test_free_of_a_derived_view_and_of_a_part(make):
    a = make()
    v = a.alloc(128)
    with pytest.raises(ForeignBufferError):
        a.free(v[:64])                      # a part is not the allocation
    a.free(v.view(np.float64))              # the whole, seen through a derived view
    assert a.stats().held_bytes == 128
    with pytest.raises(DoubleFreeError):
        a.free(v)


def test_budget_counts_held_bytes_but_never_dead_ones(make):
    a = make(budget=64 * 1024)
    keep = a.alloc(32 * 1024)
    a.free(keep)                            # held: still counted
    with pytest.raises(BudgetExceededError):
        a.alloc(40 * 1024)
    del keep
    for _ in range(50):                     # dead arrays never exhaust the budget
        a.alloc(40 * 1024)[:] = 1
    assert a.stats().bytes_allocated == 0


def test_memory_stays_bounded_when_the_oldest_array_dies_first(make):
    a = make(64 * SZ_1M)
    queue = [a.alloc(100_000) for _ in range(20)]
    for _ in range(2000):                   # FIFO: the dead unit is never among the newest
        queue.append(a.alloc(100_000))
        queue.pop(0)
    st = a.stats()
    assert st.live_allocations == 20
    assert st.bytes_allocated + st.retained_bytes <= 4 * 20 * 102_400 + 2 * SZ_1M


def test_threads_allocating_and_dropping(make):
    a = make(64 * SZ_1M)
    errors = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        kept = []
        try:
            for _ in range(500):
                n = int(rng.choice([16, 64, 700, 5000, 20_000, 200_000]))
                x = a.alloc(n)
                x[:] = seed
                if rng.random() < 0.2:
                    kept.append(x)
                if len(kept) > 20:
                    kept.pop(0)
            assert all((k == seed).all() for k in kept)
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert a.stats().live_allocations == 0
    a.check()


def test_scopes_follow_asyncio_tasks(make):
    a = make()

    async def holder(started: asyncio.Event, done: asyncio.Event) -> None:
        with a.scope():
            started.set()
            await done.wait()               # another task allocates meanwhile

    async def other(started: asyncio.Event, done: asyncio.Event) -> np.ndarray:
        await started.wait()
        x = a.alloc(64)
        x[:] = 42
        done.set()
        return x

    async def main() -> np.ndarray:
        started, done = asyncio.Event(), asyncio.Event()
        _, x = await asyncio.gather(holder(started, done), other(started, done))
        return x

    x = asyncio.run(main())
    assert a.owns(x)                        # the holder's scope did not free it
    others = churn(a, 64)
    assert (x == 42).all() and all((o == 0x77).all() for o in others)


# -- the steady state never reaches memblock ------------------------------------------------------

SIZES = [8, 64, 100, 4096, 8192, 8193, 65536, 100_000, 1 << 20, 3 << 20]


@pytest.mark.parametrize("lifetime", ["gc", "manual"])
def test_sizes_served_before_never_reach_memblock(make, lifetime):
    a = make(64 * SZ_1M, lifetime=lifetime)
    for n in SIZES:                          # warm up: each size served once
        v = a.alloc(n)
        if lifetime == "manual":
            a.free(v)
        del v
    with mock.patch.object(a.memblock, "alloc_range_nid",
                           side_effect=AssertionError("memblock reached")):
        for _ in range(3):
            for n in SIZES:
                v = a.alloc(n)
                assert v.nbytes == n and not v.any()
                v[:] = 0xAB
                if lifetime == "manual":
                    a.free(v)
                del v
            f = a.alloc_array(16, np.float32)
            if lifetime == "manual":
                a.free(f)
            del f
            with a.scope():
                a.alloc(64)
    a.check()


def test_alloc_array_fast_path_shapes_and_dtypes(make):
    a = make()
    for dt in (np.float32, np.float64, np.int32, np.uint8, np.complex128, "f8"):
        x = a.alloc_array(16, dt)
        assert x.shape == (16,) and x.dtype == np.dtype(dt) and not x.any()
        assert a.info(x).size == 16 * np.dtype(dt).itemsize
    y = a.alloc_array((3, 4), np.int16)
    assert y.shape == (3, 4) and y.flags.c_contiguous
    before = a.stats()
    with pytest.raises(TypeError, match="itemsize 0"):
        a.alloc_array(4, "V0")
    assert a.stats() == before


# -- size classes, retention, decay ------------------------------------------------------------

def test_large_classes_waste_under_a_quarter():
    last = 0
    for pages in range(1, 5000):
        c = large_class_pages(pages)
        assert c >= pages and (c - pages) * 4 < c or pages <= 4
        assert c >= last
        last = c
    assert [large_class_pages(p) for p in (5, 9, 10, 11, 17, 33)] == [5, 10, 10, 12, 20, 40]


def test_retained_bytes_are_bounded_and_given_back(make):
    a = make(32 * SZ_1M, retain=SZ_1M, decay=None)
    arrays = [a.alloc(200_000) for _ in range(10)]
    for x in arrays:
        x[:] = 1
    del arrays
    st = a.stats()
    assert 0 < st.retained_bytes <= SZ_1M
    free_before = st.free_bytes
    resident = a.release_unused()
    st = a.stats()
    assert st.retained_bytes == 0 and st.free_bytes > free_before and resident > 0
    assert st.resident_bytes < 2 * SZ_1M


def test_decay_gives_back_blocks_unused_for_a_while(make):
    a = make(decay=5.0)
    now = [1000.0]
    with mock.patch("arena.largecache.time.monotonic", side_effect=lambda: now[0]):
        x = a.alloc(100_000)
        del x
        a.alloc(64)
        assert a.stats().retained_bytes == 28 * PAGE
        now[0] += 10.0
        y = a.alloc(20_000)                 # any large-class operation ticks the decay
        del y
        a.alloc(64)
        st = a.stats()
        assert st.retained_bytes == 20_480   # the old block went back, the new one waits


def test_largecaches_refuse_nothing_on_a_miss():
    lc = LargeCaches([0], PAGE, limit=SZ_1M, decay=None)
    assert lc.take(lc.class_size(10_000), -1, False, 64) is None and lc.retained == 0


def test_fresh_two_node_arena_is_not_fragmented(make):
    a = make(nodes=2)
    st = a.stats()
    assert st.fragmentation == 0.0 and all(n.fragmentation == 0.0 for n in st.per_node)


def test_release_reports_what_was_resident(make):
    a = make(64 * SZ_1M)
    x = a.alloc(20 * SZ_1M)
    x[: 4 * SZ_1M] = 1                       # 4 MiB resident of 20
    del x
    got = a.release_unused()
    assert 4 * SZ_1M <= got < 5 * SZ_1M


def test_callers_are_tracked_only_when_asked(make):
    a = make()
    x = a.alloc(64)
    assert a.info(x).caller == UNTRACKED
    b = make(track_callers=True)
    y = b.alloc(64)
    assert b.info(y).caller.endswith("in test_callers_are_tracked_only_when_asked")
    assert b.leaks()[0].site == b.info(y).caller


def test_bad_arguments_change_nothing(make):
    a = make()
    with pytest.raises(ValueError):
        Arena(SZ_1M, lifetime="rc")
    with pytest.raises(TypeError):
        Arena(SZ_1M, decay="soon")
    with pytest.raises(ValueError):
        Arena(SZ_1M, decay=-1)
    with pytest.raises(ValueError):
        Arena(SZ_1M, retain=-5)
    keep = a.alloc(64)
    before = a.stats()
    for bad in (-1, 1.5, "x", 1 << 70):
        with pytest.raises((TypeError, ValueError)):
            a.alloc(bad)
    with pytest.raises(TypeError):
        a.free([1, 2])
    with pytest.raises(ForeignBufferError):
        a.free(np.zeros(64, np.uint8))
    assert a.stats() == before
    del keep


def test_dump_and_print_stats_refuse_a_bad_file(make):
    a = make()
    for call in (a.dump, a.print_stats):
        with pytest.raises(TypeError, match="file must be"):
            call(file=-1)


def test_tracked_callers_on_every_path(make):
    a = make(track_callers=True)
    here = test_tracked_callers_on_every_path.__code__.co_name
    got = [a.alloc(64), a.alloc(64), a.alloc_array(4, np.float32), a.alloc_array(4, np.float32),
           a.alloc_array((2, 2), np.int32), a.alloc(100_000), a.alloc(100, align=8192)]
    for v in got:
        assert a.info(v).caller.endswith(f"in {here}"), a.info(v).caller


def _fill_and_free_every_other(a: Arena, upto: int | None = None) -> tuple[list, int | None]:
    """Fill a slab=False arena with 64 B blocks, then free every other one until memblock
    refuses (or ``upto`` frees); returns the blocks and the index refused."""
    blocks = []
    while True:
        try:
            blocks.append(a.alloc(64))
        except MemoryError:
            break
    for k, v in enumerate(blocks[::2]):
        if upto is not None and k == upto:
            return blocks, None
        try:
            a.free(v)
        except ArenaMemoryError:
            return blocks, k
    return blocks, None


def test_free_refused_by_memblock_changes_nothing(make):
    lifetime = "manual"
    # Freeing every other 64 B block of a full slab=False arena splits memblock's reserved
    # region each time; when memblock cannot double its array (-ENOMEM), the free is refused
    # and nothing changes (before, free() returned and the bytes stayed reserved for ever).
    size = 256 * 1024
    _, k = _fill_and_free_every_other(make(size, slab=False, lifetime=lifetime))
    assert k is not None
    a = make(size, slab=False, lifetime=lifetime)     # the same run, up to the refusal
    blocks, none = _fill_and_free_every_other(a, upto=k)
    assert none is None
    refused = blocks[2 * k]
    before = (a.stats(), a.memblock.dump_all(log=False))
    with pytest.raises(ArenaMemoryError, match="ENOMEM"):
        a.free(refused)
    assert (a.stats(), a.memblock.dump_all(log=False)) == before
    with pytest.raises(ArenaMemoryError):    # again: the same refusal, not a double free
        a.free(refused)
    assert a.owns(refused)
    a.check()


def test_collection_refused_by_memblock_keeps_the_unit(make):
    # The garbage-collected lifetime gives a dropped record back at a collection; when memblock
    # refuses (-ENOMEM) the unit stays allocated, consistently, for a later collection.
    a = make(256 * 1024, slab=False)
    blocks, _ = _fill_and_free_every_other(a, upto=0)
    n = len(blocks)
    del blocks[::2]
    st = a.stats()                       # a full collection
    kept = st.live_allocations - len(blocks)
    assert kept < n - len(blocks)        # most dropped ones went back
    assert kept > 0                      # memblock refused some: they wait
    assert st.bytes_allocated == 64 * st.live_allocations
    a.check()
    blocks.clear()
    st = a.stats()          # memblock's array is full and cannot grow: frees wait, accounted
    assert st.bytes_allocated == 64 * st.live_allocations and st.held_bytes == 0
    assert a.memblock.reserved.cnt + 2 > a.memblock.reserved.max   # a free could split
    a.check()


# -- reliability (each reproduces a defect found by adversarial testing) -------------------------

def test_refused_close_keeps_every_slot_and_a_later_close_succeeds():
    a = Arena(SZ_1M, lifetime="manual")
    big = a.alloc(100_000)
    leaked_phys = [a.info(a.alloc(64)).phys for _ in range(8)]   # dropped without free
    before = a.stats()
    with pytest.raises(LiveViewsError):
        a.close()
    assert a.stats() == before and before.live_allocations == 9
    a.check()
    assert sorted(i.phys for i in a.live() if i.size == 64) == sorted(leaked_phys)
    del big
    a.reset()                               # frees the leaked ones too
    a.close()
    assert a.closed


def test_calls_from_the_outermost_frame_of_a_thread():
    import _thread

    for kw in ({}, {"track_callers": True}, {"debug": True}):
        a = Arena(SZ_1M, **kw)
        _thread.start_new_thread(a.alloc, (64,))   # alloc is the new thread's outermost frame
        for _ in range(500):
            if a.stats().num_allocations:
                break
            threading.Event().wait(0.01)
        assert a.stats().num_allocations == 1      # (it raised ValueError before)
        a.reset()
        a.close(defer=True)


def test_fork_while_a_thread_holds_one_arena_and_waits_for_another():
    # The at-fork handler used to take the locks one by one in creation order: with a thread
    # holding the newer arena's lock and waiting for the older one's, fork() deadlocked.
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, threading, time
        from arena import Arena
        older, newer = Arena(1 << 20), Arena(1 << 20)
        holding = threading.Event()
        def finalizer_like():
            with newer._lock:               # inside newer's free() ...
                holding.set()
                time.sleep(0.2)
                with older._lock:           # ... a finalizer frees into the older arena
                    pass
        t = threading.Thread(target=finalizer_like)
        t.start()
        holding.wait()
        pid = os.fork()
        if pid == 0:
            older.alloc(64); newer.alloc(64)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        t.join()
        print("forked", os.waitstatus_to_exitcode(status))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "forked 0", out.stderr


def test_stats_add_up_after_memblock_grows_its_array(make):
    a = make(SZ_1M, slab=False, lifetime="manual")
    keep = [a.alloc(64) for _ in range(300)]
    for v in keep[::2]:
        a.free(v)                           # 150 separate regions: the array doubled
    st = a.stats()
    assert st.memblock_bytes > 0
    assert st.capacity == st.free_bytes + st.bytes_allocated + st.memblock_bytes


@pytest.mark.parametrize("lifetime", ["manual", "gc"])
def test_an_array_nobody_holds_is_handed_out_again_only_with_its_shape(make, lifetime):
    a = make(lifetime=lifetime)
    rel = a.free if lifetime == "manual" else (lambda v: None)
    x = a.alloc_array((4, 4), np.float32)
    first = id(x)
    x[:] = 3
    rel(x)
    del x
    a.stats()                                 # (gc: a collection gives the unit back)
    y = a.alloc_array((4, 4), np.float32)
    assert id(y) == first and y.shape == (4, 4) and not y.any()    # the same object, zeroed
    rel(y)
    del y
    a.stats()
    z = a.alloc_array((2, 8), np.float32)                          # same bytes, other shape
    assert z.shape == (2, 8) and z.dtype == np.float32
    keep = z
    rel(z)
    del z
    a.stats()
    w = a.alloc_array((2, 8), np.float32)
    assert w is not keep                      # someone holds the old one: a new array
    assert w.shape == (2, 8)


@pytest.mark.parametrize("how", ["scope", "free"])
def test_handed_out_list_stays_bounded_when_frees_keep_the_free_list_full(how):
    """A loop that frees what it allocates never runs a free list dry, so no collection of
    the young runs from the allocation path: the free path bounds the list instead."""
    a = Arena("8 MiB")
    try:
        for _ in range(20_000):
            if how == "scope":
                with a.scope():
                    a.alloc(64)
            else:
                a.free(a.alloc(64))
        assert len(a._young) <= 2 * a._gc_units
        assert a._gc_units < 5_000
    finally:
        a.close()
