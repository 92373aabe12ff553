"""Replay of real ``memblock=debug`` boot logs on a :class:`~arena.memblock.Memblock`, and
the comparison with the kernel's results.

:mod:`arena.bootlog` reads a log into operations; this module

* decides where the replay starts: an empty memblock, a start state given by hand
  (``Settings.memory``/``reserved``/``nomap``), or the state of the first ``MEMBLOCK
  configuration`` dump when the operations printed before it cannot explain it (memory added
  before ``memblock=debug`` took effect, kernels that print no ``memblock_add``),
* runs the operations, in log order, on a pure simulation (``Memblock(None, ...)``) with the
  settings the log cannot show (:class:`Settings`), inferring what it does reveal, each
  inference with its reason (:func:`replay`),
* compares every allocation's address with the kernel's and every dump with ours, and reports
  the first divergence with its log line and the state around it
  (:class:`~arena.trace_report.Report`).

The command line ``python -m arena replay LOG`` is :mod:`arena.cli.replay`.

Invariants: the engine (``_run``) is the one place that calls ``Memblock``; it never changes
the trace; after a divergence our state follows the kernel's answer, so later operations stay
comparable. Complexity: a replay is O(ops × regions) like the kernel; inference of the
direction replays the log once per direction.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from arena.bootlog import (
    AllocOp,
    DoubleOp,
    DumpOp,
    DumpRegion,
    Gap,
    Malformed,
    Op,
    RangeOp,
    Trace,
    parse,
    parse_dump,
    read_log,
)
from arena.constants import NUMA_NO_NODE
from arena.constants import RSRV_KERN as _RSRV_KERN
from arena.errors import InvariantError
from arena.progress import Progress

if TYPE_CHECKING:
    from arena.memblock import Memblock, MemblockType, Region
from arena.trace_report import (
    AllocResult,
    Divergence,
    DumpResult,
    Report,
    _alloc_divergence,
    _compare_dumps,
    _dump_divergence,
    _log_context,
    _snapshot,
    show,
)

__all__ = [
    "RangeOp",
    "AllocOp",
    "DumpRegion",
    "DumpOp",
    "DoubleOp",
    "Op",
    "Malformed",
    "Gap",
    "Trace",
    "Settings",
    "Inference",
    "AllocResult",
    "DumpResult",
    "Divergence",
    "Report",
    "parse",
    "parse_dump",
    "replay",
    "read_log",
]

DEFAULT_PAGE_SIZE = 4096
DEFAULT_SMP_CACHE_BYTES = 64

# -- settings and inference --------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """The machine and kernel settings a log cannot show. ``None`` = infer from the log (or the
    default when ``infer`` is false).

    * ``phys_bits``: width of ``phys_addr_t`` (32 or 64; inferred from the address digits).
    * ``current_limit``: ``memblock.current_limit`` in bytes (inferred from a ``HighMem`` zone
      line, else ``MEMBLOCK_ALLOC_ANYWHERE``).
    * ``bottom_up``: allocation direction (inferred from the first results; default top-down).
    * ``kernel_end``: end of the kernel image; pre-5.11 bottom-up starts there, with top-down
      fallback (``Memblock(bottom_up_kernel_end=...)``).
    * ``smp_cache_bytes``, ``page_size``: ``SMP_CACHE_BYTES`` (align 0 means this) and
      ``PAGE_SIZE``, bytes.
    * ``trim_memory``: ``memblock_trim_memory(align)`` right after the initial run of adds
      (inferred when the first dump shows page-trimmed memory).
    * ``nodes_from_dump``: take node ids from the first dump that shows them (inferred when a dump
      shows nodes that no ``memblock_add_node`` line gave).
    * ``numa``: ``CONFIG_NUMA`` (inferred off when requests name a node yet no dump shows one).
    * ``kernel_version``: (major, minor) (from ``Linux version`` or the function names).
    * ``memory``, ``reserved``, ``nomap``: a start state given by hand, for logs that begin
      after RAM and the kernel image were set up: ``(base, size)`` ranges in bytes (``memory``
      items may add a node: ``(base, size, nid)``), added before the first operation
      (``memblock_add[_node]``, ``memblock_reserve``, ``memblock_mark_nomap``).
    * ``start_at_dump``: start from the state of the N-th ``MEMBLOCK configuration`` dump (1 =
      the first), skipping the operations before it; 0 = never; ``None`` = from the first dump
      exactly when the operations printed before it cannot explain it. Cannot be combined with
      a start state given by hand.
    """

    phys_bits: int | None = None
    current_limit: int | None = None
    bottom_up: bool | None = None
    kernel_end: int | None = None
    smp_cache_bytes: int | None = None
    page_size: int | None = None
    trim_memory: int | None = None
    nodes_from_dump: bool | None = None
    numa: bool | None = None
    kernel_version: tuple[int, int] | None = None
    infer: bool = True
    memory: tuple[tuple[int, int, int | None], ...] = ()
    reserved: tuple[tuple[int, int], ...] = ()
    nomap: tuple[tuple[int, int], ...] = ()
    start_at_dump: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in _RANGE_FIELDS:
                continue
            if f.name in ("bottom_up", "nodes_from_dump", "numa", "infer"):
                if not isinstance(value, bool):
                    raise TypeError(f"Settings.{f.name} must be bool or None, not {value!r}")
            elif f.name == "kernel_version":
                if (not isinstance(value, tuple) or len(value) != 2
                        or not all(_is_int(v) and v >= 0 for v in value)):
                    raise TypeError(f"Settings.kernel_version must be (major, minor), not {value!r}")
            elif not _is_int(value):
                raise TypeError(f"Settings.{f.name} must be an int or None, not {value!r}")
            elif value < 0:
                raise ValueError(f"Settings.{f.name} must not be negative: {value!r}")
        if self.phys_bits not in (None, 32, 64):
            raise ValueError(f"Settings.phys_bits must be 32 or 64, not {self.phys_bits!r}")
        for name in ("page_size", "smp_cache_bytes"):
            v = getattr(self, name)
            if v is not None and (v == 0 or v & (v - 1)):
                raise ValueError(f"Settings.{name} must be a power of two, not {v!r}")
        bits = self.phys_bits or 64
        for name in ("current_limit", "kernel_end"):
            v = getattr(self, name)
            if v is not None and v >> bits:
                raise ValueError(f"Settings.{name} {v:#x} does not fit a {bits}-bit phys_addr_t")
        for name in _RANGE_FIELDS:
            object.__setattr__(self, name, _ranges(name, getattr(self, name), bits))
        if self.start_at_dump and (self.memory or self.reserved or self.nomap):
            raise ValueError("Settings.start_at_dump replaces the start state: it cannot be "
                             "combined with memory, reserved or nomap")

    @property
    def given_start(self) -> bool:
        """True when a start state is given by hand (``memory``, ``reserved`` or ``nomap``)."""
        return bool(self.memory or self.reserved or self.nomap)


_RANGE_FIELDS = ("memory", "reserved", "nomap")


def _ranges(name: str, value: Any, bits: int) -> tuple:
    """``value`` as a tuple of ``(base, size)`` (``memory``: ``(base, size, nid)``) of Python
    ints, each non-empty and inside a ``bits``-wide physical address space."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"Settings.{name} must be a tuple of ranges, not {value!r}")
    out = []
    for item in value:
        width = (2, 3) if name == "memory" else (2,)
        if not isinstance(item, (tuple, list)) or len(item) not in width:
            raise TypeError(f"Settings.{name}: each range is (base, size"
                            f"{'[, nid]' if name == 'memory' else ''}), not {item!r}")
        nid = item[2] if len(item) == 3 else None
        if not all(_is_int(v) for v in item[:2]) or not (nid is None or _is_int(nid)):
            raise TypeError(f"Settings.{name}: range {item!r} must hold integers")
        base, size = int(item[0]), int(item[1])
        if base < 0 or size <= 0 or (base + size) > 1 << bits:
            raise ValueError(f"Settings.{name}: range {item!r} is empty, negative or does not "
                             f"fit a {bits}-bit phys_addr_t")
        if nid is not None and not -1 <= int(nid) < 1 << 10:
            raise ValueError(f"Settings.{name}: node {nid} is not a node id")
        out.append((base, size, None if nid is None else int(nid)) if name == "memory"
                   else (base, size))
    return tuple(out)


