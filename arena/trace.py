"""Replay of real ``memblock=debug`` boot logs: parse, run on a :class:`~arena.memblock.Memblock`,
compare.

A kernel booted with ``memblock=debug`` prints one line per memblock call (``memblock_add``,
``memblock_reserve``, the allocation requests, ...) and ``MEMBLOCK configuration`` dumps. This
module

* reads such a log into operations (:func:`parse`), for the formats of kernels 3.x to 7.x,
* runs them, in log order, on a pure simulation (``Memblock(None, ...)``) with the settings the
  log cannot show (:class:`Settings`), inferring what it does reveal (:func:`replay`),
* compares every allocation's address with the kernel's and every dump with ours, and reports
  the first divergence with its log line and the state around it (:class:`Report`),
* and offers the command line ``python -m arena replay LOG`` (:func:`replay_main`).

How the log is read (the facts the parser relies on):

* An allocation request is printed first (``memblock_alloc_try_nid: 4096 bytes align=0x1000
  nid=-1 from=0x0 max_addr=0x0 caller``). On success the allocator reserves the chosen range, so
  the **next memblock line** is a ``memblock_reserve`` (``__memblock_reserve`` from 6.16) of exactly
  the requested size: that is the kernel's answer. Any other next memblock line (request, free,
  dump, panic, end of log) means the request failed. Non-memblock lines in between are noise.
* Reserves that answer no request come from allocators that print none (NODE_DATA, CMA, early
  page tables) and are replayed as plain reserves (with the printed nid and flags from 6.16).
* The printed end is inclusive and computed in ``phys_addr_t``: ``size = (end - base + 1) mod
  2**w`` with ``w = 32`` for 8-hex-digit addresses and 64 otherwise, so ``end < base`` is size 0
  and a range that wrapped past the top keeps its true (uncapped) size.
* Lines are recognised by content, anywhere in the line (timestamps, ``<6>`` levels and syslog
  prefixes do not matter). Unknown lines are skipped; a line naming a memblock debug function
  whose arguments do not parse is reported as malformed with its line number.

Invariants of a :class:`Trace`: operations are in log order; no reserve that answers a request
appears as an operation of its own; every :class:`AllocOp` has ``result`` (the kernel's base)
or ``None`` (failed); every :class:`DumpOp` lists exactly ``cnt`` regions per type.

Complexity: parsing is O(lines); a replay is O(ops × regions) like the kernel; inference of the
direction replays the log once per direction.
"""

from __future__ import annotations

import argparse
import bisect
import json
import numbers
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "RangeOp",
    "AllocOp",
    "DumpRegion",
    "DumpOp",
    "DoubleOp",
    "Op",
    "Malformed",
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
    "add_replay_arguments",
    "replay_command",
    "replay_main",
    "read_log",
]

# -- constants ---------------------------------------------------------------------------------

NUMA_NO_NODE = -1
DEFAULT_PAGE_SIZE = 4096
DEFAULT_SMP_CACHE_BYTES = 64
#: ``MEMBLOCK_RSRV_KERN``: the flag every allocation records from 6.16.
_RSRV_KERN = 0x20

#: Range lines: printed function name -> operation kind.
RANGE_FUNCS = {
    "memblock_add": "add",
    "memblock_add_node": "add",
    "memblock_remove": "remove",
    "memblock_reserve": "reserve",
    "__memblock_reserve": "reserve",
    "memblock_free": "free",  # the physical free of kernels <= 5.15
    "memblock_phys_free": "free",
    "memblock_free_late": "free_late",  # pages go to the buddy allocator; memblock unchanged
    "memblock_physmem_add": "physmem_add",
}
#: Allocation requests: any ``memblock_[virt_|phys_]alloc*`` name with the request format.
_ALLOC_NAME_RE = re.compile(r"^memblock_(?:virt_|phys_)?alloc\w*$")

#: What a printed function name tells about the kernel version: (name test, lowest, highest,
#: reason). ``None`` = unbounded. Used only when the log has no ``Linux version`` line.
_NAME_VERSIONS: tuple[tuple[str, tuple[int, int] | None, tuple[int, int] | None, str], ...] = (
    ("memblock_virt_alloc*", None, (4, 20), "memblock_virt_alloc_* became memblock_alloc_* in 5.0"),
    ("memblock_alloc_try_nid_nopanic", (5, 0), (5, 1), "the _nopanic variants lived in 5.0-5.1"),
    ("memblock_alloc_*", (5, 0), None, "memblock_alloc_* requests are printed since 5.0"),
    ("memblock_phys_alloc_range", (5, 0), None, "memblock_phys_alloc_range exists since 5.0"),
    ("memblock_free", None, (5, 15), "the physical memblock_free became memblock_phys_free in 5.16"),
    ("memblock_phys_free", (5, 16), None, "memblock_phys_free exists since 5.16"),
    ("memblock_reserve", None, (6, 15), "reserves print as __memblock_reserve since 6.16"),
    ("__memblock_reserve", (6, 16), None, "reserves print as __memblock_reserve since 6.16"),
    ("memblock_add_node+flags", (5, 16), None, "memblock_add_node prints flags= since 5.16"),
    ("memblock_add_node-flags", None, (5, 15), "memblock_add_node prints no flags= before 5.16"),
)

