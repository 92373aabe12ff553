"""Every open arena of the process, for what spans them all: fork safety and tracemalloc
snapshots.

Kernel counterpart: none. An :class:`arena.Arena` registers itself when made
(:func:`register`, which also numbers it); the registry holds it weakly. Across ``fork()``
every arena's lock is held, so the child never inherits a lock some other thread held in the
middle of an operation; the child renews each lock. Before a tracemalloc snapshot every open
arena gives back what no array views any more (:func:`collect_all`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arena.arena import Arena

__all__ = ["register", "open_arenas", "collect_all"]

_ARENAS: weakref.WeakSet[Arena] = weakref.WeakSet()
_LOCK = threading.Lock()   # guards _ARENAS; held across fork() too
_FORK_HELD: list[Arena] = []
_serials = itertools.count()


def register(a: Arena) -> int:
    """Add ``a`` to the registry; returns its serial number (the order arenas were made)."""
    with _LOCK:
        serial = next(_serials)
        _ARENAS.add(a)
    return serial


def open_arenas() -> list[Arena]:
    """The arenas alive now, in no particular order."""
    with _LOCK:
        return list(_ARENAS)


def collect_all() -> None:
    """Before a tracemalloc snapshot: every open arena gives back what no array views."""
    for a in open_arenas():
        with a._lock:
            if not a._closed:
                a._collect_full()


def _before_fork() -> None:
    """Take every arena's lock, all or none at a time: a thread may hold one arena's lock and
    wait for another's (a finalizer run under the first frees into the second), so taking them
    one by one in any fixed order could deadlock against it; backing off cannot."""
    _LOCK.acquire()
    arenas = sorted(_ARENAS, key=lambda a: a._serial)
    delay = 1e-5
    while True:
        held: list[Arena] = []
        for a in arenas:
            if not a._lock.acquire(blocking=False):
                break
            held.append(a)
        else:
            break
        for a in reversed(held):
            a._lock.release()
        time.sleep(delay)
        delay = min(delay * 2, 1e-2)
    _FORK_HELD[:] = held


def _after_fork_parent() -> None:
    for a in reversed(_FORK_HELD):
        a._lock.release()
    _FORK_HELD.clear()
    _LOCK.release()


def _after_fork_child() -> None:
    global _LOCK
    for a in _FORK_HELD:
        a._lock = threading.RLock()
    _FORK_HELD.clear()
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
