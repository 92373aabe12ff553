"""Family 5: what routing numpy's own allocations through an arena costs
(:meth:`arena.Arena.numpy_allocator`).

The workload is a numpy-heavy step of elementwise expressions on float64 arrays of 1 KiB ..
1 MiB: each step makes several temporaries and results, every one a numpy data allocation
and free. The step runs with numpy's default allocator (the baseline) and inside
``numpy_allocator()`` of an arena in each lifetime and in debug mode, all in the same process,
interleaved (:func:`bench.common.measure_many`); the table gives each against the baseline,
and the cost per allocation + free the hook adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from arena.arena import Arena
from bench.common import (
    Config,
    FamilyResult,
    Stat,
    Table,
    family_main,
    fmt_bytes,
    fmt_ratio,
    fmt_time,
    measure_many,
    progress,
)

__all__ = ["run", "SIZES", "step"]

ARENA_SIZE = 256 << 20
#: Bytes of each operand of the step (float64 arrays).
SIZES = (1 << 10, 16 << 10, 64 << 10, 1 << 20)
QUICK_SIZES = (1 << 10, 64 << 10, 1 << 20)
#: Sizes the debug-mode arena is timed at (each of its allocations is a memblock reservation
#: with red zones and a captured stack: the point is the order of magnitude).
DEBUG_SIZES = (1 << 10, 64 << 10)


def step(x: np.ndarray, y: np.ndarray) -> float:
    """One numpy-heavy step: elementwise expressions with temporaries, a concatenation and a
    reduction."""
    r = (x * 2.0 + y) / (x + 1.0)
    s = np.sqrt(r * r + 1.0) - np.abs(y)
    c = np.concatenate((r[: len(r) // 2], s[len(s) // 2:]))
    return float(np.maximum(c, 0.5).sum())


def _allocations_per_step(x: np.ndarray, y: np.ndarray) -> int:
    """Numpy data allocations one step makes (counted by an arena)."""
    with Arena(ARENA_SIZE) as a:
        with a.numpy_allocator():
            before = a.stats().num_allocations
            step(x, y)
            return a.stats().num_allocations - before


def _in_block(a: Arena, x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    block = a.numpy_allocator

    def run() -> None:
        with block():
            step(x, y)
    return run


def _in_plain_block(x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    """The same ``with`` statement around the step, with nothing to enter (the baseline pays
    for the call and the block, so the ratio is the allocations' cost alone)."""
    class _Nothing:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: object) -> None:
            return None
    nothing = _Nothing()

    def run() -> None:
        with nothing:
            step(x, y)
    return run


def run(cfg: Config) -> FamilyResult:
    """Family 5: a numpy-heavy loop with and without ``numpy_allocator()``."""
    t_start = time.perf_counter()
    res = FamilyResult(
        "numpy", "5. numpy's own allocations through the arena (`numpy_allocator()`)",
        "One step of elementwise expressions on two float64 arrays (`(x * 2 + y) / (x + 1)`, "
        "`sqrt(r * r + 1) - abs(y)`, a concatenation of halves, `maximum(c, 0.5).sum()`), "
        "timed with numpy's default allocator and inside `with a.numpy_allocator():` of an "
        f"`Arena({ARENA_SIZE >> 20} MiB)` in each lifetime and in debug mode, interleaved in "
        "one process. Every temporary and result of the step is a numpy data allocation "
        "and free; the hook serves each from the arena through numpy's memory-handler "
        "API (ctypes callbacks).")
    sizes = QUICK_SIZES if cfg.quick else SIZES
    table = Table("time per step (one `with` block around one step)",
                  ["operand size", "allocations / step", "numpy default", "arena gc",
                   "arena manual", "arena debug", "gc / default", "manual / default",
                   "debug / default", "added per allocation + free (gc)"])
    rng = np.random.default_rng(cfg.seed)
    with Arena(ARENA_SIZE) as gc_arena, Arena(ARENA_SIZE, lifetime="manual") as manual, \
            Arena(ARENA_SIZE, debug=True) as debug:
        for n in sizes:
            progress(f"  numpy hook: {fmt_bytes(n)}")
            x = rng.random(n // 8)
            y = rng.random(n // 8)
            count = _allocations_per_step(x, y)
            cases: dict[str, Callable[[], Any]] = {
                "default": _in_plain_block(x, y),
                "gc": _in_block(gc_arena, x, y),
                "manual": _in_block(manual, x, y),
            }
            if n in DEBUG_SIZES:
                cases["debug"] = _in_block(debug, x, y)
            stats: dict[str, Stat] = measure_many(cases, cfg)
            ref = stats["default"].median
            cells = [fmt_bytes(n), str(count)]
            cells += [fmt_time(stats[k].median) if k in stats else "—"
                      for k in ("default", "gc", "manual", "debug")]
            cells += [fmt_ratio(stats[k].median / ref) if k in stats else "—"
                      for k in ("gc", "manual", "debug")]
            added = (stats["gc"].median - ref) / count
            cells.append(fmt_time(added) if added >= 0 else "−" + fmt_time(-added))
            table.rows.append(cells)
        for a in (gc_arena, manual, debug):
            if a.stats().live_allocations:
                raise RuntimeError("the numpy hook left allocations live")
    res.tables.append(table)
    res.notes += [
        "Ratios above 1 are the hook's cost: a ctypes callback into Python for each "
        "allocation and each free, and the arena's own allocation path. It is a fixed cost "
        "per allocation (last column), so it weighs on steps over small arrays and fades "
        "on large ones, where the arithmetic dominates.",
        "A negative added cost means the arena's step was faster than numpy's own: from "
        "about 1 MiB the C library maps fresh pages for each array and unmaps them at free "
        "(a page fault per page touched), while the arena reuses memory already mapped.",
        "Debug mode makes every allocation a memblock reservation with red zones, poison "
        "and a captured stack, and quarantines it at free: it is for finding bugs, not for "
        "speed.",
    ]
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(family_main(run))
