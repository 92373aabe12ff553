"""The host side of :class:`arena.physmem.PhysicalMemory`: the page size and mapping flags,
the NUMA slices a memory is cut into (:class:`NodeSlice`) and their binding to the host's nodes
(:class:`BindStatus`, :func:`host_nodes`), and the system calls behind them.

NUMA without libnuma: ``mbind``, ``get_mempolicy`` and ``move_pages`` are called through
``ctypes`` ``syscall`` (x86_64 and aarch64 numbers) in the private section "host memory
syscalls" below; other architectures keep the node tags and report every slice unbound.
``mincore`` and ``mprotect`` are plain libc functions.
"""

from __future__ import annotations

import ctypes
import errno
import math
import mmap
import os
import platform
from collections.abc import Sequence
from fractions import Fraction
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np

from arena._args import int_arg
from arena.sizes import parse_size

__all__ = [
    "PAGE_SIZE",
    "NodeSlice",
    "BindStatus",
    "host_nodes",
]

# -- constants ----------------------------------------------------------------------------------

PAGE_SIZE: int = mmap.PAGESIZE

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


# -- small public types ------------------------------------------------------------------------

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
