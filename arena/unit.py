"""The allocation unit: what every cache hands out and every free gives back.

Kernel counterpart: an object of a ``kmem_cache`` (a slot of a slab), a large block held by a
page-multiple size class, or a memblock reservation made for one request. The three kinds
share this record so that the arena has one way to hand a unit out, find it again from an
array, and give it back:

* fixed while the unit exists: ``phys`` (physical address of its first byte), ``boff`` (offset
  of that byte in the buffer the arena makes arrays from), ``csize`` (bytes it holds: the size
  class, or the reservation), ``nid`` (node of its memory), ``home`` (the free list it goes back
  to; ``None`` for a one-off reservation), ``anchor`` (a uint8 array over the whole unit, made
  straight over the mapping's buffer the first time the unit is handed out: every array handed
  out is a view of it, and numpy makes it the ``base`` of every view derived from those, so
  its reference count tells whether any array of the unit is alive);
* per allocation: ``state`` (:data:`FREE`, :data:`LIVE`, :data:`HELD`), ``view`` (the array
  handed out last; the arena keeps it, also after the unit went back, and hands the same
  object out again when nobody else holds it and the request matches ``vsize``, ``vdtype`` and ``vshape``,
  its bytes, dtype and shape (``None`` for 1-D) — the garbage-collected lifetime tells that nobody views a unit when
  ``view`` and ``anchor`` are referenced by the arena and ``view`` alone), ``size`` (bytes asked for), ``seq``
  (allocation number), ``align`` (alignment asked for, ``None`` = the arena's default),
  ``node`` (node asked for, ``None`` = any), ``dirty`` (handed out before since its memory was
  last known to be zero), ``code``/``lasti`` (the allocating frame, when callers are tracked),
  ``stack`` (the allocating stack, debug).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FREE", "LIVE", "HELD", "Unit"]

#: On a free list (or a slab's freelist): nobody's.
FREE = 0
#: Handed out and not freed.
LIVE = 1
#: Freed by the program (``free``, ``reset``, a scope's end) while arrays of it are still
#: alive (garbage-collected lifetime only): reused once the last of them is gone.
HELD = 2


class Unit:
    """One unit of memory an arena hands out (see the module docstring for the fields)."""

    __slots__ = ("phys", "boff", "csize", "nid", "home", "anchor", "state", "view", "vsize",
                 "vdtype", "vshape", "size", "seq", "align", "node", "dirty", "code", "lasti",
                 "stack")

    def __init__(self, phys: int, boff: int, csize: int, nid: int,
                 home: list[Any] | None) -> None:
        self.phys = phys
        self.boff = boff
        self.csize = csize
        self.nid = nid
        self.home = home
        self.anchor: Any = None
        self.state = FREE
        self.view: Any = None
        self.vsize = -1
        self.vdtype: Any = None
        self.vshape: tuple[int, ...] | None = None
        self.size = 0
        self.seq = -1
        self.align: int | None = None
        self.node: int | None = None
        self.dirty = False
        self.code: Any = None
        self.lasti = 0
        self.stack: tuple[tuple[str, int, str], ...] = ()