_HEX = r"0x[0-9a-fA-F]+"
# A debug-function token followed by ": " (callers in backtraces have no colon after them).
_FUNC_RE = re.compile(r"(?<![\w.+])(__memblock_reserve|memblock_\w+):(?:\s|$)")
_RANGE_RE = re.compile(
    rf"^\[(?P<b>{_HEX})-(?P<e>{_HEX})\]"
    r"(?:\s+nid=(?P<nid>-?\d+))?"
    r"(?:\s+flags(?:=|\s+)(?P<flags>(?:0x)?[0-9a-fA-F]+)\b)?"
    r"\s*(?P<caller>.*?)\s*$"
)
_ALLOC_RE = re.compile(
    rf"^(?P<size>\d+)\s+bytes\s+align=(?P<align>{_HEX})"
    r"(?:\s+nid=(?P<nid>-?\d+))?"
    rf"\s+from=(?P<start>{_HEX})\s+max_addr=(?P<end>{_HEX})"
    r"\s*(?P<caller>.*?)\s*$"
)
_DOUBLE_RE = re.compile(
    rf"\bmemblock: (?P<type>memory|reserved|physmem) is doubled to (?P<max>\d+) at "
    rf"\[(?P<b>{_HEX})-(?P<e>{_HEX})\]"
)
_DUMP_HEAD_RE = re.compile(r"\bMEMBLOCK configuration:")
_NUM = rf"(?:{_HEX}|\d+)"
_DUMP_SIZES_RE = re.compile(rf"\bmemory size = (?P<mem>{_NUM}) reserved size = (?P<res>{_NUM})")
_DUMP_CNT_RE = re.compile(rf"\b(?P<type>memory|reserved|physmem)\.cnt\s*=\s*(?P<cnt>{_NUM})")
_DUMP_REGION_RE = re.compile(
    rf"\b(?P<type>memory|reserved|physmem)\[(?P<idx>{_NUM})\]\s*"
    rf"\[(?P<b>{_HEX})-(?P<e>{_HEX})\],\s*(?P<size>{_NUM}) bytes"
    r"(?: on node (?P<nid>-?\d+))?"
    rf"(?: flags: (?P<flags>{_NUM}))?"
)
# Anything that starts like a dump body line (used to tell "malformed" from "end of dump").
_DUMP_BODY_HINT_RE = re.compile(r"\b(?:memory|reserved|physmem)(?:\[|\.cnt\b)|\bmemory size =")
_VERSION_RE = re.compile(r"\bLinux version (?P<major>\d+)\.(?P<minor>\d+)")
_HIGHMEM_RE = re.compile(rf"\bHighMem\s+\[mem (?P<b>{_HEX})-(?P<e>{_HEX})\]")
_PANIC_RE = re.compile(r"Kernel panic|\bFailed to allocate\b")
_BRACKET_RE = re.compile(r"\[0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+)\]")


def _int(text: str) -> int:
    """A printed number: ``0x``-prefixed hex, else decimal."""
    return int(text, 16) if text[:2].lower() == "0x" else int(text)


def _width(*hex_texts: str) -> int:
    """Width of ``phys_addr_t`` shown by printed addresses: 32 for 8 hex digits, else 64."""
    return 32 if all(len(t) - 2 == 8 for t in hex_texts) else 64


def _inclusive_size(base_text: str, end_text: str) -> int:
    """Size of a printed inclusive range ``[base-end]``, modulo the printed width."""
    w = _width(base_text, end_text)
    return (_int(end_text) - _int(base_text) + 1) % (1 << w)


# -- operations --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RangeOp:
    """One range line: ``memblock_add[_node]``, ``memblock_remove``, ``[__]memblock_reserve``,
    ``memblock_[phys_]free``, ``memblock_free_late`` or ``memblock_physmem_add``.

    ``kind`` is ``"add"``, ``"remove"``, ``"reserve"``, ``"free"``, ``"free_late"`` or
    ``"physmem_add"``; the range is ``[base, base + size)`` in bytes (``size`` recovered from the
    inclusive printed end, 0 for ``end < base``). ``nid``/``flags`` are the printed fields
    (``memblock_add_node``, ``__memblock_reserve``), ``None`` when the line has none.
    """

    kind: str
    lineno: int
    func: str
    base: int
    size: int
    nid: int | None = None
    flags: int | None = None
    caller: str = ""


