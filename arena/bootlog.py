"""Reading ``memblock=debug`` boot logs into operations (the parsing half of the replay).

A kernel booted with ``memblock=debug`` prints one line per memblock call (``memblock_add``,
``memblock_reserve``, the allocation requests, ...) and ``MEMBLOCK configuration`` dumps. This
module reads such a log, of any kernel from 3.x to 7.x, into a :class:`Trace` of operations
(:func:`parse`); :mod:`arena.trace` replays them.

How the log is read (the facts the parser relies on):

* An allocation request is printed first (``memblock_alloc_try_nid: 4096 bytes align=0x1000
  nid=-1 from=0x0 max_addr=0x0 caller``). On success the allocator reserves the chosen range, so
  the **next memblock line** is a reserve (``memblock_reserve``, ``__memblock_reserve`` from 6.16)
  of exactly the requested size: that is the kernel's answer. Any other next memblock line
  (request, free, dump, panic, end of log) means the request failed. Non-memblock lines in
  between are noise.
* Reserves that answer no request are replayed as plain reserves. When their caller is one of
  the allocator's own functions (``memblock_alloc_range_nid``, 4.x ``__alloc_memory_core_early``,
  ...) they are allocations the kernel made without printing a request; they are marked
  ``unrequested`` and counted apart.
* The printed end is inclusive and computed in ``phys_addr_t``: ``size = (end - base + 1) mod
  2**w`` with ``w = 32`` for 8-hex-digit addresses and 64 otherwise, so ``end < base`` is size 0
  and a range that wrapped past the top keeps its true (uncapped) size. Kernels before 3.14
  printed an **exclusive** end (``base + size``): :func:`parse` tells the two apart (the
  ``Linux version`` line, else the shape of the ends) or is told with ``end=``.
* Lines are recognised by content, anywhere in the line: timestamps, ``<6>`` levels, syslog
  prefixes and e-mail quote marks (``> ``) do not matter. A line starting with ``#`` (after the
  quote marks) is a comment; ``# GAP`` marks lines left out of the log: reading stops there and
  the rest is reported as not read (:class:`Gap`).
* Unknown lines are skipped; a line naming a memblock debug function whose arguments do not
  parse, or that carries an absurd number (more than 64 bits, a count larger than the lines that
  follow), is reported as malformed with its line number.

Invariants of a :class:`Trace`: operations are in log order; no reserve that answers a request
appears as an operation of its own; every :class:`AllocOp` has ``result`` (the kernel's base)
or ``None`` (failed); every :class:`DumpOp` lists exactly ``cnt`` regions per type; every number
fits 64 bits. Parsing is O(lines) in time and memory, whatever the numbers in the text say.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from arena.errors import BootLogNumberError as _Absurd
from arena.errors import InvariantError

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
    "RANGE_FUNCS",
    "ALLOCATOR_CALLERS",
    "parse",
    "parse_dump",
    "read_log",
    "not_a_log",
]

# -- constants ---------------------------------------------------------------------------------

#: Range lines: printed function name -> operation kind (every spelling since 3.x).
RANGE_FUNCS = {
    "memblock_add": "add",
    "memblock_add_node": "add",
    "memblock_remove": "remove",
    "memblock_reserve": "reserve",
    "__memblock_reserve": "reserve",
    "memblock_free": "free",  # the physical free of kernels <= 5.15
    "memblock_phys_free": "free",
    "__memblock_free_early": "free",  # 3.14 .. 5.x: memblock_free_early(_nid) print this
    "memblock_free_early": "free",
    "memblock_free_early_nid": "free",
    "memblock_free_late": "free_late",  # pages go to the buddy allocator; memblock unchanged
    "__memblock_free_late": "free_late",
    "memblock_physmem_add": "physmem_add",
}
#: Allocation requests: any ``memblock_[virt_|phys_]alloc*`` name with the request format.
_ALLOC_NAME_RE = re.compile(r"^memblock_(?:virt_|phys_)?alloc\w*$")
#: Callers of a reserve that mean "an allocation that printed no request".
ALLOCATOR_CALLERS = frozenset({
    "memblock_alloc_range_nid", "memblock_alloc_base_nid", "__memblock_alloc_base",
    "memblock_alloc_base", "memblock_alloc_nid", "memblock_alloc_range",
    "memblock_alloc_internal", "memblock_virt_alloc_internal", "__alloc_memory_core_early",
    "memblock_phys_alloc_try_nid", "memblock_phys_alloc", "memblock_double_array",
})

_HEX = r"0x[0-9a-fA-F]+"
# A debug-function token followed by ": " (callers in backtraces have no colon after them).
_FUNC_RE = re.compile(r"(?<![\w.+])(__memblock_\w+|memblock_\w+):(?:\s|$)")
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
_VERSION_RE = re.compile(r"\bLinux version (?P<major>\d{1,3})\.(?P<minor>\d{1,3})")
_HIGHMEM_RE = re.compile(rf"\bHighMem\s+\[mem (?P<b>{_HEX})-(?P<e>{_HEX})\]")
_PANIC_RE = re.compile(r"Kernel panic|\bFailed to allocate\b")
_BRACKET_RE = re.compile(r"\[0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+)\]")
_QUOTE_RE = re.compile(r"^(?:[ \t]*>)+[ \t]?")
_GAP_RE = re.compile(r"^#\s*GAP\b")
#: The kernel prints no number wider than 64 bits, nor a nid outside a C int.
_U64 = 1 << 64
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
#: Kernels before this print the end of a range exclusive (``base + size``).
INCLUSIVE_SINCE = (3, 14)


def _int(text: str) -> int:
    """A printed number, ``0x``-prefixed hex or decimal, that fits 64 bits (else ``_Absurd``).

    The text is checked before it is converted: a 5,000-digit number costs nothing."""
    hexa = text[:2].lower() == "0x"
    digits = text[2:] if hexa else text
    if len(digits.lstrip("0")) > (16 if hexa else 20):
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(digits)} digits)"
        raise _Absurd(f"number {shown} does not fit 64 bits")
    value = int(digits or "0", 16) if hexa else int(digits)
    if value >= _U64:
        raise _Absurd(f"number {text} does not fit 64 bits")
    return value


def _nid(text: str | None) -> int | None:
    """A printed ``nid`` (``%d``): ``None`` when absent, ``_Absurd`` outside a C int."""
    if text is None:
        return None
    if len(text) > 12 or not _INT_MIN <= int(text) <= _INT_MAX:
        raise _Absurd(f"nid {text[:24]} does not fit a C int")
    return int(text)


def _width(*hex_texts: str) -> int:
    """Width of ``phys_addr_t`` shown by printed addresses: 32 for 8 hex digits, else 64."""
    return 32 if all(len(t) - 2 == 8 for t in hex_texts) else 64


def _range_size(base_text: str, end_text: str, exclusive: bool) -> int:
    """Size of a printed range ``[base-end]`` (inclusive end, or exclusive for old kernels),
    modulo the printed width."""
    w = _width(base_text, end_text)
    return (_int(end_text) - _int(base_text) + (0 if exclusive else 1)) % (1 << w)


def _clean(line: str) -> str:
    """``line`` without e-mail quote marks (``> ``, ``>> ``, ``> > ``)."""
    return _QUOTE_RE.sub("", line, count=1) if ">" in line[:64] else line


# -- operations --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RangeOp:
    """One range line: ``memblock_add[_node]``, ``memblock_remove``, ``[__]memblock_reserve``,
    ``memblock_[phys_]free``, ``__memblock_free_early``, ``[__]memblock_free_late`` or
    ``memblock_physmem_add``.

    ``kind`` is ``"add"``, ``"remove"``, ``"reserve"``, ``"free"``, ``"free_late"`` or
    ``"physmem_add"``; the range is ``[base, base + size)`` in bytes (``size`` recovered from the
    printed end, 0 for ``end < base``). ``nid``/``flags`` are the printed fields
    (``memblock_add_node``, ``__memblock_reserve``, the ``flags 0x..`` of 3.13-4.x), ``None`` when
    the line has none. ``unrequested`` marks a reserve made by the allocator without a printed
    request (its caller is in :data:`ALLOCATOR_CALLERS`).
    """

    kind: str
    lineno: int
    func: str
    base: int
    size: int
    nid: int | None = None
    flags: int | None = None
    caller: str = ""
    unrequested: bool = False

    @property
    def label(self) -> str:
        """The kind, or ``"unrequested"`` for an allocator's reserve without a request."""
        return "unrequested" if self.unrequested else self.kind


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
    label = "alloc"

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
    label = "dump"

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
    label = "double"


