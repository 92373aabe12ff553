"""The kernel-spelled face of memblock: ``memblock_add(...)``, ``memblock_alloc(...)``, ...

Every function here carries the kernel's full name and argument order and acts on one
module-global :class:`~arena.memblock.Memblock`, ``memblock``, so a kernel tutorial can be typed
as written::

    from arena.kernel import *
    reset()                                   # a fresh simulation (no PhysicalMemory)
    memblock_add(0x100000, 0x7ff00000)
    memblock_reserve(0x1000000, 0x2600000)
    addr = memblock_phys_alloc(0x1000, 0x1000)
    print(memblock_dump_all())

``reset(physmem=None, **kwargs)`` rebuilds the global instance *in place* (same object, so
``from arena.kernel import memblock`` stays valid) with :class:`~arena.memblock.Memblock`'s
keyword arguments. Memory-returning functions (``memblock_alloc*``) need ``reset(physmem)``
with an :class:`arena.physmem.PhysicalMemory`.

The functions come from one name table at the end of this file (one line each: kernel name →
method), each a real function with the method's docstring and signature. The kernel's
``memblock_bottom_up()`` is :meth:`Memblock.get_bottom_up`.

Beside the name table, the pieces of the kernel a memblock user reaches for:

* :data:`MAX_NUMNODES` — the node limit of the default configuration (NUMA on; the current
  instance's is ``memblock.max_numnodes``, 1 after ``reset(numa=False)``).
* :func:`__pa` / :func:`__va` — physical address <-> virtual address. "Virtual" here is the
  real address of the byte in this process: the physical memory is one ``mmap``, so the byte
  at physical address ``p`` lives at ``__va(p)``, the address a C extension or ``ctypes``
  would use. (:func:`phys_to_virt` / :func:`virt_to_phys` work with numpy views instead.)
* :func:`memblock_debug` — the ``memblock=debug`` switch: prints every memblock call's debug
  line.
* :func:`memblock_free_all` — ``memblock_free_all()`` with no argument, as in the kernel: the
  free memory goes to a new page allocator (:class:`arena.buddy.BuddyAllocator` over the same
  physical memory), which :func:`page_allocator` returns; a page allocator of your own may
  still be passed.
* After the hand-over, ``memblock_alloc*`` (the families that return memory) warn with
  :class:`MemblockWarning` and take zeroed memory from the page allocator instead
  (:func:`kzalloc_node`), as the kernel falls back to the slab allocator; the physical
  families (``memblock_phys_alloc*``) still raise :class:`arena.errors.HandoverError`.
"""

from __future__ import annotations

import inspect
import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from arena._args import int_arg
from arena.buddy import BuddyAllocator
from arena.errors import MemblockPanic
from arena.memblock import (
    MEMBLOCK_ALLOC_ACCESSIBLE,
    MEMBLOCK_ALLOC_ANYWHERE,
    MEMBLOCK_ALLOC_KASAN,
    MEMBLOCK_ALLOC_NOLEAKTRACE,
    MEMBLOCK_LOW_LIMIT,
    NUMA_NO_NODE,
    Memblock,
    MemblockFlags,
)

try:  # the warning's home is arena.errors; older trees define it beside Memblock
    from arena.errors import MemblockWarning  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # pragma: no cover - depends on the tree
    from arena.memblock import MemblockWarning

#: The one global memblock every function acts on (a simulation until :func:`reset` is given
#: a PhysicalMemory).
memblock: Memblock = Memblock(None)

#: ``MAX_NUMNODES`` of the default configuration (``CONFIG_NUMA``, ``NODES_SHIFT`` as
#: :class:`Memblock` models it). The current instance's is ``memblock.max_numnodes``.
MAX_NUMNODES: int = memblock.max_numnodes

# What reset() was given and what the hand-over created: the physical memory, the page
# allocator that received memblock's free memory (None before memblock_free_all).
_physmem: Any = None
_pages: BuddyAllocator | None = None
_debug_handler: logging.Handler | None = None