@dataclass(frozen=True)
class AllocOp:
    """One allocation request and the kernel's answer.

    ``func`` is the printed name (``memblock_alloc_try_nid``, ``memblock_phys_alloc_range``,
    ``memblock_virt_alloc_try_nid_nopanic``, ...); ``size``/``align`` in bytes (``align`` 0 means
    ``SMP_CACHE_BYTES``); ``nid`` is ``None`` for the ``memblock_phys_alloc_range`` format (no nid
    field), else the requested node (``NUMA_NO_NODE`` = any); ``start``/``end`` are the printed
    ``from``/``max_addr`` (``end`` 0 = ``current_limit``). ``result`` is the base the kernel chose
    (``None`` = the request failed) and ``result_lineno`` the line of the reserve that showed it.
    """

    lineno: int
    func: str
    size: int
    align: int
    nid: int | None
    start: int
    end: int
    caller: str = ""
    result: int | None = None
    result_lineno: int | None = None

    kind = "alloc"

    @property
    def exact(self) -> bool:
        """True for ``memblock_alloc_exact_nid_raw`` (no fallback to other nodes)."""
        return "exact" in self.func

    @property
    def phys_range(self) -> bool:
        """True for the ``memblock_phys_alloc_range`` family (no current_limit cap, no retry)."""
        return self.nid is None


@dataclass(frozen=True)
class DumpRegion:
    """One region of a dump: ``[base, base + size)``, the node shown (``None`` = none printed)
    and the flags (``None`` for kernels that printed none)."""

    base: int
    size: int
    nid: int | None
    flags: int | None
    lineno: int = field(default=0, compare=False)  # where the kernel printed it (0 = ours)

    def __str__(self) -> str:
        node = "" if self.nid is None else f" on node {self.nid}"
        flags = "" if self.flags is None else f" flags: {self.flags:#x}"
        return f"[{self.base:#x}-{self.base + self.size - 1:#x}], {self.size:#x} bytes{node}{flags}"


@dataclass(frozen=True)
class DumpOp:
    """One ``MEMBLOCK configuration`` dump (``memblock_dump_all``), lines ``lineno``..``end_lineno``.

    Sizes in bytes as printed (``memory_size`` is ``memory.total_size``, which trimming does not
    update); ``physmem`` is ``None`` when the kernel printed no physmem section.
    """

    lineno: int
    end_lineno: int
    memory_size: int
    reserved_size: int
    memory: tuple[DumpRegion, ...]
    reserved: tuple[DumpRegion, ...]
    physmem: tuple[DumpRegion, ...] | None = None
    sizes_lineno: int = 0

    kind = "dump"

    @property
    def shows_nodes(self) -> bool:
        """True when some memory or reserved region is printed ``on node N``."""
        return any(r.nid is not None for r in self.memory + self.reserved)


@dataclass(frozen=True)
class DoubleOp:
    """``memblock: <type> is doubled to <new_max> at [base-end]``: an array doubling."""

    lineno: int
    type_name: str
    new_max: int
    base: int
    end: int

    kind = "double"


Op = RangeOp | AllocOp | DumpOp | DoubleOp


@dataclass(frozen=True)
class Malformed:
    """A line naming a memblock debug function (or inside a dump) that did not parse."""

    lineno: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.lineno}: malformed memblock line ({self.reason}): {self.text.strip()}"


@dataclass
class Trace(Sequence[Op]):
    """A parsed log: the operations in order, plus what the text reveals about the machine.

    ``lines`` is the log text split in lines (``lines[n - 1]`` is line ``n``); ``widths`` the
    ``phys_addr_t`` widths (32/64) shown by bracketed addresses; ``version`` the ``Linux version``
    line's (major, minor) and its line number; ``highmem_start`` the start of the ``HighMem`` zone
    (the lowmem limit of a 32-bit kernel) and its line; ``funcs`` every memblock function name
    printed (plus ``memblock_add_node+flags``/``-flags``: whether add_node lines carry flags).
    """

    ops: list[Op] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    widths: set[int] = field(default_factory=set)
    version: tuple[int, int] | None = None
    version_lineno: int | None = None
    highmem_start: int | None = None
    highmem_lineno: int | None = None
    funcs: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __getitem__(self, i):  # type: ignore[override]
        return self.ops[i]

    def counts(self) -> dict[str, int]:
        """Number of operations per kind (``add``, ``reserve``, ..., ``alloc``, ``dump``)."""
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.kind] = out.get(op.kind, 0) + 1
        return out


# -- parser ------------------------------------------------------------------------------------

def _parse_range(func: str, rest: str, lineno: int) -> RangeOp | str:
    m = _RANGE_RE.match(rest)
    if m is None:
        return "expected [0xBASE-0xEND]"
    caller = m["caller"]
    if caller.startswith(("nid=", "flags")):
        return f"unparsable field {caller.split()[0]!r}"
    return RangeOp(
        kind=RANGE_FUNCS[func], lineno=lineno, func=func, base=_int(m["b"]),
        size=_inclusive_size(m["b"], m["e"]),
        nid=None if m["nid"] is None else int(m["nid"]),
        flags=None if m["flags"] is None else int(m["flags"], 16), caller=caller)


