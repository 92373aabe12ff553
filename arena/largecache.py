"""Page-multiple size classes above the kmalloc sizes, each with a free list of blocks.

Kernel counterpart: none in memblock; the model is jemalloc's "large" size classes and its
dirty-page decay. A request above :data:`arena.slab.KMALLOC_MAX_SIZE` is rounded up to a
*large class*: whole pages, four classes per doubling (5, 6, 7, 8 pages, then 10, 12, 14, 16,
then 20, 24, ...), so at most a quarter of a block is padding. The first request of a class
takes a fresh block from the page source (memblock, or the buddy allocator after the
hand-over) with the page source's own placement rules; freeing it puts the block on its
class's free list (per node), and the next request of the class pops it: the steady state
never reaches the page source.

Retention is bounded: the bytes on the free lists (*retained* bytes) never exceed a limit
(:attr:`LargeCaches.limit`; the oldest blocks go back first), and a block that stayed unused
for :attr:`LargeCaches.decay` seconds goes back at the next operation of any large class
(jemalloc's decay, driven by allocation activity: an idle program keeps its blocks until
:meth:`LargeCaches.release` is called). Going back means: the block is returned to the page
source and its pages to the operating system.

Not thread-safe: the arena serialises every call with its lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from arena.unit import FREE, Unit

__all__ = ["Block", "LargeCache", "LargeCaches", "large_class_pages"]


def large_class_pages(pages: int) -> int:
    """Pages of the large class holding ``pages`` pages: up to 4 pages exact, then four
    classes per power of two (padding under 25%). O(1)."""
    if pages <= 4:
        return max(pages, 1)
    step = 1 << ((pages - 1).bit_length() - 3)
    return (pages + step - 1) & -step


class Block(Unit):
    """One large block: a :class:`arena.unit.Unit` whose ``home`` is its class's free list on
    its node. Adds ``order`` (the buddy order it came with, -1 for a memblock block),
    ``nbytes`` (the bytes taken from the page source: the class size, or the whole buddy
    block) and ``freed`` (``time.monotonic()`` when it was last put on the free list)."""

    __slots__ = ("order", "nbytes", "freed")

    def __init__(self, phys: int, boff: int, csize: int, nid: int, home: list[Any],
                 order: int, nbytes: int) -> None:
        super().__init__(phys, boff, csize, nid, home)
        self.order = order
        self.nbytes = nbytes
        self.freed = 0.0

    def __repr__(self) -> str:
        return (f"<Block [{self.phys:#x}+{self.csize:#x}] node {self.nid} "
                f"{'free' if self.state == FREE else f'in use ({self.size} B)'}>")


class LargeCache:
    """The free blocks of one large class on one node (``free``, newest last). ``size`` is
    the class size in bytes; ``zeros`` is ``None`` (a reused block is cleared with
    ``ndarray.fill``, which is a memset); ``large`` is True (the arena's hot path reads the
    same attributes from small and large caches); ``nalloc`` counts the blocks of the class
    and node handed out, ever."""

    __slots__ = ("size", "nid", "free", "zeros", "large", "nalloc")

    def __init__(self, size: int, nid: int) -> None:
        self.size = size
        self.nid = nid
        self.free: list[Block] = []
        self.zeros = None
        self.large = True
        self.nalloc = 0

    def __repr__(self) -> str:
        return f"<LargeCache {self.size} B node {self.nid}, {len(self.free)} free>"


class LargeCaches:
    """Every large class's free lists, with the retention limit and the decay.

    ``LargeCaches(nids, page_size, limit=..., decay=...)``: ``limit`` bytes retained at most,
    ``decay`` seconds unused before a block goes back (``0`` = at the next operation,
    ``None`` = never by age). ``put_block(block)`` (passed to the calls that give blocks
    back) returns a block to the page source and its pages to the OS.
    """

    def __init__(self, nids: list[int], page_size: int, *, limit: int,
                 decay: float | None) -> None:
        self.nids = list(nids)
        self.page_size = page_size
        self.limit = limit
        self.decay = decay
        #: (class size, nid) -> cache
        self.caches: dict[tuple[int, int], LargeCache] = {}
        #: class size -> the cache any-node requests try first
        self.targets: dict[int, LargeCache] = {}
        self.retained = 0
        self._next_decay = 0.0

    def class_size(self, nbytes: int) -> int:
        """Bytes of the class serving ``nbytes`` (> the largest kmalloc size). O(1)."""
        ps = self.page_size
        return large_class_pages(-(-nbytes // ps)) * ps

    def cache(self, size: int, nid: int) -> LargeCache:
        """The cache of class ``size`` on node ``nid`` (made on first use)."""
        cache = self.caches.get((size, nid))
        if cache is None:
            cache = self.caches[(size, nid)] = LargeCache(size, nid)
        return cache

    def target(self, size: int) -> LargeCache:
        """The cache any-node requests of class ``size`` pop from."""
        cache = self.targets.get(size)
        if cache is None:
            cache = self.targets[size] = self.cache(size, self.nids[-1])
        return cache

    def take(self, size: int, nid: int, strict: bool, align: int) -> Block | None:
        """A free block of class ``size`` whose address is a multiple of ``align``: from node
        ``nid`` (``-1`` = any node, the target first), then from other nodes unless
        ``strict``; ``None`` if no list has one. O(nodes + blocks passed over for alignment)."""
        first = self.target(size) if nid < 0 else self.cache(size, nid)
        order = [first] if strict else [first] + [
            c for n in self.nids if (c := self.caches.get((size, n))) is not None
            and c is not first]
        for cache in order:
            free = cache.free
            for i in range(len(free) - 1, -1, -1):
                if not free[i].phys % align:
                    block = free.pop(i)
                    self.retained -= block.csize
                    return block
        return None

    def give(self, block: Block, put_block: Callable[[Block], None]) -> None:
        """Put a block on its free list (newest last), then keep the limit and the decay.
        O(1) amortised."""
        block.freed = now = time.monotonic()
        block.home.append(block)  # type: ignore[union-attr]  # a block always has a home
        self.retained += block.csize
        if self.retained > self.limit:
            self._shed(self.retained - self.limit, put_block)
        if self.decay is not None and now >= self._next_decay:
            self.tick(put_block, now)

    def tick(self, put_block: Callable[[Block], None], now: float | None = None) -> int:
        """Give back every block unused for :attr:`decay` seconds; returns their bytes.
        Runs at most four times per decay period unless called directly. O(caches + blocks
        given back)."""
        if self.decay is None:
            return 0
        now = time.monotonic() if now is None else now
        self._next_decay = now + self.decay / 4
        cutoff = now - self.decay
        total = 0
        for cache in self.caches.values():
            free = cache.free
            old = 0
            while old < len(free) and free[old].freed <= cutoff:
                old += 1
            if old:
                total += self._drop(free[:old], put_block)
                del free[:old]
        return total

    def _shed(self, nbytes: int, put_block: Callable[[Block], None]) -> None:
        """Give back the oldest free blocks, at least ``nbytes`` bytes of them."""
        blocks = sorted((b for c in self.caches.values() for b in c.free),
                        key=lambda b: b.freed)
        out: list[Block] = []
        for b in blocks:
            if nbytes <= 0:
                break
            out.append(b)
            nbytes -= b.csize
        for b in out:
            b.home.remove(b)  # type: ignore[union-attr]
        self._drop(out, put_block)

    def _drop(self, blocks: list[Block], put_block: Callable[[Block], None]) -> int:
        total = 0
        for b in blocks:
            self.retained -= b.csize
            total += b.csize
            put_block(b)
        return total

    def release(self, put_block: Callable[[Block], None]) -> int:
        """Give every free block back; returns their bytes. O(blocks)."""
        total = 0
        for cache in self.caches.values():
            total += self._drop(cache.free, put_block)
            cache.free.clear()
        return total

    def free_blocks(self) -> Iterator[Block]:
        """Every block on a free list. O(blocks)."""
        for cache in self.caches.values():
            yield from cache.free

    def problem(self) -> str | None:
        """The first broken invariant in words, or ``None``: every listed block is free, on
        its own class and node's list once, and :attr:`retained` is their sum. O(blocks)."""
        seen: set[int] = set()
        total = 0
        for (size, nid), cache in self.caches.items():
            for b in cache.free:
                if b.state != FREE or b.home is not cache.free or b.nid != nid or \
                        id(b) in seen or b.csize < size:
                    return f"{b!r} is not a free block of {cache!r} (or listed twice)"
                seen.add(id(b))
                total += b.csize
        if total != self.retained:
            return f"retained bytes {self.retained} differ from the listed blocks' {total}"
        return None
