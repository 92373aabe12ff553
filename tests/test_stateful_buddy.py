"""Model-based stateful test of :class:`arena.buddy.BuddyAllocator`.

A :class:`arena.memblock.Memblock` over a real 2 MiB :class:`arena.physmem.PhysicalMemory`
registers 1-3 nodes and a few reservations and hands the free memory over
(``free_all``); then Hypothesis drives the page allocator side by side with
:class:`arena.soak.BuddyModel` (per page: node and free/allocated). Rules: ``alloc_pages`` /
``alloc_pages_phys`` of orders 0-5 on any node, a preferred node or strictly one node;
``free_pages`` by view or by address; ``memblock.free_late`` of a reservation; and wrong
frees (double free, wrong order, part of a block), which must be refused with the state
unchanged. After every step:

* ``check()`` passes; ``nodes``, ``nr_free_pages`` (total and per node) and
  ``managed_pages`` equal the model's counts;
* the free blocks are exactly the model's — the maximal naturally aligned free blocks of one
  node up to ``max_order`` (so no two free buddies are left unmerged and no page is lost);
  ``free_area`` per node follows;
* every allocation took the start of a free block of the smallest order that could serve it
  on the first node allowed that has one, and failed only when no allowed node has one;
* every live allocation still holds the unique pattern written into it.
"""

from __future__ import annotations

import gc
import os

import pytest
from hypothesis import settings

from arena.buddy import BuddyAllocator
from arena.errors import DoubleFreeError, ForeignBufferError
from arena.physmem import PhysicalMemory
from arena.soak import BuddyModel, BuddyWorkload, InvariantViolation, state_machine

STEPS = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 30
PHYS_BASE = 1 << 30

_PM: list[PhysicalMemory] = []


def _pm() -> PhysicalMemory:
    if not _PM:
        _PM.append(PhysicalMemory(2 << 20, phys_base=PHYS_BASE))
    return _PM[0]


@pytest.fixture(scope="module", autouse=True)
def _close_pm():
    yield
    gc.collect()
    while _PM:
        _PM.pop().close()


BuddyMachine = state_machine("BuddyMachine", lambda c: BuddyWorkload.create(_pm(), c),
                             list(BuddyWorkload.KINDS))
TestBuddyStateful = BuddyMachine.TestCase
TestBuddyStateful.settings = settings(stateful_step_count=STEPS, deadline=None)


def test_model_blocks_are_the_maximal_aligned_blocks():
    """Independent of the allocator: free pages 1..10 of one node, max_order 2."""
    m = BuddyModel(0, 16, 2)
    m.boot_free(1, 11, 0)
    assert m.blocks() == [(1, 0, 0), (2, 1, 0), (4, 2, 0), (8, 1, 0), (10, 0, 0)]
    assert m.free_area(0) == (2, 2, 1)
    assert m.expected_order(1, [0]) == (0, 1)
    assert m.expected_order(3, [0]) is None


def test_verify_detects_a_block_handed_out_twice():
    w = BuddyWorkload(_pm(), nodes=1, max_order=3)
    w.apply(("alloc", 0, None, False, True))
    w.verify()
    (key,) = w.live
    w.buddy.free_pages(key, 0)  # behind the model's back
    with pytest.raises(InvariantViolation):
        w.verify()
    w.close()


@pytest.mark.parametrize("how", ["double", "order", "part"])
def test_wrong_frees_are_refused_and_change_nothing(how):
    w = BuddyWorkload(_pm(), nodes=2, max_order=4)
    w.apply(("alloc", 2, 1, True, True))
    w.verify()
    (key,) = w.live
    w.apply(("bad_free", key, how))
    w.verify()
    w.close()


def test_double_free_names_the_error():
    w = BuddyWorkload(_pm(), nodes=1, max_order=4)
    phys = w.buddy.alloc_pages_phys(1)
    with pytest.raises(ForeignBufferError, match="not its start"):
        w.buddy.free_pages(phys + 4096, 0)
    w.buddy.free_pages(phys, 1)
    with pytest.raises(DoubleFreeError):
        w.buddy.free_pages(phys, 1)
    w.close()


def test_refused_free_late_hands_over_nothing():
    """Minimal reproducer found by the soak (episode seed 5160): ``free_late`` of a range
    whose later pages are already managed must refuse (ValueError) before handing over any
    page; the page allocator stays as it was."""
    from arena.memblock import Memblock

    pm = _pm()
    mb = Memblock(pm)
    mb.add(PHYS_BASE, 1 << 20)
    mb.reserve(PHYS_BASE, 6 * 4096)
    buddy = BuddyAllocator(pm, max_order=3)
    mb.free_all(buddy)
    mb.free_late(PHYS_BASE + 2 * 4096, 4 * 4096)    # pages 2..5 handed over late
    before = buddy.dump(limit=1 << 20), buddy.managed_pages()
    with pytest.raises(ValueError, match="already managed"):
        mb.free_late(PHYS_BASE, 4 * 4096)           # pages 0..3: 2 and 3 are managed
    assert (buddy.dump(limit=1 << 20), buddy.managed_pages()) == before
