"""``map [LOG]``: the terminal memory map (and ``--svg``) of a replayed boot log or of the demo
machine; ``--diff A B``: what was allocated and freed between two points of the log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena.cli import args as types
from arena.cli.demo import add_machine_arguments, machine_from_args

__all__ = ["add_map_arguments", "map_command", "diff_command"]


def add_map_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``map`` subcommand's arguments to ``p``."""
    p.add_argument("log", nargs="?", help="a memblock=debug boot log to replay ('-' = stdin); "
                   "without it, the demo machine is booted")
    p.add_argument("--width", type=types.columns, default=72, metavar="COLS",
                   help="width of the map rows (default 72)")
    p.add_argument("--svg", metavar="FILE", help="also write the SVG memory map to FILE")
    p.add_argument("--diff", nargs=2, metavar=("A", "B"),
                   help="what was allocated and freed between two points of the log: start, "
                   "end, dump:N, line:N (or N); e.g. --diff dump:1 dump:2, --diff 119 120")
    add_machine_arguments(p)


def _map_demo(args: argparse.Namespace) -> tuple[str, str, str | None] | int:
    """(header, text map, SVG or None) of the demo machine, or an exit status."""
    from arena.demo import boot
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
    from arena.cli.replay import load_trace
    from arena.render import svg, text_map
    from arena.trace import replay
    from arena.trace_callers import callers_from_ops

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


def _write(path: str, text: str, what: str) -> int:
    """Write ``text`` to ``path`` and say so; 2 (one line on stderr) when it cannot."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"map: cannot write {path}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"{what} written to {path}")
    return 0


def map_command(args: argparse.Namespace) -> int:
    """``map [LOG]``: print the terminal map (:func:`arena.render.text_map`) of the final
    memblock state of a replayed log, or of the demo machine after the hand-over; with ``--svg``
    also write the SVG map (reservations named by their callers). Returns 0, or 1 when the demo
    boot panicked, 2 for a bad option, an unreadable log, a file that is not a boot log, or an
    unwritable SVG file."""
    if getattr(args, "diff", None):
        return diff_command(args)
    result = _map_demo(args) if args.log is None else _map_log(args)
    if isinstance(result, int):
        return result
    header, text, picture = result
    print(header)
    print(text)
    return 0 if picture is None else _write(args.svg, picture, "SVG memory map")


def _log_text(args: argparse.Namespace) -> tuple[str, str] | int:
    """The log to diff and its name: the file, or the demo machine's boot log."""
    if args.log is not None:
        from arena.bootlog import read_log

        try:
            return read_log(args.log)
        except OSError as e:
            print(f"map: cannot read {args.log}: {e.strerror or e}", file=sys.stderr)
            return 2
    from arena.demo import boot
    from arena.errors import MemblockPanic

    try:
        machine = machine_from_args(args)
        with boot(machine) as b:
            return b.log_text(), "the demo machine's boot log"
    except (TypeError, ValueError) as e:
        print(f"map: {e}", file=sys.stderr)
        return 2
    except MemblockPanic as e:
        print(f"map: Kernel panic - not syncing: {e}", file=sys.stderr)
        return 1


def diff_command(args: argparse.Namespace) -> int:
    """``map [LOG] --diff A B``: print the changes between points ``A`` and ``B`` of the log
    (:func:`arena.trace_points.parse_point`; the demo machine's boot log when no LOG is given)
    and, with ``--svg FILE``, write their picture (:func:`arena.render_diff.svg_diff`). Returns
    0, or 2 for a bad point, an unreadable log or an unwritable file (1 when the demo boot
    panicked)."""
    from arena.bootlog import parse
    from arena.render_diff import changes, summary, svg_diff
    from arena.trace import replay
    from arena.trace_callers import callers_from_ops
    from arena.trace_points import parse_point, state_at

    try:
        a, b = (parse_point(t) for t in args.diff)
    except ValueError as e:
        print(f"map: --diff: {e}", file=sys.stderr)
        return 2
    got = _log_text(args)
    if isinstance(got, int):
        return got
    text, name = got
    trace = parse(text)
    settings = replay(trace).settings
    try:
        ra, rb = state_at(trace, a, settings), state_at(trace, b, settings)
    except ValueError as e:
        print(f"map: --diff: {e}", file=sys.stderr)
        return 2
    cb, ca = callers_from_ops(ra.ops), callers_from_ops(rb.ops)
    ch = changes(ra.memblock, rb.memblock, callers_before=cb, callers_after=ca)
    print(f"diff of {name}: {summary(ch, str(a), str(b))}")
    for c in ch:
        print(f"  {c}")
    if not args.svg:
        return 0
    picture = svg_diff(ra.memblock, rb.memblock, labels=(str(a), str(b)),
                       title=f"{Path(name).name}: from {a} to {b}",
                       callers_before=cb, callers_after=ca)
    return _write(args.svg, picture, "SVG picture of the changes")
