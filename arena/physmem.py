"""Real "physical memory": one anonymous private mapping, addressed by physical address.

Kernel counterpart: none directly — this plays the role of the RAM that ``mm/memblock.c`` hands
out (and of the kernel test harness's ``dummy_physical_memory_init()`` buffer), but over a real
``mmap`` so that allocations are real pages with real placement and residency.

Invariants (checked by :meth:`PhysicalMemory.check`, O(number of written intervals)):

* Physical addresses ``[phys_base, phys_base + size)`` map one-to-one onto the bytes
  ``[off, off + size)`` of one ``MAP_PRIVATE | MAP_ANONYMOUS`` mapping (``MAP_NORESERVE`` unless
  ``noreserve=False``); ``size`` and ``phys_base`` are whole pages.
* The real virtual address of ``phys_base + x`` is congruent to the physical address modulo
  1 GiB, hence aligned alike for every power-of-two alignment from 1 B to 1 GiB (the mapping is
  1 GiB minus one page larger than needed and the aligned part is used; the extra part is
  virtual only and never touched).
* Every view is a slice of one base ndarray over the mapping, so the mapping cannot be unmapped
  while a view is alive (``mmap.close()`` refuses while buffers are exported).
* The "possibly written" record is a flat sorted list ``[s0, e0, s1, e1, ...]`` of disjoint,
  non-adjacent, page-aligned byte offsets: every byte outside it is still zero (never written
  since mapping or since :meth:`release`). :meth:`view` and :meth:`fill` add to it,
  :meth:`release` removes from it; :meth:`zero` and :meth:`read` use it to leave never-written
  pages untouched (no page fault, no RSS). It does not depend on ``mincore``, so it stays
  correct with swap.
* The "released" record (same layout) holds every page that was possibly written when a
  :meth:`release` gave it back (every view marks its pages possibly written, so this covers
  every page a view made before a release can still reach). Such a view stays usable and may
  write the page again behind the written record's back: :meth:`zero` and :meth:`read` treat
  a released page as possibly written unless the host's page table (``/proc/self/pagemap``)
  shows it neither present nor swapped out, i.e. still untouched since the release (without
  that file: always possibly written). Views themselves cost nothing extra.
* ``slices`` cover the memory in ascending, consecutive, non-empty, page-aligned pieces.

Modules: this one holds the mapping itself (construction, views, bulk access, checks and
lifetime); :mod:`arena.physmem_pages` the page bookkeeping and page operations (a part of the
class); :mod:`arena.physmem_host` the host side: page size and flags, NUMA slices and host
nodes, the system calls (NUMA without libnuma: ``mbind``, ``get_mempolicy`` and
``move_pages`` through ``ctypes`` ``syscall`` on x86_64 and aarch64; other architectures keep
the node tags and report every slice unbound). :func:`parse_size` lives in
:mod:`arena.sizes`. Every public name is importable from here.

Not thread-safe: callers serialise (memblock is single-threaded, like the kernel at boot).
"""

from __future__ import annotations

import ctypes
import gc
import math
import mmap
import os
import warnings
from collections.abc import Sequence
from fractions import Fraction
from itertools import pairwise
from typing import Any

import numpy as np
import psutil

from arena import memfd
from arena._args import int_arg
from arena.errors import ArenaMemoryError, ClosedError, InvariantError, LiveViewsError
from arena.physmem_host import (
    MADV_DONTNEED,  # noqa: F401  (importable from here, as before)
    MADV_HUGEPAGE,
    MADV_POPULATE_WRITE,
    MADV_REMOVE,  # noqa: F401
    MAP_NORESERVE,
    MAX_NID,  # noqa: F401
    MPOL_BIND,  # noqa: F401
    MPOL_F_MEMS_ALLOWED,  # noqa: F401
    NODEMASK_BITS,  # noqa: F401
    PAGE_SIZE,
    BindStatus,
    NodeSlice,
    _split_nodes,
    _sys_mbind,
    host_nodes,
)
from arena.physmem_pages import Pages
from arena.sizes import human_size, parse_size

