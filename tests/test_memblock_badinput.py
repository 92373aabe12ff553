"""Bad input to every public Memblock method: refused with TypeError/ValueError, nothing changed.

The bad-input rule: a caller's mistake (wrong type: None, str, float, bool, object() where an int is
needed; a negative number; a value that does not fit ``phys_addr_t`` / ``int nid`` / the flag
bits) raises ``TypeError`` / ``ValueError`` naming the value, and leaves the whole state exactly
as it was. numpy integers are ints. What the *kernel* accepts (size 0, unaligned addresses,
non-power-of-two alignment, ranges outside memory, ``base + size`` overflow) is not a mistake:
those calls follow the kernel's return convention (0 / ``-ENOMEM`` / phys 0 / ``None``).

The table ``CALLS`` lists every public method with the kind of each parameter and a valid
value; the tests make one parameter bad at a time. Hypothesis draws further bad values per
kind (profile from ``conftest.py``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arena.errors import HandoverError, MemblockPanic
from arena.memblock import MEMBLOCK_ALLOC_ANYWHERE, NUMA_NO_NODE, Memblock, MemblockFlags

# Parameter kinds.
PHYS = "phys"      # phys_addr_t: 0 .. 2**bits - 1
LIMIT = "limit"    # phys_addr_t upper bound: also MEMBLOCK_ALLOC_ANYWHERE (2**64 - 1)
ULONG = "ulong"    # unsigned long (pfn, threshold): 0 .. 2**64 - 1
NID = "nid"        # C int: any value fits, out-of-range nodes mean "any node"
FLAGS = "flags"    # MemblockFlags bits 0x00 .. 0x7f
BOOL = "bool"      # a C bool
TYPE = "type"      # one of this memblock's region arrays (or its name)
PTR = "ptr"        # memblock_free's pointer: a view of this memory, a phys address or None
VIEW = "view"      # a numpy view of this memory

BAD_TYPES: list[Any] = [
    None, "4096", b"4096", 4096.0, 1.5, float("nan"), True, False, object(), [4096], (4096,),
    1j, Decimal(4096), Fraction(4096, 1), np.float64(4096.0), np.bool_(True),
    np.array([4096]),
]


def _bad_values(kind: str, bits: int) -> list[Any]:
    """Out-of-range values of the right type, per parameter kind."""
    top = 2**bits
    if kind == PHYS:
        return [-1, -(2**63), top, top + 5, 2**64, 2**70]
    if kind == LIMIT:
        return [-1, -(2**64), 2**64, 2**70] + ([top, 2**64 - 2] if bits == 32 else [])
    if kind == ULONG:
        return [-1, 2**64, 2**100]
    if kind == NID:
        return [2**31, -(2**31) - 1, 2**64]
    if kind == FLAGS:
        return [-1, 0x80, 0x100, 2**32, 2**64]
    return []


# -- the table of public methods ---------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    kind: str
    valid: Callable[[Memblock, int], Any]   # (mb, base of test memory) -> a valid value


def _const(v: Any) -> Callable[[Memblock, int], Any]:
    return lambda mb, b: v


BASE = Param(PHYS, lambda mb, b: b + 0x40000)
SIZE = Param(PHYS, _const(0x1000))
ALIGN = Param(PHYS, _const(0x1000))
START = Param(PHYS, lambda mb, b: b)
END = Param(LIMIT, lambda mb, b: b + 0x300000)
NODE = Param(NID, _const(0))
FLAG = Param(FLAGS, _const(MemblockFlags.HOTPLUG))
EXACT = Param(BOOL, _const(False))
MEMTYPE = Param(TYPE, lambda mb, b: mb.memory)
RANGE = [BASE, SIZE]

CALLS: dict[str, list[Param]] = {
    "add": RANGE,
    "add_node": RANGE + [NODE, FLAG],
    "remove": RANGE,
    "physmem_add": RANGE,
    "reserve": RANGE,
    "reserve_kern": RANGE,
    "reserve_node": RANGE + [NODE, FLAG],
    "phys_free": RANGE,
    "free": [Param(PTR, lambda mb, b: b + 0x40000), SIZE],
    "mark_hotplug": RANGE,
    "clear_hotplug": RANGE,
    "mark_mirror": RANGE,
    "mark_nomap": RANGE,
    "clear_nomap": RANGE,
    "reserved_mark_noinit": RANGE,
    "reserved_mark_kern": RANGE,
    "mark_kho_scratch": RANGE,
    "clear_kho_scratch": RANGE,
    "set_node": RANGE + [MEMTYPE, NODE],
    "phys_alloc": [SIZE, ALIGN],
    "phys_alloc_range": [SIZE, ALIGN, START, END],
    "phys_alloc_try_nid": [SIZE, ALIGN, NODE],
    "alloc_range_nid": [SIZE, ALIGN, START, END, NODE, EXACT],
    "alloc": [SIZE, ALIGN],
    "alloc_raw": [SIZE, ALIGN],
    "alloc_from": [SIZE, ALIGN, START],
    "alloc_low": [SIZE, ALIGN],
    "alloc_node": [SIZE, ALIGN, NODE],
    "alloc_or_panic": [SIZE, ALIGN],
    "alloc_try_nid": [SIZE, ALIGN, START, END, NODE],
    "alloc_try_nid_raw": [SIZE, ALIGN, START, END, NODE],
    "alloc_exact_nid_raw": [SIZE, ALIGN, START, END, NODE],
    "alloc_internal": [SIZE, ALIGN, START, END, NODE, EXACT],
    "set_bottom_up": [Param(BOOL, _const(True))],
    "set_current_limit": [Param(LIMIT, lambda mb, b: b + 0x200000)],
    "is_memory": [BASE],
    "is_map_memory": [BASE],
    "is_reserved": [BASE],
    "is_region_memory": RANGE,
    "is_region_reserved": RANGE,
    "overlaps_region": [MEMTYPE, BASE, SIZE],
    "addrs_overlap": [BASE, SIZE, BASE, SIZE],
    "search_pfn_nid": [Param(ULONG, lambda mb, b: (b >> 12) + 1)],
    "reserved_kern_size": [END, NODE],
    "validate_numa_coverage": [Param(ULONG, _const(0))],
    "for_each_free_mem_range": [NODE, FLAG],
    "for_each_free_mem_range_reverse": [NODE, FLAG],
    "for_each_mem_pfn_range": [NODE],
    "enforce_memory_limit": [Param(PHYS, _const(0x180000))],
    "mem_limit_remove_map": [Param(PHYS, _const(0x180000))],
    "cap_memory_range": RANGE,
    "trim_memory": [ALIGN],
    "set_total_size": [MEMTYPE, Param(PHYS, lambda mb, b: mb.memory.total_size + 0x1000)],
    "free_late": RANGE,
    "phys_to_virt": RANGE,
    "virt_to_phys": [Param(VIEW, lambda mb, b: mb.phys_to_virt(b, 16))],
}

GENERATORS = {"for_each_free_mem_range", "for_each_free_mem_range_reverse",
              "for_each_mem_pfn_range"}


STATIC = {"addrs_overlap"}   # static helpers: they cannot know the instance's phys_addr_t width


def _width(name: str, bits: int) -> int:
    return 64 if name in STATIC else bits


def _call(mb: Memblock, name: str, args: list[Any]) -> Any:
    out = getattr(mb, name)(*args)
    if name in GENERATORS:
        out = list(out)
    return out


def _valid_args(mb: Memblock, name: str, base: int) -> list[Any]:
    return [p.valid(mb, base) for p in CALLS[name]]


# -- state -------------------------------------------------------------------------------------

def snapshot(mb: Memblock) -> tuple:
    """Everything observable: the three arrays (entries, cnt, max, total_size), direction,
    limit and mirror mode."""
    arrays = tuple(
        (tuple((r.base, r.size, int(r.flags), r.nid) for r in t.regions), t.cnt, t.max,
         t.total_size)
        for t in (mb.memory, mb.reserved, mb.physmem))
    return arrays, mb.bottom_up, mb.get_current_limit(), mb.has_mirror()


def populate(mb: Memblock, b: int) -> None:
    """A non-trivial state inside the physical memory ``[b, b + 16 MiB)``."""
    assert mb.add(b, 0x100000) == 0
    assert mb.add_node(b + 0x200000, 0x100000, 1, MemblockFlags.HOTPLUG) == 0
    assert mb.reserve(b + 0x1000, 0x2000) == 0
    assert mb.reserve_kern(b + 0x10000, 0x1000) == 0
    assert mb.mark_nomap(b + 0x80000, 0x1000) == 0
    assert mb.phys_alloc(0x1000, 0x1000) != 0
    mb.set_current_limit(b + 0x280000)


@pytest.fixture(autouse=True)
def _check_every_step(monkeypatch):
    """ARENA_CHECK=1: every Memblock made in these tests runs check() after each mutator."""
    monkeypatch.setenv("ARENA_CHECK", "1")


@pytest.fixture
def pm(harness_physmem):
    return harness_physmem


def fresh(pm, **kw) -> Memblock:
    mb = Memblock(pm, **kw)
    populate(mb, pm.phys_base)
    return mb


def assert_refused(mb: Memblock, name: str, args: list[Any], exc) -> None:
    before = snapshot(mb)
    with pytest.raises(exc):
        _call(mb, name, args)
    assert snapshot(mb) == before, f"{name}{tuple(args)!r} changed the state"


def _expected_type_error(kind: str, value: Any):
    if kind in (TYPE, VIEW):
        return (TypeError, ValueError)
    if kind == PTR and isinstance(value, np.ndarray):
        return ValueError             # a foreign array
    return TypeError


def _is_bad_type(kind: str, value: Any) -> bool:
    """Whether ``value`` (from the bad-type pools) is really wrong for a ``kind`` parameter."""
    if kind == PTR and value is None:
        return False                  # memblock_free(NULL): the kernel's no-op
    if kind == BOOL and isinstance(value, (bool, np.bool_)):
        return False
    if kind == TYPE and value in ("memory", "reserved", "physmem"):
        return False
    return True


# -- the table is complete ---------------------------------------------------------------------

def test_calls_table_covers_every_public_method():
    """Every public method of Memblock that takes arguments is in CALLS (or listed here)."""
    no_args = {"allow_resize", "get_current_limit", "get_bottom_up", "start_of_dram",
               "end_of_dram", "phys_mem_size", "reserved_size", "has_mirror", "dump_all",
               "check", "for_each_mem_range", "for_each_mem_range_rev", "for_each_mem_region",
               "for_each_reserved_mem_region", "for_each_reserved_mem_range",
               "estimated_nr_free_pages", "set_kho_scratch_only", "clear_kho_scratch_only",
               "is_bottom_up",
               "free_all", "array_bytes"}
    public = {n for n in dir(Memblock) if not n.startswith("_") and callable(getattr(Memblock, n))}
    assert public - set(CALLS) - no_args == set()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_call_is_accepted(name, pm):
    """The table's valid values really are valid (so the bad-value tests test one thing)."""
    mb = fresh(pm)
    args = _valid_args(mb, name, pm.phys_base)
    if name == "free_late":
        with pytest.raises(HandoverError):
            _call(mb, name, args)
    else:
        _call(mb, name, args)


