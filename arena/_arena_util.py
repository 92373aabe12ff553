"""Constants and small helpers shared by the parts of :class:`arena.Arena` (``arena.arena``,
``arena.arena_place``, ``arena.arena_release``, ``arena.arena_inspect``)."""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any, NamedTuple

import numpy as np

from arena._args import bool_arg, int_arg
from arena.constants import round_up as _round_up  # noqa: F401  (re-exported to the Arena modules)
from arena.debug import debug_args
from arena.physmem import MAX_ALIGN, PAGE_SIZE, PhysicalMemory, parse_size
from arena.unit import Unit

__all__ = ["ARENA_PHYS_BASE", "FREED_MEMORY", "LIFETIMES", "DECAY_SECONDS"]

#: Physical address of an arena's first byte. 1 GiB: page 0 (which memblock never hands out) is
#: not part of the memory, and an allocation aligned to 1 GiB fits in the smallest arena.
ARENA_PHYS_BASE = 1 << 30
#: Freed starts remembered for double-free messages (oldest forgotten first).
FREED_MEMORY = 1 << 16
#: The lifetimes an arena offers (see :class:`Arena`).
LIFETIMES = ("gc", "manual")
#: Default seconds a retained large block may stay unused before it goes back.
DECAY_SECONDS = 10.0
#: Sizes a large class was asked for, remembered for the hot path (bounded).
_FAST_LARGE_SIZES = 4096
#: Large blocks of this many bytes and more ask for transparent huge pages, aligned to one
#: (numpy's own rule for its buffers: a memset of such memory runs with far fewer TLB misses).
_HUGE_BLOCK = 4 << 20
_HUGE_PAGE = 2 << 20
#: Units a young collection looks at (the newest ones: temporaries die young).
_YOUNG_SCAN = 64
#: Survivors of a young collection that the next one looks at again.
_YOUNG_RECHECK = 4
#: A full collection runs once bytes allocated (or units handed out since the last one) pass
#: twice what it left alive, and these floors: memory stays within about twice what is viewed.
_GC_MIN_BYTES = 1 << 20
_GC_MIN_UNITS = 4096

_DEBUG_TRUE = frozenset({"1", "true", "yes", "on"})
#: No budget: a bound no allocation total reaches (one comparison on the hot path).
_NO_LIMIT = 1 << 64
_U8 = np.dtype(np.uint8)
_ndarray = np.ndarray
_wref = weakref.ref
_getframe = sys._getframe
_getrefcount = sys.getrefcount


def _viewed(unit: Unit) -> bool:
    """Whether any array but the arena's own views a unit handed out: the arena holds its
    array (``view``: the attribute and the argument make 2) and its anchor (the attribute, the
    array's ``base`` and the argument make 3); any other array of the unit holds one of the
    two."""
    return _getrefcount(unit.view) > 2 or _getrefcount(unit.anchor) > 3


def _align_arg(name: str, value: Any) -> int:
    """A power-of-two alignment in ``1 .. 1 GiB`` (the real virtual address keeps it)."""
    value = int_arg(name, value)
    if value < 1 or value & (value - 1) or value > MAX_ALIGN:
        raise ValueError(f"{name} must be a power of two in 1 .. {MAX_ALIGN} (1 GiB), "
                         f"not {value}")
    return value


def _caller(depth: int) -> Any:
    """The frame ``depth`` levels up, or ``None`` when the stack is not that deep (a call
    from the outermost frame of a thread, ``atexit``)."""
    try:
        return _getframe(depth + 1)
    except ValueError:
        return None


def _lifetime_arg(value: Any) -> str:
    """One of :data:`LIFETIMES` (TypeError for a non-str, ValueError for another str)."""
    if not isinstance(value, str):
        raise TypeError(f"lifetime must be a str, one of {LIFETIMES}, not "
                        f"{type(value).__name__} ({value!r})")
    if value not in LIFETIMES:
        raise ValueError(f"lifetime must be one of {LIFETIMES}, not {value!r}")
    return value


def _decay_arg(value: Any) -> float | None:
    """A number of seconds >= 0, or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"decay must be a number of seconds or None, not "
                        f"{type(value).__name__} ({value!r})")
    if not 0 <= value < float("inf"):
        raise ValueError(f"decay must be >= 0 seconds, not {value!r}")
    return value


class _ArenaArgs(NamedTuple):
    """The checked arguments of :class:`arena.Arena` (see its docstring)."""

    size: int
    align: int
    budget: int | None
    debug: bool
    guard: str | None        # the guard side ("end", "start"), or None (no guard pages)
    redzone: int
    hugepages: bool
    slab: bool
    track_callers: bool
    lifetime: str
    quarantine: int | None
    retain: int
    decay: float | None


def _arena_args(size: Any, physmem: Any, align: Any, budget: Any, debug: Any, redzone: Any,
                guard: Any, hugepages: Any, slab: Any, track_callers: Any, lifetime: Any,
                quarantine: Any, retain: Any, decay: Any) -> _ArenaArgs:
    """Check and convert the arguments of :class:`arena.Arena` (TypeError / ValueError);
    ``debug=None`` reads ``ARENA_DEBUG``."""
    size = _round_up(parse_size(size, name="size"), PAGE_SIZE)
    if physmem is not None and not isinstance(physmem, PhysicalMemory):
        raise TypeError(f"_physmem must be a PhysicalMemory, not {type(physmem).__name__}")
    align = _align_arg("align", align)
    if budget is not None:
        budget = parse_size(budget, name="budget", allow_zero=True)
    if debug is None:
        debug = os.environ.get("ARENA_DEBUG", "").strip().lower() in _DEBUG_TRUE
    debug, guard_side, redzone = debug_args(debug, redzone, guard, PAGE_SIZE)
    hugepages = bool_arg("hugepages", hugepages)
    slab = bool_arg("slab", slab)
    track_callers = bool_arg("track_callers", track_callers)
    lifetime = _lifetime_arg(lifetime)
    if quarantine is not None:
        quarantine = parse_size(quarantine, name="quarantine", allow_zero=True)
    retain = size // 4 if retain is None else parse_size(retain, name="retain",
                                                         allow_zero=True)
    decay = _decay_arg(decay)
    return _ArenaArgs(size, align, budget, debug, guard_side, redzone, hugepages, slab,
                      track_callers, lifetime, quarantine, retain, decay)
