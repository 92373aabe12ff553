"""Family 2: large zeroed allocations (1 MiB .. 1 GiB) of fresh and of reused memory, with the
RSS they add, against ``np.zeros``.

* **fresh**: memory never touched (``Arena.release()`` gives every free page back before each
  sample, untimed), so the zeroed allocation need not write anything.
* **reused**: the block was written and freed before; the zeroed allocation must clear it
  (a memset of the whole block, the pages being resident already). This is the steady state of
  an allocate/free loop, timed with ``timeit`` like family 1.
* ``np.zeros`` + release: large sizes come from ``calloc`` (fresh ``mmap`` pages, zero by
  construction, unmapped again on release), so it has no "reused" case; the memset floor
  (``ndarray.fill(0)`` of a resident buffer) is what clearing reused memory costs at the least.

Each row times one allocation and its free (``arena.free(arena.alloc(n))``; ``np.zeros(n)``
dropped at once). "RSS added" is the process's resident set (``psutil``) right after the
allocation minus right before it, the allocation still alive. The zeroed-allocation target
compares fresh 1 GiB with fresh 4 KiB (both never touched, through the default ``Arena``; the
4 KiB one takes a new slab each time) and shows the 4 KiB allocate/free loop beside it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import psutil

from arena.arena import Arena
from bench.common import (
    Config,
    FamilyResult,
    Series,
    Stat,
    Table,
    Target,
    family_main,
    fmt_bytes,
    fmt_ratio,
    fmt_time,
    measure,
    measure_each,
    progress,
)

__all__ = ["run"]

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
FULL_SIZES = (4 * KIB, 1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB, 1 * GIB)
QUICK_SIZES = (4 * KIB, 1 * MIB, 16 * MIB, 256 * MIB, 1 * GIB)
ARENA_SIZE = 2 * GIB

_proc = psutil.Process()


def _rss() -> int:
    return int(_proc.memory_info().rss)


def _rss_added(make: Callable[[], Any], drop: Callable[[Any], None],
               setup: Callable[[], Any] | None = None) -> int:
    """Resident bytes added by ``make()`` while its result is alive (median of three)."""
    out = []
    for _ in range(3):
        if setup is not None:
            setup()
        gc.collect()
        before = _rss()
        obj = make()
        out.append(_rss() - before)
        drop(obj)
        del obj
    return sorted(out)[1]


def _arena_rows(arena: Arena, n: int, cfg: Config) -> dict[str, tuple[Stat, int]]:
    alloc, free = arena.alloc, arena.free
    rows: dict[str, tuple[Stat, int]] = {}
    # Fresh: every free page released (untimed) before each sample.
    fresh = measure_each(lambda: free(alloc(n)), cfg, setup=arena.release)
    rows["fresh"] = (fresh, _rss_added(lambda: alloc(n), free, setup=arena.release))
    # Reused: write the block once, then every zeroed allocation must clear it.
    v = alloc(n, zero=False)
    v.fill(1)
    free(v)
    del v
    reused = measure(lambda: free(alloc(n)), cfg)
    rows["reused"] = (reused, _rss_added(lambda: alloc(n), free))
    arena.release()
    return rows


def run(cfg: Config) -> FamilyResult:
    """Family 2: large zeroed allocations, fresh and reused, with the RSS they add."""
    t_start = time.perf_counter()
    res = FamilyResult(
        "large", "2. Large zeroed allocations (1 MiB .. 1 GiB)",
        f"An `Arena({ARENA_SIZE >> 30} GiB)` (mapped `MAP_NORESERVE`, so untouched pages cost "
        "no RAM). *Fresh*: every free page is given back (`Arena.release()`, untimed) before "
        "each sample, so the memory was never touched (4 KiB: a new slab each time); "
        "*reused*: the block was written and freed before, so zeroing means a memset (the "
        "steady state of an allocate/free loop). `np.zeros` is dropped at once; the memset "
        "floor is `ndarray.fill(0)` of a resident buffer. One allocation + free per call; "
        "RSS added is measured with the allocation alive.")
    sizes = QUICK_SIZES if cfg.quick else FULL_SIZES
    data: dict[int, dict[str, tuple[Stat, int]]] = {}
    with Arena(ARENA_SIZE) as arena:
        for n in sizes:
            progress(f"  large: {fmt_bytes(n)}")
            rows = _arena_rows(arena, n, cfg)
            zeros = partial(np.zeros, n, np.uint8)
            rows["np.zeros"] = (measure(zeros, cfg), _rss_added(zeros, lambda _a: None))
            buf = np.ones(n, np.uint8)
            floor = measure(partial(buf.fill, 0), cfg)
            rows["memset"] = (floor, 0)
            del buf
            gc.collect()
            data[n] = rows
    table = Table("Time per allocation + free (median, IQR) and RSS added",
                  ["size", "Arena, fresh", "IQR", "RSS added", "Arena, reused", "IQR",
                   "RSS added", "`np.zeros`", "RSS added", "memset floor",
                   "fresh / `np.zeros`"])
    for n, rows in data.items():
        f, fr = rows["fresh"]
        r, rr = rows["reused"]
        z, zr = rows["np.zeros"]
        m, _ = rows["memset"]
        table.rows.append([fmt_bytes(n), fmt_time(f.median), f.spread(), fmt_bytes(fr),
                           fmt_time(r.median), r.spread(), fmt_bytes(rr), fmt_time(z.median),
                           fmt_bytes(zr), fmt_time(m.median), fmt_ratio(f.median / z.median)])
    res.tables.append(table)
    big = [n for n in data if n >= MIB]
    res.series["large"] = [
        Series("Arena zeroed, fresh memory", [(n, data[n]["fresh"][0]) for n in big]),
        Series("Arena zeroed, reused memory", [(n, data[n]["reused"][0]) for n in big]),
        Series("np.zeros + release", [(n, data[n]["np.zeros"][0]) for n in big], dashed=True),
        Series("memset floor (fill(0))", [(n, data[n]["memset"][0]) for n in big], dashed=True),
    ]
    # The target compares like with like: zeroed allocations of never-touched memory through
    # the default Arena, 1 GiB against 4 KiB (the "fresh" column). The steady-state 4 KiB cost
    # (an allocate/free loop served by a size-class cache, the "reused" row) is shown beside it.
    top = max(data)
    small = data[4 * KIB]["fresh"][0].median
    loop = data[4 * KIB]["reused"][0].median
    big_fresh, big_rss = data[top]["fresh"][0].median, data[top]["fresh"][1]
    ratio = big_fresh / small
    ok = ratio <= 10 and big_rss < MIB
    res.targets.append(Target(
        f"zeroed allocation of never-touched memory: {fmt_bytes(top)} vs 4 KiB, and the RSS "
        "it adds",
        f"{fmt_ratio(ratio)} ({fmt_time(big_fresh)} vs {fmt_time(small)}), RSS added "
        f"{fmt_bytes(big_rss)}; against a 4 KiB allocation in an alloc/free loop "
        f"({fmt_time(loop)}): {fmt_ratio(big_fresh / loop)}",
        "≤ 10x and RSS < 1 MiB", ok,
        "" if ok else
        ("RSS: the zeroing wrote pages that were never touched." if big_rss >= MIB else
         "time: work proportional to the size on the fresh path (see the fresh column).")))
    res.notes.append("Reused memory is resident before the allocation, so its RSS added is ~0; "
                     "its cost is the memset (compare with the floor column).")
    res.notes.append("`np.zeros` clears memory itself only when glibc's `calloc` serves the "
                     "size from the heap (below its mmap threshold, which grows up to 32 MiB "
                     "after large frees): hence its memset-like cost at a few MiB and its "
                     "constant cost above.")
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(family_main(run))
