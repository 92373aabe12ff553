"""The outcome of a boot-log replay: per-allocation and per-dump results, divergences with
the log and the state around them, and the text and JSON forms of the report.

:mod:`arena.trace` builds a :class:`Report`; this module only holds and shows it (it imports
the parsed operations of :mod:`arena.bootlog`, nothing of the replay itself).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TextIO

from arena.bootlog import AllocOp, DumpOp, Gap, Malformed, Op

if TYPE_CHECKING:
    from arena.memblock import MemblockType

__all__ = ["AllocResult", "DumpResult", "Divergence", "Report", "print_report", "show"]

# -- report ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AllocResult:
    """One request: the kernel's answer (``op.result``) and ours (``None`` = failed)."""

    op: AllocOp
    ours: int | None
    error: str | None = None

    @property
    def match(self) -> bool:
        """Reproduced: the same base, or both failed (and our memblock raised nothing)."""
        return self.error is None and self.ours == self.op.result


@dataclass(frozen=True)
class DumpResult:
    """One dump: the kernel's, ours, and the differences (empty = matched)."""

    op: DumpOp
    ours: DumpOp
    differences: tuple[str, ...]

    @property
    def match(self) -> bool:
        """The dumps agree in sizes, counts and every region."""
        return not self.differences


@dataclass(frozen=True)
class Divergence:
    """Where the replay and the kernel part: log line, what differs, and the state around it."""

    lineno: int
    kind: str
    message: str
    context: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "\n".join((f"line {self.lineno}: {self.message}", *self.context))


@dataclass
class Report:
    """The outcome of :func:`arena.trace.replay`. ``ok`` is true when every allocation replayed
    was reproduced, every dump matched, every doubling agreed and no line was malformed.

    ``settings`` (an :class:`arena.trace.Settings`) and ``inferred`` (its
    :class:`arena.trace.Inference` list) say how the log was replayed; ``start`` where the
    replay started (an empty memblock, the start state given by hand, or a dump of the log);
    ``skipped`` the operations before a start dump (contained in it, not replayed); ``gap`` the
    ``# GAP`` after which nothing was replayed.
    """

    settings: Any
    inferred: list[Any]
    allocations: list[AllocResult]
    dumps: list[DumpResult]
    divergences: list[Divergence]
    malformed: list[Malformed]
    memblock: Any = field(repr=False, default=None)
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ops: list[Op] = field(repr=False, default_factory=list)
    start: str = "an empty memblock"
    skipped: list[Op] = field(repr=False, default_factory=list)
    gap: Gap | None = None

    @property
    def allocations_reproduced(self) -> int:
        """Requests whose result we reproduced (a failed request counts when ours fails too)."""
        return sum(r.match for r in self.allocations)

    @property
    def dumps_matched(self) -> int:
        """Dumps equal to ours."""
        return sum(r.match for r in self.dumps)

    @property
    def first_divergence(self) -> Divergence | None:
        """The earliest divergence in log order, or ``None``."""
        return min(self.divergences, key=lambda d: d.lineno, default=None)

    @property
    def ok(self) -> bool:
        """Everything matched and nothing was malformed."""
        return not self.divergences and not self.malformed

    def summary_line(self) -> str:
        """``allocations reproduced: N/M, dumps matched: K/L``."""
        return (f"allocations reproduced: {self.allocations_reproduced}/{len(self.allocations)}, "
                f"dumps matched: {self.dumps_matched}/{len(self.dumps)}")

    def to_dict(self) -> dict[str, Any]:
        """The full report as JSON-ready data (addresses as integers)."""
        first = self.first_divergence
        return {
            "summary": self.summary_line(),
            "ok": self.ok,
            "settings": {f.name: getattr(self.settings, f.name) for f in fields(self.settings)},
            "inferred": [{"setting": i.setting, "value": i.value, "reason": i.reason,
                          "note": i.note} for i in self.inferred],
            "operations": self.counts,
            "ops": [{"kind": op.kind, **asdict(op)} for op in self.ops],
            "allocations": [
                {"line": r.op.lineno, "func": r.op.func, "size": r.op.size, "align": r.op.align,
                 "nid": r.op.nid, "from": r.op.start, "max_addr": r.op.end,
                 "kernel": r.op.result, "kernel_line": r.op.result_lineno, "ours": r.ours,
                 "match": r.match} for r in self.allocations],
            "dumps": [{"line": r.op.lineno, "match": r.match, "differences": list(r.differences)}
                      for r in self.dumps],
            "first_divergence": None if first is None else {
                "line": first.lineno, "kind": first.kind, "message": first.message,
                "context": list(first.context)},
            "divergences": [{"line": d.lineno, "kind": d.kind, "message": d.message}
                            for d in self.divergences],
            "malformed": [{"line": m.lineno, "text": m.text, "reason": m.reason}
                          for m in self.malformed],
            "warnings": list(self.warnings),
            "start": self.start,
            "skipped": [{"line": op.lineno, "kind": op.label} for op in self.skipped],
            "not_replayed": None if self.gap is None else {
                "gap_line": self.gap.lineno, "last_line": self.gap.last_lineno,
                "memblock_lines": self.gap.memblock_lines, "pending_request": self.gap.pending},
        }


