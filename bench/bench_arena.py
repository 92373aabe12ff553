"""Family 0: the arena as numpy programs embed it — every row of its speed targets, in both
lifetimes, plus a whole allocation-heavy pipeline and the time of a zeroed allocation from
64 B to 64 MiB.

Each row times one allocation and its release with the size served before (the steady state),
interleaved with its baseline in the same process (:func:`bench.common.measure_many`). Targets
are for ``lifetime="manual"``; in the garbage-collected lifetime (the default) each row may
cost at most 1.5x its manual figure, and 64 B alloc + drop at most 1.5x pyarrow's buffer +
view. The pipeline (:mod:`bench.pipeline`) runs each allocator in a process of its own, so
that its peak RSS is its own; runs alternate between allocators and the median is kept.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from arena.arena import Arena
from bench.common import (
    REPO_DIR,
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
    measure_many,
    progress,
)

__all__ = ["run", "ROWS"]

try:  # optional benchmark dependency
    import pyarrow as _pa
except ImportError:  # pragma: no cover - depends on the environment
    _pa = None

ARENA_SIZE = 1 << 30
LIFETIMES = ("manual", "gc")
#: Sizes of the time-against-size panel (zeroed allocation + release).
PANEL_SIZES = (64, 1 << 10, 4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20)


def _release(a: Arena, lifetime: str) -> Callable[[np.ndarray], Any]:
    """How a program gives an array back: ``free`` (manual) or dropping it (gc)."""
    return a.free if lifetime == "manual" else (lambda v: None)


def _memset(n: int) -> Callable[[], None]:
    buf = np.ones(n, np.uint8)
    return lambda: buf.fill(0)


def _rows(a: Arena, lifetime: str) -> list[tuple[str, str, float, dict[str, Callable]]]:
    """``(row, goal text, goal ratio, cases)``: the arena case is first, the baselines after;
    the ratio is to the slowest baseline of the row."""
    alloc, alloc_array, scope = a.alloc, a.alloc_array, a.scope
    rel = _release(a, lifetime)
    free = a.free
    f32 = np.float32
    rows: list[tuple[str, str, float, dict[str, Callable]]] = []

    def empty_scope() -> None:
        with scope():
            pass
    rows.append(("`alloc(64)` + `free` vs `np.empty(64)`", "≤ 4x", 4.0,
                 {"arena": lambda: free(alloc(64)), "np.empty": lambda: np.empty(64, np.uint8)}))
    if _pa is not None:
        pa_alloc, frombuffer, u8 = _pa.allocate_buffer, np.frombuffer, np.uint8
        rows.append(("`alloc(64)` + `free` vs pyarrow `allocate_buffer(64)` + `np.frombuffer`",
                     "< 1x", 1.0, {"arena": lambda: free(alloc(64)),
                                   "pyarrow": lambda: frombuffer(pa_alloc(64), u8)}))
    rows.append(("`alloc_array(16, np.float32)` + `free` vs `np.empty(16, np.float32)`", "≤ 5x",
                 5.0, {"arena": lambda: free(alloc_array(16, f32)),
                       "np.empty": lambda: np.empty(16, f32)}))
    rows.append(("empty `with a.scope(): pass` vs `np.empty(64)`", "≤ 5x", 5.0,
                 {"arena": empty_scope, "np.empty": lambda: np.empty(64, np.uint8)}))
    for n, goal in ((64 << 10, 4.0), (1 << 20, 1.5), (16 << 20, 1.3)):
        rows.append((f"{fmt_bytes(n)} zeroed `alloc` + release vs max(`np.zeros`, memset)",
                     f"≤ {goal:g}x", goal,
                     {"arena": (lambda n=n: rel(alloc(n))),
                      "np.zeros": (lambda n=n: np.zeros(n, np.uint8)), "memset": _memset(n)}))
    n64 = 64 << 20

    def arena_write() -> None:
        v = alloc(n64, zero=False)
        v.fill(7)
        rel(v)

    def numpy_write() -> None:
        np.empty(n64, np.uint8).fill(7)
    rows.append(("64 MiB `alloc(zero=False)` + write every byte + release vs `np.empty` + write",
                 "≤ 1.0x", 1.0, {"arena": arena_write, "np.empty": numpy_write}))
    return rows


#: The rows' labels, in table order (for docs and tests).
ROWS = ("64 B", "64 B vs pyarrow", "alloc_array", "scope", "64 KiB", "1 MiB", "16 MiB",
        "64 MiB write")


def _gc_only(a: Arena) -> dict[str, Callable]:
    """The garbage-collected lifetime's own row: 64 B allocated and dropped."""
    alloc = a.alloc
    cases: dict[str, Callable] = {"arena": lambda: alloc(64)}
    if _pa is not None:
        pa_alloc, frombuffer, u8 = _pa.allocate_buffer, np.frombuffer, np.uint8
        cases["pyarrow"] = lambda: frombuffer(pa_alloc(64), u8)
    return cases


