"""Constants and tiny helpers shared by the whole package: one definition each.

Kernel counterparts: ``include/linux/numa.h`` (``NUMA_NO_NODE``), ``enum memblock_flags`` in
``include/linux/memblock.h`` (the region flag bits) and that header's ``MEMBLOCK_ALLOC_*`` /
``MEMBLOCK_LOW_LIMIT`` bounds, ``round_up()`` / ``round_down()`` of
``include/linux/math.h`` (for power-of-two alignments). This module imports nothing from the
package, so every other module may import from it.
"""

from __future__ import annotations

from enum import IntFlag

__all__ = [
    "DRIVER_MANAGED",
    "ENOMEM",
    "FLAGS_MASK",
    "HOTPLUG",
    "KHO_SCRATCH",
    "MEMBLOCK_ALLOC_ACCESSIBLE",
    "MEMBLOCK_ALLOC_ANYWHERE",
    "MEMBLOCK_ALLOC_KASAN",
    "MEMBLOCK_ALLOC_NOLEAKTRACE",
    "MEMBLOCK_LOW_LIMIT",
    "MIRROR",
    "NOMAP",
    "NONE",
    "NUMA_NO_NODE",
    "PHYS_ADDR_MAX_64",
    "RSRV_KERN",
    "RSRV_NOINIT",
    "MemblockFlags",
    "round_down",
    "round_up",
    "round_up_wrap",
]

#: ``NUMA_NO_NODE``: "any node".
NUMA_NO_NODE = -1
#: ``ENOMEM``; memblock's mutators return ``-ENOMEM`` when an array cannot grow.
ENOMEM = 12
#: ``PHYS_ADDR_MAX`` of a 64-bit ``phys_addr_t`` (also ``MEMBLOCK_ALLOC_ANYWHERE``).
PHYS_ADDR_MAX_64 = (1 << 64) - 1

#: ``MEMBLOCK_ALLOC_ANYWHERE`` = ``~(phys_addr_t)0``. Passed to a 32-bit instance it means
#: that instance's ``PHYS_ADDR_MAX`` (``0xffffffff``).
MEMBLOCK_ALLOC_ANYWHERE = (1 << 64) - 1
#: ``MEMBLOCK_ALLOC_ACCESSIBLE``: an ``end`` of 0 means "up to ``current_limit``".
MEMBLOCK_ALLOC_ACCESSIBLE = 0
#: ``MEMBLOCK_ALLOC_NOLEAKTRACE``: like ACCESSIBLE (and no kmemleak hook).
MEMBLOCK_ALLOC_NOLEAKTRACE = 1
#: The name of value 1 before v5.16.
MEMBLOCK_ALLOC_KASAN = MEMBLOCK_ALLOC_NOLEAKTRACE
#: ``MEMBLOCK_LOW_LIMIT``: the default lower bound of an allocation.
MEMBLOCK_LOW_LIMIT = 0


class MemblockFlags(IntFlag):
    """``enum memblock_flags``: region attributes, with the kernel's bit values."""

    NONE = 0x0
    HOTPLUG = 0x1
    MIRROR = 0x2
    NOMAP = 0x4
    DRIVER_MANAGED = 0x8
    RSRV_NOINIT = 0x10
    RSRV_KERN = 0x20
    KHO_SCRATCH = 0x40


# The same bits as plain ints (the hot loops test them on plain ints).
NONE = int(MemblockFlags.NONE)
HOTPLUG = int(MemblockFlags.HOTPLUG)
MIRROR = int(MemblockFlags.MIRROR)
NOMAP = int(MemblockFlags.NOMAP)
DRIVER_MANAGED = int(MemblockFlags.DRIVER_MANAGED)
RSRV_NOINIT = int(MemblockFlags.RSRV_NOINIT)
RSRV_KERN = int(MemblockFlags.RSRV_KERN)
KHO_SCRATCH = int(MemblockFlags.KHO_SCRATCH)
#: Every known flag bit.
FLAGS_MASK = HOTPLUG | MIRROR | NOMAP | DRIVER_MANAGED | RSRV_NOINIT | RSRV_KERN | KHO_SCRATCH


def round_up(x: int, align: int) -> int:
    """``round_up(x, align)`` for a power-of-two ``align`` on unbounded ints (no wrap)."""
    return (x + align - 1) & -align


def round_down(x: int, align: int) -> int:
    """``round_down(x, align)`` for a power-of-two ``align``."""
    return x & -align


def round_up_wrap(x: int, align: int, mask: int) -> int:
    """``round_up()`` as C computes it on a ``phys_addr_t`` of ``mask + 1`` values:
    ``((x - 1) | (align - 1)) + 1``, wrapping (``x = 0`` gives 0; near the top it wraps to 0)."""
    return ((((x - 1) & mask) | ((align - 1) & mask)) + 1) & mask
