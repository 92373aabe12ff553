"""memblock: the Linux kernel's boot-time allocator (``mm/memblock.c``), bit-exact.

Invariants (checked by :meth:`Memblock.check`, O(n)):

* Each region array (``memory``, ``reserved``, ``physmem``) holds exactly ``cnt`` live
  regions, **sorted by base and non-overlapping**; every region has ``size > 0`` and ends at or
  below ``PHYS_ADDR_MAX`` (the last byte of the address space is never covered).
* Each array is **minimal**: two neighbours that touch (``a.base + a.size == b.base``) and have
  equal ``nid`` and ``flags`` are merged into one region. Documented kernel exceptions:
  ``cap_memory_range`` leaves NOMAP pieces split (as the kernel's does).
* ``total_size`` is the sum of the sizes plus what ``trim_memory`` left behind, modulo
  ``2**phys_addr_bits`` (the kernel does not adjust ``total_size`` when it trims a region in
  place: a shrunk region leaves the total inflated, one whose start wrapped to 0 near the top
  of the address space grew and leaves it short). That difference is tracked exactly
  (``total_excess``) until an add into an empty array resets the total.
* ``cnt <= max``. Empty arrays have ``cnt == 0`` (kernels up to 6.10 kept an "empty dummy
  entry": ``cnt == 1``, see ``kernel_version``).
* The storage's own invariants (chunk lengths, keys, gap bounds): :mod:`arena.memblock_store`.

Everything else follows the kernel rule by rule: the address every allocation chooses, the
region arrays after each call, the return values (0 / ``-ENOMEM`` / 0 for a failed physical
allocation / ``None`` for the kernel's NULL) and the printed text (``memblock=debug`` lines on
the ``arena.memblock`` logger at INFO, and :meth:`Memblock.dump_all`).

Modules (imports point one way: memblock -> index -> store -> constants):

* this one: the kernel's functions, one method each, over the API below;
* :mod:`arena.memblock_store`: the region arrays (:class:`MemblockType`, chunked columns) and
  the windows an operation works on (open a window, change it, commit it), O(log n) plus the
  regions touched;
* :mod:`arena.memblock_index`: the free-range search (highest fit, lowest fit) through per-chunk
  gap bounds of ``reserved``: an allocation costs O(m + log n) for m usable memory regions,
  against O(n) for the kernel's walk;
* :mod:`arena.memblock_linear`: the kernel's linear walk, written plainly: the reference the
  fast search is tested against (``Memblock._fast = False`` selects it here), also taken for
  size 0, layouts within ``align`` of the top of the address space (bottom-up) and memory that
  ``trim_memory`` left unsorted (its round_up wrapping at the top).

Layout of this module follows ``memblock.c``, function for function in the kernel's order:
overlap tests and the search for free space, the array primitives (double / merge / insert /
add_range), add / remove / free / reserve, the flag setters, the iterators and set_node, the
allocation chain, sizes, limits and lookups, dump, the hand-over; then ``check()``.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from arena._args import bool_arg, int_arg
from arena.constants import (
    DRIVER_MANAGED,
    ENOMEM,
    FLAGS_MASK,
    HOTPLUG,
    KHO_SCRATCH,
    MIRROR,
    NOMAP,
    NONE,
    NUMA_NO_NODE,
    RSRV_KERN,
    RSRV_NOINIT,
    MemblockFlags,
    round_up,
    round_up_wrap,
)
from arena.errors import ClosedError, HandoverError, MemblockBug, MemblockPanic, MemblockWarning
from arena.memblock_index import highest_fit, lowest_fit
from arena.memblock_linear import find_range_bottom_up, find_range_top_down
from arena.memblock_store import MemblockType, Region, RegionsView, Window
from arena.protocols import PageSink, PhysMemory

__all__ = [
    "ENOMEM",
    "MEMBLOCK_ALLOC_ACCESSIBLE",
    "MEMBLOCK_ALLOC_ANYWHERE",
    "MEMBLOCK_ALLOC_KASAN",
    "MEMBLOCK_ALLOC_NOLEAKTRACE",
    "MEMBLOCK_LOW_LIMIT",
    "NEWEST_KERNEL",
    "NUMA_NO_NODE",
    "Memblock",
    "MemblockFlags",
    "MemblockType",
    "MemblockWarning",
    "Region",
    "RegionsView",
]

# --------------------------------------------------------------------------------------------
# Constants (include/linux/memblock.h; NUMA_NO_NODE, ENOMEM and the flags: arena.constants)
# --------------------------------------------------------------------------------------------

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
#: The kernel whose behaviour ``kernel_version=None`` selects (the newest source read, ≈v7.1).
NEWEST_KERNEL = (7, 1)

_INIT_PHYSMEM_REGIONS = 4

_log = logging.getLogger("arena.memblock")
_INFO = logging.INFO


def _c_bool(name: str, value: Any) -> bool:
    """A C ``bool`` argument: a bool or an integer (numpy ones too)."""
    return bool_arg(name, value, allow_int=True)

# Frames in these files are skipped when naming the caller of a debug line (the kernel's %pS).
_HERE = os.path.dirname(os.path.abspath(__file__))
_SKIP_FILES = frozenset({os.path.join(_HERE, "memblock.py"), os.path.join(_HERE, "kernel.py")})


def _caller() -> str:
    """Name of the first Python function outside this module and ``arena.kernel``."""
    f: Any = sys._getframe(1)
    while f is not None and f.f_code.co_filename in _SKIP_FILES:
        f = f.f_back
    return f.f_code.co_name if f is not None else "?"


def _kernel_version_arg(kernel_version: tuple[int, int] | None) -> tuple[int, int]:
    """The ``kernel_version`` argument of :class:`Memblock`: ``None`` = :data:`NEWEST_KERNEL`,
    else a ``(major, minor)`` tuple of ints."""
    if kernel_version is None:
        return NEWEST_KERNEL
    if not isinstance(kernel_version, tuple) or len(kernel_version) != 2:
        raise TypeError(f"kernel_version must be a (major, minor) tuple, not {kernel_version!r}")
    v = (int_arg("kernel_version[0]", kernel_version[0]),
         int_arg("kernel_version[1]", kernel_version[1]))
    if v[0] < 2 or v[1] < 0:
        raise ValueError(f"kernel_version {kernel_version!r} is not a kernel version")
    return v


# --------------------------------------------------------------------------------------------
# The allocator
# --------------------------------------------------------------------------------------------


class Memblock:
    """The kernel's ``struct memblock`` plus every ``memblock_*`` function as a method.

    Parameters (architecture and kernel build; the kernel's test harness uses
    ``smp_cache_bytes=32, page_size=4096, max_numnodes=16``):

    * ``physmem``: an :class:`arena.physmem.PhysicalMemory` backing the addresses; needed only by
      the methods that return memory (``alloc*``). ``None`` = pure simulation.
    * ``phys_addr_bits``: 64 or 32 (``phys_addr_t`` width; wrap and capping happen at
      ``2**phys_addr_bits``).
    * ``page_size`` (``PAGE_SIZE``), ``smp_cache_bytes`` (``SMP_CACHE_BYTES``, what ``align == 0``
      means).
    * ``numa``: ``CONFIG_NUMA``. Without it node ids are not stored, every region reads as node 0
      and ``MAX_NUMNODES`` is 1, so a node-specific request matches any memory.
    * ``max_numnodes``: ``MAX_NUMNODES`` with NUMA.
    * ``init_regions``: initial capacity of ``memory`` and ``reserved`` (``physmem``: 4).
    * ``arch_low_address_limit``: ``ARCH_LOW_ADDRESS_LIMIT`` (``alloc_low``).
    * ``bottom_up_kernel_end``: physical end of the kernel image; enables the bottom-up rule of
      kernels <= 5.10 (bottom-up only above it, falling back to top-down). ``None`` = 5.11+ rule.
    * ``kernel_version``: ``None`` = newest; else ``(major, minor)`` selects older behaviour:
      ``<= (6, 10)`` empty dummy entry (``cnt == 1``, dumped); ``< (6, 16)`` reservations and
      allocations get flags 0 and nid ``MAX_NUMNODES`` and the debug line is
      ``memblock_reserve: [B-E] caller``; ``< (5, 16)`` the physical free prints as
      ``memblock_free`` and ``add_node`` prints no ``flags=``; ``< (6, 7)`` growth without
      ``allow_resize()`` returns ``-ENOMEM`` instead of panicking; ``< (6, 10)`` the old node
      rules (any nid other than ``NUMA_NO_NODE`` is a node filter, ``MAX_NUMNODES`` is converted
      to ``NUMA_NO_NODE`` with a one-time warning, ``for_each_mem_pfn_range`` matches
      ``MAX_NUMNODES``) and the dump prints the node when ``nid != MAX_NUMNODES``;
      ``< (6, 3)`` merging scans the whole array; ``< (6, 0)`` ``mark_mirror`` is not gated on
      ``mirrored_kernelcore``; ``(5, 1) <= v < (5, 4)`` ``alloc_range_nid`` clamps ``end`` to
      ``current_limit``; ``< (6, 5)`` ``free_all`` has no ``set_node`` pass over ``reserved``.
    * ``region_size``: ``sizeof(struct memblock_region)`` (default 24 with 64-bit phys, 16/12
      with 32-bit NUMA/non-NUMA; i386 with 64-bit phys: 20); enters the doubling sizes.
    * ``phys_map``: ``CONFIG_HAVE_MEMBLOCK_PHYS_MAP`` (the dump then lists ``physmem`` too).

    Other kernel globals are plain attributes: ``movable_node`` (``movable_node_enabled``),
    ``mirrored_kernelcore`` (``kernelcore=mirror``), ``kho_scratch_only``.

    With the environment variable ``ARENA_CHECK=1`` every mutator ends with :meth:`check`.
    """

    def __init__(
        self,
        physmem: PhysMemory | None = None,
        *,
        phys_addr_bits: int = 64,
        page_size: int = 4096,
        smp_cache_bytes: int = 64,
        numa: bool = True,
        max_numnodes: int = 64,
        init_regions: int = 128,
        arch_low_address_limit: int = 0xFFFFFFFF,
        bottom_up_kernel_end: int | None = None,
        kernel_version: tuple[int, int] | None = None,
        region_size: int | None = None,
        phys_map: bool = False,
    ) -> None:
        phys_addr_bits = int_arg("phys_addr_bits", phys_addr_bits)
        if phys_addr_bits not in (32, 64):
            raise ValueError(f"phys_addr_bits must be 32 or 64, not {phys_addr_bits}")
        mask = (1 << phys_addr_bits) - 1
        page_size = int_arg("page_size", page_size)
        if page_size < 1 or page_size & (page_size - 1) or page_size > mask:
            raise ValueError(f"page_size must be a power of two, not {page_size}")
        smp_cache_bytes = int_arg("smp_cache_bytes", smp_cache_bytes)
        if not 1 <= smp_cache_bytes <= mask:
            raise ValueError(f"smp_cache_bytes must be positive, not {smp_cache_bytes}")
        if not isinstance(numa, (bool, np.bool_)):
            raise TypeError(f"numa must be a bool, not {type(numa).__name__}")
        max_numnodes = int_arg("max_numnodes", max_numnodes)
        if not 1 <= max_numnodes <= 1 << 16:
            raise ValueError(f"max_numnodes must be in 1..65536, not {max_numnodes}")
        init_regions = int_arg("init_regions", init_regions)
        if not 1 <= init_regions <= 1 << 40:
            raise ValueError(f"init_regions must be positive, not {init_regions}")
        arch_low_address_limit = int_arg("arch_low_address_limit", arch_low_address_limit)
        if not 0 <= arch_low_address_limit <= mask:
            raise ValueError(f"arch_low_address_limit {arch_low_address_limit:#x} does not fit "
                             f"a {phys_addr_bits}-bit phys_addr_t")
        if bottom_up_kernel_end is not None:
            bottom_up_kernel_end = int_arg("bottom_up_kernel_end", bottom_up_kernel_end)
            if not 0 <= bottom_up_kernel_end <= mask:
                raise ValueError(f"bottom_up_kernel_end {bottom_up_kernel_end:#x} out of range")
        v = _kernel_version_arg(kernel_version)
        numa = bool(numa)
        if region_size is None:
            region_size = 24 if phys_addr_bits == 64 else (16 if numa else 12)
        else:
            region_size = int_arg("region_size", region_size)
            if not 1 <= region_size <= 4096:
                raise ValueError(f"region_size must be in 1..4096, not {region_size}")
        if physmem is not None and not isinstance(physmem, PhysMemory):
            raise TypeError(f"physmem must be a PhysicalMemory (or None), not "
                            f"{type(physmem).__name__}")

        self._physmem = physmem
        self._bits = phys_addr_bits
        self._mask = mask                      # PHYS_ADDR_MAX
        self._hexw = phys_addr_bits // 4      # %pa digits
        self._page_size = page_size
        self._page_shift = page_size.bit_length() - 1
        self._smp_cache_bytes = smp_cache_bytes
        self._numa = numa
        # MAX_NUMNODES is 1 << NODES_SHIFT; without CONFIG_NUMA, NODES_SHIFT is 0.
        self._max_numnodes = max_numnodes if numa else 1
        self._arch_low_address_limit = arch_low_address_limit
        self._kernel_end = bottom_up_kernel_end
        self._version = v
        self._region_size = region_size
        self._phys_map = bool_arg("phys_map", phys_map)

        self._set_version_switches(v)

        code = "Q" if phys_addr_bits == 64 else "I"
        self.memory = MemblockType("memory", init_regions, code, self._v_dummy)
        self.reserved = MemblockType("reserved", init_regions, code, self._v_dummy)
        self.physmem = MemblockType("physmem", _INIT_PHYSMEM_REGIONS, code, self._v_dummy)

        self._bottom_up = False
        self._current_limit = mask                       # MEMBLOCK_ALLOC_ANYWHERE
        self._can_resize = False
        self.system_has_some_mirror = False
        self.mirrored_kernelcore = False
        self.movable_node = False
        self.kho_scratch_only = False
        self._warned_once: set[str] = set()
        self._handed_over = False
        self._buddy: PageSink | None = None
        self._autocheck = os.environ.get("ARENA_CHECK") == "1"
        # False: every search takes the kernel's linear walk (the reference; tests compare).
        self._fast = True

    def _set_version_switches(self, v: tuple[int, int]) -> None:
        """The behaviour switches of kernel version ``v``; each names the kernels it covers."""
        self._v_dummy = v <= (6, 10)                     # empty dummy entry
        self._v_rsrv_kern = v >= (6, 16)                 # RSRV_KERN reservation attributes
        self._v_phys_free_name = "memblock_phys_free" if v >= (5, 16) else "memblock_free"
        self._v_add_node_flags = v >= (5, 16)            # add_node debug line has flags=
        self._v_resize_panic = v >= (6, 7)               # growth without permission panics
        self._v_numa_valid = v >= (6, 10)                # numa_valid_node() rules
        self._v_window_merge = v >= (6, 3)               # merge only the touched window
        self._v_mirror_gate = v >= (6, 0)                # mark_mirror needs mirrored_kernelcore
        self._v_set_node_pass = v >= (6, 5)              # free_all stamps reserved with nids
        self._v_alloc_clamp = (5, 1) <= v < (5, 4)       # alloc_range_nid clamps end to limit
        self._v_flag_warn_any = v < (6, 16)              # add_range flag WARN also for flags 0

    # -- plain state ------------------------------------------------------------------------

    @property
    def bottom_up(self) -> bool:
        """``memblock.bottom_up``: allocate from low addresses first (default top-down)."""
        return self._bottom_up

    @bottom_up.setter
    def bottom_up(self, enable: bool) -> None:
        self.set_bottom_up(enable)

    @property
    def current_limit(self) -> int:
        """``memblock.current_limit``: the upper bound of ACCESSIBLE allocations (bytes)."""
        return self._current_limit

    @current_limit.setter
    def current_limit(self, limit: int) -> None:
        self.set_current_limit(limit)

    @property
    def numa(self) -> bool:
        """``CONFIG_NUMA``: whether node ids are stored."""
        return self._numa

    @property
    def phys_addr_bits(self) -> int:
        """Width of ``phys_addr_t`` (64 or 32)."""
        return self._bits

    @property
    def page_size(self) -> int:
        """``PAGE_SIZE`` (bytes)."""
        return self._page_size

    @property
    def smp_cache_bytes(self) -> int:
        """``SMP_CACHE_BYTES``: the alignment ``align == 0`` stands for (bytes)."""
        return self._smp_cache_bytes

    @property
    def arch_low_address_limit(self) -> int:
        """``ARCH_LOW_ADDRESS_LIMIT``: the ``max_addr`` of :meth:`alloc_low`."""
        return self._arch_low_address_limit

    @property
    def region_size(self) -> int:
        """``sizeof(struct memblock_region)`` used for the doubling sizes (bytes)."""
        return self._region_size

    @property
    def phys_addr_max(self) -> int:
        """``PHYS_ADDR_MAX`` of this instance (``2**phys_addr_bits - 1``)."""
        return self._mask

    @property
    def max_numnodes(self) -> int:
        """``MAX_NUMNODES`` (1 without NUMA)."""
        return self._max_numnodes

    @property
    def kernel_version(self) -> tuple[int, int]:
        """The kernel whose behaviour this instance follows."""
        return self._version

    @property
    def phys_memory(self) -> PhysMemory | None:
        """The :class:`~arena.physmem.PhysicalMemory` behind ``alloc*`` (or ``None``)."""
        return self._physmem

    @property
    def handed_over(self) -> bool:
        """True once :meth:`free_all` gave the free memory to the page allocator."""
        return self._handed_over

    def __repr__(self) -> str:
        return (f"<Memblock memory={self.memory.cnt} ({self.memory.total_size:#x} bytes) "
                f"reserved={self.reserved.cnt} ({self.reserved.total_size:#x} bytes) "
                f"{'bottom-up' if self._bottom_up else 'top-down'}>")

    def _repr_svg_(self) -> str:
        """The memory map as SVG (how Jupyter displays a Memblock; see
        :mod:`arena.notebook`)."""
        from arena.notebook import memblock_svg  # drawing is imported only when displayed
        return memblock_svg(self)

    # -- argument checks (Python mistakes raise, state unchanged) ------------------------------

    def _phys(self, name: str, v: Any) -> int:
        """A ``phys_addr_t`` argument: an int in ``0 .. PHYS_ADDR_MAX``."""
        if type(v) is not int:
            v = int_arg(name, v)
        if not 0 <= v <= self._mask:
            raise ValueError(f"{name}={v:#x} does not fit a {self._bits}-bit phys_addr_t"
                             if v > 0 else f"{name} must not be negative, not {v}")
        return v

    def _limit(self, name: str, v: Any) -> int:
        """An upper-bound argument: like :meth:`_phys`, and the 64-bit ANYWHERE is accepted."""
        if type(v) is not int:
            v = int_arg(name, v)
        if v == MEMBLOCK_ALLOC_ANYWHERE:
            return self._mask
        return self._phys(name, v)

    @staticmethod
    def _nid_arg(v: Any, name: str = "nid") -> int:
        """An ``int nid`` argument (any C int; out-of-range values mean "any node")."""
        if type(v) is not int:
            v = int_arg(name, v)
        if not -(1 << 31) <= v < 1 << 31:
            raise ValueError(f"{name}={v} does not fit a C int")
        return v

    @staticmethod
    def _flags_arg(v: Any) -> int:
        """A ``enum memblock_flags`` argument: only known flag bits."""
        if type(v) is not int and not isinstance(v, MemblockFlags):
            v = int_arg("flags", v)
        v = int(v)
        if v < 0 or v & ~FLAGS_MASK:
            raise ValueError(f"flags={v:#x} has bits that are not MemblockFlags")
        return v

    @staticmethod
    def _ulong(name: str, v: Any) -> int:
        """An ``unsigned long`` argument (pfn, byte threshold): ``0 .. 2**64 - 1``."""
        if type(v) is not int:
            v = int_arg(name, v)
        if not 0 <= v < 1 << 64:
            raise ValueError(f"{name}={v} does not fit an unsigned long")
        return v

    def _need_alloc(self) -> None:
        if self._handed_over:
            raise HandoverError("memblock has handed its memory to the page allocator "
                                "(free_all() was called); allocate from the buddy allocator")

    # -- output helpers ---------------------------------------------------------------------

    def _pa(self, v: int) -> str:
        """``%pa``: 0x + zero-padded hex of a phys_addr_t."""
        return f"0x{v & self._mask:0{self._hexw}x}"

    def _dbg_range(self, func: str, base: int, size: int, extra: str = "") -> None:
        """``memblock_dbg("%s: [%pa-%pa]...%pS")`` of add/remove/reserve/free (end inclusive)."""
        _log.info(f"{func}: [{self._pa(base)}-{self._pa(base + size - 1)}]{extra} {_caller()}")

    def _warn(self, msg: str) -> None:
        warnings.warn(msg, MemblockWarning, stacklevel=3)

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned_once:
            self._warned_once.add(key)
            self._warn(msg)

    def _done(self) -> None:
        if self._autocheck:
            self.check()

    # ========================================================================================
    # Overlaps and the search for free space (memblock_addrs_overlap .. memblock_find_in_range)
    # ========================================================================================

    def addrs_overlap(self, base1: int, size1: int, base2: int, size2: int) -> bool:
        """``memblock_addrs_overlap()``: ``[base1, base1 + size1)`` and ``[base2, base2 + size2)``
        intersect (sums wrap at ``2**phys_addr_bits`` as in C). O(1)."""
        base1 = self._phys("base1", base1)
        size1 = self._phys("size1", size1)
        base2 = self._phys("base2", base2)
        size2 = self._phys("size2", size2)
        mask = self._mask
        return base1 < (base2 + size2) & mask and base2 < (base1 + size1) & mask

    def _overlaps(self, t: MemblockType, base: int, size: int) -> bool:
        """``memblock_overlaps_region()``: some region intersects ``[base, base + size)``
        (size 0: ``base`` strictly inside a region). O(log n)."""
        end = base + min(size, self._mask - base)
        return t.overlaps(base, end)

    def overlaps_region(self, type: Any, base: int, size: int) -> bool:  # noqa: A002
        """``memblock_overlaps_region(type, base, size)``: ``type`` (a type or its name) has a
        region intersecting ``[base, base + size)``. O(log n)."""
        t = self._type_arg(type)
        return self._overlaps(t, self._phys("base", base), self._phys("size", size))

    def _choose_memblock_flags(self) -> int:
        """``choose_memblock_flags()``: KHO_SCRATCH in scratch-only mode, MIRROR if any
        mirror exists, else NONE."""
        if self.kho_scratch_only:
            return KHO_SCRATCH
        return MIRROR if self.system_has_some_mirror else NONE

    def _find_range_bottom_up_linear(self, start: int, end: int, size: int, align: int,
                                     nid: int, flags: int) -> int:
        """``__memblock_find_range_bottom_up()`` as the kernel writes it: the walk of
        :func:`arena.memblock_linear.find_range_bottom_up` over :meth:`_next_mem_range`. O(n).
        The reference for :meth:`_find_range_bottom_up`."""
        ranges = self._next_mem_range(self.memory, self.reserved, nid, flags)
        return find_range_bottom_up(ranges, start, end, size, align, self._mask)

    def _find_range_top_down_linear(self, start: int, end: int, size: int, align: int,
                                    nid: int, flags: int) -> int:
        """``__memblock_find_range_top_down()`` as the kernel writes it: the walk of
        :func:`arena.memblock_linear.find_range_top_down` over :meth:`_next_mem_range_rev`.
        O(n). The reference for :meth:`_find_range_top_down`."""
        ranges = self._next_mem_range_rev(self.memory, self.reserved, nid, flags)
        return find_range_top_down(ranges, start, end, size, align, self._mask)

    # The indexed search (arena.memblock_index): per usable memory region, the highest /
    # lowest aligned fit among the gaps of reserved clipped to it, which is the kernel's first
    # fit in walk order. Empty ranges (the kernel's [x, x) quirk) never fit a size > 0; size 0
    # takes the linear walk. O(m + log n + c * chunk) for m usable memory regions and c
    # candidate chunks.

    def _find_range_bottom_up(self, start: int, end: int, size: int, align: int, nid: int,
                              flags: int) -> int:
        """``__memblock_find_range_bottom_up()``: lowest aligned fit in the first free range
        (ascending) that holds it; 0 if none. O(m + log n) (see above)."""
        mask = self._mask
        am1 = (align - 1) & mask
        mem = self.memory
        # round_up() wraps to 0 only for a range starting above mask & ~am1, and then the kernel
        # returns 0 at once, whatever the range's length: such layouts (memory within ``align``
        # of the top of the address space) take the linear walk.
        top = mask & ~am1
        if (not size or not self._fast or mem.unsorted or start > top
                or (end > top and mem.last_end() > top + 1)):
            return self._find_range_bottom_up_linear(start, end, size, align, nid, flags)
        node_on, nid, bad, need = self._skip_setup(mem, self._iter_nid(nid), flags)
        reserved = self.reserved
        r = mem.first_ending_above(start)         # memory regions ending above start, up
        while r is not None:
            b, e, mf, mn = r
            if b >= end:
                return 0
            if not ((node_on and nid != mn) or mf & bad or need & ~mf):
                lo = b if b > start else start
                hi = e if e < end else end
                if hi - lo >= size:
                    found = lowest_fit(reserved, lo, hi, size, am1)
                    if found:
                        return found
            r = mem.first_ending_above(e)
        return 0

    def _find_range_top_down(self, start: int, end: int, size: int, align: int, nid: int,
                             flags: int) -> int:
        """``__memblock_find_range_top_down()``: highest aligned fit in the first free range
        (descending) that holds it; 0 if none. O(m + log n) (see above)."""
        if not size or not self._fast or self.memory.unsorted:
            return self._find_range_top_down_linear(start, end, size, align, nid, flags)
        mem = self.memory
        node_on, nid, bad, need = self._skip_setup(mem, self._iter_nid(nid), flags)
        keep = ~((align - 1) & self._mask)
        reserved = self.reserved
        r = mem.last_below(end)                   # memory regions starting below end, down
        while r is not None:
            b, e, mf, mn = r
            if e <= start:
                return 0
            if not ((node_on and nid != mn) or mf & bad or need & ~mf):
                lo = b if b > start else start
                hi = e if e < end else end
                if hi - lo >= size:
                    found = highest_fit(reserved, lo, hi, size, keep)
                    if found:
                        return found
            r = mem.last_below(b)
        return 0

    def _find_in_range_node(self, size: int, align: int, start: int, end: int, nid: int,
                            flags: int) -> int:
        """``memblock_find_in_range_node()``: free ``size`` bytes aligned to ``align`` inside
        ``[start, end)`` on ``nid``; 0 if none.

        ``end`` 0/1 means ``current_limit``; page 0 is never returned. With
        ``bottom_up_kernel_end`` set, kernels <= 5.10's rule applies (bottom-up only above the
        kernel image, then top-down). O(m + log n) (see the module docstring).
        """
        if end == MEMBLOCK_ALLOC_ACCESSIBLE or end == MEMBLOCK_ALLOC_NOLEAKTRACE:
            end = self._current_limit
        if start < self._page_size:
            start = self._page_size
        if end < start:
            end = start
        if self._bottom_up:
            kend = self._kernel_end
            if kend is None:
                return self._find_range_bottom_up(start, end, size, align, nid, flags)
            if end > kend:
                ret = self._find_range_bottom_up(max(start, kend), end, size, align, nid, flags)
                if ret:
                    return ret
                self._warn_once("bottom_up", "memblock: bottom-up allocation failed, memory "
                                "hotremove may be affected")
        return self._find_range_top_down(start, end, size, align, nid, flags)

    def _find_in_range(self, start: int, end: int, size: int, align: int) -> int:
        """``memblock_find_in_range()`` (array doubling): any node, mirror first."""
        flags = self._choose_memblock_flags()
        while True:
            ret = self._find_in_range_node(size, align, start, end, NUMA_NO_NODE, flags)
            if ret or not flags & MIRROR:
                return ret
            _log.warning(f"Could not allocate {self._pa(size)} bytes of mirrored memory")
            flags &= ~MIRROR

    # ========================================================================================
    # Region array primitives (memblock_double_array .. memblock_add_range)
    # ========================================================================================

    def _double_array(self, t: MemblockType, new_area_start: int, new_area_size: int) -> int:
        """``memblock_double_array()``: grow ``t`` to ``2 * max`` regions (0 or -1).

        The new array's space comes from memblock itself (page aligned, avoiding the pending
        range when doubling ``reserved``), and is reserved afterwards; a previous non-static
        array is freed. Raises :class:`MemblockPanic` (>= 6.7) or returns -1 (older) when
        :meth:`allow_resize` was not called. O(n).
        """
        if not self._can_resize:
            if self._v_resize_panic:
                raise MemblockPanic(f"memblock: cannot resize {t.name} array")
            return -1
        ps = self._page_size
        old_size = t.max * self._region_size
        new_size = old_size << 1
        old_alloc = round_up(old_size, ps)
        new_alloc = round_up(new_size, ps)
        if t is not self.reserved:  # only exclude the pending range when doubling reserved
            new_area_start = new_area_size = 0
        addr = self._find_in_range(new_area_start + new_area_size, self._current_limit,
                                   new_alloc, ps)
        if not addr and new_area_size:
            addr = self._find_in_range(0, min(new_area_start, self._current_limit),
                                       new_alloc, ps)
        if not addr:
            _log.error(f"memblock: Failed to double {t.name} array from {t.max} to "
                       f"{t.max * 2} entries !")
            return -1
        if _log.isEnabledFor(_INFO):
            _log.info(f"memblock: {t.name} is doubled to {t.max * 2} at "
                      f"[{self._pa(addr)}-{self._pa(addr + new_size - 1)}]")
        old_phys = t.array_phys
        t.max <<= 1
        t.array_phys = addr
        # Free the old array unless it is a static one. (physmem's static array is not
        # recognised as static by the kernel; its address is unknown here, so nothing is freed.)
        if old_phys is not None:
            self._phys_free(old_phys, old_alloc)
        # Reserve the new array (BUG if that fails).
        if self._reserve_kern_internal(addr, new_alloc) != 0:
            raise MemblockBug(f"memblock: could not reserve the doubled {t.name} array "
                              f"at {self._pa(addr)}")
        return 0

    def _merge_regions(self, t: MemblockType, w: Window, start_rgn: int, end_rgn: int) -> None:
        """``memblock_merge_regions()`` on window ``w``: merge touching neighbours with equal
        nid and flags, for the pairs ``(i, i+1)`` with ``i`` in ``[start_rgn - 1, end_rgn - 1]``
        (window indices; the window holds the neighbours on both sides, so this is the kernel's
        pass). Kernels < 6.3 scan the whole array; that differs only after
        ``cap_memory_range`` left it non-minimal, and then :meth:`_merge_all` runs instead.
        BUG on overlap. O(window)."""
        B, S, F, N = w.B, w.S, w.F, w.N
        n = len(B)
        if n == 0:
            return
        i = start_rgn - 1 if start_rgn > 0 else 0
        limit = min(end_rgn, n - 1)
        while i < limit:
            a_end = B[i] + S[i]
            nb = B[i + 1]
            if a_end != nb or N[i] != N[i + 1] or F[i] != F[i + 1]:
                if a_end > nb:
                    g = w.index(i)
                    w.commit()               # keep the storage consistent for the dump
                    raise MemblockBug(f"memblock: {t.name}[{g}] overlaps {t.name}[{g + 1}]:\n"
                                      + self.dump_all(log=False))
                i += 1
                continue
            S[i] += S[i + 1]
            del B[i + 1], S[i + 1], F[i + 1], N[i + 1]
            limit -= 1

    def _merge_all(self, t: MemblockType) -> None:
        """The whole-array ``memblock_merge_regions()`` of kernels < 6.3. O(n)."""
        w = t.whole()
        self._merge_regions(t, w, 0, t.live)
        w.commit()

    def _merge_store(self, t: MemblockType, w: Window, start_rgn: int, end_rgn: int) -> None:
        """Merge (:meth:`_merge_regions`) and store the window back into ``t``."""
        if self._v_window_merge or not (t.may_be_nonminimal or t.unsorted):
            self._merge_regions(t, w, start_rgn, end_rgn)
            w.commit()
        else:
            w.commit()
            self._merge_all(t)

    def _insert_region(self, t: MemblockType, w: Window, idx: int, base: int, size: int,
                       nid: int, flags: int) -> None:
        """``memblock_insert_region()``: insert at window index ``idx``. BUG if ``t`` is full."""
        cnt = t.live + len(w.B) - w.k          # the array's count with this window
        if cnt >= t.max:
            w.commit()
            raise MemblockBug(f"memblock: inserting into a full {t.name} array "
                              f"(cnt {cnt}, max {t.max})")
        w.insert(idx, base, size, nid, flags)
        t.total_size = (t.total_size + size) & self._mask

    @staticmethod
    def _count_new_regions(w: Window, base: int, end: int) -> int:
        """The counting pass of ``memblock_add_range()``: how many regions adding
        ``[base, end)`` to window ``w`` would insert. O(window)."""
        B, S = w.B, w.S
        cur = base
        nr_new = 0
        idx = w.i0
        n = len(B)
        while idx < n:
            rbase = B[idx]
            if rbase >= end:
                break
            rend = rbase + S[idx]
            if rend <= cur:          # (only an unsorted array has such regions here)
                idx += 1
                continue
            if rbase > cur:
                nr_new += 1
            cur = rend if rend < end else end
            idx += 1
        if cur < end:
            nr_new += 1
        return nr_new

    def _add_range(self, t: MemblockType, base: int, size: int, nid: int, flags: int) -> int:
        """``memblock_add_range()``: add ``[base, base + size)`` to ``t`` (0 or ``-ENOMEM``).

        Existing parts keep their attributes; only uncovered parts get ``(nid, flags)``; then
        touching equal neighbours merge. ``size`` is capped at ``PHYS_ADDR_MAX - base``; size 0
        is a no-op. Works on the window of regions the range overlaps (plus a neighbour on each
        side). O(log n + k) with k the regions overlapped.
        """
        size = min(size, self._mask - base)
        if not size:
            return 0
        if not self._numa:
            nid = 0
        end = base + size
        if not t.live:  # special case for an empty array
            if t.total_size:
                self._warn(f"memblock: empty {t.name} array has total_size {t.total_size:#x}")
            t.load([base], [size], [flags], [nid])
            t.total_size = size
            t.total_excess = 0
            return 0
        w = t.window(base, end)
        if t.live * 2 + 1 > t.max:
            # Counting pass: how many new regions are needed; grow the array first.
            nr_new = self._count_new_regions(w, base, end)
            if not nr_new:
                return 0
            if t.live + nr_new > t.max:
                while t.live + nr_new > t.max:
                    if self._double_array(t, base, size) < 0:
                        return -ENOMEM
                w = t.window(base, end)   # doubling reserved changes it
        # Inserting pass.
        B, S, F, N = w.B, w.S, w.F, w.N
        cur = base
        start_rgn = -1
        end_rgn = 0
        idx = w.i0
        while idx < len(B):
            rbase = B[idx]
            if rbase >= end:
                break
            rend = rbase + S[idx]
            if rend <= cur:
                idx += 1
                continue
            if rbase > cur:
                if self._numa and nid != N[idx]:
                    self._warn(f"memblock: adding [{self._pa(cur)}-{self._pa(rbase - 1)}] to "
                               f"{t.name} with nid {nid} next to nid {N[idx]}")
                if flags != F[idx] and (flags or self._v_flag_warn_any):
                    self._warn(f"memblock: adding [{self._pa(cur)}-{self._pa(rbase - 1)}] to "
                               f"{t.name} with flags {flags:#x} next to flags {F[idx]:#x}")
                if start_rgn == -1:
                    start_rgn = idx
                end_rgn = idx + 1
                self._insert_region(t, w, idx, cur, rbase - cur, nid, flags)
                idx += 1
            cur = rend if rend < end else end
            idx += 1
        if cur < end:
            if start_rgn == -1:
                start_rgn = idx
            end_rgn = idx + 1
            self._insert_region(t, w, idx, cur, end - cur, nid, flags)
        if start_rgn == -1:
            return 0
        self._merge_store(t, w, start_rgn, end_rgn)
        return 0

    # ========================================================================================
    # add / remove / free / reserve (memblock_add_node .. memblock_physmem_add)
    # ========================================================================================

    def add_node(self, base: int, size: int, nid: int, flags: int = 0) -> int:
        """``memblock_add_node()``: add ``[base, base + size)`` to ``memory`` on node ``nid``.

        ``flags`` are :class:`MemblockFlags` for the new parts. Parts already in memory keep
        their own nid/flags. Returns 0, or ``-ENOMEM`` if the array could not grow.
        Raises :class:`MemblockPanic` when it must grow without :meth:`allow_resize` (>= 6.7).
        O(log n + k) plus memmoves.
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        if _log.isEnabledFor(_INFO):
            extra = f" nid={nid} flags={flags:x}" if self._v_add_node_flags else f" nid={nid}"
            self._dbg_range("memblock_add_node", base, size, extra)
        ret = self._add_range(self.memory, base, size, nid, flags)
        self._done()
        return ret

    def add(self, base: int, size: int) -> int:
        """``memblock_add()``: add ``[base, base + size)`` to ``memory`` (nid ``MAX_NUMNODES``,
        flags 0). Returns 0 or ``-ENOMEM``. O(log n + k) plus memmoves."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_add", base, size)
        ret = self._add_range(self.memory, base, size, self._max_numnodes, 0)
        self._done()
        return ret

    def validate_numa_coverage(self, threshold_bytes: int) -> bool:
        """``memblock_validate_numa_coverage()``: False (and the kernel's error line) if more
        than ``threshold_bytes`` of memory has no valid node."""
        threshold_bytes = self._ulong("threshold_bytes", threshold_bytes)
        pages = sum(e - s for s, e, n in self.for_each_mem_pfn_range(self._max_numnodes)
                    if not self._numa_valid_node(n))
        lost = pages << self._page_shift
        if lost > threshold_bytes:
            _log.error(f"NUMA: no nodes coverage for {lost >> 20}MB of "
                       f"{self.memory.total_size >> 20}MB RAM")
            return False
        return True

    def _isolate_range(self, t: MemblockType, base: int,
                       size: int) -> tuple[int, Window | None, int, int]:
        """``memblock_isolate_range()``: split regions at ``base`` and ``base + size``.

        Returns ``(ret, w, start_rgn, end_rgn)``: ``ret`` 0 or ``-ENOMEM``; ``w`` the window of
        regions around the range, split but not yet stored back (None for an empty range);
        the regions inside the range are ``w``'s ``[start_rgn, end_rgn)``. Grows the array
        first whenever ``cnt + 2 > max``, even if no split is needed (kernel behaviour).
        O(log n + k).
        """
        size = min(size, self._mask - base)
        if not size:
            return 0, None, 0, 0
        end = base + size
        while t.cnt + 2 > t.max:
            if self._double_array(t, base, size) < 0:
                return -ENOMEM, None, 0, 0
        w = t.window(base, end)
        B, S, F, N = w.B, w.S, w.F, w.N
        start_rgn = end_rgn = 0
        idx = w.i0
        while idx < len(B):
            rbase = B[idx]
            if rbase >= end:
                break
            rend = rbase + S[idx]
            if rend <= base:
                idx += 1
                continue
            if rbase < base:
                # Straddles the start: keep the upper piece here, insert the lower one below;
                # go on with the upper piece (now at idx + 1).
                B[idx] = base
                S[idx] -= base - rbase
                t.total_size -= base - rbase
                self._insert_region(t, w, idx, rbase, base - rbase, N[idx], F[idx])
                idx += 1
            elif rend > end:
                # Straddles the end: insert the lower piece and look at it again.
                B[idx] = end
                S[idx] -= end - rbase
                t.total_size -= end - rbase
                self._insert_region(t, w, idx, rbase, end - rbase, N[idx], F[idx])
            else:
                if not end_rgn:
                    start_rgn = idx
                end_rgn = idx + 1
                idx += 1
        return 0, w, start_rgn, end_rgn

    def _emptied(self, t: MemblockType) -> None:
        """After removals: an empty array warns about a left-over total and (kernels <= 6.10)
        its dummy entry reads nid ``MAX_NUMNODES``."""
        if not t.live:
            if t.total_size:
                self._warn(f"memblock: {t.name} is empty but total_size is {t.total_size:#x}")
            t.dummy_nid = self._max_numnodes if self._numa else 0

    def _remove_range(self, t: MemblockType, base: int, size: int) -> int:
        """``memblock_remove_range()``: drop ``[base, base + size)`` from ``t`` (0/-ENOMEM);
        ``memblock_remove_region()`` for each region inside. O(log n + k)."""
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret or w is None or s >= e:
            return ret        # nothing inside the range, so nothing was split either
        S = w.S
        t.total_size = (t.total_size - sum(S[s:e])) & self._mask
        w.delete(s, e)
        w.commit(s)
        if not t.live:
            self._emptied(t)
        return 0

    def remove(self, base: int, size: int) -> int:
        """``memblock_remove()``: remove ``[base, base + size)`` from ``memory``.

        Regions are split at the range ends as needed; removing what is not there is a no-op
        (but a nearly full array may still grow). Returns 0 or ``-ENOMEM``. O(log n + k).
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_remove", base, size)
        ret = self._remove_range(self.memory, base, size)
        self._done()
        return ret

    def free(self, view_or_phys: Any, size: int | None = None) -> int:
        """``memblock_free(void *ptr, size)``: free an allocation given as a view or address.

        ``view_or_phys``: a numpy view from an ``alloc*`` method (``size`` defaults to its
        ``nbytes``; the empty array of a size-0 allocation outside the PhysicalMemory frees
        nothing and returns 0), a physical address (then ``size`` is required), or ``None``
        (the kernel's NULL: nothing happens). Returns what :meth:`phys_free` returns (0 for ``None``; the
        kernel's function is void). Raises ``ValueError`` for a view of other memory.
        O(log n + k).
        """
        if view_or_phys is None:
            return 0
        if isinstance(view_or_phys, np.ndarray):
            if self._physmem is None:
                raise ValueError("free(view): this Memblock has no PhysicalMemory")
            if not view_or_phys.nbytes and not size:
                try:
                    phys = self._physmem.phys_of(view_or_phys)
                except ValueError:
                    return 0    # a size-0 allocation outside the memory: 0 bytes to free
                return self.phys_free(phys, 0)
            phys = self._physmem.phys_of(view_or_phys)
            if size is None:
                size = view_or_phys.nbytes
        else:
            phys = view_or_phys
            if size is None:
                raise TypeError("free(phys, size): size is required with a physical address")
        return self.phys_free(phys, size)

    def _phys_free(self, base: int, size: int) -> int:
        """``memblock_phys_free()`` without argument checks (also used by array doubling)."""
        if _log.isEnabledFor(_INFO):
            self._dbg_range(self._v_phys_free_name, base, size)
        ret = self._remove_range(self.reserved, base, size)
        if self._handed_over and ret == 0:
            # With slab up the kernel hands the whole pages to the page allocator.
            self._release_pages(base, size)
        return ret

    def phys_free(self, base: int, size: int) -> int:
        """``memblock_phys_free()`` (``memblock_free()`` before 5.16): un-reserve
        ``[base, base + size)``.

        Freeing what was never reserved is a no-op returning 0. After :meth:`free_all` the
        whole pages of the range also go to the page allocator (order 0). Returns 0 or
        ``-ENOMEM``. O(log n + k).
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        if self._handed_over:
            self._check_pages_in_memory(base, size)
        ret = self._phys_free(base, size)
        self._done()
        return ret

    def _reserve(self, base: int, size: int, nid: int, flags: int) -> int:
        """``__memblock_reserve()``: add ``[base, base + size)`` to ``reserved`` (debug line)."""
        if self._v_rsrv_kern:
            if _log.isEnabledFor(_INFO):
                self._dbg_range("__memblock_reserve", base, size, f" nid={nid} flags={flags:x}")
        elif _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_reserve", base, size)
        return self._add_range(self.reserved, base, size, nid, flags)

    def _reserve_plain(self, base: int, size: int) -> int:
        """``memblock_reserve()``: ``{nid -1, flags 0}`` (< 6.16: ``{MAX_NUMNODES, 0}``)."""
        nid = NUMA_NO_NODE if self._v_rsrv_kern else self._max_numnodes
        return self._reserve(base, size, nid, 0)

    def _reserve_kern_internal(self, base: int, size: int) -> int:
        """``memblock_reserve_kern()`` (< 6.16 the same calls used ``memblock_reserve()``)."""
        if self._v_rsrv_kern:
            return self._reserve(base, size, NUMA_NO_NODE, RSRV_KERN)
        return self._reserve_plain(base, size)

    def reserve(self, base: int, size: int) -> int:
        """``memblock_reserve()``: reserve ``[base, base + size)`` (nid ``NUMA_NO_NODE``, flags 0;
        kernels < 6.16: nid ``MAX_NUMNODES``).

        Any range is accepted (also outside memory). Returns 0 or ``-ENOMEM``. Raises
        :class:`MemblockPanic` when the array must grow without :meth:`allow_resize`.
        O(log n + k) plus memmoves.
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        ret = self._reserve_plain(base, size)
        self._done()
        return ret

    def reserve_kern(self, base: int, size: int) -> int:
        """``memblock_reserve_kern()``: reserve with flags RSRV_KERN, nid ``NUMA_NO_NODE``
        (what allocations record, so the two merge). Returns 0 or ``-ENOMEM``."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if self._v_rsrv_kern:
            ret = self._reserve(base, size, NUMA_NO_NODE, RSRV_KERN)
        else:
            ret = self._reserve(base, size, self._max_numnodes, RSRV_KERN)
        self._done()
        return ret

    def reserve_node(self, base: int, size: int, nid: int, flags: int = 0) -> int:
        """``__memblock_reserve()``: reserve ``[base, base + size)`` with node ``nid`` and
        :class:`MemblockFlags` ``flags`` for the new parts (the attributes a 6.16+
        ``__memblock_reserve`` debug line prints; the counterpart of :meth:`add_node` for
        ``reserved``). Used by replays that reproduce such lines. Returns 0 or ``-ENOMEM``.
        O(log n + k)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        ret = self._reserve(base, size, nid, flags)
        self._done()
        return ret

    def physmem_add(self, base: int, size: int) -> int:
        """``memblock_physmem_add()``: add ``[base, base + size)`` to ``physmem`` (capacity 4).
        Returns 0 or ``-ENOMEM``. O(log n + k)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_physmem_add", base, size)
        ret = self._add_range(self.physmem, base, size, self._max_numnodes, 0)
        self._done()
        return ret

    # ========================================================================================
    # Flags (memblock_setclr_flag .. memblock_clear_kho_scratch)
    # ========================================================================================

    def _setclr_flag(self, t: MemblockType, base: int, size: int, set_: bool, flag: int) -> int:
        """``memblock_setclr_flag()``: set or clear ``flag`` on ``[base, base + size)`` of ``t``."""
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret:
            return ret
        if w is not None and s < e:
            F = w.F
            if set_:
                for i in range(s, e):
                    F[i] |= flag
            else:
                keep = ~flag & 0xFF
                for i in range(s, e):
                    F[i] &= keep
            self._merge_store(t, w, s, e)
        elif not self._v_window_merge and t.may_be_nonminimal:
            self._merge_all(t)
        return 0

    def _setclr(self, t: MemblockType, base: Any, size: Any, set_: bool, flag: int) -> int:
        base = self._phys("base", base)
        size = self._phys("size", size)
        ret = self._setclr_flag(t, base, size, set_, flag)
        self._done()
        return ret

    def mark_hotplug(self, base: int, size: int) -> int:
        """``memblock_mark_hotplug()``: set HOTPLUG on ``memory`` in ``[base, base + size)``.
        Returns 0 or ``-ENOMEM``. O(log n + k)."""
        return self._setclr(self.memory, base, size, True, HOTPLUG)

    def clear_hotplug(self, base: int, size: int) -> int:
        """``memblock_clear_hotplug()``: clear HOTPLUG on ``memory`` in ``[base, base + size)``."""
        return self._setclr(self.memory, base, size, False, HOTPLUG)

    def mark_mirror(self, base: int, size: int) -> int:
        """``memblock_mark_mirror()``: set MIRROR on ``memory`` in ``[base, base + size)``.

        Does nothing (returns 0) unless ``mirrored_kernelcore`` is true (kernels >= 6.0);
        otherwise it first sets ``system_has_some_mirror``, after which every allocation tries
        mirrored memory first.
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        if self._v_mirror_gate and not self.mirrored_kernelcore:
            return 0
        self.system_has_some_mirror = True
        ret = self._setclr_flag(self.memory, base, size, True, MIRROR)
        self._done()
        return ret

    def mark_nomap(self, base: int, size: int) -> int:
        """``memblock_mark_nomap()``: set NOMAP (not allocatable, not in the direct map)."""
        return self._setclr(self.memory, base, size, True, NOMAP)

    def clear_nomap(self, base: int, size: int) -> int:
        """``memblock_clear_nomap()``: clear NOMAP on ``memory`` in ``[base, base + size)``."""
        return self._setclr(self.memory, base, size, False, NOMAP)

    def reserved_mark_noinit(self, base: int, size: int) -> int:
        """``memblock_reserved_mark_noinit()``: set RSRV_NOINIT on ``reserved`` regions."""
        return self._setclr(self.reserved, base, size, True, RSRV_NOINIT)

    def reserved_mark_kern(self, base: int, size: int) -> int:
        """``memblock_reserved_mark_kern()``: set RSRV_KERN on ``reserved`` regions."""
        return self._setclr(self.reserved, base, size, True, RSRV_KERN)

    def mark_kho_scratch(self, base: int, size: int) -> int:
        """``memblock_mark_kho_scratch()``: set KHO_SCRATCH on ``memory``."""
        return self._setclr(self.memory, base, size, True, KHO_SCRATCH)

    def clear_kho_scratch(self, base: int, size: int) -> int:
        """``memblock_clear_kho_scratch()``: clear KHO_SCRATCH on ``memory``."""
        return self._setclr(self.memory, base, size, False, KHO_SCRATCH)

    def set_kho_scratch_only(self) -> None:
        """``memblock_set_kho_scratch_only()``: allocate only from KHO_SCRATCH memory."""
        self.kho_scratch_only = True

    def clear_kho_scratch_only(self) -> None:
        """``memblock_clear_kho_scratch_only()``."""
        self.kho_scratch_only = False

    # ========================================================================================
    # Iterators and nodes (should_skip_region .. memblock_set_node)
    # ========================================================================================

    def _numa_valid_node(self, nid: int) -> bool:
        """``numa_valid_node()``: ``0 <= nid < MAX_NUMNODES``."""
        return 0 <= nid < self._max_numnodes

    def _iter_nid(self, nid: int) -> int:
        """Kernels < 6.10 turned ``MAX_NUMNODES`` into ``NUMA_NO_NODE`` with a warning."""
        if not self._v_numa_valid and nid == self._max_numnodes:
            self._warn_once("max_numnodes", "Usage of MAX_NUMNODES is deprecated. "
                            "Use NUMA_NO_NODE instead")
            return NUMA_NO_NODE
        return nid

    def _skip_setup(self, ta: MemblockType, nid: int, flags: int) -> tuple[bool, int, int, int]:
        """Precompute ``should_skip_region()``: (node filter on, node, bad bits, needed bits)."""
        if ta is not self.memory:
            return False, 0, 0, 0
        if self._v_numa_valid:
            node_on = self._numa_valid_node(nid)
        else:
            node_on = nid != NUMA_NO_NODE
        # Regions with these bits are skipped unless the caller asks for them ...
        bad = (NOMAP | DRIVER_MANAGED | (HOTPLUG if self.movable_node else 0)) & ~flags
        # ... and the caller's MIRROR / KHO_SCRATCH are requirements.
        need = flags & (MIRROR | KHO_SCRATCH)
        return node_on, nid, bad, need

    def _next_mem_range(self, ta: MemblockType, tb: MemblockType | None, nid: int,
                        flags: int) -> Iterator[tuple[int, int, int]]:
        """``__next_mem_range()`` as a generator: ``(start, end, nid)`` of each range of ``ta``
        (filtered by ``should_skip_region``) minus ``tb``, ascending.

        Follows the kernel's two-index walk exactly (so adjacent unmerged ``tb`` regions inside
        one ``ta`` region yield an empty range). O(n_a + n_b) for a full walk.
        """
        node_on, nid, bad, need = self._skip_setup(ta, self._iter_nid(nid), flags)
        pmax = self._mask
        ia = ib = 0
        while True:
            AB, AS, AF, AN = ta.kernel_columns()
            out = None
            while ia < len(AB):
                m_start = AB[ia]
                m_end = m_start + AS[ia]
                m_nid = AN[ia]
                mf = AF[ia]
                if (node_on and nid != m_nid) or mf & bad or need & ~mf:
                    ia += 1
                    continue
                if tb is None:
                    out = (m_start, m_end, m_nid)
                    ia += 1
                    break
                BB, BS = tb.columns()[:2]
                nb = len(BB)
                while ib < nb + 1:
                    r_start = BB[ib - 1] + BS[ib - 1] if ib else 0
                    r_end = BB[ib] if ib < nb else pmax
                    if r_start >= m_end:
                        break
                    if m_start < r_end:
                        out = (m_start if m_start > r_start else r_start,
                               m_end if m_end < r_end else r_end, m_nid)
                        if m_end <= r_end:
                            ia += 1
                        else:
                            ib += 1
                        break
                    ib += 1
                if out is not None:
                    break
                ia += 1
            if out is None:
                return
            yield out

    def _next_mem_range_rev(self, ta: MemblockType, tb: MemblockType | None, nid: int,
                            flags: int) -> Iterator[tuple[int, int, int]]:
        """``__next_mem_range_rev()`` as a generator: like :meth:`_next_mem_range`, descending."""
        node_on, nid, bad, need = self._skip_setup(ta, self._iter_nid(nid), flags)
        pmax = self._mask
        AB = ta.kernel_columns()[0]
        ia = len(AB) - 1
        ib = tb.cnt if tb is not None else 0
        if tb is not None and not tb.live:
            ib = 0  # an empty (or dummy-only) tb has one gap, [0, PHYS_ADDR_MAX)
        while True:
            AB, AS, AF, AN = ta.kernel_columns()
            out = None
            while ia >= 0:
                m_start = AB[ia]
                m_end = m_start + AS[ia]
                m_nid = AN[ia]
                mf = AF[ia]
                if (node_on and nid != m_nid) or mf & bad or need & ~mf:
                    ia -= 1
                    continue
                if tb is None:
                    out = (m_start, m_end, m_nid)
                    ia -= 1
                    break
                BB, BS = tb.columns()[:2]
                nb = len(BB)
                while ib >= 0:
                    r_start = BB[ib - 1] + BS[ib - 1] if ib else 0
                    r_end = BB[ib] if ib < nb else pmax
                    if r_end <= m_start:
                        break
                    if m_end > r_start:
                        out = (m_start if m_start > r_start else r_start,
                               m_end if m_end < r_end else r_end, m_nid)
                        if m_start >= r_start:
                            ia -= 1
                        else:
                            ib -= 1
                        break
                    ib -= 1
                if out is not None:
                    break
                ia -= 1
            if out is None:
                return
            yield out

    def for_each_mem_range(self) -> Iterator[tuple[int, int]]:
        """``for_each_mem_range(i, &start, &end)``: ``(start, end)`` of every memory region
        except NOMAP ones, ascending (HOTPLUG and DRIVER_MANAGED included). O(n)."""
        for s, e, _ in self._next_mem_range(self.memory, None, NUMA_NO_NODE,
                                            HOTPLUG | DRIVER_MANAGED):
            yield s, e

    def for_each_mem_range_rev(self) -> Iterator[tuple[int, int]]:
        """``for_each_mem_range_rev()``: :meth:`for_each_mem_range`, descending."""
        for s, e, _ in self._next_mem_range_rev(self.memory, None, NUMA_NO_NODE,
                                                HOTPLUG | DRIVER_MANAGED):
            yield s, e

    def for_each_free_mem_range(self, nid: int = NUMA_NO_NODE,
                                flags: int = 0) -> Iterator[tuple[int, int, int]]:
        """``for_each_free_mem_range(i, nid, flags, &start, &end, &nid)``: ``(start, end, nid)``
        of memory minus reserved, ascending, filtered as allocations filter (``nid``: a node
        or ``NUMA_NO_NODE``; ``flags`` permit HOTPLUG/NOMAP/DRIVER_MANAGED memory and require
        MIRROR/KHO_SCRATCH). Empty ranges can occur (kernel quirk). O(n_mem + n_reserved)."""
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        return self._next_mem_range(self.memory, self.reserved, nid, flags)

    def for_each_free_mem_range_reverse(self, nid: int = NUMA_NO_NODE,
                                        flags: int = 0) -> Iterator[tuple[int, int, int]]:
        """``for_each_free_mem_range_reverse()``: :meth:`for_each_free_mem_range`, descending."""
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        return self._next_mem_range_rev(self.memory, self.reserved, nid, flags)

    def for_each_reserved_mem_range(self) -> Iterator[tuple[int, int]]:
        """``for_each_reserved_mem_range(i, &start, &end)``: every reserved ``(start, end)``."""
        for s, e, _ in self._next_mem_range(self.reserved, None, NUMA_NO_NODE, 0):
            yield s, e

    def for_each_mem_region(self) -> Iterator[Region]:
        """``for_each_mem_region(r)``: every memory :class:`Region`, ascending."""
        return iter(self.memory.regions)

    def for_each_reserved_mem_region(self) -> Iterator[Region]:
        """``for_each_reserved_mem_region(r)``: every reserved :class:`Region`, ascending."""
        return iter(self.reserved.regions)

    def for_each_mem_pfn_range(self, nid: int = NUMA_NO_NODE) -> Iterator[tuple[int, int, int]]:
        """``for_each_mem_pfn_range(i, nid, &start_pfn, &end_pfn, &nid)``.

        Yields ``(PFN_UP(base), PFN_DOWN(end), region nid)`` for each memory region holding at
        least one whole page whose nid matches (``nid`` not a valid node = all; kernels < 6.10:
        ``MAX_NUMNODES`` = all, anything else must equal the region's nid). No flag filter. O(n).
        """
        nid = self._nid_arg(nid)
        ps1 = self._page_size - 1
        sh = self._page_shift
        t = self.memory
        i = 0
        while True:
            B, S, _, N = t.kernel_columns()
            if i >= len(B):
                return
            base = B[i]
            spfn = (base + ps1) >> sh
            epfn = (base + S[i]) >> sh
            r_nid = N[i]
            i += 1
            if spfn >= epfn:
                continue
            if self._v_numa_valid:
                ok = not self._numa_valid_node(nid) or nid == r_nid
            else:
                ok = nid == self._max_numnodes or nid == r_nid
            if ok:
                yield spfn, epfn, r_nid

    def _type_arg(self, t: Any) -> MemblockType:
        if isinstance(t, str):
            t = {"memory": self.memory, "reserved": self.reserved,
                 "physmem": self.physmem}.get(t, t)
        if t is not self.memory and t is not self.reserved and t is not self.physmem:
            raise ValueError(f"type must be this Memblock's memory, reserved or physmem "
                             f"(or their names), not {t!r}")
        return t

    def set_node(self, base: int, size: int, type: Any, nid: int) -> int:  # noqa: A002
        """``memblock_set_node()``: set the nid of ``type``'s regions in ``[base, base + size)``.

        ``type`` is ``self.memory``/``self.reserved``/``self.physmem`` or its name. Regions are
        split at the range ends and re-merged. Without NUMA: returns 0, no change.
        Returns 0 or ``-ENOMEM``. O(log n + k).
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        t = self._type_arg(type)
        nid = self._nid_arg(nid)
        ret = self._set_node(base, size, t, nid)
        self._done()
        return ret

    def _set_node(self, base: int, size: int, t: MemblockType, nid: int) -> int:
        if not self._numa:
            return 0
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret:
            return ret
        if w is not None and s < e:
            N = w.N
            for i in range(s, e):
                N[i] = nid
            self._merge_store(t, w, s, e)
        elif not self._v_window_merge and t.may_be_nonminimal:
            self._merge_all(t)
        return 0

    # ========================================================================================
    # The allocation chain (memblock_alloc_range_nid .. memblock_alloc_or_panic)
    # ========================================================================================

    def _covered(self, found: int, size: int) -> None:
        """Refuse (ValueError) to hand out memory the PhysicalMemory does not have. Size 0
        hands out no bytes: always fine (the caller then returns a detached empty view when
        ``found`` is not a position of the memory)."""
        if not size:
            return
        pm = self._physmem
        if pm is None:
            raise ValueError("this Memblock has no PhysicalMemory")
        lo = pm.phys_base
        if found < lo or found + size > lo + pm.size:
            raise ValueError(
                f"memblock chose [{self._pa(found)}-{self._pa(found + size - 1)}], which lies "
                f"outside the physical memory [{self._pa(lo)}-{self._pa(lo + pm.size - 1)}]; "
                "add only memory the PhysicalMemory covers (or use the phys_* variants)")

    def _alloc_range_nid(self, size: int, align: int, start: int, end: int, nid: int,
                         exact_nid: bool, cover: bool = False) -> int:
        """``memblock_alloc_range_nid()`` without argument checks; ``cover`` checks the chosen
        range against the PhysicalMemory before anything is reserved."""
        self._need_alloc()
        flags = self._choose_memblock_flags()
        if not self._v_numa_valid and nid == self._max_numnodes:
            self._warn_once("max_numnodes", "Usage of MAX_NUMNODES is deprecated. "
                            "Use NUMA_NO_NODE instead")
            nid = NUMA_NO_NODE
        if self._v_alloc_clamp and end > self._current_limit:
            end = self._current_limit
        if not align:
            align = self._smp_cache_bytes   # the kernel dumps a stack trace here
        if self._v_numa_valid:
            other_node = self._numa_valid_node(nid) and not exact_nid
        else:
            other_node = nid != NUMA_NO_NODE and not exact_nid
        while True:
            # 1. the requested node (or any node for NUMA_NO_NODE / an invalid nid)
            found = self._find_in_range_node(size, align, start, end, nid, flags)
            if found:
                if cover:
                    self._covered(found, size)
                ret = (self._reserve(found, size, nid, RSRV_KERN) if self._v_rsrv_kern
                       else self._reserve_plain(found, size))
                if not ret:
                    return found
            # 2. any node, unless the node is exact
            if other_node:
                found = self._find_in_range_node(size, align, start, end, NUMA_NO_NODE, flags)
                if found:
                    if cover:
                        self._covered(found, size)
                    if not self._reserve_kern_internal(found, size):
                        return found
            # 3. mirrored memory first, then any memory (with the kernel's warning)
            if flags & MIRROR:
                flags &= ~MIRROR
                _log.warning(f"Could not allocate {self._pa(size)} bytes of mirrored memory")
                continue
            return 0

    def alloc_range_nid(self, size: int, align: int, start: int, end: int, nid: int,
                        exact_nid: bool = False) -> int:
        """``memblock_alloc_range_nid()``: reserve ``size`` bytes aligned to ``align`` inside
        ``[start, end)`` and return their physical address, 0 on failure.

        ``align`` 0 means ``SMP_CACHE_BYTES``; ``end`` 0/1 means ``current_limit`` (an explicit
        ``end`` is *not* capped by it). Fallbacks: node ``nid``, then any node (unless
        ``exact_nid``); with mirrored memory all of that first on mirror, then without.
        The block is reserved with flags RSRV_KERN and nid ``nid``. No debug line of its own.
        Raises :class:`HandoverError` after :meth:`free_all`. O(m + log n) per attempt for m
        memory regions and n reserved ones (module docstring).
        """
        size = self._phys("size", size)
        align = self._phys("align", align)
        start = self._phys("start", start)
        end = self._limit("end", end)
        nid = self._nid_arg(nid)
        exact_nid = _c_bool("exact_nid", exact_nid)
        self._need_alloc()
        ret = self._alloc_range_nid(size, align, start, end, nid, exact_nid)
        self._done()
        return ret

    def phys_alloc_range(self, size: int, align: int, start: int, end: int) -> int:
        """``memblock_phys_alloc_range()``: any node in ``[start, end)``; physical address or 0.

        Not capped by ``current_limit`` unless ``end`` is 0/1; no retry without ``start``.
        O(m + log n).
        """
        size = self._phys("size", size)
        align = self._phys("align", align)
        start = self._phys("start", start)
        end = self._limit("end", end)
        self._need_alloc()
        if _log.isEnabledFor(_INFO):
            _log.info(f"memblock_phys_alloc_range: {size} bytes align={align:#x} "
                      f"from={self._pa(start)} max_addr={self._pa(end)} {_caller()}")
        ret = self._alloc_range_nid(size, align, start, end, NUMA_NO_NODE, False)
        self._done()
        return ret

    def phys_alloc(self, size: int, align: int) -> int:
        """``memblock_phys_alloc()``: ``phys_alloc_range(size, align, 0, ACCESSIBLE)``."""
        return self.phys_alloc_range(size, align, 0, MEMBLOCK_ALLOC_ACCESSIBLE)

    def phys_alloc_try_nid(self, size: int, align: int, nid: int) -> int:
        """``memblock_phys_alloc_try_nid()``: node ``nid`` first, then any node, below
        ``current_limit``; physical address or 0. No debug line. O(m + log n)."""
        size = self._phys("size", size)
        align = self._phys("align", align)
        nid = self._nid_arg(nid)
        self._need_alloc()
        ret = self._alloc_range_nid(size, align, 0, MEMBLOCK_ALLOC_ACCESSIBLE, nid, False)
        self._done()
        return ret

    def _alloc_internal(self, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                        exact_nid: bool, cover: bool) -> int:
        """``memblock_alloc_internal()``: cap ``max_addr`` at ``current_limit``; if the first try
        fails and ``min_addr`` is not 0, retry from 0. Returns the physical address or 0."""
        if max_addr > self._current_limit:
            max_addr = self._current_limit
        found = self._alloc_range_nid(size, align, min_addr, max_addr, nid, exact_nid, cover)
        if not found and min_addr:
            found = self._alloc_range_nid(size, align, 0, max_addr, nid, exact_nid, cover)
        return found

    def alloc_internal(self, size: int, align: int, min_addr: int, max_addr: int, nid: int,
                       exact_nid: bool = False) -> int:
        """``memblock_alloc_internal()``: the block the ``memblock_alloc_try_nid*`` family
        chooses and reserves, as a physical address (0 if none), without touching memory
        and without a debug line. ``max_addr`` is capped at ``current_limit`` (0/1 =
        ``current_limit``); if nothing fits above a nonzero ``min_addr`` the search is retried
        from 0; node ``nid`` first, then any node unless ``exact_nid``. Raises
        :class:`HandoverError` after :meth:`free_all`. O(m + log n) per attempt."""
        size = self._phys("size", size)
        align = self._phys("align", align)
        min_addr = self._phys("min_addr", min_addr)
        max_addr = self._limit("max_addr", max_addr)
        nid = self._nid_arg(nid)
        exact_nid = _c_bool("exact_nid", exact_nid)
        self._need_alloc()
        found = self._alloc_internal(size, align, min_addr, max_addr, nid, exact_nid, False)
        self._done()
        return found

    def _alloc_mem(self, func: str, size: Any, align: Any, min_addr: Any, max_addr: Any,
                   nid: Any, exact_nid: bool, zero: bool) -> np.ndarray | None:
        """The one core of every memory-returning variant: checks, debug line, allocation,
        zeroing (never-touched pages are not written), the view."""
        size = self._phys("size", size)
        align = self._phys("align", align)
        min_addr = self._phys("min_addr", min_addr)
        max_addr = self._limit("max_addr", max_addr)
        nid = self._nid_arg(nid)
        pm = self._physmem
        if pm is None:
            raise ValueError(f"{func}() returns memory, so this Memblock needs a PhysicalMemory "
                             "(Memblock(physmem, ...)); without one use the phys_* variants")
        if getattr(pm, "closed", False):
            raise ClosedError(f"{func}(): the PhysicalMemory behind this Memblock is closed")
        self._need_alloc()
        if _log.isEnabledFor(_INFO):
            _log.info(f"{func}: {size} bytes align={align:#x} nid={nid} "
                      f"from={self._pa(min_addr)} max_addr={self._pa(max_addr)} {_caller()}")
        found = self._alloc_internal(size, align, min_addr, max_addr, nid, exact_nid, True)
        self._done()
        if not found:
            return None
        if not size and not pm.contains(found, 0):
            # The kernel returns its pointer to 0 bytes (memblock_reserve_kern(found, 0) is a
            # no-op) even where this PhysicalMemory has no position: an empty array then.
            return np.empty(0, np.uint8)
        try:
            if zero and size:
                pm.zero(found, size)  # before view(), which marks the pages possibly written
            view = pm.view(found, size)
        except BaseException:
            # The memory refused (a fault, a signal): give the block back so that memblock is
            # as before the call. The block was free, so removing it from reserved restores
            # the array exactly (a merge with a neighbour splits back the same way).
            self._remove_range(self.reserved, found, size)
            raise
        return view

    def alloc_exact_nid_raw(self, size: int, align: int, min_addr: int, max_addr: int,
                            nid: int) -> np.ndarray | None:
        """``memblock_alloc_exact_nid_raw()``: as :meth:`alloc_try_nid_raw`, but only node
        ``nid`` (no fallback to other nodes; ``NUMA_NO_NODE`` = any)."""
        return self._alloc_mem("memblock_alloc_exact_nid_raw", size, align, min_addr, max_addr,
                               nid, True, False)

    def alloc_try_nid_raw(self, size: int, align: int, min_addr: int, max_addr: int,
                          nid: int) -> np.ndarray | None:
        """``memblock_alloc_try_nid_raw()``: as :meth:`alloc_try_nid`, not zeroed."""
        return self._alloc_mem("memblock_alloc_try_nid_raw", size, align, min_addr, max_addr,
                               nid, False, False)

    def alloc_try_nid(self, size: int, align: int, min_addr: int, max_addr: int,
                      nid: int) -> np.ndarray | None:
        """``memblock_alloc_try_nid()``: zeroed memory in ``[min_addr, max_addr)`` on ``nid``.

        ``max_addr`` is capped at ``current_limit`` (0/1 = ``current_limit``); if nothing fits
        above ``min_addr`` the search is retried from 0; node ``nid`` first, then any node.
        Returns a uint8 view of ``size`` bytes, or ``None``. Size 0 returns what the kernel
        returns: an empty view at the chosen address, or (when that address is no position
        of the PhysicalMemory) an empty array of no memory. O(m + log n) per attempt.
        """
        return self._alloc_mem("memblock_alloc_try_nid", size, align, min_addr, max_addr, nid,
                               False, True)

    def alloc(self, size: int, align: int) -> np.ndarray | None:
        """``memblock_alloc()``: zeroed memory below ``current_limit``, any node; or ``None``."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, MEMBLOCK_LOW_LIMIT,
                               MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, False, True)

    def alloc_raw(self, size: int, align: int) -> np.ndarray | None:
        """``memblock_alloc_raw()``: as :meth:`alloc`, not zeroed."""
        return self._alloc_mem("memblock_alloc_try_nid_raw", size, align, MEMBLOCK_LOW_LIMIT,
                               MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, False, False)

    def alloc_from(self, size: int, align: int, min_addr: int) -> np.ndarray | None:
        """``memblock_alloc_from()``: zeroed memory preferably at or above ``min_addr``."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, min_addr,
                               MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE, False, True)

    def alloc_low(self, size: int, align: int) -> np.ndarray | None:
        """``memblock_alloc_low()``: zeroed memory below ``ARCH_LOW_ADDRESS_LIMIT``."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, MEMBLOCK_LOW_LIMIT,
                               self._arch_low_address_limit, NUMA_NO_NODE, False, True)

    def alloc_node(self, size: int, align: int, nid: int) -> np.ndarray | None:
        """``memblock_alloc_node()``: zeroed memory on node ``nid`` (then any node)."""
        return self._alloc_mem("memblock_alloc_try_nid", size, align, MEMBLOCK_LOW_LIMIT,
                               MEMBLOCK_ALLOC_ACCESSIBLE, nid, False, True)

    def alloc_or_panic(self, size: int, align: int) -> np.ndarray:
        """``memblock_alloc_or_panic()``: :meth:`alloc`, raising :class:`MemblockPanic`
        (``<caller>: Failed to allocate <size> bytes``) instead of returning ``None``."""
        view = self.alloc(size, align)
        if view is None:
            raise MemblockPanic(f"{_caller()}: Failed to allocate {self._pa(int(size))} bytes")
        return view

    def virt_to_phys(self, view: np.ndarray) -> int:
        """``virt_to_phys()``: physical address of the first byte of a view (ValueError if the
        view is not of this memory)."""
        if self._physmem is None:
            raise ValueError("virt_to_phys: this Memblock has no PhysicalMemory")
        return int(self._physmem.phys_of(view))

    def phys_to_virt(self, phys: int, size: int) -> np.ndarray:
        """``phys_to_virt()``: a uint8 view of ``[phys, phys + size)``."""
        if self._physmem is None:
            raise ValueError("phys_to_virt: this Memblock has no PhysicalMemory")
        return self._physmem.view(phys, size)

    # ========================================================================================
    # Sizes, limits and lookups (memblock_phys_mem_size .. memblock_get_current_limit)
    # ========================================================================================

    def phys_mem_size(self) -> int:
        """``memblock_phys_mem_size()``: ``memory.total_size`` (bytes)."""
        return self.memory.total_size

    def reserved_size(self) -> int:
        """``memblock_reserved_size()``: ``reserved.total_size`` (bytes)."""
        return self.reserved.total_size

    def reserved_kern_size(self, limit: int, nid: int) -> int:
        """``memblock_reserved_kern_size()``: bytes of RSRV_KERN reservations below ``limit``
        on ``nid`` (invalid nid = all nodes). O(n)."""
        limit = self._limit("limit", limit)
        nid = self._nid_arg(nid)
        t = self.reserved
        total = 0
        any_node = not self._numa_valid_node(nid)
        for b, s, f, n in t.regions:
            if b > limit:
                break
            if b + s > limit:
                s = limit - b
            if (any_node or n == nid) and f & RSRV_KERN:
                total += s
        return total & self._mask

    def estimated_nr_free_pages(self) -> int:
        """``memblock_estimated_nr_free_pages()``: pages of memory minus kernel reservations."""
        free = (self.memory.total_size
                - self.reserved_kern_size(self._mask, NUMA_NO_NODE)) & self._mask
        return free >> self._page_shift

    def start_of_dram(self) -> int:
        """``memblock_start_of_DRAM()``: base of the first memory region (0 if none)."""
        t = self.memory
        return t.first_base()

    def end_of_dram(self) -> int:
        """``memblock_end_of_DRAM()``: end of the last memory region.

        With no memory the newest kernel reads out of bounds; here (as in kernels <= 6.10 with
        the dummy entry) the result is 0.
        """
        t = self.memory
        return t.last_end()

    def _find_max_addr(self, limit: int) -> int:
        """``__find_max_addr()``: the address below which ``limit`` bytes of memory lie."""
        t = self.memory
        for b, s, _, _ in t.regions:
            if limit <= s:
                return b + limit
            limit -= s
        return self._mask

    def enforce_memory_limit(self, limit: int) -> None:
        """``memblock_enforce_memory_limit()`` (``mem=``): keep the first ``limit`` bytes of
        memory; drop everything above from ``memory`` and ``reserved``. 0 = no limit. O(n)."""
        limit = self._phys("limit", limit)
        if not limit:
            return
        m = self._find_max_addr(limit)
        if m == self._mask:
            return
        self._remove_range(self.memory, m, self._mask)
        self._remove_range(self.reserved, m, self._mask)
        self._done()

    def cap_memory_range(self, base: int, size: int) -> None:
        """``memblock_cap_memory_range()``: keep only ``[base, base + size)`` of memory (NOMAP
        regions outside are kept, split pieces are not re-merged) and of reserved. O(n)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        self._cap_memory_range(base, size)
        self._done()

    def _cap_memory_range(self, base: int, size: int) -> None:
        if not size:
            return
        t = self.memory
        if not t.total_size:
            _log.warning("memblock_cap_memory_range: No memory registered yet")
            return
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret:
            return
        lo = hi = 0                      # the isolated regions, as indices of the whole array
        if w is not None and s < e:
            g0 = w.index(0)
            lo, hi = g0 + s, g0 + e
            w.commit()
        # Remove every region before and after the isolated ones except NOMAP ones, by index
        # as the kernel does (on a sorted array: the regions outside [base, end); on one that
        # trim_memory left unsorted the isolated indices are what counts). O(n).
        B, S, F, N = t.lists()
        keep = [i for i in range(len(B)) if F[i] & NOMAP or lo <= i < hi]
        if len(keep) < len(B):
            t.total_size = (t.total_size - sum(S) + sum(S[i] for i in keep)) & self._mask
            t.load([B[i] for i in keep], [S[i] for i in keep], [F[i] for i in keep],
                    [N[i] for i in keep])
            self._emptied(t)
        t.may_be_nonminimal = True
        self._remove_range(self.reserved, 0, base)
        self._remove_range(self.reserved, (base + size) & self._mask, self._mask)

    def mem_limit_remove_map(self, limit: int) -> None:
        """``memblock_mem_limit_remove_map()``: like :meth:`enforce_memory_limit`, but through
        :meth:`cap_memory_range` (NOMAP memory above the limit survives). O(n)."""
        limit = self._phys("limit", limit)
        if not limit:
            return
        m = self._find_max_addr(limit)
        if m == self._mask:
            return
        self._cap_memory_range(0, m)
        self._done()

    @staticmethod
    def _search(t: MemblockType, addr: int) -> tuple[int, int, int, int] | None:
        """``memblock_search()``: ``(base, size, flags, nid)`` of the region containing
        ``addr``, None if none. O(log n) (on an array trim_memory left unsorted: the kernel's
        probes, see :meth:`MemblockType.containing`)."""
        return t.containing(addr)

    def is_reserved(self, addr: int) -> bool:
        """``memblock_is_reserved()``: ``addr`` lies in a reserved region. O(log n)."""
        return self._search(self.reserved, self._phys("addr", addr)) is not None

    def is_memory(self, addr: int) -> bool:
        """``memblock_is_memory()``: ``addr`` lies in a memory region. O(log n)."""
        return self._search(self.memory, self._phys("addr", addr)) is not None

    def is_map_memory(self, addr: int) -> bool:
        """``memblock_is_map_memory()``: ``addr`` lies in memory that is not NOMAP."""
        p = self._search(self.memory, self._phys("addr", addr))
        return p is not None and not p[2] & NOMAP

    def search_pfn_nid(self, pfn: int) -> tuple[int, int | None, int | None]:
        """``memblock_search_pfn_nid()``: ``(nid, start_pfn, end_pfn)`` of the memory region
        holding page ``pfn`` (``PFN_DOWN`` of both ends); ``(NUMA_NO_NODE, None, None)`` if the
        page is not memory. O(log n)."""
        pfn = self._ulong("pfn", pfn)
        t = self.memory
        p = self._search(t, (pfn << self._page_shift) & self._mask)
        if p is None:
            return NUMA_NO_NODE, None, None
        b, sz, _, nid = p
        return nid, b >> self._page_shift, (b + sz) >> self._page_shift

    def is_region_memory(self, base: int, size: int) -> bool:
        """``memblock_is_region_memory()``: the single memory region containing ``base`` also
        contains ``[base, base + size)`` (size 0: ``base`` is memory). O(log n)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        p = self._search(self.memory, base)
        if p is None:
            return False
        end = base + min(size, self._mask - base)
        return p[0] + p[1] >= end

    def is_region_reserved(self, base: int, size: int) -> bool:
        """``memblock_is_region_reserved()``: ``[base, base + size)`` intersects a reservation."""
        return self._overlaps(self.reserved, self._phys("base", base), self._phys("size", size))

    def trim_memory(self, align: int) -> None:
        """``memblock_trim_memory()``: shrink every memory region to ``align`` boundaries,
        dropping regions that vanish. ``total_size`` is *not* lowered for shrunk regions
        (kernel quirk); ``align`` 0 removes all memory. O(n)."""
        align = self._phys("align", align)
        mask = self._mask
        am1 = (align - 1) & mask
        t = self.memory
        B, S, F, N = t.lists()
        changed = False
        i = 0
        while i < len(B):
            ob = B[i]
            oe = ob + S[i]
            s = round_up_wrap(ob, align, mask)
            e = oe & ~am1
            if s == ob and e == oe:
                i += 1
                continue
            changed = True
            if s < e:
                if s < ob:
                    # round_up wrapped to 0: the kernel's array may now be unsorted and
                    # overlapping (t.load below tells, and goes back to sorted lookups if not)
                    t.unsorted = True
                # total_size keeps the old size: record the difference (negative if the
                # region grew because its start wrapped to 0)
                t.total_excess = (t.total_excess + S[i] - (e - s)) & mask
                B[i] = s
                S[i] = e - s
                i += 1
            else:
                t.total_size = (t.total_size - S[i]) & mask
                del B[i], S[i], F[i], N[i]
        if changed:
            t.load(B, S, F, N)
            self._emptied(t)
        self._done()

    def set_total_size(self, type: Any, total: int) -> None:  # noqa: A002
        """Set ``type.total_size`` to ``total`` bytes, as a kernel's ``MEMBLOCK configuration``
        dump printed it (no kernel counterpart: for replays that start from a printed state).

        ``total`` may exceed the sum of the regions (the ``memblock_trim_memory`` quirk) but not
        fall below it (``ValueError``); ``type`` is ``self.memory``/``reserved``/``physmem`` or
        its name. O(n).
        """
        t = self._type_arg(type)
        total = self._phys("total", total)
        regions = sum(r.size for r in t.regions)
        if total < regions:
            raise ValueError(f"{t.name} total_size {total:#x} is below the sum of its regions "
                             f"{regions:#x}")
        t.total_size = total
        t.total_excess = (total - regions) & self._mask   # what check() allows beyond the sum
        self._done()

    def set_current_limit(self, limit: int) -> None:
        """``memblock_set_current_limit()``: upper bound of ACCESSIBLE allocations (bytes;
        ``MEMBLOCK_ALLOC_ANYWHERE`` = none). Not validated against memory."""
        self._current_limit = self._limit("limit", limit)

    def get_current_limit(self) -> int:
        """``memblock_get_current_limit()``."""
        return self._current_limit

    def set_bottom_up(self, enable: bool) -> None:
        """``memblock_set_bottom_up()``: True = allocate from low addresses first."""
        self._bottom_up = _c_bool("enable", enable)

    def get_bottom_up(self) -> bool:
        """``memblock_bottom_up()``: the current direction (True = bottom-up)."""
        return self._bottom_up

    is_bottom_up = get_bottom_up

    def has_mirror(self) -> bool:
        """``memblock_has_mirror()``: whether ``mark_mirror`` ever took effect."""
        return self.system_has_some_mirror

    def allow_resize(self) -> None:
        """``memblock_allow_resize()``: let region arrays double (permanently)."""
        self._can_resize = True

    # ========================================================================================
    # Dump (memblock_dump, __memblock_dump_all)
    # ========================================================================================

    def _dump_type(self, t: MemblockType, out: list[str]) -> None:
        """``memblock_dump()``: the cnt line and one line per region."""
        out.append(f" {t.name}.cnt  = {t.cnt:#x}")
        pa = self._pa
        numa = self._numa
        valid_rule = self._v_numa_valid
        mx = self._max_numnodes
        for i, r in enumerate(t.regions):
            nid = r.nid
            node = ""
            if numa and ((0 <= nid < mx) if valid_rule else nid != mx):
                node = f" on node {nid}"
            out.append(f" {t.name}[{i:#x}]\t[{pa(r.base)}-{pa(r.base + r.size - 1)}], "
                       f"{pa(r.size)} bytes{node} flags: {int(r.flags):#x}")

    def dump_all(self, log: bool = True) -> str:
        """``memblock_dump_all()``: the kernel's ``MEMBLOCK configuration:`` text.

        Returns the lines joined with ``"\\n"`` (no timestamps); with ``log`` each line is also
        logged at INFO on ``arena.memblock``. O(n).
        """
        out = ["MEMBLOCK configuration:",
               f" memory size = {self._pa(self.memory.total_size)} "
               f"reserved size = {self._pa(self.reserved.total_size)}"]
        self._dump_type(self.memory, out)
        self._dump_type(self.reserved, out)
        if self._phys_map:
            self._dump_type(self.physmem, out)
        if log and _log.isEnabledFor(_INFO):
            for line in out:
                _log.info(line)
        return "\n".join(out)

    # ========================================================================================
    # Hand-over to the page allocator (memblock_free_late, memblock_free_all)
    # ========================================================================================

    def free_late(self, base: int, size: int) -> None:
        """``memblock_free_late()``: after :meth:`free_all`, give the whole pages of
        ``[base, base + size)`` to the page allocator one by one (``boot_free(pfn, 0, nid)``);
        ``reserved`` is not touched. Raises :class:`HandoverError` before ``free_all`` and
        ``ValueError`` if a page is not memory (nothing is freed then). O(pages log n)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if not self._handed_over:
            raise HandoverError("free_late() hands pages to the page allocator: call "
                                "free_all(buddy) first (before it, use phys_free)")
        self._check_pages_in_memory(base, size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_free_late", base, size)
        self._release_pages(base, size)

    def _page_nid(self, phys: int) -> int:
        p = self._search(self.memory, phys)
        if p is None:
            raise ValueError(f"page at {self._pa(phys)} is not memory")
        nid = p[3]
        return nid if self._numa_valid_node(nid) else 0

    def _check_pages_in_memory(self, base: int, size: int) -> None:
        ps = self._page_size
        sh = self._page_shift
        for pfn in range((base + ps - 1) >> sh, ((base + size) & self._mask) >> sh):
            self._page_nid(pfn << sh)

    def _release_pages(self, base: int, size: int) -> None:
        """Give every whole page of ``[base, base + size)`` to the buddy allocator (order 0)."""
        ps = self._page_size
        sh = self._page_shift
        first, end = (base + ps - 1) >> sh, ((base + size) & self._mask) >> sh
        overlaps = getattr(self._buddy, "overlaps_managed", None)
        if overlaps is not None and end > first and overlaps(first, end - first):
            # All or nothing: handing over the pages before the first managed one and then
            # failing would leave the range half given away.
            raise ValueError(f"pages [{first:#x}, {end:#x}) are already managed (in part) by "
                             f"the page allocator: nothing was handed over")
        if self._buddy is None:
            raise HandoverError("no page allocator: free_all(buddy) was not called")
        boot_free = self._buddy.boot_free
        for pfn in range(first, end):
            boot_free(pfn, 0, self._page_nid(pfn << sh))

    def free_all(self, buddy: PageSink) -> int:
        """``memblock_free_all()`` / ``free_low_memory_core_early()``: hand all free memory to
        the page allocator; returns the number of pages.

        Clears HOTPLUG on all memory, stamps reserved regions with the nid of the memory below
        them (NUMA, kernels >= 6.5), then for each free range (memory minus reserved, NOMAP and
        DRIVER_MANAGED excluded) calls ``buddy.boot_free(pfn, order, nid)`` for the naturally
        aligned power-of-two blocks (capped at ``buddy.max_order``, default 10) in ascending
        order; ``pfn = phys // page_size``; ``nid`` is the memory region's node (0 without NUMA
        or when the region has no valid node). Afterwards every allocation method raises
        :class:`HandoverError`. O(n + blocks).

        All or nothing: a buddy that does not fit (another ``page_size``, another
        ``physmem``, pages it already manages or that lie outside its memory) is refused with
        ``ValueError`` before the first page, and memblock is left exactly as it was.
        """
        if self._handed_over:
            raise HandoverError("free_all() was already called")
        max_order = self._check_buddy(buddy)
        saved = self._snapshot()
        try:
            self.kho_scratch_only = False
            self._setclr_flag(self.memory, 0, self._mask, False, HOTPLUG)
            if self._numa and self._v_set_node_pass:
                while True:
                    old_max = self.reserved.max
                    # (set_node on reserved leaves memory as it is)
                    for b, s, _, n in list(self.memory.regions):
                        self._set_node(b, s, self.reserved, n)
                    if self.reserved.max == old_max:
                        break
            ranges = self._free_page_ranges()
            self._check_pages_fit(buddy, ranges)
        except BaseException:
            self._restore(saved)
            raise
        boot_free = buddy.boot_free
        pages = 0
        for s, e, nid in ranges:
            pages += e - s
            while s < e:
                order = min(max_order, (s & -s).bit_length() - 1) if s else max_order
                while s + (1 << order) > e:
                    order -= 1
                boot_free(s, order, nid)
                s += 1 << order
        self._buddy = buddy
        self._handed_over = True
        self._done()
        return pages

    def _check_buddy(self, buddy: PageSink) -> int:
        """The hand-over's checks of the page allocator itself; returns its ``max_order``."""
        if not isinstance(buddy, PageSink):
            raise TypeError(f"buddy must have boot_free(pfn, order, nid), not "
                            f"{type(buddy).__name__}")
        max_order = int_arg("buddy.max_order", getattr(buddy, "max_order", 10))
        if not 0 <= max_order < 64:
            raise ValueError(f"buddy.max_order {max_order} is not an order (0..63)")
        ps = getattr(buddy, "page_size", None)
        if ps is not None and int_arg("buddy.page_size", ps) != self._page_size:
            raise ValueError(f"the buddy allocator's page_size is {ps}, memblock's is "
                             f"{self._page_size}: page frame numbers would mean other "
                             f"addresses (nothing was handed over)")
        pm = getattr(buddy, "physmem", None)
        if pm is not None and self._physmem is not None and pm is not self._physmem:
            raise ValueError("the buddy allocator manages another PhysicalMemory than "
                             "memblock's (nothing was handed over)")
        return max_order

    def _free_page_ranges(self) -> list[tuple[int, int, int]]:
        """``(first pfn, end pfn, nid)`` of the whole pages of every free range, ascending."""
        ps = self._page_size
        sh = self._page_shift
        out = []
        for start, end, nid in self._next_mem_range(self.memory, self.reserved, NUMA_NO_NODE,
                                                    NONE):
            s = (start + ps - 1) >> sh
            e = end >> sh
            if s < e:
                out.append((s, e, nid if self._numa_valid_node(nid) else 0))
        return out

    def _check_pages_fit(self, buddy: PageSink, ranges: list[tuple[int, int, int]]) -> None:
        """Refuse (ValueError) pages the buddy allocator already manages or cannot hold."""
        sh = self._page_shift
        overlaps = getattr(buddy, "overlaps_managed", None)
        pm = getattr(buddy, "physmem", None)
        for s, e, _ in ranges:
            if overlaps is not None and overlaps(s, e - s):
                raise ValueError(f"pages [{s:#x}, {e:#x}) are already managed (in part) by the "
                                 f"page allocator: nothing was handed over")
            if pm is not None and not pm.contains(s << sh, (e - s) << sh):
                raise ValueError(f"pages [{s:#x}, {e:#x}) lie outside the buddy allocator's "
                                 f"physical memory: nothing was handed over")

    def _snapshot(self) -> tuple:
        """Everything :meth:`free_all` may change before the first page is handed over."""
        return (copy.deepcopy((self.memory, self.reserved, self.physmem)),
                self.kho_scratch_only, self._current_limit)

    def _restore(self, saved: tuple) -> None:
        """Put back a :meth:`_snapshot` (in place: callers may hold the type objects)."""
        types, self.kho_scratch_only, self._current_limit = saved
        for live, old in zip((self.memory, self.reserved, self.physmem), types, strict=True):
            live.restore(old)

    # ========================================================================================
    # check()
    # ========================================================================================

    def array_bytes(self) -> int:
        """Bytes memblock reserved for its own region arrays when it doubled them (whole
        pages; the static initial arrays take none). Kernel counterpart: the allocations of
        ``memblock_double_array()``. O(1)."""
        ps = self._page_size
        return sum(round_up(t.max * self._region_size, ps)
                   for t in (self.memory, self.reserved) if t.array_phys is not None)

    def check(self) -> None:
        """Verify every invariant of the three arrays (module docstring); O(n).

        Raises :class:`MemblockBug` with the :meth:`dump_all` text on failure.
        """
        for t in (self.memory, self.reserved, self.physmem):
            err = t.check(self._mask, self._numa, t is self.memory)
            if err:
                raise MemblockBug(f"memblock invariant broken: {err}\n" + self.dump_all(log=False))
