"""The monitoring tools Python users already have, on an arena: tracemalloc (arena memory in a
domain of its own, with the allocating line), pyarrow's ``MemoryPool`` methods side by side
with a pyarrow pool, Arrow buffers and arrays over arena memory without a copy, per-size-class
statistics, and the notebook pictures (``_repr_svg_``)."""

from __future__ import annotations

import gc
import io
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import numpy as np
import pytest

import arena
from arena import TRACEMALLOC_DOMAIN, Arena, ClassStats, Memblock, PhysicalMemory, tmtrace

# -- tracemalloc -----------------------------------------------------------------------------------


@pytest.fixture
def tracing() -> Iterator[None]:
    """tracemalloc on (8 frames) for the test, off afterwards (as it was)."""
    was = tracemalloc.is_tracing()
    tracemalloc.start(8)
    try:
        yield
    finally:
        if not was:
            tracemalloc.stop()


def _traces() -> list[tracemalloc.Trace]:
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.DomainFilter(True, TRACEMALLOC_DOMAIN)])
    return list(snap.traces)


def _at(tr: tracemalloc.Trace) -> tuple[str, int]:
    frame = tr.traceback[-1]   # the most recent frame (a traceback runs oldest first)
    return frame.filename, frame.lineno


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith(f"# {marker}") and "def _line_of" not in text:
                return n
    raise AssertionError(marker)


def test_the_domain_is_a_public_constant() -> None:
    assert arena.TRACEMALLOC_DOMAIN == tmtrace.TRACEMALLOC_DOMAIN == 0x6D626C6B
    assert "TRACEMALLOC_DOMAIN" in arena.__all__


def test_an_allocation_shows_in_a_snapshot_with_the_line_that_made_it(tracing: None) -> None:
    with Arena("16 MiB", lifetime="manual") as a:
        leaked = a.alloc(800_000)  # marker: big
        small = a.alloc(100)  # marker: small
        traces = _traces()
        info = {_at(t): t.size for t in traces}
        assert info == {(__file__, _line_of("marker: big")): a.info(leaked).reserved,
                        (__file__, _line_of("marker: small")): a.info(small).reserved}
        a.free(leaked)
        a.free(small)


def test_the_hot_paths_register_too_and_the_total_is_the_bytes_in_use(tracing: None) -> None:
    with Arena("16 MiB", lifetime="manual") as a:
        first = [a.alloc(64) for _ in range(3)]     # general path, then the hot path
        arrays = [a.alloc_array(8, np.float64) for _ in range(3)]   # the typed hot path
        big = [a.alloc(40_000) for _ in range(2)]   # a large class: hot path the second time
        traces = _traces()
        assert len(traces) == 8
        assert sum(t.size for t in traces) == a.bytes_allocated()
        for x in first + arrays + big:
            a.free(x)
        assert _traces() == []


