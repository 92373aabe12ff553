"""The free-range index of memblock: the highest and the lowest aligned fit among the gaps of
``reserved``, found through per-chunk bounds instead of the kernel's walk over every gap.

Kernel counterpart: the inner part of ``__memblock_find_range_top_down()`` /
``__memblock_find_range_bottom_up()``: the kernel walks the free ranges (memory minus reserved)
one by one and takes the first aligned fit in its walk order. Inside one usable memory piece
``[lo, hi)`` the free ranges are the gaps of ``reserved`` clipped to it; they are disjoint and the
walk is monotonic, so the kernel's answer is the highest (top-down) / lowest (bottom-up) gap with
an aligned fit. A gap shorter than ``size`` never fits, so only gaps at least ``size`` long are
visited: the two clipped end pieces directly, the gaps in between through the per-chunk bounds
``_gm`` of :class:`arena.memblock_store.MemblockType` (numpy over the bounds when there are many
chunks); each candidate gets the kernel's exact test. A scan of a whole chunk that finds nothing
tightens that chunk's bound.

API: :func:`highest_fit` and :func:`lowest_fit`. They read the chunk columns and gap bounds of
the storage (this module is the storage's search, the one place besides
:mod:`arena.memblock_store` that knows its layout). The kernel's plain walk, which these must
agree with, is :mod:`arena.memblock_linear`. Cost: O(log n + c * chunk) for c candidate chunks.
"""

from __future__ import annotations

from array import array

import numpy as np

from arena.errors import InvariantError
from arena.memblock_store import MemblockType

__all__ = ["highest_fit", "lowest_fit"]

# Chunk ranges longer than this are searched with numpy (max(), then flatnonzero() only on a
# hit), whose cost is nearly flat in the number of chunks; shorter ones by a Python loop, whose
# cost grows by chunk and stays cheaper up to about 64 chunks (bench/RESULTS.md, measurements).
_NUMPY_CHUNKS = 64


def _end_of(R: MemblockType, p: tuple[int, int] | None, lo: int) -> int:
    """Where free space after reserved region ``p`` starts: its end, or ``lo`` when that is
    higher or there is no region ``p``."""
    if p is None:
        return lo
    pe: int = R._cb[p[0]][p[1]] + R._cs[p[0]][p[1]]
    return pe if pe > lo else lo


def highest_fit(R: MemblockType, lo: int, hi: int, size: int, keep: int) -> int:
    """Highest fit in ``[lo, hi)`` minus reserved: the top piece, the gaps between reserved
    regions (descending), the bottom piece; 0 if none. ``lo >= PAGE_SIZE``, so no fit is 0."""
    if not R.live:
        cand = (hi - size) & keep
        return cand if cand >= lo else 0
    RB = R._cb
    ch, oh = R._bisect_left(hi)               # first reserved region at or above hi
    p = R._prev(ch, oh)
    ts = _end_of(R, p, lo)
    if hi - ts >= size:                        # top piece [ts, hi)
        cand = (hi - size) & keep
        if cand >= ts:
            return cand
    if p is None:
        return 0
    cl, ol = R._bisect_right(lo)               # first reserved region above lo
    if (cl, ol) == (ch, oh):
        return 0                               # the top piece was all of [lo, hi)
    # Gaps below the regions after (cl, ol) up to p, descending.
    if (cl, ol) != p:
        gm = R._gm
        pc, po = p
        if cl == pc:
            if gm[cl] >= size:
                found = _scan_down(R, cl, ol + 1, po + 1, size, keep)
                if found:
                    return found
        else:
            if gm[pc] >= size:
                found = _scan_down(R, pc, 0, po + 1, size, keep)
                if found:
                    return found
            for c in _chunks_ge(gm, cl + 1, pc, size, True):
                found = _scan_down(R, c, 0, len(RB[c]), size, keep)
                if found:
                    return found
            if ol + 1 < len(RB[cl]) and gm[cl] >= size:
                found = _scan_down(R, cl, ol + 1, len(RB[cl]), size, keep)
                if found:
                    return found
    # Bottom piece [max(end below, lo), base of (cl, ol)).
    te = RB[cl][ol]
    ts = _end_of(R, R._prev(cl, ol), lo)
    if te - ts >= size:
        cand = (te - size) & keep
        if cand >= ts:
            return cand
    return 0