# -- wrong types -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CALLS))
def test_wrong_types_raise_type_error(name, pm):
    mb = fresh(pm)
    other = Memblock(None)
    for i, p in enumerate(CALLS[name]):
        bad = [v for v in BAD_TYPES if _is_bad_type(p.kind, v)]
        if p.kind == TYPE:
            bad += ["nope", 0, other.memory]
        if p.kind == VIEW:
            bad += [np.zeros(16, np.uint8)]
        for v in bad:
            args = _valid_args(mb, name, pm.phys_base)
            args[i] = v
            assert_refused(mb, name, args, _expected_type_error(p.kind, v))


# -- values out of range -----------------------------------------------------------------------

@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_out_of_range_values_raise_value_error(name, bits, pm):
    mb = fresh(pm, phys_addr_bits=bits)
    for i, p in enumerate(CALLS[name]):
        kind = PHYS if p.kind == PTR else p.kind
        for v in _bad_values(kind, _width(name, bits)):
            args = _valid_args(mb, name, pm.phys_base)
            args[i] = v
            assert_refused(mb, name, args, ValueError)


def _as_numpy(kind: str, v: Any) -> Any:
    if kind in (PHYS, LIMIT, ULONG, PTR):
        return np.uint64(v)
    if kind == NID:
        return np.int32(v)
    if kind == FLAGS:
        return np.uint8(v)
    if kind == BOOL:
        return np.bool_(v)
    return v