def test_numpy_and_arena_memory_are_told_apart(tracing: None) -> None:
    with Arena("16 MiB", lifetime="manual") as a:
        x = a.alloc(200_000)
        y = np.ones(200_000 // 8)
        snap = tracemalloc.take_snapshot()
        ours = snap.filter_traces([tracemalloc.DomainFilter(True, TRACEMALLOC_DOMAIN)])
        theirs = snap.filter_traces([tracemalloc.DomainFilter(False, TRACEMALLOC_DOMAIN)])
        assert sum(t.size for t in ours.traces) == a.info(x).reserved
        assert sum(t.size for t in theirs.traces) >= y.nbytes
        a.free(x)


def test_gc_lifetime_untracks_when_the_last_array_dies(tracing: None) -> None:
    a = Arena("16 MiB")   # lifetime="gc"
    try:
        x = a.alloc(1000)
        view = x[10:20]
        a.free(x)                 # held: the view still uses the memory
        assert len(_traces()) == 1
        del x
        assert len(_traces()) == 1
        del view                  # the memory goes back: the snapshot no longer shows it
        gc.collect()
        assert _traces() == []
        y = a.alloc(1000)         # dropped without free(): gone at the next snapshot
        assert len(_traces()) == 1
        del y
        assert _traces() == []
    finally:
        a.close()


def test_a_young_collection_untracks_what_it_recycles(tracing: None) -> None:
    with Arena("16 MiB") as a:
        slab = a.slab
        assert slab is not None
        nslots = slab.caches[0][3].slab_bytes // 64
        xs = [a.alloc(64) for _ in range(nslots)]   # the class's slab, full
        del xs                                       # dropped: nobody views them
        y = a.alloc(64)   # the free list is empty: a young collection recycles them
        (tr,) = tmtrace._orig_take().filter_traces(   # no full collection before this one
            [tracemalloc.DomainFilter(True, TRACEMALLOC_DOMAIN)]).traces
        assert tr.size == 64
        del y


def test_reset_scopes_and_close_untrack(tracing: None) -> None:
    a = Arena("16 MiB", lifetime="manual")
    keep = [a.alloc(128) for _ in range(4)]
    a.reset()
    assert _traces() == []
    with a.scope():
        inner = [a.alloc(5000), a.alloc(16)]
        assert len(_traces()) == 2
    assert _traces() == []
    more = [a.alloc(300), a.alloc(70_000)]
    assert len(_traces()) == 2
    del keep, inner, more
    a.close()
    assert _traces() == []


def test_debug_mode_untracks_into_the_quarantine(tracing: None) -> None:
    with Arena("16 MiB", debug=True, lifetime="manual") as a:
        x = a.alloc(100)
        (tr,) = _traces()
        assert tr.size == a.info(x).reserved
        a.free(x)
        assert _traces() == []


def test_tracing_started_behind_the_wrapper_is_noticed() -> None:
    original_start = tracemalloc.start.__wrapped__   # type: ignore[attr-defined]
    original_stop = tracemalloc.stop.__wrapped__   # type: ignore[attr-defined]
    was = tracemalloc.is_tracing()
    with Arena("16 MiB", lifetime="manual") as a:
        original_start(4)
        try:
            x = a.alloc(3000)    # the general path reads is_tracing() again
            assert tmtrace.tracing
            assert len(_traces()) == 1
            a.free(x)
        finally:
            if not was:
                original_stop()
    tracemalloc.stop()   # the wrapper: the flag follows
    assert not tmtrace.tracing


def test_not_tracing_registers_nothing_and_the_flag_is_off() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is on for the whole session")
    assert not tmtrace.tracing
    import arena.arena as arena_module
    assert arena_module._TRACING is False
    with Arena("4 MiB", lifetime="manual") as a:
        a.free(a.alloc(64))
        a.free(a.alloc(64))


def test_strip_keeps_a_traceback_made_only_of_arena_frames() -> None:
    inside = tmtrace._PACKAGE_DIR + "arena.py"
    raw = [(TRACEMALLOC_DOMAIN, 64, ((inside, 1),), 1),
           (TRACEMALLOC_DOMAIN, 64, ((inside, 1), ("user.py", 7)), 2),
           (0, 64, ((inside, 1), ("user.py", 7)), 2)]
    snap = tmtrace.strip_arena_frames(tracemalloc.Snapshot(raw, 8))
    # most recent first, as the raw traces hold them (a Traceback runs oldest first)
    frames = [[(f.filename, f.lineno) for f in reversed(t.traceback)] for t in snap.traces]
    assert frames == [[(inside, 1)], [("user.py", 7)], [(inside, 1), ("user.py", 7)]]


# -- pyarrow's MemoryPool methods ----------------------------------------------------------------

POOL_METHODS = ("bytes_allocated", "max_memory", "num_allocations", "total_bytes_allocated",
                "release_unused")


def _report(pool: object) -> dict[str, object]:
    """Monitoring code written for a pyarrow pool."""
    return {"backend": pool.backend_name,   # type: ignore[attr-defined]
            "bytes": pool.bytes_allocated(),   # type: ignore[attr-defined]
            "peak": pool.max_memory(),   # type: ignore[attr-defined]
            "count": pool.num_allocations(),   # type: ignore[attr-defined]
            "total": pool.total_bytes_allocated()}   # type: ignore[attr-defined]


def test_pool_methods_agree_with_stats() -> None:
    with Arena("16 MiB", lifetime="manual") as a:
        xs = [a.alloc(n) for n in (10, 100, 1000, 100_000)]
        st = a.stats()
        assert a.backend_name == "memblock-arena"
        assert (a.bytes_allocated(), a.max_memory(), a.num_allocations(),
                a.total_bytes_allocated()) == (st.bytes_allocated, st.max_memory,
                                               st.num_allocations, st.total_bytes_allocated)
        for x in xs:
            a.free(x)
        assert a.bytes_allocated() == 0
        assert a.max_memory() == st.bytes_allocated
        assert a.num_allocations() == 4 and a.total_bytes_allocated() == st.bytes_allocated
        assert isinstance(a.release_unused(), int)


def test_pool_methods_raise_when_closed() -> None:
    a = Arena("4 MiB")
    a.close()
    with pytest.raises(arena.ClosedError):
        a.bytes_allocated()
    with pytest.raises(arena.ClosedError):
        a.release_unused()


def test_side_by_side_with_a_pyarrow_pool() -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install pyarrow)")
    pool = pa.system_memory_pool()
    with Arena("16 MiB", lifetime="manual") as a:
        for p in (pool, a):
            for name in POOL_METHODS:
                assert callable(getattr(p, name)), (p, name)
            assert isinstance(p.backend_name, str)
        before = {"arrow": _report(pool), "arena": _report(a)}
        bufs = [pa.allocate_buffer(1000, memory_pool=pool) for _ in range(3)]
        xs = [a.alloc(1000) for _ in range(3)]
        during = {"arrow": _report(pool), "arena": _report(a)}
        del bufs
        for x in xs:
            a.free(x)
        after = {"arrow": _report(pool), "arena": _report(a)}
        for k in ("arrow", "arena"):
            b, d, f = before[k], during[k], after[k]
            assert d["bytes"] - b["bytes"] >= 3000, k            # type: ignore[operator]
            assert d["count"] - b["count"] == 3, k               # type: ignore[operator]
            assert d["total"] - b["total"] >= 3000, k            # type: ignore[operator]
            assert d["peak"] >= d["bytes"], k                    # type: ignore[operator]
            assert f["bytes"] == b["bytes"], k
            assert (f["count"], f["total"]) == (d["count"], d["total"]), k
            assert f["peak"] >= d["bytes"], k                    # type: ignore[operator]
        pool.release_unused()
        a.release_unused()