def _is_int(v: object) -> bool:
    """An integer (numpy integers included), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass(frozen=True)
class Inference:
    """A setting the replay took from the log (or defaulted), and why."""

    setting: str
    value: Any
    reason: str
    note: bool = False  # a consequence of the settings (e.g. where node ids go), not a guess

    def __str__(self) -> str:
        return f"{'note' if self.note else 'inferred'} {self.setting} = {show(self.value)}: " \
               f"{self.reason}"


@dataclass(frozen=True)
class _Plan:
    """Fully resolved settings plus the points in the op list where unprinted calls happen."""

    settings: Settings
    trim_after: int | None  # op index after which trim_memory runs
    nodes_before: int | None  # op index before which the dump's node ids are applied
    nodes_dump: DumpOp | None
    start_index: int | None = None  # index of the dump the replay starts from
    start: str = "an empty memblock"
    phys_map: bool = False  # the log shows physmem: CONFIG_HAVE_MEMBLOCK_PHYS_MAP


def _initial_add_run(ops: Sequence[Op]) -> tuple[int, int] | None:
    """Indices [first, last] of the first run of consecutive add operations."""
    first = next((i for i, op in enumerate(ops) if op.kind == "add"), None)
    if first is None:
        return None
    last = first
    while last + 1 < len(ops) and ops[last + 1].kind == "add":
        last += 1
    return first, last


#: What the printed names tell about the kernel version: (name, lowest, highest, reason).
#: ``None`` = unbounded; a name ending in ``*`` is a prefix. Bounds are the safe ones (a name
#: may have lived a little longer or shorter); used when the log has no ``Linux version``.
_NAME_VERSIONS: tuple[tuple[str, tuple[int, int] | None, tuple[int, int] | None, str], ...] = (
    ("memblock_virt_alloc*", (3, 14), (4, 20),
     "memblock_virt_alloc_* lived in 3.14-4.20 (memblock_alloc_* since 5.0)"),
    ("memblock_alloc_try_nid_nopanic", (5, 0), (5, 1), "the _nopanic variants lived in 5.0-5.1"),
    ("memblock_alloc_*", (5, 0), None, "memblock_alloc_* requests are printed since 5.0"),
    ("memblock_phys_alloc_range", (5, 0), None, "memblock_phys_alloc_range exists since 5.0"),
    ("__memblock_free_early", (3, 14), (5, 15),
     "__memblock_free_early came with the 3.14 allocator API and was gone by 5.16"),
    ("__memblock_free_late", (3, 14), None, "__memblock_free_late came in 3.14"),
    ("memblock_free", None, (5, 15), "the physical memblock_free became memblock_phys_free in 5.16"),
    ("memblock_phys_free", (5, 16), None, "memblock_phys_free exists since 5.16"),
    ("memblock_reserve", None, (6, 15), "reserves print as __memblock_reserve since 6.16"),
    ("memblock_reserve+flags", (3, 13), (4, 20),
     "'memblock_reserve: [..] flags 0x..' is the 3.13-4.x format"),
    ("__memblock_reserve", (6, 16), None, "reserves print as __memblock_reserve since 6.16"),
    ("memblock_add_node+flags", (5, 16), None, "memblock_add_node prints flags= since 5.16"),
    ("memblock_add_node-flags", None, (5, 15), "memblock_add_node prints no flags= before 5.16"),
    ("<exclusive ends>", None, (3, 13), "range ends are printed exclusive: before 3.14"),
)


def _version_from_names(funcs: set[str]) -> tuple[tuple[int, int] | None, str, str]:
    """(version to replay with, the range the names allow, the reason) from printed names.

    The range is the intersection of what every name allows; the replay takes its newest end
    (newest behaviour when unbounded). Contradictory clues give the newest behaviour."""
    lo: tuple[int, int] | None = None
    hi: tuple[int, int] | None = None
    why: list[str] = []
    for name, low, high, reason in _NAME_VERSIONS:
        hit = (any(f.startswith(name[:-1]) for f in funcs) if name.endswith("*")
               else name in funcs)
        if not hit:
            continue
        why.append(reason)
        if low is not None and (lo is None or low > lo):
            lo = low
        if high is not None and (hi is None or high < hi):
            hi = high
    if not why:
        return None, "newest", "no version clue in the log: newest kernel behaviour"
    if lo is not None and hi is not None and lo > hi:
        return None, "newest", (f"contradictory version clues ({'; '.join(why)}): newest "
                                "kernel behaviour")
    span = f"{show(lo) if lo else '3.0'}–{show(hi) if hi else 'newest'}"
    then = f"the behaviour of {show(hi)}, the newest they allow" if hi else "newest behaviour"
    return hi, span, f"function names allow {span} ({'; '.join(why)}): {then}"


def _resolve(trace: Trace, s: Settings) -> tuple[Settings, list[Inference]]:
    """Fill every ``None`` of ``s`` except ``bottom_up`` (needs replays) from the log."""
    inf: list[Inference] = []
    infer = s.infer
    ops = trace.ops

    def put(name: str, value: Any, reason: str) -> Any:
        inf.append(Inference(name, value, reason))
        return value

    phys_bits = s.phys_bits
    if phys_bits is None:
        if infer and trace.widths == {32}:
            phys_bits = put("phys_bits", 32, "addresses are printed with 8 hex digits")
        elif infer and trace.widths:
            phys_bits = put("phys_bits", 64, "addresses are printed with more than 8 hex digits")
        else:
            phys_bits = 64

    version = s.kernel_version
    if version is None and infer:
        if trace.version is not None:
            version = put("kernel_version", trace.version,
                          f"'Linux version' at line {trace.version_lineno}")
        else:
            names = trace.funcs | ({"<exclusive ends>"} if trace.exclusive_end else set())
            version, span, why = _version_from_names(names)
            put("kernel_version", span, why)

    current_limit = s.current_limit
    if current_limit is None and infer and trace.highmem_start is not None:
        current_limit = put("current_limit", trace.highmem_start,
                            f"the HighMem zone starts there (line {trace.highmem_lineno}): "
                            "the lowmem limit of a 32-bit kernel")

    dumps = [op for op in ops if isinstance(op, DumpOp)]
    has_add_node = any(isinstance(op, RangeOp) and op.nid is not None and op.kind == "add"
                       for op in ops)
    node_requests = [op for op in ops if isinstance(op, AllocOp) and op.nid is not None
                     and op.nid >= 0]
    numa = s.numa
    if numa is None:
        if (infer and node_requests and not has_add_node
                and not any(d.shows_nodes for d in dumps)):
            numa = put("numa", False,
                       f"requests name node {node_requests[0].nid} (line "
                       f"{node_requests[0].lineno}) yet no dump shows a node and no "
                       "memblock_add_node line gives one: a kernel without CONFIG_NUMA")
        else:
            numa = True

    nodes = s.nodes_from_dump
    if nodes is None:
        nodes = bool(infer and numa and not has_add_node and any(d.shows_nodes for d in dumps))
        if nodes:
            first = next(d for d in dumps if d.shows_nodes)
            put("nodes_from_dump", True,
                f"the dump at line {first.lineno} shows node ids that no memblock_add_node "
                "line gave (memblock_set_node prints nothing)")

    page_size = s.page_size or DEFAULT_PAGE_SIZE
    trim = s.trim_memory
    settings = replace(s, phys_bits=phys_bits, kernel_version=version,
                       current_limit=current_limit, numa=numa, nodes_from_dump=nodes,
                       page_size=page_size,
                       smp_cache_bytes=s.smp_cache_bytes or DEFAULT_SMP_CACHE_BYTES)
    if trim is None and infer:
        trim = _infer_trim(trace, settings)
        if trim is not None:
            put("trim_memory", trim,
                "the first dump after the initial adds shows memory trimmed to page "
                "boundaries (memblock_trim_memory prints nothing)")
    settings = replace(settings, trim_memory=trim)
    if any(isinstance(op, AllocOp) and op.align == 0 for op in ops) and s.smp_cache_bytes is None:
        put("smp_cache_bytes", settings.smp_cache_bytes,
            "assumed: requests with align=0 use SMP_CACHE_BYTES, which the log does not show")
    return settings, inf


def _infer_trim(trace: Trace, settings: Settings) -> int | None:
    """PAGE_SIZE if the first dump after the initial adds matches page-trimmed memory only."""
    run = _initial_add_run(trace.ops)
    if run is None:
        return None
    dump_idx = next((i for i in range(run[1] + 1, len(trace.ops))
                     if isinstance(trace.ops[i], DumpOp)), None)
    if dump_idx is None:
        return None
    dump = trace.ops[dump_idx]
    if not (isinstance(dump, DumpOp)):
        raise InvariantError("trace: expected isinstance(dump, DumpOp)")
    want = [(r.base, r.size) for r in dump.memory]

    def memory_after(trim: int | None) -> list[tuple[int, int]]:
        mb = _new_memblock(replace(settings, trim_memory=trim, bottom_up=False))
        for i, op in enumerate(trace.ops[:dump_idx]):
            if isinstance(op, RangeOp) and op.kind in ("add", "remove"):
                _apply_range(mb, op)
            if i == run[1] and trim:
                mb.trim_memory(trim)
        return [(r.base, r.size) for r in _regions_of(mb.memory)]

    page = settings.page_size or DEFAULT_PAGE_SIZE
    try:
        if memory_after(None) != want and memory_after(page) == want:
            return page
    except (TypeError, ValueError):  # e.g. a 64-bit log replayed as 32-bit: _run reports it
        pass
    return None


def _nodes_point(ops: Sequence[Op], dump_idx: int, dump: DumpOp) -> int:
    """Index of the op before which the dump's node ids are applied.

    The kernel assigns nodes (``memblock_set_node`` on memory and reserved, unprinted) during
    NUMA init: after every reservation that the dump shows on a node, before the first
    reservation the dump shows without one and before the first node-specific request. So: right
    after the last reserve/allocation inside a reserved region printed ``on node N``, and never
    later than the first request naming a node (or the dump itself).
    """
    labelled = [(r.base, r.base + r.size) for r in dump.reserved if r.nid is not None]
    limit = next((i for i, op in enumerate(ops[:dump_idx]) if isinstance(op, AllocOp)
                  and op.nid is not None and op.nid >= 0), dump_idx)
    last = None
    for i, op in enumerate(ops[:limit]):
        rng = _reserved_range(op)
        if rng is not None and any(b <= rng[0] < e for b, e in labelled):
            last = i
    return limit if last is None else last + 1


def _reserved_range(op: Op) -> tuple[int, int] | None:
    if isinstance(op, RangeOp) and op.kind == "reserve" and op.size:
        return op.base, op.base + op.size
    if isinstance(op, AllocOp) and op.result is not None and op.size:
        return op.result, op.result + op.size
    return None


def _start_point(trace: Trace, s: Settings) -> tuple[int | None, str, Inference | None]:
    """(index of the dump to start from or ``None``, what the start is, the inference saying
    why). Raises ``ValueError`` for a ``start_at_dump`` beyond the log's dumps."""
    from arena.trace_start import unexplained

    ops = trace.ops
    dumps = [i for i, op in enumerate(ops) if isinstance(op, DumpOp)]
    empty = "the start state given by hand" if s.given_start else "an empty memblock"
    if s.start_at_dump == 0:
        return None, empty, None
    if s.start_at_dump is not None:
        if s.start_at_dump > len(dumps):
            raise ValueError(f"start_at_dump={s.start_at_dump}: the log has "
                             f"{len(dumps)} MEMBLOCK configuration dump(s)")
        i = dumps[s.start_at_dump - 1]
        where = f"the dump at line {ops[i].lineno}"
        return i, where, Inference("start", where, f"given: dump {s.start_at_dump}; the {i} "
                                   "operation(s) before it are skipped", note=True)
    if not s.infer or not dumps:
        return None, empty, None
    i = dumps[0]
    dump = ops[i]
    if not (isinstance(dump, DumpOp)):
        raise InvariantError("trace: expected isinstance(dump, DumpOp)")
    why = unexplained(dump, ops[:i], ((b, n) for b, n, _ in s.memory), s.reserved)
    if why is None:
        return None, empty, Inference("start", empty, f"the operations printed before the "
                                      f"first dump (line {dump.lineno}) explain it")
    where = f"the dump at line {dump.lineno}"
    return i, where, Inference("start", where, f"the first dump cannot be explained: {why} "
                               f"(calls made before the log or before memblock=debug took "
                               f"effect); the replay starts from its state and skips the {i} "
                               f"operation(s) printed before it")


