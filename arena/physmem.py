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

NUMA without libnuma: ``mbind``, ``get_mempolicy`` and ``move_pages`` are called through
``ctypes`` ``syscall`` (x86_64 and aarch64 numbers) in the private section "host memory
syscalls" below; other architectures keep the node tags and report every slice unbound.

Not thread-safe: callers serialise (memblock is single-threaded, like the kernel at boot).
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import gc
import math
import mmap
import os
import platform
import re
import warnings
from collections.abc import Sequence
from fractions import Fraction
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import psutil

from arena import memfd
from arena._args import bool_arg, int_arg
from arena.errors import ArenaMemoryError, ClosedError, InvariantError, LiveViewsError

__all__ = [
    "PhysicalMemory",
    "NodeSlice",
    "BindStatus",
    "parse_size",
    "host_nodes",
]

# -- constants ----------------------------------------------------------------------------------

PAGE_SIZE: int = mmap.PAGESIZE
#: The largest alignment the real virtual addresses reproduce (bytes).
MAX_ALIGN: int = 1 << 30
#: Physical addresses are 64-bit (phys_addr_t); phys_base + size may not exceed this.
PHYS_ADDR_LIMIT: int = 1 << 64

MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # absent from Python 3.11's mmap module
MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", 14)
MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", 4)
MADV_REMOVE = getattr(mmap, "MADV_REMOVE", 9)
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux >= 5.14

MPOL_BIND = 2
MPOL_F_MEMS_ALLOWED = 1 << 2
#: Bits in the node masks we pass to the kernel (the kernel's MAX_NUMNODES is at most 1024).
NODEMASK_BITS = 1024
#: Largest node id a slice may carry.
MAX_NID = NODEMASK_BITS - 1

# mincore() is asked about at most this many bytes at a time, bounding its result vector.
_MINCORE_CHUNK = 1 << 30
# Headroom kept free when populate=True pre-faults the whole memory.
_POPULATE_HEADROOM = 256 << 20

_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_SIZE_RE = re.compile(r"^\s*(0x[0-9a-f]+|\d+)\s*([kmgtpe]?)(i?b)?\s*$", re.IGNORECASE)


# -- small public types and helpers --------------------------------------------------------------

class NodeSlice(NamedTuple):
    """One NUMA slice of the memory: node id ``nid`` owns ``[phys_start, phys_start + size)``."""

    nid: int
    phys_start: int
    size: int


class BindStatus(NamedTuple):
    """Where one slice's pages are placed on the host.

    ``host_node`` is the host node the slice is bound to with ``mbind(MPOL_BIND)``, or ``None``
    when unbound; ``reason`` says why in words (e.g. ``"host has no node 1 (host nodes: 0)"``).
    """

    nid: int
    phys_start: int
    size: int
    host_node: int | None
    reason: str

    @property
    def bound(self) -> bool:
        """True if the slice is bound to a host node."""
        return self.host_node is not None


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


