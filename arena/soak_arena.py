"""The soak's arena workload: an :class:`arena.Arena` driven beside the models of its memblock
and (after the hand-over) of its page allocator.

Kernel counterpart: none. See :mod:`arena.soak_workloads` for the :class:`Workload` protocol.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from arena.constants import (
    NUMA_NO_NODE,
    round_up,
)
from arena.errors import InvariantError, InvariantViolation, KernelBug
from arena.soak_models import BuddyModel, MemblockModel
from arena.soak_workloads import Chooser, Workload, _close_quietly, _expect_regions, _pick

__all__ = ["ArenaWorkload"]


class ArenaWorkload(Workload):
    """An :class:`arena.Arena` (optionally in debug mode, with a budget, several nodes).

    Without the size-class caches (``slab=False`` or debug mode) it is driven with a
    :class:`MemblockModel` of its memblock, then after :meth:`arena.Arena.handover` a
    :class:`BuddyModel` of its page allocator: every address is predicted before the
    hand-over, every block checked after it, and every statistic throughout. With the caches
    (``slab=True``) the placement of slots is the slab layer's own, so the workload checks
    what holds regardless: no two live allocations overlap, alignment, patterns, the
    statistics against its own bookkeeping, refusals that change nothing, ``check()``, and
    the caches: no unit is both on a free list and live, ``retained_bytes`` is the sum of
    the retained blocks (within the limit), ``slab_bytes`` the sum of the slabs, and (before
    the hand-over) memblock's reserved bytes are exactly the slabs, the live allocations
    outside slabs, the retained blocks and memblock's own arrays.

    ``lifetime`` is the arena's (``"gc"`` or ``"manual"``). The workload drops its arrays of
    an allocation when it frees it, so in both lifetimes a freed unit is reusable by the next
    operation and the model stays exact; ``held_bytes`` must read 0 after every operation."""

    name = "arena"
    KINDS = {"alloc": 12, "free": 8, "scope": 2, "reset": 1, "release": 1, "handover": 1,
             "bad_free": 2}

    def __init__(self, *, size: int = 1 << 20, nodes: int = 1, align: int = 64,
                 budget: int | None = None, debug: bool = False, quarantine: int | None = None,
                 max_order: int = 6, slab: bool = False, lifetime: str = "gc") -> None:
        from arena.arena import Arena

        super().__init__()
        self.arena = Arena(size, nodes=nodes, budget=budget, align=align, debug=debug,
                           quarantine=quarantine, slab=slab, lifetime=lifetime)
        a = self.arena
        self.exact = getattr(a, "slab", None) is None  # no size-class caches: full model
        self.pm = a.physmem
        ps = self.pm.page_size
        self.ps, self.shift = ps, ps.bit_length() - 1
        self.granule, self.budget, self.debug = align, budget, debug
        self.qlimit = a.capacity // 32 if quarantine is None else quarantine
        self.max_order = max_order
        mb = a.memblock
        self.model = MemblockModel(self.pm.phys_base, self.pm.size, page_size=ps,
                                   smp_cache_bytes=mb.smp_cache_bytes,
                                   max_numnodes=mb.max_numnodes, init_regions=mb.memory.max)
        for sl in self.pm.slices:
            self.model.add_range("memory", sl.phys_start, sl.size, sl.nid, 0)
        self.bmodel: BuddyModel | None = None
        # key (phys) -> [block, reserved, order, nid, size]
        self.recs: dict[int, list[int]] = {}
        self.quarantine: deque[list[int]] = deque()
        self.count = self.total = self.peak = 0

    @classmethod
    def create(cls, c: Chooser, *, debug: bool | None = None) -> ArenaWorkload:
        """A workload with construction parameters drawn from ``c``."""
        size = c.choice((256 << 10, 1 << 20))
        return cls(size=size, nodes=c.int(1, 3), align=c.choice((8, 64, 256)),
                   budget=c.choice((None, None, size // 2)),
                   debug=c.choice((False, True)) if debug is None else debug,
                   quarantine=c.choice((None, 0, 8192)), max_order=c.choice((3, 6, 10)),
                   slab=c.choice((False, True)), lifetime=c.choice(("gc", "manual")))

    def close(self) -> None:
        """Drop the views and close the arena."""
        super().close()
        _close_quietly(self.arena)

    # generators --------------------------------------------------------------------------

    def _alloc_args(self, c: Chooser) -> tuple:
        nbytes = _pick(c, lambda: 0, lambda: c.int(1, 100), lambda: c.int(1, 64) * 64,
                       lambda: c.int(1, 16) * 4096, lambda: c.int(1, 3) * 65536)
        align = c.choice((None, None, 1, 16, 64, 4096, 32768))
        node = c.choice((None, None, *self.arena.nodes))
        strict = node is not None and c.choice((False, True))
        return nbytes, align, node, strict, c.choice((True, False))

    def _gen_alloc(self, c: Chooser) -> tuple:
        return ("alloc", *self._alloc_args(c))

    def _gen_free(self, c: Chooser) -> tuple | None:
        return ("free", c.choice(sorted(self.live))) if self.live else None

    def _gen_scope(self, c: Chooser) -> tuple:
        return ("scope", tuple(self._alloc_args(c) for _ in range(c.int(1, 3))))

    def _gen_reset(self, c: Chooser) -> tuple:
        return ("reset",)

    def _gen_release(self, c: Chooser) -> tuple:
        return ("release",)

    def _gen_handover(self, c: Chooser) -> tuple | None:
        return None if self.arena.buddy is not None else ("handover",)

    def _gen_bad_free(self, c: Chooser) -> tuple | None:
        if not self.live:
            return None
        return ("bad_free", c.choice(sorted(self.live)), c.choice(("double", "part", "copy")))

    # the arena's rules, predicted ----------------------------------------------------------

    def _predict(self, nbytes: int, align: int | None, node: int | None, strict: bool
                 ) -> tuple[str, int, int, int, int, tuple[int, int] | None]:
        """``(outcome, block, reserved, order, left, buddy)``: outcome "ok", "budget" or
        "oom"; before the hand-over ``block`` is the address memblock must choose (the model
        has reserved it), after it ``buddy`` is ``(node, order)`` of the free block the page
        allocator must take."""
        align = self.granule if align is None else align
        ps = self.ps
        left = (round_up(16, align) if align <= ps else 0) if self.debug else 0
        need = left + nbytes + (16 if self.debug else 0)
        if self.bmodel is None:
            order = -1
            reserved = round_up(max(need, 1), self.granule)
        else:
            pages = max(1, -(-need // ps))
            order = max((pages - 1).bit_length(), max(align // ps, 1).bit_length() - 1)
            if order > self.max_order:
                return "oom", 0, 0, order, left, None
            reserved = ps << order
        if self.budget is not None and self.allocated() + reserved > self.budget:
            return "budget", 0, reserved, order, left, None
        if self.bmodel is None:
            nid = NUMA_NO_NODE if node is None else node
            block = self.model.alloc_range_nid(reserved, align, 0, 0, nid, strict)
            return ("ok" if block else "oom"), block, reserved, order, left, None
        nodes = self.bmodel.nodes()
        if node is not None and node not in nodes:
            if strict:
                return "oom", 0, reserved, order, left, None
            node = None
        cands = nodes if node is None else ([node] if strict else
                                            [node] + [n for n in nodes if n != node])
        exp = self.bmodel.expected_order(order, cands)
        return ("ok" if exp else "oom"), 0, reserved, order, left, exp

    def allocated(self) -> int:
        """Bytes held by the live allocations (the model's ``bytes_allocated``)."""
        return sum(r[1] for r in self.recs.values())

    def _do_alloc(self, nbytes: int, align: int | None, node: int | None, strict: bool,
                  zero: bool) -> None:
        from arena.errors import ArenaMemoryError, BudgetExceededError

        if not self.exact:
            self._do_alloc_loose(nbytes, align, node, strict, zero)
            return
        try:
            outcome, block, reserved, order, left, exp = self._predict(nbytes, align, node,
                                                                       strict)
        except KernelBug as bug:
            self.expect_bug("alloc", lambda: self.arena.alloc(
                nbytes, align=align, node=node, strict_node=strict, zero=zero), bug)
        before = None if outcome == "ok" else self._snapshot()
        what = f"alloc({nbytes}, align={align}, node={node}, strict_node={strict})"
        try:
            view = self.arena.alloc(nbytes, align=align, node=node, strict_node=strict,
                                    zero=zero)
        except BudgetExceededError:
            self.expect(outcome == "budget", f"{what} hit the budget; model: {outcome}")
            self.expect(self._snapshot() == before, f"refused {what} changed the arena")
            return
        except ArenaMemoryError:
            self.expect(outcome == "oom", f"{what} failed; model: {outcome}")
            self.expect(self._snapshot() == before, f"refused {what} changed the arena")
            return
        self.expect(outcome == "ok", f"{what} succeeded; model: {outcome}")
        info = self.arena.info(view)
        phys = info.phys
        if exp is not None:  # from the page allocator: the start of the expected free block
            if self.bmodel is None:
                raise InvariantError("soak_arena: expected self.bmodel is not None")
            block = phys - left
            pfn = block >> self.shift
            self.expect((pfn, exp[1], exp[0]) in set(self.bmodel.blocks()),
                        f"{what} took pfn {pfn:#x}; expected the start of a free order-{exp[1]} "
                        f"block of node {exp[0]}")
            self.bmodel.take(pfn, order, exp[0])
        else:
            self.expect(phys == block + left, lambda: f"{what} at {phys:#x}, the model says "
                                                      f"{block + left:#x}")
        a = align if align is not None else self.granule
        self.expect(phys % a == 0 and info.address % a == 0,
                    f"alloc({nbytes}) at {phys:#x} is not aligned to {a}")
        self.expect(info.size == nbytes and info.reserved == reserved,
                    f"info: size {info.size}/{nbytes}, reserved {info.reserved}/{reserved}")
        if nbytes:
            if zero:
                self.expect(not view.any(), f"zeroed allocation at {phys:#x} is not zero")
            elif self.debug:
                self.expect(bool((view == 0x5A).all()), f"raw debug allocation at {phys:#x} "
                                                        f"is not poisoned with 0x5a")
        self.recs[phys] = [block, reserved, order, info.node, nbytes]
        self.count += 1
        self.total += reserved
        self.peak = max(self.peak, self.allocated())
        if nbytes:
            self.remember(phys, view)
        else:
            self.live[phys] = (view, b"")

    def _do_alloc_loose(self, nbytes: int, align: int | None, node: int | None, strict: bool,
                        zero: bool) -> None:
        """With size-class caches: placement is not predicted; the rest is checked."""
        from arena.errors import ArenaMemoryError, BudgetExceededError

        what = f"alloc({nbytes}, align={align}, node={node}, strict_node={strict})"
        before = self._snapshot()
        try:
            view = self.arena.alloc(nbytes, align=align, node=node, strict_node=strict,
                                    zero=zero)
        except BudgetExceededError:
            self.expect(self.budget is not None, f"{what} hit a budget that is not there")
            self.expect(self._snapshot() == before, f"refused {what} changed the arena")
            return
        except ArenaMemoryError:
            self._expect_only_reclaimed(before, self._snapshot(), what)
            return
        info = self.arena.info(view)
        a = align if align is not None else self.granule
        self.expect(info.phys % a == 0 and info.address % a == 0,
                    f"{what} at {info.phys:#x} is not aligned to {a}")
        self.expect(info.size == nbytes and info.reserved >= max(nbytes, 1),
                    f"{what}: info size {info.size}, reserved {info.reserved}")
        self.expect(node is None or not strict or info.node == node,
                    f"{what} placed on node {info.node}")
        if self.budget is not None:
            self.expect(self.allocated() + info.reserved <= self.budget,
                        f"{what} went over the budget")
        if nbytes and zero:
            self.expect(not view.any(), f"zeroed allocation at {info.phys:#x} is not zero")
        self.recs[info.phys] = [info.phys, info.reserved, -1, info.node, nbytes]
        self.count += 1
        self.total += info.reserved
        self.peak = max(self.peak, self.allocated())
        if nbytes:
            self.remember(info.phys, view)
        else:
            self.live[info.phys] = (view, b"")

    def _op_alloc(self, *args: Any) -> None:
        self._do_alloc(*args)

    def _release(self, rec: list[int]) -> None:
        block, reserved, order = rec[0], rec[1], rec[2]
        if not self.exact:
            return
        if order >= 0:
            if self.bmodel is None:
                raise InvariantError("soak_arena: expected self.bmodel is not None")
            self.bmodel.give_back(block >> self.shift)
        elif self.bmodel is None:
            self.model.remove_range("reserved", block, reserved)
        else:
            s, e = (block + self.ps - 1) >> self.shift, (block + reserved) >> self.shift
            for pfn in range(s, e):
                self.bmodel.boot_free(pfn, pfn + 1, self.model.node_of(pfn << self.shift))

    def _free_keys(self, keys: list[int]) -> None:
        recs = [self.recs.pop(k) for k in keys]
        for k in keys:
            self.live.pop(k, None)
        if not self.debug:
            for rec in recs:
                self._release(rec)
            return
        self.quarantine.extend(recs)
        while sum(r[1] for r in self.quarantine) > self.qlimit:
            self._release(self.quarantine.popleft())

    def _op_free(self, key: int) -> None:
        self.arena.free(self.live[key][0])
        self._free_keys([key])     # the workload's last array of it goes

    def _op_scope(self, allocs: tuple) -> None:
        before = set(self.recs)
        with self.arena.scope():
            for args in allocs:
                self._do_alloc(*args)
        self._free_keys([k for k in self.recs if k not in before])

    def _op_reset(self) -> None:
        self.arena.reset()
        self._free_keys(list(self.recs))

    def _op_release(self) -> None:
        if not self.exact:
            got = self.arena.release()
            self.expect(got >= 0 and got % self.ps == 0, f"release() returned {got}")
            return
        # The resident bytes of the whole free pages: what release() gives back and reports.
        want = 0
        for s, e, _ in self._runs():
            s, e = round_up(s, self.ps), e & -self.ps
            if s < e:
                want += self.pm.resident_bytes(s, e - s)
        got = self.arena.release()
        self._same_val("release()", got, want)

    def _op_handover(self) -> None:
        self.arena.handover(max_order=self.max_order)
        if not self.exact:
            return
        self.bmodel = BuddyModel(self.pm.phys_base >> self.shift, self.pm.size >> self.shift,
                                 self.max_order)
        for s, e, nid in self.model.free_all():
            self.bmodel.boot_free(s, e, nid)

    def _op_bad_free(self, key: int, how: str) -> None:
        from arena.errors import DoubleFreeError, ForeignBufferError

        view, _ = self.live[key]
        before = self._snapshot()
        try:
            if how == "double":
                self.arena.free(view)
                self._free_keys([key])
                before = self._snapshot()
                self.arena.free(view)
            elif how == "part":
                self.arena.free(view[1:] if view.size else view.reshape(-1)[:0].copy())
            else:
                self.arena.free(view.copy())
        except (DoubleFreeError, ForeignBufferError):
            pass
        else:
            raise InvariantViolation(f"bad free ({how}) of {key:#x} was accepted")
        self.expect(self._snapshot() == before, f"a refused bad free ({how}) changed the arena")

    # verification ---------------------------------------------------------------------------

    def _snapshot(self) -> tuple:
        a = self.arena
        st = a.stats()
        mb = a.memblock
        regions = tuple(tuple(t.regions) for t in (mb.memory, mb.reserved))
        buddy = a.buddy.dump(limit=1 << 20) if a.buddy is not None else None
        return (st.bytes_allocated, st.bytes_requested, st.live_allocations, st.num_allocations,
                st.free_bytes, st.quarantined_bytes, st.held_bytes, st.retained_bytes,
                st.slab_bytes, regions, buddy, tuple((i.phys, i.size) for i in a.live()))

    def _expect_only_reclaimed(self, before: tuple, after: tuple, what: str) -> None:
        """A request that failed for want of memory changed no allocation; it may have given
        retained blocks and empty slabs back first (never taken any), nothing else."""
        user = (0, 1, 2, 3, 5, 6, 11)   # counts, quarantine, held, live: see _snapshot
        self.expect(all(before[i] == after[i] for i in user),
                    f"refused {what} changed the allocations")
        self.expect(after[4] >= before[4] and after[7] <= before[7] and after[8] <= before[8],
                    f"refused {what} took memory (free, retained, slab bytes "
                    f"{before[4]}, {before[7]}, {before[8]} -> {after[4]}, {after[7]}, "
                    f"{after[8]})")
        self.expect(after[4] - before[4] == before[7] - after[7] + before[8] - after[8],
                    f"refused {what}: the bytes it gave back are not the caches'")

    def _runs(self) -> list[tuple[int, int, int]]:
        if self.bmodel is None:
            return self.model.free_ranges(NUMA_NO_NODE, 0)
        return self.bmodel.free_runs(self.shift)

    def _same_val(self, what: str, got: Any, want: Any) -> None:
        self.expect(got == want, lambda: f"{what}: got {got!r}, model {want!r}")

    def _verify(self) -> None:
        a = self.arena
        self._same_val("check()", a.check(), [])
        if not self.exact:
            self._verify_loose()
            return
        if self.bmodel is None:
            _expect_regions(a.memblock.memory, self.model.memory.runs(), self.model.max["memory"])
            _expect_regions(a.memblock.reserved, self.model.reserved.runs(),
                            self.model.max["reserved"])
            self.peak_regions = max(self.peak_regions, a.memblock.reserved.cnt)
        else:
            b = a.buddy
            if b is None:
                raise InvariantError("soak_arena: expected b is not None")
            self._same_val("buddy free blocks", sorted(b.free_blocks()),
                           sorted(self.bmodel.blocks()))
        st = a.stats()
        runs = self._runs()
        sizes = [e - s for s, e, _ in runs]
        self._verify_counters(st)
        self._same_val("quarantined_bytes", st.quarantined_bytes,
                       sum(r[1] for r in self.quarantine))
        self._same_val("free_bytes", st.free_bytes, sum(sizes))
        self._same_val("largest_free_block", st.largest_free_block, max(sizes, default=0))
        if self.budget is not None:
            self._same_val("budget_remaining", st.budget_remaining,
                           self.budget - self.allocated())
        for ns in st.per_node:
            self._same_val(f"node {ns.nid} free_bytes", ns.free_bytes,
                           sum(e - s for s, e, n in runs if n == ns.nid))
            self._same_val(f"node {ns.nid} live", ns.live_allocations,
                           sum(1 for r in self.recs.values() if r[3] == ns.nid))
        self._verify_caches(st)
        self._verify_live()

    def _verify_counters(self, st: Any) -> None:
        """The statistics that hold wherever allocations land: counts and byte totals."""
        self._same_val("held_bytes", st.held_bytes, 0)   # no array of a freed unit is left
        self._same_val("bytes_allocated", st.bytes_allocated, self.allocated())
        self._same_val("bytes_requested", st.bytes_requested,
                       sum(r[4] for r in self.recs.values()))
        self._same_val("live_allocations", st.live_allocations, len(self.recs))
        self._same_val("num_allocations", st.num_allocations, self.count)
        self._same_val("total_bytes_allocated", st.total_bytes_allocated, self.total)
        self._same_val("max_memory", st.max_memory, self.peak)

    def _verify_live(self) -> None:
        a = self.arena
        live = a.live()
        self._same_val("live() addresses", sorted(i.phys for i in live), sorted(self.recs))
        for key, (view, _) in self.live.items():
            self.expect(a.owns(view), f"arena does not own live allocation {key:#x}")

    def _verify_loose(self) -> None:
        """With size-class caches: bookkeeping, statistics and no overlap."""
        a = self.arena
        st = a.stats()
        self.peak_regions = max(self.peak_regions, a.memblock.reserved.cnt)
        self._verify_counters(st)
        if a.buddy is None:
            mb = a.memblock
            free = sum(e - s for s, e, _ in mb.for_each_free_mem_range())
            self._same_val("free + reserved", free + mb.reserved.total_size, a.capacity)
            self._same_val("free_bytes", st.free_bytes, free)
        spans = sorted((k, r[4]) for k, r in self.recs.items())
        for (p0, n0), (p1, _) in zip(spans, spans[1:], strict=False):
            self.expect(p0 + n0 <= p1, f"live allocations at {p0:#x} (+{n0}) and {p1:#x} "
                                       f"overlap")
        self._verify_caches(st)
        self._verify_live()

    def _verify_caches(self, st: Any) -> None:
        """No unit both cached and live; retained and slab bytes are what the caches hold;
        before the hand-over memblock's reserved bytes are exactly accounted for."""
        from arena.unit import FREE

        a = self.arena
        slab, large = a.slab, a.large
        cached: list[tuple[int, int]] = []       # (phys, bytes) of every unit on a free list
        in_slots = 0
        if slab is not None:
            slabs = list(slab.slabs())
            self._same_val("slab_bytes", st.slab_bytes, sum(sl.nbytes for sl in slabs))
            for sl in slabs:
                cached += [(u.phys, u.csize) for u in sl.free]
                used = [u for u in sl.slots if u.state != FREE]
                in_slots += sum(u.csize for u in used)
                for u in used:
                    self.expect(u.phys in self.recs, f"slot {u.phys:#x} is in use but not "
                                                     f"a live allocation")
        blocks = [] if large is None else list(large.free_blocks())
        cached += [(b.phys, b.csize) for b in blocks]
        spans = sorted([(r[0], max(r[1], 1), "live") for r in self.recs.values()]
                       + [(p, n, "cached") for p, n in cached])
        for (p0, n0, k0), (p1, _, k1) in zip(spans, spans[1:], strict=False):
            self.expect(p0 + n0 <= p1, f"{k0} unit at {p0:#x} (+{n0}) overlaps {k1} unit "
                                       f"at {p1:#x}")
        self.expect(all(b.state == FREE for b in blocks), "a retained block is in use")
        self._same_val("retained_bytes", st.retained_bytes, sum(b.csize for b in blocks))
        if large is not None:
            self.expect(st.retained_bytes <= large.limit,
                        f"retained_bytes {st.retained_bytes} over the limit {large.limit}")
        if a.buddy is None:
            want = (st.slab_bytes + st.bytes_allocated - in_slots + st.retained_bytes
                    + st.quarantined_bytes + st.memblock_bytes)
            self._same_val("memblock reserved bytes", a.memblock.reserved.total_size, want)