Op = RangeOp | AllocOp | DumpOp | DoubleOp


@dataclass(frozen=True)
class Malformed:
    """A line naming a memblock debug function (or inside a dump) that did not parse."""

    lineno: int
    text: str
    reason: str

    def __str__(self) -> str:
        text = self.text.strip()
        if len(text) > 160:
            text = text[:157] + "..."
        return f"line {self.lineno}: malformed memblock line ({self.reason}): {text}"


@dataclass(frozen=True)
class Gap:
    """A ``# GAP`` comment at ``lineno``: lines were left out there, so reading stopped.

    ``memblock_lines`` counts the lines after it that name a memblock debug function or start
    a dump (not read); ``pending`` is the line of a request whose answer fell into the gap (not
    replayed either), else ``None``; ``last_lineno`` is the log's last line."""

    lineno: int
    memblock_lines: int
    last_lineno: int
    pending: int | None = None

    def __str__(self) -> str:
        req = (f"; the request at line {self.pending} has its answer in the gap"
               if self.pending else "")
        return (f"lines {self.lineno + 1}-{self.last_lineno} not replayed: the log marks a gap "
                f"at line {self.lineno} (# GAP), {self.memblock_lines} memblock line(s) after "
                f"it{req}")


@dataclass
class Trace(Sequence[Op]):
    """A parsed log: the operations in order, plus what the text reveals about the machine.

    ``lines`` is the log text split in lines (``lines[n - 1]`` is line ``n``); ``widths`` the
    ``phys_addr_t`` widths (32/64) shown by bracketed addresses (``14`` for the 14-digit
    ``%#016llx`` of kernels before about 4.10, which does not tell the width); ``version`` the
    ``Linux version`` line's (major, minor) and its line number; ``highmem_start`` the start of
    the ``HighMem`` zone (the lowmem limit of a 32-bit kernel) and its line; ``funcs`` every
    memblock function name printed (plus ``memblock_add_node+flags``/``-flags`` and
    ``memblock_reserve+flags``: the optional fields seen); ``exclusive_end`` whether range ends
    were read as exclusive and ``end_reason`` why; ``gap`` the ``# GAP`` that stopped reading.
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
    exclusive_end: bool = False
    end_reason: str = ""
    gap: Gap | None = None

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __getitem__(self, i: int) -> Op:  # type: ignore[override]
        return self.ops[i]

    def counts(self) -> dict[str, int]:
        """Number of operations per label (``add``, ``reserve``, ``unrequested``, ...,
        ``alloc``, ``dump``): every operation is counted once."""
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.label] = out.get(op.label, 0) + 1
        return out


# -- parser ------------------------------------------------------------------------------------

def _parse_range(func: str, rest: str, lineno: int, exclusive: bool) -> RangeOp | str:
    m = _RANGE_RE.match(rest)
    if m is None:
        return "expected [0xBASE-0xEND]"
    caller = m["caller"]
    if caller.startswith(("nid=", "flags")):
        return f"unparsable field {caller.split()[0]!r}"
    return RangeOp(
        kind=RANGE_FUNCS[func], lineno=lineno, func=func, base=_int(m["b"]),
        size=_range_size(m["b"], m["e"], exclusive), nid=_nid(m["nid"]),
        flags=None if m["flags"] is None else _int(_hex(m["flags"])), caller=caller)


def _hex(text: str) -> str:
    """A flags field, printed ``%x`` (no prefix) or ``%#02lx``, as ``0x`` text."""
    return text if text[:2].lower() == "0x" else "0x" + text