def _nodes_plan(ops: Sequence[Op], start: int | None,
                inf: list[Inference]) -> tuple[int | None, DumpOp | None]:
    """Where the node ids of the first dump that shows them are applied (see _nodes_point)."""
    found = next(((i, op) for i, op in enumerate(ops)
                  if isinstance(op, DumpOp) and op.shows_nodes), None)
    if found is None:
        inf.append(Inference("nodes_from_dump", False, "no dump shows node ids", note=True))
        return None, None
    idx, dump = found
    if start is not None and idx <= start:
        inf.append(Inference("nodes_from_dump", False, "the start dump holds the node ids",
                             note=True))
        return None, None
    before = _nodes_point(ops, idx, dump)
    if start is not None:
        before = max(before, start + 1)
    inf.append(Inference("nodes_applied", f"before line {ops[before].lineno}",
                         f"node ids of the dump at line {dump.lineno} applied to memory and "
                         "reserved after the last reservation it shows on a node, before the "
                         "first node-specific request", note=True))
    return before, dump


def _plan(trace: Trace, settings: Settings) -> tuple[_Plan, list[Inference]]:
    """Resolve the settings and place the unprinted calls (start state, trimming, nodes)."""
    resolved, inf = _resolve(trace, settings)
    ops = trace.ops
    start, start_text, why = _start_point(trace, resolved)
    if why is not None:
        inf.append(why)
    trim_after = None
    if resolved.trim_memory is not None:
        run = _initial_add_run(ops)
        if run is None:
            inf.append(Inference("trim_memory", resolved.trim_memory,
                                 "ignored: the log has no memblock_add", note=True))
        elif start is not None and run[1] < start:
            inf.append(Inference("trim_memory", resolved.trim_memory,
                                 "contained in the start dump", note=True))
        else:
            trim_after = run[1]
    nodes_before = nodes_dump = None
    if resolved.nodes_from_dump:
        nodes_before, nodes_dump = _nodes_plan(ops, start, inf)
    phys_map = any(isinstance(op, DumpOp) and op.physmem is not None
                   or isinstance(op, RangeOp) and op.kind == "physmem_add" for op in ops)
    return _Plan(resolved, trim_after, nodes_before, nodes_dump, start, start_text,
                 phys_map), inf


