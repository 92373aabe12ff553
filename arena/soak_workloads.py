"""The soak's workloads: one allocator and its reference model driven side by side.

Kernel counterpart: none. :meth:`Workload.apply` runs one operation on both,
:meth:`Workload.verify` compares the whole state (region arrays, free space, statistics,
``check()``) and that every live allocation still holds the unique pattern written into it
when it was made (an overlap or a lost write shows at once). Operations are plain tuples
``(name, *args)`` drawn through a :class:`Chooser` (a seeded ``random.Random`` in the soak,
Hypothesis' ``data.draw`` in the tests), so a failing run prints as a list of calls.

This module: the choosers, the :class:`Workload` base, :class:`MemblockWorkload`,
:class:`BuddyWorkload` and the Hypothesis :func:`state_machine` factory;
:class:`arena.soak_arena.ArenaWorkload` lives beside it. Models: :mod:`arena.soak_models`;
the runner: :mod:`arena.soak`.
"""

from __future__ import annotations

import random
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from arena.constants import (
    DRIVER_MANAGED,
    HOTPLUG,
    KHO_SCRATCH,
    NOMAP,
    NUMA_NO_NODE,
    RSRV_KERN,
    RSRV_NOINIT,
)
from arena.constants import PHYS_ADDR_MAX_64 as MASK64
from arena.errors import InvariantError, InvariantViolation, KernelBug, WorkloadDead
from arena.soak_models import BuddyModel, MemblockModel

__all__ = [
    "BuddyWorkload",
    "Chooser",
    "DataChooser",
    "MemblockWorkload",
    "RandomChooser",
    "Workload",
    "format_op",
    "pattern",
    "state_machine",
]


# -- choosers ------------------------------------------------------------------------------------