def _parse_alloc(func: str, rest: str, lineno: int) -> AllocOp | str:
    m = _ALLOC_RE.match(rest)
    if m is None:
        return "expected 'N bytes align=0x.. [nid=N] from=0x.. max_addr=0x..'"
    return AllocOp(
        lineno=lineno, func=func, size=_int(m["size"]), align=_int(m["align"]),
        nid=_nid(m["nid"]), start=_int(m["start"]), end=_int(m["end"]), caller=m["caller"])


def _dump_line(text: str) -> tuple[str, str, int, DumpRegion | None] | None:
    """One dump body line: ("region"|"cnt", type, index or count, region), ``None`` if not."""
    m = _DUMP_REGION_RE.search(text)
    if m is not None:
        region = DumpRegion(_int(m["b"]), _int(m["size"]), _nid(m["nid"]),
                            None if m["flags"] is None else _int(m["flags"]))
        return "region", m["type"], _int(m["idx"]), region
    m = _DUMP_CNT_RE.search(text)
    if m is not None:
        return "cnt", m["type"], _int(m["cnt"]), None
    return None


def _parse_dump_block(lines: Sequence[str], start: int, first_lineno: int
                      ) -> tuple[DumpOp | Malformed, int]:
    """Parse the dump whose header is ``lines[start]``; return it and the index after it.

    Counts are checked against the region lines actually present, so a crafted ``cnt`` costs
    nothing. O(lines of the dump)."""
    at = first_lineno - start  # line number of lines[index] is index + at
    sizes: tuple[int, int, int] | None = None
    cnts: dict[str, int] = {}
    found: dict[str, list[tuple[int, DumpRegion]]] = {"memory": [], "reserved": [], "physmem": []}
    i = start + 1
    while i < len(lines):
        text = lines[i]
        try:
            item = _dump_line(text)
            s = None if item is not None or sizes is not None else _DUMP_SIZES_RE.search(text)
            if s is not None:
                sizes = (_int(s["mem"]), _int(s["res"]), i + at)
        except _Absurd as e:
            return Malformed(i + at, text, str(e)), i + 1
        if item is not None and item[0] == "region":
            if item[3] is None:
                raise InvariantError("bootlog: expected item[3] is not None")
            found[item[1]].append((item[2], replace(item[3], lineno=i + at)))
        elif item is not None:
            cnts[item[1]] = item[2]
        elif s is None and _DUMP_BODY_HINT_RE.search(text):
            return Malformed(i + at, text, "unparsable dump line"), i + 1
        elif s is None:
            break
        i += 1
    problem = _dump_problem(sizes, cnts, found)
    if problem is not None:
        return Malformed(first_lineno, lines[start], problem), i
    if sizes is None:
        raise InvariantError("bootlog: expected sizes is not None")
    return DumpOp(
        lineno=first_lineno, end_lineno=i - 1 + at, memory_size=sizes[0], reserved_size=sizes[1],
        memory=tuple(r for _, r in found["memory"]),
        reserved=tuple(r for _, r in found["reserved"]),
        physmem=tuple(r for _, r in found["physmem"]) if "physmem" in cnts else None,
        sizes_lineno=sizes[2]), i


