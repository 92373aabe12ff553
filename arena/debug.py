"""Debug mode's memory checks: red zones, poison and the quarantine of freed blocks.

Kernel counterpart: SLUB debugging (``slub_debug=FZP``): a live object's red zones hold
:data:`RED_ACTIVE`, freed memory :data:`POISON_FREE`, an object nobody initialised
:data:`POISON_INUSE`. In debug mode every allocation is a :class:`Record`, a memblock (or
buddy) block of its own laid out as ``[left red zone][user bytes][right red zone + padding]``;
a freed block is poisoned and waits in the quarantine before it goes back, so that a write
after free is found when the block leaves it (or at :meth:`arena.Arena.check`). The red zones
are ``redzone`` bytes each (:func:`debug_args`); :mod:`arena.redzone` finds broken ones and
names the allocation that wrote them, :mod:`arena.guard` places blocks against guard pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from arena._args import bool_arg, int_arg
from arena.errors import CorruptionError
from arena.tracking import Frame, fmt_stack, site
from arena.unit import Unit

__all__ = ["REDZONE", "REDZONE_MIN", "GUARD_SIDES", "debug_args", "RED_ACTIVE", "POISON_FREE", "POISON_INUSE", "Record", "bad_bytes",
           "redzone_report", "poison_report", "corruption"]

#: Default red zone on each side of an allocation in debug mode (bytes).
REDZONE = 16
#: Smallest red zone ``Arena(redzone=...)`` accepts (bytes): one machine word, so that a
#: word written past the end always lands on a canary.
REDZONE_MIN = 8
#: Where guard mode puts the guard page: after the allocation (overruns fault) or before it
#: (underruns fault).
GUARD_SIDES = ("end", "start")
#: SLUB's ``SLUB_RED_ACTIVE``: red zone of a live object.
RED_ACTIVE = 0xCC
#: SLUB's ``POISON_FREE``: freed memory.
POISON_FREE = 0x6B
#: SLUB's ``POISON_INUSE``: an allocation nobody has initialised (``zero=False``).
POISON_INUSE = 0x5A


def debug_args(debug: Any, redzone: Any, guard: Any,
               page_size: int) -> tuple[bool, str | None, int]:
    """Check the debug arguments of :class:`arena.Arena`: ``debug`` (a bool or ``"guard"``),
    ``redzone`` (``None`` = :data:`REDZONE`; an int in :data:`REDZONE_MIN` .. ``page_size``
    bytes) and ``guard`` (one of :data:`GUARD_SIDES`). Returns ``(debug on, guard side or
    None, red zone bytes)``. TypeError/ValueError naming the bad value."""
    if not isinstance(guard, str):
        raise TypeError(f"guard must be 'end' or 'start', not {type(guard).__name__} "
                        f"({guard!r})")
    if guard not in GUARD_SIDES:
        raise ValueError(f"guard must be 'end' or 'start', not {guard!r}")
    side: str | None = None
    if isinstance(debug, str):
        if debug != "guard":
            raise TypeError(f"debug must be a bool or 'guard', not str ({debug!r})")
        side = guard
        on = True
    else:
        on = bool_arg("debug", debug)
    size = REDZONE if redzone is None else int_arg("redzone", redzone)
    if not REDZONE_MIN <= size <= page_size:
        raise ValueError(f"redzone must be {REDZONE_MIN} .. {page_size} bytes (a page), "
                         f"not {size}")
    return on, side, size


class Record(Unit):
    """A block reserved for one allocation (debug mode, ``slab=False``, and requests no size
    class serves): a :class:`arena.unit.Unit` with no free list. Adds ``block`` (first byte
    of the block; ``phys - block`` is the left red zone), ``order`` (buddy order, -1 for a
    memblock block), ``node`` (node asked for, ``None`` = any) and ``freed_at`` (the freeing
    stack, debug), ``quarantined`` (waiting in the quarantine), ``lo`` and ``hi`` (the
    bytes ``[lo, hi)`` that may be read: the whole block, less a guard page) and ``guard``
    (``(start, end)`` of the guard pages in guard mode, else ``None``)."""

    __slots__ = ("block", "order", "freed_at", "quarantined", "lo", "hi", "guard")

    def __init__(self, phys: int, boff: int, block: int, reserved: int, order: int, nid: int,
                 node: int | None) -> None:
        super().__init__(phys, boff, reserved, nid, None)
        self.block = block
        self.order = order
        self.node = node   # a Unit field, set here for the record's whole life
        self.freed_at: tuple[Frame, ...] = ()
        self.quarantined = False
        self.lo = block
        self.hi = block + reserved
        self.guard: tuple[int, int] | None = None

    def describe(self) -> str:
        return (f"the {self.size}-byte allocation at phys {self.phys:#x} (align "
                f"{self.align}, node {self.nid}) allocated at "
                f"{site(self.stack[0] if self.stack else None)}")

    def __repr__(self) -> str:
        return f"<Record [{self.block:#x}+{self.csize:#x}] {self.size} B at {self.phys:#x}>"


def bad_bytes(read: Callable[[int, int], bytes], phys: int, size: int,
              byte: int) -> tuple[int, int, int] | None:
    """``(first, last, value at first)`` offsets of the bytes of ``[phys, phys + size)`` that
    differ from ``byte``, or ``None``. O(size)."""
    if size <= 0:
        return None
    data = read(phys, size)
    if data == bytes((byte,)) * size:
        return None
    arr = np.frombuffer(data, np.uint8)
    bad = np.flatnonzero(arr != byte)
    return int(bad[0]), int(bad[-1]), int(arr[bad[0]])


def redzone_report(read: Callable[[int, int], bytes], rec: Record) -> str | None:
    """Report of a live allocation's overwritten red zones, or ``None``."""
    problems = []
    left = bad_bytes(read, rec.lo, rec.phys - rec.lo, RED_ACTIVE)
    if left is not None:
        before = rec.phys - rec.lo - left[0]
        problems.append(f"{before} byte(s) before its start were written (first found: "
                        f"{left[2]:#04x} at -{before}, red zone {RED_ACTIVE:#04x})")
    end = rec.phys + rec.size
    right = bad_bytes(read, end, rec.hi - end, RED_ACTIVE)
    if right is not None:
        problems.append(f"{right[1] + 1} byte(s) past its end were written (first found: "
                        f"{right[2]:#04x} at +{right[0]}, red zone {RED_ACTIVE:#04x})")
    if not problems:
        return None
    return (f"overrun of {rec.describe()}: " + "; ".join(problems)
            + "\n  allocated at:" + fmt_stack(rec.stack))


def poison_report(read: Callable[[int, int], bytes], rec: Record) -> str | None:
    """Report of a write to a quarantined (freed) block, or ``None``."""
    bad = bad_bytes(read, rec.lo, rec.hi - rec.lo, POISON_FREE)
    if bad is None:
        return None
    first, last = bad[0] - (rec.phys - rec.lo), bad[1] - (rec.phys - rec.lo)
    return (f"write after free to {rec.describe()}: bytes at offsets {first} .. {last} "
            f"were written after it was freed (found {bad[2]:#04x}, poison "
            f"{POISON_FREE:#04x})\n  allocated at:" + fmt_stack(rec.stack)
            + "\n  freed at:" + fmt_stack(rec.freed_at))


def corruption(reports: list[str]) -> CorruptionError:
    """The error for ``reports`` (kept in its ``reports`` attribute)."""
    err = CorruptionError(
        f"arena: {len(reports)} memory corruption(s) found (nothing was changed; "
        f"check(repair=True) restores the patterns):\n" + "\n".join(reports))
    err.reports = tuple(reports)  # type: ignore[attr-defined]
    return err
