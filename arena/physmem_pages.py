"""The page bookkeeping of :class:`arena.physmem.PhysicalMemory`: the "possibly written" and
"released" records (flat sorted lists ``[s0, e0, s1, e1, ...]`` of page-aligned byte offsets,
see the invariants of :mod:`arena.physmem`) and the page operations (residency, release,
protection, huge pages, the host node of a page).

A part of :class:`arena.physmem.PhysicalMemory` (its methods declare ``self: PhysicalMemory``).
"""

from __future__ import annotations

import bisect
import errno
import mmap
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from arena._args import bool_arg, int_arg
from arena.errors import InvariantError
from arena.physmem_host import (
    MADV_DONTNEED,
    MADV_HUGEPAGE,
    MADV_REMOVE,
    PAGE_SIZE,
    _libc,
    _oserror,
    _sys_mincore_count,
    _sys_page_nodes,
)

if TYPE_CHECKING:
    from arena.physmem import PhysicalMemory

__all__ = ["Pages"]


# -- page interval records: flat sorted lists [s0, e0, s1, e1, ...] of byte offsets ----------


def _add_pages(w: list[int], start: int, end: int) -> None:
    """Add the pages overlapping ``[start, end)`` to record ``w``. O(log n) + list splice."""
    mask = PAGE_SIZE - 1
    start &= ~mask
    end = (end + mask) & ~mask
    i = bisect.bisect_left(w, start)
    j = bisect.bisect_right(w, end)
    if i == j and i & 1:  # already inside one interval: the common case
        return
    new = []
    if not i & 1:
        new.append(start)
    if not j & 1:
        new.append(end)
    w[i:j] = new


def _remove_range(w: list[int], start: int, end: int) -> None:
    """Remove ``[start, end)`` (page aligned) from record ``w``."""
    i = bisect.bisect_left(w, start)
    j = bisect.bisect_right(w, end)
    new = []
    if i & 1:
        new.append(start)
    if j & 1:
        new.append(end)
    w[i:j] = new