class Chooser(Protocol):
    """Where operation arguments come from."""

    def int(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``."""

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``."""


class RandomChooser:
    """A :class:`Chooser` over ``random.Random(seed)`` (the soak)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``."""
        return self.rng.randint(lo, hi)

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``."""
        return seq[self.rng.randrange(len(seq))]


class DataChooser:
    """A :class:`Chooser` over Hypothesis' ``data`` object (``st.data()``), so Hypothesis shrinks."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``, drawn by Hypothesis."""
        from hypothesis import strategies as st

        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``, drawn by Hypothesis."""
        from hypothesis import strategies as st

        return self.data.draw(st.sampled_from(list(seq)))


def pattern(serial: int, size: int) -> bytes:
    """The unique fill pattern of allocation number ``serial``: ``size`` bytes, O(size)."""
    x = np.arange(size, dtype=np.uint64)
    x = (x * np.uint64(2654435761) + np.uint64(serial * 40503 + 1)) >> np.uint64(7)
    return (x & np.uint64(0xFF)).astype(np.uint8).tobytes()


def _pick(c: Chooser, *makers: Callable[[], Any]) -> Any:
    """Choose one of ``makers`` and call it (so only the chosen value is drawn)."""
    return makers[c.int(0, len(makers) - 1)]()


# -- workloads ---------------------------------------------------------------------------------

def _violation(exc: BaseException, where: str, ops: Sequence[tuple]) -> InvariantViolation:
    """An :class:`InvariantViolation` for ``exc``, holding text only (no frames, so no views
    are kept alive by the report)."""
    if isinstance(exc, InvariantViolation):
        return InvariantViolation(str(exc), ops)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
    return InvariantViolation(f"{where} raised {type(exc).__name__}: {exc}\n{tb}", ops)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, int):
        return hex(v) if abs(v) >= 4096 else str(v)
    return repr(v)


def format_op(op: tuple) -> str:
    """``("add", 1, 2)`` → ``add(1, 2)``."""
    return f"{op[0]}({', '.join(_fmt(a) for a in op[1:])})"


class Workload:
    """One allocator and its model driven side by side.

    Subclasses define ``KINDS`` (operation name → weight), ``_gen_<name>(chooser)`` returning
    an operation tuple (or ``None`` when the operation makes no sense now) and
    ``_op_<name>(*args)`` running it on both sides. :meth:`verify` compares everything.
    """

    KINDS: dict[str, int] = {}
    name = "workload"

    def __init__(self) -> None:
        self.ops: list[tuple] = []
        self.live: dict[int, tuple[np.ndarray, bytes]] = {}   # key -> (view, pattern)
        self.serial = 0
        self.peak_regions = 0
        self.dead = False   # the kernel hit BUG() (predicted): nothing more to compare

    # operation dispatch --------------------------------------------------------------------

    def gen(self, kind: str, c: Chooser) -> tuple | None:
        """An operation of ``kind`` with arguments from ``c`` (``None``: not possible now)."""
        return None if self.dead else getattr(self, f"_gen_{kind}")(c)

    def random_op(self, c: Chooser) -> tuple | None:
        """An operation of a kind chosen by weight."""
        kinds = [k for k, w in self.KINDS.items() for _ in range(w)]
        return self.gen(c.choice(kinds), c)

    def apply(self, op: tuple) -> None:
        """Run ``op`` on the allocator and the model; raise :class:`InvariantViolation` on any
        disagreement (with the op list so far)."""
        self.ops.append(op)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                getattr(self, f"_op_{op[0]}")(*op[1:])
                self.after_op()
        except WorkloadDead:
            self.dead = True
            return
        except Exception as exc:  # noqa: BLE001 - every failure becomes a violation report
            err = _violation(exc, format_op(op), self.ops)
        else:
            return
        raise err

    def verify(self) -> None:
        """Compare the whole state with the model; raise :class:`InvariantViolation`."""
        if self.dead:
            return
        try:
            self._verify()
            for key, (view, pat) in self.live.items():
                if view.tobytes() != pat:
                    got = np.frombuffer(view.tobytes(), np.uint8)
                    bad = np.flatnonzero(got != np.frombuffer(pat, np.uint8))
                    raise InvariantViolation(
                        f"allocation {key:#x} ({len(pat)} bytes) lost its pattern: {bad.size} "
                        f"byte(s) differ, first at offset {bad[0]}")
        except Exception as exc:  # noqa: BLE001
            err = _violation(exc, "verify", self.ops)
        else:
            return
        raise err

    def _verify(self) -> None:
        raise NotImplementedError

    def after_op(self) -> None:
        """Bookkeeping after each successful operation (subclasses)."""

    @staticmethod
    def expect_bug(what: str, real: Callable[[], Any], bug: KernelBug) -> None:
        """The model predicted the kernel's BUG: ``real()`` must raise
        :class:`arena.errors.MemblockBug`, which ends the episode."""
        from arena.errors import MemblockBug

        try:
            got = real()
        except MemblockBug:
            raise WorkloadDead from None
        raise InvariantViolation(f"{what} returned {_fmt(got)}; the model predicts the "
                                 f"kernel's BUG ({bug})")

    def both(self, what: str, real: Callable[[], Any], model: Callable[[], Any]) -> Any:
        """Run ``model()`` then ``real()`` and require equal results; a predicted kernel BUG
        must be a :class:`arena.errors.MemblockBug` (then the episode is over)."""
        try:
            want = model()
        except KernelBug as exc:
            self.expect_bug(what, real, exc)
        got = real()
        self.expect(got == want, lambda: f"{what} returned {_fmt(got)}, the model says "
                                         f"{_fmt(want)}")
        return got

    def close(self) -> None:
        """Drop the views (and close what the workload owns)."""
        self.live.clear()

    # helpers --------------------------------------------------------------------------------

    @staticmethod
    def expect(cond: bool, message: str | Callable[[], str]) -> None:
        """Raise :class:`InvariantViolation` with ``message`` (or its result) unless ``cond``."""
        if not cond:
            raise InvariantViolation(message() if callable(message) else message)

    def remember(self, key: int, view: np.ndarray) -> None:
        """Write a fresh unique pattern into ``view`` and remember it under ``key``."""
        self.expect(key not in self.live, lambda: f"{key:#x} handed out while still live")
        pat = pattern(self.serial, view.nbytes)
        self.serial += 1
        flat = view.reshape(-1).view(np.uint8)
        flat[:] = np.frombuffer(pat, np.uint8)
        self.live[key] = (view, pat)


def _expect_regions(t: Any, runs: list[tuple[int, int, int, int]], max_: int) -> None:
    got = [(r.base, r.size, int(r.flags), r.nid) for r in t.regions]
    if got != runs:
        diff = next((i for i, (a, b) in enumerate(zip(got, runs, strict=False)) if a != b),
                    min(len(got), len(runs)))
        raise InvariantViolation(
            f"{t.name} regions differ from the model at index {diff}: got "
            f"{[tuple(map(_fmt, x)) for x in got[diff:diff + 3]]}, model "
            f"{[tuple(map(_fmt, x)) for x in runs[diff:diff + 3]]} (cnt {t.cnt} vs {len(runs)})")
    if t.cnt != len(runs) or t.total_size != sum(r[1] for r in runs) or t.max != max_:
        raise InvariantViolation(f"{t.name}: cnt/total_size/max {t.cnt}/{t.total_size:#x}/"
                                 f"{t.max} differ from the model {len(runs)}/"
                                 f"{sum(r[1] for r in runs):#x}/{max_}")


class MemblockWorkload(Workload):
    """A :class:`arena.memblock.Memblock` over a :class:`arena.physmem.PhysicalMemory` window.

    Every range lies in the window; allocations are filled with a unique pattern; the model
    predicts every region, every array doubling and every allocated address.
    """

    name = "memblock"
    KINDS = {
        "add_node": 6, "add": 2, "remove": 3, "reserve": 4, "reserve_kern": 2, "phys_free": 3,
        "setclr": 4, "set_node": 2, "alloc": 12, "alloc_range_nid": 3, "phys_alloc_range": 2,
        "free": 8, "set_bottom_up": 1, "set_current_limit": 1, "set_movable_node": 1,
        "set_kho_scratch_only": 1, "enforce_memory_limit": 1,
    }
    SETCLR = ("mark_hotplug", "clear_hotplug", "mark_nomap", "clear_nomap", "mark_kho_scratch",
              "clear_kho_scratch", "reserved_mark_noinit", "reserved_mark_kern")
    NIDS = (0, 1, 2, 3)
    MAX_NUMNODES = 16

    def __init__(self, pm: Any, *, init_regions: int = 128, bottom_up: bool = False) -> None:
        from arena.memblock import Memblock

        super().__init__()
        self.pm = pm
        self.base, self.size = pm.phys_base, pm.size
        self.mb = Memblock(pm, smp_cache_bytes=32, max_numnodes=self.MAX_NUMNODES,
                           init_regions=init_regions)
        self.mb.allow_resize()
        self.mb.set_bottom_up(bottom_up)
        self.model = MemblockModel(self.base, self.size, smp_cache_bytes=32,
                                   max_numnodes=self.MAX_NUMNODES, init_regions=init_regions)
        self.model.bottom_up = bottom_up
        self.cell = self.size // 32

    @classmethod
    def create(cls, pm: Any, c: Chooser) -> MemblockWorkload:
        """A workload with construction parameters drawn from ``c``."""
        return cls(pm, init_regions=c.choice((1, 2, 4, 8, 128)), bottom_up=c.choice((False, True)))

    # argument generators -------------------------------------------------------------------

    def _addr(self, c: Chooser) -> int:
        return self.base + c.int(0, 31) * self.cell + c.choice((0, 0, 0, 8, 64, 2048))

    def _range(self, c: Chooser) -> tuple[int, int]:
        base = self._addr(c)
        size = _pick(c, lambda: c.int(1, 4) * self.cell, lambda: c.int(1, 8) * 4096,
                     lambda: c.int(1, 512))
        return base, min(size, self.base + self.size - base) or 1

    def _gen_add_node(self, c: Chooser) -> tuple:
        flags = c.choice((0, 0, 0, HOTPLUG, NOMAP, DRIVER_MANAGED, KHO_SCRATCH))
        return ("add_node", *self._range(c), c.choice(self.NIDS), flags)

    def _gen_add(self, c: Chooser) -> tuple:
        return ("add", *self._range(c))

    def _gen_remove(self, c: Chooser) -> tuple:
        return ("remove", *self._range(c))

    def _gen_reserve(self, c: Chooser) -> tuple:
        return ("reserve", *self._range(c))

    def _gen_reserve_kern(self, c: Chooser) -> tuple:
        return ("reserve_kern", *self._range(c))

    def _gen_phys_free(self, c: Chooser) -> tuple:
        return ("phys_free", *self._range(c))

    def _gen_setclr(self, c: Chooser) -> tuple:
        return (c.choice(self.SETCLR), *self._range(c))

    def _gen_set_node(self, c: Chooser) -> tuple:
        return ("set_node", *self._range(c), c.choice(("memory", "reserved")),
                c.choice(self.NIDS))

    def _size_align(self, c: Chooser) -> tuple[int, int]:
        size = _pick(c, lambda: c.int(1, 256), lambda: c.int(1, 16) * 64,
                     lambda: c.int(1, 8) * 4096)
        return size, c.choice((0, 1, 8, 64, 4096, 16384))

    def _gen_alloc(self, c: Chooser) -> tuple:
        size, align = self._size_align(c)
        lo = _pick(c, lambda: 0, lambda: 0, lambda: self._addr(c))
        hi = _pick(c, lambda: 0, lambda: 0, lambda: self._addr(c), lambda: MASK64)
        return (c.choice(("alloc_try_nid", "alloc_try_nid_raw", "alloc_exact_nid_raw")),
                size, align, lo, hi, c.choice((NUMA_NO_NODE, *self.NIDS)))

    def _gen_alloc_range_nid(self, c: Chooser) -> tuple:
        size, align = self._size_align(c)
        return ("alloc_range_nid", size, align, _pick(c, lambda: 0, lambda: self._addr(c)),
                _pick(c, lambda: 0, lambda: self._addr(c), lambda: MASK64),
                c.choice((NUMA_NO_NODE, *self.NIDS)), c.choice((False, True)))

    def _gen_phys_alloc_range(self, c: Chooser) -> tuple:
        size, align = self._size_align(c)
        return ("phys_alloc_range", size, align, _pick(c, lambda: 0, lambda: self._addr(c)),
                _pick(c, lambda: 0, lambda: self._addr(c), lambda: MASK64))

    def _gen_free(self, c: Chooser) -> tuple | None:
        if not self.live:
            return None
        return ("free", c.choice(sorted(self.live)))

    def _gen_set_bottom_up(self, c: Chooser) -> tuple:
        return ("set_bottom_up", c.choice((False, True)))

    def _gen_set_current_limit(self, c: Chooser) -> tuple:
        return ("set_current_limit", _pick(c, lambda: MASK64, lambda: self._addr(c)))

    def _gen_set_movable_node(self, c: Chooser) -> tuple:
        return ("set_movable_node", c.choice((False, True)))

    def _gen_set_kho_scratch_only(self, c: Chooser) -> tuple:
        return ("set_kho_scratch_only", c.choice((False, False, True)))

    def _gen_enforce_memory_limit(self, c: Chooser) -> tuple:
        return ("enforce_memory_limit", c.int(0, 32) * self.cell + c.choice((0, 4096)))

    # operations -----------------------------------------------------------------------------

    def _same(self, what: str, got: Any, want: Any) -> None:
        self.expect(got == want, lambda: f"{what} returned {_fmt(got)}, the model says "
                                         f"{_fmt(want)}")

    def after_op(self) -> None:
        """A doubling freed an old array whose reservation the caller had freed and then
        allocated from: that allocation is no longer reserved (the caller's mistake, as in
        the kernel), so it stops being checked."""
        for base, size in self.model.freed_arrays:
            self._drop_live(base, base + size)
        self.model.freed_arrays.clear()

    def _drop_live(self, base: int, end: int) -> None:
        """Allocations overlapping ``[base, end)`` stop being ours (freed or removed by the
        caller): forget them."""
        for key in [k for k, (v, _) in self.live.items() if k < end and base < k + v.nbytes]:
            del self.live[key]

    def _op_add_node(self, base: int, size: int, nid: int, flags: int) -> None:
        self.both("add_node", lambda: self.mb.add_node(base, size, nid, flags),
                  lambda: self.model.add_range("memory", base, size, nid, flags))

    def _op_add(self, base: int, size: int) -> None:
        self.both("add", lambda: self.mb.add(base, size),
                  lambda: self.model.add_range("memory", base, size, self.MAX_NUMNODES, 0))

    def _op_remove(self, base: int, size: int) -> None:
        self.both("remove", lambda: self.mb.remove(base, size),
                  lambda: self.model.remove_range("memory", base, size))

    def _op_reserve(self, base: int, size: int) -> None:
        self.both("reserve", lambda: self.mb.reserve(base, size),
                  lambda: self.model.add_range("reserved", base, size, NUMA_NO_NODE, 0))

    def _op_reserve_kern(self, base: int, size: int) -> None:
        self.both("reserve_kern", lambda: self.mb.reserve_kern(base, size),
                  lambda: self.model.add_range("reserved", base, size, NUMA_NO_NODE,
                                               RSRV_KERN))

    def _op_phys_free(self, base: int, size: int) -> None:
        self._drop_live(base, base + size)
        self.both("phys_free", lambda: self.mb.phys_free(base, size),
                  lambda: self.model.remove_range("reserved", base, size))

    def _setclr(self, name: str, base: int, size: int) -> None:
        t = "reserved" if name.startswith("reserved_") else "memory"
        flag = {"hotplug": HOTPLUG, "nomap": NOMAP, "kho_scratch": KHO_SCRATCH,
                "noinit": RSRV_NOINIT, "kern": RSRV_KERN}[name.split("_", 1)[1]
                                                           .replace("mark_", "")]
        self.both(name, lambda: getattr(self.mb, name)(base, size),
                  lambda: self.model.setclr(t, base, size, "clear" not in name, flag))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_op_") and name[4:] in self.SETCLR:
            return lambda base, size: self._setclr(name[4:], base, size)
        raise AttributeError(name)

    def _op_set_node(self, base: int, size: int, t: str, nid: int) -> None:
        self.both("set_node", lambda: self.mb.set_node(base, size, t, nid),
                  lambda: self.model.set_node(t, base, size, nid))

    def _alloc_view(self, name: str, size: int, align: int, lo: int, hi: int, nid: int) -> None:
        exact = name == "alloc_exact_nid_raw"
        views = []

        def real() -> int:
            views.append(getattr(self.mb, name)(size, align, lo, hi, nid))
            return 0 if views[0] is None else self.mb.virt_to_phys(views[0])

        got = self.both(f"{name}({size}, {align}, ...)", real,
                        lambda: self.model.alloc_internal(size, align, lo, hi, nid, exact))
        view = views[0]
        if view is not None:
            self.expect(view.nbytes == size, f"{name} returned {view.nbytes} bytes, not {size}")
            if name == "alloc_try_nid":
                self.expect(not view.any(), f"{name} at {got:#x} is not zeroed")
            self.remember(got, view)

    def _op_alloc_try_nid(self, *args: int) -> None:
        self._alloc_view("alloc_try_nid", *args)

    def _op_alloc_try_nid_raw(self, *args: int) -> None:
        self._alloc_view("alloc_try_nid_raw", *args)

    def _op_alloc_exact_nid_raw(self, *args: int) -> None:
        self._alloc_view("alloc_exact_nid_raw", *args)

    def _op_alloc_range_nid(self, size: int, align: int, start: int, end: int, nid: int,
                           exact: bool) -> None:
        got = self.both(f"alloc_range_nid({size}, {align}, ...)",
                        lambda: self.mb.alloc_range_nid(size, align, start, end, nid, exact),
                        lambda: self.model.alloc_range_nid(size, align, start, end, nid, exact))
        if got:
            self.remember(got, self.mb.phys_to_virt(got, size))

    def _op_phys_alloc_range(self, size: int, align: int, start: int, end: int) -> None:
        got = self.both(f"phys_alloc_range({size}, {align}, ...)",
                        lambda: self.mb.phys_alloc_range(size, align, start, end),
                        lambda: self.model.alloc_range_nid(size, align, start, end,
                                                           NUMA_NO_NODE, False))
        if got:
            self.remember(got, self.mb.phys_to_virt(got, size))

    def _op_free(self, key: int) -> None:
        view, _ = self.live.pop(key)
        self.both("free", lambda: self.mb.free(view),
                  lambda: self.model.remove_range("reserved", key, view.nbytes))

    def _op_set_bottom_up(self, flag: bool) -> None:
        self.mb.set_bottom_up(flag)
        self.model.bottom_up = flag

    def _op_set_current_limit(self, limit: int) -> None:
        self.mb.set_current_limit(limit)
        self.model.limit = limit

    def _op_set_movable_node(self, flag: bool) -> None:
        self.mb.movable_node = flag
        self.model.movable_node = flag

    def _op_set_kho_scratch_only(self, flag: bool) -> None:
        (self.mb.set_kho_scratch_only if flag else self.mb.clear_kho_scratch_only)()
        self.model.kho_scratch_only = flag

    def _op_enforce_memory_limit(self, limit: int) -> None:
        m = self.model

        def model() -> None:
            top = m.find_max_addr(limit) if limit else MASK64
            if top != MASK64:
                m.remove_range("memory", top, MASK64)
                m.remove_range("reserved", top, MASK64)
                self._drop_live(top, MASK64)

        self.both("enforce_memory_limit", lambda: self.mb.enforce_memory_limit(limit), model)

    # verification ---------------------------------------------------------------------------

    def _verify(self) -> None:
        mb, m = self.mb, self.model
        mb.check()
        _expect_regions(mb.memory, m.memory.runs(), m.max["memory"])
        _expect_regions(mb.reserved, m.reserved.runs(), m.max["reserved"])
        self.peak_regions = max(self.peak_regions, mb.memory.cnt + mb.reserved.cnt)
        for nid in (NUMA_NO_NODE, 1):
            got = [r for r in mb.for_each_free_mem_range(nid) if r[0] < r[1]]
            def free_msg(nid: int = nid, got: list[tuple[int, int, int]] = got) -> str:
                return (f"free ranges (nid {nid}) differ: got {got[:4]}..., model "
                        f"{m.free_ranges(nid, 0)[:4]}...")

            self.expect(got == m.free_ranges(nid, 0), free_msg)
        self._same("phys_mem_size", mb.phys_mem_size(), m.memory.total())
        self._same("reserved_size", mb.reserved_size(), m.reserved.total())
        self._same("reserved_kern_size", mb.reserved_kern_size(MASK64, NUMA_NO_NODE),
                   m.reserved_kern_size())
        runs = m.memory.runs()
        self._same("start_of_dram", mb.start_of_dram(), runs[0][0] if runs else 0)
        self._same("end_of_dram", mb.end_of_dram(), runs[-1][0] + runs[-1][1] if runs else 0)
        for b, s, _, _ in (runs + m.reserved.runs())[:8]:
            for addr in (b - 1, b, b + s - 1, b + s):
                if self.base <= addr < self.base + self.size:
                    self._same(f"is_memory({addr:#x})", mb.is_memory(addr),
                               m.memory.at(addr) != -1)
                    self._same(f"is_reserved({addr:#x})", mb.is_reserved(addr),
                               m.reserved.at(addr) != -1)
        for key, (view, _) in self.live.items():
            def lost_msg(key: int = key) -> str:
                return f"live allocation {key:#x} is no longer reserved"

            self.expect(bool(m.reserved.present(key, key + view.nbytes).all()), lost_msg)


class BuddyWorkload(Workload):
    """A :class:`arena.buddy.BuddyAllocator` fed by ``Memblock.free_all`` over a real memory.

    Memory of 1-3 nodes with a few reservations is handed over; then pages are allocated
    (patterned), freed, handed over late (``free_late``) and freed wrongly (double, partial,
    wrong order: refused, state unchanged).
    """

    name = "buddy"
    KINDS = {"alloc": 10, "free": 8, "free_late": 1, "bad_free": 2}
    def __init__(self, pm: Any, *, nodes: int = 2, max_order: int = 4,
                 reserves: Sequence[tuple[int, int]] = ()) -> None:
        from arena.buddy import BuddyAllocator
        from arena.memblock import Memblock

        super().__init__()
        self.pm = pm
        ps = pm.page_size
        self.shift = ps.bit_length() - 1
        base, size = pm.phys_base, pm.size
        self.mb = Memblock(pm, page_size=ps, max_numnodes=4)
        self.mmodel = MemblockModel(base, size, page_size=ps, max_numnodes=4)
        per = size // nodes // ps * ps
        for nid in range(nodes):
            start = base + nid * per
            length = size - nid * per if nid == nodes - 1 else per
            self.mb.add_node(start, length, nid, 0)
            self.mmodel.add_range("memory", start, length, nid, 0)
        self.late: list[tuple[int, int]] = []
        for rbase, rsize in reserves:
            self.mb.reserve(rbase, rsize)
            self.mmodel.add_range("reserved", rbase, rsize, NUMA_NO_NODE, 0)
            self.late.append((rbase, rsize))
        self.buddy = BuddyAllocator(pm, page_size=ps, max_order=max_order)
        self.model = BuddyModel(base >> self.shift, size >> self.shift, max_order)
        pages = self.mb.free_all(self.buddy)
        expected = self.mmodel.free_all()
        for s, e, nid in expected:
            self.model.boot_free(s, e, nid)
        self._same_pages = sum(e - s for s, e, _ in expected)
        self.expect(pages == self._same_pages,
                    f"free_all handed over {pages} pages, the model {self._same_pages}")
        self.handed_late: list[tuple[int, int]] = []

    @classmethod
    def create(cls, pm: Any, c: Chooser) -> BuddyWorkload:
        """A workload with construction parameters drawn from ``c``."""
        base, ps = pm.phys_base, pm.page_size
        reserves = [(base + c.int(0, pm.size // ps - 17) * ps + c.choice((0, 100)),
                     c.choice((ps, 3 * ps, 5000, 16 * ps))) for _ in range(c.int(0, 4))]
        return cls(pm, nodes=c.int(1, 3), max_order=c.choice((0, 2, 4, 10)), reserves=reserves)

    def _gen_alloc(self, c: Chooser) -> tuple:
        nodes = self.model.nodes()
        node = c.choice((None, NUMA_NO_NODE, *nodes))
        strict = c.choice((False, True)) if node not in (None, NUMA_NO_NODE) else False
        return ("alloc", c.int(0, min(self.model.max_order, 5)), node, strict,
                c.choice((True, False)))

    def _gen_free(self, c: Chooser) -> tuple | None:
        return ("free", c.choice(sorted(self.live))) if self.live else None

    def _gen_free_late(self, c: Chooser) -> tuple | None:
        # Reservations overlapping pages handed over already are included: they must be
        # refused with nothing changed.
        todo = [r for r in self.late if r not in self.handed_late]
        return ("free_late", *c.choice(todo)) if todo else None

    def _gen_bad_free(self, c: Chooser) -> tuple | None:
        if not self.live:
            return None
        return ("bad_free", c.choice(sorted(self.live)), c.choice(("double", "order", "part")))

    def _candidates(self, node: int | None, strict: bool) -> list[int]:
        nodes = self.model.nodes()
        if node in (None, NUMA_NO_NODE):
            return nodes
        return [node] if strict else [node] + [n for n in nodes if n != node]

    def _op_alloc(self, order: int, node: int | None, strict: bool, as_view: bool) -> None:
        expected = self.model.expected_order(order, self._candidates(node, strict))
        if as_view:
            view = self.buddy.alloc_pages(order, node=node, strict_node=strict)
            phys = None if view is None else self.pm.phys_of(view)
        else:
            phys = self.buddy.alloc_pages_phys(order, node=node, strict_node=strict)
            view = None if phys is None else self.pm.view(phys, self.pm.page_size << order)
        if expected is None:
            self.expect(phys is None, lambda: f"alloc_pages({order}) succeeded at {phys:#x}; "
                                              f"the model has no free block of order >= "
                                              f"{order} on {self._candidates(node, strict)}")
            return
        self.expect(phys is not None, f"alloc_pages({order}, node={node}, strict={strict}) "
                                      f"failed; the model expects an order-{expected[1]} block "
                                      f"of node {expected[0]}")
        if not (phys is not None and view is not None):
            raise InvariantError("soak_workloads: expected phys is not None and view is not None")
        pfn = phys >> self.shift
        nid, border = expected
        self.expect((pfn, border, nid) in set(self.model.blocks()),
                    f"alloc_pages({order}) gave pfn {pfn:#x}, not the start of a free "
                    f"order-{border} block of node {nid}")
        self.model.take(pfn, order, nid)
        self.remember(phys, view)

    def _op_free(self, key: int) -> None:
        view, _ = self.live.pop(key)
        order = (view.nbytes >> self.shift).bit_length() - 1
        self.buddy.free_pages(view if (key >> self.shift) % 2 else key, order)
        self.model.give_back(key >> self.shift)

    def _op_free_late(self, base: int, size: int) -> None:
        self.handed_late.append((base, size))
        ps = self.pm.page_size
        s, e = (base + ps - 1) >> self.shift, (base + size) >> self.shift
        managed = self.model.node[s - self.model.first:e - self.model.first]
        if s < e and (managed >= 0).any():
            # Pages already managed (a reservation overlapping another): refused, unchanged.
            before = self.buddy.dump(limit=1 << 20)
            try:
                self.mb.free_late(base, size)
            except ValueError:
                pass
            else:
                raise InvariantViolation(f"free_late({base:#x}, {size:#x}) handed over pages "
                                         f"the buddy allocator already manages")
            self.expect(self.buddy.dump(limit=1 << 20) == before,
                        f"refused free_late({base:#x}, {size:#x}) changed the buddy allocator")
            return
        self.mb.free_late(base, size)
        for pfn in range(s, e):
            self.model.boot_free(pfn, pfn + 1, self.mmodel.node_of(pfn << self.shift))

    def _op_bad_free(self, key: int, how: str) -> None:
        from arena.errors import DoubleFreeError, ForeignBufferError

        view, _ = self.live[key]
        order = (view.nbytes >> self.shift).bit_length() - 1
        before = self.buddy.dump(limit=1 << 20)
        try:
            if how == "double":
                self.buddy.free_pages(key, order)
                self.model.give_back(key >> self.shift)
                del self.live[key]
                self.buddy.free_pages(key, order)
            elif how == "order" and self.model.max_order:
                self.buddy.free_pages(key, order + 1 if order < self.model.max_order else 0)
            else:
                self.buddy.free_pages(view[: view.nbytes // 2] if order else view[:1], order)
        except (DoubleFreeError, ForeignBufferError, ValueError):
            pass
        else:
            raise InvariantViolation(f"bad free ({how}) of {key:#x} was accepted")
        if how != "double":
            self.expect(self.buddy.dump(limit=1 << 20) == before,
                        f"refused bad free ({how}) changed the buddy allocator")

    def _verify(self) -> None:
        b, m = self.buddy, self.model
        b.check()
        nodes = m.nodes()
        self._same_list("nodes", b.nodes, nodes)
        self._same_list("nr_free_pages", b.nr_free_pages(), int(np.count_nonzero(m.free)))
        self._same_list("managed_pages", b.managed_pages(), int(np.count_nonzero(m.node >= 0)))
        blocks = m.blocks()
        self._same_list("free blocks", sorted(b.free_blocks()), sorted(blocks))
        for nid in nodes:
            self._same_list(f"free_area({nid})", b.free_area(nid), m.free_area(nid))
            self._same_list(f"nr_free_pages({nid})", b.nr_free_pages(nid),
                            int(np.count_nonzero(m.free & (m.node == nid))))
        self.peak_regions = max(self.peak_regions, len(blocks))

    def _same_list(self, what: str, got: Any, want: Any) -> None:
        self.expect(got == want, lambda: f"{what}: got {str(got)[:200]}, model {str(want)[:200]}")


def _close_quietly(*objs: Any) -> None:
    """Close ``objs``; one whose views are still alive stays open until they die."""
    import gc

    from arena.errors import LiveViewsError

    gc.collect()
    for obj in objs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                obj.close()
        except LiveViewsError:
            pass



# -- Hypothesis state machines over the workloads ------------------------------------------------

def state_machine(name: str, create: Callable[[Chooser], Workload],
                  kinds: Sequence[str]) -> type:
    """A Hypothesis ``RuleBasedStateMachine`` class with one rule per operation kind.

    ``create(chooser)`` builds the workload (in ``@initialize``); every rule draws one
    operation of its kind, applies it and verifies the whole state. Hypothesis (a test
    dependency) is imported here, not at module import.
    """
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

    def build(self: Any, data: Any) -> None:
        self.w = create(DataChooser(data))
        self.w.verify()

    def teardown(self: Any) -> None:
        if getattr(self, "w", None) is not None:
            self.w.close()

    def make_step(kind: str) -> Callable[[Any, Any], None]:
        def step(self: Any, data: Any) -> None:
            op = self.w.gen(kind, DataChooser(data))
            if op is not None:
                self.w.apply(op)
                self.w.verify()

        step.__name__ = step.__qualname__ = kind
        return step

    body: dict[str, Any] = {"build": initialize(data=st.data())(build), "teardown": teardown}
    for kind in kinds:
        body[kind] = rule(data=st.data())(make_step(kind))
    return type(name, (RuleBasedStateMachine,), body)
