"""``Arena.numpy_allocator()``: numpy's own data allocations (temporaries, ufunc outputs,
``np.concatenate``, ``np.zeros``, ``ndarray.resize``) served by the arena through numpy's
memory-handler API, with its budget, statistics and debug checks."""

from __future__ import annotations

import gc
import os
import sys
import threading

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from arena import Arena, ClosedError, CorruptionError, LiveViewsError, numpy_hook
from arena.numpy_hook import HANDLER_NAME, numpy_allocator, numpy_held

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:   # numpy 1.x
    from numpy.core.multiarray import get_handler_name  # type: ignore[no-redef]

pytest_plugins = ["pytester"]

MiB = 1 << 20


@pytest.fixture
def a():
    arena = Arena(64 * MiB)
    yield arena
    gc.collect()
    arena.close(defer=True)


@pytest.fixture
def dbg():
    arena = Arena(64 * MiB, debug=True)
    yield arena
    gc.collect()
    arena.close(defer=True)


def _state(arena: Arena) -> tuple:
    s = arena.stats()
    return (s.bytes_allocated, s.held_bytes, s.live_allocations, s.num_allocations,
            s.free_bytes, s.budget_remaining, tuple(arena.check()))


# -- routing -------------------------------------------------------------------------------


def test_handler_is_current_inside_the_block_only(a):
    before = get_handler_name()
    with a.numpy_allocator() as got:
        assert got is a
        assert get_handler_name() == HANDLER_NAME
        x = np.ones(100)
        assert get_handler_name(x) == HANDLER_NAME
    assert get_handler_name() == before
    assert get_handler_name(np.ones(100)) == before
    assert get_handler_name(x) == HANDLER_NAME   # an array remembers its handler


def test_module_level_convenience(a):
    with numpy_allocator(a) as got:
        assert got is a and get_handler_name() == HANDLER_NAME


def test_temporaries_ufuncs_and_concatenate_land_in_the_arena(a):
    x = np.arange(1000.0)
    y = np.arange(1000.0)
    s0 = a.stats()
    with a.numpy_allocator():
        t = x * 2 + y            # a temporary and the result
        u = np.sqrt(t)           # ufunc output
        c = np.concatenate([x, y, t])
        s1 = a.stats()
        assert numpy_held(a) == (3, 8000 * 2 + 24000)
    assert s0.live_allocations == 0
    assert s1.live_allocations == 3          # the temporary x * 2 is gone already
    assert s1.bytes_requested == 8000 * 2 + 24000
    assert s1.bytes_allocated >= s1.bytes_requested
    assert s1.num_allocations >= 4           # x * 2, + y, sqrt, concatenate (and the 0-d
    # arrays numpy makes of Python scalars)
    assert np.array_equal(c, np.concatenate([x, y, x * 2 + y]))
    assert np.allclose(u, np.sqrt(x * 2 + y))
    del t, u, c
    s2 = a.stats()
    assert s2.live_allocations == 0 and s2.bytes_allocated == 0
    assert numpy_held(a) == (0, 0)


def test_addresses_are_inside_the_arena(a):
    with a.numpy_allocator():
        x = np.ones(5000)
    phys = a.physmem.phys_of(x)
    assert a.physmem.contains(phys, x.nbytes)
    info = a.live()
    assert [i.phys for i in info] == [phys]
    assert x.ctypes.data % 16 == 0


