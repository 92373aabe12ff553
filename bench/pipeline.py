"""An allocation-heavy numpy pipeline, run with one allocator in a process of its own.

``python -m bench.pipeline ALLOCATOR [--batches N]`` prints one JSON line: ``seconds`` (the
pipeline alone, after imports and warm-up), ``peak_rss`` (bytes, the process's ``VmHWM``), ``allocations`` (per batch) and a ``checksum`` (the same for every allocator: the
arithmetic does not depend on where the memory came from).

The work: ``--batches`` batches (20 by default) of 8 images of 512×512 float32. Per image: the
image, a normalised copy, a blurred copy (a 3×3 box through shifted slices), a gradient, 64
tiles of 64×64 with their per-tile statistics, a histogram, and many small per-tile records
(64 B to 4 KiB); per batch, the stacked 8 MiB output. About 5,400 allocations per batch, from
64 B to 8 MiB, each written through ``out=`` so the allocator serves every buffer; with the
arena, one ``scope()`` per batch and per image.

Allocators: ``numpy`` (``np.empty``), ``pyarrow`` (``pa.allocate_buffer`` on the default pool,
viewed as an ndarray), ``arena-manual`` / ``arena-gc`` (:meth:`arena.Arena.alloc_array` with
``zero=False``, as ``np.empty`` promises no zeros, in the two lifetimes).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

__all__ = ["ALLOCATORS", "run_pipeline", "main"]

ALLOCATORS = ("numpy", "pyarrow", "arena-manual", "arena-gc")
SIDE = 512
TILE = 64
IMAGES = 8

Empty = Callable[[tuple[int, ...], Any], np.ndarray]


def _image(empty: Empty, rng_image: np.ndarray) -> float:
    """One image through the stages; returns a number to check the work by."""
    f32 = np.float32
    img = empty((SIDE, SIDE), f32)
    np.copyto(img, rng_image)
    norm = empty((SIDE, SIDE), f32)
    np.subtract(img, img.mean(), out=norm)
    np.multiply(norm, 1.0 / (float(img.std()) + 1e-6), out=norm)
    blur = empty((SIDE - 2, SIDE - 2), f32)
    np.copyto(blur, norm[:-2, :-2])
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                np.add(blur, norm[dy:SIDE - 2 + dy, dx:SIDE - 2 + dx], out=blur)
    grad = empty((SIDE - 3, SIDE - 3), f32)
    np.subtract(blur[1:, 1:], blur[:-1, :-1], out=grad)
    total = 0.0
    n = SIDE // TILE
    for ty in range(n):
        for tx in range(n):
            tile = empty((TILE, TILE), f32)
            np.copyto(tile, norm[ty * TILE:(ty + 1) * TILE, tx * TILE:(tx + 1) * TILE])
            stats = empty((4,), np.float64)       # 32 B
            stats[0], stats[1] = tile.min(), tile.max()
            stats[2], stats[3] = tile.mean(), tile.var()
            for k in range(8):                    # small per-tile records, 64 B .. 4 KiB
                rec = empty((8 << (k % 7),), np.float64)
                rec.fill(stats[k % 4])
                total += float(rec[-1])
            total += float(stats.sum())
    hist = empty((256,), np.int64)
    np.copyto(hist, np.bincount(np.clip(((norm + 4) * 32).astype(np.int64).ravel(), 0, 255),
                                minlength=256))
    return total + float(grad[::64, ::64].sum()) + float(hist[128])


def run_pipeline(empty: Empty, batches: int, scope: Callable[[], Any] | None = None,
                 seed: int = 1) -> float:
    """Run the pipeline with ``empty`` as the allocator (``scope()``, when given, opens one
    scope per batch and per image); returns the checksum."""
    import contextlib

    rng = np.random.default_rng(seed)
    images = [rng.random((SIDE, SIDE), dtype=np.float32) for _ in range(IMAGES)]
    opener = scope if scope is not None else contextlib.nullcontext
    checksum = 0.0
    for _ in range(batches):
        with opener():
            out = empty((IMAGES, SIDE, SIDE), np.float32)      # 8 MiB
            for i, src in enumerate(images):
                with opener():
                    checksum += _image(empty, src)
                    np.copyto(out[i], src)
            checksum += float(out[:, ::128, ::128].sum())
    return checksum


def _allocator(name: str) -> tuple[Empty, Callable[[], Any] | None, Any]:
    """``(empty, scope, keepalive)`` for an allocator name."""
    if name == "numpy":
        return (lambda shape, dtype: np.empty(shape, dtype)), None, None
    if name == "pyarrow":
        import pyarrow as pa

        alloc = pa.allocate_buffer

        def pa_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            dt = np.dtype(dtype)
            nbytes = dt.itemsize * int(np.prod(shape))
            return np.frombuffer(alloc(nbytes), dt).reshape(shape)
        return pa_empty, None, None
    from arena import Arena

    a = Arena("1 GiB", lifetime=name.split("-", 1)[1])
    alloc_array = a.alloc_array
    # zero=False: what np.empty promises (the pipeline writes every buffer it allocates).
    return (lambda shape, dtype: alloc_array(shape, dtype, zero=False)), a.scope, a


def main(argv: list[str] | None = None) -> int:
    """Run one allocator's pipeline and print its JSON line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("allocator", choices=ALLOCATORS)
    p.add_argument("--batches", type=int, default=20)
    args = p.parse_args(argv)
    empty, scope, keep = _allocator(args.allocator)
    run_pipeline(empty, 1, scope)                # warm-up: imports, caches, first placements
    t0 = time.perf_counter()
    checksum = run_pipeline(empty, args.batches, scope)
    seconds = time.perf_counter() - t0
    counter = _count_allocations()
    peak = _peak_rss()
    print(json.dumps({"allocator": args.allocator, "seconds": seconds, "peak_rss": peak,
                      "allocations": counter, "checksum": round(checksum, 3)}))
    del keep
    return 0


def _peak_rss() -> int:
    """This process's peak resident set (bytes): ``VmHWM`` (``ru_maxrss`` would carry the
    launching process's peak over ``fork`` + ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _count_allocations() -> int:
    """Allocations the pipeline makes per batch (counted with a counting allocator)."""
    n = 0

    def counting(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        nonlocal n
        n += 1
        return np.empty(shape, dtype)
    run_pipeline(counting, 1)
    return n


if __name__ == "__main__":
    raise SystemExit(main())