__all__ = [
    "PhysicalMemory",
    "NodeSlice",
    "BindStatus",
    "parse_size",
    "host_nodes",
]

# -- constants ----------------------------------------------------------------------------------

#: The largest alignment the real virtual addresses reproduce (bytes).
MAX_ALIGN: int = 1 << 30
#: Physical addresses are 64-bit (phys_addr_t); phys_base + size may not exceed this.
PHYS_ADDR_LIMIT: int = 1 << 64
# Headroom kept free when populate=True pre-faults the whole memory.
_POPULATE_HEADROOM = 256 << 20


def _map_memory(size: int, maplen: int, *, noreserve: bool, shared: bool, fd: int | None,
                offset: Any) -> tuple[mmap.mmap, int | None, bool, int]:
    """The mapping behind a :class:`PhysicalMemory`: anonymous and private, or (``shared``) a
    memory file mapped ``MAP_SHARED`` — a new one, or ``fd`` from byte ``offset`` (whole
    pages). Returns ``(mapping, fd or None, whether we own fd, offset)``."""
    offset = int_arg("offset", offset)
    if fd is not None:
        fd = int_arg("fd", fd)
    if (fd is not None or offset) and not shared:
        raise ValueError("fd and offset need shared=True")
    if offset < 0 or offset % PAGE_SIZE:
        raise ValueError(f"offset {offset:#x} is not a whole number of pages >= 0")
    owned = shared and fd is None
    if owned:
        fd = memfd.create(maplen)
    try:
        if fd is not None:
            mm = mmap.mmap(fd, maplen, flags=mmap.MAP_SHARED | MAP_NORESERVE,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        else:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (MAP_NORESERVE if noreserve else 0)
            mm = mmap.mmap(-1, maplen, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, OverflowError, ValueError) as exc:
        if owned and fd is not None:
            os.close(fd)
        raise ArenaMemoryError(
            f"cannot map {size:#x} bytes of physical memory ({maplen:#x} with the alignment "
            f"pad): {exc}", size=size) from exc
    return mm, fd, owned, offset


# -- the physical memory -----------------------------------------------------------------------

class PhysicalMemory(Pages):
    """A range of "physical memory" backed by one anonymous private mapping.

    ``PhysicalMemory(size, *, phys_base=0, nodes=None, hugepages=False, populate=False,
    noreserve=True)``

    * ``size`` — bytes, whole pages; an int or a string such as ``"64 GiB"`` (see
      :func:`parse_size`). With ``MAP_NORESERVE`` (default) the mapping is instant and costs RSS
      only for pages touched, so a 64 GiB memory maps on a 24 GiB machine.
    * ``phys_base`` — the physical address of the first byte (page aligned, default 0).
      ``phys_base + size`` may not exceed 2**64.
    * ``nodes`` — NUMA slices, consecutive from ``phys_base``, node ids 0, 1, 2, ...:
      ``None`` (one slice, node 0, not bound), an int count (equal page-multiple slices, the
      remainder to the last), a list of sizes (ints or size strings, whole pages, summing to
      ``size``) or a list of fractions (floats or :class:`fractions.Fraction`, positive, summing
      to 1; boundaries rounded down to pages, the remainder to the last). The kernel harness's
      basis points become fractions: ``[Fraction(bp, 10000) for bp in (2500, 625, ...)]``.
      Each slice whose node the host has is bound there with ``mbind(MPOL_BIND)``; the others
      keep their tag and are reported unbound by :meth:`bind_status`.
    * ``hugepages`` — ``madvise(MADV_HUGEPAGE)`` over the memory (transparent huge pages).
    * ``populate`` — pre-fault every page (after binding); refused with
      :class:`arena.errors.ArenaMemoryError` if more than the available memory.
    * ``noreserve`` — ``False`` drops ``MAP_NORESERVE`` (the kernel then accounts the whole
      mapping, including the alignment pad of up to 1 GiB, against its commit limit).
    * ``shared`` — map a memory file (``memfd_create``, see :mod:`arena.memfd`) ``MAP_SHARED``
      instead of anonymous private memory, with the same alignment, slices and binding; other
      processes mapping the file see the same bytes. ``fd``/``offset``: map that file from
      that byte (whole pages) instead of a new one (the file must hold ``size`` plus the
      alignment pad, 1 GiB minus one page). :meth:`release` then punches holes
      (``MADV_REMOVE``) so released pages read as zero in every process.

    Raises ``TypeError``/``ValueError`` for bad arguments and ``ArenaMemoryError`` for a
    mapping that cannot succeed. Construction is O(nodes) plus, with ``populate``, O(size).
    """

    def __init__(
        self,
        size: int | str,
        *,
        phys_base: int | str = 0,
        nodes: int | Sequence[int | str | float | Fraction] | None = None,
        hugepages: bool = False,
        populate: bool = False,
        noreserve: bool = True,
        shared: bool = False,
        fd: int | None = None,
        offset: int = 0,
    ) -> None:
        size = parse_size(size, name="size")
        phys_base = parse_size(phys_base, name="phys_base", allow_zero=True)
        for name, value in (("size", size), ("phys_base", phys_base)):
            if value % PAGE_SIZE:
                raise ValueError(f"{name} {value:#x} is not a whole number of "
                                 f"{PAGE_SIZE}-byte pages")
        if phys_base + size > PHYS_ADDR_LIMIT:
            raise ValueError(f"phys_base {phys_base:#x} + size {size:#x} overflows the 64-bit "
                             f"physical address space")
        for name, flag in (("hugepages", hugepages), ("populate", populate),
                           ("noreserve", noreserve), ("shared", shared)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, not {type(flag).__name__} ({flag!r})")
        slices = _split_nodes(nodes, size, phys_base)
        self._check_memory(size, populate=bool(populate), noreserve=bool(noreserve))

        maplen = size + MAX_ALIGN - PAGE_SIZE
        mm, self._fd, self._fd_owned, self._file_off = _map_memory(
            size, maplen, noreserve=bool(noreserve), shared=bool(shared), fd=fd, offset=offset)
        self._mm: mmap.mmap | None = mm
        self._size = size
        self._phys_base = phys_base
        self._phys_end = phys_base + size
        self._slices = slices
        self._hugepages = bool(hugepages)
        self._written: list[int] = []
        self._released: list[int] = []
        # Choose the offset whose real address is congruent to phys_base modulo 1 GiB.
        full = np.frombuffer(mm, np.uint8)
        start = full.__array_interface__["data"][0]
        self._off = (phys_base - start) % MAX_ALIGN
        self._addr = start + self._off
        if self._fd is not None:
            self._file_off += self._off
        del full
        self._base: np.ndarray | None = self._make_base()
        self._exporter: Any = None   # see exporter()
        try:
            if hugepages:
                self._madvise_hugepages()
            self._binding = self._bind_slices(requested=nodes is not None)
            if populate:
                self._populate()
        except BaseException:
            self._base = None
            mm.close()
            self._close_fd()
            raise

    # -- construction helpers ------------------------------------------------------------------

    @staticmethod
    def _check_memory(size: int, *, populate: bool, noreserve: bool) -> None:
        """Refuse mappings that would end with the OOM killer rather than an error."""
        if not populate and noreserve:
            return
        vm = psutil.virtual_memory()
        if populate and size + _POPULATE_HEADROOM > vm.available:
            raise ArenaMemoryError(
                f"populate=True would pre-fault {human_size(size)} but only "
                f"{human_size(vm.available)} are available (keeping "
                f"{human_size(_POPULATE_HEADROOM)} headroom); use "
                f"populate=False to fault pages in on first touch", size=size,
                free_bytes=vm.available)
        if not noreserve and size > vm.total + psutil.swap_memory().total:
            raise ArenaMemoryError(
                f"noreserve=False commits {human_size(size)}, more than RAM + swap "
                f"({human_size(vm.total)} + swap); keep noreserve=True for a sparse memory", size=size,
                free_bytes=vm.available)

    def _make_base(self) -> np.ndarray:
        """The one base ndarray over ``[phys_base, phys_end)``; every view is a slice of it."""
        if self._mm is None:
            raise InvariantError("physmem: expected self._mm is not None")
        return np.frombuffer(self._mm, np.uint8)[self._off:self._off + self._size]

    def _bind_slices(self, *, requested: bool) -> list[BindStatus]:
        """Bind each slice to the host node of the same id where the host has it."""
        if not requested:
            return [BindStatus(*self._slices[0], None, "nodes=None: default memory policy")]
        have = host_nodes()
        out = []
        for sl in self._slices:
            if sl.nid not in have:
                listed = ", ".join(map(str, sorted(have))) or "unknown"
                out.append(BindStatus(*sl, None, f"host has no node {sl.nid} "
                                                 f"(host nodes: {listed})"))
                continue
            try:
                _sys_mbind(self._addr + sl.phys_start - self._phys_base, sl.size, sl.nid)
            except OSError as exc:
                out.append(BindStatus(*sl, None, f"mbind to host node {sl.nid} failed: {exc}"))
                continue
            out.append(BindStatus(*sl, sl.nid, f"bound to host node {sl.nid} (MPOL_BIND)"))
        return out

    def _madvise_hugepages(self) -> None:
        if self._mm is None:
            raise InvariantError("physmem: expected self._mm is not None")
        try:
            self._mm.madvise(MADV_HUGEPAGE, self._off, self._size)
        except OSError as exc:  # kernel without transparent hugepages: work without them
            warnings.warn(f"hugepages=True: madvise(MADV_HUGEPAGE) failed ({exc}); using "
                          f"normal pages", RuntimeWarning, stacklevel=3)
            self._hugepages = False

    def _populate(self) -> None:
        if self._mm is None:
            raise InvariantError("physmem: expected self._mm is not None")
        try:
            self._mm.madvise(MADV_POPULATE_WRITE, self._off, self._size)
        except OSError:
            # Older kernels: touch one byte per page. Writing 0 keeps the pages zero, so the
            # "possibly written" record needs no update.
            if self._base is None:
                raise InvariantError("physmem: expected self._base is not None") from None
            self._base[::PAGE_SIZE] = 0

    # -- properties ----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Size of the memory in bytes (whole pages)."""
        return self._size

    @property
    def phys_base(self) -> int:
        """Physical address of the first byte."""
        return self._phys_base

    @property
    def phys_end(self) -> int:
        """Physical address one past the last byte (``phys_base + size``)."""
        return self._phys_end

    @property
    def page_size(self) -> int:
        """The host page size in bytes."""
        return PAGE_SIZE

    @property
    def closed(self) -> bool:
        """True once :meth:`close` succeeded."""
        return self._mm is None

    @property
    def slices(self) -> list[NodeSlice]:
        """The NUMA slices ``NodeSlice(nid, phys_start, size)``, ascending (a copy)."""
        return list(self._slices)

    @property
    def shared(self) -> bool:
        """True if the memory is a memory file mapped ``MAP_SHARED`` (``shared=True``)."""
        return self._fd is not None

    @property
    def fd(self) -> int | None:
        """The memory file's descriptor (``shared=True``), else ``None``."""
        return self._fd

    @property
    def file_offset(self) -> int:
        """Offset in the memory file of the byte at ``phys_base`` (0 when not shared)."""
        return self._file_off

    def _close_fd(self) -> None:
        if self._fd is not None and self._fd_owned:
            os.close(self._fd)
            self._fd_owned = False

    @property
    def hugepages(self) -> bool:
        """True if ``MADV_HUGEPAGE`` was applied."""
        return self._hugepages

    def __repr__(self) -> str:
        state = "closed" if self._mm is None else f"{len(self._written) // 2} written intervals"
        return (f"<PhysicalMemory [{self._phys_base:#x}-{self._phys_end - 1:#x}] "
                f"{self._size:#x} bytes, {len(self._slices)} node(s), {state}>")

    def _repr_svg_(self) -> str | None:
        """The node slices and the ranges written so far as SVG (how Jupyter displays a
        PhysicalMemory; see :mod:`arena.notebook`); ``None`` once closed."""
        if self._mm is None:
            return None
        from arena.notebook import physmem_svg  # drawing is imported only when displayed
        return physmem_svg(self)

    # -- argument checks -----------------------------------------------------------------------

    def _open(self) -> np.ndarray:
        base = self._base
        if base is None:
            raise ClosedError("PhysicalMemory is closed")
        return base

    def _offset(self, phys: Any, size: Any, what: str,
                allow_empty: bool = False) -> tuple[int, int]:
        """Validate ``[phys, phys + size)`` (size > 0, or >= 0 if ``allow_empty``) inside the
        memory.

        Returns ``(offset into the mapping, size)``, both plain ints (callers use these, never
        the raw arguments, so numpy integers cannot leak into address arithmetic).
        """
        phys = int_arg(f"{what}: phys", phys)
        size = int_arg(f"{what}: size", size)
        if size < 0 or (size == 0 and not allow_empty):
            raise ValueError(f"{what}: size must be positive, got {size}")
        if phys < self._phys_base or phys + size > self._phys_end:
            raise ValueError(f"{what}: [{phys:#x}, {phys + size:#x}) is outside the physical "
                             f"memory [{self._phys_base:#x}, {self._phys_end:#x})")
        return phys - self._phys_base, size

    # -- views -----------------------------------------------------------------------------

    def contains(self, phys: int, size: int = 1) -> bool:
        """True if ``[phys, phys + size)`` lies inside ``[phys_base, phys_end)``.

        ``size`` 0 asks whether ``phys`` is a valid position (``phys_base <= phys <= phys_end``).
        Raises TypeError for non-ints, ValueError for a negative size, ClosedError after close.
        O(1).
        """
        self._open()
        phys = int_arg("contains: phys", phys)
        size = int_arg("contains: size", size)
        if size < 0:
            raise ValueError(f"contains: size must be >= 0, got {size}")
        return self._phys_base <= phys and phys + size <= self._phys_end

    def view(self, phys: int, size: int, dtype: Any = np.uint8,
             shape: int | tuple[int, ...] | None = None) -> np.ndarray:
        """A writable ndarray over the physical bytes ``[phys, phys + size)``.

        Kernel counterpart: ``phys_to_virt`` (``__va``). The array is a slice of the one base
        ndarray over the mapping (never built from a raw pointer), reinterpreted as ``dtype``
        (no object dtypes; ``phys`` aligned to ``dtype.alignment``) and reshaped to ``shape``
        (default 1-D, ``size // itemsize`` items; ``prod(shape) * itemsize`` must equal
        ``size``). Its real address has the physical address's alignment up to 1 GiB. The range
        is recorded as "possibly written". ``size`` 0 gives an empty view at any ``phys`` in
        ``[phys_base, phys_end]`` (what a size-0 allocation returns). While the view lives,
        :meth:`close` refuses.

        Raises TypeError/ValueError (nothing recorded), ClosedError. O(log written intervals).
        """
        base = self._open()
        off, size = self._offset(phys, size, "view", allow_empty=True)
        if dtype is not np.uint8:
            dt = np.dtype(dtype)
            if dt.hasobject:
                raise TypeError(f"view: dtype {dt} holds Python objects; use a plain dtype")
            if not dt.itemsize:
                raise ValueError(f"view: dtype {dt!r} has itemsize 0; no number of its items "
                                 f"makes {size} bytes")
            if size % dt.itemsize or (off + self._phys_base) % dt.alignment:
                raise ValueError(f"view: [{phys:#x}, +{size:#x}) does not fit whole, aligned "
                                 f"{dt} items (itemsize {dt.itemsize}, alignment "
                                 f"{dt.alignment})")
        else:
            dt = None
        if shape is not None:
            dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
            dims = tuple(int_arg("view: shape", d) for d in dims)
            if any(d < 0 for d in dims) or math.prod(dims) * (dt or base.dtype).itemsize != size:
                raise ValueError(f"view: shape {shape!r} of {dt or base.dtype} does not hold "
                                 f"exactly {size} bytes")
        if size:
            self._mark_written(off, off + size)
            arr = base[off:off + size]
        elif off < self._size:
            arr = base[off:off + 1][:0]  # numpy keeps the address only if the slice starts there
        else:
            # An empty view at phys_end: the mapping always extends past it (alignment slack).
            if self._mm is None:
                raise InvariantError("physmem: expected self._mm is not None")
            arr = np.frombuffer(self._mm, np.uint8)[self._off + off:][:0]
        if dt is not None:
            arr = arr.view(dt)
        if shape is not None:
            arr = arr.reshape(dims)
        return arr

    def exporter(self) -> tuple[Any, int]:
        """``(buffer, delta)``: an object exporting the whole mapping and the physical address
        of its byte 0, so that ``np.ndarray(shape, dtype, buffer, phys - delta)`` is an array
        over ``[phys, phys + nbytes)``.

        For allocators that hand out many views (:class:`arena.Arena`). Such an array's
        ``base`` is the buffer object, not an ndarray, so numpy makes it the base of every
        view derived from it (slices, ``.view``, ``.reshape``): the array handed out stays alive
        while any of them does. The buffer (a ``ctypes`` array over the mapping) holds the
        mapping's export: while it or an array over it lives, :meth:`close` refuses. The caller
        checks the range and records it as written (:meth:`view` does both once per block).
        Raises ClosedError. O(1).
        """
        self._open()
        if self._exporter is None:
            if self._mm is None:
                raise InvariantError("physmem: expected self._mm is not None")
            self._exporter = (ctypes.c_char * len(self._mm)).from_buffer(self._mm)
        return self._exporter, self._phys_base - self._off

    def phys_of(self, array: np.ndarray) -> int:
        """Physical address of the first byte of ``array`` (a view of this memory).

        Kernel counterpart: ``virt_to_phys`` (``__pa``). Raises TypeError if ``array`` is not an
        ndarray, ValueError if any of its bytes lies outside ``[phys_base, phys_end)`` (a copy,
        a foreign array); an empty array may sit at phys_end. ClosedError after close. O(ndim).
        """
        self._open()
        if not isinstance(array, np.ndarray):
            raise TypeError(f"phys_of: need a numpy array, not {type(array).__name__}")
        try:
            # A C-contiguous writable array of at least one byte: faster than
            # __array_interface__ (bench/RESULTS.md); the temporary export ends at once.
            # (An empty array's buffer does not carry its address: take the slow path.)
            if not array.nbytes:
                raise ValueError("empty")
            data = ctypes.addressof(ctypes.c_char.from_buffer(array))  # type: ignore[arg-type]
            low, high = data, data + array.nbytes
        except (TypeError, ValueError, BufferError):
            data = array.__array_interface__["data"][0]
            low = high = data
            if array.size:
                for n, stride in zip(array.shape, array.strides, strict=True):
                    if stride < 0:
                        low += stride * (n - 1)
                    else:
                        high += stride * (n - 1)
                high += array.itemsize
            # An empty view (a size-0 allocation) may sit at the very end of the memory.
        if low < self._addr or high > self._addr + self._size:
            raise ValueError(f"phys_of: the array at {data:#x} (extent [{low:#x}, {high:#x})) "
                             f"does not lie in this physical memory "
                             f"[{self._addr:#x}, {self._addr + self._size:#x}) (a copy?)")
        return self._phys_base + data - self._addr

    # -- bulk access -----------------------------------------------------------------------

    def fill(self, phys: int, size: int, byte: int) -> None:
        """Set every byte of ``[phys, phys + size)`` to ``byte`` (0 .. 255).

        ``byte == 0`` is :meth:`zero` (never-written pages stay untouched). Raises
        TypeError/ValueError (nothing written), ClosedError. O(size).
        """
        base = self._open()
        off, size = self._offset(phys, size, "fill")
        byte = int_arg("fill: byte", byte)
        if not 0 <= byte <= 255:
            raise ValueError(f"fill: byte must be 0 .. 255, got {byte}")
        if byte == 0:
            self._zero(base, off, size)
            return
        self._mark_written(off, off + size)
        base[off:off + size].fill(byte)

    def zero(self, phys: int, size: int) -> None:
        """Make ``[phys, phys + size)`` read as zero, touching only pages possibly written.

        Pages never written since mapping or since :meth:`release` are already zero and are not
        touched (no page fault, no RSS): zeroing 1 GiB of fresh memory costs nothing. Raises
        TypeError/ValueError, ClosedError. O(written bytes in range + log intervals).
        """
        base = self._open()
        off, size = self._offset(phys, size, "zero")
        self._zero(base, off, size)

    def _zero(self, base: np.ndarray, off: int, size: int) -> None:
        for a, b in self._dirty_pieces(off, off + size):
            base[a:b].fill(0)

    def read(self, phys: int, size: int) -> bytes:
        """A copy of the bytes ``[phys, phys + size)``.

        Never-written pages are read as zeros without touching them. Raises
        TypeError/ValueError, ClosedError. O(size).
        """
        base = self._open()
        off, size = self._offset(phys, size, "read")
        pieces = self._dirty_pieces(off, off + size)
        if len(pieces) == 1 and pieces[0] == (off, off + size):
            return base[off:off + size].tobytes()
        out = np.zeros(size, np.uint8)
        for a, b in pieces:
            out[a - off:b - off] = base[a:b]
        return out.tobytes()

    # -- NUMA binding ----------------------------------------------------------------------

    def bind_status(self) -> list[BindStatus]:
        """For each slice, the host node it is bound to (or None) and the reason in words.

        Raises ClosedError. O(nodes).
        """
        self._open()
        return list(self._binding)

    # -- checks and lifetime -------------------------------------------------------------------

    def check(self) -> None:
        """Verify every invariant of the module docstring; :class:`InvariantError` with a dump
        if not.

        O(written intervals + nodes).
        """
        self._open()
        ok = all(len(w) % 2 == 0 and all(x % PAGE_SIZE == 0 for x in w)
                 and all(a < b for a, b in pairwise(w)) and (not w or (w[0] >= 0
                 and w[-1] <= self._size)) for w in (self._written, self._released))
        w = self._written
        pos = self._phys_base
        for sl in self._slices:
            ok = ok and sl.phys_start == pos and sl.size > 0 and sl.size % PAGE_SIZE == 0
            pos += sl.size
        ok = ok and pos == self._phys_end and self._addr % MAX_ALIGN == self._phys_base % MAX_ALIGN
        if not ok:
            raise InvariantError(f"PhysicalMemory invariant broken: {self!r} written={w} "
                                 f"slices={self._slices} addr={self._addr:#x}")

    def close(self) -> None:
        """Unmap the memory. Idempotent.

        Raises :class:`arena.errors.LiveViewsError` if views (or arrays derived from them) are
        still alive; then nothing is closed and the object stays fully usable. Afterwards every
        method raises :class:`arena.errors.ClosedError` (properties still answer).
        """
        mm = self._mm
        if mm is None:
            return
        self._base = None  # drop our own exports of the buffer
        self._exporter = None
        try:
            try:
                mm.close()
            except BufferError:
                gc.collect()  # views kept alive only by reference cycles
                mm.close()
        except BufferError:
            self._base = self._make_base()
            raise LiveViewsError(
                "PhysicalMemory.close(): numpy views of this memory are still alive; delete "
                "them (del view) or copy what you need (view.copy()) and call close() again. "
                "Nothing was closed.") from None
        self._mm = None
        self._close_fd()
        self._written = []
        self._released = []

    def __enter__(self) -> PhysicalMemory:
        self._open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        """Close; if the block raised, a refusal to close (views alive, perhaps only through
        that exception's traceback) does not hide the block's exception: the memory then stays
        open until it and its views are garbage collected."""
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except LiveViewsError:
            pass