def test_arrow_buffers_and_arrays_share_the_arena_bytes() -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install pyarrow)")
    a = Arena("16 MiB")
    try:
        x = a.alloc_array(8, np.int64)
        buf = pa.py_buffer(x)
        assert buf.address == x.__array_interface__["data"][0]   # the same bytes
        arr = pa.Array.from_buffers(pa.int64(), 8, [None, buf])
        x[3] = 42                    # written through numpy, read through Arrow
        assert arr[3].as_py() == 42
        assert arr.to_pylist() == [0, 0, 0, 42, 0, 0, 0, 0]
        held = a.bytes_allocated()
        del x                        # Arrow still views the memory: it stays allocated
        assert a.bytes_allocated() == held
        del arr, buf
        gc.collect()
        assert a.bytes_allocated() == 0
    finally:
        a.close()


# -- per-size-class statistics -------------------------------------------------------------------


def _cls(a: Arena, kind: str, size: int) -> ClassStats:
    for c in a.stats().size_classes:
        if c.kind == kind and c.size == size:
            return c
    raise AssertionError(f"no {kind} class of {size} B in {a.stats().size_classes}")


def test_small_class_counts_follow_allocations_and_frees() -> None:
    with Arena("16 MiB", lifetime="manual") as a:
        xs = [a.alloc(60) for _ in range(3)]     # class 64: general path, then the hot path
        ys = [a.alloc_array(16, np.float64) for _ in range(2)]   # 128 B: the typed hot path
        z = a.alloc(64, node=0)                  # a node's own cache: the general path
        c = _cls(a, "small", 64)
        slab = a.slab
        assert slab is not None
        nslots = slab.caches[0][3].slab_bytes // 64
        assert (c.in_use, c.allocations, c.frees) == (4, 4, 0)
        assert c.free == nslots - 4 and c.pages == slab.caches[0][3].slab_bytes // 4096
        assert (_cls(a, "small", 128).in_use, _cls(a, "small", 128).allocations) == (2, 2)
        a.free(xs[0])
        a.free(z)
        c = _cls(a, "small", 64)
        assert (c.in_use, c.free, c.allocations, c.frees) == (2, nslots - 2, 4, 2)
        for x in xs[1:] + ys:
            a.free(x)


