"""Memory-correctness mode of :class:`arena.Arena`: red zones, poisoning, quarantine, caller
tracking and leak warnings. Each check catches a planted bug and stays quiet on clean code."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from arena.arena import POISON_FREE, POISON_INUSE, RED_ACTIVE, REDZONE, Arena
from arena.errors import CorruptionError
from tests.arenas import arena_factory

SZ_4K = 4096
SZ_1M = 1 << 20


@pytest.fixture
def make():
    yield from arena_factory(4 * SZ_1M, debug=True)


def poke(a: Arena, phys: int, data: bytes) -> None:
    """Write behind the allocator's back, as a buggy program would."""
    v = a.physmem.view(phys, len(data))
    v[:] = np.frombuffer(data, np.uint8)


def snapshot(a: Arena) -> tuple:
    return a.stats(), list(a.memblock.reserved.regions), a.live()


def alloc_here(a: Arena, n: int) -> np.ndarray:
    return a.alloc(n)


# -- the patterns ---------------------------------------------------------------------------------

def test_patterns(make):
    a = make()
    v = a.alloc(100)
    info = a.info(v)
    assert not v.any()
    left = info.phys - REDZONE
    assert a.physmem.read(left, REDZONE) == bytes([RED_ACTIVE]) * REDZONE
    assert a.physmem.read(info.phys + 100, REDZONE) == bytes([RED_ACTIVE]) * REDZONE
    raw = a.alloc(50, zero=False)
    assert (raw == POISON_INUSE).all()
    a.free(v)
    assert (v == POISON_FREE).all()              # the stale view shows the poison
    a.free(raw)
    assert a.check() == []


def test_data_stays_aligned(make):
    a = make()
    for align in (1, 8, 64, 4096, 1 << 16):
        v = a.alloc(10, align=align)
        assert a.info(v).phys % align == 0 and v.__array_interface__["data"][0] % align == 0
        a.free(v)


# -- overruns -------------------------------------------------------------------------------------

@pytest.mark.parametrize("past", [1, 5, REDZONE])
def test_overrun_caught_on_free(make, past):
    a = make()
    v = alloc_here(a, 100)
    phys = a.info(v).phys
    poke(a, phys + 100, b"\x00" * past)
    before = snapshot(a)
    with pytest.raises(CorruptionError) as ei:
        a.free(v)
    msg = str(ei.value)
    assert f"{past} byte(s) past its end" in msg
    assert "100-byte allocation" in msg and f"{phys:#x}" in msg
    assert "in alloc_here" in msg and "in test_overrun_caught_on_free" in msg  # the stack
    assert len(ei.value.reports) == 1
    assert snapshot(a) == before                 # nothing freed
    assert a.owns(v)
    reports = a.check(repair=True)
    assert len(reports) == 1 and "past its end" in reports[0]
    assert a.check() == []
    a.free(v)


def test_underrun_caught_by_check(make):
    a = make()
    v = a.alloc(64)
    poke(a, a.info(v).phys - 1, b"\x01")
    with pytest.raises(CorruptionError, match=r"1 byte\(s\) before its start"):
        a.check()
    with pytest.raises(CorruptionError):
        a.reset()
    assert a.owns(v)
    a.check(repair=True)
    a.reset()
    assert not a.owns(v)


def test_overrun_in_granule_padding_caught(make):
    # 100 bytes round up to a larger block: the padding is red zone too.
    a = make()
    v = a.alloc(100)
    poke(a, a.info(v).phys + 100 + REDZONE + 3, b"\x00")
    assert a.check(repair=True)
    a.free(v)


def test_scope_exit_checks(make):
    a = make()
    with pytest.raises(CorruptionError), a.scope():
        v = a.alloc(8)
        poke(a, a.info(v).phys + 8, b"!")
    assert a.owns(v)
    a.check(repair=True)
    a.free(v)


# -- writes after free ----------------------------------------------------------------------------

def test_write_after_free_caught_by_check(make):
    a = make()
    v = alloc_here(a, 200)
    a.free(v)
    v[10:13] = 1                                  # the bug: the stale view is still writable
    with pytest.raises(CorruptionError) as ei:
        a.check()
    msg = str(ei.value)
    assert "write after free" in msg and "offsets 10 .. 12" in msg
    assert "allocated at" in msg and "freed at" in msg and "in alloc_here" in msg
    assert a.check(repair=True) and a.check() == []