def _rng(base: int | None, size: int) -> str:
    return "failed" if base is None else f"[{base:#x}-{base + size - 1:#x}]"


def _log_context(lines: Sequence[str], lineno: int, before: int = 3, after: int = 1) -> list[str]:
    lo, hi = max(1, lineno - before), min(len(lines), lineno + after)
    return [f"  {'>' if n == lineno else ' '}{n:6d} | {lines[n - 1].rstrip()}"
            for n in range(lo, hi + 1)]


def _state_around(regions: Sequence[tuple[int, int, int, int]], name: str,
                  addrs: Sequence[int]) -> list[str]:
    """Our regions of ``name`` within two entries of each address (dump format)."""
    bases = [r[0] for r in regions]
    keep: set[int] = set()
    for a in addrs:
        i = bisect.bisect_right(bases, a)
        keep.update(range(max(0, i - 2), min(len(regions), i + 2)))
    return [f"    {name}[{i:#x}]\t[{b:#x}-{b + s - 1:#x}], {s:#x} bytes nid={n} flags: {f:#x}"
            for i, (b, s, f, n) in enumerate(regions) if i in keep]


def _snapshot(type_: MemblockType) -> list[tuple[int, int, int, int]]:
    return [(r.base, r.size, int(r.flags), r.nid) for r in type_.regions]


def _compare_dumps(kernel: DumpOp, ours: DumpOp) -> list[tuple[int, str]]:
    """Differences as (kernel's log line, text), in print order."""
    diffs: list[tuple[int, str]] = []
    at = kernel.sizes_lineno or kernel.lineno
    if kernel.memory_size != ours.memory_size:
        diffs.append((at, f"memory size: kernel {kernel.memory_size:#x}, "
                          f"ours {ours.memory_size:#x}"))
    if kernel.reserved_size != ours.reserved_size:
        diffs.append((at, f"reserved size: kernel {kernel.reserved_size:#x}, "
                          f"ours {ours.reserved_size:#x}"))
    pairs = [("memory", kernel.memory, ours.memory), ("reserved", kernel.reserved, ours.reserved)]
    if kernel.physmem is not None:
        pairs.append(("physmem", kernel.physmem, ours.physmem or ()))
    for name, k, o in pairs:
        last = k[-1].lineno if k else at
        if len(k) != len(o):
            diffs.append((k[0].lineno - 1 if k else at,
                          f"{name}.cnt: kernel {len(k):#x}, ours {len(o):#x}"))
        for i in range(max(len(k), len(o))):
            kr = k[i] if i < len(k) else None
            orr = o[i] if i < len(o) else None
            if kr is not None and orr is not None and kr.flags is None:
                orr = replace(orr, flags=None)  # kernels that printed no flags
            if kr != orr:
                diffs.append((kr.lineno if kr else last,
                              f"{name}[{i:#x}]: kernel {kr if kr else 'none'}; "
                              f"ours {orr if orr else 'none'}"))
    return diffs


def _alloc_divergence(lines: Sequence[str], op: AllocOp, ours: int | None,
                      before: tuple[list, list] | None) -> Divergence:
    ctx: list[str] = []
    if before is not None:
        addrs = [a for a in (op.result, ours) if a is not None]
        ctx = ["  log:", *_log_context(lines, op.lineno, after=2),
               "  our state before the request:",
               *_state_around(before[0], "memory", addrs),
               *_state_around(before[1], "reserved", addrs)]
    answer = f" (line {op.result_lineno})" if op.result_lineno else ""
    return Divergence(
        op.lineno, "alloc",
        f"{op.func}({op.size:#x} bytes, align {op.align:#x}, nid {op.nid}, from {op.start:#x}, "
        f"max_addr {op.end:#x}): kernel {_rng(op.result, op.size)}{answer}, ours "
        f"{_rng(ours, op.size)}", tuple(ctx))


