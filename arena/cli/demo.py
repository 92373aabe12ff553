"""``demo``: boot the built-in machine (:mod:`arena.demo`) and print the tour; the machine's
options, shared with ``map`` when it draws the demo machine."""

from __future__ import annotations

import argparse
import sys

from arena.cli import args as types
from arena.demo import MAX_NODES, Machine, run_demo

__all__ = ["add_machine_arguments", "machine_from_args", "add_demo_arguments", "demo_command"]


def add_machine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the built-in machine's options (memory, nodes, direction, limit, kernel)."""
    g = parser.add_argument_group("the machine")
    g.add_argument("--memory", type=types.size, default=6 << 30, metavar="SIZE",
                   help="RAM size, e.g. 6G, '512 MiB' (default 6 GiB; 256 MiB .. 1 TiB)")
    g.add_argument("--nodes", type=types.node_count(MAX_NODES), default=2, metavar="N",
                   help=f"NUMA nodes, 1..{MAX_NODES} (default 2)")
    g.add_argument("--cpus-per-node", type=types.node_count(64, "CPU count"), default=2, metavar="N",
                   help="CPUs per node, 1..64 (default 2)")
    d = g.add_mutually_exclusive_group()
    d.add_argument("--bottom-up", dest="bottom_up", action="store_true",
                   help="allocate bottom-up (memblock_set_bottom_up(true))")
    d.add_argument("--top-down", dest="bottom_up", action="store_false",
                   help="allocate top-down (the default)")
    g.add_argument("--current-limit", type=types.address, metavar="ADDR",
                   help="memblock_set_current_limit(ADDR) after the direct map is set up "
                        "(default: the end of memory), e.g. 0x100000000 or 4G")
    g.add_argument("--kernel-version", type=types.kernel_version, metavar="X.Y",
                   help="behave like the memblock of kernel X.Y (default: the newest)")


def machine_from_args(args: argparse.Namespace) -> Machine:
    """The :class:`arena.demo.Machine` the parsed options describe (``TypeError``/
    ``ValueError`` if the combination is impossible)."""
    return Machine(memory=args.memory, nodes=args.nodes, cpus_per_node=args.cpus_per_node,
                   bottom_up=args.bottom_up, current_limit=args.current_limit,
                   kernel_version=args.kernel_version)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` subcommand's options to ``parser``."""
    add_machine_arguments(parser)
    o = parser.add_argument_group("output")
    o.add_argument("--no-log", action="store_true",
                   help="leave out the memblock=debug boot log")
    o.add_argument("-q", "--quiet", action="store_true",
                   help="no boot log and no progress lines: only the results")
    o.add_argument("--svg", metavar="FILE", help="also write the SVG memory map to FILE")
    o.add_argument("--width", type=types.columns, default=72, metavar="COLS",
                   help="width of the terminal map (default 72)")


def demo_command(args: argparse.Namespace) -> int:
    """Run ``demo`` for parsed arguments; returns the exit status (0 ok, 1 boot panic, 2 bad
    option or unwritable SVG file)."""
    try:
        machine = machine_from_args(args)
    except (TypeError, ValueError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    try:
        return run_demo(machine, sys.stdout, log=not (args.no_log or args.quiet),
                        err=None if args.quiet else sys.stderr, svg_path=args.svg,
                        width=args.width)
    except BrokenPipeError:
        raise  # the reader went away: arena.cli.run_command ends quietly
    except OSError as e:
        print(f"demo: cannot write {args.svg}: {e.strerror or e}", file=sys.stderr)
        return 2