def _dump_problem(sizes: tuple[int, int, int] | None, cnts: dict[str, int],
                  found: dict[str, list[tuple[int, DumpRegion]]]) -> str | None:
    """Why a dump block is not a complete dump, or ``None``."""
    if sizes is None or "memory" not in cnts or "reserved" not in cnts:
        return "incomplete MEMBLOCK configuration dump"
    for name, cnt in cnts.items():
        listed = found[name]
        if cnt != len(listed):
            return f"dump lists {len(listed)} {name} regions but {name}.cnt = {cnt:#x}"
        if any(idx != k for k, (idx, _) in enumerate(listed)):
            return f"{name} regions are not numbered 0x0..{cnt - 1:#x} in order"
    for name, listed in found.items():
        if listed and name not in cnts:
            return f"{name} regions without a {name}.cnt line"
    return None


def parse_dump(text: str) -> DumpOp:
    """Parse one ``MEMBLOCK configuration`` dump (e.g. ``Memblock.dump_all()``'s text).

    Returns the :class:`DumpOp` (line numbers relative to ``text``); raises ``ValueError`` when
    ``text`` holds no complete dump. O(lines).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    lines = [_clean(line) for line in text.splitlines()]
    for i, line in enumerate(lines):
        if _DUMP_HEAD_RE.search(line):
            dump, _ = _parse_dump_block(lines, i, i + 1)
            if isinstance(dump, Malformed):
                raise ValueError(str(dump))
            return dump
    raise ValueError("no 'MEMBLOCK configuration:' dump in the text")


def _decide_end(trace: Trace, clean: Sequence[str], end: str | None) -> tuple[bool, str]:
    """Whether range ends are exclusive (kernels before 3.14), and why.

    Given (``end``), else the ``Linux version`` line, else the ends themselves: at least two
    page-aligned ends, none ending in ``0xfff`` and no allocation request (requests are printed
    since 3.14, with inclusive ends) mean exclusive. O(lines)."""
    if end is not None:
        return end == "exclusive", f"given: {end} range ends"
    since = ".".join(map(str, INCLUSIVE_SINCE))
    if trace.version is not None:
        old = trace.version < INCLUSIVE_SINCE
        return old, (f"'Linux version' at line {trace.version_lineno}: kernels "
                     f"{'before' if old else 'since'} {since} print range ends "
                     f"{'exclusive' if old else 'inclusive'}")
    inclusive = exclusive = requests = 0
    for line in clean:
        if _GAP_RE.match(line.lstrip()):
            break
        m = _FUNC_RE.search(line)
        if m is None:
            continue
        if _ALLOC_NAME_RE.match(m[1]):
            requests += 1
        r = _RANGE_RE.match(line[m.end():].strip()) if m[1] in RANGE_FUNCS else None
        if r is None or len(r["e"]) > 18:
            continue
        b, e = int(r["b"], 16), int(r["e"], 16)
        inclusive += (e & 0xFFF) == 0xFFF
        exclusive += (e & 0xFFF) == 0 and e > b
    if exclusive >= 2 and not inclusive and not requests:
        return True, (f"{exclusive} range ends are page-aligned, none ends in 0xfff and no "
                      f"allocation request is printed: the exclusive ends of kernels before "
                      f"{since}")
    return False, "range ends are inclusive (kernels since 3.14)"


class _Reader:
    """One pass over the (quote-stripped) lines, building ``trace``; see :func:`parse`."""

    def __init__(self, trace: Trace, clean: list[str], strict: bool) -> None:
        self.trace = trace
        self.clean = clean
        self.strict = strict
        self.pending: AllocOp | None = None

    def settle(self, event: Op | None) -> bool:
        """Resolve the pending request with the next memblock event; True if it was the answer."""
        pending, self.pending = self.pending, None
        if pending is None:
            return False
        if (isinstance(event, RangeOp) and event.kind == "reserve"
                and event.size == pending.size):
            self.trace.ops.append(replace(pending, result=event.base,
                                          result_lineno=event.lineno))
            return True
        self.trace.ops.append(pending)
        return False

    def bad(self, lineno: int, reason: str) -> None:
        item = Malformed(lineno, self.trace.lines[lineno - 1], reason)
        if self.strict:
            raise ValueError(str(item))
        self.trace.malformed.append(item)

    def run(self) -> None:
        i = 0
        while i < len(self.clean):
            try:
                i = self.step(i)
            except _Absurd as e:
                self.settle(None)
                self.bad(i + 1, str(e))
                i += 1
        self.settle(None)

    def step(self, i: int) -> int:
        """Read line ``i`` (0-based); return the index of the next line to read."""
        line, lineno, trace = self.clean[i], i + 1, self.trace
        head = line.lstrip()
        if head.startswith("#"):
            return self.stop_at_gap(i) if _GAP_RE.match(head) else i + 1
        if trace.highmem_start is None and (h := _HIGHMEM_RE.search(line)):
            trace.highmem_start, trace.highmem_lineno = _int(h["b"]), lineno
        if _DUMP_HEAD_RE.search(line):
            dump, nxt = _parse_dump_block(self.clean, i, lineno)
            self.settle(None)
            if isinstance(dump, Malformed):
                self.bad(dump.lineno, dump.reason)
            else:
                trace.ops.append(dump)
                _note_widths(trace, self.clean[i:dump.end_lineno])
            return nxt
        if (d := _DOUBLE_RE.search(line)) is not None:
            self.settle(None)
            trace.ops.append(DoubleOp(lineno, d["type"], _int(d["max"]), _int(d["b"]),
                                      _int(d["e"])))
            return i + 1
        self.memblock_line(line, lineno)
        return i + 1

    def memblock_line(self, line: str, lineno: int) -> None:
        m = _FUNC_RE.search(line)
        if m is None:
            if _PANIC_RE.search(line):
                self.settle(None)
            return
        func, rest = m[1], line[m.end():].strip()
        if func not in RANGE_FUNCS and not _ALLOC_NAME_RE.match(func):
            return  # some other message that names a memblock function
        if _PANIC_RE.search(line):
            self.settle(None)  # "Kernel panic ... memblock_alloc_try_nid: Failed to allocate ..."
            return
        trace = self.trace
        trace.funcs.add(func)
        op = (_parse_range(func, rest, lineno, trace.exclusive_end) if func in RANGE_FUNCS
              else _parse_alloc(func, rest, lineno))
        if isinstance(op, str):
            self.settle(None)
            self.bad(lineno, op)
            return
        if isinstance(op, RangeOp):
            _note_widths(trace, [line])
            if op.func in ("memblock_add_node", "memblock_reserve"):
                trace.funcs.add(op.func + ("+flags" if op.flags is not None else "-flags"))
        if self.settle(op):
            return
        if isinstance(op, AllocOp):
            self.pending = op
        elif op.kind == "reserve" and op.caller.split("+")[0].strip() in ALLOCATOR_CALLERS:
            trace.ops.append(replace(op, unrequested=True))
        else:
            trace.ops.append(op)

    def stop_at_gap(self, i: int) -> int:
        """``# GAP`` at line ``i``: count what follows, drop a request waiting for its answer,
        and end the reading."""
        after = sum(1 for line in self.clean[i + 1:]
                    if _FUNC_RE.search(line) or _DUMP_HEAD_RE.search(line))
        pending = self.pending
        self.pending = None
        self.trace.gap = Gap(i + 1, after, len(self.clean),
                             None if pending is None else pending.lineno)
        return len(self.clean)


def _scan_version(trace: Trace, clean: Sequence[str]) -> None:
    for n, line in enumerate(clean, 1):
        if line.lstrip().startswith("#"):
            if _GAP_RE.match(line.lstrip()):
                return
            continue
        if (v := _VERSION_RE.search(line)) is not None:
            trace.version, trace.version_lineno = (int(v["major"]), int(v["minor"])), n
            return


def parse(text: str, *, strict: bool = False, end: str | None = None) -> Trace:
    """Read a kernel log booted with ``memblock=debug`` into a :class:`Trace` of operations.

    Recognises adds (with node), removes, reserves (both spellings, with or without the
    ``flags`` field), frees (``memblock_free`` of kernels <= 5.15, ``memblock_phys_free``,
    4.x ``__memblock_free_early``, ``[__]memblock_free_late``), allocation requests of every
    family (3.x/4.x ``memblock_virt_alloc_try_nid[_nopanic|_raw]``, 5.x+
    ``memblock_alloc_try_nid[_nopanic|_raw]``, ``memblock_alloc_exact_nid_raw``,
    ``memblock_phys_alloc_range``) with the kernel's answer, array doublings and ``MEMBLOCK
    configuration`` dumps. ``end`` is ``"inclusive"``, ``"exclusive"`` (kernels before 3.14) or
    ``None`` (decide from the log; :attr:`Trace.end_reason` says how). Reading stops at a
    ``# GAP`` comment (:attr:`Trace.gap`). Unknown lines are skipped; malformed memblock lines
    are collected in ``Trace.malformed`` with their line number, or, with ``strict=True``,
    raise ``ValueError`` at the first one. O(lines).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    if end not in (None, "inclusive", "exclusive"):
        raise ValueError(f"end must be 'inclusive', 'exclusive' or None, not {end!r}")
    lines = text.splitlines()
    clean = [_clean(line) for line in lines]
    trace = Trace(lines=lines)
    _scan_version(trace, clean)
    trace.exclusive_end, trace.end_reason = _decide_end(trace, clean, end)
    _Reader(trace, clean, strict).run()
    return trace