def _measure_rows(cfg: Config) -> dict[str, dict[str, tuple[str, float, dict[str, Stat]]]]:
    """Every row in both lifetimes: lifetime -> row -> (goal text, goal, stats)."""
    out: dict[str, dict[str, tuple[str, float, dict[str, Stat]]]] = {}
    for lifetime in LIFETIMES:
        with Arena(ARENA_SIZE, lifetime=lifetime) as a:
            out[lifetime] = {}
            for row, goal_text, goal, cases in _rows(a, lifetime):
                progress(f"  arena ({lifetime}): {row}")
                out[lifetime][row] = (goal_text, goal, measure_many(cases, cfg))
            if lifetime == "gc":
                progress("  arena (gc): 64 B alloc + drop")
                out[lifetime]["drop"] = ("≤ 1.5x pyarrow", 1.5, measure_many(_gc_only(a), cfg))
            a.reset()
    return out


def _ratio(stats: dict[str, Stat]) -> float:
    base = max(s.median for name, s in stats.items() if name != "arena")
    return stats["arena"].median / base


def _row_tables(res: FamilyResult, rows: dict[str, dict[str, tuple[str, float,
                                                                     dict[str, Stat]]]]) -> None:
    table = Table("Steady-state rows (ratio to the slowest baseline of the row)",
                  ["operation", "manual", "gc (default)", "gc / manual", "target (manual)",
                   "manual status", "gc status (≤ 1.5x manual)"])
    for row, (goal_text, goal, stats) in rows["manual"].items():
        rm = _ratio(stats)
        rg = _ratio(rows["gc"][row][2])
        table.rows.append([
            row, f"{fmt_ratio(rm)} ({fmt_time(stats['arena'].median)})",
            f"{fmt_ratio(rg)} ({fmt_time(rows['gc'][row][2]['arena'].median)})",
            fmt_ratio(rg / rm), goal_text, "MET" if rm <= goal else "NOT MET",
            "MET" if rg <= 1.5 * rm or rg <= goal else "NOT MET"])
        res.targets.append(Target(f"manual: {row}", f"{fmt_ratio(rm)}", goal_text, rm <= goal))
        res.targets.append(Target(f"gc: {row}", f"{fmt_ratio(rg)} ({fmt_ratio(rg / rm)} of "
                                  f"manual)", "≤ 1.5x manual, or the manual goal",
                                  rg <= 1.5 * rm or rg <= goal))
    res.tables.append(table)
    drop = rows["gc"].get("drop")
    if drop is not None and "pyarrow" in drop[2]:
        r = drop[2]["arena"].median / drop[2]["pyarrow"].median
        res.targets.append(Target("gc: 64 B `alloc` + drop vs pyarrow buffer + view (dropped)",
                                  f"{fmt_ratio(r)} ({fmt_time(drop[2]['arena'].median)} vs "
                                  f"{fmt_time(drop[2]['pyarrow'].median)})", "≤ 1.5x",
                                  r <= 1.5))
    detail = Table("Every case (median, interquartile range)",
                   ["lifetime", "operation", "case", "median", "IQR"])
    for lifetime, by_row in rows.items():
        for row, (_, _, stats) in by_row.items():
            for case, s in stats.items():
                detail.rows.append([lifetime, row, case, fmt_time(s.median), s.spread()])
    res.tables.append(detail)