def _dump_divergence(lines: Sequence[str], op: DumpOp, diffs: list[tuple[int, str]],
                     first: bool) -> Divergence:
    ctx = ["  differences:", *(f"    line {n}: {d}" for n, d in diffs[:12])]
    if len(diffs) > 12:
        ctx.append(f"    ... {len(diffs) - 12} more")
    if first:
        ctx += ["  log:", *_log_context(lines, diffs[0][0], before=3, after=1)]
    return Divergence(op.lineno, "dump",
                      f"MEMBLOCK configuration differs from ours ({len(diffs)} difference(s), "
                      f"first at line {diffs[0][0]})", tuple(ctx))



def show(value: Any) -> str:
    """A setting's value as the report prints it (hex above 4096, versions as X.Y)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:#x}" if value > 4096 else str(value)
    if isinstance(value, tuple):
        return ".".join(map(str, value))
    return str(value)


_LABELS = ("add", "remove", "reserve", "unrequested", "free", "free_late", "physmem_add",
           "alloc", "dump", "double")


def _kernel_text(s: Any, inferred: Sequence[Any]) -> str:
    """The kernel version as known: a range when only function names told it ("5.0–5.15",
    replayed with the behaviour of its newest end), else the version itself."""
    for inf in inferred:
        if inf.setting == "kernel_version" and isinstance(inf.value, str) and "–" in inf.value:
            return inf.value
    return show(s.kernel_version or "newest")


def _settings_line(s: Any, inferred: Sequence[Any] = ()) -> str:
    return (f"settings: phys_bits={s.phys_bits} kernel={_kernel_text(s, inferred)} "
            f"direction={'bottom-up' if s.bottom_up else 'top-down'} current_limit="
            f"{'anywhere' if s.current_limit is None else hex(s.current_limit)} "
            f"numa={'on' if s.numa else 'off'} trim_memory="
            f"{'none' if s.trim_memory is None else hex(s.trim_memory)} "
            f"nodes_from_dump={'yes' if s.nodes_from_dump else 'no'} page_size={s.page_size} "
            f"smp_cache_bytes={s.smp_cache_bytes}"
            f"{'' if s.kernel_end is None else f' kernel_end={s.kernel_end:#x}'}")


def _coverage_lines(report: Report) -> list[str]:
    """Where the replay started, what it skipped, what it did not reach."""
    out = [f"start: {report.start}"]
    if report.skipped:
        first, last = report.skipped[0].lineno, report.skipped[-1].lineno
        allocs = sum(op.kind == "alloc" for op in report.skipped)
        out.append(f"skipped: {len(report.skipped)} operation(s) at lines {first}-{last} "
                   f"({allocs} allocation(s)), contained in the start dump")
    n = report.counts.get("unrequested", 0)
    if n:
        out.append(f"unrequested: {n} reserve(s) made by the allocator without a printed "
                   "request, replayed as plain reserves (not counted as allocations)")
    if report.gap is not None:
        out.append(f"not replayed: {report.gap}")
    return out


def print_report(report: Report, name: str, out: TextIO, verbose: bool = False) -> None:
    """Write the text report of a replay of the log ``name`` to ``out``: the operations read,
    the settings and every inference with its reason, where the replay started and what it
    skipped or did not reach, malformed lines, our memblock's warnings, the first divergence
    with its context, and last ``allocations reproduced: N/M, dumps matched: K/L``. With
    ``verbose`` every allocation and dump is listed with its result."""
    def say(text: str = "") -> None:
        print(text, file=out)

    c = report.counts
    kinds = ", ".join(f"{c[k]} {k}" for k in _LABELS if k in c)
    say(f"replay of {name}: {kinds or 'no memblock operations'}")
    say(_settings_line(report.settings, report.inferred))
    for inf in report.inferred:
        say(f"  {inf}")
    for line in _coverage_lines(report):
        say(line)
    for m in report.malformed:
        say(str(m))
    for w in report.warnings:
        say(f"our memblock warned: {w}")
    if verbose:
        for r in report.allocations:
            say(f"  line {r.op.lineno:5d} {'ok ' if r.match else 'BAD'} {r.op.func} "
                f"{r.op.size:#x}: kernel {_rng(r.op.result, r.op.size)}, "
                f"ours {_rng(r.ours, r.op.size)}")
        for d in report.dumps:
            say(f"  line {d.op.lineno:5d} {'ok ' if d.match else 'BAD'} MEMBLOCK configuration")
    first = report.first_divergence
    if first is None:
        say("no divergence: every allocation and dump replayed matches the kernel's")
    else:
        say(f"first divergence: {first}")
        if len(report.divergences) > 1:
            say(f"({len(report.divergences) - 1} more divergence(s); --json lists them all)")
    say(report.summary_line())
