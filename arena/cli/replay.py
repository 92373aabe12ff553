"""``replay LOG``: replay a boot log and compare with the kernel (``memblock-arena replay``).

Parses the options into :class:`arena.trace.Settings` (settings the log cannot show, the start
state given by hand, where to start), reads and parses the log (:mod:`arena.bootlog`), refuses
with one line and exit status 2 a file that is not a boot log, replays (:func:`arena.trace.replay`)
and prints the report (:func:`arena.trace_report.print_report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arena.bootlog import EXPECTED, Trace, not_a_log, parse, read_log
from arena.cli import args as types
from arena.progress import Progress
from arena.trace import DEFAULT_PAGE_SIZE, DEFAULT_SMP_CACHE_BYTES, Settings, replay
from arena.trace_report import Report, print_report

__all__ = ["add_replay_arguments", "replay_command", "replay_main", "load_trace"]

def _add_start_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "start state (for logs that do not print it)",
        "Ranges are START-END with the end inclusive, as the kernel prints them; each option "
        "can be repeated. By default the replay starts from the first MEMBLOCK configuration "
        "dump when the operations printed before it cannot explain it.")
    g.add_argument("--memory", type=types.node_range, action="append", default=[],
                   metavar="START-END[@NID]", help="memory present before the log begins "
                   "(memblock_add, or memblock_add_node with @NID)")
    g.add_argument("--reserved", type=types.inclusive_range, action="append", default=[],
                   metavar="START-END", help="memory reserved before the log begins")
    g.add_argument("--nomap", type=types.inclusive_range, action="append", default=[],
                   metavar="START-END", help="memory marked MEMBLOCK_NOMAP before the log begins")
    g.add_argument("--start-at-dump", type=types.dump_number, metavar="N",
                   help="start from the state of the N-th MEMBLOCK configuration dump (1 = the "
                        "first), skipping the operations before it; 0 = never")
    e = g.add_mutually_exclusive_group()
    e.add_argument("--exclusive-end", dest="end", action="store_const", const="exclusive",
                   help="range lines print an exclusive end (kernels before 3.14; default: "
                        "decided from the log)")
    e.add_argument("--inclusive-end", dest="end", action="store_const", const="inclusive",
                   help="range lines print an inclusive end (kernels since 3.14)")


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``replay`` subcommand's arguments (the log and the settings) to ``parser``."""
    parser.add_argument("log", help="kernel log booted with memblock=debug ('-' = stdin)")
    g = parser.add_argument_group("settings the log cannot show (inferred when not given)")
    g.add_argument("--phys-bits", type=int, choices=(32, 64),
                   help="width of phys_addr_t (default: from the address digits)")
    g.add_argument("--current-limit", type=types.address, metavar="ADDR",
                   help="memblock.current_limit (default: HighMem start, else anywhere)")
    d = g.add_mutually_exclusive_group()
    d.add_argument("--bottom-up", dest="bottom_up", action="store_const", const=True,
                   help="allocate bottom-up (default: the direction of the first results)")
    d.add_argument("--top-down", dest="bottom_up", action="store_const", const=False,
                   help="allocate top-down")
    g.add_argument("--kernel-end", type=types.address, metavar="ADDR",
                   help="end of the kernel image: pre-5.11 bottom-up starts there, with top-down "
                        "fallback")
    g.add_argument("--smp-cache-bytes", type=types.power_of_two, metavar="N",
                   help=f"SMP_CACHE_BYTES, the alignment of align=0 (default "
                        f"{DEFAULT_SMP_CACHE_BYTES})")
    g.add_argument("--page-size", type=types.power_of_two, metavar="N",
                   help=f"PAGE_SIZE (default {DEFAULT_PAGE_SIZE})")
    g.add_argument("--trim-memory", type=types.address, metavar="ALIGN",
                   help="memblock_trim_memory(ALIGN) after the initial adds (default: when the "
                        "first dump shows page-trimmed memory)")
    g.add_argument("--nodes-from-dump", action="store_const", const=True,
                   help="take node ids from the first dump that shows them")
    g.add_argument("--no-numa", dest="numa", action="store_const", const=False,
                   help="a kernel without CONFIG_NUMA")
    g.add_argument("--kernel-version", type=types.kernel_version, metavar="X.Y",
                   help="kernel version (default: 'Linux version' line or function names)")
    g.add_argument("--no-infer", action="store_true",
                   help="infer nothing: settings not given take their defaults")
    _add_start_arguments(parser)
    o = parser.add_argument_group("output")
    o.add_argument("--json", metavar="FILE", help="write the full report as JSON ('-' = stdout)")
    o.add_argument("--svg", metavar="FILE", help="draw the final memory map as SVG")
    o.add_argument("--quiet", action="store_true",
                   help="no progress line (drawn on stderr only when it is a terminal)")
    o.add_argument("-v", "--verbose", action="store_true",
                   help="list every allocation and dump with its result")