def _parse_alloc(func: str, rest: str, lineno: int) -> AllocOp | str:
    m = _ALLOC_RE.match(rest)
    if m is None:
        return "expected 'N bytes align=0x.. [nid=N] from=0x.. max_addr=0x..'"
    return AllocOp(
        lineno=lineno, func=func, size=int(m["size"]), align=_int(m["align"]),
        nid=None if m["nid"] is None else int(m["nid"]), start=_int(m["start"]),
        end=_int(m["end"]), caller=m["caller"])


def _regions(found: list[tuple[int, re.Match[str]]], type_name: str,
             lineno_of_index: int) -> tuple[DumpRegion, ...]:
    return tuple(
        DumpRegion(_int(m["b"]), _int(m["size"]), None if m["nid"] is None else int(m["nid"]),
                   None if m["flags"] is None else _int(m["flags"]), i + lineno_of_index)
        for i, m in found if m["type"] == type_name)


def _parse_dump_block(lines: Sequence[str], start: int, first_lineno: int
                      ) -> tuple[DumpOp | Malformed, int]:
    """Parse the dump whose header is ``lines[start]``; return it and the index after it."""
    sizes: re.Match[str] | None = None
    sizes_at = start
    cnts: dict[str, int] = {}
    found: list[tuple[int, re.Match[str]]] = []
    i = start + 1
    while i < len(lines):
        text = lines[i]
        m = _DUMP_REGION_RE.search(text) or _DUMP_CNT_RE.search(text)
        if m is not None and "idx" in m.groupdict():
            found.append((i, m))
        elif m is not None:
            cnts[m["type"]] = _int(m["cnt"])
        elif (s := _DUMP_SIZES_RE.search(text)) is not None and sizes is None:
            sizes, sizes_at = s, i
        elif _DUMP_BODY_HINT_RE.search(text):
            return Malformed(first_lineno + i - start, text, "unparsable dump line"), i + 1
        else:
            break
        i += 1
    lineno = first_lineno
    if sizes is None or "memory" not in cnts or "reserved" not in cnts:
        return Malformed(lineno, lines[start], "incomplete MEMBLOCK configuration dump"), i
    for name, cnt in cnts.items():
        idx = [_int(m["idx"]) for _, m in found if m["type"] == name]
        if idx != list(range(cnt)):
            return Malformed(lineno, lines[start],
                             f"dump lists {len(idx)} {name} regions but {name}.cnt = {cnt:#x}"), i
    at = first_lineno - start  # line number of lines[index] is index + at
    dump = DumpOp(
        lineno=lineno, end_lineno=i - 1 + at,
        memory_size=_int(sizes["mem"]), reserved_size=_int(sizes["res"]),
        memory=_regions(found, "memory", at), reserved=_regions(found, "reserved", at),
        physmem=_regions(found, "physmem", at) if "physmem" in cnts else None,
        sizes_lineno=sizes_at + at)
    return dump, i


