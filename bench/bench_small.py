"""Family 1: small allocation + free (64 B, 4 KiB) through ``Arena``, against what a numpy user
would pick instead: ``np.empty``, ``np.zeros``, ``bytearray``, and pyarrow's
``allocate_buffer`` turned into a numpy view (when pyarrow is installed).

The cases of one size are timed interleaved (one sample of each in turn), so that a change of
load on a shared machine weighs on all of them alike. Each row times one allocation and its
release: for ``Arena`` ``arena.free(arena.alloc(n))``,
for the others the object is dropped at once (its refcount frees it). ``Arena`` is timed as
built by default (small sizes served by the ``kmalloc``-style size-class caches of
:mod:`arena.slab`, whose slabs come from memblock) and with ``slab=False`` (every request
through ``memblock_alloc_range_nid()``). The floor and breakdown rows show what handing out a
view costs at the least (slicing one base ndarray) and where the memblock path's time goes (the
memblock call pair alone, ``PhysicalMemory.view`` alone).
"""

from __future__ import annotations

import time

import numpy as np

from arena.arena import Arena
from arena.memblock import MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE
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

__all__ = ["run", "SIZES"]

SIZES = (64, 4096)
ARENA_SIZE = 64 << 20
DEFAULT = "`Arena.alloc` + `free` (zeroed, the default)"
PLAIN = "`Arena(slab=False)`: `alloc` + `free` through memblock"
FLOOR = "floor: slice of one base ndarray (`big[off:off+n]`)"

try:  # optional benchmark dependency
    import pyarrow as _pa
except ImportError:  # pragma: no cover - depends on the environment
    _pa = None


def _cases(arena: Arena, plain: Arena, n: int) -> list[tuple[str, object]]:
    """``(label, callable)`` for size ``n``: allocators, then the floor and breakdown rows;
    ``plain`` is the ``slab=False`` arena."""
    alloc, free = arena.alloc, arena.free
    palloc, pfree_ = plain.alloc, plain.free
    mb = plain.memblock
    pm = plain.physmem
    base = pm.view(pm.phys_base, 1 << 20)   # one base view to slice from (the floor)
    phys = pm.phys_base + (1 << 20)
    cases: list[tuple[str, object]] = [
        (DEFAULT, lambda: free(alloc(n))),
        ("`Arena.alloc(zero=False)` + `free`", lambda: free(alloc(n, zero=False))),
        (PLAIN, lambda: pfree_(palloc(n))),
        ("`np.empty`", lambda: np.empty(n, np.uint8)),
        ("`np.zeros`", lambda: np.zeros(n, np.uint8)),
        ("`bytearray`", lambda: bytearray(n)),
    ]
    if _pa is not None:
        pa_alloc, frombuffer, u8 = _pa.allocate_buffer, np.frombuffer, np.uint8
        cases.append(("pyarrow `allocate_buffer` + `np.frombuffer` view",
                      lambda: frombuffer(pa_alloc(n), u8)))
    rnid = mb.alloc_range_nid
    pfree = mb.phys_free
    reserved = max(n, plain.align)
    cases += [
        (FLOOR,
         lambda: base[4096:4096 + n]),
        ("breakdown: `Memblock.alloc_range_nid` + `phys_free` alone",
         lambda: pfree(rnid(reserved, 64, 0, MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE), reserved)),
        ("breakdown: `PhysicalMemory.view` alone", lambda: pm.view(phys, n)),
    ]
    return cases


def _measure_size(arena: Arena, plain: Arena, n: int, cfg: Config) -> dict[str, Stat]:
    """Every case for size ``n``; the views the cases hold die on return (so the arenas can
    close)."""
    return measure_many(dict(_cases(arena, plain, n)), cfg)  # type: ignore[arg-type]


def run(cfg: Config) -> FamilyResult:
    """Family 1: small allocation + free against numpy, bytearray and pyarrow."""
    t_start = time.perf_counter()
    res = FamilyResult(
        "small", "1. Small allocation + free (64 B, 4 KiB)",
        f"`Arena({ARENA_SIZE >> 20} MiB)` with its defaults (`align=64`, debug off) serves "
        "these sizes from its `kmalloc`-style size-class caches (slabs of whole pages taken "
        "from memblock); `Arena(slab=False)` sends every request through "
        "`memblock_alloc_range_nid()` (top-down, the kernel's choice of address) and "
        "`memblock_phys_free()`. The baselines drop the object at once. Ratios are to "
        "`np.empty` of the same size, timed in the same run.")
    if _pa is None:
        res.notes.append("pyarrow is not installed: its rows and the pyarrow target are skipped "
                         "(`pip install pyarrow`, the `bench` extra).")
    results: dict[int, dict[str, Stat]] = {}
    with Arena(ARENA_SIZE) as arena, Arena(ARENA_SIZE, slab=False) as plain:
        for n in SIZES:
            progress(f"  small: {n} B")
            stats = _measure_size(arena, plain, n, cfg)
            results[n] = stats
            ref = stats["`np.empty`"].median
            table = Table(f"{n} B: time per allocation + free",
                          ["operation", "median", "IQR", "min", "ratio to `np.empty`"])
            for label, s in stats.items():
                table.rows.append([label, fmt_time(s.median), s.spread(), fmt_time(s.min),
                                   fmt_ratio(s.median / ref)])
            res.tables.append(table)
        assert not arena.stats().live_allocations and not plain.stats().live_allocations
    res.notes.append("The speed targets of the arena's steady state are family 0's "
                     "(`bench/bench_arena.py`); this family keeps the breakdown of the paths.")
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(family_main(run))
