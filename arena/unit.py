"""The allocation unit: what every cache hands out and every free gives back.

Kernel counterpart: an object of a ``kmem_cache`` (a slot of a slab), a large block held by a
page-multiple size class, or a memblock reservation made for one request. The three kinds
share this record so that the arena has one way to hand a unit out, find it again from an
array, and give it back:

* fixed while the unit exists: ``phys`` (physical address of its first byte), ``boff`` (offset
  of that byte in the buffer the arena makes arrays from), ``csize`` (bytes it holds: the size
  class, or the reservation), ``nid`` (node of its memory), ``home`` (the free list it goes back
  to; ``None`` for a one-off reservation), ``cb`` (the weak-reference callback of the garbage
  collected lifetime, or ``None``), ``anchor`` (a uint8 array over the whole unit, made
  straight over the mapping's buffer the first time the unit is handed out: every array handed
  out is a view of it, and numpy makes it the ``base`` of every view derived from those, so
  its reference count tells whether any array of the unit is alive);
* per allocation: ``state`` (:data:`FREE`, :data:`LIVE`, :data:`HELD`), ``view`` (the array
  handed out, held strongly in the manual lifetime) or ``ref`` (a weak reference to it in the
  garbage-collected one), ``size`` (bytes asked for), ``seq``
  (allocation number), ``align`` (alignment asked for, ``None`` = the arena's default),
  ``node`` (node asked for, ``None`` = any),
  ``dirty`` (handed out before since its memory was last known to be zero), ``code``/``lasti``
  (the allocating frame, when callers are tracked), ``stack`` (the allocating stack, debug).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["FREE", "LIVE", "HELD", "Unit", "release_callbacks"]

#: On a free list (or a slab's freelist): nobody's.
FREE = 0
#: Handed out and not freed.
LIVE = 1
#: Freed by the program (``free``, ``reset``, a scope's end) while arrays of it are still
#: alive (garbage-collected lifetime only): reused once the last of them is gone.
HELD = 2


class Unit:
    """One unit of memory an arena hands out (see the module docstring for the fields)."""

    __slots__ = ("phys", "boff", "csize", "nid", "home", "cb", "anchor", "state", "view", "ref",
                 "size", "seq", "align", "node", "dirty", "code", "lasti", "stack")

    def __init__(self, phys: int, boff: int, csize: int, nid: int, home: list[Any] | None,
                 cb: Callable[[Any], None] | None) -> None:
        self.phys = phys
        self.boff = boff
        self.csize = csize
        self.nid = nid
        self.home = home
        self.cb = cb
        self.anchor: Any = None
        self.state = FREE
        self.view: Any = None
        self.ref: Any = None
        self.size = 0
        self.seq = -1
        self.align: int | None = None
        self.node: int | None = None
        self.dirty = False
        self.code: Any = None
        self.lasti = 0
        self.stack: tuple[tuple[str, int, str], ...] = ()


def release_callbacks(push: Callable[[Unit], None]) -> Callable[[Unit], Callable[[Any], None]]:
    """A factory of per-unit weak-reference callbacks that ``push`` their unit.

    The callback runs when the last array of a unit dies, at any moment and in any thread
    (also inside the arena's own code, when a collection runs there): it takes no lock and
    only appends the unit to a list (atomic in CPython); the arena gives the unit back under
    its lock later. It holds ``push`` (a list's ``append``), never the arena, so units do not
    keep their arena alive.
    """
    def make(unit: Unit) -> Callable[[Any], None]:
        def released(_ref: Any, unit: Unit = unit, push: Callable[[Unit], None] = push) -> None:
            push(unit)
        return released
    return make