def parse_dump(text: str) -> DumpOp:
    """Parse one ``MEMBLOCK configuration`` dump (e.g. ``Memblock.dump_all()``'s text).

    Returns the :class:`DumpOp` (line numbers relative to ``text``); raises ``ValueError`` when
    ``text`` holds no complete dump. O(lines).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _DUMP_HEAD_RE.search(line):
            dump, _ = _parse_dump_block(lines, i, i + 1)
            if isinstance(dump, Malformed):
                raise ValueError(str(dump))
            return dump
    raise ValueError("no 'MEMBLOCK configuration:' dump in the text")


def parse(text: str, *, strict: bool = False) -> Trace:
    """Read a kernel log booted with ``memblock=debug`` into a :class:`Trace` of operations.

    Recognises adds (with node), removes, reserves (both spellings), frees (``memblock_free`` of
    kernels <= 5.15 and ``memblock_phys_free``), allocation requests of every family (3.x/4.x
    ``memblock_virt_alloc_try_nid[_nopanic|_raw]``, 5.x+ ``memblock_alloc_try_nid[_raw]``,
    ``memblock_alloc_exact_nid_raw``, ``memblock_phys_alloc_range``) with the kernel's answer,
    array doublings and ``MEMBLOCK configuration`` dumps. Unknown lines are skipped; malformed
    memblock lines are collected in ``Trace.malformed`` with their line number, or, with
    ``strict=True``, raise ``ValueError`` at the first one. O(lines).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    lines = text.splitlines()
    trace = Trace(lines=lines)
    pending: AllocOp | None = None

    def settle(event: Op | None) -> bool:
        """Resolve the pending request with the next memblock event; True if it was the answer."""
        nonlocal pending
        if pending is None:
            return False
        answer = (isinstance(event, RangeOp) and event.kind == "reserve"
                  and event.size == pending.size)
        if answer:
            assert isinstance(event, RangeOp)
            trace.ops.append(replace(pending, result=event.base, result_lineno=event.lineno))
        else:
            trace.ops.append(pending)
        pending = None
        return answer

    def bad(lineno: int, line: str, reason: str) -> None:
        item = Malformed(lineno, line, reason)
        if strict:
            raise ValueError(str(item))
        trace.malformed.append(item)

    i = 0
    while i < len(lines):
        line, lineno = lines[i], i + 1
        i += 1
        if trace.version is None and (v := _VERSION_RE.search(line)):
            trace.version, trace.version_lineno = (int(v["major"]), int(v["minor"])), lineno
        if trace.highmem_start is None and (h := _HIGHMEM_RE.search(line)):
            trace.highmem_start, trace.highmem_lineno = _int(h["b"]), lineno
        if _DUMP_HEAD_RE.search(line):
            dump, i = _parse_dump_block(lines, i - 1, lineno)
            settle(None)
            if isinstance(dump, Malformed):
                bad(dump.lineno, dump.text, dump.reason)
            else:
                trace.ops.append(dump)
                _note_widths(trace, lines[lineno - 1:dump.end_lineno])
            continue
        if (d := _DOUBLE_RE.search(line)) is not None:
            settle(None)
            trace.ops.append(DoubleOp(lineno, d["type"], int(d["max"]), _int(d["b"]), _int(d["e"])))
            continue
        m = _FUNC_RE.search(line)
        if m is None:
            if _PANIC_RE.search(line):
                settle(None)
            continue
        func, rest = m[1], line[m.end():].strip()
        if func not in RANGE_FUNCS and not _ALLOC_NAME_RE.match(func):
            continue  # some other message that names a memblock function
        if _PANIC_RE.search(line):
            settle(None)  # "Kernel panic ... memblock_alloc_try_nid: Failed to allocate ..."
            continue
        trace.funcs.add(func)
        op = (_parse_range if func in RANGE_FUNCS else _parse_alloc)(func, rest, lineno)
        if isinstance(op, str):
            settle(None)
            bad(lineno, line, op)
            continue
        if isinstance(op, RangeOp):
            _note_widths(trace, [line])
            if func == "memblock_add_node":
                trace.funcs.add("memblock_add_node" + ("+flags" if op.flags is not None else "-flags"))
        if settle(op):
            continue
        if isinstance(op, AllocOp):
            pending = op
        else:
            trace.ops.append(op)
    settle(None)
    return trace


def _note_widths(trace: Trace, lines: Sequence[str]) -> None:
    for line in lines:
        for b, e in _BRACKET_RE.findall(line):
            trace.widths.add(32 if len(b) == 8 and len(e) == 8 else 64)


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

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
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
        return f"{'note' if self.note else 'inferred'} {self.setting} = {_show(self.value)}: " \
               f"{self.reason}"


