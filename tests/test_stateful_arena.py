"""Model-based stateful test of :class:`arena.Arena`.

Hypothesis builds an arena (256 KiB or 1 MiB, 1-3 nodes, granule 8/64/256 bytes, with or
without a budget, debug mode on or off, quarantine default/0/8 KiB) and drives it side by side
with :class:`arena.soak.MemblockModel` of its memblock; after the (optional, drawn) hand-over
with :class:`arena.soak.BuddyModel` of its page allocator. Rules: ``alloc`` (0 B .. 192 KiB,
alignment 1 B .. 32 KiB, any/preferred/strict node, zeroed or raw), ``free``, allocations
inside ``scope()``, ``reset()``, ``release()``, ``handover()`` and wrong frees (double,
part of an allocation, a copy). After every step:

* ``check()`` reports nothing and memblock's region arrays equal the model's (after the
  hand-over: the buddy allocator's free blocks equal the model's);
* every allocation went where the kernel's rules put it (memblock: the predicted address;
  page allocator: the start of a free block of the smallest order that fits), is aligned
  (physically and in its real address), zeroed or poisoned as asked, and failed
  (``BudgetExceededError`` / ``ArenaMemoryError``) exactly when the model says so, leaving
  the arena unchanged;
* ``stats()`` agrees: bytes requested/allocated, live and total counts, peak, quarantined
  bytes, free bytes and the largest free block (total and per node), budget remaining;
* ``live()``/``owns()`` list exactly the live allocations, and each still holds the unique
  pattern written into it when it was made.
"""

from __future__ import annotations

import os
from unittest import mock

import pytest
from hypothesis import settings

from arena.soak import ArenaWorkload, InvariantViolation, state_machine

STEPS = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 25

ArenaMachine = state_machine("ArenaMachine", ArenaWorkload.create, list(ArenaWorkload.KINDS))
TestArenaStateful = ArenaMachine.TestCase
TestArenaStateful.settings = settings(stateful_step_count=STEPS, deadline=None)


def _apply_then_free_all(w: ArenaWorkload, ops: list[tuple]) -> None:
    """Apply ``ops``, then free every live allocation, verifying after every step."""
    for op in ops:
        w.apply(op)
        w.verify()
    for key in sorted(w.live):
        w.apply(("free", key))
        w.verify()


@pytest.mark.parametrize("debug", [False, True])
def test_workload_runs_through_handover(debug):
    w = ArenaWorkload(size=256 << 10, nodes=2, align=64, debug=debug, max_order=4)
    ops = [("alloc", 100, None, 1, True, True), ("alloc", 5000, 4096, None, False, False),
           ("alloc", 0, None, None, False, True), ("handover",),
           ("alloc", 3000, None, 0, False, True)]
    _apply_then_free_all(w, ops)
    assert w.arena.buddy is not None                 # the hand-over happened
    assert w.live == {} or len(w.live) == 0
    st = w.arena.stats()
    assert st.live_allocations == 0 and st.bytes_requested == 0
    w.apply(("release",))
    w.verify()
    w.close()
    assert w.arena.closed


def test_verify_detects_an_overrun_in_debug_mode():
    w = ArenaWorkload(size=256 << 10, debug=True)
    w.apply(("alloc", 100, None, None, False, True))
    (key,) = w.live
    w.arena.physmem.fill(key + 100, 1, 0)  # one byte past the end
    with pytest.raises(InvariantViolation, match="CorruptionError"):
        w.verify()
    w.arena.check(repair=True)
    w.close()


def test_verify_detects_wrong_statistics():
    w = ArenaWorkload(size=256 << 10)
    w.apply(("alloc", 100, None, None, False, True))
    w.count += 1  # the model now expects one allocation more
    with pytest.raises(InvariantViolation, match="num_allocations"):
        w.verify()
    w.close()


def test_budget_refusal_changes_nothing():
    w = ArenaWorkload(size=256 << 10, budget=4096, align=64)
    for op in [("alloc", 4000, None, None, False, True), ("alloc", 200, None, None, False, True)]:
        w.apply(op)  # the second hits the budget: the workload checks the arena is unchanged
        w.verify()
    assert w.arena.stats().bytes_allocated == 4032
    w.close()


def test_verify_detects_a_freed_array_still_held():
    """The workload drops its arrays of a freed allocation (so the model stays exact in the
    garbage-collected lifetime); one kept alive shows as held bytes."""
    w = ArenaWorkload(size=256 << 10, slab=True, lifetime="gc")
    w.apply(("alloc", 100, None, None, False, True))
    (key,) = w.live
    kept = w.live[key][0]
    w.apply(("free", key))
    with pytest.raises(InvariantViolation, match="held_bytes"):
        w.verify()
    del kept
    w.verify()
    w.close()


def test_verify_detects_a_unit_both_cached_and_live():
    from arena.largecache import Block

    w = ArenaWorkload(size=1 << 20, slab=True)
    w.apply(("alloc", 20000, None, None, False, True))     # a large block
    (key,) = w.live
    info = w.arena.info(w.live[key][0])
    ghost = Block(info.phys, 0, info.reserved, info.node, [], -1, info.reserved)
    # The arena's own check() would see it too; the workload's check is independent of it.
    with mock.patch.object(w.arena.large, "free_blocks", lambda: iter([ghost])), \
            mock.patch.object(w.arena, "check", lambda **kw: []):
        with pytest.raises(InvariantViolation, match="(live|cached) unit at .* overlaps (cached|live) unit"):
            w.verify()
    w.verify()
    w.close()


@pytest.mark.parametrize("lifetime", ["gc", "manual"])
def test_loose_workload_checks_the_caches(lifetime):
    """With the size-class caches: slabs and retained blocks come and go, and after every
    step memblock's reserved bytes are exactly the slabs, the allocations outside them,
    the retained blocks and its own arrays."""
    w = ArenaWorkload(size=1 << 20, nodes=2, slab=True, lifetime=lifetime)
    ops = [("alloc", 100, None, None, False, True), ("alloc", 20000, None, 1, True, True),
           ("alloc", 40000, 4096, None, False, False), ("alloc", 5000, None, 0, False, True)]
    _apply_then_free_all(w, ops)
    st = w.arena.stats()
    assert st.retained_bytes > 0 and st.slab_bytes > 0 and st.held_bytes == 0
    w.apply(("release",))
    w.verify()
    assert w.arena.stats().retained_bytes == 0
    w.close()