def _note_widths(trace: Trace, lines: Sequence[str]) -> None:
    for line in lines:
        for b, e in _BRACKET_RE.findall(line):
            trace.widths.add(32 if len(b) == 8 and len(e) == 8 else 64)


# -- files -------------------------------------------------------------------------------------

#: What a boot log looks like, for the one-line error about a file that is not one.
EXPECTED = ("expected a kernel log booted with memblock=debug (lines such as "
            "'memblock_reserve: [0x...-0x...] caller' or a 'MEMBLOCK configuration:' dump)")


def read_log(path: str) -> tuple[str, str]:
    """The text of the boot log at ``path`` (``-``: standard input) and a name to show for it.

    Undecodable bytes become U+FFFD (e-mailed logs are not always clean UTF-8). Raises
    ``OSError`` when the file cannot be read (a directory included).
    """
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    return Path(path).read_text(encoding="utf-8", errors="replace"), path


def not_a_log(text: str, trace: Trace) -> str | None:
    """Why ``text`` (parsed into ``trace``) is not a ``memblock=debug`` boot log, or ``None``.

    A log must hold at least one memblock operation or dump that parses, and no more memblock
    lines that do not parse than lines that do (a document quoting a few debug lines is not a
    log); the reason names what was found instead (empty file, binary data, no memblock line,
    mostly malformed ones)."""
    bad, good = len(trace.malformed), len(trace.ops)
    if good and bad <= good:
        return None
    if not text.strip():
        return "the file is empty"
    if "\x00" in text[:1 << 16]:
        return "binary data"
    if bad:
        first = trace.malformed[0]
        return (f"{bad} of its {bad + good} memblock line(s) do not parse, the first at line "
                f"{first.lineno}: {first.reason}")
    if trace.gap is not None:
        return f"no memblock line before the # GAP at line {trace.gap.lineno}"
    return "no memblock line"
