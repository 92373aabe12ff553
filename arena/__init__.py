"""memblock-arena: the Linux boot-time memblock allocator, bit-exact, over real memory.

Layers (data flows down, imports point up):

* :mod:`arena.physmem` -- :class:`PhysicalMemory`, one anonymous mapping used as physical memory.
* :mod:`arena.memblock` -- :class:`Memblock`, the kernel's region allocator, bit-exact (its
  storage, free-range index and linear reference in ``memblock_store``, ``memblock_index``,
  ``memblock_linear``).
* :mod:`arena.buddy` -- the page allocator that receives memory at hand-over.
* :mod:`arena.arena` -- :class:`Arena`, the embedding API (budgets, statistics, debug checks).
* :mod:`arena.trace`, :mod:`arena.render`, :mod:`arena.kernel` -- boot-log replay, pictures,
  and the kernel-spelled function face.
"""

from __future__ import annotations

from arena.arena import (
    TRACEMALLOC_DOMAIN,
    AllocationInfo,
    Arena,
    ArenaStats,
    ClassStats,
    LeakSite,
    NodeStats,
)
from arena.buddy import BuddyAllocator
from arena.errors import (
    ArenaError,
    ArenaMemoryError,
    BadHandleError,
    BudgetExceededError,
    ClosedError,
    CorruptionError,
    DoubleFreeError,
    ForeignBufferError,
    HandoverError,
    InvariantError,
    LiveViewsError,
    MemblockBug,
    MemblockPanic,
    SharedStateError,
)
from arena.memblock import (
    MEMBLOCK_ALLOC_ACCESSIBLE,
    MEMBLOCK_ALLOC_ANYWHERE,
    MEMBLOCK_ALLOC_NOLEAKTRACE,
    MEMBLOCK_LOW_LIMIT,
    NUMA_NO_NODE,
    Memblock,
    MemblockFlags,
    MemblockWarning,
    Region,
)
from arena.physmem import NodeSlice, PhysicalMemory, parse_size
from arena.slab import SlabAllocator

__version__ = "0.1.0"

__all__ = [
    "AllocationInfo",
    "Arena",
    "ArenaStats",
    "BuddyAllocator",
    "ClassStats",
    "LeakSite",
    "NodeStats",
    "ArenaError",
    "ArenaMemoryError",
    "BadHandleError",
    "BudgetExceededError",
    "ClosedError",
    "CorruptionError",
    "DoubleFreeError",
    "ForeignBufferError",
    "HandoverError",
    "InvariantError",
    "LiveViewsError",
    "MEMBLOCK_ALLOC_ACCESSIBLE",
    "MEMBLOCK_ALLOC_ANYWHERE",
    "MEMBLOCK_ALLOC_NOLEAKTRACE",
    "MEMBLOCK_LOW_LIMIT",
    "Memblock",
    "MemblockBug",
    "MemblockFlags",
    "MemblockPanic",
    "MemblockWarning",
    "NUMA_NO_NODE",
    "NodeSlice",
    "PhysicalMemory",
    "Region",
    "SharedStateError",
    "SlabAllocator",
    "TRACEMALLOC_DOMAIN",
    "__version__",
    "parse_size",
]
