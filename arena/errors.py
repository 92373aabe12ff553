"""Every exception the package raises, in one place.

Tiers:

* A caller's mistake (wrong type, negative size, address outside memory) raises the built-in
  ``TypeError`` / ``ValueError`` naming the bad value, and changes nothing.
* Where the kernel returns an error code or NULL, the kernel-named method returns the same
  (0, ``None``, ``-ENOMEM``); the Pythonic layer (:class:`arena.Arena`) raises
  :class:`ArenaMemoryError`, a ``MemoryError`` carrying the request and the state of free space.
* Where the kernel would panic or BUG, we raise :class:`MemblockPanic` / :class:`MemblockBug`.
"""

from __future__ import annotations

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


class MemblockBug(ArenaError, AssertionError):
    """The kernel would hit ``BUG()`` here: an internal invariant of memblock broke."""


class HandoverError(ArenaError, RuntimeError):
    """memblock was used after ``free_all()`` handed its memory to the page allocator."""


class ArenaLeakWarning(UserWarning):
    """Allocations were still live at the end of a test (the pytest plugin's
    ``--arena-leaks=warn``)."""
