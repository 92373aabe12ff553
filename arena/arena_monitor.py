"""What monitoring tools read from an arena: pyarrow's ``MemoryPool`` methods, per-size-class
statistics, the notebook picture and the tracemalloc bookkeeping that is not on the hot path.
A part of :class:`arena.Arena`.

The pool methods have the meanings pyarrow gives them, so that code written to report a
pyarrow pool's use takes an arena too: ``bytes_allocated()`` (bytes handed out and not given
back, each allocation counted at its size class), ``max_memory()`` (the peak of that, held
bytes included), ``num_allocations()`` (allocations ever made), ``total_bytes_allocated()``
(bytes of every allocation ever made), ``release_unused()`` (give unused memory back to the
operating system; see :meth:`arena.Arena.release_unused`) and ``backend_name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arena import tmtrace
from arena.largecache import Block
from arena.slab import KMALLOC_SIZES, Slot
from arena.stats import ClassStats
from arena.unit import FREE, Unit

if TYPE_CHECKING:
    from arena.arena import Arena

__all__ = ["Monitoring", "BACKEND_NAME"]

#: What :attr:`arena.Arena.backend_name` returns (pyarrow's pools say ``"jemalloc"``,
#: ``"mimalloc"`` or ``"system"``).
BACKEND_NAME = "memblock-arena"


class Monitoring:
    """pyarrow's pool methods, size-class statistics and the notebook picture of
    :class:`arena.Arena` (a part of the class)."""

    # -- pyarrow's MemoryPool ------------------------------------------------------------------

    def bytes_allocated(self: Arena) -> int:
        """Bytes currently allocated: every live allocation at its size class (red zones
        included in debug mode; freed allocations still viewed by arrays are not counted, see
        ``held_bytes`` of :meth:`stats`). pyarrow's ``MemoryPool.bytes_allocated()``; the same
        number as ``stats().bytes_allocated``. Raises ClosedError. O(units handed out): it
        first gives back what no array views any more."""
        with self._lock:
            self._open()
            self._collect_full()
            return self._allocated - self._held

    def max_memory(self: Arena) -> int:
        """The peak of the bytes allocated (held bytes included), bytes. pyarrow's
        ``MemoryPool.max_memory()``; ``stats().max_memory``. O(1). Raises ClosedError."""
        self._open()
        return self._peak

    def num_allocations(self: Arena) -> int:
        """Allocations made since the arena was created (pyarrow's
        ``MemoryPool.num_allocations()``; ``stats().num_allocations``). O(1). Raises ClosedError."""
        self._open()
        return self._count

    def total_bytes_allocated(self: Arena) -> int:
        """Bytes of every allocation made since the arena was created, each at its size class
        (pyarrow's ``MemoryPool.total_bytes_allocated()``; ``stats().total_bytes_allocated``).
        O(1). Raises ClosedError."""
        self._open()
        return self._total_allocated

    @property
    def backend_name(self: Arena) -> str:
        """The allocator's name, ``"memblock-arena"`` (pyarrow's ``MemoryPool.backend_name``)."""
        return BACKEND_NAME

    # -- per-size-class statistics -------------------------------------------------------------

    def _count_class(self: Arena, unit: Unit) -> None:
        """Count an allocation the general path served from a size class."""
        if type(unit) is Slot:
            unit.slab.cache.nalloc += 1
        elif type(unit) is Block and self._large is not None:
            for cache in self._large.caches.values():
                if cache.free is unit.home:
                    cache.nalloc += 1
                    break

    def _class_stats(self: Arena) -> tuple[ClassStats, ...]:
        """Per size class (all nodes together), ascending: what the caches hold and did.
        O(slabs + units). Call under the lock."""
        out: list[ClassStats] = []
        ps = self._page_size
        slab = self._slab
        if slab is not None:
            per: dict[int, list[int]] = {}   # index -> [in use, free, pages, slabs]
            for s in slab.slabs():
                acc = per.setdefault(s.cache.index, [0, 0, 0, 0])
                acc[0] += s.nslots - len(s.free)
                acc[1] += len(s.free)
                acc[2] += s.nbytes // ps
                acc[3] += 1
            for i, size in enumerate(KMALLOC_SIZES):
                nalloc = sum(caches[i].nalloc for caches in slab.caches.values())
                inuse, free, pages, slabs = per.get(i, [0, 0, 0, 0])
                if nalloc or slabs:
                    out.append(ClassStats("small", size, inuse, free, pages, nalloc,
                                          nalloc - inuse))
        large = self._large
        if large is not None:
            home: dict[int, int] = {id(c.free): size for (size, _), c in large.caches.items()}
            used: dict[int, list[int]] = {}   # class size -> [in use, bytes]
            for u in self._anchors.values():
                if type(u) is Block and u.state != FREE and id(u.home) in home:
                    acc = used.setdefault(home[id(u.home)], [0, 0])
                    acc[0] += 1
                    acc[1] += u.nbytes
            sizes = sorted({size for size, _ in large.caches})
            for size in sizes:
                caches = [c for (s, _), c in large.caches.items() if s == size]
                nalloc = sum(c.nalloc for c in caches)
                free = sum(len(c.free) for c in caches)
                inuse, nbytes = used.get(size, [0, 0])
                nbytes += sum(b.nbytes for c in caches for b in c.free)
                if nalloc or free or inuse:
                    out.append(ClassStats("large", size, inuse, free, nbytes // ps, nalloc,
                                          nalloc - inuse))
        return tuple(out)

    # -- tracemalloc ---------------------------------------------------------------------------

    def _untrack_units(self: Arena, units: list[Unit]) -> None:
        """Unregister ``units`` from tracemalloc (at close)."""
        delta = self._virt_delta
        for u in units:
            tmtrace.untrack(u.phys + delta)

    # -- notebooks -----------------------------------------------------------------------------

    def _repr_svg_(self: Arena) -> str | None:
        """The memory map (memblock's regions: slabs, large blocks and reservations are its
        reserved ranges) as SVG, for Jupyter; ``None`` once closed (the plain repr is shown
        then)."""
        if self._closed:
            return None
        from arena.notebook import arena_svg  # drawing is imported only when displayed
        return arena_svg(self)