def lowest_fit(R: MemblockType, lo: int, hi: int, size: int, am1: int) -> int:
    """Lowest fit in ``[lo, hi)`` minus reserved: the bottom piece, the gaps between
    reserved regions (ascending), the top piece; 0 if none. Rounding up cannot wrap here
    (see :meth:`_find_range_bottom_up`)."""
    if not R.live:
        cand = ((lo - 1) | am1) + 1
        return cand if hi - cand >= size else 0
    RB, RS = R._cb, R._cs
    cl, ol = R._bisect_right(lo)               # first reserved region above lo
    ts = _end_of(R, R._prev(cl, ol), lo)
    last = ol == len(RB[cl])                   # no region above lo
    te = hi if last or RB[cl][ol] > hi else RB[cl][ol]
    if te - ts >= size:                        # bottom piece [ts, te)
        cand = ((ts - 1) | am1) + 1
        if te - cand >= size:
            return cand
    if last or RB[cl][ol] >= hi:
        return 0                               # the bottom piece was all of [lo, hi)
    ch, oh = R._bisect_left(hi)                # first reserved region at or above hi
    p = R._prev(ch, oh)                        # the last region below hi
    if p is None:                              # (a region lies above lo and below hi)
        raise InvariantError("memblock index: no reserved region below hi")
    # Gaps below the regions after (cl, ol) up to p, ascending.
    if (cl, ol) != p:
        gm = R._gm
        pc, po = p
        if cl == pc:
            if gm[cl] >= size:
                found = _scan_up(R, cl, ol + 1, po + 1, size, am1)
                if found:
                    return found
        else:
            if ol + 1 < len(RB[cl]) and gm[cl] >= size:
                found = _scan_up(R, cl, ol + 1, len(RB[cl]), size, am1)
                if found:
                    return found
            for c in _chunks_ge(gm, cl + 1, pc, size, False):
                found = _scan_up(R, c, 0, len(RB[c]), size, am1)
                if found:
                    return found
            if gm[pc] >= size:
                found = _scan_up(R, pc, 0, po + 1, size, am1)
                if found:
                    return found
    # Top piece [end of p, hi).
    ts = RB[p[0]][p[1]] + RS[p[0]][p[1]]
    if hi - ts >= size:
        cand = ((ts - 1) | am1) + 1
        if hi - cand >= size:
            return cand
    return 0

def _chunks_ge(gm: array, lo: int, hi: int, size: int, descending: bool) -> list[int]:
    """Chunks in ``[lo, hi)`` whose gap bound is at least ``size``, in search order."""
    if hi - lo <= _NUMPY_CHUNKS:
        r = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        return [c for c in r if gm[c] >= size]
    v = np.frombuffer(gm, np.uint64, hi - lo, lo << 3)   # a view: no resize while it lives
    if v.max() < size:
        return []
    hits = np.flatnonzero(v >= size).tolist()
    return [lo + h for h in (reversed(hits) if descending else hits)]

def _scan_down(R: MemblockType, c: int, a: int, b: int, size: int, keep: int) -> int:
    """Highest fit in the gaps below regions ``a .. b-1`` of chunk ``c`` (descending); 0 if
    none. A scan of the whole chunk that finds nothing tightens its gap bound."""
    B, S = R._cb[c], R._cs[c]
    best = 0
    o = b - 1
    te = B[o]
    while o > a or (o == a and o):
        pb = B[o - 1]
        ts = pb + S[o - 1]
        g = te - ts
        if g >= size:
            cand = (te - size) & keep
            if cand >= ts:
                return cand
        if g > best:
            best = g
        te = pb
        o -= 1
    if not a and c:                           # the gap below the chunk's first region
        ts = R._cb[c - 1][-1] + R._cs[c - 1][-1]
        g = te - ts
        if g >= size:
            cand = (te - size) & keep
            if cand >= ts:
                return cand
        if g > best:
            best = g
    if b == len(B) and (not a or (a == 1 and not c)):
        R._gm[c] = best
    return 0

def _scan_up(R: MemblockType, c: int, a: int, b: int, size: int, am1: int) -> int:
    """Lowest fit in the gaps below regions ``a .. b-1`` of chunk ``c`` (ascending); 0 if
    none. A scan of the whole chunk that finds nothing tightens its gap bound."""
    B, S = R._cb[c], R._cs[c]
    best = 0
    o = a
    if o:
        ts = B[o - 1] + S[o - 1]
    elif c:
        ts = R._cb[c - 1][-1] + R._cs[c - 1][-1]
    else:
        o = 1                                  # no gap below region 0
        ts = B[0] + S[0]
    while o < b:
        te = B[o]
        g = te - ts
        if g >= size:
            cand = ((ts - 1) | am1) + 1
            if te - cand >= size:
                return cand
        if g > best:
            best = g
        ts = te + S[o]
        o += 1
    if b == len(B) and (not a or (a == 1 and not c)):
        R._gm[c] = best
    return 0
