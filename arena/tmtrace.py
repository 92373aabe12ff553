"""The arena's memory in :mod:`tracemalloc` snapshots, in a domain of its own.

Kernel counterpart: none (the kernel's kmemleak plays a similar part). numpy registers each
array buffer it allocates with the C API's ``PyTraceMalloc_Track()`` in its own domain, so a
snapshot shows where array memory came from. An arena does the same through ``ctypes``: every
unit it hands out is registered in the domain :data:`TRACEMALLOC_DOMAIN` at its virtual
address, with the bytes it holds (its size class: a domain's total is the arena's
``bytes_allocated() + held_bytes``), and unregistered (``PyTraceMalloc_Untrack()``) when the
unit goes back to its class or page source — at a free in the manual lifetime, when its last
array dies in the garbage-collected one, at ``reset()``, at a scope's end and at ``close()``.

Cost when tracemalloc is not tracing: one test of a module flag per allocation. The flag
(:data:`tracing`) follows ``tracemalloc.start()`` and ``tracemalloc.stop()``, which this module
wraps when it is imported (the wrappers call the originals, then tell the arenas); it is also
read again from ``tracemalloc.is_tracing()`` on the arenas' slow paths, so tracing started by
``-X tracemalloc`` or through a reference to the original ``start`` taken earlier is noticed
too.

Tracebacks: tracemalloc records the Python stack at the registering call, which runs inside
the arena; ``tracemalloc.take_snapshot()`` (also wrapped) first gives back every unit no array
views any more (the garbage-collected lifetime notices dead arrays lazily) and then drops the
arena's own frames from the front of each of the domain's tracebacks, so that their first
frame is the line that allocated. Start tracemalloc with a few frames
(``tracemalloc.start(8)``): with one frame, that frame is the arena's.
"""

from __future__ import annotations

import ctypes
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

__all__ = ["TRACEMALLOC_DOMAIN", "tracing", "track", "untrack", "sync", "listen",
           "before_snapshot", "strip_arena_frames"]

#: The tracemalloc domain of arena memory (``tracemalloc.DomainFilter(True,
#: TRACEMALLOC_DOMAIN)`` selects it). The four ASCII bytes ``mblk``.
TRACEMALLOC_DOMAIN = 0x6D626C6B

#: True while tracemalloc traces (as last seen; see the module docstring).
tracing = False

_listeners: list[Callable[[bool], None]] = []
_before: list[Callable[[], None]] = []
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _c_functions() -> tuple[Any, Any]:
    """``PyTraceMalloc_Track`` and ``PyTraceMalloc_Untrack`` from the running interpreter, or
    ``(None, None)`` where the C API is not there (an interpreter other than CPython)."""
    api = getattr(ctypes, "pythonapi", None)
    try:
        tr = api.PyTraceMalloc_Track   # type: ignore[union-attr]
        un = api.PyTraceMalloc_Untrack   # type: ignore[union-attr]
    except AttributeError:
        return None, None
    tr.argtypes = [ctypes.c_uint, ctypes.c_size_t, ctypes.c_size_t]
    tr.restype = ctypes.c_int
    un.argtypes = [ctypes.c_uint, ctypes.c_size_t]
    un.restype = ctypes.c_int
    return tr, un


_TRACK, _UNTRACK = _c_functions()


def track(address: int, nbytes: int) -> None:
    """Register ``nbytes`` bytes at virtual ``address`` in :data:`TRACEMALLOC_DOMAIN` with
    the current Python stack (``PyTraceMalloc_Track()``; a registration at the same address
    is replaced). Does nothing when tracemalloc is not tracing."""
    if _TRACK is not None:
        _TRACK(TRACEMALLOC_DOMAIN, address, nbytes)


def untrack(address: int) -> None:
    """Unregister the bytes at virtual ``address`` (``PyTraceMalloc_Untrack()``; nothing
    happens if they were not registered)."""
    if _UNTRACK is not None:
        _UNTRACK(TRACEMALLOC_DOMAIN, address)


def listen(callback: Callable[[bool], None]) -> None:
    """Call ``callback(tracing)`` now and whenever :data:`tracing` changes."""
    _listeners.append(callback)
    callback(tracing)


def before_snapshot(callback: Callable[[], None]) -> None:
    """Call ``callback()`` at the start of every ``tracemalloc.take_snapshot()``."""
    _before.append(callback)


def _set(on: bool) -> None:
    global tracing
    if on != tracing:
        tracing = on
        for cb in _listeners:
            cb(on)


def sync() -> bool:
    """Read :data:`tracing` again from ``tracemalloc.is_tracing()`` (the slow paths call this);
    returns it."""
    _set(tracemalloc.is_tracing())
    return tracing


def strip_arena_frames(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    """``snapshot`` with the package's own frames dropped from the front of every traceback
    of :data:`TRACEMALLOC_DOMAIN` (a traceback made only of them is kept as it is)."""
    raw = getattr(snapshot.traces, "_traces", None)
    if not isinstance(raw, list):
        return snapshot
    out = []
    changed = False
    for trace in raw:
        if trace[0] == TRACEMALLOC_DOMAIN:
            frames = trace[2]
            k = 0
            while k < len(frames) and frames[k][0].startswith(_PACKAGE_DIR):
                k += 1
            if 0 < k < len(frames):
                trace = (trace[0], trace[1], frames[k:], *trace[3:])
                changed = True
        out.append(trace)
    return tracemalloc.Snapshot(out, snapshot.traceback_limit) if changed else snapshot


# The originals (a second import of this module, e.g. a reload, wraps them once only).
_orig_start = getattr(tracemalloc.start, "__wrapped__", tracemalloc.start)
_orig_stop = getattr(tracemalloc.stop, "__wrapped__", tracemalloc.stop)
_orig_take = getattr(tracemalloc.take_snapshot, "__wrapped__", tracemalloc.take_snapshot)


def _start(nframe: int = 1) -> None:
    _orig_start(nframe)
    sync()


def _stop() -> None:
    _orig_stop()
    sync()


def _take_snapshot() -> tracemalloc.Snapshot:
    for cb in _before:
        cb()
    return strip_arena_frames(_orig_take())


for _new, _old in ((_start, _orig_start), (_stop, _orig_stop), (_take_snapshot, _orig_take)):
    _new.__doc__ = _old.__doc__
    _new.__wrapped__ = _old   # type: ignore[attr-defined,union-attr]
tracemalloc.start = _start
tracemalloc.stop = _stop
tracemalloc.take_snapshot = _take_snapshot
sync()
