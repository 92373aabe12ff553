"""Bad input everywhere: every public constructor, method and function of the package.

The bad-input rule: a caller's mistake raises a clear ``TypeError`` / ``ValueError`` (or the
package's subclass of one: :class:`arena.errors.ForeignBufferError`,
:class:`arena.errors.DoubleFreeError`, ...) and leaves every object byte-for-byte as it was.

The walk: ``TABLE`` lists, per public class, each method that takes arguments with a valid
value for every parameter and the bad values for it (wrong types — None, str, float, bool,
numpy floats and bools, lists, objects — where an int is needed; negative numbers, zero where
it is not allowed, values past 2**64, alignments that are not powers of two, unknown nodes,
views of another arena or memory, parts and copies of allocations, freed views). For each bad
value the call is made with every other argument valid; it must raise the expected error
class, and a snapshot of the object (its whole observable state plus every byte of its
physical memory and the record of written pages) must be unchanged. The positive control
calls every method with its valid values as numpy integers. Memblock's ~60 methods are walked
the same way by ``tests/test_memblock_badinput.py`` (its ``CALLS`` table); this file walks its
constructor and the cases that table does not hold (views of another memory).

``test_table_covers_every_public_method`` fails when a public method is added without an entry,
so the walk stays complete. Closed objects are walked in ``tests/test_lifetime.py``.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from arena.arena import Arena
from arena.buddy import BuddyAllocator
from arena.errors import DoubleFreeError, ForeignBufferError
from arena.memblock import Memblock
from arena.physmem import PhysicalMemory, parse_size

PHYS_BASE = 1 << 30
SIZE = 256 << 10
PS = 4096

T, V = TypeError, ValueError

#: Wrong types where an int is needed (numpy integers are ints, numpy floats/bools are not).
NOT_INT: list[Any] = [None, "4096", 4096.0, 1.5, True, False, np.float64(4096), np.bool_(True),
                      object(), [4096], (4096,), 1j]
#: Wrong types where a size that may also be a string (``"4 KiB"``) is needed.
NOT_SIZE: list[Any] = [None, 4096.0, True, np.float64(4096), object(), [4096]]
#: Wrong types where a bool is needed.
NOT_BOOL: list[Any] = [None, 1, 0, "yes", 1.0, np.int64(1), object()]
HUGE = [2**64, 2**64 + PS, 2**70]
NEG = [-1, -(2**63)]


def types(values: list[Any]) -> list[tuple[Any, type]]:
    return [(v, T) for v in values]


def values(vals: list[Any], exc: type | tuple = V) -> list[tuple[Any, Any]]:
    return [(v, exc) for v in vals]


@dataclass
class P:
    """One parameter: its valid value (from the context) and its bad values with the error
    class each must raise."""

    valid: Callable[[Any], Any]
    bad: list[tuple[Any, Any]] = field(default_factory=list)
    bad_from: Callable[[Any], list[tuple[Any, Any]]] | None = None  # context-dependent ones


def const(v: Any) -> Callable[[Any], Any]:
    return lambda ctx: v


# -- the objects under test -------------------------------------------------------------------

class Ctx:
    """Fresh objects for one test: a 2-node PhysicalMemory ``pm`` (with written pages), a
    Memblock ``mb`` over it, a BuddyAllocator ``buddy`` fed by another memblock, an Arena
    ``a`` with a live allocation ``v`` and a freed one ``f``, and foreign views ``foreign``
    (another memory at the same physical address) and ``vb`` (another arena)."""

    def __init__(self) -> None:
        self.pm = PhysicalMemory(SIZE, phys_base=PHYS_BASE, nodes=2)
        self.pm.fill(PHYS_BASE + 3 * PS, 100, 0x5A)
        self.other_pm = PhysicalMemory(SIZE, phys_base=PHYS_BASE)
        self.foreign = self.other_pm.view(PHYS_BASE + PS, PS)
        self.mb = Memblock(self.pm, max_numnodes=4)
        self.mb.add_node(PHYS_BASE, SIZE // 2, 0)
        self.mb.add_node(PHYS_BASE + SIZE // 2, SIZE // 2, 1)
        self.mb.reserve(PHYS_BASE + 5 * PS, 100)
        self.mbview = self.mb.alloc(256, 64)
        self.bpm = PhysicalMemory(SIZE, phys_base=PHYS_BASE, nodes=2)
        bmb = Memblock(self.bpm, max_numnodes=4)
        bmb.add_node(PHYS_BASE, SIZE // 2, 0)
        bmb.add_node(PHYS_BASE + SIZE // 2, SIZE // 2, 1)
        bmb.reserve(PHYS_BASE, 3 * PS)
        self.buddy = BuddyAllocator(self.bpm, max_order=4)
        bmb.free_all(self.buddy)
        self.bview = self.buddy.alloc_pages(1, node=1)
        self.bphys = self.bpm.phys_of(self.bview)
        self.bfree = next(self.buddy.free_blocks(0))[0] * PS
        self.a = Arena(SIZE, nodes=2)
        self.v = self.a.alloc(100)
        self.v[:] = 7
        self.f = self.a.alloc(64)
        self.a.free(self.f)
        self.b = Arena(SIZE)
        self.vb = self.b.alloc(100)
        self.empty = Arena(SIZE)

    def close(self) -> None:
        for name in ("foreign", "mbview", "bview", "v", "f", "vb"):
            setattr(self, name, None)
        gc.collect()
        for obj in (self.a, self.b, self.empty, self.pm, self.other_pm, self.bpm):
            obj.close()


@pytest.fixture
def ctx():
    c = Ctx()
    yield c
    c.close()


def _pm_bytes(pm: PhysicalMemory) -> tuple:
    return pm.read(pm.phys_base, pm.size), tuple(pm._written), pm.closed


def _mb_state(mb: Memblock) -> tuple:
    return (tuple((tuple(t.regions), t.cnt, t.max, t.total_size)
                  for t in (mb.memory, mb.reserved, mb.physmem)),
            mb.bottom_up, mb.current_limit, mb.handed_over)


def snapshot(ctx: Ctx, obj: Any) -> tuple:
    """Everything observable about ``obj`` and the memory under it."""
    if isinstance(obj, PhysicalMemory):
        return _pm_bytes(obj), tuple(obj.slices), tuple(obj.bind_status())
    if isinstance(obj, Memblock):
        return _mb_state(obj), _pm_bytes(ctx.pm)
    if isinstance(obj, BuddyAllocator):
        return (obj.dump(limit=1 << 20), tuple(sorted(obj.free_blocks())), obj.nr_free_pages(),
                obj.managed_pages(), _pm_bytes(ctx.bpm))
    if isinstance(obj, Arena):
        if obj.closed:
            return ("closed",)
        st = obj.stats()
        live = tuple((i.phys, i.size, i.reserved, i.seq) for i in obj.live())
        return (st.bytes_allocated, st.bytes_requested, st.live_allocations,
                st.num_allocations, st.free_bytes, st.max_memory, live,
                _mb_state(obj.memblock), _pm_bytes(obj.physmem),
                None if obj.buddy is None else obj.buddy.dump(limit=1 << 20))
    return ()


# -- the table --------------------------------------------------------------------------------

PM_PHYS = P(const(PHYS_BASE + PS), types(NOT_INT) + values(
    [PHYS_BASE - 1, PHYS_BASE + SIZE, -1, 0] + HUGE))
PM_SIZE = P(const(PS), types(NOT_INT) + values([0, -1, SIZE + 1] + HUGE))
PM_VIEW_SIZE = P(const(PS), types(NOT_INT) + values([-1, SIZE + 1] + HUGE))  # 0: empty view

BUDDY_ORDER = P(const(1), types(NOT_INT) + values([-1, 5, 64] + HUGE))
BUDDY_NODE = P(const(1), types([v for v in NOT_INT if v is not None]) + values([2, 7, -2]))
BUDDY_STRICT = P(const(False), types([v for v in NOT_BOOL if v is not None]))

ARENA_NODE = P(const(1), types([v for v in NOT_INT if v is not None]) + values([2, 7, -2]))
ARENA_ALIGN = P(const(64), types([v for v in NOT_INT if v is not None])
                + values([0, 3, 48, -64, 1 << 31] + HUGE))
ARENA_BOOL = P(const(False), types(NOT_BOOL))
ARENA_VIEW = P(lambda c: c.v, types([None, [1, 2], b"xx", "v", 5]),
               bad_from=lambda c: [(np.zeros(100, np.uint8), ForeignBufferError),
                                   (c.vb, ForeignBufferError), (c.v[1:], ForeignBufferError),
                                   (c.v[:-1], ForeignBufferError),
                                   (c.v[::2], ForeignBufferError),
                                   (c.v.copy(), ForeignBufferError),
                                   (c.foreign, ForeignBufferError),
                                   (c.f, DoubleFreeError)])
# A file without write(): print()'s own convention is AttributeError; accepted as well.
FILE = P(const(None), values([5, "out.txt", object()], (T, AttributeError)))

TABLE: dict[type, dict[str, dict[str, P]]] = {
    PhysicalMemory: {
        "__init__": {
            "size": P(const(SIZE), types(NOT_SIZE) + values(
                [0, -1, PS + 1, "12 GB", "abc", "", "-4K"] + HUGE)),
            "phys_base": P(const(PHYS_BASE), types(NOT_SIZE) + values([-1, 123, 2**64 - PS])),
            "nodes": P(const(2), types([2.5, True, "2", object(), {1: 2}]) + values(
                [0, -1, 65, [0.5, 0.6], [PS], [SIZE - PS, PS + 1], [0.0, 1.0],
                 [float("nan"), 1.0]])),
            "hugepages": P(const(False), types(NOT_BOOL)),
            "populate": P(const(False), types(NOT_BOOL)),
            "noreserve": P(const(True), types(NOT_BOOL)),
            "shared": P(const(False), types(NOT_BOOL)),
            # without shared=True neither may be given
            "fd": P(const(None), types([1.5, "3", object(), [3]]) + values([3, -1])),
            "offset": P(const(0), types(NOT_INT[1:]) + values([-1, 1, PS])),
        },
        "contains": {"phys": P(const(PHYS_BASE), types(NOT_INT)),
                     "size": P(const(PS), types(NOT_INT) + values(NEG))},
        "view": {
            "phys": PM_PHYS, "size": PM_VIEW_SIZE,
            "dtype": P(const(np.uint8), types([object, np.dtype("O"), "no such dtype", 5.5])),
            "shape": P(const(None), types([(1.5,), "x", (None,)]) + values(
                [(3,), (-1,), (PS + 1,), (2, 3)])),
        },
        "phys_of": {"array": P(lambda c: c.pm.view(PHYS_BASE + PS, 8),
                               types([None, [1, 2], b"abc", memoryview(b"abc")]),
                               bad_from=lambda c: [(np.zeros(8), V), (c.foreign, V)])},
        "fill": {"phys": PM_PHYS, "size": PM_SIZE,
                 "byte": P(const(0x11), types(NOT_INT) + values([-1, 256, 2**64]))},
        "zero": {"phys": PM_PHYS, "size": PM_SIZE},
        "read": {"phys": PM_PHYS, "size": PM_SIZE},
        "resident_bytes": {"phys": P(const(PHYS_BASE), types([v for v in NOT_INT if v])),
                           "size": P(const(PS), types([v for v in NOT_INT if v]) + values(
                               [0, -1] + HUGE))},
        "release": {"phys": P(const(PHYS_BASE + PS), PM_PHYS.bad + values([PHYS_BASE + 1])),
                    "size": P(const(PS), PM_SIZE.bad + values([100, PS + 1])),
                    "unviewed": P(const(False), types(NOT_BOOL))},
        "advise_hugepages": {"phys": P(const(PHYS_BASE + PS), PM_PHYS.bad + values(
                                 [PHYS_BASE + 1])),
                             "size": P(const(PS), PM_SIZE.bad + values([100, PS + 1]))},
        "node_of_page": {"phys": P(const(PHYS_BASE), PM_PHYS.bad)},
        "protect": {"phys": P(const(PHYS_BASE + PS), PM_PHYS.bad + values([PHYS_BASE + 1])),
                    "size": P(const(PS), PM_SIZE.bad + values([100, PS + 1])),
                    "prot": P(const(3), types(NOT_INT) + values([-1, 2, 4, 7, 2**64]))},
    },
    Memblock: {
        "__init__": {
            "physmem": P(lambda c: c.pm, types(["pm", 5, object(), np.zeros(4)])),
            "phys_addr_bits": P(const(64), types(NOT_INT) + values([0, 16, 48, 128, -64])),
            "page_size": P(const(4096), types(NOT_INT) + values([0, -4096, 3, 4097, 2**65])),
            "smp_cache_bytes": P(const(64), types(NOT_INT) + values([0, -1] + HUGE)),
            "numa": P(const(True), types(NOT_BOOL)),
            "max_numnodes": P(const(64), types(NOT_INT) + values([0, -1, (1 << 16) + 1])),
            "init_regions": P(const(128), types(NOT_INT) + values([0, -1, 1 << 41])),
            "arch_low_address_limit": P(const(0xFFFFFFFF), types(NOT_INT) + values(
                [-1] + HUGE)),
            "bottom_up_kernel_end": P(const(None), types(NOT_INT[1:]) + values([-1] + HUGE)),
            "kernel_version": P(const(None), types(["6.1", 6, (6,), (6, 1, 0), (6, "1"),
                                                    (6.0, 1), [6, 1]]) + values(
                [(1, 0), (6, -1)])),
            "region_size": P(const(None), types(NOT_INT[1:]) + values([0, -1, 4097])),
            "phys_map": P(const(False), types(NOT_BOOL)),
        },
        "free": {"view_or_phys": P(lambda c: c.mbview, [],
                                   bad_from=lambda c: [(c.foreign, V), (np.zeros(8), V)]),
                 "size": P(const(None), types(NOT_INT[1:]) + values([-1] + HUGE))},
        "virt_to_phys": {"view": P(lambda c: c.mbview, types([None, [1], 5]),
                                   bad_from=lambda c: [(c.foreign, V), (np.zeros(8), V)])},
    },
    BuddyAllocator: {
        "__init__": {
            "physmem": P(lambda c: c.bpm, types(["pm", 5, object(), np.zeros(4)])),
            "page_size": P(const(4096), types(NOT_INT) + values([0, -4096, 3, 4097])),
            "max_order": P(const(10), types(NOT_INT) + values([-1, 63] + HUGE)),
        },
        "boot_free": {
            # page 1 is reserved, so never handed over: valid; page 16 is managed already
            "pfn": P(const(PHYS_BASE // PS + 1),
                     types(NOT_INT) + values([-1, PHYS_BASE // PS + 16,
                                              (PHYS_BASE + SIZE) // PS, 2**64])),
            "order": P(const(0), types(NOT_INT) + values([-1, 5] + HUGE)),
            "nid": P(const(1), types(NOT_INT) + values([-1, -2])),
        },
        "alloc_pages": {"order": BUDDY_ORDER, "node": BUDDY_NODE, "strict_node": BUDDY_STRICT},
        "alloc_pages_phys": {"order": BUDDY_ORDER, "node": BUDDY_NODE,
                             "strict_node": BUDDY_STRICT},
        "free_pages": {
            "view_or_phys": P(lambda c: c.bview, types([None, "x", 1.5, True, [1]]),
                              bad_from=lambda c: [
                                  (np.zeros(2 * PS, np.uint8), ForeignBufferError),
                                  (c.foreign, ForeignBufferError),
                                  (c.bview[PS:], ForeignBufferError),
                                  (c.bview[:PS], ForeignBufferError),
                                  (c.bphys + PS, ForeignBufferError),
                                  (c.bphys + 1, ForeignBufferError),
                                  (-PS, ForeignBufferError),
                                  (c.bfree, DoubleFreeError)]),
            "order": P(const(1), types(NOT_INT) + values([-1, 5, 0, 2], (V,))),
        },
        "nr_free_pages": {"node": BUDDY_NODE},
        "managed_pages": {"node": BUDDY_NODE},
        "free_area": {"node": P(const(1), BUDDY_NODE.bad + values([None, -1]))},
        "free_blocks": {"node": BUDDY_NODE},
        "overlaps_managed": {"pfn": P(const(PHYS_BASE // PS), types(NOT_INT) + values([-1])),
                             "npages": P(const(1), types(NOT_INT) + values([-1]))},
        "buddyinfo": {"memblock": P(const(None), types([5, "mb", object()]))},
        "zoneinfo": {"memblock": P(const(None), types([5, "mb", object()]))},
        "dump": {"limit": P(const(16), types(NOT_INT[1:]) + values([-1]))},
    },
    Arena: {
        "__init__": {
            "size": P(const(SIZE), types(NOT_SIZE) + values([0, -1, "12 GB", "abc"] + HUGE)),
            "nodes": P(const(2), types([2.5, True, "2", object()]) + values([0, -1, [0.5, 0.6]])),
            "budget": P(const(None), types([1.5, True, object(), [1]]) + values(
                [-1, "12 GB", "x"])),
            "align": P(const(64), types([v for v in NOT_INT if v is not None]) + values(
                [0, 3, 48, -64, 1 << 31] + HUGE)),
            "debug": P(const(False), types([1, 0, "yes", 1.0, object()])),
            "hugepages": P(const(False), types(NOT_BOOL)),
            "quarantine": P(const(None), types([1.5, True, object()]) + values([-1, "x"])),
            "slab": P(const(True), types(NOT_BOOL)),
            "lifetime": P(const("manual"), types([None, 5, 1.5, True, object(), b"gc", ["gc"]])
                          + values(["GC", "auto", "", " gc"])),
            "track_callers": P(const(False), types(NOT_BOOL)),
            # (like budget: a limit above the capacity means no limit)
            "retain": P(const(None), types([1.5, True, object(), [1]]) + values(
                [-1, "12 GB", "x"])),
            "decay": P(const(10.0), types(["10", True, object(), [1], 1j]) + values(
                [-1, -0.5, float("inf"), float("nan")])),
            "redzone": P(const(None), types(["16", 16.0, True, object(), [16]]) + values(
                [-1, 0, 7, 4097, 2**64])),
            "guard": P(const("end"), types([None, 1, True, b"end", ["end"]]) + values(
                ["END", "both", ""])),
            "shared": P(const(False), types(NOT_BOOL)),
            "_physmem": P(const(None), types([5, "pm", object(), np.zeros(4)])),
        },
        "alloc": {"nbytes": P(const(100), types(NOT_INT) + values([-1, 2**62] + HUGE)),
                  "align": ARENA_ALIGN, "node": ARENA_NODE, "strict_node": ARENA_BOOL,
                  "zero": P(const(True), types(NOT_BOOL))},
        "alloc_array": {"shape": P(const((4, 5)), types([(1.5,), "x", None, (None,), 2.5])
                                   + values([(-1,), (4, -5)])),
                        "dtype": P(const(np.float32), types([object, "no such dtype"])),
                        "align": ARENA_ALIGN, "node": ARENA_NODE, "strict_node": ARENA_BOOL,
                        "zero": P(const(True), types(NOT_BOOL))},
        "free": {"array": ARENA_VIEW},
        "info": {"array": ARENA_VIEW},
        "owns": {"array": P(lambda c: c.v, types([None, [1, 2], b"xx", 5]))},
        "check": {"repair": ARENA_BOOL},
        "handover": {"max_order": P(const(4), types(NOT_INT) + values([-1, 63] + HUGE))},
        "print_stats": {"file": FILE},
        "dump": {"file": FILE},
        "close": {"defer": P(const(False), types([v for v in NOT_BOOL if v is not None]))},
    },
}

#: Public methods without arguments (nothing to get wrong) or walked elsewhere.
NO_ARGS: dict[type, set[str]] = {
    PhysicalMemory: {"bind_status", "check", "close", "exporter"},
    Memblock: set(),  # the methods are walked by tests/test_memblock_badinput.py
    BuddyAllocator: {"check"},
    Arena: {"format_leaks", "leaks", "live", "numpy_allocator", "release", "release_unused",
            "reset", "scope", "stats", "bytes_allocated", "max_memory", "num_allocations",
            "total_bytes_allocated"},
}

#: The object each class's methods are called on.
OBJECTS: dict[type, Callable[[Ctx], Any]] = {
    PhysicalMemory: lambda c: c.pm,
    Memblock: lambda c: c.mb,
    BuddyAllocator: lambda c: c.buddy,
    Arena: lambda c: c.a,
}
#: ... except these: Arena.close() is tried on an arena without views (so it can succeed).
OBJECT_FOR: dict[tuple[type, str], Callable[[Ctx], Any]] = {
    (Arena, "close"): lambda c: c.empty,
}

#: Gaps found by this walk and reported (BUG: the call does not refuse the bad value with
#: TypeError/ValueError, or changes state). Each is proven by ``test_known_gaps`` (strict
#: xfail: it starts failing the suite once fixed, so the entry must then be removed).
KNOWN_GAPS: dict[tuple[type, str, str], str] = {}


def _target(ctx: Ctx, cls: type, name: str) -> Any:
    return OBJECT_FOR.get((cls, name), OBJECTS[cls])(ctx)


def _public_methods(cls: type) -> set[str]:
    """The public methods of ``cls`` and of the parts (mixins) it is composed of."""
    return {n for k in cls.__mro__ if k.__module__.startswith("arena.")
            for n, v in vars(k).items()
            if not n.startswith("_") and callable(v) and not isinstance(v, (property,
                                                                              staticmethod))}


def test_table_covers_every_public_method():
    """Every public method taking arguments is walked (here or in test_memblock_badinput)."""
    from tests.test_memblock_badinput import CALLS

    missing = {}
    for cls, table in TABLE.items():
        walked = set(table) | NO_ARGS[cls] | (set(CALLS) if cls is Memblock else set())
        if cls is Memblock:
            walked |= {"allow_resize", "get_current_limit", "get_bottom_up", "start_of_dram",
                       "end_of_dram", "phys_mem_size", "reserved_size", "has_mirror",
                       "dump_all", "check", "for_each_mem_range", "for_each_mem_range_rev",
                       "for_each_mem_region", "for_each_reserved_mem_region",
                       "for_each_reserved_mem_range", "estimated_nr_free_pages",
                       "set_kho_scratch_only", "clear_kho_scratch_only", "is_bottom_up",
                       "free_all", "array_bytes"}
        gap = _public_methods(cls) - walked
        if gap:
            missing[cls.__name__] = sorted(gap)
        params = {name: set(inspect.signature(getattr(cls, name)).parameters) - {"self"}
                  for name in table}
        for name, spec in table.items():
            extra = set(spec) - params[name]
            assert not extra, f"{cls.__name__}.{name} has no parameters {extra}"
            unwalked = params[name] - set(spec)
            if unwalked:
                missing[f"{cls.__name__}.{name} parameters"] = sorted(unwalked)
    assert not missing, f"public methods missing from the bad-input walk: {missing}"


def _cases() -> list[tuple[type, str]]:
    return [(cls, name) for cls, table in TABLE.items() for name in table]


def _call(ctx: Ctx, cls: type, name: str, kwargs: dict[str, Any]) -> Any:
    sig = inspect.signature(getattr(cls, name))
    args, kw = [], {}
    for pname, prm in sig.parameters.items():
        if pname == "self" or pname not in kwargs:
            continue
        if prm.kind is inspect.Parameter.KEYWORD_ONLY:
            kw[pname] = kwargs[pname]
        else:
            args.append(kwargs[pname])
    if name == "__init__":
        obj = cls(*args, **kw)
        if hasattr(obj, "close"):
            obj.close()
        return None
    out = getattr(_target(ctx, cls, name), name)(*args, **kw)
    if inspect.isgenerator(out) or name == "free_blocks":
        out = list(out)
    return out


def _describe(v: Any) -> str:
    r = repr(v)
    return r if len(r) < 60 else r[:57] + "..."


@pytest.mark.parametrize(("cls", "name"), _cases(), ids=lambda x: getattr(x, "__name__", x))
def test_bad_values_are_refused_and_change_nothing(ctx, cls, name):
    spec = TABLE[cls][name]
    failures = []
    obj = None if name == "__init__" else _target(ctx, cls, name)
    for pname in spec:
        if (cls, name, pname) in KNOWN_GAPS:
            continue
        failures += _try_bad_values(ctx, cls, name, pname, obj)
    assert not failures, f"{cls.__name__}.{name}:\n  " + "\n  ".join(failures)


def _try_bad_values(ctx: Ctx, cls: type, name: str, pname: str, obj: Any) -> list[str]:
    """Each bad value of parameter ``pname``: the failures (wrong or no error, state changed)."""
    spec = TABLE[cls][name]
    p = spec[pname]
    failures = []
    bad = list(p.bad) + (p.bad_from(ctx) if p.bad_from else [])
    for value, exc in bad:
        kwargs = {n: q.valid(ctx) for n, q in spec.items()}
        kwargs[pname] = value
        before = snapshot(ctx, obj)
        try:
            _call(ctx, cls, name, kwargs)
        except exc:
            pass
        except Exception as e:  # noqa: BLE001 - any other class is a failure to report
            failures.append(f"{pname}={_describe(value)}: raised {type(e).__name__}: {e} "
                            f"(expected {getattr(exc, '__name__', exc)})")
            continue
        else:
            failures.append(f"{pname}={_describe(value)}: accepted (expected "
                            f"{getattr(exc, '__name__', exc)})")
            continue
        if snapshot(ctx, obj) != before:
            failures.append(f"{pname}={_describe(value)}: refused but changed the state")
    return failures


if KNOWN_GAPS:   # (a parametrization over nothing would show as a skipped test)
    @pytest.mark.parametrize("gap", sorted(KNOWN_GAPS, key=lambda g: (g[0].__name__, g[1], g[2])),
                             ids=lambda g: f"{g[0].__name__}.{g[1]}.{g[2]}")
    def test_known_gaps(ctx, gap, request):
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"BUG: {KNOWN_GAPS[gap]}"))
        cls, name, pname = gap
        obj = None if name == "__init__" else _target(ctx, cls, name)
        failures = _try_bad_values(ctx, cls, name, pname, obj)
        assert not failures, "\n".join(failures)


def _numpy(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int):
        return v
    return np.int64(v) if v < 2**63 else np.uint64(v)


@pytest.mark.parametrize(("cls", "name"), _cases(), ids=lambda x: getattr(x, "__name__", x))
def test_valid_values_as_numpy_integers_are_accepted(ctx, cls, name):
    """The positive control: the table's valid values work, also as numpy integers."""
    spec = TABLE[cls][name]
    _call(ctx, cls, name, {n: _numpy(p.valid(ctx)) for n, p in spec.items()})