def test_zeros_come_zeroed_from_reused_dirty_memory():
    arena = Arena(16 * MiB, lifetime="manual")
    for _ in range(3):   # leave dirty units of the classes np.zeros will take
        vs = [arena.alloc(n, zero=False) for n in (800, 8000, 80000)]
        for v in vs:
            v.fill(0xFF)
        for v in vs:
            arena.free(v)
    with arena.numpy_allocator():
        zs = [np.zeros(n // 8) for n in (800, 8000, 80000)]
    assert all(z.any() == 0 for z in zs)
    assert arena.stats().live_allocations == 3
    del zs, vs, v
    arena.close()


def test_empty_is_poisoned_in_debug_mode(dbg):
    with dbg.numpy_allocator():
        e = np.empty(64, np.uint8)
        z = np.zeros(64, np.uint8)
    assert (e == 0x5A).all()     # debug mode's mark of memory nobody initialised
    assert (z == 0).all()


def test_resize_keeps_contents(a):
    with a.numpy_allocator():
        r = np.arange(1000.0)
        r.resize(5000, refcheck=False)          # realloc: grows
        assert numpy_held(a) == (1, 5000 * 8)
        assert np.array_equal(r[:1000], np.arange(1000.0)) and not r[1000:].any()
        r.resize(10, refcheck=False)            # realloc: shrinks
        assert numpy_held(a) == (1, 80)
        assert np.array_equal(r, np.arange(10.0))
    assert a.stats().live_allocations == 1
    del r
    assert a.stats().live_allocations == 0


def test_realloc_refused_keeps_the_old_block():
    arena = Arena(16 * MiB, budget=64 * 1024)
    with arena.numpy_allocator():
        r = np.arange(1000.0)
        state = _state(arena)
        with pytest.raises(MemoryError):
            r.resize(100_000, refcheck=False)
        assert _state(arena) == state
        assert np.array_equal(r, np.arange(1000.0))
    del r
    arena.close()


def test_callbacks_free_null_and_overflowing_calloc(a):
    with a.numpy_allocator():
        pass
    ctx = a._serial + 1
    before = _state(a)
    numpy_hook._free_cb(ctx, None, 0)                    # free(NULL): nothing
    assert numpy_hook._calloc_cb(ctx, 1 << 40, 1 << 40) is None   # overflows: NULL
    assert numpy_hook._malloc_cb(ctx, 1 << 63) is None
    assert _state(a) == before


# -- lifetime ------------------------------------------------------------------------------


def test_array_outlives_the_block_and_is_freed_later(a):
    with a.numpy_allocator():
        x = np.full(10_000, 3.0)
    assert a.stats().live_allocations == 1
    y = x + 1                    # outside the block: numpy's default allocator
    assert get_handler_name(y) != HANDLER_NAME
    assert a.stats().live_allocations == 1
    assert (x == 3).all()
    del x
    s = a.stats()
    assert s.live_allocations == 0 and s.bytes_allocated == 0 and s.held_bytes == 0


def test_close_refused_while_numpy_holds_memory_then_allowed():
    arena = Arena(16 * MiB)
    with arena.numpy_allocator():
        x = np.ones(1000)
    state = _state(arena)
    with pytest.raises(LiveViewsError, match="numpy still holds 1 allocation"):
        arena.close()
    assert not arena.closed and _state(arena) == state
    assert (x == 1).all()
    del x
    arena.close()
    assert arena.closed


def test_with_block_exit_retires_the_arena_and_numpy_frees_later():
    with Arena(16 * MiB) as arena, arena.numpy_allocator():
        x = np.ones(1000)
    assert arena.closed
    x += 1                       # the memory stays mapped while numpy holds it
    assert (x == 2).all()
    del x                        # freed into the closed arena: nothing to do, no error
    gc.collect()


def test_closed_arena_cannot_enter():
    arena = Arena(4 * MiB)
    arena.close()
    with pytest.raises(ClosedError):
        arena.numpy_allocator().__enter__()


def test_the_arena_stays_alive_while_numpy_holds_its_memory():
    import weakref
    arena = Arena(16 * MiB)
    ref = weakref.ref(arena)
    with arena.numpy_allocator():
        x = np.ones(1000)
    del arena
    gc.collect()
    assert ref() is not None and ref().stats().live_allocations == 1
    del x
    gc.collect()
    assert ref() is None


def test_gc_lifetime_does_not_collect_what_numpy_holds(a):
    assert a.lifetime == "gc"
    with a.numpy_allocator():
        x = np.full(8, 7.0)
    for _ in range(10_000):      # many young and full collections of the same size class
        a.alloc(64)
    a.stats()
    assert (x == 7).all() and a.stats().live_allocations == 1


def test_reset_and_scope_leave_numpy_memory_alone():
    arena = Arena(16 * MiB, lifetime="manual")
    with arena.scope(), arena.numpy_allocator():
        x = np.full(8, 7.0)
        v = arena.alloc(64)
    assert arena.stats().live_allocations == 1   # v went with the scope, x stays
    del v
    arena.reset()
    assert arena.stats().live_allocations == 1
    for _ in range(100):         # a reuse of x's unit would overwrite it
        arena.alloc(64).fill(0)
    assert (x == 7).all()
    del x
    arena.reset()
    assert arena.stats().live_allocations == 0
    arena.close()


def test_leak_report_names_the_line_that_made_numpy_allocate():
    arena = Arena(16 * MiB, track_callers=True)
    with arena.numpy_allocator():
        kept = np.ones(1000)                          # the leaking line
    line = sys._getframe().f_lineno - 1
    (site,) = arena.leaks()
    assert site.site.endswith(f"test_numpy_allocator.py:{line} in "
                              "test_leak_report_names_the_line_that_made_numpy_allocate")
    assert site.nbytes == 8000
    del kept
    assert arena.leaks() == []
    arena.close()


# -- budget ---------------------------------------------------------------------------------


def test_budget_refusal_is_a_memory_error_and_changes_nothing():
    arena = Arena(16 * MiB, budget=100_000)
    with arena.numpy_allocator():
        small = np.ones(1000)
        state = _state(arena)
        with pytest.raises(MemoryError):
            np.ones(200_000)
        with pytest.raises(MemoryError):
            small + np.ones(20_000)   # the second operand fits, the result does not
        assert _state(arena) == state
    del small
    arena.close()


def test_out_of_memory_is_a_memory_error():
    arena = Arena(1 * MiB)
    with arena.numpy_allocator():
        state = _state(arena)
        with pytest.raises(MemoryError):
            np.empty(4 * MiB, np.uint8)
        assert _state(arena) == state
    arena.close()


# -- debug checks -----------------------------------------------------------------------------


def _overrun(dbg: Arena) -> tuple[np.ndarray, np.ndarray, int]:
    """A ufunc writing 10 bytes past the end of an array numpy made in the arena."""
    with dbg.numpy_allocator():
        before = np.zeros(100, np.uint8)
        x = np.zeros(100, np.uint8); line = sys._getframe().f_lineno   # noqa: E702
        after = np.zeros(100, np.uint8)
        y = as_strided(x, shape=(110,), strides=(1,))
        np.add(y, 1, out=y)
    return x, before + after, line


def test_as_strided_ufunc_overrun_caught_by_check(dbg):
    x, others, line = _overrun(dbg)
    with pytest.raises(CorruptionError) as err:
        dbg.check()
    (report,) = err.value.reports
    assert report.startswith("overrun of the 100-byte allocation")
    assert "10 byte(s) past its end were written" in report
    assert f"test_numpy_allocator.py:{line} in _overrun" in report
    assert dbg.check(repair=True) == [report]
    assert dbg.check() == []


def test_as_strided_ufunc_overrun_reported_when_numpy_frees(dbg):
    x, others, line = _overrun(dbg)
    del x                        # numpy frees it: the broken red zone is found there
    reports = dbg.check(repair=True)
    assert len(reports) == 1
    assert "10 byte(s) past its end were written" in reports[0]
    assert f"test_numpy_allocator.py:{line} in _overrun" in reports[0]
    assert "found when numpy freed the array's memory" in reports[0]
    assert dbg.check() == []
    del others
    assert dbg.stats().live_allocations == 0


def test_check_inside_the_block_does_not_reenter_the_arena(dbg):
    with dbg.numpy_allocator():
        x = np.zeros(100, np.uint8)
        as_strided(x, shape=(104,), strides=(1,))[100:] = 9
        state = dbg.stats()
        # The check's own numpy work (finding the broken bytes) is served by malloc.
        reports = dbg.check(repair=True)
        assert len(reports) == 1 and "4 byte(s) past its end" in reports[0]
        assert dbg.stats().live_allocations == state.live_allocations
    del x


def test_write_after_numpy_freed_is_caught(dbg):
    with dbg.numpy_allocator():
        x = np.ones(100, np.uint8)
    phys = dbg.physmem.phys_of(x)
    del x
    dbg.physmem.view(phys, 100)[5] = 1   # a stale pointer writes into the freed block
    with pytest.raises(CorruptionError, match="write after free to the 100-byte"):
        dbg.check()
    dbg.check(repair=True)


# -- threads, re-entrancy, fork ---------------------------------------------------------------


def test_threads_route_their_own_allocations(a):
    results: dict[int, tuple[str, np.ndarray]] = {}
    plain: list[str] = []

    def inside(i: int) -> None:
        with a.numpy_allocator():
            v = np.full(1000, float(i)) * 2
            results[i] = (get_handler_name(), v)

    def outside() -> None:
        plain.append(get_handler_name(np.ones(10)))

    with a.numpy_allocator():   # this thread's block does not reach the other threads
        threads = [threading.Thread(target=inside, args=(i,)) for i in range(4)]
        threads.append(threading.Thread(target=outside))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert plain == ["default_allocator"]
    assert sorted(results) == [0, 1, 2, 3]
    for i, (name, v) in results.items():
        assert name == HANDLER_NAME and get_handler_name(v) == HANDLER_NAME
        assert (v == 2 * i).all()
    assert a.stats().live_allocations == 4
    del name, v
    results.clear()              # freed from this thread, made in others
    assert a.stats().live_allocations == 0
    a.check()


def test_arrays_freed_by_another_thread(a):
    with a.numpy_allocator():
        arrays = [np.ones(n) for n in (10, 1000, 100_000)]
    box = [arrays]
    del arrays

    def drop() -> None:
        box.clear()
    t = threading.Thread(target=drop)
    t.start()
    t.join()
    assert a.stats().live_allocations == 0
    a.check()


class _Cycle:
    """A reference cycle whose finalizer drops a numpy array of the arena."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr
        self.me = self

    def __del__(self) -> None:
        self.arr = None


def test_gc_finalizers_free_into_the_same_arena():
    arena = Arena(16 * MiB, lifetime="manual")
    old = gc.get_threshold()
    gc.set_threshold(5)          # collections (and finalizers) inside the arena's own calls
    try:
        with arena.numpy_allocator():
            for i in range(300):
                _Cycle(np.full(16 + i % 7, float(i)))
                t = np.ones(100) + i
        del t
    finally:
        gc.set_threshold(*old)
    gc.collect()
    assert arena.stats().live_allocations == 0
    arena.check()
    arena.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_frees_and_allocates():
    arena = Arena(16 * MiB)
    with arena.numpy_allocator():
        x = np.full(1000, 5.0)
    pid = os.fork()
    if pid == 0:   # the child: free what the parent made, allocate anew, check
        code = 1
        try:
            with arena.numpy_allocator():
                y = x + 1
            ok = (y == 6).all() and arena.stats().live_allocations == 2
            del x
            ok = ok and arena.stats().live_allocations == 1
            arena.check()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (x == 5).all() and arena.stats().live_allocations == 1
    del x
    arena.close()


def test_nested_blocks_inner_arena_wins(a):
    b = Arena(16 * MiB)
    with a.numpy_allocator():
        x = np.ones(100)
        with b.numpy_allocator():
            y = np.ones(100)
        z = np.ones(100)
    assert a.stats().live_allocations == 2 and b.stats().live_allocations == 1
    del x, y, z
    b.close()


# -- the pytest plugin ------------------------------------------------------------------------

PLUGIN_CASES = '''
import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

KEPT = []


@pytest.mark.arena(numpy=True)
def test_clean(arena):
    x = np.arange(1000.0) * 2 + 1
    assert arena.stats().live_allocations == 1
    assert x[3] == 7


@pytest.mark.arena(numpy=True)
def test_ufunc_overrun(arena):
    x = np.zeros(100, np.uint8)
    y = as_strided(x, shape=(108,), strides=(1,))
    np.add(y, 1, out=y)


@pytest.mark.arena(numpy=True)
def test_numpy_leak(arena):
    KEPT.append(np.ones(10))


def test_without_numpy(arena):
    np.ones(1000) + 1
    assert arena.stats().num_allocations == 0
'''


def test_plugin_numpy_marker(pytester: pytest.Pytester) -> None:
    from tests.test_arena_plugin import QUIET, _plugin_args

    pytester.makepyfile(test_np_cases=PLUGIN_CASES)
    result = pytester.runpytest(*_plugin_args(), *QUIET, "-rf")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "FAILED test_np_cases.py::test_ufunc_overrun - Failed: arena: memory errors*",
        "FAILED test_np_cases.py::test_numpy_leak - Failed: arena: memory errors*",
    ])
    assert "8 byte(s) past its end were written" in out
    assert "test_np_cases.py:17 in test_ufunc_overrun" in out
    assert "leak: 1 allocation(s) still live (80 bytes)" in out
    assert "test_np_cases.py:24 in test_numpy_leak" in out
    assert get_handler_name() != HANDLER_NAME   # the block was left


def test_many_numpy_allocations_keep_the_arena_bookkeeping_bounded(a):
    """Units numpy frees go back at once; the garbage-collected lifetime's list of units handed
    out must not grow with every reuse of them."""
    x = np.ones(100)
    with a.numpy_allocator():
        for _ in range(20_000):
            x + 1
    assert len(a._young) <= 2 * 4096
    assert a.stats().live_allocations == 0


def test_allocations_from_inside_the_arena_are_served_by_malloc(a):
    """numpy allocating while this thread is inside the arena's own code (its lock held) must
    not enter the arena mid-operation: the C library serves it, and frees and reallocs it."""
    with a.numpy_allocator():
        with a._lock:
            x = np.ones(1000)
            x.resize(4000, refcheck=False)
            assert get_handler_name(x) == HANDLER_NAME
        assert a.stats().live_allocations == 0
        assert numpy_held(a) == (0, 0)
        assert (x[:1000] == 1).all() and not x[1000:].any()
        hook = numpy_hook._HOOKS[a._serial]
        assert len(hook.foreign) == 1
        del x
        assert not hook.foreign
    a.check()


def test_asyncio_tasks_have_their_own_handler(a):
    import asyncio

    async def inside() -> str:
        with a.numpy_allocator():
            await asyncio.sleep(0)
            v = np.ones(100)
            await asyncio.sleep(0)
            return get_handler_name(v)

    async def outside() -> str:
        await asyncio.sleep(0)
        v = np.ones(100)
        await asyncio.sleep(0)
        return get_handler_name(v)

    async def main() -> list[str]:
        return list(await asyncio.gather(inside(), outside(), inside()))

    assert asyncio.run(main()) == [HANDLER_NAME, "default_allocator", HANDLER_NAME]
    assert a.stats().live_allocations == 0


def test_close_collects_cycles_that_hold_numpy_memory():
    arena = Arena(16 * MiB)
    with arena.numpy_allocator():
        _Cycle(np.ones(1000))    # garbage, kept only by its own cycle
    assert numpy_held(arena)[0] == 1
    arena.close()                # the cycle is collected first: nothing to refuse
    assert arena.closed


def test_one_block_object_entered_twice_restores_each_handler(a):
    b = Arena(16 * MiB)
    block = a.numpy_allocator()
    with block:
        with b.numpy_allocator():
            with block:
                x = np.ones(10)
            y = np.ones(10)
        z = np.ones(10)
    assert get_handler_name() == "default_allocator"
    assert a.stats().live_allocations == 2 and b.stats().live_allocations == 1
    del x, y, z
    b.close()


def test_a_handler_numpy_does_not_take_is_refused_and_undone(a, monkeypatch):
    api = numpy_hook._api()
    monkeypatch.setattr(api, "get_handler", lambda: None)
    with pytest.raises(numpy_hook.ArenaError, match="did not take"):
        a.numpy_allocator().__enter__()
    assert get_handler_name() == "default_allocator"
    assert get_handler_name(np.ones(10)) == "default_allocator"


def test_an_error_after_the_arena_allocated_gives_the_allocation_back(a, monkeypatch):
    """If the hook fails after the arena handed out memory, numpy gets NULL (MemoryError) and
    the allocation goes back: nothing leaks."""
    def broken(frame):
        raise RuntimeError("boom")
    arena = Arena(16 * MiB, track_callers=True)
    monkeypatch.setattr(numpy_hook, "_user_frame", broken)
    with arena.numpy_allocator():
        with pytest.raises(MemoryError):
            np.ones(1000)
    assert arena.stats().live_allocations == 0 and numpy_held(arena) == (0, 0)
    arena.close()


def test_arrays_a_module_makes_while_imported_inside_the_block_stay_out(a, tmp_path,
                                                                          monkeypatch):
    """A module imported inside the block keeps its module-level arrays as long as it lives:
    they are served by malloc, so they neither pin the arena nor show as its leaks."""
    (tmp_path / "np_module_with_tables.py").write_text(
        "import numpy as np\nTABLE = np.arange(1000.0) * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with a.numpy_allocator():
        import np_module_with_tables
        after_import = np.ones(10)
    assert get_handler_name(np_module_with_tables.TABLE) == HANDLER_NAME
    assert np_module_with_tables.TABLE[3] == 6
    assert numpy_held(a) == (1, 80)               # after_import only
    del after_import, sys.modules["np_module_with_tables"], np_module_with_tables
    a.close()
