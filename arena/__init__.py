"""memblock-arena: the Linux boot-time memblock allocator, bit-exact, over real memory.

The lead maintains this file: it re-exports the public names of every finished module.
"""

from __future__ import annotations

from arena.errors import (
    ArenaError,
    ArenaMemoryError,
    BudgetExceededError,
    ClosedError,
    CorruptionError,
    DoubleFreeError,
    ForeignBufferError,
    HandoverError,
    LiveViewsError,
    MemblockBug,
    MemblockPanic,
)

__version__ = "0.1.0"

__all__ = [
    "ArenaError",
    "ArenaMemoryError",
    "BudgetExceededError",
    "ClosedError",
    "CorruptionError",
    "DoubleFreeError",
    "ForeignBufferError",
    "HandoverError",
    "LiveViewsError",
    "MemblockBug",
    "MemblockPanic",
    "__version__",
]
