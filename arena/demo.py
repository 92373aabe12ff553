"""The built-in machine and ``python -m arena demo``: an x86-64 PC booting on memblock.

The machine is modelled on a real boot, the QEMU/KVM i440FX guest of
``tests/data/x86_64-qemu-numa-6.6.41.log`` (4 GiB, 2 NUMA nodes, ``memblock=debug``), scaled to
any memory size and node count:

* **Firmware map (e820)**: usable ``[0, 0x9fc00)`` (its first page taken back by the kernel),
  reserved EBDA/BIOS areas below 1 MiB, usable ``[1 MiB, low - 128 KiB)``, the firmware's
  128 KiB ACPI area at the top of low memory, the PCI hole (below 4 GiB, ``low`` is 3 GiB once
  the memory reaches 3.5 GiB, as QEMU lays it out), and the rest of the memory from 4 GiB up.
* **NUMA**: the memory is split into ``nodes`` equal parts (whole 128 MiB sections, the last
  node takes the remainder), node 0 first, as QEMU's ``-numa`` options do.
* **Boot** (:func:`boot`), in the kernel's order and with memblock's real calls: reserve the
  kernel image at 16 MiB and the BIOS areas, add the usable e820 ranges and trim them to pages,
  allocate the real-mode trampoline and the direct-map page tables, reserve the ACPI tables,
  set the nodes and allocate each ``NODE_DATA``, the sparse memory model (``mem_section``
  roots, usemaps, each node's ``mem_map`` and its vmemmap page tables), firmware-map and
  command-line copies, the per-CPU first chunk (one block per node, unused tails given back),
  the fixmap pages and the SWIOTLB bounce buffer (when memory goes above 4 GiB); then hand
  every free page to the buddy allocator (``memblock_free_all``).

Every memblock call is made from a function named after the kernel function that makes it, so
the ``memblock=debug`` log (logger ``arena.memblock``, captured during the boot) names the same
callers as a real boot log, and :func:`arena.trace.parse` reads it like one.

The "physical memory" is a :class:`arena.physmem.PhysicalMemory` (``MAP_NORESERVE``) spanning
``[0, end of memory)``: allocations are real views, but zeroed allocations of never-touched
pages write nothing and the ``mem_map`` is allocated raw, so a 6 GiB boot costs a few MiB of RSS.

Errors: bad machine parameters raise ``TypeError``/``ValueError`` (nothing is mapped); a boot
allocation that fails (e.g. ``current_limit`` set too low) raises
:class:`arena.errors.MemblockPanic`, as the kernel would panic.
"""

from __future__ import annotations

import itertools
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from arena._args import int_arg
from arena.buddy import BuddyAllocator
from arena.errors import LiveViewsError, MemblockPanic
from arena.memblock import MEMBLOCK_ALLOC_ACCESSIBLE, Memblock
from arena.physmem import PhysicalMemory, parse_size
from arena.sizes import human_size

__all__ = [
    "Machine",
    "E820Entry",
    "Boot",
    "boot",
    "run_demo",
]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PAGE_SIZE = 4096
SMP_CACHE_BYTES = 64
PMD_SIZE = 2 * MiB
ISA_END_ADDRESS = 0x100000             # 1 MiB
MAX_DMA_ADDRESS = 16 * MiB             # __pa(MAX_DMA_ADDRESS) on x86-64
LOW_4G = 4 * GiB
SECTION_SIZE = 128 * MiB               # SECTION_SIZE_BITS = 27
SECTION_MAP_SIZE = 2 * MiB             # 32768 struct pages of 64 bytes
SECTIONS_PER_ROOT = PAGE_SIZE // 16    # struct mem_section is 16 bytes
USEMAP_SIZE = 56                       # mem_section_usage + pageblock flags, per section
NODE_DATA_SIZE = 0x4000                # roundup(sizeof(pg_data_t), PAGE_SIZE)
KERNEL_START = 16 * MiB                # CONFIG_PHYSICAL_START
KERNEL_SIZE = 0x2600000                # _text .. _end of the 6.6 kernel in the log
BRK_SIZE = 0x9000
REALMODE_SIZE = 0x7000
PCPU_UNIT_USED = 0x36000               # static 183016 + reserved 8192 + dynamic 29976, paged
COMMAND_LINE = "console=ttyS0 memblock=debug nokaslr"
MIN_MEMORY = 256 * MiB
MAX_MEMORY = 1 << 40
MAX_NODES = 8

_log = logging.getLogger("arena.memblock")