def _pieces(w: list[int], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` inside record ``w``, ascending."""
    k = bisect.bisect_right(w, start)
    k -= k & 1
    out = []
    while k < len(w) and w[k] < end:
        a, b = max(w[k], start), min(w[k + 1], end)
        if a < b:
            out.append((a, b))
        k += 2
    return out


def _subtract(start: int, end: int, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[start, end)`` minus the ascending, disjoint ``pieces``."""
    out = []
    for a, b in pieces:
        if b <= start or a >= end:
            continue
        if a > start:
            out.append((start, a))
        start = max(start, b)
    if start < end:
        out.append((start, end))
    return out


def _union(x: list[tuple[int, int]], y: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of two lists of disjoint intervals, ascending and merged."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(x + y):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out



class Pages:
    """The page bookkeeping and page operations of :class:`arena.physmem.PhysicalMemory` (a
    part of the class)."""

    # -- the "possibly written" record ------------------------------------------------------

    def _mark_written(self: PhysicalMemory, start: int, end: int) -> None:
        """Add the pages overlapping byte offsets ``[start, end)``. O(log n) + list splice."""
        _add_pages(self._written, start, end)

    def _unmark_written(self: PhysicalMemory, start: int, end: int) -> None:
        """Remove byte offsets ``[start, end)`` (page aligned) from the record."""
        _remove_range(self._written, start, end)

    def _written_pieces(self: PhysicalMemory, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` that may have been written, ascending."""
        return _pieces(self._written, start, end)

    def _dirty_pieces(self: PhysicalMemory, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` that may hold non-zero bytes, ascending: the written
        record, plus the released pages outside it that the host has not left untouched (a
        view from before the :meth:`release` may have written them). O(intervals + such
        pages)."""
        out = self._written_pieces(start, end)
        suspect = []
        for a, b in _pieces(self._released, start, end):
            for c, d in _subtract(a, b, out):
                suspect += self._touched_pieces(c, d)
        if suspect:
            out = _union(out, suspect)
        return out

    def _touched_pieces(self: PhysicalMemory, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` whose pages are present or swapped out (from
        ``/proc/self/pagemap``); all of it if the file cannot be read."""
        first = (self._addr + start) // PAGE_SIZE
        last = (self._addr + end - 1) // PAGE_SIZE
        try:
            fd = os.open("/proc/self/pagemap", os.O_RDONLY)
            try:
                raw = os.pread(fd, (last - first + 1) * 8, first * 8)
            finally:
                os.close(fd)
        except OSError:
            return [(start, end)]
        if len(raw) != (last - first + 1) * 8:
            return [(start, end)]
        used = (np.frombuffer(raw, np.uint64) >> np.uint64(62)) != 0   # present or swapped
        out: list[tuple[int, int]] = []
        for i in np.flatnonzero(used).tolist():
            lo = max(start, (first + i) * PAGE_SIZE - self._addr)
            hi = min(end, (first + i + 1) * PAGE_SIZE - self._addr)
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return out

    # -- pages -----------------------------------------------------------------------------

    def resident_bytes(self: PhysicalMemory, phys: int | None = None, size: int | None = None) -> int:
        """Bytes of the memory's pages that are resident (backed by a page), via ``mincore``.

        Without arguments: the whole memory; otherwise both ``phys`` and ``size`` are given and
        every page overlapping ``[phys, phys + size)`` counts whole. Pages only read (mapped to
        the kernel's shared zero page) count as resident. Raises TypeError/ValueError,
        ClosedError. O(pages).
        """
        self._open()
        if phys is None and size is None:
            off, size = 0, self._size
        elif phys is None or size is None:
            raise TypeError("resident_bytes: give both phys and size, or neither")
        else:
            off, size = self._offset(phys, size, "resident_bytes")
        start = off & ~(PAGE_SIZE - 1)
        end = (off + size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        return _sys_mincore_count(self._addr + start, end - start) * PAGE_SIZE

    def _pages(self: PhysicalMemory, phys: Any, size: Any, what: str) -> tuple[int, int]:
        """:meth:`_offset` of a range that must be whole pages (ValueError otherwise)."""
        self._open()
        off, size = self._offset(phys, size, what)
        if off % PAGE_SIZE or size % PAGE_SIZE:
            raise ValueError(f"{what}: [{phys:#x}, +{size:#x}) is not whole "
                             f"{PAGE_SIZE}-byte pages")
        return off, size

    def release(self: PhysicalMemory, phys: int, size: int, *, unviewed: bool = False) -> None:
        """Give the pages of ``[phys, phys + size)`` back to the OS (``MADV_DONTNEED``).

        Kernel counterpart: none (the kernel never returns RAM). ``phys`` and ``size`` must be
        whole pages. Afterwards the range reads as zero and costs no RSS until touched again;
        views over it stay valid, and what they write later is seen by :meth:`read` and cleared
        by :meth:`zero` (module docstring: the "released" record), at the cost of one look at
        the host's page table the first time. ``unviewed=True`` is the caller's promise that no
        view will write the range before it is viewed again (an allocator releasing memory it
        has handed out to nobody): the range is then simply never written, and zeroing it
        later costs nothing. Raises TypeError/ValueError (nothing released), ClosedError.
        O(pages) in the kernel, O(log intervals) here.
        """
        unviewed = bool_arg("release: unviewed", unviewed)
        off, size = self._pages(phys, size, "release")
        if self._mm is None:
            raise InvariantError("physmem: expected self._mm is not None")
        self._mm.madvise(MADV_DONTNEED if self._fd is None else MADV_REMOVE, self._off + off,
                         size)
        if not unviewed:
            for a, b in self._written_pieces(off, off + size):
                _add_pages(self._released, a, b)   # a view may still reach these pages
        else:
            _remove_range(self._released, off, off + size)
        self._unmark_written(off, off + size)

    def protect(self: PhysicalMemory, phys: int, size: int, prot: int) -> None:
        """Set the access of the pages ``[phys, phys + size)`` (whole pages) with ``mprotect``:
        ``prot`` is ``0`` (``PROT_NONE``: any access faults with ``SIGSEGV``),
        ``mmap.PROT_READ`` or ``mmap.PROT_READ | mmap.PROT_WRITE`` (the default of every page).
        Kernel counterpart: none (debug page protection, as KFENCE's guard pages). Every
        method of this class reading or writing a protected page faults too: the caller (the
        arena's guard mode) keeps them off such pages. Raises TypeError/ValueError (nothing
        changed), OSError from ``mprotect``, ClosedError. O(pages) in the kernel."""
        prot = int_arg("protect: prot", prot)
        if prot not in (0, mmap.PROT_READ, mmap.PROT_READ | mmap.PROT_WRITE):
            raise ValueError(f"protect: prot must be 0, PROT_READ or PROT_READ | PROT_WRITE, "
                             f"not {prot}")
        off, size = self._pages(phys, size, "protect")
        if _libc.mprotect(self._addr + off, size, prot) != 0:
            raise _oserror(f"mprotect({phys:#x}, {size:#x}, {prot})")

    def advise_hugepages(self: PhysicalMemory, phys: int, size: int) -> bool:
        """Ask for transparent huge pages over ``[phys, phys + size)`` (whole pages;
        ``MADV_HUGEPAGE``), as numpy does for its own buffers of 4 MiB and more: touching and
        zeroing such memory then takes far fewer TLB misses. Best effort: False if the kernel
        refused (no transparent huge pages). Raises TypeError/ValueError (range not whole
        pages inside the memory), ClosedError. O(1) here.
        """
        off, size = self._pages(phys, size, "advise_hugepages")
        if self._mm is None:
            raise InvariantError("physmem: expected self._mm is not None")
        try:
            self._mm.madvise(MADV_HUGEPAGE, self._off + off, size)
        except OSError:
            return False
        return True

    def node_of_page(self: PhysicalMemory, phys: int) -> int | None:
        """The host node holding the page of ``phys``, read with ``move_pages(nodes=NULL)``.

        Returns ``None`` if the page has no frame of its own (never written, released, or only
        read and so mapped to the shared zero page). Faults nothing in. Raises
        TypeError/ValueError, ClosedError, OSError (e.g. ENOSYS on an unsupported
        architecture). O(1).
        """
        self._open()
        off, _ = self._offset(phys, 1, "node_of_page")
        status = _sys_page_nodes([self._addr + (off & ~(PAGE_SIZE - 1))])[0]
        if status >= 0:
            return status
        if status in (-errno.ENOENT, -errno.EFAULT):
            return None
        raise OSError(-status, f"move_pages: {os.strerror(-status)}")
