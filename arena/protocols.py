"""The seams between the allocators, as small typing Protocols: what memblock needs of the
memory behind it and of the page allocator it hands its free pages to.

Kernel counterpart: none as such (the kernel's memblock reaches ``__va()`` / ``memset`` and
``memblock_free_pages()`` directly). :class:`arena.physmem.PhysicalMemory` satisfies
:class:`PhysMemory`; :class:`arena.buddy.BuddyAllocator` satisfies :class:`PageSink`; tests pass
small fakes of either. Checked structurally (``isinstance`` works on the method names).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["PageSink", "PhysMemory"]


@runtime_checkable
class PhysMemory(Protocol):
    """What :class:`arena.memblock.Memblock` needs of the memory behind its addresses."""

    @property
    def phys_base(self) -> int:
        """Physical address of the first byte."""
        ...

    @property
    def size(self) -> int:
        """Bytes of memory from ``phys_base``."""
        ...

    def view(self, phys: int, size: int) -> np.ndarray:
        """A uint8 view of ``[phys, phys + size)``."""
        ...

    def zero(self, phys: int, size: int) -> None:
        """Zero ``[phys, phys + size)``."""
        ...

    def phys_of(self, array: np.ndarray) -> int:
        """Physical address of a view's first byte (ValueError for other memory)."""
        ...

    def contains(self, phys: int, size: int) -> bool:
        """Whether ``[phys, phys + size)`` lies inside this memory."""
        ...


@runtime_checkable
class PageSink(Protocol):
    """What :meth:`arena.memblock.Memblock.free_all` needs of the page allocator: take a free
    naturally aligned block of ``2**order`` pages on node ``nid``. Optional attributes it also
    reads when present: ``max_order``, ``page_size``, ``physmem`` and
    ``overlaps_managed(first_pfn, npages)``."""

    def boot_free(self, pfn: int, order: int, nid: int) -> None:
        """``memblock_free_pages()`` / ``__free_pages_core()``: one block handed over."""
        ...