def _show(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:#x}" if value > 4096 else str(value)
    if isinstance(value, tuple):
        return ".".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class _Plan:
    """Fully resolved settings plus the points in the op list where unprinted calls happen."""

    settings: Settings
    trim_after: int | None  # op index after which trim_memory runs
    nodes_before: int | None  # op index before which the dump's node ids are applied
    nodes_dump: DumpOp | None


def _initial_add_run(ops: Sequence[Op]) -> tuple[int, int] | None:
    """Indices [first, last] of the first run of consecutive add operations."""
    first = next((i for i, op in enumerate(ops) if op.kind == "add"), None)
    if first is None:
        return None
    last = first
    while last + 1 < len(ops) and ops[last + 1].kind == "add":
        last += 1
    return first, last


def _version_from_names(funcs: set[str]) -> tuple[tuple[int, int] | None, str]:
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
        return None, "no version clue in the log: newest kernel behaviour"
    span = f"{_show(lo) if lo else '?'}..{_show(hi) if hi else 'newest'}"
    if lo is not None and hi is not None and lo > hi:
        return None, f"contradictory version clues ({'; '.join(why)}): newest kernel behaviour"
    return hi, f"function names say {span} ({'; '.join(why)})"


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
            version, why = _version_from_names(trace.funcs)
            put("kernel_version", version if version else "newest", why)

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
    assert isinstance(dump, DumpOp)
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


def _plan(trace: Trace, settings: Settings) -> tuple[_Plan, list[Inference]]:
    resolved, inf = _resolve(trace, settings)
    ops = trace.ops
    trim_after = None
    if resolved.trim_memory is not None:
        run = _initial_add_run(ops)
        if run is None:
            inf.append(Inference("trim_memory", resolved.trim_memory,
                                 "ignored: the log has no memblock_add", note=True))
        else:
            trim_after = run[1]
    nodes_before = nodes_dump = None
    if resolved.nodes_from_dump:
        found = next(((i, op) for i, op in enumerate(ops)
                      if isinstance(op, DumpOp) and op.shows_nodes), None)
        if found is None:
            inf.append(Inference("nodes_from_dump", False, "no dump shows node ids", note=True))
        else:
            idx, nodes_dump = found
            nodes_before = _nodes_point(ops, idx, nodes_dump)
            inf.append(Inference("nodes_applied", f"before line {ops[nodes_before].lineno}",
                                 f"node ids of the dump at line {nodes_dump.lineno} applied to "
                                 "memory and reserved after the last reservation it shows on a "
                                 "node, before the first node-specific request", note=True))
    return _Plan(resolved, trim_after, nodes_before, nodes_dump), inf


# -- the engine: one place that calls Memblock -------------------------------------------------

def _new_memblock(s: Settings):
    from arena.memblock import Memblock

    mb = Memblock(None, phys_addr_bits=s.phys_bits or 64,
                  page_size=s.page_size or DEFAULT_PAGE_SIZE,
                  smp_cache_bytes=s.smp_cache_bytes or DEFAULT_SMP_CACHE_BYTES,
                  numa=s.numa if s.numa is not None else True,
                  bottom_up_kernel_end=s.kernel_end, kernel_version=s.kernel_version)
    mb.set_bottom_up(bool(s.bottom_up))
    if s.current_limit is not None:
        mb.set_current_limit(s.current_limit)
    mb.allow_resize()  # memblock_allow_resize prints nothing; see _run
    return mb


def _regions_of(type_) -> list:
    return list(type_.regions)


def _apply_range(mb, op: RangeOp) -> None:
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


def _reserve(mb, base: int, size: int, nid: int | None, flags: int | None) -> None:
    """A reserve line: ``memblock_reserve`` or (6.16+) ``__memblock_reserve`` with the printed
    nid and flags (``memblock_reserve_kern`` = nid -1, RSRV_KERN; NODE_DATA-style blocks from
    ``memblock_phys_alloc_try_nid`` = their node, RSRV_KERN)."""
    if nid in (None, NUMA_NO_NODE) and not flags:
        mb.reserve(base, size)
    elif nid in (None, NUMA_NO_NODE) and flags == _RSRV_KERN:
        mb.reserve_kern(base, size)
    else:  # no public counterpart of __memblock_reserve(base, size, nid, flags)
        mb._reserve(base, size, NUMA_NO_NODE if nid is None else nid, flags or 0)


def _alloc(mb, op: AllocOp) -> int | None:
    """Run one request the way the printed function does; the physical base or ``None``."""
    if op.phys_range:  # memblock_phys_alloc_range: explicit end not capped, no retry
        found = mb.phys_alloc_range(op.size, op.align, op.start, op.end)
    else:
        # memblock_alloc_internal (the try_nid / exact_nid / virt families): max_addr capped at
        # current_limit, then, if nothing fits above a nonzero min_addr, a retry from 0.
        # Memblock has no public physical-address form of it, so it is composed here.
        end = min(op.end, mb.current_limit)
        found = mb.alloc_range_nid(op.size, op.align, op.start, end, op.nid, op.exact)
        if not found and op.start:
            found = mb.alloc_range_nid(op.size, op.align, 0, end, op.nid, op.exact)
    return found or None


def _force(mb, op: AllocOp, ours: int | None) -> None:
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


def _apply_nodes(mb, dump: DumpOp) -> None:
    for type_, regions in ((mb.memory, dump.memory), (mb.reserved, dump.reserved)):
        for r in regions:
            if r.nid is not None:
                mb.set_node(r.base, r.size, type_, r.nid)


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
    """The outcome of :func:`replay`. ``ok`` is true when every allocation was reproduced, every
    dump matched, every doubling agreed and no line was malformed."""

    settings: Settings
    inferred: list[Inference]
    allocations: list[AllocResult]
    dumps: list[DumpResult]
    divergences: list[Divergence]
    malformed: list[Malformed]
    memblock: Any = field(repr=False, default=None)
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ops: list[Op] = field(repr=False, default_factory=list)

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


def _snapshot(type_) -> list[tuple[int, int, int, int]]:
    return [(r.base, r.size, int(r.flags), r.nid) for r in _regions_of(type_)]


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


def _run(trace: Trace, plan: _Plan) -> Report:
    """Replay ``trace`` with fully resolved settings; no inference.

    Resizing is allowed from the start (``memblock_allow_resize`` prints nothing; a log that
    shows doublings had it). Our memblock's warnings are collected, not printed; an operation
    our memblock refuses (e.g. a 64-bit address on a 32-bit replay) is a divergence.
    """
    from arena.errors import ArenaError

    s = plan.settings
    mb = _new_memblock(s)
    allocs: list[AllocResult] = []
    dumps: list[DumpResult] = []
    divs: list[Divergence] = []
    lines = trace.lines
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, op in enumerate(trace.ops):
            try:
                if i == plan.nodes_before and plan.nodes_dump is not None:
                    _apply_nodes(mb, plan.nodes_dump)
                if isinstance(op, RangeOp):
                    _apply_range(mb, op)
                elif isinstance(op, AllocOp):
                    before = None if divs else (_snapshot(mb.memory), _snapshot(mb.reserved))
                    res = AllocResult(op, _alloc(mb, op))
                    allocs.append(res)
                    if not res.match:
                        divs.append(_alloc_divergence(lines, op, res.ours, before))
                        _force(mb, op, res.ours)
                elif isinstance(op, DumpOp):
                    ours_dump = parse_dump(mb.dump_all(log=False))
                    diffs = _compare_dumps(op, ours_dump)
                    dumps.append(DumpResult(op, ours_dump, tuple(f"line {n}: {d}"
                                                                 for n, d in diffs)))
                    if diffs:
                        divs.append(_dump_divergence(lines, op, diffs, not divs))
                elif getattr(mb, op.type_name).max != op.new_max:
                    divs.append(Divergence(
                        op.lineno, "double", f"kernel doubled {op.type_name} to {op.new_max} "
                        f"entries; ours has {getattr(mb, op.type_name).max}"))
                if i == plan.trim_after:
                    mb.trim_memory(s.trim_memory)
            except (ArenaError, TypeError, ValueError) as e:
                if isinstance(op, AllocOp) and (not allocs or allocs[-1].op is not op):
                    allocs.append(AllocResult(op, None, error=str(e)))
                divs.append(Divergence(op.lineno, "error",
                                       f"our memblock refused the operation: {e}",
                                       tuple(_log_context(lines, op.lineno, 0, 0))))
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    return Report(settings=s, inferred=[], allocations=allocs, dumps=dumps, divergences=divs,
                  malformed=list(trace.malformed), memblock=mb, counts=trace.counts(),
                  warnings=notes, ops=list(trace.ops))


def _first_miss(report: Report) -> int:
    """Log line of the first allocation not reproduced (infinity when all are)."""
    return min((r.op.lineno for r in report.allocations if not r.match), default=1 << 62)


def replay(ops: Trace | Sequence[Op], settings: Settings | None = None) -> Report:
    """Run parsed operations on a pure-simulation ``Memblock`` and compare with the kernel.

    ``ops`` is a :class:`Trace` from :func:`parse` (or a plain sequence of operations, which
    reveals less to the inference); ``settings`` the machine settings (:class:`Settings`,
    default: infer everything). Every allocation's address is compared with the kernel's and
    every dump's regions with ours; after a divergence our state follows the kernel's answer so
    later operations stay comparable. Returns a :class:`Report`. The direction, when not given,
    is the one that reproduces the first results (top-down on a tie): the log is replayed once
    per direction. Raises ``TypeError`` for bad arguments. O(ops × regions).
    """
    if settings is None:
        settings = Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a Settings, not {type(settings).__name__}")
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
        report = _run(trace, plan)
    elif not settings.infer:
        report = _run(trace, replace(plan, settings=replace(plan.settings, bottom_up=False)))
    else:
        down = _run(trace, replace(plan, settings=replace(plan.settings, bottom_up=False)))
        up = _run(trace, replace(plan, settings=replace(plan.settings, bottom_up=True)))
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


# -- command line ------------------------------------------------------------------------------

def _addr(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"negative address: {text!r}")
    return value


def _pow2(text: str) -> int:
    value = _addr(text)
    if value == 0 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"not a power of two: {text!r}")
    return value


