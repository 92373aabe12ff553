"""``physmem``: a tour of :class:`arena.physmem.PhysicalMemory` — map, write through views,
residency, NUMA binding, release.

Bad options (``--size -5``, ``lots``, ``0``, ``--nodes 0``, more nodes than pages, more memory
than the host can map) print one line and exit with status 2, as every command does.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from arena.cli import args as types
from arena.sizes import human_size

__all__ = ["add_physmem_arguments", "physmem_command", "physmem_demo"]

_MAX_NODES = 1024


def add_physmem_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``physmem`` subcommand's options (``--size``, ``--nodes``) to ``p``."""
    p.add_argument("--size", type=types.size, default=64 << 20, metavar="SIZE",
                   help="physical memory size, e.g. 64M, '1 GiB' (default 64 MiB)")
    p.add_argument("--nodes", type=types.node_count(_MAX_NODES), default=2, metavar="N",
                   help=f"NUMA node count, 1..{_MAX_NODES} and at most one per page (default 2)")


def physmem_command(args: argparse.Namespace) -> int:
    """Run ``physmem`` for parsed arguments: 0, or 2 (one line on stderr) when the memory
    cannot be made (nodes without a whole page each, more than the host can map)."""
    from arena.errors import ArenaMemoryError

    try:
        return physmem_demo(sys.stdout, size=args.size, nodes=args.nodes)
    except (ValueError, ArenaMemoryError) as e:
        print(f"physmem: {e}", file=sys.stderr)
        return 2


def physmem_demo(out: TextIO, *, size: int | str = "64 MiB", nodes: int = 2) -> int:
    """Tour of the physical memory: map, write through views, residency, NUMA, release.

    Writes a readable account to ``out`` and returns 0 (the process exit status). Raises
    ``ValueError`` for an impossible size/node count and :class:`arena.errors.ArenaMemoryError`
    when the host cannot map the memory, before anything is printed.
    """
    import numpy as np

    from arena.physmem import PhysicalMemory

    def say(text: str = "") -> None:
        print(text, file=out)

    phys_base = 1 << 30
    with PhysicalMemory(size, phys_base=phys_base, nodes=nodes) as pm:
        say(f"mapped {pm.size:#x} bytes ({human_size(pm.size)}) of physical memory at "
            f"[{pm.phys_base:#x}, {pm.phys_end:#x}) (page size {pm.page_size})")
        say(f"resident before any write: {human_size(pm.resident_bytes())}")
        say("NUMA slices and where the host placed them:")
        for st in pm.bind_status():
            say(f"  node {st.nid}: [{st.phys_start:#x}, {st.phys_start + st.size:#x}) "
                f"-> {st.reason}")

        phys = phys_base + (2 << 20)  # 2 MiB into the memory: aligned to 2 MiB physically
        words = pm.view(phys, 4096, np.uint64)
        words[:] = np.arange(512, dtype=np.uint64)
        raw = pm.view(phys, 64)  # a second view of the same physical bytes
        say(f"wrote 512 uint64 at phys {phys:#x}; a uint8 view of the same bytes reads "
            f"{raw[:8].tolist()} (the little-endian 0) and {raw[8:16].tolist()} (1)")
        addr = words.__array_interface__["data"][0]
        say(f"real address {addr:#x}: {addr % (2 << 20)} modulo 2 MiB, as the physical address "
            f"(phys_of gives back {pm.phys_of(words):#x})")

        last = pm.slices[-1]
        pm.fill(last.phys_start, 1 << 20, 0xAB)
        say(f"filled 1 MiB of node {last.nid} with 0xab; the host placed its first page on "
            f"host node {pm.node_of_page(last.phys_start)}")
        say(f"resident after writing: {human_size(pm.resident_bytes())}")
        pm.zero(phys_base, pm.size)
        say(f"zeroed the whole memory, touching only written pages: "
            f"{human_size(pm.resident_bytes())} resident")
        del words, raw
        pm.release(phys_base, pm.size)
        say(f"released everything: {human_size(pm.resident_bytes())} resident, first bytes "
            f"read {pm.read(phys, 4)!r}")
    say("closed")
    return 0
