"""Family 7: what monitoring costs on the hot path — the allocation loop with tracemalloc off
(the arena then tests one flag per allocation and counts the allocation in its size class)
and on (every allocation and free is registered in the arena's tracemalloc domain through
``PyTraceMalloc_Track``/``Untrack``), with ``np.empty`` as the reference of the same run.

The cost against the code before the monitoring hooks cannot be timed in one process; it was
measured once with :func:`compare_trees` (two interpreters, one per source tree, alternating)
and is written in ``RESULTS.md``'s section of this family.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from arena.arena import Arena
from bench.common import (
    Config,
    FamilyResult,
    Stat,
    Table,
    family_main,
    fmt_ratio,
    fmt_time,
    measure_many,
    progress,
)

__all__ = ["run", "compare_trees"]

ARENA_SIZE = 64 << 20


def _cases(manual: Arena, gc_arena: Arena) -> dict[str, object]:
    alloc, free = manual.alloc, manual.free
    galloc = gc_arena.alloc
    aa = manual.alloc_array
    f8 = np.float64
    return {
        "manual: `alloc(64)` + `free`": lambda: free(alloc(64)),
        "gc: `alloc(64)` + drop": lambda: galloc(64),
        "manual: `alloc_array(16, float64)` + `free`": lambda: free(aa(16, f8)),
        "manual: `alloc(64 KiB)` + `free`": lambda: free(alloc(65536, zero=False)),
        "`np.empty(64)`": lambda: np.empty(64, np.uint8),
    }


def _measure(cfg: Config, tracing: bool) -> dict[str, Stat]:
    was = tracemalloc.is_tracing()
    if tracing and not was:
        tracemalloc.start(1)
    try:
        with Arena(ARENA_SIZE, lifetime="manual") as manual, Arena(ARENA_SIZE) as gc_arena:
            return measure_many(_cases(manual, gc_arena), cfg)  # type: ignore[arg-type]
    finally:
        if tracing and not was:
            tracemalloc.stop()


def run(cfg: Config) -> FamilyResult:
    """Family 7: the allocation loop with tracemalloc off and on."""
    t0 = time.perf_counter()
    res = FamilyResult(
        "monitor", "7. Monitoring: the hot path with tracemalloc off and on",
        "Each row is one allocation and its release, timed interleaved with the others of its "
        "column; the two columns are separate runs (tracemalloc off, then on with one frame). "
        "With tracemalloc on every allocation and free of the arena is registered in its "
        "tracemalloc domain, and Python's own allocations are traced too (`np.empty` slows "
        "as well).")
    progress("  monitor: tracemalloc off")
    off = _measure(cfg, False)
    progress("  monitor: tracemalloc on")
    on = _measure(cfg, True)
    table = Table("time per allocation + release",
                  ["operation", "tracemalloc off", "IQR", "tracemalloc on", "IQR", "on / off"])
    for label in off:
        a, b = off[label], on[label]
        table.rows.append([label, fmt_time(a.median), a.spread(), fmt_time(b.median),
                           b.spread(), fmt_ratio(b.median / a.median)])
    res.tables.append(table)
    res.seconds = time.perf_counter() - t0
    return res


_LOOP = """
import sys, time, numpy as np
from arena.arena import Arena
a = Arena(64 << 20, lifetime="manual")
alloc, free = a.alloc, a.free
for _ in range(20000):
    free(alloc(64))
best = []
for _ in range({rounds}):
    t = time.perf_counter()
    for _ in range(200000):
        free(alloc(64))
    best.append((time.perf_counter() - t) / 200000)
best.sort()
print(best[len(best) // 2])
"""


def compare_trees(before: str, after: str, *, pairs: int = 5, rounds: int = 5) -> \
        tuple[list[float], list[float]]:
    """Median seconds of ``free(alloc(64))`` (manual lifetime, tracemalloc off) with the
    package imported from source tree ``before`` and from ``after``, ``pairs`` alternating
    runs of each (one interpreter per run). Returns both lists of medians."""
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(pairs):
        for i, tree in enumerate((before, after)):
            env = dict(os.environ, PYTHONPATH=tree)
            text = subprocess.run([sys.executable, "-c", _LOOP.format(rounds=rounds)],
                                  env=env, capture_output=True, text=True, check=True,
                                  cwd=tree).stdout
            out[i].append(float(text.strip()))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        b, a = compare_trees(sys.argv[2], sys.argv[3])
        mb, ma = sorted(b)[len(b) // 2], sorted(a)[len(a) // 2]
        print(f"before {fmt_time(mb)}  after {fmt_time(ma)}  after/before {ma / mb:.3f}")
        print("before:", " ".join(fmt_time(x) for x in b))
        print("after: ", " ".join(fmt_time(x) for x in a))
        raise SystemExit(0)
    raise SystemExit(family_main(run))