def parse_size(value: Any, *, name: str = "size", allow_zero: bool = False) -> int:
    """Parse a byte count: an int, a numpy integer or a string such as ``"64 GiB"``.

    Strings: a decimal or ``0x`` hex number, optionally followed by a binary unit ``K``/``M``/
    ``G``/``T``/``P``/``E`` (powers of 1024, as the kernel's ``memparse``), written alone
    (``"1G"``) or with ``iB`` (``"4KiB"``, ``"2 MiB"``), or a plain ``B``. Decimal-looking units
    (``"GB"``) are refused as ambiguous.

    Returns the count in bytes. Raises ``TypeError`` for bools, floats, None and other types,
    ``ValueError`` for malformed strings, negative counts and (unless ``allow_zero``) zero.
    O(1).
    """
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m is None:
            raise ValueError(f"{name}: cannot parse {value!r} (examples: 4096, '4 KiB', '1G')")
        number, unit, suffix = m.group(1), m.group(2).upper(), (m.group(3) or "")
        if unit and suffix.lower() == "b":
            raise ValueError(
                f"{name}: {value!r} is ambiguous; write {unit}iB (binary, 1024-based) or {unit}")
        if not unit and suffix.lower() == "ib":
            raise ValueError(f"{name}: cannot parse {value!r} ('iB' needs a unit such as KiB)")
        result = int(number, 0) << _UNITS[unit]
    else:
        result = int_arg(name, value)
    if result < 0 or (result == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    return result


# -- host memory syscalls (private) -------------------------------------------------------------
# mincore() is a plain libc function; mbind, get_mempolicy and move_pages have no glibc wrapper
# without libnuma, so they go through syscall(2) with the architecture's numbers.

_SYSCALLS: dict[str, tuple[int, int, int]] = {
    # machine: (mbind, get_mempolicy, move_pages)
    "x86_64": (237, 239, 279),
    "amd64": (237, 239, 279),
    "aarch64": (235, 236, 239),
    "arm64": (235, 236, 239),
}
_NR = _SYSCALLS.get(platform.machine().lower())
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.mincore.restype = ctypes.c_int
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mprotect.restype = ctypes.c_int
_NodeMask = ctypes.c_ulong * (NODEMASK_BITS // (8 * ctypes.sizeof(ctypes.c_ulong)))


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _nodemask(nodes: Sequence[int]) -> ctypes.Array:
    mask = _NodeMask()
    bits = 8 * ctypes.sizeof(ctypes.c_ulong)
    for nid in nodes:
        mask[nid // bits] |= 1 << (nid % bits)
    return mask


def _sys_mbind(addr: int, length: int, node: int) -> None:
    """``mbind(addr, length, MPOL_BIND, {node})``; raises OSError."""
    if _NR is None:
        raise OSError(errno.ENOSYS, f"mbind is not wired for {platform.machine()}")
    rc = _libc.syscall(ctypes.c_long(_NR[0]), ctypes.c_void_p(addr), ctypes.c_ulong(length),
                       ctypes.c_int(MPOL_BIND), _nodemask([node]),
                       ctypes.c_ulong(NODEMASK_BITS + 1), ctypes.c_uint(0))
    if rc != 0:
        raise _oserror("mbind")


def _sys_mems_allowed() -> frozenset[int]:
    """Nodes this process may allocate on: ``get_mempolicy(MPOL_F_MEMS_ALLOWED)``."""
    if _NR is None:
        raise OSError(errno.ENOSYS, f"get_mempolicy is not wired for {platform.machine()}")
    mode = ctypes.c_int()
    mask = _NodeMask()
    rc = _libc.syscall(ctypes.c_long(_NR[1]), ctypes.byref(mode), mask,
                       ctypes.c_ulong(NODEMASK_BITS + 1), ctypes.c_void_p(0),
                       ctypes.c_ulong(MPOL_F_MEMS_ALLOWED))
    if rc != 0:
        raise _oserror("get_mempolicy")
    bits = 8 * ctypes.sizeof(ctypes.c_ulong)
    return frozenset(i * bits + b for i, word in enumerate(mask) for b in range(bits)
                     if word >> b & 1)


def _sys_page_nodes(addrs: Sequence[int]) -> list[int]:
    """``move_pages(0, n, addrs, NULL, status, 0)``: node per page, or a negative errno.

    ``-ENOENT`` means no page is there (never touched or released); ``-EFAULT`` is the shared
    zero page (only ever read). Moves nothing and faults nothing in.
    """
    if _NR is None:
        raise OSError(errno.ENOSYS, f"move_pages is not wired for {platform.machine()}")
    n = len(addrs)
    pages = (ctypes.c_void_p * n)(*addrs)
    status = (ctypes.c_int * n)()
    rc = _libc.syscall(ctypes.c_long(_NR[2]), ctypes.c_int(0), ctypes.c_ulong(n), pages,
                       ctypes.c_void_p(0), status, ctypes.c_int(0))
    if rc < 0:
        raise _oserror("move_pages")
    return list(status)


def _sys_mincore_count(addr: int, length: int) -> int:
    """Number of resident pages in ``[addr, addr + length)`` (page-aligned), via ``mincore``."""
    total = 0
    vec = np.empty(min(length, _MINCORE_CHUNK) // PAGE_SIZE, np.uint8)
    for start in range(addr, addr + length, _MINCORE_CHUNK):
        chunk = min(_MINCORE_CHUNK, addr + length - start)
        npages = chunk // PAGE_SIZE
        if _libc.mincore(start, chunk, vec.ctypes.data) != 0:
            raise _oserror("mincore")
        total += int(np.count_nonzero(vec[:npages] & 1))
    return total


def host_nodes() -> frozenset[int]:
    """The host's NUMA nodes this process may use.

    From ``get_mempolicy(MPOL_F_MEMS_ALLOWED)``, else the ``node<N>`` entries of
    ``/sys/devices/system/node``; empty if neither is available. O(nodes).
    """
    try:
        return _sys_mems_allowed()
    except OSError:
        pass
    try:
        names = os.listdir("/sys/devices/system/node")
    except OSError:
        return frozenset()
    return frozenset(int(n[4:]) for n in names if n.startswith("node") and n[4:].isdigit())


# -- node slices ---------------------------------------------------------------------------------

def _split_nodes(nodes: Any, size: int, phys_base: int) -> list[NodeSlice]:
    """Turn the ``nodes`` argument into consecutive page-aligned slices (see PhysicalMemory)."""
    if nodes is None:
        return [NodeSlice(0, phys_base, size)]
    npages = size // PAGE_SIZE
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, (Sequence, int, np.integer)) \
            or isinstance(nodes, (bool, np.bool_)):
        raise TypeError(f"nodes must be None, a count or a list of sizes or fractions, "
                        f"not {type(nodes).__name__} ({nodes!r})")
    if not isinstance(nodes, Sequence):
        count = int_arg("nodes", nodes)
        if not 1 <= count <= min(npages, MAX_NID + 1):
            raise ValueError(f"nodes={count}: need 1 .. {min(npages, MAX_NID + 1)} "
                             f"(at most one node per page and {MAX_NID + 1} nodes)")
        per = npages // count
        pages = [per] * (count - 1) + [npages - per * (count - 1)]
    else:
        items = list(nodes)
        if not 1 <= len(items) <= MAX_NID + 1:
            raise ValueError(f"nodes: need 1 .. {MAX_NID + 1} entries, got {len(items)}")
        if all(isinstance(x, (float, Fraction, np.floating)) for x in items):
            if not all(isinstance(x, Fraction) or math.isfinite(x) for x in items):
                raise ValueError(f"nodes: fractions must be finite, got {nodes!r}")
            fracs = [x if isinstance(x, Fraction) else Fraction(float(x)) for x in items]
            if any(f <= 0 for f in fracs) or abs(sum(fracs, Fraction(0)) - 1) > Fraction(1, 10**9):
                raise ValueError(f"nodes: fractions must be positive and sum to 1, got {nodes!r}")
            # Cumulative boundaries rounded down to pages; the last slice takes the remainder.
            cuts, acc = [0], Fraction(0)
            for f in fracs[:-1]:
                acc += f
                cuts.append(math.floor(acc * npages))
            cuts.append(npages)
            pages = [b - a for a, b in pairwise(cuts)]
            if min(pages) <= 0:
                raise ValueError(f"nodes: fractions {nodes!r} leave a node without a whole page "
                                 f"of the {size:#x}-byte memory")
        else:
            try:
                sizes = [parse_size(x, name=f"nodes[{i}]") for i, x in enumerate(items)]
            except TypeError:
                raise TypeError(f"nodes: a list must hold only sizes (ints or size strings) or "
                                f"only fractions (floats), got {nodes!r}") from None
            if sum(sizes) != size:
                hint = (" (basis points? pass [Fraction(bp, 10000) for bp in ...])"
                        if sum(sizes) == 10000 else "")
                raise ValueError(f"nodes: sizes sum to {sum(sizes):#x}, not to size "
                                 f"{size:#x}{hint}")
            bad = [s for s in sizes if s % PAGE_SIZE]
            if bad:
                raise ValueError(f"nodes: sizes must be whole pages of {PAGE_SIZE} bytes, "
                                 f"got {bad[0]:#x}")
            pages = [s // PAGE_SIZE for s in sizes]
    out, start = [], phys_base
    for nid, p in enumerate(pages):
        out.append(NodeSlice(nid, start, p * PAGE_SIZE))
        start += p * PAGE_SIZE
    return out


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

class PhysicalMemory:
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
                f"populate=True would pre-fault {size:#x} bytes but only {vm.available:#x} are "
                f"available (keeping {_POPULATE_HEADROOM >> 20} MiB headroom); use "
                f"populate=False to fault pages in on first touch", size=size,
                free_bytes=vm.available)
        if not noreserve and size > vm.total + psutil.swap_memory().total:
            raise ArenaMemoryError(
                f"noreserve=False commits {size:#x} bytes, more than RAM + swap "
                f"({vm.total:#x} + swap); keep noreserve=True for a sparse memory", size=size,
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

    # -- the "possibly written" record ------------------------------------------------------

    def _mark_written(self, start: int, end: int) -> None:
        """Add the pages overlapping byte offsets ``[start, end)``. O(log n) + list splice."""
        _add_pages(self._written, start, end)

    def _unmark_written(self, start: int, end: int) -> None:
        """Remove byte offsets ``[start, end)`` (page aligned) from the record."""
        _remove_range(self._written, start, end)

    def _written_pieces(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` that may have been written, ascending."""
        return _pieces(self._written, start, end)

    def _dirty_pieces(self, start: int, end: int) -> list[tuple[int, int]]:
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

    def _touched_pieces(self, start: int, end: int) -> list[tuple[int, int]]:
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

    # -- pages -----------------------------------------------------------------------------

    def resident_bytes(self, phys: int | None = None, size: int | None = None) -> int:
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

    def _pages(self, phys: Any, size: Any, what: str) -> tuple[int, int]:
        """:meth:`_offset` of a range that must be whole pages (ValueError otherwise)."""
        self._open()
        off, size = self._offset(phys, size, what)
        if off % PAGE_SIZE or size % PAGE_SIZE:
            raise ValueError(f"{what}: [{phys:#x}, +{size:#x}) is not whole "
                             f"{PAGE_SIZE}-byte pages")
        return off, size

    def release(self, phys: int, size: int, *, unviewed: bool = False) -> None:
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

    def protect(self, phys: int, size: int, prot: int) -> None:
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

    def advise_hugepages(self, phys: int, size: int) -> bool:
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

    def node_of_page(self, phys: int) -> int | None:
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
