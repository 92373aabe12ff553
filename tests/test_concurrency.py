"""Concurrency: threads sharing one arena, and forked children using their copy.

:class:`arena.Arena` holds one re-entrant lock around every state change and renews it in a
forked child (``os.register_at_fork``); the mapping is ``MAP_PRIVATE``, so a child's writes
stay in its copy. These tests prove, on real threads and real ``fork()``:

* several threads allocating, writing a unique pattern, checking and freeing on one arena
  (plain and debug mode, with and without a hand-over to the page allocator in the middle)
  never get overlapping blocks, never lose a write, leave the bookkeeping exact, and finish
  (a deadlock fails the test by timeout instead of hanging it);
* a forked child can use its copy (read the parent's data, allocate, free, check) while the
  parent goes on, and neither sees the other's writes;
* forking while another thread is inside the allocator does not deadlock the child.

Children always leave through ``os._exit`` and report by exit status.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np
import pytest

from arena import ArenaMemoryError
from arena.arena import Arena
from arena.soak import pattern

THREADS = 4
ROUNDS = 300
DEADLINE = 60.0  # seconds before a thread or a child counts as deadlocked


def _worker(a: Arena, tid: int, errors: list[BaseException], handover_at: int | None,
            live_log: list[list[tuple[int, int]]]) -> None:
    rng = random.Random(tid)
    mine: dict[int, tuple[np.ndarray, bytes]] = {}
    serial = tid << 20
    try:
        for i in range(ROUNDS):
            if handover_at is not None and i == handover_at:
                a.handover(max_order=6)
            op = rng.random()
            if op < 0.55 or not mine:
                try:
                    v = a.alloc(rng.choice((1, 24, 100, 1000, 5000)),
                                align=rng.choice((None, 16, 4096)))
                except ArenaMemoryError:
                    continue
                pat = pattern(serial, v.nbytes)
                serial += 1
                v[:] = np.frombuffer(pat, np.uint8)
                mine[a.info(v).phys] = (v, pat)
            elif op < 0.9:
                key = rng.choice(list(mine))
                v, pat = mine.pop(key)
                assert v.tobytes() == pat, f"thread {tid}: allocation {key:#x} was overwritten"
                a.free(v)
            elif op < 0.95:
                a.check()
                live_log.append([(i.phys, i.size) for i in a.live()])
            else:
                with a.scope():  # frees only what this thread allocates inside
                    tmp = a.alloc(64)
                    tmp[:] = 0xEE
            for key, (v, pat) in list(mine.items())[:8]:
                assert v.tobytes() == pat, f"thread {tid}: allocation {key:#x} was overwritten"
        for v, pat in mine.values():
            assert v.tobytes() == pat, f"thread {tid}: an allocation was overwritten"
            a.free(v)
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(exc)


def _run_threads(a: Arena, handover_at: int | None = None) -> list[list[tuple[int, int]]]:
    errors: list[BaseException] = []
    live_log: list[list[tuple[int, int]]] = []
    threads = [threading.Thread(target=_worker, daemon=True,
                                args=(a, t, errors, handover_at if t == 0 else None, live_log))
               for t in range(THREADS)]
    for t in threads:
        t.start()
    end = time.monotonic() + DEADLINE
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    if errors:
        raise errors[0]
    return live_log


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("handover", [False, True], ids=["memblock", "handover"])
def test_threads_share_one_arena(debug, handover):
    with Arena(4 << 20, nodes=2, debug=debug, quarantine=0) as a:
        live_log = _run_threads(a, ROUNDS // 3 if handover else None)
        assert live_log, "no snapshot was taken"
        for snapshot in live_log:  # every snapshot taken under the lock is overlap-free
            spans = sorted(snapshot)
            for (p0, n0), (p1, _) in zip(spans, spans[1:], strict=False):
                assert p0 + n0 <= p1, f"live allocations overlap at {p0:#x}/{p1:#x}"
        assert a.check() == []
        st = a.stats()
        assert st.live_allocations == 0 and st.bytes_allocated == 0 and st.bytes_requested == 0
        assert a.live() == []
        if not handover:
            assert st.free_bytes + a.memblock.reserved.total_size == a.capacity
            a.release()   # empty slabs go back: nothing is left reserved but grown arrays
            assert a.stats().slab_bytes == 0
            assert a.memblock.reserved.cnt <= 2


def _wait(pid: int, timeout: float = DEADLINE) -> int:
    """Exit status of child ``pid``; kills it and fails if it does not finish in time."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} deadlocked (killed after {timeout} s)")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_uses_its_copy_while_the_parent_goes_on():
    with Arena(1 << 20, nodes=2) as a:
        kept = []
        for i in range(20):
            v = a.alloc(1000 + i)
            v[:] = np.frombuffer(pattern(i, v.nbytes), np.uint8)
            kept.append(v)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own copy-on-write copy of the arena
            code = 1
            try:
                os.close(w)
                os.read(r, 1)  # wait until the parent has changed its side
                for i, v in enumerate(kept):
                    assert v.tobytes() == pattern(i, v.nbytes), "child lost the parent's data"
                for v in kept[::2]:
                    v[:] = 0xC1     # writes stay in the child's copy
                    a.free(v)
                mine = [a.alloc(3000) for _ in range(30)]
                for j, m in enumerate(mine):
                    m[:] = j
                a.check()
                assert a.stats().live_allocations == 20 - 10 + 30
                code = 0
            finally:
                os._exit(code)
        os.close(r)
        # The parent goes on: new allocations and frees, then lets the child run.
        extra = [a.alloc(2000) for _ in range(10)]
        for e in extra:
            e[:] = 0x77
        a.free(kept[1])
        os.write(w, b"x")
        os.close(w)
        more = [a.alloc(500) for _ in range(10)]
        assert _wait(pid) == 0
        for i, v in enumerate(kept):
            if i != 1:
                assert v.tobytes() == pattern(i, v.nbytes), "the child's writes reached the parent"
        assert all((e == 0x77).all() for e in extra)
        a.check()
        assert a.stats().live_allocations == 20 - 1 + 10 + 10
        del kept, extra, more, v, e


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_another_thread_is_inside_the_allocator():
    """The arena's lock is held across fork() and renewed in the child: a child forked while
    a thread hammers the allocator can still allocate (no inherited held lock)."""
    with Arena(1 << 20) as a:
        stop = threading.Event()
        errors: list[BaseException] = []

        def hammer() -> None:
            try:
                while not stop.is_set():
                    v = a.alloc(128)
                    v[:] = 1
                    a.free(v)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=hammer, daemon=True)
        t.start()
        try:
            for _ in range(10):
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        v = a.alloc(256)
                        v[:] = 2
                        a.check()
                        a.free(v)
                        code = 0
                    finally:
                        os._exit(code)
                assert _wait(pid, 20.0) == 0
        finally:
            stop.set()
            t.join(DEADLINE)
        assert not t.is_alive() and not errors
        a.check()
