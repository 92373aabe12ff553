"""Soak: the stateful workload run at full speed, every check on, against reference models.

Kernel counterpart: none (the kernel's memblock test suite has no randomized tests). The soak is
three modules: the *reference models* (:mod:`arena.soak_models`), the *workloads*
(:mod:`arena.soak_workloads`, :mod:`arena.soak_arena`), shared with the Hypothesis state machines
in ``tests/test_stateful_*.py``, and this one, the *runner* behind ``python -m arena soak``
(every public name of the other three is importable from here too):

* :class:`MemblockModel` — a byte map of the ``memory`` and ``reserved`` sets over a window of
  physical addresses (each byte: present?, nid, flags). The region arrays the kernel keeps are
  the run-length encoding of that map (the arrays are sorted, disjoint and minimal), so the
  model predicts every region, ``cnt``, ``max`` (array doubling included: where the new array
  goes and what it reserves), ``total_size``, the free ranges and the address every allocation
  chooses (top-down = highest aligned fit, bottom-up = lowest, with the kernel's fallbacks).
* :class:`BuddyModel` — per page: managed by which node, free or allocated. A buddy allocator
  whose invariants hold has exactly one set of free blocks for a set of free pages (the maximal
  naturally aligned free blocks of one node, up to ``max_order``), so the model predicts
  ``free_area``, ``nr_free_pages`` and every free block, and checks that an allocation takes a
  whole free block of the smallest order that can serve it.
* :class:`MemblockWorkload`, :class:`BuddyWorkload`, :class:`ArenaWorkload` — one allocator and
  its model driven side by side: :meth:`Workload.apply` runs one operation on both,
  :meth:`Workload.verify` compares the whole state (region arrays, free space, statistics,
  ``check()``) and that every live allocation still holds the unique pattern written into it
  when it was made (an overlap or a lost write shows at once).

Operations are plain tuples ``(name, *args)`` drawn through a :class:`Chooser` (a seeded
``random.Random`` here, Hypothesis' ``data.draw`` in the tests), so a failing run prints as a
list of calls and re-runs from its seed: ``python -m arena soak --seed S --episodes 1``.

Complexity: a model step is O(window bytes) with numpy (a few microseconds per KiB); the
soak checks every operation, so it measures correctness under load, not allocator speed.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from arena.constants import PHYS_ADDR_MAX_64 as MASK64
from arena.constants import RSRV_KERN
from arena.errors import InvariantViolation, KernelBug
from arena.soak_arena import ArenaWorkload
from arena.soak_models import BuddyModel, MemblockModel
from arena.soak_workloads import (
    BuddyWorkload,
    Chooser,
    DataChooser,
    MemblockWorkload,
    RandomChooser,
    Workload,
    _close_quietly,
    format_op,
    pattern,
    state_machine,
)

__all__ = [
    "MASK64",
    "RSRV_KERN",
    "InvariantViolation",
    "Chooser",
    "RandomChooser",
    "DataChooser",
    "MemblockModel",
    "BuddyModel",
    "Workload",
    "MemblockWorkload",
    "BuddyWorkload",
    "ArenaWorkload",
    "WORKLOADS",
    "state_machine",
    "SoakResult",
    "run_soak",
    "add_soak_arguments",
    "soak_command",
    "soak_main",
    "pattern",
    "format_op",
    "run_episode",
    "KernelBug",
]


# -- the soak runner ---------------------------------------------------------------------------

WORKLOADS = ("memblock", "arena", "arena-debug", "buddy")


class SoakResult:
    """What a soak run did: operations, episodes per workload, peak regions, the violation."""

    def __init__(self) -> None:
        self.ops = 0
        self.seconds = 0.0
        self.episodes: dict[str, int] = dict.fromkeys(WORKLOADS, 0)
        self.peak_regions: dict[str, int] = dict.fromkeys(WORKLOADS, 0)
        self.violation: InvariantViolation | None = None
        self.violation_seed: int | None = None
        self.violation_kind: str | None = None


def _make(kind: str, c: Chooser, pms: dict[str, Any]) -> Workload:
    if kind == "memblock":
        return MemblockWorkload.create(pms["memblock"], c)
    if kind == "buddy":
        return BuddyWorkload.create(pms["buddy"], c)
    return ArenaWorkload.create(c, debug=kind == "arena-debug")


def run_episode(seed: int, pms: dict[str, Any], ops: int, deadline: float,
                kinds: Sequence[str] = WORKLOADS) -> tuple[str, Workload, int]:
    """One episode: a workload chosen and built from ``seed``, then up to ``ops`` operations,
    each verified. Returns ``(kind, workload, operations run)``; raises
    :class:`InvariantViolation`."""
    rng = random.Random(seed)
    c = RandomChooser(rng)
    kind = c.choice(list(kinds))
    w = _make(kind, c, pms)
    done = 0
    try:
        w.verify()
        while done < ops and time.monotonic() < deadline and not w.dead:
            op = w.random_op(c)
            if op is None:
                continue
            w.apply(op)
            w.verify()
            done += 1
    except InvariantViolation as exc:
        exc.kind = kind  # type: ignore[attr-defined]
        w.close()
        raise
    w.close()
    return kind, w, done


def run_soak(seconds: float, *, seed: int | None = None, episodes: int | None = None,
             ops_per_episode: int = 300, kinds: Sequence[str] = WORKLOADS,
             progress: Callable[[str], None] | None = None) -> SoakResult:
    """Run episodes for ``seconds`` (or exactly ``episodes`` of them), stopping at the first
    invariant violation. Episode ``i`` of a run with ``seed`` uses seed ``seed + i``."""
    from arena.physmem import PhysicalMemory

    seed = random.randrange(1 << 32) if seed is None else seed
    res = SoakResult()
    saved = os.environ.get("ARENA_CHECK")
    os.environ["ARENA_CHECK"] = "1"  # every mutator also checks its own invariants
    # memblock logs "Failed to double ..." at ERROR when an array cannot grow: expected here.
    log = logging.getLogger("arena")
    quiet = logging.NullHandler()
    log.addHandler(quiet)
    propagate, log.propagate = log.propagate, False
    start = time.monotonic()
    deadline = start + seconds if episodes is None else float("inf")
    last = start
    pms = {"memblock": PhysicalMemory(256 << 10, phys_base=1 << 30),
           "buddy": PhysicalMemory(2 << 20, phys_base=1 << 30)}
    try:
        i = 0
        while (episodes is None and time.monotonic() < deadline) or \
                (episodes is not None and i < episodes):
            ep_seed = seed + i
            try:
                kind, w, n = run_episode(ep_seed, pms, ops_per_episode, deadline, kinds)
            except InvariantViolation as exc:
                res.violation, res.violation_seed = exc, ep_seed
                res.violation_kind = getattr(exc, "kind", None)
                res.ops += len(exc.ops)
                break
            res.ops += n
            res.episodes[kind] += 1
            res.peak_regions[kind] = max(res.peak_regions[kind], w.peak_regions)
            i += 1
            now = time.monotonic()
            if progress is not None and now - last >= 1.0:
                last = now
                progress(f"  {now - start:6.1f} s  {res.ops} ops  "
                         f"{res.ops / (now - start):,.0f} ops/s  {i} episodes")
    finally:
        log.removeHandler(quiet)
        log.propagate = propagate
        if saved is None:
            del os.environ["ARENA_CHECK"]
        else:
            os.environ["ARENA_CHECK"] = saved
        _close_quietly(*pms.values())
    res.seconds = time.monotonic() - start
    return res


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``soak`` subcommand's options to ``parser``."""
    parser.add_argument("--seconds", type=_positive(float), default=10.0,
                        help="how long to run (default 10; ignored with --episodes)")
    parser.add_argument("--seed", type=int, default=None,  # any int, negative too
                        help="seed of the first episode (default: random); episode i uses "
                             "seed + i")
    parser.add_argument("--episodes", type=_positive(int), default=None,
                        help="run exactly this many episodes (e.g. 1 to reproduce a failure)")
    parser.add_argument("--ops", type=_positive(int), default=300,
                        help="operations per episode (default 300)")
    parser.add_argument("--workload", action="append", choices=WORKLOADS, default=None,
                        help="restrict to these workloads (repeatable; default: all)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress line (drawn on stderr only when it is a terminal)")