@dataclass(frozen=True)
class E820Entry:
    """One entry of the firmware memory map: ``[base, base + size)``, ``kind`` ``"usable"`` or
    ``"reserved"``."""

    base: int
    size: int
    kind: str

    @property
    def end(self) -> int:
        """``base + size``."""
        return self.base + self.size


@dataclass(frozen=True)
class Machine:
    """The built-in PC: ``memory`` bytes of RAM (or a size string such as ``"6 GiB"``; a
    multiple of 2 MiB in ``256 MiB .. 1 TiB``) on ``nodes`` NUMA nodes (1..8, each at least
    128 MiB), ``cpus_per_node`` CPUs per node (1..64).

    ``bottom_up`` allocates bottom-up (``memblock_set_bottom_up(true)``); ``current_limit`` (bytes,
    ``None`` = the end of the direct map) is the ``memblock_set_current_limit()`` applied after
    the direct map is set up; ``kernel_version`` ``(major, minor)`` selects an older memblock
    (see :class:`arena.memblock.Memblock`), ``None`` the newest. Raises ``TypeError`` /
    ``ValueError`` for bad values. Properties derive the layout in O(nodes).
    """

    memory: int = 6 * GiB
    nodes: int = 2
    cpus_per_node: int = 2
    bottom_up: bool = False
    current_limit: int | None = None
    kernel_version: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        memory = parse_size(self.memory, name="memory")
        object.__setattr__(self, "memory", memory)
        if not MIN_MEMORY <= memory <= MAX_MEMORY:
            raise ValueError(f"memory must be in 256 MiB .. 1 TiB, not {_size(memory)}")
        if memory % PMD_SIZE:
            raise ValueError(f"memory {memory:#x} is not a multiple of 2 MiB")
        nodes = int_arg("nodes", self.nodes)
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes must be in 1..{MAX_NODES}, not {nodes}")
        if memory // nodes < SECTION_SIZE:
            raise ValueError(f"{nodes} nodes need at least {nodes * 128} MiB of memory "
                             f"(128 MiB per node), not {_size(memory)}")
        cpus = int_arg("cpus_per_node", self.cpus_per_node)
        if not 1 <= cpus <= 64:
            raise ValueError(f"cpus_per_node must be in 1..64, not {cpus}")
        if not isinstance(self.bottom_up, bool):
            raise TypeError(f"bottom_up must be a bool, not {type(self.bottom_up).__name__}")
        if self.current_limit is not None:
            limit = parse_size(self.current_limit, name="current_limit")
            object.__setattr__(self, "current_limit", limit)
        if self.kernel_version is not None:
            Memblock(None, kernel_version=self.kernel_version)   # validates it

    # -- layout ---------------------------------------------------------------------------

    @property
    def low_memory(self) -> int:
        """RAM below 4 GiB (bytes): all of it below 3.5 GiB, else 3 GiB."""
        return self.memory if self.memory < 3 * GiB + 512 * MiB else 3 * GiB

    def _phys(self, ram_offset: int, end: bool = False) -> int:
        """Physical address of a RAM offset (RAM past ``low_memory`` continues at 4 GiB)."""
        low = self.low_memory
        if ram_offset < low or (end and ram_offset == low):
            return ram_offset
        return ram_offset - low + LOW_4G

    @property
    def phys_end(self) -> int:
        """End of the highest RAM (bytes): the size of the PhysicalMemory."""
        return self._phys(self.memory, end=True)

    @property
    def e820(self) -> list[E820Entry]:
        """The firmware memory map (sorted; QEMU/SeaBIOS layout)."""
        low = self.low_memory
        out = [E820Entry(0, 0x9FC00, "usable"),
               E820Entry(0x9FC00, 0x400, "reserved"),
               E820Entry(0xF0000, 0x10000, "reserved"),
               E820Entry(ISA_END_ADDRESS, low - 0x20000 - ISA_END_ADDRESS, "usable"),
               E820Entry(low - 0x20000, 0x20000, "reserved"),
               E820Entry(0xFEFFC000, 0x4000, "reserved"),
               E820Entry(0xFFFC0000, 0x40000, "reserved")]
        if self.memory > low:
            out.append(E820Entry(LOW_4G, self.memory - low, "usable"))
        return out

    @property
    def node_spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` physical span of each node (holes included), node 0 first."""
        per = self.memory // self.nodes // SECTION_SIZE * SECTION_SIZE
        cuts = [i * per for i in range(self.nodes)] + [self.memory]
        return [(self._phys(a) if i else 0, self._phys(b, end=True))
                for i, (a, b) in enumerate(itertools.pairwise(cuts))]

    @property
    def cpus(self) -> int:
        """Number of CPUs."""
        return self.nodes * self.cpus_per_node

    def describe(self) -> str:
        """One line: memory, nodes, CPUs, direction, limit, kernel."""
        limit = ("" if self.current_limit is None
                 else f", current_limit {self.current_limit:#x}")
        kernel = ("newest" if self.kernel_version is None
                  else f"{self.kernel_version[0]}.{self.kernel_version[1]}")
        return (f"x86-64 PC modelled on a QEMU i440FX guest: {_size(self.memory)} RAM on "
                f"{self.nodes} node{'s' if self.nodes != 1 else ''}, {self.cpus} CPUs, "
                f"{'bottom-up' if self.bottom_up else 'top-down'}{limit}, memblock of kernel "
                f"{kernel}")


_size = human_size


# -- the boot ------------------------------------------------------------------------------------

@dataclass
class Boot:
    """A booted machine: its memory, memblock (handed over), buddy allocator and boot log.

    ``log`` holds the boot log lines (``[seconds] text``): every ``memblock=debug`` line and the
    kernel's own messages around them. ``pages`` is the number of pages handed to the buddy
    allocator. Call :meth:`close` (or use ``with``) to unmap the memory.
    """

    machine: Machine
    physmem: PhysicalMemory
    memblock: Memblock
    buddy: BuddyAllocator
    log: list[str] = field(default_factory=list)
    pages: int = 0
    seconds: float = 0.0

    def log_text(self) -> str:
        """The boot log as one text (lines joined by newlines)."""
        return "\n".join(self.log)

    def callers(self) -> list[Any]:
        """Who reserved what: :func:`arena.trace_callers.callers_from_log` of the boot log."""
        from arena.trace_callers import callers_from_log

        return callers_from_log(self.log_text())

    def close(self) -> None:
        """Unmap the physical memory (idempotent)."""
        if not self.physmem.closed:
            self.physmem.close()

    def __enter__(self) -> Boot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Capture(logging.Handler):
    """Appends every record of ``arena.memblock`` to the boot log with a timestamp."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink(record.getMessage())


class _X86Boot:
    """The boot sequence. Methods carry the names of the kernel functions whose memblock calls
    they make, so memblock's debug lines name them as callers."""

    def __init__(self, m: Machine, pm: PhysicalMemory, mb: Memblock, log: list[str]) -> None:
        self.m = m
        self.pm = pm
        self.mb = mb
        self.log = log
        self.t0 = time.perf_counter()
        self.kernel_end = KERNEL_START + KERNEL_SIZE
        usable = [e for e in m.e820 if e.kind == "usable"]
        self.mem_end = usable[-1].end          # max_pfn << PAGE_SHIFT

    def printk(self, text: str) -> None:
        self.log.append(f"[{time.perf_counter() - self.t0:12.6f}] {text}")

    def need(self, found: Any, what: str, size: int) -> Any:
        """The kernel panics when a boot allocation fails."""
        if found is None or (isinstance(found, int) and found == 0):
            raise MemblockPanic(f"{what}: failed to allocate {size:#x} bytes "
                                f"(current_limit {self.mb.current_limit:#x})")
        return found

    # -- setup_arch: early reservations and the firmware map --------------------------------

    def early_reserve_memory(self) -> None:
        self.mb.reserve(KERNEL_START, KERNEL_SIZE)       # the kernel image: text, data, bss
        self.mb.reserve(0, 0x10000)                       # the first 64 KiB (BIOS corruption)

    def reserve_bios_regions(self) -> None:
        self.mb.reserve(0x9F000, ISA_END_ADDRESS - 0x9F000)   # EBDA .. 1 MiB

    def smp_scan_config(self) -> None:
        self.printk("found SMP MP-table at [mem 0x000f5470-0x000f547f]")
        self.mb.reserve(0xF5470, 0x10)
        self.mb.reserve(0xF5480, 0xD8)

    def reserve_brk(self) -> None:
        self.mb.reserve(self.kernel_end, BRK_SIZE)

    def e820__memblock_setup(self) -> None:
        self.mb.allow_resize()
        for e in self.m.e820:
            if e.kind != "usable":
                continue
            base = max(e.base, PAGE_SIZE)   # e820: the first page was made reserved
            self.mb.add(base, e.end - base)
        self.mb.trim_memory(PAGE_SIZE)
        self.mb.dump_all()

    def setup_arch_early(self) -> None:
        major, minor = self.mb.kernel_version
        self.printk(f"Linux version {major}.{minor}.0-arena (memblock-arena demo)")
        self.printk(f"Command line: {COMMAND_LINE}")
        if self.m.bottom_up:
            self.mb.set_bottom_up(True)
        self.early_reserve_memory()
        self.reserve_bios_regions()
        self.printk("BIOS-provided physical RAM map:")
        for e in self.m.e820:
            self.printk(f"BIOS-e820: [mem {e.base:#018x}-{e.end - 1:#018x}] {e.kind}")
        self.printk("e820: update [mem 0x00000000-0x00000fff] usable ==> reserved")
        self.smp_scan_config()
        self.reserve_brk()
        self.mb.set_current_limit(ISA_END_ADDRESS)
        self.e820__memblock_setup()

    # -- setup_arch: trampoline and the direct map ----------------------------------------

    def reserve_real_mode(self) -> None:
        self.need(self.mb.phys_alloc_range(REALMODE_SIZE, PAGE_SIZE, 0, ISA_END_ADDRESS),
                  "reserve_real_mode", REALMODE_SIZE)

    def setup_arch(self) -> None:
        self.mb.reserve(0, ISA_END_ADDRESS)   # the whole first 1 MiB, unconditionally

    def _page_table_pages(self) -> int:
        """Pages for the direct map with 1 GiB pages: a PUD page per 512 GiB, a PMD page per
        partly covered GiB, a PTE page per partly covered 2 MiB block."""
        spans = [(r.base, r.base + r.size) for r in self.mb.memory.regions]
        count = (self.mem_end + (512 * GiB - 1)) // (512 * GiB)
        for unit in (GiB, PMD_SIZE):
            partial = set()
            for s, e in spans:
                for a in (s, e):
                    if a % unit:
                        partial.add(a // unit)
            count += len(partial)
        return count

    def alloc_low_pages(self, lo: int, hi: int) -> None:
        phys = self.need(self.mb.phys_alloc_range(PAGE_SIZE, PAGE_SIZE, lo, hi),
                         "alloc_low_pages", PAGE_SIZE)
        self.pm.zero(phys, PAGE_SIZE)             # clear_page()

    def init_mem_mapping(self) -> None:
        # Probe where the top-down mapping can start, then give the probe back.
        probe = self.mb.phys_alloc_range(PMD_SIZE, PMD_SIZE, ISA_END_ADDRESS, self.mem_end)
        if probe:
            self.mb.phys_free(probe, PMD_SIZE)
        self.printk("Using GB pages for direct mapping")
        if self.mb.bottom_up:
            lo, hi = self.kernel_end, self.mem_end
        else:
            lo, hi = max(ISA_END_ADDRESS, self.mem_end - 512 * MiB), self.mem_end
        for _ in range(self._page_table_pages()):
            self.alloc_low_pages(lo, hi)
        limit = self.mem_end if self.m.current_limit is None else self.m.current_limit
        self.mb.set_current_limit(limit)        # get_max_mapped(), or the demo's option

    def setup_arch_mapping(self) -> None:
        self.reserve_real_mode()
        self.setup_arch()
        self.init_mem_mapping()

    # -- setup_arch: ACPI and NUMA ---------------------------------------------------------

    def acpi_reserve_initial_tables(self) -> None:
        base = self.m.low_memory - 0x20000          # the firmware's ACPI area
        for name, off, size in (("FACP", 0x1C21, 0x74), ("DSDT", 0x40, 0x1BE1),
                                ("FACS", 0x0, 0x40), ("APIC", 0x1C95, 0x90),
                                ("HPET", 0x1D25, 0x38), ("SRAT", 0x1D5D, 0x110),
                                ("WAET", 0x1E6D, 0x28)):
            self.printk(f"ACPI: Reserving {name} table memory at "
                        f"[mem {base + off:#x}-{base + off + size - 1:#x}]")
            self.mb.reserve(base + off, size)

    def alloc_node_data(self, nid: int) -> None:
        phys = self.need(self.mb.phys_alloc_try_nid(NODE_DATA_SIZE, SMP_CACHE_BYTES, nid),
                         f"alloc_node_data({nid})", NODE_DATA_SIZE)
        self.pm.zero(phys, NODE_DATA_SIZE)
        self.printk(f"NODE_DATA({nid}) allocated [mem {phys:#010x}-"
                    f"{phys + NODE_DATA_SIZE - 1:#010x}]")

    def numa_init(self) -> None:
        for nid, (s, e) in enumerate(self.m.node_spans):
            self.printk(f"ACPI: SRAT: Node {nid} PXM {nid} [mem {s:#x}-{e - 1:#x}]")
        for nid, (s, e) in enumerate(self.m.node_spans):
            self.mb.set_node(s, e - s, self.mb.memory, nid)   # numa_register_memblks
        for nid in range(self.m.nodes):
            self.alloc_node_data(nid)
        self.mb.dump_all()

    def setup_arch_numa(self) -> None:
        self.acpi_reserve_initial_tables()
        self.numa_init()

    # -- the sparse memory model -------------------------------------------------------------

    def _sections(self, nid: int) -> list[int]:
        """Present memory sections of node ``nid`` (for_each_mem_pfn_range)."""
        shift = SECTION_SIZE.bit_length() - 1 - 12
        secs: set[int] = set()
        for start_pfn, end_pfn, _n in self.mb.for_each_mem_pfn_range(nid):
            secs.update(range(start_pfn >> shift, ((end_pfn - 1) >> shift) + 1))
        return sorted(secs)

    def sparse_index_alloc(self, nid: int) -> None:
        self.need(self.mb.alloc_node(PAGE_SIZE, SMP_CACHE_BYTES, nid), "sparse_index_alloc",
                  PAGE_SIZE)

    def vmemmap_p4d_populate(self, nid: int) -> None:
        self.need(self.mb.alloc_try_nid_raw(PAGE_SIZE, PAGE_SIZE, MAX_DMA_ADDRESS,
                                            MEMBLOCK_ALLOC_ACCESSIBLE, nid),
                  "vmemmap_p4d_populate", PAGE_SIZE)

    def vmemmap_pud_populate(self, nid: int) -> None:
        self.need(self.mb.alloc_try_nid_raw(PAGE_SIZE, PAGE_SIZE, MAX_DMA_ADDRESS,
                                            MEMBLOCK_ALLOC_ACCESSIBLE, nid),
                  "vmemmap_pud_populate", PAGE_SIZE)

    def vmemmap_alloc_block(self, nid: int) -> None:
        self.need(self.mb.alloc_try_nid_raw(SECTION_MAP_SIZE, SECTION_MAP_SIZE, MAX_DMA_ADDRESS,
                                            MEMBLOCK_ALLOC_ACCESSIBLE, nid),
                  "vmemmap_alloc_block", SECTION_MAP_SIZE)

    def sparse_init_nid(self, nid: int, sections: Sequence[int], pmd_tables: set[int]) -> None:
        n = len(sections)
        self.need(self.mb.alloc_node(USEMAP_SIZE * n, SMP_CACHE_BYTES, nid), "usemap",
                  USEMAP_SIZE * n)
        # sparse_buffer_init(): the node's whole mem_map in one block on that node.
        buf = self.mb.alloc_exact_nid_raw(SECTION_MAP_SIZE * n, SECTION_MAP_SIZE,
                                          MAX_DMA_ADDRESS, MEMBLOCK_ALLOC_ACCESSIBLE, nid)
        for sec in sections:
            if buf is None:       # no such block: one 2 MiB block per section, any node
                self.vmemmap_alloc_block(nid)
            table = sec * SECTION_MAP_SIZE // GiB    # one PMD table maps 1 GiB of vmemmap
            if not pmd_tables:
                self.vmemmap_p4d_populate(nid)
            if table not in pmd_tables:
                pmd_tables.add(table)
                self.vmemmap_pud_populate(nid)

    def sparse_init(self) -> None:
        # The mem_section root array (NR_SECTION_ROOTS pointers for 46-bit physical addresses).
        self.need(self.mb.alloc(2048 * 8, SMP_CACHE_BYTES), "sparse_init", 2048 * 8)
        per_node = {nid: self._sections(nid) for nid in range(self.m.nodes)}
        roots: set[int] = set()
        for nid, secs in per_node.items():
            for sec in secs:
                if sec // SECTIONS_PER_ROOT not in roots:
                    roots.add(sec // SECTIONS_PER_ROOT)
                    self.sparse_index_alloc(nid)
        pmd_tables: set[int] = set()
        for nid, secs in per_node.items():
            if secs:
                self.sparse_init_nid(nid, secs, pmd_tables)
        self.printk("Early memory node ranges")
        for start_pfn, end_pfn, nid in self.mb.for_each_mem_pfn_range():
            self.printk(f"  node {nid:3d}: [mem {start_pfn << 12:#018x}-"
                        f"{(end_pfn << 12) - 1:#018x}]")

    # -- start_kernel: small allocations, per-CPU areas, SWIOTLB ------------------------------

    def acpi_parse_hpet(self) -> None:
        self.need(self.mb.alloc(73, SMP_CACHE_BYTES), "acpi_parse_hpet", 73)

    def io_apic_init_mappings(self) -> None:
        self.need(self.mb.alloc(75, SMP_CACHE_BYTES), "io_apic_init_mappings", 75)

    def e820__reserve_resources(self) -> None:
        size = 72 * len(self.m.e820)
        self.need(self.mb.alloc(size, SMP_CACHE_BYTES), "e820__reserve_resources", size)

    def firmware_map_add_early(self) -> None:
        self.need(self.mb.alloc(104, SMP_CACHE_BYTES), "firmware_map_add_early", 104)

    def register_nosave_region(self) -> None:
        self.need(self.mb.alloc(32, SMP_CACHE_BYTES), "register_nosave_region", 32)

    def start_kernel(self) -> None:
        for _ in range(2):                    # saved_command_line, static_command_line
            self.need(self.mb.alloc(len(COMMAND_LINE) + 1, SMP_CACHE_BYTES), "start_kernel",
                      len(COMMAND_LINE) + 1)

    def _pcpu_units(self) -> tuple[int, int]:
        """``pcpu_build_alloc_info``: (units per allocation, unit size) — the largest number
        of units per 2 MiB block that wastes at most a third of the CPUs' units."""
        alloc = (PCPU_UNIT_USED + PMD_SIZE - 1) // PMD_SIZE * PMD_SIZE
        best, last_allocs = 1, None
        for upa in range(alloc // PCPU_UNIT_USED, 0, -1):
            if alloc % upa or (alloc // upa) % PAGE_SIZE:
                continue
            groups = [-(-self.m.cpus_per_node // upa)] * self.m.nodes
            wasted = sum(g * upa - self.m.cpus_per_node for g in groups)
            if wasted > self.m.cpus / 3:
                continue
            if last_allocs is not None and sum(groups) > last_allocs:
                break
            last_allocs, best = sum(groups), upa
        return best, alloc // best

    def pcpu_build_alloc_info(self) -> Any:
        return self.need(self.mb.alloc(PAGE_SIZE, PAGE_SIZE), "pcpu_build_alloc_info",
                         PAGE_SIZE)

    def pcpu_setup_first_chunk(self) -> None:
        groups, cpus = self.m.nodes, self.m.cpus
        for size in (groups * 8, groups * 8, cpus * 4, cpus * 8, 352):
            self.need(self.mb.alloc(size, SMP_CACHE_BYTES), "pcpu_setup_first_chunk", size)
        self.pcpu_alloc_first_chunk((136, 384, 392, 96))
        self.pcpu_alloc_first_chunk((136, 1024, 1032, 256))

    def pcpu_alloc_first_chunk(self, sizes: Sequence[int]) -> None:
        for size in sizes:
            self.need(self.mb.alloc(size, SMP_CACHE_BYTES), "pcpu_alloc_first_chunk", size)

    def pcpu_embed_first_chunk(self) -> None:
        upa, unit = self._pcpu_units()
        ai = self.pcpu_build_alloc_info()
        areas = self.need(self.mb.alloc(PAGE_SIZE, SMP_CACHE_BYTES), "pcpu_embed_first_chunk",
                          PAGE_SIZE)
        blocks = []
        for nid in range(self.m.nodes):
            units = -(-self.m.cpus_per_node // upa) * upa
            view = self.need(self.mb.alloc_try_nid(units * unit, PMD_SIZE, MAX_DMA_ADDRESS,
                                                   MEMBLOCK_ALLOC_ACCESSIBLE, nid),
                             "pcpu_embed_first_chunk", units * unit)
            blocks.append((self.mb.virt_to_phys(view), units))
            del view
        for base, units in blocks:
            for u in range(units):
                if u < self.m.cpus_per_node:      # give back the unused tail of each unit
                    self.mb.phys_free(base + u * unit + PCPU_UNIT_USED, unit - PCPU_UNIT_USED)
                else:                              # a unit without a CPU: all of it
                    self.mb.phys_free(base + u * unit, unit)
        self.printk(f"percpu: Embedded {PCPU_UNIT_USED // PAGE_SIZE} pages/cpu s183016 r8192 "
                    f"d29976 u{unit}")
        self.pcpu_setup_first_chunk()
        self.mb.free(ai)
        self.mb.free(areas)

    def print_unknown_bootoptions(self) -> None:
        buf = self.need(self.mb.alloc(len(COMMAND_LINE) + 1, SMP_CACHE_BYTES),
                        "print_unknown_bootoptions", len(COMMAND_LINE) + 1)
        self.mb.free(buf)

    def spp_getpage(self) -> None:
        self.need(self.mb.alloc(PAGE_SIZE, PAGE_SIZE), "spp_getpage", PAGE_SIZE)

    def swiotlb_init_remap(self) -> None:
        size = 64 * MiB
        while True:      # the kernel halves the bounce buffer until it fits
            buf = self.mb.alloc_low(size, PAGE_SIZE)
            if buf is not None or size <= MiB:
                break
            size //= 2
        self.need(buf, "swiotlb_init_remap", size)
        del buf
        slots = size // 2048 * 24
        self.need(self.mb.alloc(slots, PAGE_SIZE), "swiotlb_init_remap", slots)
        areas = 1 << max(self.m.cpus - 1, 0).bit_length()
        self.need(self.mb.alloc(areas * 16, SMP_CACHE_BYTES), "swiotlb_init_remap", areas * 16)
        self.printk(f"software IO TLB: mapped {size >> 20} MiB below 4 GiB")

    def start_kernel_allocs(self) -> None:
        self.acpi_parse_hpet()
        self.printk(f"smpboot: Allowing {self.m.cpus} CPUs, 0 hotplug CPUs")
        self.io_apic_init_mappings()
        self.e820__reserve_resources()
        for _ in self.m.e820:
            self.firmware_map_add_early()
        for _ in range(sum(e.kind == "usable" for e in self.m.e820)):
            self.register_nosave_region()
        self.start_kernel()
        self.printk(f"setup_percpu: NR_CPUS:64 nr_cpumask_bits:{self.m.cpus} "
                    f"nr_cpu_ids:{self.m.cpus} nr_node_ids:{self.m.nodes}")
        self.pcpu_embed_first_chunk()
        self.printk(f"Kernel command line: {COMMAND_LINE}")
        self.print_unknown_bootoptions()
        for _ in range(3):
            self.spp_getpage()
        if self.mem_end > LOW_4G:           # pci_swiotlb_detect(): memory above 4 GiB
            self.swiotlb_init_remap()

    # -- mem_init ---------------------------------------------------------------------------

    def mem_init(self, buddy: BuddyAllocator) -> int:
        pages = self.mb.free_all(buddy)       # memblock_free_all()
        present = sum(e - s for s, e, _n in self.mb.for_each_mem_pfn_range())
        free_k = buddy.nr_free_pages() * PAGE_SIZE // KiB
        total_k = present * PAGE_SIZE // KiB
        self.printk(f"Memory: {free_k}K/{total_k}K available ({KERNEL_SIZE // KiB}K kernel "
                    f"image, {total_k - free_k}K reserved)")
        return pages


def boot(machine: Machine, *, progress: Callable[[str], None] | None = None) -> Boot:
    """Boot ``machine``: map its memory, run the boot sequence on a fresh
    :class:`~arena.memblock.Memblock`, hand over to a :class:`~arena.buddy.BuddyAllocator`.

    ``progress`` (optional) receives one short status line per boot phase. The
    ``arena.memblock`` logger is captured at INFO for the duration (its level and propagation
    are restored afterwards). Returns a :class:`Boot`; the caller closes it. Raises
    :class:`arena.errors.MemblockPanic` when a boot allocation fails (the memory is unmapped
    then). O(regions × allocations) memblock work plus O(free blocks) for the hand-over.
    """
    if not isinstance(machine, Machine):
        raise TypeError(f"machine must be a Machine, not {type(machine).__name__}")
    t0 = time.perf_counter()

    def say(text: str) -> None:
        if progress is not None:
            progress(f"{text} ({time.perf_counter() - t0:.2f} s)")

    spans = machine.node_spans
    sizes = [b - a for (a, _e), (b, _f) in itertools.pairwise(spans)]
    sizes.append(machine.phys_end - spans[-1][0])
    pm = PhysicalMemory(machine.phys_end, nodes=sizes)
    say(f"mapped {_size(machine.phys_end)} of physical memory (MAP_NORESERVE)")
    log: list[str] = []
    mb = Memblock(pm, kernel_version=machine.kernel_version)
    buddy = BuddyAllocator(pm)
    k = _X86Boot(machine, pm, mb, log)
    handler = _Capture(k.printk)
    old_level, old_propagate = _log.level, _log.propagate
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False
    phases: list[tuple[str, Callable[[], Any]]] = [
        ("early reservations, e820 map", k.setup_arch_early),
        ("real-mode trampoline, direct-map page tables", k.setup_arch_mapping),
        ("ACPI tables, NUMA nodes, NODE_DATA", k.setup_arch_numa),
        ("sparse memory model: mem_map per node", k.sparse_init),
        ("firmware maps, per-CPU areas, SWIOTLB", k.start_kernel_allocs),
    ]
    try:
        for i, (name, step) in enumerate(phases, 1):
            step()
            say(f"[{i}/{len(phases) + 1}] {name}")
        pages = k.mem_init(buddy)
        say(f"[{len(phases) + 1}/{len(phases) + 1}] hand-over to the buddy allocator: "
            f"{pages} pages")
    except BaseException as e:
        # The failed calls' frames still hold views of the memory: drop them, then unmap.
        traceback.clear_frames(e.__traceback__)
        try:
            pm.close()
        except LiveViewsError:   # a view escaped elsewhere: the mapping goes with it
            pass
        raise
    finally:
        _log.removeHandler(handler)
        _log.setLevel(old_level)
        _log.propagate = old_propagate
    return Boot(machine, pm, mb, buddy, log, pages, time.perf_counter() - t0)


# -- the demo ------------------------------------------------------------------------------------

def run_demo(machine: Machine, out: TextIO, *, log: bool = True, err: TextIO | None = None,
             svg_path: str | None = None, width: int = 72) -> int:
    """Boot ``machine`` and print the tour to ``out``: the ``memblock=debug`` log (unless
    ``log`` is false), ``memblock_dump_all()`` after the hand-over, ``/proc/buddyinfo``, the
    zoneinfo summary, the terminal memory map (``width`` columns) and a summary. Status lines
    per boot phase go to ``err`` (``None``: none). With ``svg_path`` the SVG map
    (:func:`arena.render.svg`, reservations named by caller) is written there.

    Returns the exit status: 0, or 1 when the boot panicked (the panic is reported on
    ``err``, or ``out`` when ``err`` is None). Raises ``OSError`` if the SVG cannot be written.
    """
    from arena.render import svg, text_map

    def say(text: str = "") -> None:
        print(text, file=out)

    def status(text: str) -> None:
        if err is not None:
            print(f"demo: {text}", file=err, flush=True)

    say(f"memblock-arena demo: {machine.describe()}")
    try:
        b = boot(machine, progress=status if err is not None else None)
    except MemblockPanic as e:
        print(f"demo: Kernel panic - not syncing: {e}", file=err or out)
        return 1
    with b:
        mb = b.memblock
        if log:
            say()
            say(f"== memblock=debug boot log ({len(b.log)} lines) ==")
            for line in b.log:
                say(line)
        say()
        say("== memblock_dump_all() after the hand-over ==")
        say(mb.dump_all(log=False))
        say()
        say("== /proc/buddyinfo ==")
        say(b.buddy.buddyinfo(mb).rstrip("\n"))
        say()
        say("== /proc/zoneinfo (summary) ==")
        say(b.buddy.zoneinfo(mb).rstrip("\n"))
        say()
        say("== memory map ==")
        say(text_map(mb, width=width))
        say()
        say("== summary ==")
        free = b.buddy.nr_free_pages() * PAGE_SIZE
        say(f"memory {human_size(mb.memory.total_size)} in {mb.memory.cnt} regions, reserved "
            f"{human_size(mb.reserved.total_size)} in {mb.reserved.cnt} regions; "
            f"{b.pages} pages ({human_size(free)}) handed to the buddy allocator")
        say(f"boot took {b.seconds:.2f} s; resident {human_size(b.physmem.resident_bytes())} "
            f"of {human_size(b.physmem.size)} mapped")
        if svg_path is not None:
            Path(svg_path).write_text(
                svg(mb, callers=b.callers(), title=f"memblock-arena demo: {_size(machine.memory)}"
                    f" on {machine.nodes} node{'s' if machine.nodes != 1 else ''}, "
                    f"after the hand-over"), encoding="utf-8")
            say(f"SVG memory map written to {svg_path}")
    return 0