@pytest.mark.parametrize("name", sorted(set(CALLS) - {"free_late"}))
def test_numpy_integers_are_ints(name, pm):
    """The same call with numpy integer arguments gives the same result and the same state."""
    a, b = fresh(pm), fresh(pm)
    want = _call(a, name, _valid_args(a, name, pm.phys_base))
    np_args = [_as_numpy(p.kind, v)
               for p, v in zip(CALLS[name], _valid_args(b, name, pm.phys_base), strict=True)]
    got = _call(b, name, np_args)
    if isinstance(want, np.ndarray):
        assert a.virt_to_phys(want) == b.virt_to_phys(got)
        assert got.nbytes == want.nbytes
    else:
        assert got == want
        assert type(got) is type(want)
    assert snapshot(a) == snapshot(b)


def test_results_are_python_ints(pm):
    mb = fresh(pm)
    b = pm.phys_base
    for r in (mb.phys_alloc(np.uint64(0x100), np.uint64(0x100)),
              mb.phys_alloc_range(np.int64(0x100), 0x100, np.uint32(b), np.uint64(b + 0x80000)),
              mb.start_of_dram(), mb.end_of_dram(), mb.phys_mem_size(), mb.reserved_size(),
              mb.get_current_limit(), mb.add(np.uint64(b + 0x400000), np.uint64(0x1000))):
        assert type(r) is int
    for r in mb.memory.regions:
        assert type(r.base) is int and type(r.size) is int and type(r.nid) is int