def test_large_class_counts_blocks_in_use_and_retained() -> None:
    with Arena("16 MiB", lifetime="manual") as a:
        x = a.alloc(100_000)
        size = a.info(x).reserved
        c = _cls(a, "large", size)
        assert (c.in_use, c.free, c.pages, c.allocations, c.frees) == (1, 0, size // 4096, 1, 0)
        a.free(x)
        c = _cls(a, "large", size)
        assert (c.in_use, c.free, c.pages, c.allocations, c.frees) == (0, 1, size // 4096, 1, 1)
        y = a.alloc(100_000)                     # the retained block, by the hot path
        assert (_cls(a, "large", size).in_use, _cls(a, "large", size).allocations) == (1, 2)
        a.free(y)


def test_gc_lifetime_counts_a_dropped_array_as_freed() -> None:
    with Arena("16 MiB") as a:
        x = a.alloc(200)
        assert _cls(a, "small", 256).in_use == 1
        del x
        c = _cls(a, "small", 256)
        assert (c.in_use, c.allocations, c.frees) == (0, 1, 1)


def test_without_size_classes_there_are_none() -> None:
    with Arena("16 MiB", slab=False) as a:
        x = a.alloc(100)
        assert a.stats().size_classes == ()
        del x


def test_print_stats_shows_the_classes_as_a_table() -> None:
    with Arena("16 MiB", lifetime="manual") as a:
        x, y = a.alloc(64), a.alloc(50_000)
        out = io.StringIO()
        a.print_stats(out)
        text = out.getvalue()
        head = next(line for line in text.splitlines() if line.startswith("class"))
        assert head.split() == ["class", "size", "in_use", "free", "pages", "allocations",
                                "frees"]
        rows = [line.split() for line in text.splitlines()[text.splitlines().index(head) + 1:]]
        assert ["small", "64", "1"] == rows[0][:3]
        assert rows[-1][0] == "large" and rows[-1][2] == "1"
        a.free(x)
        a.free(y)


# -- notebooks -----------------------------------------------------------------------------------


def _svg_root(text: str) -> ET.Element:
    root = ET.fromstring(text)   # well-formed XML, or ParseError
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}title") is not None
    return root


def test_an_arena_displays_as_its_memory_map() -> None:
    with Arena("16 MiB", nodes=2, lifetime="manual") as a:
        x = a.alloc(100_000)
        root = _svg_root(a._repr_svg_() or "")
        title = root.find("{http://www.w3.org/2000/svg}title")
        assert title is not None and "bytes allocated" in (title.text or "")
        assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) > 3   # the picture
        assert "\n" not in repr(a) and repr(a).startswith("<Arena ")
        a.free(x)
    assert a._repr_svg_() is None   # closed: the plain repr


def test_memblock_and_physical_memory_display_as_pictures() -> None:
    pm = PhysicalMemory(1 << 20, phys_base=1 << 30, nodes=2)
    try:
        mb = Memblock(pm)
        for sl in pm.slices:
            mb.add_node(sl.phys_start, sl.size, sl.nid)
        mb.reserve((1 << 30) + 4096, 8192)
        pm.fill((1 << 30) + 4096, 100, 0x78)
        for obj in (mb, pm):
            _svg_root(obj._repr_svg_() or "")
            assert "\n" not in repr(obj)
    finally:
        gc.collect()
        pm.close()
    assert pm._repr_svg_() is None


def test_ipython_picks_the_svg_when_it_is_installed() -> None:
    formatters = pytest.importorskip("IPython.core.formatters",
                                     reason="IPython is not installed")
    fmt = formatters.SVGFormatter()
    with Arena("4 MiB") as a:
        _svg_root(fmt(a))