# -- the engine: one place that calls Memblock -------------------------------------------------

def _new_memblock(s: Settings, phys_map: bool = False) -> Memblock:
    from arena.memblock import Memblock

    mb = Memblock(None, phys_addr_bits=s.phys_bits or 64,
                  page_size=s.page_size or DEFAULT_PAGE_SIZE,
                  smp_cache_bytes=s.smp_cache_bytes or DEFAULT_SMP_CACHE_BYTES,
                  numa=s.numa if s.numa is not None else True,
                  bottom_up_kernel_end=s.kernel_end, kernel_version=s.kernel_version,
                  phys_map=phys_map)
    mb.set_bottom_up(bool(s.bottom_up))
    if s.current_limit is not None:
        mb.set_current_limit(s.current_limit)
    mb.allow_resize()  # memblock_allow_resize prints nothing; see _Engine
    return mb


def _regions_of(type_: MemblockType) -> list[Region]:
    return list(type_.regions)


def _apply_range(mb: Memblock, op: RangeOp) -> None:
    if op.kind == "add":
        if op.nid is None:
            mb.add(op.base, op.size)
        else:
            mb.add_node(op.base, op.size, op.nid, op.flags or 0)
    elif op.kind == "remove":
        mb.remove(op.base, op.size)
    elif op.kind == "reserve":
        _reserve(mb, op.base, op.size, op.nid, op.flags)
    elif op.kind == "free":
        mb.phys_free(op.base, op.size)
    elif op.kind == "physmem_add":
        mb.physmem_add(op.base, op.size)
    # free_late hands pages to the buddy allocator and leaves memblock's arrays alone