# -- hypothesis: more bad values per kind ------------------------------------------------------

_BAD_TYPE_ST = st.one_of(
    st.none(), st.text(max_size=4), st.binary(max_size=4), st.booleans(),
    st.floats(allow_nan=True), st.complex_numbers(), st.just(object()),
    st.lists(st.integers(), max_size=2), st.builds(np.float32, st.floats(width=32)),
    st.builds(np.bool_, st.booleans()),
)


def _bad_int_st(kind: str, bits: int):
    if kind == PHYS:
        return st.integers(max_value=-1) | st.integers(min_value=2**bits)
    if kind == LIMIT:
        above = (st.integers(min_value=2**32, max_value=2**64 - 2) if bits == 32
                 else st.nothing())
        return st.integers(max_value=-1) | st.integers(min_value=2**64) | above
    if kind == ULONG:
        return st.integers(max_value=-1) | st.integers(min_value=2**64)
    if kind == NID:
        return st.integers(max_value=-(2**31) - 1) | st.integers(min_value=2**31)
    if kind == FLAGS:
        return st.integers(max_value=-1) | st.integers(min_value=0x80)
    raise AssertionError(kind)


_PAIRS = {
    kind: [(n, i) for n in sorted(CALLS) for i, p in enumerate(CALLS[n])
           if (PHYS if p.kind == PTR else p.kind) == kind]
    for kind in (PHYS, LIMIT, ULONG, NID, FLAGS)
}


