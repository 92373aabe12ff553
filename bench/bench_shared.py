"""Shared arena: sending a numpy array to a worker process and back through ``Pool.map``.

Three ways, each timed as one round trip (``pool.map(f, [x])`` where the worker adds 1 to the
array's first byte and returns the array):

* **arena handle** — ``x`` is an allocation of a :class:`arena.shared.SharedArena`; the pickler
  sends a handle each way and both processes view the same bytes;
* **pickle** — ``x`` is a plain numpy array; ``multiprocessing`` pickles its bytes each way;
* **shared_memory by hand** — ``x`` lives in a ``multiprocessing.shared_memory.SharedMemory``
  segment made once; the program sends the segment's name and the size, the worker attaches
  the segment (open and map it), makes an array over it and sends the name back.

One worker, ``fork`` start method, started before timing. Target: the 64 MiB round trip with
the arena handle at least 20x faster than pickling.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

from arena.shared import SharedArena
from bench.common import (
    Config,
    FamilyResult,
    Table,
    Target,
    family_main,
    fmt_bytes,
    fmt_ratio,
    fmt_time,
    measure_each,
    progress,
)

__all__ = ["run", "SIZES"]

SIZES = (1 << 20, 64 << 20)
TARGET_RATIO = 20.0


def touch(x: np.ndarray) -> np.ndarray:
    """The worker's part: change one byte, send the array back."""
    x.view(np.uint8)[0] += 1
    return x


def touch_shm(msg: tuple[str, int]) -> tuple[str, int]:
    """The worker's part with ``shared_memory``: attach, change one byte, send the name back."""
    name, n = msg
    shm = shared_memory.SharedMemory(name=name)
    # Attaching registers the name with the resource tracker the pool shares with the parent,
    # which then reports it leaked after the parent's unlink: the segment is the parent's.
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    try:
        arr = np.ndarray((n,), np.uint8, shm.buf)
        arr[0] += 1
        del arr
    finally:
        shm.close()
    return msg


def _round_trips(pool: Any, sa: SharedArena, n: int, cfg: Config) -> dict[str, Any]:
    xa = sa.alloc(n)
    xa[:] = 1
    xp = np.ones(n, np.uint8)
    shm = shared_memory.SharedMemory(create=True, size=n)
    try:
        view = np.ndarray((n,), np.uint8, shm.buf)
        view[:] = 1

        def by_handle() -> None:
            y = pool.map(touch, [xa])[0]
            if y[0] == 0:
                raise AssertionError("lost")

        def by_pickle() -> None:
            pool.map(touch, [xp])

        def by_shm() -> None:
            name, size = pool.map(touch_shm, [(shm.name, n)])[0]
            if name != shm.name or shm.buf[0] == 0:   # read through the parent's own mapping
                raise AssertionError("lost")

        repeat = 5 if cfg.quick else 11
        out = {name: measure_each(fn, cfg, repeat=repeat)
               for name, fn in (("arena handle", by_handle), ("pickle", by_pickle),
                                ("shared_memory by hand", by_shm))}
        del view
        return out
    finally:
        shm.close()
        shm.unlink()


def run(cfg: Config) -> FamilyResult:
    """Round trips of 1 MiB and 64 MiB arrays through ``Pool.map``: arena handle, pickling,
    ``shared_memory`` by hand."""
    t0 = time.perf_counter()
    sa = SharedArena(128 << 20, processes=4)
    ctx = mp.get_context("fork")
    table = Table("Round trip to one worker and back (Pool.map, fork)",
                  ["size", "method", "median", "IQR", "vs pickle"])
    targets = []
    try:
        with ctx.Pool(1) as pool:
            pool.map(touch, [np.zeros(1, np.uint8)])   # the worker is up
            for n in SIZES:
                progress(f"shared: {fmt_bytes(n)}")
                res = _round_trips(pool, sa, n, cfg)
                base = res["pickle"].median
                for name, st in res.items():
                    table.rows.append([fmt_bytes(n), name, fmt_time(st.median), st.spread(),
                                       fmt_ratio(base / st.median)])
                if n == 64 << 20:
                    ratio = base / res["arena handle"].median
                    targets.append(Target(
                        "64 MiB round trip: arena handle vs pickling", fmt_ratio(ratio),
                        f">= {TARGET_RATIO:.0f}x", ratio >= TARGET_RATIO))
            pool.close()
            pool.join()
    finally:
        sa.close()
    return FamilyResult(
        key="shared", title="6. Shared arena: arrays to a worker and back",
        intro=(__doc__ or "").split("\n\n", 1)[1].strip(), tables=[table], targets=targets,
        notes=["Times include Pool.map's own overhead (a task and a result through pipes), "
               "the same for the three methods."],
        seconds=time.perf_counter() - t0)


if __name__ == "__main__":
    raise SystemExit(family_main(run))
