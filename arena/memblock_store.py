"""Region storage of memblock: the region arrays and the windows kernel operations work on.

Kernel counterpart: ``struct memblock_region`` and ``struct memblock_type`` (``memory``,
``reserved``, ``physmem``). The kernel keeps one flat array per type; here each type keeps its
regions in address order as chunks of at most 64 (the ``sortedcontainers`` layout), each chunk
four compact ``array.array`` columns (base, size, flags, nid), about 40 bytes per region in
all. ``max`` is a separate capacity number; the kernel's "stale slots above cnt" are not
modelled (they are not observable).

The narrow API :mod:`arena.memblock` uses:

* :meth:`MemblockType.window` opens the window of regions a range touches (one neighbour on each
  side: the kernel's merge window); the kernel's loops run on its columns ``B, S, F, N``
  (:meth:`Window.insert`, :meth:`Window.delete`, plain item writes) and :meth:`Window.commit`
  stores it back. Inside one chunk the window *is* that chunk (changes happen in place);
  otherwise it is a copy spliced back. O(log n) plus the regions touched.
* :meth:`MemblockType.containing`, :meth:`MemblockType.overlaps`, :meth:`MemblockType.first_base`,
  :meth:`MemblockType.last_end`, :meth:`MemblockType.last_below` /
  :meth:`MemblockType.first_ending_above` (walks down / up): lookups, O(log n).
* :meth:`MemblockType.columns` (flat copies for the kernel-order iterators), :meth:`MemblockType.lists`
  and :meth:`MemblockType.load` (whole-array rewrites: cap, trim).
* :meth:`MemblockType.check` reports the first broken storage invariant.

Invariants: no chunk is empty or longer than its limit, each chunk's key is its first base, and
each chunk's gap bound (``_gm``) is at least every gap that ends at one of its regions. The gap
bounds are what :mod:`arena.memblock_index` searches.
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, pairwise
from typing import Any, NamedTuple, overload

from arena.constants import FLAGS_MASK, MemblockFlags

__all__ = ["MemblockType", "Region", "RegionsView", "Window"]

# One flags object per possible value: building an IntFlag costs about a microsecond.
_FLAG_OBJ = [MemblockFlags(i) for i in range(FLAGS_MASK + 1)]


class Region(NamedTuple):
    """``struct memblock_region``: ``[base, base + size)`` with its ``flags`` and ``nid``.

    An immutable snapshot made on access; ``nid`` reads 0 on a kernel without NUMA.
    """

    base: int
    size: int
    flags: MemblockFlags
    nid: int

    @property
    def end(self) -> int:
        """``base + size`` (exclusive end)."""
        return self.base + self.size


class RegionsView(Sequence):
    """Read-only sequence over the first ``cnt`` regions of a :class:`MemblockType`.

    Items are :class:`Region` tuples built on access (O(log n) each; iteration O(1) each).
    """

    __slots__ = ("_t",)

    def __init__(self, t: MemblockType) -> None:
        self._t = t

    def __len__(self) -> int:
        return self._t.cnt

    @overload
    def __getitem__(self, i: int) -> Region: ...

    @overload
    def __getitem__(self, i: slice) -> list[Region]: ...

    def __getitem__(self, i: Any) -> Any:
        t = self._t
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(t.cnt))]
        i = operator.index(i)
        n = t.cnt
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{t.name} region index out of range (cnt {n})")
        if not t.live:  # the empty dummy entry of kernels <= 6.10
            return Region(0, 0, _FLAG_OBJ[0], t.dummy_nid)
        c, o = t._locate(i)
        return Region(t._cb[c][o], t._cs[c][o], _FLAG_OBJ[t._cf[c][o]], t._cn[c][o])

    def __iter__(self) -> Iterator[Region]:
        # By index, like the kernel's for_each_memblock_type(): the caller may change the array
        # between items (then the cached flat columns are rebuilt).
        t = self._t
        i = 0
        while True:
            if t.live:
                B, S, F, N = t.columns()
                if i >= len(B):
                    return
                yield Region(B[i], S[i], _FLAG_OBJ[F[i]], N[i])
            elif i or not t._dummy:
                return
            else:
                yield Region(0, 0, _FLAG_OBJ[0], t.dummy_nid)
            i += 1

    def __repr__(self) -> str:
        return f"RegionsView({list(self)!r})"


# Storage. A flat column pays one memmove per insert or delete, which at 100 000 regions costs
# about ten allocations at 100 regions. So each array is a list of chunks of at most _CHUNK_MAX
# regions (sortedcontainers' layout), each chunk four small array.array columns. Chunk length:
# a gap search scans a candidate chunk region by region in Python, while the per-chunk bounds are
# searched with numpy at a nearly flat cost; 64 (32 to 64 after splits) keeps a chunk scan short
# and the chunks few (3 100 at 100 000 regions). The numbers: bench/RESULTS.md, measurements.
_CHUNK_MAX = 64
_GAP_UNKNOWN = (1 << 64) - 1   # an upper bound of any gap


def _cuts(n: int, piece: int) -> list[int]:
    """Boundaries ``[0, ..., n]`` cutting ``n`` items into nearly equal runs of about
    ``piece`` (at least one run)."""
    runs = max(1, n // piece)
    return [i * n // runs for i in range(runs + 1)]


class MemblockType:
    """``struct memblock_type``: one region array (``memory``, ``reserved`` or ``physmem``).

    Attributes: ``name``, ``cnt`` (live regions), ``max`` (capacity; doubles on growth),
    ``total_size`` (bytes; the sum of sizes except for the trim quirk), ``regions`` (a read-only
    sequence of :class:`Region`). State the kernel logic of :mod:`arena.memblock` keeps on the
    array: ``live`` (regions stored: ``cnt`` without the dummy entry; read only),
    ``dummy_nid`` (the nid the dummy entry of kernels <= 6.10 reads), ``array_phys`` (where a
    doubled array lives; ``None`` for the static one), ``may_be_nonminimal`` (set by
    ``cap_memory_range``), ``total_excess`` (what ``trim_memory`` left in ``total_size`` beyond
    the sum of sizes) and ``unsorted`` (``trim_memory``'s wrap left the array out of order).

    Storage: the regions in address order, cut into chunks of at most ``_CHUNK_MAX`` (lists
    ``_cb``, ``_cs``, ``_cf``, ``_cn`` of ``array.array`` columns base / size / flags / nid; no
    chunk is empty), ``_mins`` (first base of each chunk, to bisect for the chunk) and ``_gm``
    (per chunk an upper bound of the longest gap that ends at one of its regions; the gap below
    region 0 is not counted). About 40 bytes per region in all (21 in the columns). Positions
    are ``(chunk, offset)`` pairs; the end position is ``(last chunk, its length)``.
    ``_base``, ``_size``, ``_flags`` and ``_nid`` are flat writable views (tests, debugging).
    """

    __slots__ = (
        "name", "max", "total_size", "_code", "_cb", "_cs", "_cf", "_cn", "_mins", "_gm",
        "live", "_flat", "_pos", "_cmax", "_dummy", "dummy_nid", "array_phys",
        "may_be_nonminimal", "total_excess", "unsorted",
    )

    def __init__(self, name: str, capacity: int, phys_typecode: str, dummy: bool) -> None:
        self.name = name
        self.max = capacity
        self.total_size = 0
        self._code = phys_typecode
        self._cb: list[array] = []
        self._cs: list[array] = []
        self._cf: list[array] = []
        self._cn: list[array] = []
        self._mins: list[int] = []
        self._gm = array("Q")
        self.live = 0
        self._flat: tuple[array, array, array, array] | None = None  # cache for the iterators
        self._pos: list[int] | None = None    # cache: index of each chunk's first region
        self._cmax = _CHUNK_MAX
        self._dummy = dummy        # kernels <= 6.10: an empty array reads cnt == 1
        self.dummy_nid = 0        # the static dummy has nid 0; one left by removal MAX_NUMNODES
        self.array_phys: int | None = None   # None: the static initial array
        self.may_be_nonminimal = False       # set by cap_memory_range
        self.total_excess = 0                # total_size - sum of sizes (mod 2**bits): trims
        self.unsorted = False                # trim_memory's round_up wrapped (kernel quirk)

    @property
    def cnt(self) -> int:
        """Number of regions (``type->cnt``); 1 for an empty array of a kernel <= 6.10."""
        n = self.live
        return n if n or not self._dummy else 1

    @property
    def regions(self) -> RegionsView:
        """The first ``cnt`` regions, as a read-only sequence of :class:`Region`."""
        return RegionsView(self)

    def __len__(self) -> int:
        """Live regions (``live``: ``cnt`` without the dummy entry of kernels <= 6.10)."""
        return self.live

    def __repr__(self) -> str:
        return (f"<MemblockType {self.name} cnt={self.cnt} max={self.max} "
                f"total_size={self.total_size:#x}>")

    # -- the API of arena.memblock --------------------------------------------------------------

    def window(self, base: int, end: int) -> Window:
        """Open the window of the regions ``[base, end)`` overlaps, with one neighbour on each
        side (the kernel's merge window); :meth:`Window.commit` stores it back. O(log n), plus
        O(k) when the window spans chunks."""
        if not self.live or self.unsorted:
            # Empty, or left unsorted by trim_memory: the kernel's loops walk the whole array
            # from index 0 (they stop at the first region at or above ``end`` in array order),
            # so the window is all of it and the loops run on it unchanged.
            return self.whole()
        # Most calls: the window lies inside one chunk.
        cb = self._cb
        c = bisect_right(self._mins, base) - 1 if len(cb) > 1 else 0
        if c < 0:
            c = 0
        B = cb[c]
        S = self._cs[c]
        o = bisect_right(B, base)
        if o and B[o - 1] + S[o - 1] > base:
            o -= 1                                   # the region holding base
        if (o or not c) and (c + 1 == len(cb) or bisect_left(B, end, o) < len(B)):
            return Window(self, c, 0, len(B), B, S, self._cf[c], self._cn[c], o, True)
        c, o = self._first_overlap(base)
        p = self._prev(c, o)
        if p is None:
            wc, wo, i0 = c, o, 0
        else:
            wc, wo, i0 = p[0], p[1], 1
        ec, eo = self._bisect_left(end)
        k = self._count(wc, wo, ec, eo)
        if eo < len(self._cb[ec]):
            k += 1          # the first region at or above end
        return Window.copy(self, wc, wo, k, i0)

    def whole(self) -> Window:
        """A window of every region (as lists; :meth:`Window.commit` stores it back). O(n)."""
        return Window.copy(self, 0, 0, self.live, 0)

    def containing(self, addr: int) -> tuple[int, int, int, int] | None:
        """``(base, size, flags, nid)`` of the region containing ``addr``, None if none: the
        lookup of ``memblock_search()``. O(log n). On an array trim_memory left unsorted this is
        the kernel's binary search probe by probe (it may find, or miss, what a sorted lookup
        would not)."""
        if self.unsorted:
            B, S, F, N = self.columns()
            left, right = 0, len(B)
            while left < right:
                mid = (left + right) >> 1
                if addr < B[mid]:
                    right = mid
                elif addr >= B[mid] + S[mid]:
                    left = mid + 1
                else:
                    return B[mid], S[mid], F[mid], N[mid]
            return None
        p = self._prev(*self._bisect_right(addr))
        if p is None:
            return None
        c, o = p
        b, s = self._cb[c][o], self._cs[c][o]
        return (b, s, self._cf[c][o], self._cn[c][o]) if addr < b + s else None

    def overlaps(self, base: int, end: int) -> bool:
        """Some region intersects ``[base, end)`` (``end == base``: ``base`` lies strictly
        inside a region). O(log n); on an unsorted array the kernel's loop over every region."""
        if self.unsorted:
            B, S = self.columns()[:2]
            return any(base < b + s and b < end for b, s in zip(B, S, strict=True))
        # Regions starting below ``end``; the last of them ends highest (sorted, disjoint).
        p = self._prev(*self._bisect_left(end))
        return p is not None and self._cb[p[0]][p[1]] + self._cs[p[0]][p[1]] > base

    def first_base(self) -> int:
        """Base of the first region (0 if none)."""
        return self._cb[0][0] if self.live else 0

    def last_end(self) -> int:
        """End of the last region (0 if none)."""
        return self._cb[-1][-1] + self._cs[-1][-1] if self.live else 0

    def last_below(self, addr: int) -> tuple[int, int, int, int] | None:
        """``(base, end, flags, nid)`` of the last region starting below ``addr``, None if none
        (sorted arrays). Walking down: ``last_below(end)``, then ``last_below(base)`` of each
        region. O(log n)."""
        c = bisect_left(self._mins, addr) - 1
        if c < 0:
            return None
        B = self._cb[c]
        o = bisect_left(B, addr) - 1            # >= 0: the chunk's first base is below addr
        b = B[o]
        return b, b + self._cs[c][o], self._cf[c][o], self._cn[c][o]

    def first_ending_above(self, addr: int) -> tuple[int, int, int, int] | None:
        """``(base, end, flags, nid)`` of the first region ending above ``addr``, None if none
        (sorted arrays). Walking up: ``first_ending_above(start)``, then
        ``first_ending_above(end)`` of each region. O(log n)."""
        cb = self._cb
        if not cb:
            return None
        c = bisect_right(self._mins, addr) - 1
        if c < 0:
            c, o = 0, 0                          # every region starts above addr
        else:
            B = cb[c]
            o = bisect_right(B, addr)            # >= 1: the chunk's first base is <= addr
            b = B[o - 1]
            e = b + self._cs[c][o - 1]
            if e > addr:                         # the region holding addr
                return b, e, self._cf[c][o - 1], self._cn[c][o - 1]
            if o == len(B):
                c += 1
                o = 0
                if c == len(cb):
                    return None
        b = cb[c][o]
        return b, b + self._cs[c][o], self._cf[c][o], self._cn[c][o]

    def kernel_columns(self) -> tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[int]]:
        """The four columns as the kernel's loops see them: :meth:`columns`, or the empty dummy
        entry of kernels <= 6.10 when the array is empty."""
        if not self.live and self._dummy:
            return (0,), (0,), (0,), (self.dummy_nid,)
        return self.columns()

    def lists(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """Every region as four lists (base, size, flags, nid), for whole-array rewrites. O(n)."""
        return self._extract(0, 0, self.live) if self.live else ([], [], [], [])

    def restore(self, old: MemblockType) -> None:
        """Take over every field of ``old`` (a deep copy made earlier): undo in place, so that
        holders of this object see the old state."""
        for name in MemblockType.__slots__:
            setattr(self, name, getattr(old, name))

    def check(self, mask: int, numa: bool, may_be_unsorted: bool) -> str | None:
        """The first broken invariant of this array (``None`` if all hold): sorted, disjoint,
        minimal regions of size > 0 below ``mask`` (``PHYS_ADDR_MAX``), nid 0 without ``numa``,
        known flags, the total, and the storage's own (chunk lengths, keys, gap bounds).
        Only ``may_be_unsorted`` (memory) may be left unsorted by trim_memory. O(n)."""
        t = self
        cb, cs, cf, cn, gm = t._cb, t._cs, t._cf, t._cn, t._gm
        if not len(cb) == len(cs) == len(cf) == len(cn) == len(t._mins) == len(gm):
            return f"{t.name}: chunk lists of different lengths"
        if sum(map(len, cb)) != t.live:
            return f"{t.name}: {t.live} regions counted, {sum(map(len, cb))} stored"
        if t.cnt > t.max:
            return f"{t.name}: cnt {t.cnt} > max {t.max}"
        unsorted = t.unsorted
        if unsorted and not may_be_unsorted:
            return f"{t.name} is marked unsorted (only trim_memory, on memory, does that)"
        total = 0
        prev_end = -1
        prev_f = prev_n = None
        i = 0
        for c, (B, S, F, N) in enumerate(zip(cb, cs, cf, cn, strict=True)):
            if not 0 < len(B) == len(S) == len(F) == len(N) <= t._cmax:
                return f"{t.name}: chunk {c} has {len(B)} regions or columns of unequal length"
            if t._mins[c] != B[0]:
                return f"{t.name}: chunk {c} starts at {B[0]:#x}, its key says {t._mins[c]:#x}"
            for b, s, f, n in zip(B, S, F, N, strict=True):
                if not s:
                    return f"{t.name}[{i}] has size 0"
                if b + s > mask:
                    return f"{t.name}[{i}] ends past PHYS_ADDR_MAX"
                if unsorted:
                    pass          # the kernel's array after a wrapping trim_memory: no order
                elif b < prev_end:
                    return f"{t.name}[{i}] overlaps or is out of order"
                elif i and b - prev_end > gm[c]:
                    return f"{t.name}[{i}]: gap {b - prev_end:#x} above the bound of chunk {c}"
                elif (b == prev_end and f == prev_f and n == prev_n
                        and not t.may_be_nonminimal):
                    return f"{t.name}[{i - 1}] and [{i}] should have been merged"
                if not numa and n:
                    return f"{t.name}[{i}] has nid {n} without NUMA"
                if f & ~FLAGS_MASK:
                    return f"{t.name}[{i}] has unknown flags"
                total += s
                prev_end = b + s
                prev_f = f
                prev_n = n
                i += 1
        if (total + t.total_excess) & mask != t.total_size:
            extra = (f" + {t.total_excess:#x} left by trim_memory" if t.total_excess else "")
            return f"{t.name}.total_size {t.total_size:#x} != sum of sizes {total:#x}{extra}"
        return None

    # -- flat views (debugging and tests; O(log n) per item) --------------------------------

    @property
    def _base(self) -> _Column:
        return _Column(self, 0)

    @property
    def _size(self) -> _Column:
        return _Column(self, 1)

    @property
    def _flags(self) -> _Column:
        return _Column(self, 2)

    @property
    def _nid(self) -> _Column:
        return _Column(self, 3)

    # -- positions ----------------------------------------------------------------------------

    def _bisect_left(self, addr: int) -> tuple[int, int]:
        """Position of the first region with ``base >= addr`` (the end position if none).
        O(log n)."""
        return self._position(addr, bisect_left)

    def _bisect_right(self, addr: int) -> tuple[int, int]:
        """Position of the first region with ``base > addr`` (the end position if none)."""
        return self._position(addr, bisect_right)

    def _position(self, addr: int, bisect: Callable[[Sequence[int], int], int]) -> tuple[int, int]:
        """The position ``bisect`` (``bisect_left`` or ``bisect_right``) gives ``addr`` among
        the bases: the chunk by its first base, then the offset in it. O(log n)."""
        mins = self._mins
        c = bisect(mins, addr) - 1
        if c < 0:
            return 0, 0
        B = self._cb[c]
        o = bisect(B, addr)
        if o == len(B) and c + 1 < len(mins):
            return c + 1, 0
        return c, o

    def _prev(self, c: int, o: int) -> tuple[int, int] | None:
        """The position before ``(c, o)``, or None at the start."""
        if o:
            return c, o - 1
        if c:
            return c - 1, len(self._cb[c - 1]) - 1
        return None

    def _first_overlap(self, base: int) -> tuple[int, int]:
        """Position of the first region whose end is above ``base``.

        The kernel walks from index 0 and skips regions with ``end <= base``; on a sorted,
        non-overlapping array a bisection finds the same region. O(log n).
        """
        c, o = self._bisect_right(base)
        p = self._prev(c, o)
        if p is not None and self._cb[p[0]][p[1]] + self._cs[p[0]][p[1]] > base:
            return p
        return c, o

    def _count(self, c0: int, o0: int, c1: int, o1: int) -> int:
        """Regions from position ``(c0, o0)`` up to (not including) ``(c1, o1)``."""
        if c0 == c1:
            return o1 - o0
        cb = self._cb
        return len(cb[c0]) - o0 + sum(len(cb[j]) for j in range(c0 + 1, c1)) + o1

    def _locate(self, i: int) -> tuple[int, int]:
        """Position of region index ``i`` (``0 <= i <= n``). O(log n) after an O(chunks)
        rebuild of the cached chunk starts when the array changed."""
        pos = self._pos
        if pos is None:
            pos = self._pos = [0, *accumulate(map(len, self._cb))]
        c = bisect_right(pos, i) - 1
        if c >= len(self._cb):
            c = len(self._cb) - 1
        return c, i - pos[c]

    def _index(self, c: int, o: int) -> int:
        """Region index of position ``(c, o)`` (error messages)."""
        return sum(len(b) for b in self._cb[:c]) + o

    def columns(self) -> tuple[array, array, array, array]:
        """Flat copies of the four columns, cached until the next change (the kernel-order
        iterators index them; O(n) to build)."""
        flat = self._flat
        if flat is None:
            code = self._code
            B, S, F, N = array(code), array(code), array("B"), array("i")
            for b, s, f, n in zip(self._cb, self._cs, self._cf, self._cn, strict=True):
                B.extend(b)
                S.extend(s)
                F.extend(f)
                N.extend(n)
            flat = self._flat = (B, S, F, N)
        return flat

    # -- changes ------------------------------------------------------------------------------

    def _extract(self, c: int, o: int, k: int) -> tuple[list, list, list, list]:
        """The ``k`` regions from position ``(c, o)`` as four lists."""
        cb = self._cb
        e = o + k
        if e <= len(cb[c]):
            return (cb[c][o:e].tolist(), self._cs[c][o:e].tolist(), self._cf[c][o:e].tolist(),
                    self._cn[c][o:e].tolist())
        B: list[int] = []
        S: list[int] = []
        F: list[int] = []
        N: list[int] = []
        while k:
            take = min(k, len(cb[c]) - o)
            e = o + take
            B += cb[c][o:e]
            S += self._cs[c][o:e]
            F += self._cf[c][o:e]
            N += self._cn[c][o:e]
            k -= take
            c += 1
            o = 0
        return B, S, F, N

    def _splice(self, c: int, o: int, k: int, nb: list, ns: list, nf: list, nn: list) -> None:
        """Replace the ``k`` regions from position ``(c, o)`` by ``nb/ns/nf/nn`` (which keep the
        array sorted): the commit of a window that spans chunks. Keeps the chunks at most
        ``_cmax`` long and the gap bounds valid. O(k + m + chunk length)."""
        self._flat = self._pos = None
        m = len(nb)
        self.live += m - k
        cb = self._cb
        if not cb:
            self.load(nb, ns, nf, nn)
            return
        cs, cf, cn = self._cs, self._cf, self._cn
        B, S, F, N = cb[c], cs[c], cf[c], cn[c]
        split_next = False
        if o + k <= len(B):
            code = self._code
            B[o:o + k] = array(code, nb)
            S[o:o + k] = array(code, ns)
            F[o:o + k] = array("B", nf)
            N[o:o + k] = array("i", nn)
        else:
            # The window runs past chunk c: cut its tail, drop whole chunks, cut the head of
            # the next one; the new regions go to the end of chunk c.
            rem = k - (len(B) - o)
            del B[o:], S[o:], F[o:], N[o:]
            j = c + 1
            while rem and rem >= len(cb[j]):
                rem -= len(cb[j])
                self._drop_chunk(j)
            if rem:
                del cb[j][:rem], cs[j][:rem], cf[j][:rem], cn[j][:rem]
                self._mins[j] = cb[j][0]
                split_next = True
            B.extend(nb)
            S.extend(ns)
            F.extend(nf)
            N.extend(nn)
        # Gap bounds: the new regions' gaps, and the gap above them, may be longer than before.
        gm = self._gm
        if o:
            pe = B[o - 1] + S[o - 1]
        elif c:
            pe = cb[c - 1][-1] + cs[c - 1][-1]
        else:
            pe = -1
        best = gm[c]
        for i in range(m):
            b = nb[i]
            if pe >= 0 and b - pe > best:
                best = b - pe
            pe = b + ns[i]
        gm[c] = best
        if pe >= 0:
            q = o + m
            if q < len(B):
                if B[q] - pe > best:
                    gm[c] = B[q] - pe
            elif c + 1 < len(cb) and cb[c + 1][0] - pe > gm[c + 1]:
                gm[c + 1] = cb[c + 1][0] - pe
        if B:
            self._mins[c] = B[0]
        if split_next:
            self._rebalance(c + 1)
        self._rebalance(c)

    def _commit(self, c: int, B: array, k: int, grown: int) -> None:
        """Chunk ``c`` (base column ``B``) was changed in place (it had ``k`` regions): fix
        the count, its key, the gap bound of the region ``grown`` (-1: none) and the chunk's
        length. O(1) unless the chunk splits or merges."""
        n = len(B)
        if n != k:
            self.live += n - k
            self._pos = None
        self._flat = None
        if grown >= 0 and (grown < n or c + 1 < len(self._cb)):
            self._raise_gap(c, grown)
        if n:
            self._mins[c] = B[0]
        if not n or n > self._cmax or (n < self._cmax >> 2 and len(self._cb) > 1):
            self._rebalance(c)

    def _raise_gap(self, c: int, o: int) -> None:
        """Make the gap bounds cover the gap below position ``(c, o)`` (``o`` may be the
        chunk's length: the next chunk's first region), after it may have become longer."""
        cb, cs = self._cb, self._cs
        B = cb[c]
        if o == len(B):
            if c + 1 == len(cb):
                return
            c += 1
            B = cb[c]
            o = 0
            if cb[c - 1]:
                ts = cb[c - 1][-1] + cs[c - 1][-1]
            elif c > 1:
                ts = cb[c - 2][-1] + cs[c - 2][-1]
            else:
                return
        elif o:
            ts = B[o - 1] + cs[c][o - 1]
        elif c:
            ts = cb[c - 1][-1] + cs[c - 1][-1]
        else:
            return                                 # region 0: its gap is not counted
        if B[o] - ts > self._gm[c]:
            self._gm[c] = B[o] - ts

    def _drop_chunk(self, j: int) -> None:
        del self._cb[j], self._cs[j], self._cf[j], self._cn[j], self._mins[j], self._gm[j]
        self._pos = None

    def _rebalance(self, c: int) -> None:
        """Drop chunk ``c`` if empty, split it if longer than ``_cmax``, merge it with a
        neighbour if shorter than a quarter of that."""
        cb = self._cb
        n = len(cb[c])
        cmax = self._cmax
        self._pos = None
        if not n:
            self._drop_chunk(c)
        elif n > cmax:
            cuts = _cuts(n, cmax // 2)
            for col in (cb, self._cs, self._cf, self._cn):
                X = col[c]
                col[c + 1:c + 1] = [X[a:b] for a, b in pairwise(cuts[1:])]
                del X[cuts[1]:]
            new = len(cuts) - 2
            self._mins[c + 1:c + 1] = [cb[j][0] for j in range(c + 1, c + 1 + new)]
            self._gm[c + 1:c + 1] = array("Q", [self._gm[c]] * new)
        elif n < cmax // 4 and len(cb) > 1:
            lo = c if c + 1 < len(cb) else c - 1
            gm = self._gm
            for col in (cb, self._cs, self._cf, self._cn):
                col[lo].extend(col[lo + 1])
            if gm[lo + 1] > gm[lo]:
                gm[lo] = gm[lo + 1]
            self._mins[lo] = cb[lo][0]
            self._drop_chunk(lo + 1)
            if len(cb[lo]) > cmax:
                self._rebalance(lo)

    def load(self, B: list, S: list, F: list, N: list) -> None:
        """Replace everything by the given regions (sorted); exact gap bounds. O(n)."""
        code = self._code
        n = len(B)
        cuts = _cuts(n, self._cmax // 2) if n else [0]
        spans = list(pairwise(cuts))
        self._cb = [array(code, B[a:b]) for a, b in spans]
        self._cs = [array(code, S[a:b]) for a, b in spans]
        self._cf = [array("B", F[a:b]) for a, b in spans]
        self._cn = [array("i", N[a:b]) for a, b in spans]
        self._mins = [b[0] for b in self._cb]
        # (max with 0: trim_memory's wrap near the top of the address space can leave the
        # array unsorted, as in the kernel)
        self._gm = array("Q", [max([0, *(B[j] - B[j - 1] - S[j - 1]
                                         for j in range(max(a, 1), b))]) for a, b in spans])
        self.live = n
        self._flat = self._pos = None
        if self.unsorted:
            self._settle(B, S, F, N)

    def _settle(self, B: list, S: list, F: list, N: list) -> None:
        """An unsorted array (trim_memory's wrap) whose regions are in order again, without
        overlaps, goes back to the sorted lookups; the kernel did not merge while it was
        unsorted, so touching equal neighbours may remain (then it is marked non-minimal)."""
        if any(B[i] + S[i] > B[i + 1] for i in range(len(B) - 1)):
            return
        self.unsorted = False
        if any(B[i] + S[i] == B[i + 1] and F[i] == F[i + 1] and N[i] == N[i + 1]
               for i in range(len(B) - 1)):
            self.may_be_nonminimal = True


class _Column(Sequence):
    """One column of a :class:`MemblockType` as a flat, writable sequence (tests, debugging).

    O(log n) per item. A write bypasses every invariant, as writing the kernel's array would
    (``check()`` then reports it); the gap bounds of the touched chunks become unknown.
    """

    __slots__ = ("_t", "_k")

    def __init__(self, t: MemblockType, k: int) -> None:
        self._t = t
        self._k = k

    def _col(self, c: int) -> array:
        t = self._t
        return (t._cb, t._cs, t._cf, t._cn)[self._k][c]

    @property
    def itemsize(self) -> int:
        """Bytes per item of the underlying ``array.array``."""
        return array((self._t._code, self._t._code, "B", "i")[self._k]).itemsize

    def __len__(self) -> int:
        return self._t.live

    def _pos(self, i: Any) -> tuple[int, int]:
        i = operator.index(i)
        n = self._t.live
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("column index out of range")
        return self._t._locate(i)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        c, o = self._pos(i)
        return self._col(c)[o]

    def __setitem__(self, i: int, v: int) -> None:
        t = self._t
        c, o = self._pos(i)
        self._col(c)[o] = v
        t._flat = None
        t._mins[c] = t._cb[c][0]
        for j in (c, c + 1):
            if j < len(t._gm):
                t._gm[j] = _GAP_UNKNOWN


class Window:
    """The regions one kernel operation works on, as four index-able columns ``B, S, F, N``
    (changed by the operation: item writes, :meth:`insert`, :meth:`delete`); :meth:`commit`
    stores them back into the array.

    Usually (``chunk`` true) the columns are one chunk's own arrays: the window lies inside
    that chunk, so the kernel's loops run on them directly, with chunk offsets as indices.
    Otherwise they are lists copied out of the ``k`` regions from position ``(c, o)``, spliced
    back by :meth:`commit`. ``i0``: index of the first region the operation's range overlaps
    (or follows); ``k``: the column length before the operation.
    """

    __slots__ = ("t", "c", "o", "k", "B", "S", "F", "N", "i0", "chunk")

    def __init__(self, t: MemblockType, c: int, o: int, k: int, B: Any, S: Any, F: Any, N: Any,
                 i0: int, chunk: bool) -> None:
        self.t = t
        self.c = c
        self.o = o
        self.k = k
        self.B = B
        self.S = S
        self.F = F
        self.N = N
        self.i0 = i0
        self.chunk = chunk

    @classmethod
    def copy(cls, t: MemblockType, c: int, o: int, k: int, i0: int) -> Window:
        """A list window of the ``k`` regions from position ``(c, o)``."""
        return cls(t, c, o, k, *(t._extract(c, o, k) if k else ([], [], [], [])), i0, False)

    def count(self) -> int:
        """Regions the array will hold once this window is committed."""
        return self.t.live + len(self.B) - self.k

    def index(self, i: int) -> int:
        """Array index of window index ``i`` (messages)."""
        return self.t._index(self.c, self.o) + i

    def insert(self, idx: int, base: int, size: int, nid: int, flags: int) -> None:
        """Insert a region at window index ``idx`` (the caller keeps the order)."""
        B = self.B
        n = len(B)
        B.insert(idx, base)
        self.S.insert(idx, size)
        self.F.insert(idx, flags)
        self.N.insert(idx, nid)
        if self.chunk and (not idx or idx == n):
            # A new first or last region brings an uncounted end gap into the bounds (inside
            # the array an insert only shortens gaps).
            t = self.t
            c = self.c
            if not idx and not c:
                t._raise_gap(0, 1)
            elif idx == n and c == len(t._cb) - 1:
                t._raise_gap(c, idx)

    def delete(self, s: int, e: int) -> None:
        """Drop the regions at window indices ``[s, e)``."""
        del self.B[s:e], self.S[s:e], self.F[s:e], self.N[s:e]

    def commit(self, grown: int = -1) -> None:
        """Store the columns back. ``grown``: window index of the region whose gap below may
        have become longer (after a removal), -1 if none."""
        t = self.t
        if self.chunk:
            t._commit(self.c, self.B, self.k, grown)
        elif t.unsorted:             # a whole-array window (see MemblockType.window)
            t.load(self.B, self.S, self.F, self.N)
        else:
            t._splice(self.c, self.o, self.k, self.B, self.S, self.F, self.N)