def _reserve(mb: Memblock, base: int, size: int, nid: int | None, flags: int | None) -> None:
    """A reserve line: ``memblock_reserve`` or (6.16+) ``__memblock_reserve`` with the printed
    nid and flags (``memblock_reserve_kern`` = nid -1, RSRV_KERN; NODE_DATA-style blocks from
    ``memblock_phys_alloc_try_nid`` = their node, RSRV_KERN)."""
    if nid in (None, NUMA_NO_NODE) and not flags:
        mb.reserve(base, size)
    elif nid in (None, NUMA_NO_NODE) and flags == _RSRV_KERN:
        mb.reserve_kern(base, size)
    else:
        mb.reserve_node(base, size, NUMA_NO_NODE if nid is None else nid, flags or 0)


def _alloc(mb: Memblock, op: AllocOp) -> int | None:
    """Run one request the way the printed function does; the physical base or ``None``."""
    if op.phys_range:  # memblock_phys_alloc_range: explicit end not capped, no retry
        found = mb.phys_alloc_range(op.size, op.align, op.start, op.end)
    else:
        # memblock_alloc_internal (the try_nid / exact_nid / virt families); the printed
        # max_addr may be wider than a 32-bit phys_addr_t (the cap at current_limit takes it)
        found = mb.alloc_internal(op.size, op.align, op.start, min(op.end, mb.phys_addr_max),
                                  NUMA_NO_NODE if op.nid is None else op.nid, op.exact)
    return found or None


