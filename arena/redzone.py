"""Debug mode's red-zone checks: find every broken canary and name the allocation that wrote it.

Kernel counterpart: SLUB's ``check_object()`` with the blame KASAN gives (the report names the
object the bad access belongs to, not the object whose canary happened to be hit). The blocks
of debug mode lie side by side in memory (memblock packs them), each laid out as
``[left red zone][user bytes][right red zone]``; a freed block is poison throughout. Rules:

* A broken right red zone is its own allocation's overrun. When the damage reaches the end of
  the block and the next block (by address) starts right there with broken bytes, the overrun
  goes on: through that block's left red zone, through its data when the whole left red zone
  is broken (its data cannot be checked: the report says "at least"), into its right red zone
  when that is broken from its first byte, and so on. Every byte of the run is the writer's;
  none of it is reported against the blocks it ran over. A run into a freed block is the
  writer's overrun too, not a write after free.
* Damage in a left red zone that no run explains is an underrun of its allocation when it
  reaches the byte just before the data (an index of -1, -2, ... or a loop running backwards
  writes there first); otherwise it lies apart from the data, and a write a fixed distance
  past the end of the allocation just before (whose block touches this one) is the likelier
  cause: it is reported as that allocation's overrun (the report names the other reading).
* Damage in a freed block that no run explains is a write after free of that block.

The arena keeps the debug records sorted by address in a :class:`RecordIndex`; a free or a
quarantine eviction checks a window of neighbours around the blocks concerned, ``check()``
checks them all. Everything here reads memory only through the ``read`` callable it is given
(:meth:`arena.physmem.PhysicalMemory.read`) and never reads a guard page.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from arena.debug import POISON_FREE, RED_ACTIVE, Record
from arena.tracking import fmt_stack
from arena.unit import LIVE

__all__ = ["WINDOW", "Finding", "RecordIndex", "analyse", "check_records", "restore"]

#: Neighbours on each side checked with a record at ``free()`` (a run of damage longer than
#: this many blocks is fully measured only by ``check()``).
WINDOW = 4

Read = Callable[[int, int], bytes]
_EMPTY = np.zeros(0, np.int64)


class Finding(NamedTuple):
    """One corruption report: its text and the ids of the records it concerns."""

    text: str
    records: frozenset[int]


class _Zone:
    """The bytes of ``[start, end)`` that differ from ``byte``: ``bad`` (absolute addresses,
    ascending, possibly trimmed from the front by a run) and their values."""

    __slots__ = ("start", "end", "bad", "values")

    def __init__(self, read: Read, start: int, end: int, byte: int) -> None:
        self.start, self.end = start, end
        self.bad, self.values = _EMPTY, _EMPTY
        if end > start:
            data = read(start, end - start)
            if data != bytes((byte,)) * (end - start):
                arr = np.frombuffer(data, np.uint8)
                idx = np.flatnonzero(arr != byte)
                self.bad, self.values = idx + start, arr[idx].astype(np.int64)

    def lead(self) -> int:
        """End of the run of broken bytes starting at ``start`` (``start`` if none)."""
        bad = self.bad
        if not bad.size or bad[0] != self.start:
            return self.start
        gaps = np.flatnonzero(bad - self.start != np.arange(bad.size))
        return self.start + int(gaps[0] if gaps.size else bad.size)

    def consume(self, upto: int) -> None:
        """Forget the broken bytes below ``upto`` (explained by a run)."""
        keep = self.bad >= upto
        self.bad, self.values = self.bad[keep], self.values[keep]


class _Zones(NamedTuple):
    left: _Zone    # a freed block: the whole block (poison), and right is the same object
    right: _Zone
    freed: bool


def _zones(read: Read, rec: Record) -> _Zones | None:
    """The zones of a record that hold a known pattern, or ``None`` (a guarded freed block is
    protected; a block that left the quarantine holds nothing known)."""
    if rec.quarantined:
        if rec.guard is not None:
            return None
        whole = _Zone(read, rec.lo, rec.hi, POISON_FREE)
        return _Zones(whole, whole, True)
    if rec.state != LIVE:
        return None
    return _Zones(_Zone(read, rec.lo, rec.phys, RED_ACTIVE),
                  _Zone(read, rec.phys + rec.size, rec.hi, RED_ACTIVE), False)


def _short(rec: Record) -> str:
    return ("the freed " if rec.quarantined else "the ") + rec.describe()[4:]


def _run(recs: list[Record], zones: list[_Zones | None],
         i: int) -> tuple[int, list[str], bool, int]:
    """Follow the overrun of ``recs[i]`` (its right zone is broken) over its neighbours:
    ``(end of the damage, what it ran into, whether it went through data unchecked, index of
    the last record it reached)``."""
    right = zones[i].right  # type: ignore[union-attr]
    end = int(right.bad[-1]) + 1
    right.consume(end)
    into: list[str] = []
    j = i
    while end == recs[j].hi and j + 1 < len(recs) and recs[j + 1].lo == end:
        nxt, z = recs[j + 1], zones[j + 1]
        if z is None or z.left.lead() == z.left.start:
            break
        lead = z.left.lead()
        z.left.consume(lead)
        end = lead
        j += 1
        if z.freed:
            into.append(f"{_short(nxt)} (freed at {_site(nxt.freed_at)})")
            continue
        into.append(f"the red zone of {_short(nxt)}")
        if lead < nxt.phys:
            break
        lead = z.right.lead()
        if lead == z.right.start:   # ended somewhere in its data
            into[-1] += ", and at least up to its data, which it may have overwritten"
            return end, into, True, j
        into[-1] += ", through its data (overwritten) into its end red zone"
        z.right.consume(lead)
        end = lead
    return end, into, False, j


def _site(stack: tuple[tuple[str, int, str], ...]) -> str:
    return fmt_stack(stack[:1], "").strip() or "?"


def _overrun(rec: Record, first: int, value: int, end: int, into: list[str],
             at_least: bool) -> str:
    """The report of ``rec`` having written ``[first, end)`` past its end."""
    data_end = rec.phys + rec.size
    n = end - data_end
    text = (f"overrun of {rec.describe()}: {'at least ' if at_least else ''}{n} byte(s) past "
            f"its end were written (first found: {value:#04x} at +{first - data_end}, red zone "
            f"{RED_ACTIVE:#04x})")
    if into:
        text += (f"; it overran its end by {'at least ' if at_least else ''}{n} bytes into "
                 + "; then ".join(into))
    return text + "\n  allocated at:" + fmt_stack(rec.stack)


def _left_report(recs: list[Record], zones: list[_Zones | None], i: int) -> Finding | None:
    """Damage left in the left red zone of live ``recs[i]``: an underrun when it reaches the
    byte before the data, else the overrun of the block just before (if its block touches)."""
    rec, zone = recs[i], zones[i].left  # type: ignore[union-attr]
    if not zone.bad.size:
        return None
    first, last = int(zone.bad[0]), int(zone.bad[-1])
    prev = recs[i - 1] if i else None
    if prev is not None and prev.hi == rec.lo and prev.state == LIVE and not prev.quarantined \
            and last < rec.phys - 1:
        text = _overrun(prev, first, int(zone.values[0]), last + 1,
                        [f"the red zone of {_short(rec)} (or that allocation was written "
                         f"{rec.phys - first} bytes before its start)"], False)
        return Finding(text, frozenset((id(prev), id(rec))))
    before = rec.phys - first
    text = (f"underrun of {rec.describe()}: {before} byte(s) before its start were written "
            f"(first found: {int(zone.values[0]):#04x} at -{before}, red zone "
            f"{RED_ACTIVE:#04x})\n  allocated at:" + fmt_stack(rec.stack))
    return Finding(text, frozenset((id(rec),)))


def _after_free(rec: Record, zone: _Zone) -> Finding | None:
    if not zone.bad.size:
        return None
    first, last = int(zone.bad[0]) - rec.phys, int(zone.bad[-1]) - rec.phys
    text = (f"write after free to {rec.describe()}: bytes at offsets {first} .. {last} "
            f"were written after it was freed (found {int(zone.values[0]):#04x}, poison "
            f"{POISON_FREE:#04x})\n  allocated at:" + fmt_stack(rec.stack)
            + "\n  freed at:" + fmt_stack(rec.freed_at))
    return Finding(text, frozenset((id(rec),)))


def analyse(read: Read, recs: list[Record]) -> list[Finding]:
    """Every corruption in ``recs`` (sorted by block address), each blamed on the allocation
    that made it (module docstring). O(bytes of the zones checked)."""
    zones = [_zones(read, r) for r in recs]
    found: list[Finding] = []
    for i, rec in enumerate(recs):
        z = zones[i]
        if z is None or z.freed or not z.right.bad.size:
            continue
        first, value = int(z.right.bad[0]), int(z.right.values[0])
        end, into, at_least, last = _run(recs, zones, i)
        found.append(Finding(_overrun(rec, first, value, end, into, at_least),
                             frozenset(id(r) for r in recs[i:last + 1])))
    for i, rec in enumerate(recs):
        z = zones[i]
        if z is None:
            continue
        got = _after_free(rec, z.left) if z.freed else _left_report(recs, zones, i)
        if got is not None:
            found.append(got)
    return found


def check_records(read: Read, index: RecordIndex, recs: Iterable[Record]) -> list[str]:
    """The reports that concern ``recs``, from a window of :data:`WINDOW` neighbours on each
    side of each of them (neighbouring windows merged). O(window bytes)."""
    # Every finding that concerns a record breaks one of its own zones: the neighbours are
    # read only around a record that has damage (a clean free reads its own zones only).
    recs = [r for r in recs if _damaged(read, r)]
    wanted = {id(r) for r in recs}
    if not wanted:
        return []
    spans = sorted(index.span(r, WINDOW) for r in recs)
    merged: list[list[int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out: list[str] = []
    for lo, hi in merged:
        out += [f.text for f in analyse(read, index.slice(lo, hi)) if f.records & wanted]
    return out


def _damaged(read: Read, rec: Record) -> bool:
    z = _zones(read, rec)
    return z is not None and bool(z.left.bad.size or z.right.bad.size)


def restore(fill: Callable[[int, int, int], None], rec: Record) -> None:
    """Write a record's patterns back (``check(repair=True)``): red zones of a live block,
    poison of a freed one."""
    if rec.quarantined:
        if rec.guard is None:
            fill(rec.lo, rec.hi - rec.lo, POISON_FREE)
        return
    if rec.state != LIVE:
        return
    if rec.phys > rec.lo:
        fill(rec.lo, rec.phys - rec.lo, RED_ACTIVE)
    end = rec.phys + rec.size
    if rec.hi > end:
        fill(end, rec.hi - end, RED_ACTIVE)


class RecordIndex:
    """The debug records holding memory (live, held or quarantined), sorted by block address,
    so that a record's neighbours are found by address. O(log n) lookup, O(n) insert/remove
    (a list splice)."""

    __slots__ = ("_blocks", "_recs")

    def __init__(self) -> None:
        self._blocks: list[int] = []
        self._recs: list[Record] = []

    def __len__(self) -> int:
        return len(self._blocks)

    def add(self, rec: Record) -> None:
        i = bisect.bisect_left(self._blocks, rec.block)
        self._blocks.insert(i, rec.block)
        self._recs.insert(i, rec)

    def remove(self, rec: Record) -> None:
        i = bisect.bisect_left(self._blocks, rec.block)
        if i < len(self._recs) and self._recs[i] is rec:
            del self._blocks[i]
            del self._recs[i]

    def span(self, rec: Record, k: int) -> tuple[int, int]:
        """Index range of ``rec`` and up to ``k`` neighbours on each side."""
        i = bisect.bisect_left(self._blocks, rec.block)
        return max(0, i - k), min(len(self._recs), i + k + 1)

    def slice(self, lo: int, hi: int) -> list[Record]:
        return self._recs[lo:hi]

    def all(self) -> list[Record]:
        return list(self._recs)

    def clear(self) -> None:
        self._blocks.clear()
        self._recs.clear()
