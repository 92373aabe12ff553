"""The compressed physical address axis of the memory maps, and its round ticks.

Memory is drawn to scale (linear inside each run of memory, one scale for all runs), while every
hole between runs that would take more than a few pixels (or characters) is squeezed to a
fixed-width break. Addresses inside a compressed hole map linearly into the break, so reserved
ranges that lie in holes (firmware tables) still show where they are.

Tick labels sit on **round** addresses only: multiples of one power-of-two step (at least
4 KiB) per axis, chosen so that labels are far enough apart; a lane's exact ends are not ticks
(the pictures mark them apart). Complexity: O(k log k) in the number of runs to build an axis,
O(log k) per position.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

from arena.sizes import human_size

__all__ = ["Axis", "human_size", "range_text", "merge_extents", "clip", "round_step",
           "round_ticks"]

#: The smallest tick step: a page.
MIN_STEP = 4096


def range_text(base: int, size: int) -> str:
    """The kernel's inclusive range text ``[0x..-0x..]`` of ``[base, base + size)``."""
    return f"[{base:#x}-{base + size - 1:#x}]"


def merge_extents(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of half-open spans (touching spans are joined). O(n log n)."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def clip(spans: Sequence[tuple[int, int]], base: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[base, end)`` inside the sorted disjoint ``spans``. O(log n + hits)."""
    out = []
    i = max(bisect.bisect_right(spans, (base, base)) - 1, 0)
    while i < len(spans) and spans[i][0] < end:
        s, e = max(spans[i][0], base), min(spans[i][1], end)
        if s < e:
            out.append((s, e))
        i += 1
    return out


class Axis:
    """A monotone piecewise-linear map from physical addresses to positions ``[0, width]``.

    ``extents`` are the runs of memory (any order; overlapping or touching runs are merged);
    ``lo``/``hi`` optionally widen the axis beyond them (e.g. to reservations outside memory).
    Memory is linear at one common scale; a hole (between runs, or before/after them) keeps
    its linear width when that is at most ``gap`` units and is otherwise compressed to ``gap``
    units (capped so that all compressed holes together take at most a quarter of the width).
    ``pieces`` lists ``(start, end, x0, x1, hole, compressed)``. Raises ``ValueError`` for a
    non-positive width or an empty axis. O(k log k) in the number of runs.
    """

    def __init__(self, extents: Iterable[tuple[int, int]], width: float, gap: float, *,
                 lo: int | None = None, hi: int | None = None) -> None:
        if not width > 0:
            raise ValueError(f"width must be positive, not {width!r}")
        runs = [(s, e) for s, e in merge_extents(extents) if s < e]
        if not runs:
            if lo is None or hi is None or lo >= hi:
                raise ValueError("an axis needs at least one non-empty run of memory")
            runs = [(lo, hi)]
        lo = runs[0][0] if lo is None else min(lo, runs[0][0])
        hi = runs[-1][1] if hi is None else max(hi, runs[-1][1])
        segs: list[tuple[int, int, bool]] = []   # (start, end, is_hole)
        pos = lo
        for s, e in runs:
            if s > pos:
                segs.append((pos, s, True))
            segs.append((s, e, False))
            pos = e
        if hi > pos:
            segs.append((pos, hi, True))
        holes = [i for i, sg in enumerate(segs) if sg[2]]
        gap = min(gap, width / 4 / max(len(holes), 1))
        compressed: set[int] = set()
        while True:
            linear = sum(e - s for i, (s, e, _h) in enumerate(segs) if i not in compressed)
            scale = (width - gap * len(compressed)) / linear if linear else 0.0
            more = {i for i in holes if i not in compressed and (segs[i][1] - segs[i][0]) * scale > gap}
            if not more:
                break
            compressed |= more
        self.width = float(width)
        self.lo, self.hi = lo, hi
        self.scale = scale
        self.pieces: list[tuple[int, int, float, float, bool, bool]] = []
        x = 0.0
        for i, (s, e, hole) in enumerate(segs):
            w = gap if i in compressed else (e - s) * scale
            self.pieces.append((s, e, x, x + w, hole, i in compressed))
            x += w
        # Absorb rounding so the last piece ends exactly at width.
        if self.pieces:
            s, e, x0, _x1, hole, comp = self.pieces[-1]
            self.pieces[-1] = (s, e, x0, self.width, hole, comp)
        self._starts = [p[0] for p in self.pieces]

    def x(self, addr: int) -> float:
        """Position of ``addr`` (clamped to the axis). O(log pieces)."""
        if addr <= self.lo:
            return 0.0
        if addr >= self.hi:
            return self.width
        s, e, x0, x1, _h, _c = self.pieces[bisect.bisect_right(self._starts, addr) - 1]
        return x0 + (x1 - x0) * (addr - s) / (e - s)

    def compressed_holes(self) -> list[tuple[int, int, float, float]]:
        """``(start, end, x0, x1)`` of every compressed hole."""
        return [(s, e, x0, x1) for s, e, x0, x1, hole, comp in self.pieces if comp]

    def holes(self) -> list[tuple[int, int, float, float, bool]]:
        """``(start, end, x0, x1, compressed)`` of every hole, compressed or to scale."""
        return [(s, e, x0, x1, comp) for s, e, x0, x1, hole, comp in self.pieces if hole]

    def runs(self) -> list[tuple[int, int, float, float]]:
        """``(start, end, x0, x1)`` of every run of memory."""
        return [(s, e, x0, x1) for s, e, x0, x1, hole, _c in self.pieces if not hole]


def round_step(axis: Axis, min_gap: float) -> int:
    """The tick step of ``axis``: the smallest power of two (>= 4 KiB) whose multiples lie at
    least ``min_gap`` units apart at the axis's memory scale. O(1)."""
    if axis.scale <= 0:
        return 1 << max(12, (axis.hi - axis.lo).bit_length())
    need = max(min_gap / axis.scale, MIN_STEP)
    return 1 << math.ceil(math.log2(need))


def _roundness(addr: int) -> int:
    """Trailing zero bits of ``addr`` (0 counts as the roundest)."""
    return 1 << 70 if addr == 0 else (addr & -addr).bit_length()


def round_ticks(axis: Axis, min_gap: float) -> tuple[int, list[tuple[int, float]]]:
    """``(step, [(addr, x), ...])``: every multiple of :func:`round_step` inside a piece of the
    axis drawn to scale (runs of memory and holes kept linear; not inside compressed breaks,
    whose addresses are not to scale), the roundest first (most trailing zero bits), then by
    address. The caller drops labels that collide. O(ticks log ticks)."""
    step = round_step(axis, min_gap)
    out: list[tuple[int, float]] = []
    for s, e, _x0, _x1, _hole, comp in axis.pieces:
        if comp:
            continue
        a = -(-s // step) * step
        while a < e or (a == e == axis.hi):
            out.append((a, axis.x(a)))
            a += step
    out = sorted(dict(out).items(), key=lambda t: (-_roundness(t[0]), t[0]))
    return step, out