# Flag names as the kernel spells them.
MEMBLOCK_NONE = MemblockFlags.NONE
MEMBLOCK_HOTPLUG = MemblockFlags.HOTPLUG
MEMBLOCK_MIRROR = MemblockFlags.MIRROR
MEMBLOCK_NOMAP = MemblockFlags.NOMAP
MEMBLOCK_DRIVER_MANAGED = MemblockFlags.DRIVER_MANAGED
MEMBLOCK_RSRV_NOINIT = MemblockFlags.RSRV_NOINIT
MEMBLOCK_RSRV_KERN = MemblockFlags.RSRV_KERN
MEMBLOCK_KHO_SCRATCH = MemblockFlags.KHO_SCRATCH


def reset(physmem: Any = None, **kwargs: Any) -> Memblock:
    """Rebuild the global ``memblock`` in place: ``Memblock(physmem, **kwargs)``.

    The object identity is kept, so earlier ``from arena.kernel import memblock`` imports see
    the new state; on bad arguments (TypeError/ValueError) the old state is kept.
    Returns the global instance.
    """
    global _physmem, _pages
    fresh = Memblock(physmem, **kwargs)
    memblock.__dict__.clear()
    memblock.__dict__.update(fresh.__dict__)
    _physmem, _pages = physmem, None
    return memblock