def _settings_from(args: argparse.Namespace) -> Settings:
    return Settings(phys_bits=args.phys_bits, current_limit=args.current_limit,
                    bottom_up=args.bottom_up, kernel_end=args.kernel_end,
                    smp_cache_bytes=args.smp_cache_bytes, page_size=args.page_size,
                    trim_memory=args.trim_memory, nodes_from_dump=args.nodes_from_dump,
                    numa=args.numa, kernel_version=args.kernel_version, infer=not args.no_infer,
                    memory=tuple(args.memory), reserved=tuple(args.reserved),
                    nomap=tuple(args.nomap), start_at_dump=args.start_at_dump)


def load_trace(path: str, prog: str, end: str | None = None) -> tuple[Trace, str] | int:
    """Read and parse the boot log at ``path`` (``-`` = stdin) for the command ``prog``.

    Returns ``(trace, name to show)``, or exit status 2 after printing one line to stderr when
    the file cannot be read or is not a ``memblock=debug`` boot log (empty, binary, no memblock
    line that parses). ``end`` is passed to :func:`arena.bootlog.parse`. O(lines)."""
    try:
        text, name = read_log(path)
    except OSError as e:
        print(f"{prog}: cannot read {path}: {e.strerror or e}", file=sys.stderr)
        return 2
    trace = parse(text, end=end)
    why = not_a_log(text, trace)
    if why is not None:
        print(f"{prog}: {name}: not a memblock=debug boot log ({why}); {EXPECTED}",
              file=sys.stderr)
        return 2
    return trace, name


def replay_command(args: argparse.Namespace) -> int:
    """Run ``replay`` for parsed arguments (see :func:`add_replay_arguments`).

    Prints the summary (its last line ``allocations reproduced: N/M, dumps matched: K/L``) and
    returns the exit status: 0 when everything replayed matches, 1 on any divergence or
    malformed line, 2 (with one line on stderr) when the log cannot be read or is not a boot
    log, the settings are impossible, or the JSON/SVG cannot be written.
    """
    try:
        settings = _settings_from(args)
    except (TypeError, ValueError) as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2
    loaded = load_trace(args.log, "replay", args.end)
    if isinstance(loaded, int):
        return loaded
    trace, name = loaded
    try:
        with Progress(label="replay", quiet=getattr(args, "quiet", False)) as bar:
            report = replay(trace, settings, progress=bar)
    except (ValueError, TypeError, OverflowError) as e:
        print(f"replay: {name}: {e}", file=sys.stderr)
        return 2
    status = _write_outputs(args, report, name)
    return status if status else (0 if report.ok else 1)


def _write_outputs(args: argparse.Namespace, report: Report, name: str) -> int:
    """Print the report and write ``--json``/``--svg``; 2 when a file cannot be written."""
    to_stdout_json = args.json == "-"
    print_report(report, name, sys.stderr if to_stdout_json else sys.stdout, args.verbose)
    if args.json:
        data = json.dumps(report.to_dict(), indent=2)
        if to_stdout_json:
            print(data)
        else:
            try:
                Path(args.json).write_text(data + "\n", encoding="utf-8")
            except OSError as e:
                print(f"replay: cannot write {args.json}: {e.strerror or e}", file=sys.stderr)
                return 2
    if args.svg:
        from arena.render import svg
        from arena.trace_callers import callers_from_ops

        drawing = svg(report.memblock, callers=callers_from_ops(report.ops),
                      title=f"memblock after {name}")
        try:
            Path(args.svg).write_text(drawing, encoding="utf-8")
        except OSError as e:
            print(f"replay: cannot write {args.svg}: {e.strerror or e}", file=sys.stderr)
            return 2
        print(f"SVG memory map written to {args.svg}",
              file=sys.stderr if to_stdout_json else sys.stdout)
    return 0


def replay_main(argv: list[str] | None = None) -> int:
    """``python -m arena replay LOG [settings]``: parse ``argv`` (default ``sys.argv[1:]``),
    replay, print the summary; returns the exit status (see :func:`replay_command`)."""
    parser = argparse.ArgumentParser(
        prog="memblock-arena replay",
        description="Replay a memblock=debug boot log on our memblock and compare every "
                    "allocation and dump with the kernel's.")
    add_replay_arguments(parser)
    return replay_command(parser.parse_args(argv))
