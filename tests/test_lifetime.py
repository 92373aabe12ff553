"""Lifetime: closing with live views, using anything after close, dropping the arena while
views are alive. Clear errors, never a crash.

* ``close()`` while numpy views are alive raises :class:`arena.errors.LiveViewsError` and
  closes nothing (the object stays fully usable); once the views are gone it closes.
* After close every public method of :class:`arena.Arena` and
  :class:`arena.physmem.PhysicalMemory` raises :class:`arena.errors.ClosedError` (a
  ``ValueError``); memblock and the page allocator refuse to hand out memory of a closed
  PhysicalMemory with ``ClosedError`` and change nothing.
* A view keeps its memory mapped: dropping the arena (or leaving its ``with`` block) while a
  view is alive leaves the view readable and writable; the mapping goes when the last view
  goes. Proven in subprocesses, so a crash would show as a signal rather than kill the run.
* The one test that must provoke a fatal signal (touching the address of an allocation after
  the memory is really unmapped: SIGSEGV) runs in a subprocess and checks the signal — it
  proves that ``close()`` unmaps, so nothing keeps dead memory around.
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from arena.arena import Arena
from arena.buddy import BuddyAllocator
from arena.errors import ClosedError, LiveViewsError
from arena.memblock import Memblock
from arena.physmem import PhysicalMemory
from tests.test_bad_input_walk import NO_ARGS, TABLE, Ctx

PHYS_BASE = 1 << 30


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)


# -- close with live views -------------------------------------------------------------------

def test_arena_close_with_live_views_refuses_and_stays_usable():
    a = Arena(1 << 20, nodes=2)
    v = a.alloc(1000)
    v[:] = 9
    with pytest.raises(LiveViewsError, match="still alive"):
        a.close()
    assert not a.closed
    w = a.alloc(100)          # fully usable
    a.free(w)
    assert a.check() == [] and a.stats().live_allocations == 1
    assert (v == 9).all()
    derived = v.reshape(10, 100)[::2]  # arrays derived from a view count too
    del v
    with pytest.raises(LiveViewsError):
        a.close()
    del derived, w
    a.close()
    assert a.closed
    a.close()                 # idempotent


def test_physmem_close_with_live_views_refuses_and_stays_usable():
    pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    v = pm.view(PHYS_BASE, 4096, np.uint32)
    v[:] = 5
    with pytest.raises(LiveViewsError):
        pm.close()
    assert not pm.closed and pm.read(PHYS_BASE, 4) == b"\x05\x00\x00\x00"
    del v
    pm.close()
    assert pm.closed


def test_physmem_exit_with_an_exception_keeps_the_exception():
    """Leaving ``with`` by an exception while a view is alive: the block's exception comes
    out, not a LiveViewsError hiding it."""
    with pytest.raises(KeyError, match="original"):
        with PhysicalMemory(1 << 20, phys_base=PHYS_BASE) as pm:
            v = pm.view(PHYS_BASE, 16)
            raise KeyError("original")
    del v
    gc.collect()


def test_arena_with_block_left_with_live_views_retires_the_arena():
    with Arena(1 << 20) as a:
        v = a.alloc(4096)
        v[:] = 3
    assert a.closed
    with pytest.raises(ClosedError):
        a.alloc(1)
    v[:] = 4                  # the view still works: its memory stays mapped while it lives
    assert (v == 4).all()
    del v
    gc.collect()


# -- everything after close -----------------------------------------------------------------

def _valid_kwargs(ctx: Ctx, cls: type, name: str) -> dict:
    return {n: p.valid(ctx) for n, p in TABLE[cls].get(name, {}).items()}


def _call(obj, name: str, kwargs: dict):
    import inspect

    sig = inspect.signature(getattr(type(obj), name))
    args, kw = [], {}
    for pname, prm in sig.parameters.items():
        if pname in kwargs:
            if prm.kind is inspect.Parameter.KEYWORD_ONLY:
                kw[pname] = kwargs[pname]
            else:
                args.append(kwargs[pname])
    out = getattr(obj, name)(*args, **kw)
    if hasattr(out, "__next__"):
        list(out)
    if hasattr(out, "__enter__"):
        with out:
            pass


@pytest.fixture
def ctx():
    c = Ctx()
    yield c
    c.close()


def test_every_arena_method_after_close_raises_closed_error(ctx):
    a = ctx.a
    a.close(defer=True)       # views are alive: retire it anyway
    assert a.closed
    names = (set(TABLE[Arena]) | NO_ARGS[Arena]) - {"__init__", "close"}
    wrong = []
    for name in sorted(names):
        try:
            _call(a, name, _valid_kwargs(ctx, Arena, name))
        except ClosedError:
            continue
        except Exception as exc:  # noqa: BLE001
            wrong.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{name}: no error")
    assert not wrong, "after close:\n  " + "\n  ".join(wrong)
    a.close()                 # idempotent
    assert isinstance(repr(a), str)


def test_every_physmem_method_after_close_raises_closed_error(ctx):
    pm = ctx.other_pm
    ctx.foreign = None
    gc.collect()
    pm.close()
    names = (set(TABLE[PhysicalMemory]) | NO_ARGS[PhysicalMemory]) - {"__init__", "close"}
    wrong = []
    for name in sorted(names):
        kwargs = _valid_kwargs(ctx, PhysicalMemory, name)
        if name == "phys_of":
            kwargs = {"array": np.zeros(8, np.uint8)}
        try:
            _call(pm, name, kwargs)
        except ClosedError:
            continue
        except Exception as exc:  # noqa: BLE001
            wrong.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{name}: no error")
    assert not wrong, "after close:\n  " + "\n  ".join(wrong)
    assert pm.size == 256 << 10 and pm.closed  # properties still answer
    with pytest.raises(ClosedError):
        with pm:
            pass


def test_memblock_over_a_closed_physmem_refuses_to_allocate():
    pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    mb = Memblock(pm)
    mb.add(PHYS_BASE, 1 << 20)
    pm.close()
    before = tuple(mb.reserved.regions)
    for call in (lambda: mb.alloc(100, 64), lambda: mb.alloc_raw(100, 64),
                 lambda: mb.alloc_try_nid(100, 64, 0, 0, -1)):
        with pytest.raises(ClosedError):
            call()
    assert tuple(mb.reserved.regions) == before
    assert mb.phys_alloc(100, 64) != 0  # bookkeeping without memory still works
    mb.check()


def _closed_buddy() -> tuple[BuddyAllocator, int]:
    pm = PhysicalMemory(1 << 20, phys_base=PHYS_BASE)
    mb = Memblock(pm)
    mb.add(PHYS_BASE, 1 << 20)
    buddy = BuddyAllocator(pm, max_order=4)
    mb.free_all(buddy)
    phys = buddy.alloc_pages_phys(0)
    pm.close()
    return buddy, phys


def test_buddy_over_a_closed_physmem_refuses_views_and_still_frees_by_address():
    buddy, phys = _closed_buddy()
    before = buddy.dump(limit=1 << 20)
    with pytest.raises(ClosedError):
        buddy.free_pages(np.zeros(4096, np.uint8), 0)
    assert buddy.dump(limit=1 << 20) == before
    buddy.free_pages(phys, 0)   # by address: pure bookkeeping, still works
    buddy.check()


def test_buddy_alloc_over_a_closed_physmem_keeps_its_pages():
    buddy, _ = _closed_buddy()
    before = buddy.dump(limit=1 << 20)
    with pytest.raises(ClosedError):
        buddy.alloc_pages(1)
    assert buddy.dump(limit=1 << 20) == before


# -- dropping the arena while views are alive (subprocesses) -------------------------------

def test_dropping_the_arena_keeps_views_valid():
    r = run_python("""
        import gc
        from arena.arena import Arena
        a = Arena(1 << 20, nodes=2)
        views = [a.alloc(5000, node=i % 2) for i in range(10)]
        for i, v in enumerate(views):
            v[:] = i
        del a
        gc.collect()
        for i, v in enumerate(views):
            assert (v == i).all()
            v[:] = 255 - i
        assert sum(int(v[0]) for v in views) == sum(255 - i for i in range(10))
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_interpreter_exit_with_live_arenas_and_views_is_clean():
    r = run_python("""
        import numpy as np
        from arena.arena import Arena
        from arena.physmem import PhysicalMemory
        keep = []
        for debug in (False, True):
            a = Arena(1 << 20, debug=debug)
            keep.append((a, a.alloc(100), a.alloc_array((3, 4), np.float32)))
        pm = PhysicalMemory(1 << 20, phys_base=1 << 30)
        keep.append(pm.view(1 << 30, 64))
        keep.append(Arena(1 << 20).alloc(10))   # its arena is gone already
        print("exiting")
    """)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "Fatal" not in r.stderr


def test_touching_an_allocation_after_close_is_a_segfault_in_a_subprocess():
    """The only way to reach freed-and-unmapped memory is a raw address (ctypes): after
    ``close()`` the mapping is really gone, so that read dies with SIGSEGV. While a view is
    alive the same address stays readable (close is refused)."""
    r = run_python("""
        import ctypes, sys
        from arena.arena import Arena
        from arena.errors import LiveViewsError
        a = Arena(1 << 20)
        v = a.alloc(64)
        v[:] = 42
        addr = a.info(v).address
        try:
            a.close()
        except LiveViewsError:
            pass
        assert ctypes.string_at(addr, 1) == b"*"   # still mapped while the view lives
        del v
        a.close()
        print("closed", flush=True)
        ctypes.string_at(addr, 1)                   # unmapped: SIGSEGV
        print("still alive", flush=True)
    """)
    assert "closed" in r.stdout and "still alive" not in r.stdout
    assert r.returncode in (-signal.SIGSEGV, -signal.SIGBUS), (r.returncode, r.stderr)
