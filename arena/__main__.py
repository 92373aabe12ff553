"""Command line: ``python -m arena <command>`` (also installed as ``memblock-arena``).

Commands are registered in :data:`COMMANDS` (name → (help, add_arguments, run)); a new command
is one more entry:

* ``demo`` — boot the built-in two-node x86-64 PC (:mod:`arena.demo`) and show the
  ``memblock=debug`` log, ``memblock_dump_all()``, buddyinfo, zoneinfo and the memory map.
* ``map [LOG]`` — the terminal memory map (and ``--svg``) of a replayed boot log, or of the
  demo machine when no log is given; ``--diff A B`` shows what was allocated and freed between
  two points of the log (:mod:`arena.render_diff`).
* ``replay LOG`` — replay a real boot log and compare with the kernel (:mod:`arena.trace`).
* ``soak`` — the randomized stateful workload with every check on (:mod:`arena.soak`).
* ``physmem`` — a tour of :class:`arena.physmem.PhysicalMemory`: views, residency, NUMA.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "physmem_demo", "map_command", "COMMANDS"]


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


def _physmem_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="64 MiB", help="physical memory size (default 64 MiB)")
    p.add_argument("--nodes", type=int, default=2, help="NUMA node count (default 2)")


def _physmem_run(args: argparse.Namespace) -> int:
    return physmem_demo(sys.stdout, size=args.size, nodes=args.nodes)


def _map_args(p: argparse.ArgumentParser) -> None:
    from arena.demo import add_machine_arguments

    p.add_argument("log", nargs="?", help="a memblock=debug boot log to replay ('-' = stdin); "
                   "without it, the demo machine is booted")
    p.add_argument("--width", type=int, default=72, metavar="COLS",
                   help="width of the map rows (default 72)")
    p.add_argument("--svg", metavar="FILE", help="also write the SVG memory map to FILE")
    p.add_argument("--diff", nargs=2, metavar=("A", "B"),
                   help="what was allocated and freed between two points of the log: start, "
                   "end, dump:N, line:N (or N); e.g. --diff dump:1 dump:2, --diff 119 120")
    add_machine_arguments(p)


def _map_demo(args: argparse.Namespace) -> tuple[str, str, str | None] | int:
    """(header, text map, SVG or None) of the demo machine, or an exit status."""
    from arena.demo import boot, machine_from_args
    from arena.errors import MemblockPanic
    from arena.render import svg, text_map

    try:
        machine = machine_from_args(args)
    except (TypeError, ValueError) as e:
        print(f"map: {e}", file=sys.stderr)
        return 2
    try:
        b = boot(machine)
    except MemblockPanic as e:
        print(f"map: Kernel panic - not syncing: {e}", file=sys.stderr)
        return 1
    with b:
        picture = (svg(b.memblock, callers=b.callers(), title="demo machine after the hand-over")
                   if args.svg else None)
        return (f"demo machine: {machine.describe()}", text_map(b.memblock, width=args.width),
                picture)


def _map_log(args: argparse.Namespace) -> tuple[str, str, str | None] | int:
    """(header, text map, SVG or None) of a replayed log, or an exit status."""
    from arena.render import callers_from_ops, svg, text_map
    from arena.trace import replay
    from arena.trace_cli import load_trace

    loaded = load_trace(args.log, "map")
    if isinstance(loaded, int):
        return loaded
    trace, name = loaded
    try:
        report = replay(trace)
    except (ValueError, TypeError, OverflowError) as e:
        print(f"map: {name}: {e}", file=sys.stderr)
        return 2
    picture = (svg(report.memblock, callers=callers_from_ops(report.ops),
                   title=f"{Path(name).name}, replayed") if args.svg else None)
    return (f"replay of {name}: {report.summary_line()}",
            text_map(report.memblock, width=args.width), picture)


def map_command(args: argparse.Namespace) -> int:
    """``map [LOG]``: print the terminal map (:func:`arena.render.text_map`) of the final
    memblock state of a replayed log, or of the demo machine after the hand-over; with ``--svg``
    also write the SVG map (reservations named by their callers). Returns 0, or 1 when the demo
    boot panicked, 2 for a bad option, an unreadable log, a file that is not a boot log, or an
    unwritable SVG file."""
    if args.width < 8:
        print(f"map: --width must be at least 8, not {args.width}", file=sys.stderr)
        return 2
    if getattr(args, "diff", None):
        return _lazy("arena.render_diff", "diff_command")(args)
    result = _map_demo(args) if args.log is None else _map_log(args)
    if isinstance(result, int):
        return result
    header, text, picture = result
    print(header)
    print(text)
    if picture is not None:
        try:
            Path(args.svg).write_text(picture, encoding="utf-8")
        except OSError as e:
            print(f"map: cannot write {args.svg}: {e.strerror or e}", file=sys.stderr)
            return 2
        print(f"SVG memory map written to {args.svg}")
    return 0


def _lazy(module: str, name: str) -> Callable[[Any], Any]:
    """``module.name``, imported on first call: ``python -m arena --help`` stays fast and a
    command's dependencies load only when it runs."""

    def call(arg: Any) -> Any:
        return getattr(importlib.import_module(module), name)(arg)

    call.__name__ = name
    return call


#: name -> (help text, function adding the subcommand's arguments, function running it)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "demo": ("boot the built-in two-node x86-64 PC on memblock and show the debug log, "
             "memblock_dump_all(), buddyinfo, zoneinfo and the memory map",
             _lazy("arena.demo", "add_demo_arguments"), _lazy("arena.demo", "demo_command")),
    "map": ("draw the memory map of a replayed boot log, or of the demo machine",
            _map_args, map_command),
    "replay": ("replay a memblock=debug boot log and compare every allocation with the "
               "kernel's", _lazy("arena.trace_cli", "add_replay_arguments"),
               _lazy("arena.trace_cli", "replay_command")),
    "soak": ("run the randomized stateful workload (memblock, buddy, arena) with every check "
             "on and report operations per second and invariant violations",
             _lazy("arena.soak", "add_soak_arguments"), _lazy("arena.soak", "soak_main")),
    "physmem": ("map a small physical memory and show views, residency and NUMA binding",
                _physmem_args, _physmem_run),
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