def test_write_after_free_caught_on_quarantine_release(make):
    a = make(quarantine=1024)
    v = a.alloc(500)
    a.free(v)
    v[0] = 0                                      # write after free
    w = a.alloc(600)
    before = snapshot(a)
    with pytest.raises(CorruptionError, match="write after free"):
        a.free(w)                                 # pushes v's block out of the quarantine
    assert snapshot(a) == before and a.owns(w)
    a.check(repair=True)
    a.free(w)
    assert a.check() == []


def test_quarantine_delays_reuse(make):
    a = make()
    v = a.alloc(100)
    phys = a.info(v).phys
    a.free(v)
    assert a.stats().quarantined_bytes > 0
    w = a.alloc(100)
    assert a.info(w).phys != phys                  # not handed out again at once
    a.free(w)
    plain = make(debug=False, lifetime="manual")   # reuse at free(), whatever still views it
    x = plain.alloc(100)
    p = plain.info(x).phys
    plain.free(x)
    y = plain.alloc(100)
    assert plain.info(y).phys == p
    plain.free(y)


def test_quarantine_budget_releases_oldest(make):
    a = make(quarantine=2048, lifetime="manual")  # leaving the quarantine = reused at once
    views = [a.alloc(1000) for _ in range(4)]
    phys = [a.info(v).phys for v in views]
    held = a.info(views[0]).reserved              # 1000 bytes + red zones, rounded up
    assert 1000 + 2 * REDZONE <= held <= 2048 < 2 * held
    for v in views:
        a.free(v)
    st = a.stats()
    assert st.quarantined_bytes == held           # only the newest fits the quarantine
    assert [a.memblock.is_reserved(p) for p in phys] == [False, False, False, True]
    assert st.free_bytes + a.memblock.reserved.total_size == a.capacity
    assert a.check() == []


def test_double_free_in_debug(make):
    a = make()
    v = a.alloc(10)
    a.free(v)
    with pytest.raises(ValueError, match="already freed"):
        a.free(v)


# -- callers and leaks ----------------------------------------------------------------------------

def test_stack_recorded(make):
    a = make()
    v = alloc_here(a, 1)
    info = a.info(v)
    assert info.caller.endswith("in alloc_here")
    assert any(s.endswith("in test_stack_recorded") for s in info.stack)
    a.free(v)
    plain = make(debug=False, track_callers=True)   # one frame without debug
    w = alloc_here(plain, 1)
    assert len(plain.info(w).stack) == 1
    plain.free(w)


def test_leak_warned_on_close():
    a = Arena(SZ_1M, debug=True, lifetime="manual")  # never freed = leaked, arrays dropped or not
    alloc_here(a, 300)
    alloc_here(a, 200)
    with pytest.warns(ResourceWarning, match=r"2 x, 500 bytes, allocated at .*in alloc_here"):
        a.close()


def test_no_warning_without_debug_or_leaks():

    for debug, leak in ((False, True), (True, False)):
        a = Arena(SZ_1M, debug=debug)
        v = a.alloc(10)
        if not leak:
            a.free(v)
        del v
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a.close()
        assert a.closed
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a.close()


def test_clean_code_stays_quiet(make):
    a = make(nodes=2, quarantine=8192)
    rng = np.random.default_rng(1)
    live = []
    for i in range(400):
        if live and rng.random() < 0.5:
            v = live.pop(int(rng.integers(len(live))))
            v[:] = 0x77                              # using the whole allocation is fine
            a.free(v)
        else:
            live.append(a.alloc(int(rng.integers(0, 500)), align=1 << int(rng.integers(0, 9)),
                                node=int(rng.integers(2)), zero=bool(rng.integers(2))))
        if i % 50 == 0:
            assert a.check() == []
    with a.scope():
        for n in range(1, 20):
            a.alloc(n)[:] = 1
    for v in live:
        a.free(v)
    assert a.check() == [] and a.leaks() == []
