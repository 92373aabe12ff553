"""Command line: ``python -m arena <command>`` (also installed as ``memblock-arena``).

Commands are registered in :data:`COMMANDS` (name → (help, add_arguments, run)), so later work
adds ``replay``, ``map`` or ``soak`` by adding an entry; ``demo`` is the interim tour of
:class:`arena.physmem.PhysicalMemory` and is replaced by the full demo once the allocator exists.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

__all__ = ["main", "physmem_demo", "COMMANDS"]


def _kib(n: int) -> str:
    return f"{n >> 10} KiB"


def physmem_demo(out: TextIO, *, size: str = "64 MiB", nodes: int = 2) -> int:
    """Tour of the physical memory: map, write through views, residency, NUMA, release.

    Writes a readable account to ``out`` and returns 0 (the process exit status).
    """
    import numpy as np

    from arena.physmem import PhysicalMemory

    def say(text: str = "") -> None:
        print(text, file=out)

    phys_base = 1 << 30
    with PhysicalMemory(size, phys_base=phys_base, nodes=nodes) as pm:
        say(f"mapped {pm.size:#x} bytes of physical memory at [{pm.phys_base:#x}, "
            f"{pm.phys_end:#x}) (page size {pm.page_size})")
        say(f"resident before any write: {_kib(pm.resident_bytes())}")
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
        say(f"resident after writing: {_kib(pm.resident_bytes())}")
        pm.zero(phys_base, pm.size)
        say(f"zeroed the whole memory, touching only written pages: "
            f"{_kib(pm.resident_bytes())} resident")
        del words, raw
        pm.release(phys_base, pm.size)
        say(f"released everything: {_kib(pm.resident_bytes())} resident, first bytes read "
            f"{pm.read(phys, 4)!r}")
    say("closed")
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="64 MiB", help="physical memory size (default 64 MiB)")
    p.add_argument("--nodes", type=int, default=2, help="NUMA node count (default 2)")


def _demo_run(args: argparse.Namespace) -> int:
    return physmem_demo(sys.stdout, size=args.size, nodes=args.nodes)


#: name -> (help text, function adding the subcommand's arguments, function running it)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "demo": ("map a small physical memory and show views, residency and NUMA binding",
             _demo_args, _demo_run),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m arena", description="memblock-arena: the kernel's memblock allocator over real memory")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (help_text, add_args, _run) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