def _bind(kname: str, mname: str) -> Callable[..., Any]:
    """A real module function ``kname`` calling ``memblock.<mname>`` on the current global."""
    method = getattr(Memblock, mname)

    def func(*args: Any, **kwargs: Any) -> Any:
        return getattr(memblock, mname)(*args, **kwargs)

    func.__name__ = func.__qualname__ = kname
    func.__module__ = __name__
    func.__doc__ = (f"``{kname}()``: :meth:`arena.memblock.Memblock.{mname}` on the global "
                    f"``memblock``.\n\n{inspect.getdoc(method) or ''}")
    sig = inspect.signature(method)
    params = list(sig.parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return func


# The name table: kernel name = _bind(kernel name, Memblock method).
# adding and removing ranges
memblock_add = _bind("memblock_add", "add")
memblock_add_node = _bind("memblock_add_node", "add_node")
memblock_remove = _bind("memblock_remove", "remove")
memblock_reserve = _bind("memblock_reserve", "reserve")
memblock_reserve_kern = _bind("memblock_reserve_kern", "reserve_kern")
memblock_physmem_add = _bind("memblock_physmem_add", "physmem_add")
memblock_phys_free = _bind("memblock_phys_free", "phys_free")
memblock_free = _bind("memblock_free", "free")
memblock_allow_resize = _bind("memblock_allow_resize", "allow_resize")
# flags and nodes
memblock_mark_hotplug = _bind("memblock_mark_hotplug", "mark_hotplug")
memblock_clear_hotplug = _bind("memblock_clear_hotplug", "clear_hotplug")
memblock_mark_mirror = _bind("memblock_mark_mirror", "mark_mirror")
memblock_mark_nomap = _bind("memblock_mark_nomap", "mark_nomap")
memblock_clear_nomap = _bind("memblock_clear_nomap", "clear_nomap")
memblock_reserved_mark_noinit = _bind("memblock_reserved_mark_noinit", "reserved_mark_noinit")
memblock_reserved_mark_kern = _bind("memblock_reserved_mark_kern", "reserved_mark_kern")
memblock_mark_kho_scratch = _bind("memblock_mark_kho_scratch", "mark_kho_scratch")
memblock_clear_kho_scratch = _bind("memblock_clear_kho_scratch", "clear_kho_scratch")
memblock_set_kho_scratch_only = _bind("memblock_set_kho_scratch_only", "set_kho_scratch_only")
memblock_clear_kho_scratch_only = _bind("memblock_clear_kho_scratch_only", "clear_kho_scratch_only")
memblock_set_node = _bind("memblock_set_node", "set_node")
# iterators
for_each_mem_range = _bind("for_each_mem_range", "for_each_mem_range")
for_each_mem_range_rev = _bind("for_each_mem_range_rev", "for_each_mem_range_rev")
for_each_free_mem_range = _bind("for_each_free_mem_range", "for_each_free_mem_range")
for_each_free_mem_range_reverse = _bind("for_each_free_mem_range_reverse", "for_each_free_mem_range_reverse")
for_each_reserved_mem_range = _bind("for_each_reserved_mem_range", "for_each_reserved_mem_range")
for_each_mem_region = _bind("for_each_mem_region", "for_each_mem_region")
for_each_reserved_mem_region = _bind("for_each_reserved_mem_region", "for_each_reserved_mem_region")
for_each_mem_pfn_range = _bind("for_each_mem_pfn_range", "for_each_mem_pfn_range")
# allocation
memblock_alloc_range_nid = _bind("memblock_alloc_range_nid", "alloc_range_nid")
memblock_phys_alloc_range = _bind("memblock_phys_alloc_range", "phys_alloc_range")
memblock_phys_alloc = _bind("memblock_phys_alloc", "phys_alloc")
memblock_phys_alloc_try_nid = _bind("memblock_phys_alloc_try_nid", "phys_alloc_try_nid")
memblock_alloc_try_nid = _bind("memblock_alloc_try_nid", "alloc_try_nid")
memblock_alloc_try_nid_raw = _bind("memblock_alloc_try_nid_raw", "alloc_try_nid_raw")
memblock_alloc_exact_nid_raw = _bind("memblock_alloc_exact_nid_raw", "alloc_exact_nid_raw")
memblock_alloc = _bind("memblock_alloc", "alloc")
memblock_alloc_raw = _bind("memblock_alloc_raw", "alloc_raw")
memblock_alloc_from = _bind("memblock_alloc_from", "alloc_from")
memblock_alloc_low = _bind("memblock_alloc_low", "alloc_low")
memblock_alloc_node = _bind("memblock_alloc_node", "alloc_node")
memblock_alloc_or_panic = _bind("memblock_alloc_or_panic", "alloc_or_panic")
virt_to_phys = _bind("virt_to_phys", "virt_to_phys")
phys_to_virt = _bind("phys_to_virt", "phys_to_virt")
# direction, limit, queries
memblock_set_bottom_up = _bind("memblock_set_bottom_up", "set_bottom_up")
memblock_bottom_up = _bind("memblock_bottom_up", "get_bottom_up")
memblock_set_current_limit = _bind("memblock_set_current_limit", "set_current_limit")
memblock_get_current_limit = _bind("memblock_get_current_limit", "get_current_limit")
memblock_has_mirror = _bind("memblock_has_mirror", "has_mirror")
memblock_phys_mem_size = _bind("memblock_phys_mem_size", "phys_mem_size")
memblock_reserved_size = _bind("memblock_reserved_size", "reserved_size")
memblock_reserved_kern_size = _bind("memblock_reserved_kern_size", "reserved_kern_size")
memblock_estimated_nr_free_pages = _bind("memblock_estimated_nr_free_pages", "estimated_nr_free_pages")
memblock_start_of_DRAM = _bind("memblock_start_of_DRAM", "start_of_dram")
memblock_end_of_DRAM = _bind("memblock_end_of_DRAM", "end_of_dram")
memblock_is_memory = _bind("memblock_is_memory", "is_memory")
memblock_is_map_memory = _bind("memblock_is_map_memory", "is_map_memory")
memblock_is_region_memory = _bind("memblock_is_region_memory", "is_region_memory")
memblock_is_reserved = _bind("memblock_is_reserved", "is_reserved")
memblock_is_region_reserved = _bind("memblock_is_region_reserved", "is_region_reserved")
memblock_overlaps_region = _bind("memblock_overlaps_region", "overlaps_region")
memblock_addrs_overlap = _bind("memblock_addrs_overlap", "addrs_overlap")
memblock_search_pfn_nid = _bind("memblock_search_pfn_nid", "search_pfn_nid")
memblock_validate_numa_coverage = _bind("memblock_validate_numa_coverage", "validate_numa_coverage")
# limits
memblock_enforce_memory_limit = _bind("memblock_enforce_memory_limit", "enforce_memory_limit")
memblock_cap_memory_range = _bind("memblock_cap_memory_range", "cap_memory_range")
memblock_mem_limit_remove_map = _bind("memblock_mem_limit_remove_map", "mem_limit_remove_map")
memblock_trim_memory = _bind("memblock_trim_memory", "trim_memory")
# output and hand-over
memblock_dump_all = _bind("memblock_dump_all", "dump_all")
memblock_free_late = _bind("memblock_free_late", "free_late")

# -- addresses, the debug switch, the hand-over ---------------------------------------------------

def _mapping() -> tuple[Any, int]:
    """``(physmem, real address of its first byte)``; ValueError without a PhysicalMemory."""
    if _physmem is None:
        raise ValueError("no PhysicalMemory: call reset(physmem) first")
    probe = _physmem.view(_physmem.phys_base, 0)        # empty: records nothing as written
    address = int(probe.__array_interface__["data"][0])
    del probe
    return _physmem, address


def __va(phys: int) -> int:
    """``__va()``: the virtual address of physical address ``phys`` — the real address, in
    this process, of that byte of the mapping (an int, usable with ``ctypes``).

    ``phys`` may be ``phys_end`` (one past the last byte, like a C end pointer). Raises
    ``TypeError`` for a non-integer, ``ValueError`` outside ``[phys_base, phys_end]`` or
    without a PhysicalMemory. O(1)."""
    phys = int_arg("phys", phys)
    pm, address = _mapping()
    if not pm.phys_base <= phys <= pm.phys_end:
        raise ValueError(f"__va: {phys:#x} is outside the physical memory "
                         f"[{pm.phys_base:#x}, {pm.phys_end:#x}]")
    return address + phys - pm.phys_base


def __pa(virt: int | np.ndarray) -> int:
    """``__pa()``: the physical address of a virtual address — the real address of a byte of
    the mapping (an int, as :func:`__va` returns), or a numpy view of the memory (its first
    byte, as :func:`virt_to_phys`).

    Raises ``TypeError`` for anything else, ``ValueError`` for an address outside the mapping
    or without a PhysicalMemory. O(1)."""
    if isinstance(virt, np.ndarray):
        pm, _ = _mapping()
        return int(pm.phys_of(virt))
    virt = int_arg("virt", virt)
    pm, address = _mapping()
    if not address <= virt <= address + pm.size:
        raise ValueError(f"__pa: {virt:#x} is not an address of the physical memory's mapping "
                         f"[{address:#x}, {address + pm.size:#x}]")
    return pm.phys_base + virt - address


def memblock_debug(enable: bool = True, file: TextIO | None = None) -> bool:
    """The ``memblock=debug`` switch: with ``enable`` every memblock call prints its debug line
    (``memblock_add: [0x...-0x...] caller``) to ``file`` (default: standard error, the
    console); ``memblock_debug(False)`` turns it off. Returns whether it was on before.

    The lines are the log records of the logger ``arena.memblock`` (level INFO); this switch
    adds and removes one handler on it and sets its level, leaving other logging
    configuration alone."""
    global _debug_handler
    if not isinstance(enable, (bool, np.bool_)):
        raise TypeError(f"enable must be a bool, not {type(enable).__name__} ({enable!r})")
    was = _debug_handler is not None
    log = logging.getLogger("arena.memblock")
    if _debug_handler is not None:
        log.removeHandler(_debug_handler)
        _debug_handler = None
    if enable:
        handler = logging.StreamHandler(sys.stderr if file is None else file)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        _debug_handler = handler
    elif was:
        log.setLevel(logging.NOTSET)
    return was


def memblock_free_all(buddy: BuddyAllocator | None = None) -> int:
    """``memblock_free_all()``: hand every free page to the page allocator; returns the
    number of pages (:meth:`arena.memblock.Memblock.free_all`).

    Without ``buddy`` (the kernel's signature) the pages go to a new
    :class:`arena.buddy.BuddyAllocator` over the physical memory given to :func:`reset`, with
    memblock's page size; :func:`page_allocator` returns it. Raises what
    :meth:`Memblock.free_all` raises (HandoverError the second time), leaving everything as
    it was."""
    global _pages
    target = buddy if buddy is not None else BuddyAllocator(_physmem,
                                                           page_size=memblock.page_size)
    pages = memblock.free_all(target)
    _pages = target
    return pages


def page_allocator() -> BuddyAllocator | None:
    """The page allocator that received memblock's memory at the hand-over
    (:func:`memblock_free_all`), or ``None`` before it."""
    return _pages


def kzalloc_node(size: int, nid: int = NUMA_NO_NODE, align: int = 0) -> np.ndarray | None:
    """``kzalloc_node()`` in miniature: ``size`` zeroed bytes from the page allocator after the
    hand-over, preferably on node ``nid`` (``NUMA_NO_NODE``: any), as a uint8 view; ``None``
    when no block is free (the kernel's NULL).

    The memory is the smallest power-of-two block of whole pages that holds ``size`` bytes
    aligned to ``align`` (the kernel's slab would carve small sizes out of a shared page; the
    block is page aligned, which satisfies any ``align`` up to its size). Raises
    ``HandoverError`` before the hand-over, ``TypeError``/``ValueError`` for bad arguments.
    O(nodes + max_order + size)."""
    from arena.errors import HandoverError

    size, nid, align = int_arg("size", size), int_arg("nid", nid), int_arg("align", align)
    if size < 0 or align < 0:
        raise ValueError(f"kzalloc_node: size and align must be >= 0, not {size}, {align}")
    if _pages is None:
        raise HandoverError("kzalloc_node: no page allocator yet: call memblock_free_all()")
    page = _pages.page_size
    order = (max(1, -(-max(size, align) // page)) - 1).bit_length()
    if order > _pages.max_order:          # larger than the largest block: the kernel's NULL
        return None
    view = _pages.alloc_pages(order, node=None if nid == NUMA_NO_NODE else nid)
    if view is None:
        return None
    view[:] = 0
    return view[:size]


_SLAB_FALLBACK = {
    # kernel name -> position of its nid parameter (None: the function takes no nid, any node)
    "memblock_alloc": None, "memblock_alloc_raw": None, "memblock_alloc_from": None,
    "memblock_alloc_low": None, "memblock_alloc_node": 2, "memblock_alloc_try_nid": 4,
    "memblock_alloc_try_nid_raw": 4, "memblock_alloc_exact_nid_raw": 4,
    "memblock_alloc_or_panic": None,
}


def _after_handover(kname: str, nid_index: int | None) -> Callable[..., Any]:
    """``kname`` as bound, but after the hand-over: warn (the kernel's ``WARN_ON_ONCE(
    slab_is_available())``) and take the memory from :func:`kzalloc_node`."""
    bound = globals()[kname]

    def func(*args: Any, **kwargs: Any) -> Any:
        if not memblock.handed_over or _pages is None:
            return bound(*args, **kwargs)
        call = inspect.signature(bound).bind(*args, **kwargs)
        params = list(call.arguments.values())
        size = int_arg("size", params[0])
        align = int_arg("align", params[1]) if len(params) > 1 else 0
        nid = (int_arg("nid", params[nid_index])
               if nid_index is not None and len(params) > nid_index else NUMA_NO_NODE)
        if size < 0 or align < 0:
            raise ValueError(f"{kname}: size and align must be >= 0, not {size}, {align}")
        warnings.warn(f"{kname}() after the hand-over: the page allocator is up; the memory "
                      f"comes from kzalloc_node()", MemblockWarning, stacklevel=2)
        view = kzalloc_node(size, nid, align)
        if view is None and kname == "memblock_alloc_or_panic":
            raise MemblockPanic(f"{kname}: Failed to allocate {int(size):#x} bytes")
        return view

    func.__name__ = func.__qualname__ = kname
    func.__module__ = __name__
    func.__doc__ = bound.__doc__ + (
        "\n\nAfter the hand-over (:func:`memblock_free_all`) this warns with MemblockWarning and "
        "returns zeroed memory from the page allocator (:func:`kzalloc_node`), as the kernel "
        "falls back to the slab allocator.")
    func.__signature__ = inspect.signature(bound)  # type: ignore[attr-defined]
    return func


for _name, _nid_index in _SLAB_FALLBACK.items():
    globals()[_name] = _after_handover(_name, _nid_index)
del _name, _nid_index


__all__ = [
    "memblock", "reset",
    "NUMA_NO_NODE", "MEMBLOCK_ALLOC_ANYWHERE", "MEMBLOCK_ALLOC_ACCESSIBLE",
    "MEMBLOCK_ALLOC_NOLEAKTRACE", "MEMBLOCK_ALLOC_KASAN", "MEMBLOCK_LOW_LIMIT",
    "MEMBLOCK_NONE", "MEMBLOCK_HOTPLUG", "MEMBLOCK_MIRROR", "MEMBLOCK_NOMAP",
    "MEMBLOCK_DRIVER_MANAGED", "MEMBLOCK_RSRV_NOINIT", "MEMBLOCK_RSRV_KERN",
    "MEMBLOCK_KHO_SCRATCH", "MAX_NUMNODES", "MemblockWarning", "__pa", "__va",
    "page_allocator", "kzalloc_node",
]
__all__ += [name for name in list(globals()) if name.startswith(("memblock_", "for_each_"))
            and callable(globals()[name])] + ["virt_to_phys", "phys_to_virt"]

