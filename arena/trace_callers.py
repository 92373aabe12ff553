"""Who reserved what: the reservations of a ``memblock=debug`` log as ``(base, size, caller)``
pieces, for the memory maps (``arena.render.svg(..., callers=...)``).

This is log code: it reads parsed operations (:func:`arena.bootlog.parse`, ``Report.ops`` of
:func:`arena.trace.replay`) and hands the pictures plain pieces; the drawing modules
(``arena.render*``) never read a log themselves.

memblock merges touching reservations into one region, so the region table alone cannot tell
the allocations apart; the log can. A successful allocation is credited to the caller printed
on its request line, a plain reserve to its own caller; frees and removals carve their range
out; overlapping reserves keep the earlier (most specific) name. The pieces are disjoint and
sorted by base. Complexity: O(ops x pieces) worst case.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from arena.render_callers import CallerPiece

__all__ = ["CallerPiece", "callers_from_ops", "callers_from_log"]


def _short_caller(text: str) -> str:
    """``sparse_init_nid+0x9f/0x390`` -> ``sparse_init_nid``."""
    return text.split("+", 1)[0].strip() or "?"


class _PieceMap:
    """Disjoint ``[start, end) -> caller`` pieces: a reservation fills only what is not yet
    claimed (the first, most specific reserver keeps its name); a free carves pieces out."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.names: list[str] = []

    def claim(self, base: int, end: int, name: str) -> None:
        i = bisect.bisect_right(self.ends, base)
        pos = base
        new: list[tuple[int, int]] = []
        while i < len(self.starts) and self.starts[i] < end:
            if self.starts[i] > pos:
                new.append((pos, self.starts[i]))
            pos = max(pos, self.ends[i])
            i += 1
        if pos < end:
            new.append((pos, end))
        for s, e in new:
            j = bisect.bisect_left(self.starts, s)
            self.starts.insert(j, s)
            self.ends.insert(j, e)
            self.names.insert(j, name)

    def carve(self, base: int, end: int) -> None:
        i = bisect.bisect_right(self.ends, base)
        while i < len(self.starts) and self.starts[i] < end:
            s, e, name = self.starts[i], self.ends[i], self.names[i]
            del self.starts[i], self.ends[i], self.names[i]
            if e > end:
                self.starts.insert(i, end)
                self.ends.insert(i, e)
                self.names.insert(i, name)
            if s < base:
                self.starts.insert(i, s)
                self.ends.insert(i, base)
                self.names.insert(i, name)
                i += 1

    def pieces(self) -> list[CallerPiece]:
        return [CallerPiece(s, e - s, n) for s, e, n in zip(self.starts, self.ends, self.names,
                                                                strict=True)]


def callers_from_ops(ops: Iterable[Any]) -> list[CallerPiece]:
    """Who holds each reserved byte after the operations of a parsed log
    (:func:`arena.bootlog.parse` / ``Report.ops``).

    A successful allocation (``kind == "alloc"`` with a ``result``) is credited to the caller
    printed on its request line (the reserve line that answers it names the allocator); a plain
    reserve to its own caller; a free (``"free"``) or removal (``"remove"``) releases its range.
    Overlapping reserves keep the earlier name. Caller offsets (``+0x4e/0xc0``) are dropped.
    Returns the pieces sorted by base, disjoint. O(ops × pieces) worst case.
    """
    pm = _PieceMap()
    for op in ops:
        kind = getattr(op, "kind", None)
        if kind == "alloc":
            base = getattr(op, "result", None)
            if base is not None and op.size:
                pm.claim(base, base + op.size, _short_caller(op.caller))
        elif kind == "reserve":
            if op.size:
                pm.claim(op.base, op.base + op.size, _short_caller(op.caller))
        elif kind in ("free", "remove"):
            if op.size:
                pm.carve(op.base, op.base + op.size)
    return pm.pieces()


def callers_from_log(text: str) -> list[CallerPiece]:
    """:func:`callers_from_ops` of a ``memblock=debug`` log text (parsed with
    :func:`arena.bootlog.parse`; kernel logs and ours alike). O(lines × pieces)."""
    from arena.bootlog import parse

    return callers_from_ops(parse(text))