def _force(mb: Memblock, op: AllocOp, ours: int | None) -> None:
    """After a divergence, make our state follow the kernel's answer: undo ours, then reserve
    the kernel's block with the attributes an allocation records."""
    if ours is not None:
        mb.phys_free(ours, op.size)
    if op.result is not None:
        if mb.kernel_version >= (6, 16):
            _reserve(mb, op.result, op.size, NUMA_NO_NODE if op.nid is None else op.nid,
                     _RSRV_KERN)
        else:
            mb.reserve(op.result, op.size)


def _apply_nodes(mb: Memblock, dump: DumpOp) -> None:
    for type_, regions in ((mb.memory, dump.memory), (mb.reserved, dump.reserved)):
        for r in regions:
            if r.nid is not None:
                mb.set_node(r.base, r.size, type_, r.nid)


class _Engine:
    """One replay of ``trace`` with fully resolved settings (``plan``); no inference.

    Resizing is allowed from the start (``memblock_allow_resize`` prints nothing; a log that
    shows doublings had it). Our memblock's warnings are collected, not printed; an operation
    our memblock refuses (e.g. a 64-bit address on a 32-bit replay) is a divergence.
    """

    def __init__(self, trace: Trace, plan: _Plan) -> None:
        self.trace, self.plan, self.lines = trace, plan, trace.lines
        self.mb = _new_memblock(plan.settings, plan.phys_map)
        self.allocs: list[AllocResult] = []
        self.dumps: list[DumpResult] = []
        self.divs: list[Divergence] = []
        self.progress: Progress | None = None

    def run(self) -> Report:
        from arena.errors import ArenaError

        first = 0 if self.plan.start_index is None else self.plan.start_index + 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.start()
            bar = self.progress
            if bar is not None:
                bar.total = len(self.trace.ops) - first
                bar.note = "bottom-up pass" if self.plan.settings.bottom_up else "top-down pass"
                bar.set(0)
            for i in range(first, len(self.trace.ops)):
                op = self.trace.ops[i]
                if bar is not None:
                    bar.update()
                try:
                    self.step(i, op)
                except (ArenaError, TypeError, ValueError, OverflowError) as e:
                    if isinstance(op, AllocOp) and (not self.allocs
                                                    or self.allocs[-1].op is not op):
                        self.allocs.append(AllocResult(op, None, error=str(e)))
                    self.divs.append(Divergence(op.lineno, "error",
                                                f"our memblock refused the operation: {e}",
                                                tuple(_log_context(self.lines, op.lineno, 0, 0))))
        trace, plan = self.trace, self.plan
        return Report(settings=plan.settings, inferred=[], allocations=self.allocs,
                      dumps=self.dumps, divergences=self.divs, malformed=list(trace.malformed),
                      memblock=self.mb, counts=trace.counts(),
                      warnings=list(dict.fromkeys(str(w.message) for w in caught)),
                      ops=list(trace.ops), start=plan.start,
                      skipped=list(trace.ops[:max(0, first - 1)]), gap=trace.gap)

    def start(self) -> None:
        """Set up the start state: the one given by hand, or the start dump's."""
        from arena.errors import ArenaError
        from arena.trace_start import apply_given, load_dump

        s, at = self.plan.settings, self.plan.start_index
        dump = None if at is None else self.trace.ops[at]
        try:
            if isinstance(dump, DumpOp):
                load_dump(self.mb, dump)
                self.check_start(dump)
            elif s.given_start:
                apply_given(self.mb, s.memory, s.reserved, s.nomap)
        except (ArenaError, TypeError, ValueError, OverflowError) as e:
            line = dump.lineno if isinstance(dump, DumpOp) else 0
            self.divs.append(Divergence(line, "start", f"our memblock refused the start "
                                        f"state: {e}"))

    def check_start(self, dump: DumpOp) -> None:
        """Our state rebuilt from ``dump`` must print as the dump did."""
        diffs = _compare_dumps(dump, parse_dump(self.mb.dump_all(log=False)))
        if diffs:
            self.divs.append(Divergence(dump.lineno, "start", "the start state rebuilt from "
                                        f"the dump differs from it: {diffs[0][1]}"))

    def step(self, i: int, op: Op) -> None:
        """Replay operation ``i`` and compare what the log shows of it."""
        mb, plan = self.mb, self.plan
        if i == plan.nodes_before and plan.nodes_dump is not None:
            _apply_nodes(mb, plan.nodes_dump)
        if isinstance(op, RangeOp):
            _apply_range(mb, op)
        elif isinstance(op, AllocOp):
            self.alloc(op)
        elif isinstance(op, DumpOp):
            ours = parse_dump(mb.dump_all(log=False))
            diffs = _compare_dumps(op, ours)
            self.dumps.append(DumpResult(op, ours, tuple(f"line {n}: {d}" for n, d in diffs)))
            if diffs:
                self.divs.append(_dump_divergence(self.lines, op, diffs, not self.divs))
        elif getattr(mb, op.type_name).max != op.new_max:
            self.divs.append(Divergence(
                op.lineno, "double", f"kernel doubled {op.type_name} to {op.new_max} "
                f"entries; ours has {getattr(mb, op.type_name).max}"))
        if i == plan.trim_after and plan.settings.trim_memory is not None:
            mb.trim_memory(plan.settings.trim_memory)

    def alloc(self, op: AllocOp) -> None:
        mb = self.mb
        before = None if self.divs else (_snapshot(mb.memory), _snapshot(mb.reserved))
        res = AllocResult(op, _alloc(mb, op))
        self.allocs.append(res)
        if not res.match:
            self.divs.append(_alloc_divergence(self.lines, op, res.ours, before))
            _force(mb, op, res.ours)


