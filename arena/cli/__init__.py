"""The command line: ``memblock-arena <command>`` (also ``python -m arena <command>``).

One module per command group, one set of argument types (:mod:`arena.cli.args`):

* ``demo`` (:mod:`arena.cli.demo`) — boot the built-in two-node x86-64 PC
  (:mod:`arena.demo`) and show the ``memblock=debug`` log, ``memblock_dump_all()``, buddyinfo,
  zoneinfo and the memory map.
* ``map [LOG]`` (:mod:`arena.cli.map`) — the terminal memory map (and ``--svg``) of a replayed
  boot log, or of the demo machine; ``--diff A B`` shows what was allocated and freed between
  two points of the log.
* ``replay LOG`` (:mod:`arena.cli.replay`) — replay a real boot log and compare with the
  kernel.
* ``soak`` — the randomized stateful workload with every check on (:mod:`arena.soak`).
* ``physmem`` (:mod:`arena.cli.physmem`) — a tour of :class:`arena.physmem.PhysicalMemory`.

Commands are registered in :data:`COMMANDS` (name -> (help, add_arguments, run)), each loaded
only when it runs, so ``--help`` stays fast. Every command runs under :func:`run_command`: a
reader that stops early (``... | head -1``) ends the command quietly, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = ["main", "parser", "Parser", "COMMANDS", "run_command", "PIPE_CLOSED"]

#: Exit status after the reader of standard output went away (128 + SIGPIPE, as a shell
#: reports a program that SIGPIPE ended).
PIPE_CLOSED = 141


def _lazy(module: str, name: str) -> Callable[[Any], Any]:
    """``module.name``, imported on first call: ``--help`` stays fast and a command's
    dependencies load only when it runs."""

    def call(arg: Any) -> Any:
        return getattr(importlib.import_module(module), name)(arg)

    call.__name__ = name
    return call


#: name -> (help text, function adding the subcommand's arguments, function running it)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "demo": ("boot the built-in two-node x86-64 PC on memblock and show the debug log, "
             "memblock_dump_all(), buddyinfo, zoneinfo and the memory map",
             _lazy("arena.cli.demo", "add_demo_arguments"),
             _lazy("arena.cli.demo", "demo_command")),
    "map": ("draw the memory map of a replayed boot log, or of the demo machine",
            _lazy("arena.cli.map", "add_map_arguments"), _lazy("arena.cli.map", "map_command")),
    "replay": ("replay a memblock=debug boot log and compare every allocation with the "
               "kernel's", _lazy("arena.cli.replay", "add_replay_arguments"),
               _lazy("arena.cli.replay", "replay_command")),
    "soak": ("run the randomized stateful workload (memblock, buddy, arena) with every check "
             "on and report operations per second and invariant violations",
             _lazy("arena.soak", "add_soak_arguments"), _lazy("arena.soak", "soak_main")),
    "physmem": ("map a small physical memory and show views, residency and NUMA binding",
                _lazy("arena.cli.physmem", "add_physmem_arguments"),
                _lazy("arena.cli.physmem", "physmem_command")),
}


def run_command(run: Callable[[Any], int], args: Any) -> int:
    """``run(args)``, then flush standard output; returns its exit status.

    When the reader of standard output goes away (``BrokenPipeError``, e.g. ``| head -1``),
    the rest of the output is dropped: standard output is pointed at ``/dev/null`` (so the
    interpreter's final flush cannot fail again) and :data:`PIPE_CLOSED` is returned, with
    nothing printed."""
    try:
        status = run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
            pass
        finally:
            os.close(devnull)
        return PIPE_CLOSED
    return status


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``PROG: error: MESSAGE (see PROG
    --help)``, exit status 2 (argparse's default prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        """Print the one-line error to stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser(prog: str = "memblock-arena") -> argparse.ArgumentParser:
    """The argument parser of every command, its usage lines naming ``prog``."""
    p = Parser(
        prog=prog, description="memblock-arena: the kernel's memblock allocator over real memory")
    sub = p.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    for name, (help_text, add_args, _run) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return p


def main(argv: Sequence[str] | None = None, prog: str = "memblock-arena") -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit status.

    ``prog`` is the name the usage lines show: ``memblock-arena`` for the installed script,
    ``python -m arena`` for the module."""
    p = parser(prog)
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help, or a bad argument (one line already printed)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        p.print_help()
        return 2
    return run_command(COMMANDS[args.command][2], args)