def _version(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"kernel version must be X.Y: {text!r}")
    return int(m[1]), int(m[2])


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``replay`` subcommand's arguments (the log and the settings) to ``parser``."""
    parser.add_argument("log", help="kernel log booted with memblock=debug ('-' = stdin)")
    g = parser.add_argument_group("settings the log cannot show (inferred when not given)")
    g.add_argument("--phys-bits", type=int, choices=(32, 64),
                   help="width of phys_addr_t (default: from the address digits)")
    g.add_argument("--current-limit", type=_addr, metavar="ADDR",
                   help="memblock.current_limit (default: HighMem start, else anywhere)")
    d = g.add_mutually_exclusive_group()
    d.add_argument("--bottom-up", dest="bottom_up", action="store_const", const=True,
                   help="allocate bottom-up (default: the direction of the first results)")
    d.add_argument("--top-down", dest="bottom_up", action="store_const", const=False,
                   help="allocate top-down")
    g.add_argument("--kernel-end", type=_addr, metavar="ADDR",
                   help="end of the kernel image: pre-5.11 bottom-up starts there, with top-down "
                        "fallback")
    g.add_argument("--smp-cache-bytes", type=_pow2, metavar="N",
                   help=f"SMP_CACHE_BYTES, the alignment of align=0 (default "
                        f"{DEFAULT_SMP_CACHE_BYTES})")
    g.add_argument("--page-size", type=_pow2, metavar="N",
                   help=f"PAGE_SIZE (default {DEFAULT_PAGE_SIZE})")
    g.add_argument("--trim-memory", type=_addr, metavar="ALIGN",
                   help="memblock_trim_memory(ALIGN) after the initial adds (default: when the "
                        "first dump shows page-trimmed memory)")
    g.add_argument("--nodes-from-dump", action="store_const", const=True,
                   help="take node ids from the first dump that shows them")
    g.add_argument("--no-numa", dest="numa", action="store_const", const=False,
                   help="a kernel without CONFIG_NUMA")
    g.add_argument("--kernel-version", type=_version, metavar="X.Y",
                   help="kernel version (default: 'Linux version' line or function names)")
    g.add_argument("--no-infer", action="store_true",
                   help="infer nothing: settings not given take their defaults")
    o = parser.add_argument_group("output")
    o.add_argument("--json", metavar="FILE", help="write the full report as JSON ('-' = stdout)")
    o.add_argument("--svg", metavar="FILE", help="draw the final memory map as SVG")
    o.add_argument("-v", "--verbose", action="store_true",
                   help="list every allocation and dump with its result")