@pytest.mark.parametrize("kind", sorted(_PAIRS))
@given(data=st.data())
def test_hypothesis_bad_ints(kind, harness_physmem, data):
    bits = data.draw(st.sampled_from([64, 32]), label="bits")
    name, i = data.draw(st.sampled_from(_PAIRS[kind]), label="call")
    v = data.draw(_bad_int_st(kind, _width(name, bits)), label="value")
    mb = fresh(harness_physmem, phys_addr_bits=bits)
    args = _valid_args(mb, name, harness_physmem.phys_base)
    args[i] = v
    assert_refused(mb, name, args, ValueError)


@given(data=st.data())
def test_hypothesis_bad_types(harness_physmem, data):
    name = data.draw(st.sampled_from(sorted(CALLS)), label="name")
    i = data.draw(st.integers(0, len(CALLS[name]) - 1), label="param")
    p = CALLS[name][i]
    v = data.draw(_BAD_TYPE_ST.filter(lambda x: _is_bad_type(p.kind, x)), label="value")
    mb = fresh(harness_physmem)
    args = _valid_args(mb, name, harness_physmem.phys_base)
    args[i] = v
    assert_refused(mb, name, args, _expected_type_error(p.kind, v))


# -- memory-returning calls without physical memory; foreign buffers ---------------------------

ALLOCS = ["alloc", "alloc_raw", "alloc_from", "alloc_low", "alloc_node", "alloc_or_panic",
          "alloc_try_nid", "alloc_try_nid_raw", "alloc_exact_nid_raw"]


@pytest.mark.parametrize("name", ALLOCS)
def test_alloc_without_physmem_raises_clear_error(name):
    mb = Memblock(None)
    populate(mb, 1 << 30)
    args = _valid_args(mb, name, 1 << 30)
    before = snapshot(mb)
    with pytest.raises(ValueError, match="PhysicalMemory"):
        _call(mb, name, args)
    assert snapshot(mb) == before


@pytest.mark.parametrize(("name", "args"), [
    ("free", [np.zeros(16, np.uint8)]),
    ("virt_to_phys", [np.zeros(16, np.uint8)]),
    ("phys_to_virt", [1 << 30, 16]),
])
def test_view_calls_without_physmem_raise(name, args):
    mb = Memblock(None)
    populate(mb, 1 << 30)
    assert_refused(mb, name, args, ValueError)


@pytest.mark.parametrize("foreign", [
    np.zeros(4096, np.uint8),
    np.zeros(4096, np.uint8)[16:],
    np.arange(10),
])
def test_free_of_foreign_array_raises_value_error(pm, foreign):
    mb = fresh(pm)
    view = mb.alloc(0x100, 0x100)
    assert view is not None
    assert_refused(mb, "free", [foreign], ValueError)
    assert_refused(mb, "free", [foreign, 16], ValueError)


def test_free_phys_needs_size(pm):
    mb = fresh(pm)
    assert_refused(mb, "free", [pm.phys_base + 0x1000], TypeError)


def test_alloc_outside_physmem_is_refused_before_reserving(pm):
    """memblock chose a block the PhysicalMemory does not have: refused, nothing reserved."""
    mb = Memblock(pm)
    mb.add(pm.phys_end + 0x100000, 0x100000)
    assert_refused(mb, "alloc", [0x1000, 0x1000], ValueError)
    assert mb.phys_alloc(0x1000, 0x1000) == pm.phys_end + 0x1ff000  # the phys_* family may