def _run(trace: Trace, plan: _Plan, progress: Progress | None = None) -> Report:
    """Replay ``trace`` with fully resolved settings (see :class:`_Engine`)."""
    engine = _Engine(trace, plan)
    engine.progress = progress
    return engine.run()


def _first_miss(report: Report) -> int:
    """Log line of the first allocation not reproduced (infinity when all are)."""
    return min((r.op.lineno for r in report.allocations if not r.match), default=1 << 62)


def replay(ops: Trace | Sequence[Op], settings: Settings | None = None, *,
           progress: Progress | None = None) -> Report:
    """Run parsed operations on a pure-simulation ``Memblock`` and compare with the kernel.

    ``ops`` is a :class:`Trace` from :func:`parse` (or a plain sequence of operations, which
    reveals less to the inference); ``settings`` the machine settings (:class:`Settings`,
    default: infer everything). Every allocation's address is compared with the kernel's and
    every dump's regions with ours; after a divergence our state follows the kernel's answer so
    later operations stay comparable. Returns a :class:`Report`. The direction, when not given,
    is the one that reproduces the first results (top-down on a tie): the log is replayed once
    per direction. ``progress`` (an :class:`arena.progress.Progress`) counts the operations
    replayed. Raises ``TypeError`` for bad arguments. O(ops × regions).
    """
    if settings is None:
        settings = Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a Settings, not {type(settings).__name__}")
    if progress is not None and not isinstance(progress, Progress):
        raise TypeError(f"progress must be a Progress or None, not {type(progress).__name__}")
    if isinstance(ops, Trace):
        trace = ops
    elif isinstance(ops, Sequence) and not isinstance(ops, (str, bytes)):
        bad = next((op for op in ops if not isinstance(op, (RangeOp, AllocOp, DumpOp, DoubleOp))),
                   None)
        if bad is not None:
            raise TypeError(f"not a memblock operation: {bad!r}")
        trace = Trace(ops=list(ops))
    else:
        raise TypeError(f"ops must be a Trace or a sequence of operations, not "
                        f"{type(ops).__name__}")
    plan, inferred = _plan(trace, settings)
    if plan.settings.bottom_up is not None:
        report = _run(trace, plan, progress)
    elif not settings.infer:
        report = _run(trace, replace(plan, settings=replace(plan.settings, bottom_up=False)),
                      progress)
    else:
        down = _run(trace, replace(plan, settings=replace(plan.settings, bottom_up=False)),
                    progress)
        up = _run(trace, replace(plan, settings=replace(plan.settings, bottom_up=True)),
                  progress)
        if not down.allocations:
            report, why = down, "no allocation to tell: the kernel default"
        elif _first_miss(up) > _first_miss(down):
            report, why = up, (f"reproduces the first results (top-down diverges at line "
                               f"{_first_miss(down)})")
        else:
            report, why = down, ("reproduces the first results" +
                                 (f" (bottom-up diverges at line {_first_miss(up)})"
                                  if _first_miss(up) < 1 << 62 else ""))
        inferred.append(Inference("bottom_up", report.settings.bottom_up, why))
    s = report.settings
    if s.bottom_up and s.kernel_end is None and s.kernel_version and s.kernel_version < (5, 11):
        inferred.append(Inference(
            "kernel_end", None, "bottom-up on a pre-5.11 kernel starts above the kernel image: "
            "give --kernel-end, else it starts at the first page (5.11+ rule)", note=True))
    report.inferred = inferred
    return report
