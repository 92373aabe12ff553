"""arena.physmem basics: construction, views, bulk access, bad input, lifetime.

Residency/release/fork live in test_physmem_pages.py, NUMA in test_physmem_numa.py, the
"possibly written" record's model test in test_physmem_model.py.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from arena.errors import ArenaMemoryError, ClosedError, LiveViewsError
from arena.physmem import PAGE_SIZE, NodeSlice, PhysicalMemory, parse_size

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
BASE = 1 * GiB


@pytest.fixture
def pm():
    mem = PhysicalMemory(16 * MiB, phys_base=BASE)
    yield mem
    gc.collect()
    mem.close()


def addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def snapshot(mem: PhysicalMemory) -> tuple:
    """Everything observable about a memory's state (contents via the record-aware read)."""
    return (list(mem._written), list(mem._released), mem.read(mem.phys_base, mem.size),
            mem.resident_bytes())


# -- parse_size ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("64 GiB", 64 * GiB), ("4KiB", 4 * KiB), ("2 MiB", 2 * MiB), ("1G", GiB), ("512", 512),
    ("512B", 512), ("1k", KiB), (" 3 TiB ", 3 << 40), ("0x1000", 4096), ("0x2 M", 2 * MiB),
    (4096, 4096), (np.int64(8192), 8192), (np.uint32(4096), 4096),
])
def test_parse_size_accepts(text, value):
    assert parse_size(text) == value
    assert type(parse_size(text)) is int


@pytest.mark.parametrize("bad, exc, words", [
    (True, TypeError, "bool"), (np.bool_(True), TypeError, "bool"), (4096.0, TypeError, "float"),
    (None, TypeError, "NoneType"), ([4096], TypeError, "list"), (-4096, ValueError, "positive"),
    (0, ValueError, "positive"), ("0", ValueError, "positive"), ("64 GB", ValueError, "ambiguous"),
    ("4 KB", ValueError, "ambiguous"), ("lots", ValueError, "cannot parse"),
    ("1.5 GiB", ValueError, "cannot parse"), ("-1G", ValueError, "cannot parse"),
    ("12 iB", ValueError, "iB"),
])
def test_parse_size_rejects(bad, exc, words):
    with pytest.raises(exc, match=words):
        parse_size(bad)


def test_parse_size_allow_zero():
    assert parse_size(0, allow_zero=True) == 0
    with pytest.raises(ValueError):
        parse_size(-1, allow_zero=True)


# -- construction ------------------------------------------------------------------------------

def test_properties(pm):
    assert pm.size == 16 * MiB
    assert pm.phys_base == BASE
    assert pm.phys_end == BASE + 16 * MiB
    assert pm.page_size == PAGE_SIZE
    assert not pm.closed
    assert pm.slices == [NodeSlice(0, BASE, 16 * MiB)]
    assert "PhysicalMemory" in repr(pm)
    pm.check()


