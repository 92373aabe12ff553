"""Every exception the package raises, in one place.

Tiers:

* A caller's mistake (wrong type, negative size, address outside memory) raises the built-in
  ``TypeError`` / ``ValueError`` naming the bad value, and changes nothing.
* Where the kernel returns an error code or NULL, the kernel-named method returns the same
  (0, ``None``, ``-ENOMEM``); the Pythonic layer (:class:`arena.Arena`) raises
  :class:`ArenaMemoryError`, a ``MemoryError`` carrying the request and the state of free space.
* Where the kernel would panic or BUG, we raise :class:`MemblockPanic` / :class:`MemblockBug`.
* Every ``check()`` (memblock, buddy, slab, physical memory, arena) raises
  :class:`InvariantError` (or a subclass: :class:`MemblockBug`, :class:`BuddyBug`) when one of
  its invariants does not hold; internal consistency checks elsewhere raise it too (the package
  uses no ``assert``, which ``python -O`` would strip).
* Warnings: :class:`MemblockWarning` (the kernel's ``WARN``).
* The soak's own: :class:`InvariantViolation` (allocator and model disagree) and
  :class:`KernelBug` (the model predicts the kernel's ``BUG()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ArenaError",
    "ClosedError",
    "LiveViewsError",
    "ArenaMemoryError",
    "BudgetExceededError",
    "DoubleFreeError",
    "ForeignBufferError",
    "CorruptionError",
    "MemblockPanic",
    "MemblockBug",
    "HandoverError",
    "ArenaLeakWarning",
    "BadHandleError",
    "SharedStateError",
    "InvariantError",
    "BuddyBug",
    "MemblockWarning",
    "KernelBug",
    "InvariantViolation",
    "WorkloadDead",
    "BootLogNumberError",
]


class ArenaError(Exception):
    """Base class of every error specific to this package."""


class ClosedError(ArenaError, ValueError):
    """An operation was attempted on a closed object (like I/O on a closed file)."""


class LiveViewsError(ArenaError, BufferError):
    """``close()`` was called while numpy views of the memory are still alive.

    Delete the views (``del view``) or copy what you need out of them (``view.copy()``) first;
    nothing was closed.
    """


class ArenaMemoryError(ArenaError, MemoryError):
    """An allocation could not be served.

    Attributes: ``size`` and ``align`` of the request (bytes), ``node`` (``None`` = any),
    ``free_bytes`` in the allocator and ``largest_free`` (the largest free block, bytes).
    """

    def __init__(
        self,
        message: str,
        *,
        size: int = 0,
        align: int = 0,
        node: int | None = None,
        free_bytes: int = 0,
        largest_free: int = 0,
    ) -> None:
        super().__init__(message)
        self.size = size
        self.align = align
        self.node = node
        self.free_bytes = free_bytes
        self.largest_free = largest_free


class BudgetExceededError(ArenaMemoryError):
    """An allocation would take the arena over its byte budget; nothing was allocated."""


class DoubleFreeError(ArenaError, ValueError):
    """The buffer was already freed."""


class ForeignBufferError(ArenaError, ValueError):
    """The array was not allocated by this allocator (or is not the whole allocation)."""


class CorruptionError(ArenaError):
    """A memory-correctness check found a write outside an allocation or after free."""


class MemblockPanic(ArenaError, RuntimeError):
    """The kernel would panic here (e.g. ``memblock: cannot resize reserved array``)."""


class InvariantError(ArenaError, AssertionError):
    """An invariant of one of the allocators does not hold: what every ``check()`` raises
    (the message names the broken invariant; most carry a dump of the state). A subclass of
    ``AssertionError`` for callers that catch that."""


class MemblockBug(InvariantError):
    """The kernel would hit ``BUG()`` here: an internal invariant of memblock broke."""


class BuddyBug(InvariantError):
    """An invariant of the buddy allocator broke (the kernel's ``VM_BUG_ON``); carries a dump."""


class HandoverError(ArenaError, RuntimeError):
    """memblock was used after ``free_all()`` handed its memory to the page allocator."""


class ArenaLeakWarning(UserWarning):
    """Allocations were still live at the end of a test (the pytest plugin's
    ``--arena-leaks=warn``)."""


class BadHandleError(ArenaError, ValueError):
    """A handle to a block of a shared arena (:class:`arena.handles.Handle`) was refused: it
    names an arena this process cannot attach, a block that was freed or never sent, or a
    view outside its block (a forged or stale handle). Nothing was opened."""


class SharedStateError(ArenaError, RuntimeError):
    """A shared arena's metadata cannot serve the request: every process window is taken,
    the lease table is full, or the file is not a shared arena."""


class MemblockWarning(RuntimeWarning):
    """A kernel ``WARN``: the kernel prints a warning and carries on; so do we."""


class KernelBug(Exception):
    """The soak's model predicts the kernel's ``BUG()`` here (e.g. a doubled array that cannot
    be reserved); the allocator must raise :class:`MemblockBug`. After it the state is undefined
    (the kernel is dead), so the episode ends."""


class InvariantViolation(InvariantError):
    """The soak: the allocator and its reference model disagree, or a check failed.

    ``ops`` is the list of operations of the episode up to and including the failing one.
    """

    def __init__(self, message: str, ops: Sequence[tuple[Any, ...]] = ()) -> None:
        super().__init__(message)
        self.ops = list(ops)


class WorkloadDead(Exception):
    """The soak: raised inside an operation when the allocator hit the predicted kernel BUG
    (the episode ends there)."""


class BootLogNumberError(ValueError):
    """A boot log prints a number no kernel prints (wider than 64 bits, a nid outside a
    C int); the parser skips that line."""