# -- module-level functions ---------------------------------------------------------------------

@pytest.mark.parametrize(("value", "exc"), types([None, 1.5, True, [1], np.float64(1), object()])
                         + values(["", "1 GB", "-1", "1.5K", "0x", "4 KiBB", -1, 0]))
def test_parse_size_refuses(value, exc):
    with pytest.raises(exc):
        parse_size(value)


@pytest.mark.parametrize("fn", ["parse", "parse_dump"])
@pytest.mark.parametrize(("value", "exc"), types([None, 5, b"memblock_add: [0x0-0x1]", ["x"]]))
def test_trace_parsers_refuse_non_text(fn, value, exc):
    import arena.trace as trace

    with pytest.raises(exc):
        getattr(trace, fn)(value)


@pytest.mark.parametrize(("kwargs", "exc"), [({"ops": 5}, T), ({"ops": "memblock_add"}, T),
                                             ({"ops": [], "settings": "x"}, T),
                                             ({"ops": [], "settings": {}}, T)])
def test_replay_refuses_wrong_types(kwargs, exc):
    import arena.trace as trace

    with pytest.raises(exc):
        trace.replay(**kwargs)


def test_kernel_functions_refuse_like_the_methods():
    """The kernel-spelled wrappers (``arena.kernel``) check like the methods they wrap and
    change nothing."""
    import arena.kernel as k

    k.reset()
    k.memblock_add(0x100000, 0x100000)
    before = _mb_state(k.memblock)
    for call, args, exc in [(k.memblock_add, (None, 1), T), (k.memblock_reserve, (1.5, 1), T),
                            (k.memblock_remove, (-1, 1), V), (k.memblock_add, (2**64, 1), V),
                            (k.memblock_phys_alloc, (0x100, "1"), T),
                            (k.memblock_set_node, (0, 1, "nope", 0), V)]:
        with pytest.raises(exc):
            call(*args)
        assert _mb_state(k.memblock) == before
    k.reset()
