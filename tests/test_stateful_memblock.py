"""Model-based stateful test of :class:`arena.memblock.Memblock`.

Hypothesis drives a Memblock over a real 256 KiB :class:`arena.physmem.PhysicalMemory` side by
side with :class:`arena.soak.MemblockModel`, a byte map of the ``memory`` and ``reserved`` sets.
Every rule is one kernel call (add/add_node/remove, reserve/reserve_kern/phys_free, the flag
setters, set_node, the allocation variants, free, direction, current_limit, movable_node,
kho_scratch_only, enforce_memory_limit) on both sides; after every step:

* ``check()`` passes;
* both region arrays equal the model's run-length encoding region by region (base, size,
  flags, nid), with ``cnt``, ``total_size`` and ``max`` (array doubling is predicted: where the
  new array goes and what it reserves — the construction draws ``init_regions`` as small as 1);
* the free ranges (any node and node 1) equal memory minus reserved; ``phys_mem_size``,
  ``reserved_size``, ``reserved_kern_size``, ``start/end_of_DRAM``, ``is_memory``/
  ``is_reserved`` at region edges agree;
* every allocation returned the address the model predicts (highest aligned fit top-down,
  lowest bottom-up, node then any node, retry without ``min_addr``), zeroed variants read 0,
  and every live allocation still holds the unique pattern written into it when it was made.

Profiles: ``HYPOTHESIS_PROFILE=ci`` (60 examples of 30 steps), the default ``dev`` profile, and
``HYPOTHESIS_PROFILE=long`` (5000 examples of 200 steps) on demand.
"""

from __future__ import annotations

import gc
import os

import pytest
from hypothesis import settings

from arena.physmem import PhysicalMemory
from arena.soak import (
    MASK64,
    RSRV_KERN,
    InvariantViolation,
    MemblockModel,
    MemblockWorkload,
    state_machine,
)

STEPS = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 30
PHYS_BASE = 1 << 30
WINDOW = 256 << 10

_PM: list[PhysicalMemory] = []


def _pm() -> PhysicalMemory:
    """The module's physical memory (one mapping for every example)."""
    if not _PM:
        _PM.append(PhysicalMemory(WINDOW, phys_base=PHYS_BASE))
    return _PM[0]


@pytest.fixture(scope="module", autouse=True)
def _close_pm():
    yield
    gc.collect()
    while _PM:
        _PM.pop().close()


MemblockMachine = state_machine(
    "MemblockMachine", lambda c: MemblockWorkload.create(_pm(), c),
    list(MemblockWorkload.KINDS))
TestMemblockStateful = MemblockMachine.TestCase
TestMemblockStateful.settings = settings(stateful_step_count=STEPS, deadline=None)


# -- the model is right on hand-checked cases, and the comparison can fail --------------------

def _workload(**kw) -> MemblockWorkload:
    return MemblockWorkload(_pm(), **kw)


def test_model_top_down_and_bottom_up_pick_the_extreme_fits():
    """Independent of memblock: the model's choice in a hand-computed layout."""
    m = MemblockModel(PHYS_BASE, WINDOW, smp_cache_bytes=32)
    m.add_range("memory", PHYS_BASE, 0x10000, 0, 0)
    m.add_range("reserved", PHYS_BASE + 0xF000, 0x1000, -1, 0)
    assert m.alloc_range_nid(0x100, 0x1000, 0, 0, -1, False) == PHYS_BASE + 0xE000
    m.bottom_up = True
    assert m.alloc_range_nid(0x100, 0x1000, 0, 0, -1, False) == PHYS_BASE
    assert m.reserved.runs() == [(PHYS_BASE, 0x100, RSRV_KERN, -1),
                                 (PHYS_BASE + 0xE000, 0x100, RSRV_KERN, -1),
                                 (PHYS_BASE + 0xF000, 0x1000, 0, -1)]


def test_model_predicts_array_doubling():
    """init_regions=1: the second reservation doubles ``reserved`` (1 -> 2) into the highest
    free page; reserving that array fills the 2 slots, so the kernel's ``while (cnt + nr_new >
    max)`` doubles again (2 -> 4) into the next page down and frees the first array."""
    w = _workload(init_regions=1)
    for op in [("add_node", PHYS_BASE, 0x20000, 0, 0), ("reserve", PHYS_BASE, 0x100),
               ("reserve", PHYS_BASE + 0x1000, 0x100)]:
        w.apply(op)
        w.verify()
    assert w.mb.reserved.max == w.model.max["reserved"] == 4
    assert w.model.array["reserved"] == PHYS_BASE + 0x1E000
    assert w.model.reserved.runs()[-1] == (PHYS_BASE + 0x1E000, 0x1000, RSRV_KERN, -1)
    w.close()


def test_model_caps_the_range_before_a_doubling_places_the_array():
    """``enforce_memory_limit`` removes ``[max_addr, PHYS_ADDR_MAX)`` from ``reserved`` when
    its array must double: the kernel caps the size first, so the search above the range starts
    at ``PHYS_ADDR_MAX`` and finds nothing, the retry below finds no free page, and the removal
    fails with ``reserved`` untouched. (The model once searched from an uncapped end that
    wrapped, placed the array and removed the regions.)"""
    w = _workload(init_regions=1, bottom_up=True)
    for op in [("add_node", PHYS_BASE, 0x2000, 0, 0), ("add", PHYS_BASE + 0x2000, 0x1000),
               ("add", PHYS_BASE + 0x4000, 0x2000), ("alloc_try_nid", 1, 0, 0, 0, -1),
               ("enforce_memory_limit", 0x1000)]:
        w.apply(op)
        w.verify()
    assert w.model.max["reserved"] == w.mb.reserved.max == 4
    assert [r[0] for r in w.model.reserved.runs()] == [PHYS_BASE, PHYS_BASE + 0x2000,
                                                      PHYS_BASE + 0x4000]
    w.close()


def test_verify_detects_a_lost_write():
    w = _workload()
    w.apply(("add_node", PHYS_BASE, 0x10000, 0, 0))
    w.apply(("alloc_try_nid", 100, 8, 0, 0, -1))
    w.verify()
    (view, _), = w.live.values()
    view[50] ^= 0xFF
    with pytest.raises(InvariantViolation, match="lost its pattern"):
        w.verify()
    w.close()


def test_verify_detects_regions_changed_behind_the_models_back():
    w = _workload()
    w.apply(("add_node", PHYS_BASE, 0x10000, 0, 0))
    w.verify()
    w.mb.reserve(PHYS_BASE + 0x2000, 0x10)
    with pytest.raises(InvariantViolation, match="reserved regions differ"):
        w.verify()
    w.close()


def test_verify_detects_a_wrong_address():
    """A memblock choosing another address than the kernel would is caught at once."""
    w = _workload()
    w.apply(("add_node", PHYS_BASE, 0x10000, 0, 0))
    w.mb.set_bottom_up(True)  # the model still thinks top-down
    with pytest.raises(InvariantViolation, match="the model says"):
        w.apply(("alloc_range_nid", 0x100, 0x100, 0, MASK64, -1, False))
    w.close()


def test_violation_carries_the_operations():
    w = _workload()
    ops = [("add_node", PHYS_BASE, 0x10000, 0, 0), ("reserve", PHYS_BASE, 0x40)]
    for op in ops:
        w.apply(op)
    w.mb.phys_free(PHYS_BASE, 0x40)
    with pytest.raises(InvariantViolation) as exc:
        w.verify()
    assert exc.value.ops == ops
    w.close()
