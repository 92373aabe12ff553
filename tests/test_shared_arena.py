"""One arena shared by many processes: handles, pools under fork and spawn, cross-process
frees, the garbage-collected reuse rule across processes, dead processes, bad handles."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from arena import Arena
from arena.errors import BadHandleError, BudgetExceededError, DoubleFreeError, ForeignBufferError
from arena.shared import SharedArena, arena_of, attach
from tests import shared_workers as w

MiB = 1 << 20


@pytest.fixture()
def sa() -> Iterator[SharedArena]:
    a = SharedArena(8 * MiB, processes=6)
    yield a
    a.close()


def _addr(x: np.ndarray) -> int:
    return int(x.__array_interface__["data"][0])


def _wait(pred: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


# -- in one process -----------------------------------------------------------------------------

def test_arena_shared_true_makes_a_shared_arena() -> None:
    with Arena(4 * MiB, shared=True, processes=2) as a:
        assert isinstance(a, SharedArena)
        assert a.local.capacity == 4 * MiB


def test_pickle_sends_a_handle_and_views_the_same_bytes(sa: SharedArena) -> None:
    x = sa.alloc_array((64, 64), np.float32)
    x[...] = np.arange(64 * 64).reshape(64, 64)
    for v in (x, x[3:9, ::3], x[::-2, 5], x.T, x[:0]):
        raw = pickle.dumps(v)
        assert len(raw) < 400          # a handle, not 16 KiB of floats
        y = pickle.loads(raw)
        assert y.dtype == v.dtype and y.shape == v.shape
        np.testing.assert_array_equal(y, v)
        if v.size:
            assert np.shares_memory(y, x)


def test_plain_arrays_still_pickle_by_value(sa: SharedArena) -> None:
    x = np.arange(1000.0)
    y = pickle.loads(pickle.dumps(x))
    np.testing.assert_array_equal(x, y)
    assert not np.shares_memory(x, y)
    with Arena(1 * MiB) as plain:
        z = plain.alloc(100)
        assert len(pickle.dumps(z)) > 100   # an arena that is not shared: by value


def test_arena_of(sa: SharedArena) -> None:
    x = sa.alloc(100)
    assert arena_of(x) is sa and arena_of(x[10:]) is sa
    assert arena_of(np.zeros(3)) is None


def test_bad_arguments_make_no_file() -> None:
    for kw in ({"processes": 0}, {"processes": 17}, {"leases": 0}, {"align": 3},
               {"lifetime": "x"}):
        with pytest.raises((TypeError, ValueError)):
            SharedArena(MiB, **kw)
    with pytest.raises(TypeError):
        Arena(MiB, shared=1)


# -- bad handles ------------------------------------------------------------------------------

def _meta_state(sa: SharedArena) -> bytes:
    return bytes(sa._meta.lease.tobytes()) + bytes(sa._meta.proc.tobytes())


def test_a_read_only_view_arrives_read_only(sa: SharedArena) -> None:
    x = sa.alloc_array(16, np.int64)
    x[:] = np.arange(16)
    ro = x[4:8]
    ro.flags.writeable = False
    got = pickle.loads(pickle.dumps(ro))
    assert not got.flags.writeable and got.tolist() == [4, 5, 6, 7]
    back = pickle.loads(pickle.dumps(x))
    assert back.flags.writeable
    back[0] = 99
    assert x[0] == 99
    del got, back


def test_bad_handles_are_refused_and_change_nothing(sa: SharedArena) -> None:
    x = sa.alloc(4096)
    h = sa.handle(x)
    before = _meta_state(sa)
    other = SharedArena(MiB, processes=1)
    try:
        with pytest.raises(BadHandleError, match="not of"):
            other.open(h)                               # wrong arena
    finally:
        other.close()
    forged = [h._replace(offset=h.offset + 64),          # not an allocation
              h._replace(offset=1 << 40),                 # outside the arena
              h._replace(tag=h.tag ^ 1),                  # stale tag
              h._replace(size=h.size * 2),                # size does not match
              h._replace(shape=(h.size + 1,)),            # view outside the block
              h._replace(view_offset=-1),
              h._replace(dtype="O"),                      # objects
              h._replace(owner=99),
              h._replace(offset="12"),                    # malformed fields
              h._replace(tag=None),
              h._replace(offset=0),
              h._replace(offset=-h.offset),
              h._replace(strides=(1, 1)),
              h._replace(dtype="no such dtype"),
              h._replace(writeable="yes")]
    for bad in forged:
        with pytest.raises(BadHandleError):
            sa.open(bad)
    assert _meta_state(sa) == before
    with pytest.raises(TypeError):
        sa.open(("not", "a", "handle"))  # type: ignore[arg-type]
    with pytest.raises(ForeignBufferError):
        sa.handle(np.zeros(4))
    assert sa.check() == []


def test_a_freed_block_is_refused(sa: SharedArena) -> None:
    with mp.get_context("fork").Pool(1) as pool:
        x = sa.alloc(4096)
        h = sa.handle(x)                                    # in flight
        assert pool.apply(w.free_remote, (x,)) != sa.slot   # the worker frees it remotely
        with pytest.raises(BadHandleError, match="freed"):
            sa.open(h)
        sa.alloc(64)                                        # the owner takes the free in
        with pytest.raises(BadHandleError, match="freed"):
            sa.open(h)
        with pytest.raises(DoubleFreeError):
            sa.handle(x)                                    # no new handle of a freed block
        assert sa.check() == []


# -- pools ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_exchanges_arrays_without_copies(sa: SharedArena, method: str) -> None:
    xs = [sa.alloc_array(10000, np.float64) for _ in range(4)]
    for i, x in enumerate(xs):
        x[:] = i
    with mp.get_context(method).Pool(2) as pool:
        out = pool.map(w.double, xs)
        for i, (x, y) in enumerate(zip(xs, out, strict=True)):
            assert np.shares_memory(x, y)           # the worker wrote the parent's bytes
            assert float(x[0]) == 2 * i
        fresh = pool.map(w.fresh, [(x, 7) for x in xs])
        for f in fresh:
            assert arena_of(f) is sa and float(f.sum()) == 7 * 10000
        slots = {s for _, s in pool.map(w.info, xs)}
        assert sa.slot not in slots
        pool.close()
        pool.join()
    assert sa.check() == []
    del out, fresh, f, y   # the loops' variables view them too
    sa.reclaim()
    st = sa.shared_stats()
    assert st.processes == 1 and st.dead_windows == 0 and st.shared_blocks == 0


def test_spawn_pool_attaches_with_a_token(sa: SharedArena) -> None:
    """The descriptor passed by multiprocessing (initializer argument), not /proc."""
    x = sa.alloc(1000)
    x[:] = 3
    with mp.get_context("spawn").Pool(1, initializer=w.attach_noting,
                                      initargs=(sa.token(),)) as pool:
        assert pool.apply(w.via_token, (x,)) == ([True], 3000)


def test_attach_is_idempotent(sa: SharedArena) -> None:
    assert attach(sa.token()) is sa
    assert attach(pickle.loads(pickle.dumps(sa.token()))) is sa


def test_writer_in_one_process_is_seen_by_a_reader_in_another(sa: SharedArena) -> None:
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=w.write_then_read, args=(b,))
    p.start()
    x = sa.alloc(64)
    a.send(x)
    assert a.recv() == "written"
    assert bytes(x[:4]) == b"\x11" * 4
    x[:4] = 0x22
    a.send("go")
    assert a.recv() == b"\x22" * 4
    p.join()


def test_check_is_consistent_from_several_processes(sa: SharedArena) -> None:
    x = sa.alloc(4096)
    with mp.get_context("fork").Pool(2) as pool:
        assert pool.map(w.check_from_child, [x] * 4) == [[]] * 4
    assert sa.check() == []


# -- frees and reuse across processes ---------------------------------------------------------

def test_cross_process_free_is_reclaimed_by_the_owner() -> None:
    with SharedArena(8 * MiB, processes=4, lifetime="manual") as sa:
        x = sa.alloc(4096)
        addr = _addr(x)
        live = sa.stats().live_allocations
        with mp.get_context("fork").Pool(1) as pool:
            pool.apply(w.free_remote, (x,))
        sa.reclaim()
        assert sa._local is not None   # (sa.local would take the delayed frees in)
        assert sa._local.stats().live_allocations == live   # not yet: the owner did not allocate
        y = sa.alloc(4096)            # the owner takes in its delayed-free list here
        assert sa.stats().live_allocations == live           # x went back, y came
        assert _addr(y) == addr       # manual lifetime: the freed block is reused at once
        assert sa.check() == []


def test_gc_block_is_reused_only_when_no_process_views_it(sa: SharedArena) -> None:
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=w.hold, args=(b,))
    p.start()
    x = sa.alloc(8192)
    x[:] = 0xAB
    addr = _addr(x)
    a.send(x)
    assert a.recv() == 0xAB
    del x                                # the parent's last view: the child still holds one
    seen = {_addr(sa.alloc(8192)) for _ in range(20)}
    assert addr not in seen
    a.send("drop")
    assert a.recv() == "dropped"
    _wait(lambda: int(sa._meta.lease["off"].astype(bool).sum()) == 0)
    seen = {_addr(sa.alloc(8192)) for _ in range(20)}
    assert addr in seen                  # nobody views it now: reused
    a.send("exit")
    p.join()


# -- faults -----------------------------------------------------------------------------------

def test_killed_worker_is_reclaimed_and_nothing_of_the_others_is_lost(sa: SharedArena) -> None:
    ctx = mp.get_context("fork")
    mine = sa.alloc_array(100000, np.uint8)
    mine[:] = np.arange(100000) % 251
    expect = mine.tobytes()
    a, b = ctx.Pipe()
    victim = ctx.Process(target=w.alloc_forever, args=(sa, b))
    victim.start()
    theirs = a.recv()                    # a block of the victim's, viewed here
    assert a.recv() == "allocating"
    with mp.get_context("fork").Pool(1) as pool:   # another live worker holds a parent block
        assert pool.apply(w.checksum, (mine,)) == sum(expect)
        os.kill(victim.pid, signal.SIGKILL)      # mid-allocation
        victim.join()
        gone = sa.reclaim()
        assert len(gone) == 1
        assert mine.tobytes() == expect
        assert np.all(theirs == 0x77)          # the dead process's block, still viewed, intact
        assert pool.apply(w.checksum, (mine,)) == sum(expect)
        assert sa.check() == []
        states = {p.slot: p.state for p in sa.processes()}
        assert states[gone[0]] == "dead"         # kept while we view its block
        del theirs
        assert {p.slot: p.state for p in sa.processes()}[gone[0]] == "free"
    assert sa.check() == []


def test_a_torn_record_is_detected_and_repaired(sa: SharedArena) -> None:
    """A process killed in the middle of writing a shared record leaves it odd; the lock is
    not left taken; the next reclaim repairs the record."""
    sa.alloc(64)
    p = mp.get_context("fork").Process(target=w.crash_in_claim, args=(sa,))
    p.start()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    problems = sa._meta.check()          # the raw check, before any repair
    assert any("half written" in s for s in problems)
    sa.reclaim()
    assert sa.check() == []
    y = sa.alloc(64)                     # the arena still works
    assert arena_of(y) is sa


# -- budgets, executors, queues ---------------------------------------------------------------

def test_total_budget_spans_processes() -> None:
    with SharedArena(4 * MiB, processes=3, total_budget=MiB) as sa:
        x = sa.alloc(600 * 1024)
        with mp.get_context("fork").Pool(1) as pool:
            assert pool.apply(w.alloc_bytes, ((x, 300 * 1024),)) == "ok"
            assert pool.apply(w.alloc_bytes, ((x, 600 * 1024),)) == "BudgetExceededError"
        with pytest.raises(BudgetExceededError):
            sa.alloc(600 * 1024)


def test_per_process_budget() -> None:
    with SharedArena(4 * MiB, processes=3, budget=MiB) as sa:
        x = sa.alloc(900 * 1024)
        with mp.get_context("fork").Pool(1) as pool:     # the worker has a budget of its own
            assert pool.apply(w.alloc_bytes, ((x, 900 * 1024),)) == "ok"
        with pytest.raises(BudgetExceededError):
            sa.alloc(900 * 1024)


def test_process_pool_executor_and_queue(sa: SharedArena) -> None:
    from concurrent.futures import ProcessPoolExecutor
    x = sa.alloc_array(1000, np.int32)
    x[:] = 5
    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=ctx) as ex:
        y = ex.submit(w.double, x).result()
    assert np.shares_memory(x, y) and int(x[0]) == 10
    q = ctx.Queue()
    q.put(x[10:20])
    z = q.get(timeout=5)
    assert np.shares_memory(x, z)


def test_close_with_live_arrays_keeps_the_window() -> None:
    sa = SharedArena(MiB, processes=2)
    x = sa.alloc(1000)
    x[:] = 9
    slot = sa.slot
    sa.close()
    assert sa.closed
    assert int(x[0]) == 9                 # the window was not given back under x
    assert sa._meta.processes()[slot].state == "live"
    y = pickle.loads(pickle.dumps(x))     # no arena any more: a copy
    assert not np.shares_memory(x, y) and int(y[0]) == 9
    sa.close()                            # idempotent


def test_close_without_arrays_gives_the_window_back() -> None:
    sa = SharedArena(MiB, processes=2)
    x = sa.alloc(1000)
    slot = sa.slot
    del x
    meta = sa._meta
    sa.close()
    assert meta.processes()[slot].state == "free"


def test_many_arrays_both_ways_leave_the_metadata_consistent(sa: SharedArena) -> None:
    batches = [[sa.alloc_array(n % 700 + 1, np.int32) for n in range(b, b + 30)]
               for b in range(0, 240, 30)]
    for batch in batches:
        for x in batch:
            x[...] = 5
    with mp.get_context("fork").Pool(2) as pool:
        results = pool.map(w.churn, batches)
        assert all(int(y[0]) == 6 for ys in results for y in ys)
        assert sa.check() == []
        pool.close()
        pool.join()
    sa.reclaim()
    assert sa.check() == []
    del results, batches, x, batch      # (the generator's variables died with it)
    sa.alloc(64)                         # the owner takes its delayed frees in
    st = sa.shared_stats()
    assert st.shared_blocks == 0 and st.dead_windows == 0