@pytest.mark.parametrize("name, args", [
    ("alloc", [0, 0x1000]), ("alloc_raw", [0, 0x1000]), ("alloc_from", [0, 0x1000, 0]),
    ("alloc_node", [0, 0x1000, 0]), ("alloc_try_nid", [0, 0x1000, 0, 0, -1]),
    ("alloc_try_nid_raw", [0, 0x1000, 0, 0, -1]), ("alloc_exact_nid_raw", [0, 0x1000, 0, 0, -1]),
    ("alloc_or_panic", [0, 0x1000]),
])
def test_size_zero_alloc_outside_physmem_returns_what_the_kernel_returns(pm, name, args):
    """Size 0 with memory only outside the PhysicalMemory: the kernel returns the candidate
    (reserving 0 bytes is a no-op), so this is an empty array, not a ValueError with an
    inverted range; nothing is reserved and freeing it frees nothing."""
    mb = Memblock(pm)
    mb.add(pm.phys_end + 0x100000, 0x100000)
    before = (mb.dump_all(log=False), mb.reserved.max)
    view = getattr(mb, name)(*args)
    assert view is not None and view.size == 0 and view.dtype == np.uint8
    assert (mb.dump_all(log=False), mb.reserved.max) == before
    assert mb.free(view) == 0
    assert (mb.dump_all(log=False), mb.reserved.max) == before
    assert mb.phys_alloc(0, 0x1000) == pm.phys_end + 0x200000      # the address it stands for
    mb.check()


def test_calls_after_free_all_refused(pm):
    class Buddy:
        max_order = 10

        def __init__(self):
            self.freed = []

        def boot_free(self, pfn, order, nid):
            self.freed.append((pfn, order, nid))

    mb = fresh(pm)
    mb.free_all(Buddy())
    for name in ("phys_alloc", "alloc"):
        assert_refused(mb, name, [0x1000, 0x1000], HandoverError)
    assert_refused(mb, "free_all", [Buddy()], HandoverError)


def test_free_all_wants_a_buddy(pm):
    mb = fresh(pm)
    assert_refused(mb, "free_all", [object()], TypeError)


# -- the constructor -----------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "exc"), [
    ({"phys_addr_bits": 48}, ValueError),
    ({"phys_addr_bits": "64"}, TypeError),
    ({"phys_addr_bits": 64.0}, TypeError),
    ({"page_size": 3000}, ValueError),
    ({"page_size": 0}, ValueError),
    ({"page_size": -4096}, ValueError),
    ({"page_size": None}, TypeError),
    ({"smp_cache_bytes": 0}, ValueError),
    ({"smp_cache_bytes": -64}, ValueError),
    ({"smp_cache_bytes": 6.4}, TypeError),
    ({"numa": "yes"}, TypeError),
    ({"numa": None}, TypeError),
    ({"max_numnodes": 0}, ValueError),
    ({"max_numnodes": True}, TypeError),
    ({"init_regions": 0}, ValueError),
    ({"init_regions": -1}, ValueError),
    ({"init_regions": "128"}, TypeError),
    ({"arch_low_address_limit": -1}, ValueError),
    ({"arch_low_address_limit": 2**64}, ValueError),
    ({"arch_low_address_limit": 2**32, "phys_addr_bits": 32}, ValueError),
    ({"bottom_up_kernel_end": -1}, ValueError),
    ({"bottom_up_kernel_end": "x"}, TypeError),
    ({"kernel_version": (6,)}, TypeError),
    ({"kernel_version": "6.6"}, TypeError),
    ({"kernel_version": (6, 6.5)}, TypeError),
    ({"kernel_version": (6, -1)}, ValueError),
])
def test_constructor_bad_arguments(kw, exc):
    with pytest.raises(exc):
        Memblock(None, **kw)


@pytest.mark.parametrize("physmem", ["memory", 4096, object()])
def test_constructor_bad_physmem(physmem):
    with pytest.raises(TypeError):
        Memblock(physmem)


