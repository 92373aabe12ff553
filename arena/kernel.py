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
method), each a real function with the method's docstring and signature. The kernel's ``memblock_bottom_up()`` is
:meth:`Memblock.get_bottom_up`; ``memblock_free_all(buddy)`` takes the page allocator that
receives the memory.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

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

#: The one global memblock every function acts on (a simulation until :func:`reset` is given
#: a PhysicalMemory).
memblock: Memblock = Memblock(None)

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
    fresh = Memblock(physmem, **kwargs)
    memblock.__dict__.clear()
    memblock.__dict__.update(fresh.__dict__)
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
memblock_free_all = _bind("memblock_free_all", "free_all")
memblock_free_late = _bind("memblock_free_late", "free_late")

__all__ = [
    "memblock", "reset",
    "NUMA_NO_NODE", "MEMBLOCK_ALLOC_ANYWHERE", "MEMBLOCK_ALLOC_ACCESSIBLE",
    "MEMBLOCK_ALLOC_NOLEAKTRACE", "MEMBLOCK_ALLOC_KASAN", "MEMBLOCK_LOW_LIMIT",
    "MEMBLOCK_NONE", "MEMBLOCK_HOTPLUG", "MEMBLOCK_MIRROR", "MEMBLOCK_NOMAP",
    "MEMBLOCK_DRIVER_MANAGED", "MEMBLOCK_RSRV_NOINIT", "MEMBLOCK_RSRV_KERN",
    "MEMBLOCK_KHO_SCRATCH",
]
__all__ += [name for name in list(globals()) if name.startswith(("memblock_", "for_each_"))
            and callable(globals()[name])] + ["virt_to_phys", "phys_to_virt"]

