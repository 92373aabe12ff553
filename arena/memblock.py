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

Modules (imports point one way: memblock -> its parts -> index -> store -> constants):

* this one: the class :class:`Memblock`, its state, settings and kernel-version switches, the
  argument checks, :meth:`Memblock.check`, and the composition of the parts below;
* the parts of the class, one module each, the kernel's functions one method each over the
  storage API below, in the kernel's order (see Layout);
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

Layout: :class:`Memblock` is one class made of parts (mixins whose methods declare
``self: Memblock``), each a module that reads like its stretch of ``memblock.c``, function for
function in the kernel's order:

* :mod:`arena.memblock_regions`: the array primitives (double / merge / insert / add_range),
  add / remove / free / reserve, the flag setters and set_node;
* :mod:`arena.memblock_query`: the overlap tests, the iterators, sizes, limits and lookups,
  and the trims to a memory limit;
* :mod:`arena.memblock_alloc`: the search for free space and the allocation chain;
* :mod:`arena.memblock_dump`: the debug lines, warnings and dump;
* :mod:`arena.memblock_handover`: the hand-over to the page allocator.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from arena._args import bool_arg, int_arg
from arena.constants import (
    ENOMEM,
    FLAGS_MASK,
    MEMBLOCK_ALLOC_ACCESSIBLE,
    MEMBLOCK_ALLOC_ANYWHERE,
    MEMBLOCK_ALLOC_KASAN,
    MEMBLOCK_ALLOC_NOLEAKTRACE,
    MEMBLOCK_LOW_LIMIT,
    NUMA_NO_NODE,
    MemblockFlags,
    round_up,
)
from arena.errors import HandoverError, MemblockBug, MemblockWarning
from arena.memblock_alloc import Allocation
from arena.memblock_dump import Dump
from arena.memblock_handover import Handover
from arena.memblock_query import Queries
from arena.memblock_regions import Regions
from arena.memblock_store import MemblockType, Region, RegionsView
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
# Constants (include/linux/memblock.h: arena.constants, with NUMA_NO_NODE, ENOMEM and the flags)
# --------------------------------------------------------------------------------------------

#: The kernel whose behaviour ``kernel_version=None`` selects (the newest source read, ≈v7.1).
NEWEST_KERNEL = (7, 1)

_INIT_PHYSMEM_REGIONS = 4


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


class _Settings(NamedTuple):
    """The checked constructor arguments of :class:`Memblock` (see its docstring)."""

    phys_addr_bits: int
    mask: int
    page_size: int
    smp_cache_bytes: int
    numa: bool
    max_numnodes: int
    init_regions: int
    arch_low_address_limit: int
    bottom_up_kernel_end: int | None
    version: tuple[int, int]
    region_size: int
    phys_map: bool


def _settings(physmem: Any, phys_addr_bits: Any, page_size: Any, smp_cache_bytes: Any,
              numa: Any, max_numnodes: Any, init_regions: Any, arch_low_address_limit: Any,
              bottom_up_kernel_end: Any, kernel_version: Any, region_size: Any,
              phys_map: Any) -> _Settings:
    """Check and convert the arguments of :class:`Memblock` (TypeError / ValueError)."""
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
    return _Settings(phys_addr_bits, mask, page_size, smp_cache_bytes, numa, max_numnodes,
                     init_regions, arch_low_address_limit, bottom_up_kernel_end, v, region_size,
                     bool_arg("phys_map", phys_map))


# --------------------------------------------------------------------------------------------
# The allocator
# --------------------------------------------------------------------------------------------

class Memblock(Regions, Queries, Allocation, Dump, Handover):
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

    # The state the parts of the class read and change (set by __init__, as at boot).
    memory: MemblockType
    reserved: MemblockType
    physmem: MemblockType
    system_has_some_mirror: bool
    mirrored_kernelcore: bool
    movable_node: bool
    kho_scratch_only: bool
    _bottom_up: bool
    _current_limit: int
    _can_resize: bool
    _warned_once: set[str]
    _handed_over: bool
    _buddy: PageSink | None

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
        s = _settings(physmem, phys_addr_bits, page_size, smp_cache_bytes, numa, max_numnodes,
                      init_regions, arch_low_address_limit, bottom_up_kernel_end,
                      kernel_version, region_size, phys_map)
        self._physmem = physmem
        self._bits = s.phys_addr_bits
        self._mask = s.mask                    # PHYS_ADDR_MAX
        self._hexw = s.phys_addr_bits // 4    # %pa digits
        self._page_size = s.page_size
        self._page_shift = s.page_size.bit_length() - 1
        self._smp_cache_bytes = s.smp_cache_bytes
        self._numa = s.numa
        # MAX_NUMNODES is 1 << NODES_SHIFT; without CONFIG_NUMA, NODES_SHIFT is 0.
        self._max_numnodes = s.max_numnodes if s.numa else 1
        self._arch_low_address_limit = s.arch_low_address_limit
        self._kernel_end = s.bottom_up_kernel_end
        self._version = s.version
        self._region_size = s.region_size
        self._phys_map = s.phys_map

        self._set_version_switches(s.version)
        self._init_state(s.init_regions)

    def _init_state(self, init_regions: int) -> None:
        """The region arrays and the kernel's other globals, as at boot."""
        code = "Q" if self._bits == 64 else "I"
        self.memory = MemblockType("memory", init_regions, code, self._v_dummy)
        self.reserved = MemblockType("reserved", init_regions, code, self._v_dummy)
        self.physmem = MemblockType("physmem", _INIT_PHYSMEM_REGIONS, code, self._v_dummy)

        self._bottom_up = False
        self._current_limit = self._mask                 # MEMBLOCK_ALLOC_ANYWHERE
        self._can_resize = False
        self.system_has_some_mirror = False
        self.mirrored_kernelcore = False
        self.movable_node = False
        self.kho_scratch_only = False
        self._warned_once = set()
        self._handed_over = False
        self._buddy = None
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

    @staticmethod
    def _c_bool(name: str, value: Any) -> bool:
        """A C ``bool`` argument: a bool or an integer (numpy ones too)."""
        return bool_arg(name, value, allow_int=True)

    def _type_arg(self, t: Any) -> MemblockType:
        if isinstance(t, str):
            t = {"memory": self.memory, "reserved": self.reserved,
                 "physmem": self.physmem}.get(t, t)
        if t is not self.memory and t is not self.reserved and t is not self.physmem:
            raise ValueError(f"type must be this Memblock's memory, reserved or physmem "
                             f"(or their names), not {t!r}")
        return t

    def _need_alloc(self) -> None:
        if self._handed_over:
            raise HandoverError("memblock has handed its memory to the page allocator "
                                "(free_all() was called); allocate from the buddy allocator")

    def _done(self) -> None:
        if self._autocheck:
            self.check()

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