def test_constructor_numpy_ints():
    mb = Memblock(None, phys_addr_bits=np.int64(32), page_size=np.uint32(4096),
                  smp_cache_bytes=np.int16(32), max_numnodes=np.uint8(16),
                  init_regions=np.int64(8), kernel_version=(np.int32(6), np.int32(6)))
    assert mb.phys_addr_max == 2**32 - 1 and mb.memory.max == 8


# -- what the kernel accepts follows its return convention ---------------------------------------

@pytest.mark.parametrize("name", ["add", "remove", "reserve", "reserve_kern", "phys_free",
                                  "mark_hotplug", "clear_hotplug", "mark_mirror", "mark_nomap",
                                  "clear_nomap", "reserved_mark_noinit", "physmem_add"])
def test_size0_returns_0_and_changes_nothing(name, pm):
    mb = fresh(pm)
    before = snapshot(mb)
    assert getattr(mb, name)(pm.phys_base + 0x40000, 0) == 0
    assert snapshot(mb) == before


def test_unaligned_and_outside_memory_accepted(pm):
    mb = fresh(pm)
    b = pm.phys_base
    assert mb.add(b + 0x400001, 3) == 0
    assert (b + 0x400001, 3) in [(r.base, r.size) for r in mb.memory.regions]
    assert mb.reserve(2**40, 0x1000) == 0
    assert mb.reserve(2**64 - 0x10, 0x100) == 0          # base + size overflows: capped
    assert mb.reserved.regions[-1][:2] == (2**64 - 0x10, 0xf)
    assert mb.remove(2**50, 0x1000) == 0                 # nothing there
    assert mb.phys_free(2**50, 0x1000) == 0              # never reserved


def test_kernel_failures_return_kernel_values(pm):
    mb = fresh(pm)
    before = snapshot(mb)
    assert mb.phys_alloc(2**40, 0x1000) == 0
    assert mb.phys_alloc_range(0x1000, 0x1000, 2**40, 2**41) == 0
    assert mb.phys_alloc_try_nid(2**40, 0x1000, 3) == 0
    assert mb.alloc_range_nid(2**40, 0x1000, 0, MEMBLOCK_ALLOC_ANYWHERE, 0, True) == 0
    assert mb.alloc(2**40, 0x1000) is None
    assert mb.alloc_try_nid(2**40, 0x1000, 0, 0, NUMA_NO_NODE) is None
    assert mb.alloc_node(2**40, 0x1000, 99) is None
    assert snapshot(mb) == before
    with pytest.raises(MemblockPanic, match="Failed to allocate"):
        mb.alloc_or_panic(2**40, 0x1000)
    assert snapshot(mb) == before
    mb.free(None)                                       # the kernel's memblock_free(NULL)
    assert snapshot(mb) == before


def test_odd_alignments_are_not_errors():
    """Non-power-of-two align is the kernel's bit-mask rounding; align 0 = SMP_CACHE_BYTES."""
    mb = Memblock(None)
    mb.add(0x100000, 0x100000)
    assert mb.phys_alloc(0x12, 3) == 0x1fffec           # (0x200000 - 0x12) & ~2
    mb2 = Memblock(None, smp_cache_bytes=32)
    mb2.add(0x100000, 0x100000)
    assert mb2.phys_alloc(0x12, 0) == 0x1fffe0          # round_down(0x1fffee, 32)


def test_enomem_convention_v6_6():
    """<= 6.6 an array that may not grow makes the mutator return -ENOMEM (no exception)."""
    mb = Memblock(None, kernel_version=(6, 6))
    for i in range(128):
        mb.reserve(0x100000 + 0x2000 * i, 0x1000)
    before = snapshot(mb)
    assert mb.reserve(0x900000, 0x1000) == -errno.ENOMEM
    assert mb.mark_nomap(0x100000, 0x800) == 0            # memory is not full
    assert mb.reserved_mark_noinit(0x100000, 0x800) == -errno.ENOMEM
    assert mb.set_node(0x100000, 0x800, mb.reserved, 1) == -errno.ENOMEM
    assert snapshot(mb) == before