def soak_command(args: argparse.Namespace, out: Any = None) -> int:
    """Run the soak described by parsed ``args``; print the summary to ``out`` (stdout).

    Returns 0 with ``0 invariant violations``, 1 after printing the first violation with its
    reproducer. Raises nothing for a violation.
    """
    out = sys.stdout if out is None else out

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    kinds = tuple(args.workload or WORKLOADS)
    seed = random.randrange(1 << 32) if args.seed is None else args.seed
    say(f"soak: seed {seed}, workloads {', '.join(kinds)}, "
        + (f"{args.episodes} episode(s)" if args.episodes is not None
           else f"{args.seconds:g} s") + ", check() after every operation")
    from arena.progress import Progress

    with Progress(label="soak", quiet=args.quiet, clock=False) as bar:   # a terminal only
        res = run_soak(args.seconds, seed=seed, episodes=args.episodes,
                       ops_per_episode=args.ops, kinds=kinds,
                       progress=lambda text: bar.status(text.strip()))
    rate = res.ops / res.seconds if res.seconds > 0 else 0.0
    done = ", ".join(f"{k} {n}" for k, n in res.episodes.items() if k in kinds)
    say(f"{res.ops} operations in {res.seconds:.1f} s: {rate:,.0f} ops/s "
        f"(episodes: {done})")
    say("peak regions: " + ", ".join(f"{k} {res.peak_regions[k]}" for k in kinds))
    if res.violation is None:
        say("0 invariant violations")
        return 0
    exc = res.violation
    say(f"1 invariant violation (episode seed {res.violation_seed}): {exc}")
    say(f"reproduce: python -m arena soak --seed {res.violation_seed} --episodes 1 "
        f"--ops {args.ops}" + "".join(f" --workload {k}" for k in args.workload or ()))
    say(f"operations of the failing episode ({len(exc.ops)}):")
    for op in exc.ops:
        say(f"  {format_op(op)}")
    return 1


def soak_main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    """``python -m arena soak``: parse ``argv`` (or take parsed arguments) and run."""
    if isinstance(argv, argparse.Namespace):
        return soak_command(argv)
    parser = argparse.ArgumentParser(prog="python -m arena soak",
                                     description="randomized stateful soak with every check on")
    add_soak_arguments(parser)
    return soak_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(soak_main())