def test_size_string_and_default_base():
    with PhysicalMemory("2 MiB") as mem:
        assert (mem.size, mem.phys_base, mem.phys_end) == (2 * MiB, 0, 2 * MiB)
        mem.check()
    with PhysicalMemory(np.int64(8192), phys_base="4 GiB") as mem:
        assert (mem.size, mem.phys_base) == (8192, 4 * GiB)


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"size": -4096}, ValueError, "positive"),
    ({"size": 0}, ValueError, "positive"),
    ({"size": 4097}, ValueError, "whole number"),
    ({"size": 4096.0}, TypeError, "float"),
    ({"size": True}, TypeError, "bool"),
    ({"size": None}, TypeError, "NoneType"),
    ({"size": "64 GB"}, ValueError, "ambiguous"),
    ({"size": 4096, "phys_base": -4096}, ValueError, ">= 0"),
    ({"size": 4096, "phys_base": 100}, ValueError, "whole number"),
    ({"size": 4096, "phys_base": 1.0}, TypeError, "float"),
    ({"size": 8192, "phys_base": (1 << 64) - 4096}, ValueError, "overflows"),
    ({"size": 4096, "hugepages": 1}, TypeError, "hugepages"),
    ({"size": 4096, "populate": "yes"}, TypeError, "populate"),
    ({"size": 4096, "noreserve": None}, TypeError, "noreserve"),
])
def test_constructor_rejects(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        PhysicalMemory(**kwargs)


def test_top_of_physical_address_space():
    with PhysicalMemory(8192, phys_base=(1 << 64) - 8192) as mem:
        assert mem.phys_end == 1 << 64
        v = mem.view(mem.phys_end - 8, 8, np.uint64)
        v[0] = 7
        assert mem.phys_of(v) == (1 << 64) - 8
        del v


def test_mapping_too_large_for_address_space():
    # 2**60 bytes is far beyond any user address space: a clear error, not a crash.
    with pytest.raises(ArenaMemoryError, match="cannot map"):
        PhysicalMemory(1 << 60)


# -- views -------------------------------------------------------------------------------------

def test_view_writes_seen_through_other_view(pm):
    a = pm.view(BASE + 8192, 4096)
    b = pm.view(BASE + 8192 + 100, 16)
    c = pm.view(BASE + 8192, 4096, np.uint32, shape=(32, 32))
    a[100:116] = np.arange(16, dtype=np.uint8)
    assert b.tolist() == list(range(16))
    c[0, 0] = 0x01020304
    assert a[:4].tolist() == [4, 3, 2, 1]
    b[:] = 0xEE
    assert (a[100:116] == 0xEE).all()
    assert pm.read(BASE + 8192 + 100, 16) == b"\xee" * 16


def test_view_types_and_shapes(pm):
    v = pm.view(BASE, 4096)
    assert v.dtype == np.uint8 and v.shape == (4096,) and v.flags.writeable
    w = pm.view(BASE, 4096, np.float64)
    assert w.dtype == np.float64 and w.shape == (512,)
    m = pm.view(BASE, 4096, "i4", shape=(16, 64))
    assert m.shape == (16, 64) and m.flags.c_contiguous
    s = pm.view(BASE + 64, 64, shape=64)
    assert s.shape == (64,)
    assert pm.view(BASE, 64, shape=[8, np.int64(8)]).shape == (8, 8)
    # all are slices of the one base ndarray, never built from a raw pointer
    for arr in (v, w, m, s):
        root = arr
        while isinstance(root.base, np.ndarray):
            root = root.base
        assert isinstance(root.base, memoryview)


def test_view_bounds_are_numpy_checked(pm):
    v = pm.view(BASE, 64)
    with pytest.raises(IndexError):
        v[64] = 1


@pytest.mark.parametrize("args, kwargs, exc, words", [
    ((BASE - 1, 1), {}, ValueError, "outside"),
    ((BASE + 16 * MiB - 4, 8), {}, ValueError, "outside"),
    ((BASE + 16 * MiB, 1), {}, ValueError, "outside"),
    ((BASE, -8), {}, ValueError, "positive"),
    ((BASE + 16 * MiB + 1, 0), {}, ValueError, "outside"),
    ((float(BASE), 8), {}, TypeError, "float"),
    ((BASE, "8"), {}, TypeError, "str"),
    ((None, 8), {}, TypeError, "NoneType"),
    ((BASE, True), {}, TypeError, "bool"),
    ((BASE, 12), {"dtype": np.uint64}, ValueError, "itemsize"),
    ((BASE + 4, 8), {"dtype": np.uint64}, ValueError, "aligned"),
    ((BASE, 16), {"dtype": object}, TypeError, "objects"),
    ((BASE, 16), {"dtype": "no-such-type"}, TypeError, "not understood"),
    ((BASE, 64), {"dtype": np.dtype([])}, ValueError, "itemsize 0"),     # was ZeroDivisionError
    ((BASE, 64), {"dtype": "S0"}, ValueError, "itemsize 0"),
    ((BASE, 0), {"dtype": "V0"}, ValueError, "itemsize 0"),
    ((BASE, 16), {"shape": (3, 5)}, ValueError, "shape"),
    ((BASE, 16), {"shape": (4, -4)}, ValueError, "shape"),
    ((BASE, 16), {"shape": (4.0, 4)}, TypeError, "float"),
])
def test_view_rejects_and_changes_nothing(pm, args, kwargs, exc, words):
    pm.fill(BASE + 4096, 4096, 9)
    before = snapshot(pm)
    with pytest.raises(exc, match=words):
        pm.view(*args, **kwargs)
    assert snapshot(pm) == before
    pm.check()


def test_phys_of(pm):
    v = pm.view(BASE + 12288, 256, np.uint16, shape=(8, 16))
    assert pm.phys_of(v) == BASE + 12288
    assert pm.phys_of(v[1]) == BASE + 12288 + 32
    assert pm.phys_of(v[:, 3]) == BASE + 12288 + 6          # strided
    assert pm.phys_of(v[::-1]) == BASE + 12288 + 7 * 32     # negative stride: first element
    ro = v.view()
    ro.flags.writeable = False
    assert pm.phys_of(ro) == BASE + 12288
    assert pm.contains(pm.phys_of(v.reshape(-1)[5:5]))   # empty: numpy keeps some inner pointer
    last = pm.view(pm.phys_end - 1, 1)
    assert pm.phys_of(last) == pm.phys_end - 1


def test_phys_of_rejects(pm):
    v = pm.view(BASE, 64)
    with pytest.raises(ValueError, match="does not lie"):
        pm.phys_of(v.copy())
    with pytest.raises(ValueError, match="does not lie"):
        pm.phys_of(np.zeros(8))
    with PhysicalMemory(8192, phys_base=BASE) as other:
        w = other.view(BASE, 8)
        with pytest.raises(ValueError, match="does not lie"):
            pm.phys_of(w)
        del w
    for bad in (memoryview(b"abc"), b"abc", [1, 2], None, BASE):
        with pytest.raises(TypeError, match="numpy array"):
            pm.phys_of(bad)


def test_phys_of_rejects_array_reaching_past_the_end():
    with PhysicalMemory(8192) as mem:
        v = mem.view(4096, 4096)
        # an array built over the mapping that runs into the alignment pad is not ours
        past = np.lib.stride_tricks.as_strided(v, shape=(8192,))
        with pytest.raises(ValueError, match="does not lie"):
            mem.phys_of(past)
        del v, past


# -- alignment of real addresses -------------------------------------------------------------------

ALIGNS = [1 << s for s in range(6, 31)]   # 64 B .. 1 GiB


@pytest.mark.parametrize("phys_base", [0, PAGE_SIZE, 3 * PAGE_SIZE, 5 * GiB + 2 * MiB + 7 * PAGE_SIZE,
                                       (1 << 40) + GiB - PAGE_SIZE])
def test_real_address_aligned_like_physical(phys_base):
    with PhysicalMemory("4 GiB", phys_base=phys_base) as mem:
        for align in ALIGNS:
            phys = -(-phys_base // align) * align   # first aligned address in the memory
            for p in (phys, phys + align):
                if not mem.contains(p, 64):
                    continue
                v = mem.view(p, 64)
                assert addr(v) % align == 0, (hex(p), align)
                # and exactly as misaligned as the physical address for bigger alignments
                assert addr(v) % (1 << 30) == p % (1 << 30)
                del v
        mem.check()


def test_misaligned_physical_is_equally_misaligned():
    with PhysicalMemory("8 MiB", phys_base=3 * PAGE_SIZE) as mem:
        for phys in (3 * PAGE_SIZE + 64, 2 * MiB + 32, 4 * MiB + 4096 + 8):
            v = mem.view(phys, 8)
            for align in ALIGNS:
                assert addr(v) % align == phys % align
            del v


# -- bulk access -------------------------------------------------------------------------------

def test_fill_read_zero(pm):
    pm.fill(BASE + 100, 5000, 0x5A)
    assert pm.read(BASE + 99, 5002) == b"\0" + b"\x5a" * 5000 + b"\0"
    pm.zero(BASE + 200, 10)
    assert pm.read(BASE + 195, 20) == b"\x5a" * 5 + b"\0" * 10 + b"\x5a" * 5
    pm.fill(BASE + 100, 5000, 0)      # fill with 0 is zero()
    assert pm.read(BASE, 8192) == bytes(8192)
    v = pm.view(BASE + 4096, 16)
    assert not v.any()


def test_read_of_unwritten_memory_is_zero(pm):
    assert pm.read(BASE, pm.size) == bytes(pm.size)
    assert pm.resident_bytes() == 0


def test_contains(pm):
    assert pm.contains(BASE)
    assert pm.contains(BASE, 16 * MiB)
    assert pm.contains(pm.phys_end - 1)
    assert not pm.contains(pm.phys_end)
    assert not pm.contains(BASE - 1)
    assert not pm.contains(BASE, 16 * MiB + 1)
    assert pm.contains(pm.phys_end, 0)
    assert not pm.contains(pm.phys_end + 1, 0)
    assert pm.contains(np.uint64(BASE + 5), np.int32(3))
    for args, exc in [((1.0,), TypeError), ((BASE, -1), ValueError), (("0",), TypeError),
                      ((True,), TypeError), ((BASE, None), TypeError)]:
        with pytest.raises(exc):
            pm.contains(*args)


@pytest.mark.parametrize("method, args, exc, words", [
    ("fill", (BASE, 16, 256), ValueError, "0 .. 255"),
    ("fill", (BASE, 16, -1), ValueError, "0 .. 255"),
    ("fill", (BASE, 16, 1.0), TypeError, "float"),
    ("fill", (BASE, 16, b"\x01"), TypeError, "bytes"),
    ("fill", (BASE, 16, True), TypeError, "bool"),
    ("fill", (BASE - 16, 32, 1), ValueError, "outside"),
    ("fill", (BASE, 0, 1), ValueError, "positive"),
    ("zero", (BASE, -1), ValueError, "positive"),
    ("zero", (BASE + 16 * MiB, 1), ValueError, "outside"),
    ("zero", ("0", 1), TypeError, "str"),
    ("read", (BASE, 0), ValueError, "positive"),
    ("read", (0, 16), ValueError, "outside"),
    ("read", (BASE, 2.0), TypeError, "float"),
    ("release", (BASE + 1, PAGE_SIZE), ValueError, "whole"),
    ("release", (BASE, PAGE_SIZE + 1), ValueError, "whole"),
    ("release", (BASE, 0), ValueError, "positive"),
    ("release", (BASE - PAGE_SIZE, 2 * PAGE_SIZE), ValueError, "outside"),
    ("release", (BASE, None), TypeError, "NoneType"),
    ("resident_bytes", (BASE,), TypeError, "both"),
    ("resident_bytes", (BASE, -1), ValueError, "positive"),
    ("resident_bytes", (BASE + 16 * MiB, 4096), ValueError, "outside"),
    ("node_of_page", (BASE - 1,), ValueError, "outside"),
    ("node_of_page", (float(BASE),), TypeError, "float"),
])
def test_bad_input_changes_nothing(pm, method, args, exc, words):
    pm.fill(BASE, 8192, 3)
    before = snapshot(pm)
    with pytest.raises(exc, match=words):
        getattr(pm, method)(*args)
    assert snapshot(pm) == before
    pm.check()


# -- lifetime ----------------------------------------------------------------------------------

def test_close_with_live_views_refuses_and_stays_usable():
    mem = PhysicalMemory(64 * KiB)
    v = mem.view(0, 64)
    derived = v.reshape(8, 8)[::2]       # an array derived from a view counts as well
    v[:] = 1
    del v
    with pytest.raises(LiveViewsError, match=r"del view.*copy\(\)"):
        mem.close()
    assert not mem.closed
    assert (derived == 1).all()         # still valid memory, never dangling
    mem.fill(0, 64, 2)
    assert (derived == 2).all()
    assert mem.read(0, 2) == b"\2\2"
    mem.check()
    kept = derived.copy()
    del derived
    mem.close()
    assert mem.closed and kept.sum() == 2 * 32


def test_close_after_views_in_reference_cycles():
    mem = PhysicalMemory(64 * KiB)
    cycle: list = [mem.view(0, 8)]
    cycle.append(cycle)
    del cycle
    mem.close()          # the cycle is collected, not reported as a live view
    assert mem.closed


def test_live_view_error_is_a_buffer_error():
    mem = PhysicalMemory(64 * KiB)
    v = mem.view(0, 64)
    with pytest.raises(BufferError):
        mem.close()
    del v
    mem.close()


CALLS = [
    ("view", (0, 8)), ("phys_of", (np.zeros(1),)), ("fill", (0, 8, 1)), ("read", (0, 8)),
    ("zero", (0, 8)), ("contains", (0,)), ("resident_bytes", ()), ("release", (0, 4096)),
    ("node_of_page", (0,)), ("bind_status", ()), ("check", ()), ("__enter__", ()),
]


@pytest.mark.parametrize("method, args", CALLS)
def test_every_call_after_close_raises(method, args):
    mem = PhysicalMemory(64 * KiB)
    mem.close()
    with pytest.raises(ClosedError, match="closed"):
        getattr(mem, method)(*args)
    # metadata still answers, and closing again is harmless
    assert mem.closed and mem.size == 64 * KiB and mem.slices == [NodeSlice(0, 0, 64 * KiB)]
    mem.close()
    assert "closed" in repr(mem)


def test_context_manager():
    with PhysicalMemory(64 * KiB) as mem:
        mem.fill(0, 16, 1)
        assert mem.read(0, 1) == b"\1"
    assert mem.closed
    with pytest.raises(LiveViewsError):
        with PhysicalMemory(64 * KiB) as mem2:
            v = mem2.view(0, 8)
    assert not mem2.closed
    del v
    mem2.close()


def test_closed_error_is_value_error():
    mem = PhysicalMemory(64 * KiB)
    mem.close()
    with pytest.raises(ValueError):
        mem.read(0, 1)


def test_exit_with_exception_and_live_views_keeps_the_exception():
    # The block's exception (whose traceback holds the view) is what the caller sees.
    with pytest.raises(KeyError, match="original"):
        with PhysicalMemory(64 * KiB) as mem:
            v = mem.view(0, 8)
            raise KeyError("original")
    assert not mem.closed
    del v
    mem.close()


def test_failed_construction_step_propagates(monkeypatch):
    def boom(self):
        raise RuntimeError("populate failed")
    monkeypatch.setattr(PhysicalMemory, "_populate", boom)
    with pytest.raises(RuntimeError, match="populate failed"):
        PhysicalMemory(64 * KiB, populate=True)


def test_hugepages_unsupported_warns_and_falls_back(monkeypatch):
    import arena.physmem as physmem

    monkeypatch.setattr(physmem, "MADV_HUGEPAGE", 12345)   # the kernel answers EINVAL
    with pytest.warns(RuntimeWarning, match="MADV_HUGEPAGE"):
        mem = PhysicalMemory(64 * KiB, hugepages=True)
    assert not mem.hugepages
    mem.fill(0, 8, 1)
    assert mem.read(0, 1) == b"\1"
    mem.close()


def test_empty_views_anywhere_up_to_the_end(pm):
    """A size-0 view (what a kernel size-0 allocation returns) may sit at any address in
    ``[phys_base, phys_end]``, records nothing as written, and maps back to its address."""
    before = snapshot(pm)
    for phys in (BASE, BASE + 4096 + 3, BASE + 16 * MiB):
        v = pm.view(phys, 0)
        assert v.size == 0 and v.dtype == np.uint8
        assert pm.phys_of(v) == phys
        del v
    assert snapshot(pm) == before