def _settings_from(args: argparse.Namespace) -> Settings:
    return Settings(phys_bits=args.phys_bits, current_limit=args.current_limit,
                    bottom_up=args.bottom_up, kernel_end=args.kernel_end,
                    smp_cache_bytes=args.smp_cache_bytes, page_size=args.page_size,
                    trim_memory=args.trim_memory, nodes_from_dump=args.nodes_from_dump,
                    numa=args.numa, kernel_version=args.kernel_version, infer=not args.no_infer)


def _print_report(report: Report, name: str, out: TextIO, verbose: bool) -> None:
    def say(text: str = "") -> None:
        print(text, file=out)

    c = report.counts
    kinds = ", ".join(f"{c[k]} {k}" for k in ("add", "remove", "reserve", "free", "free_late",
                                               "physmem_add", "alloc", "dump", "double") if k in c)
    say(f"replay of {name}: {kinds or 'no memblock operations'}")
    s = report.settings
    say(f"settings: phys_bits={s.phys_bits} kernel={_show(s.kernel_version or 'newest')} "
        f"direction={'bottom-up' if s.bottom_up else 'top-down'} current_limit="
        f"{'anywhere' if s.current_limit is None else hex(s.current_limit)} "
        f"numa={'on' if s.numa else 'off'} trim_memory="
        f"{'none' if s.trim_memory is None else hex(s.trim_memory)} "
        f"nodes_from_dump={'yes' if s.nodes_from_dump else 'no'} page_size={s.page_size} "
        f"smp_cache_bytes={s.smp_cache_bytes}"
        f"{'' if s.kernel_end is None else f' kernel_end={s.kernel_end:#x}'}")
    for inf in report.inferred:
        say(f"  {inf}")
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
        say("no divergence: every allocation and dump matches the kernel's")
    else:
        say(f"first divergence: {first}")
        if len(report.divergences) > 1:
            say(f"({len(report.divergences) - 1} more divergence(s); --json lists them all)")
    say(report.summary_line())


def read_log(path: str) -> tuple[str, str]:
    """The text of the boot log at ``path`` (``-``: standard input) and a name to show for it.

    Undecodable bytes become U+FFFD (e-mailed logs are not always clean UTF-8). Raises
    ``OSError`` when the file cannot be read.
    """
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    return Path(path).read_text(encoding="utf-8", errors="replace"), path


def replay_command(args: argparse.Namespace) -> int:
    """Run ``replay`` for parsed arguments (see :func:`add_replay_arguments`).

    Prints the summary (its last line ``allocations reproduced: N/M, dumps matched: K/L``) and
    returns the exit status: 0 when everything matches, 1 on any divergence or malformed line,
    2 when the log cannot be read or the SVG cannot be drawn.
    """
    try:
        text, name = read_log(args.log)
    except OSError as e:
        print(f"replay: cannot read {args.log}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        settings = _settings_from(args)
    except (TypeError, ValueError) as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2
    report = replay(parse(text), settings)
    to_stdout_json = args.json == "-"
    _print_report(report, name, sys.stderr if to_stdout_json else sys.stdout, args.verbose)
    status = 0 if report.ok else 1
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
        try:
            from arena.render import callers_from_ops, svg
        except ImportError as e:
            print(f"replay: --svg needs arena.render, which is not available ({e})",
                  file=sys.stderr)
            return 2
        drawing = svg(report.memblock, callers=callers_from_ops(report.ops),
                      title=f"memblock after {name}")
        try:
            if isinstance(drawing, bytes):
                Path(args.svg).write_bytes(drawing)
            else:
                Path(args.svg).write_text(drawing, encoding="utf-8")
        except OSError as e:
            print(f"replay: cannot write {args.svg}: {e.strerror or e}", file=sys.stderr)
            return 2
    return status


def replay_main(argv: list[str] | None = None) -> int:
    """``python -m arena replay LOG [settings]``: parse ``argv`` (default ``sys.argv[1:]``),
    replay, print the summary; returns the exit status (see :func:`replay_command`)."""
    parser = argparse.ArgumentParser(
        prog="python -m arena replay",
        description="Replay a memblock=debug boot log on our memblock and compare every "
                    "allocation and dump with the kernel's.")
    add_replay_arguments(parser)
    return replay_command(parser.parse_args(argv))