def _size_series(cfg: Config) -> list[Series]:
    """Zeroed allocation + release against size, both lifetimes and ``np.zeros``."""
    points: dict[str, list[tuple[float, Stat]]] = {"manual": [], "gc": [], "np.zeros": [],
                                                   "memset": []}
    with Arena(ARENA_SIZE, lifetime="manual") as m, Arena(ARENA_SIZE) as g:
        for n in PANEL_SIZES:
            if cfg.quick and n > 16 << 20:
                continue
            progress(f"  arena: size panel {fmt_bytes(n)}")
            stats = measure_many({
                "manual": (lambda n=n: m.free(m.alloc(n))),
                "gc": (lambda n=n: g.alloc(n)),
                "np.zeros": (lambda n=n: np.zeros(n, np.uint8)), "memset": _memset(n)}, cfg)
            for k, s in stats.items():
                points[k].append((float(n), s))
    return [Series("Arena manual: alloc + free", points["manual"]),
            Series("Arena gc: alloc + drop", points["gc"]),
            Series("np.zeros (large: fresh pages, zeroed when touched)", points["np.zeros"],
                   dashed=True),
            Series("memset of that size (fill(0))", points["memset"], dashed=True)]


def _pipeline(cfg: Config) -> dict[str, list[dict[str, Any]]]:
    """Run the pipeline once per allocator per round, alternating; results per allocator."""
    allocators = ["numpy", "arena-manual", "arena-gc"] + (["pyarrow"] if _pa else [])
    rounds = 2 if cfg.quick else 5
    batches = 5 if cfg.quick else 20
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in allocators}
    for r in range(rounds):
        for name in allocators:
            progress(f"  arena: pipeline round {r + 1}/{rounds}, {name}")
            out = subprocess.run([sys.executable, "-m", "bench.pipeline", name, "--batches",
                                  str(batches)], cwd=REPO_DIR, capture_output=True, text=True,
                                 check=True, timeout=600)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs


def _pipeline_table(res: FamilyResult, runs: dict[str, list[dict[str, Any]]]) -> None:
    def med(name: str, key: str) -> float:
        vals = sorted(r[key] for r in runs[name])
        return vals[len(vals) // 2]
    base = med("numpy", "seconds")
    sums = {r["checksum"] for rs in runs.values() for r in rs}
    table = Table(f"Pipeline: {runs['numpy'][0]['allocations']:,} allocations per batch "
                  f"(median of {len(runs['numpy'])} runs each)",
                  ["allocator", "seconds", "ratio to `np.empty`", "peak RSS"])
    for name in runs:
        table.rows.append([name, f"{med(name, 'seconds'):.3f}",
                           fmt_ratio(med(name, "seconds") / base),
                           fmt_bytes(med(name, "peak_rss"))])
    table.note = ("Every allocator computed the same checksum." if len(sums) == 1 else
                  f"Checksums differ: {sorted(sums)}")
    res.tables.append(table)
    for name in ("arena-manual", "arena-gc"):
        r = med(name, "seconds") / base
        res.targets.append(Target(f"pipeline, {name} vs the same code on `np.empty`",
                                  fmt_ratio(r), "≤ 1.1x", r <= 1.1))


def run(cfg: Config) -> FamilyResult:
    """Family 0: the arena's steady-state rows, the pipeline and the size panel."""
    t0 = time.perf_counter()
    res = FamilyResult(
        "arena", "0. The arena at numpy speed (steady state, both lifetimes)",
        f"`Arena({fmt_bytes(ARENA_SIZE)})` with its defaults; each size was served before "
        "(the steady state: a size class's free list, never memblock). `manual`: `free()` "
        "makes the memory reusable; `gc` (the default): the memory is reused once no array "
        "views it (the rows free or drop the array). Baselines run interleaved in the same "
        "process; ratios are to the slowest baseline of a row (`memset` is `ndarray.fill(0)` "
        "of a buffer of that size).")
    if _pa is None:
        res.notes.append("pyarrow is not installed: its rows are skipped.")
    rows = _measure_rows(cfg)
    _row_tables(res, rows)
    res.series["arena"] = _size_series(cfg)
    _pipeline_table(res, _pipeline(cfg))
    res.seconds = time.perf_counter() - t0
    return res


if __name__ == "__main__":
    raise SystemExit(family_main(run))
