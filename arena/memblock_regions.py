"""memblock's region arrays: the array primitives, add / remove / free / reserve, the flag
setters and ``memblock_set_node()``, in the order of ``mm/memblock.c``.

A part of :class:`arena.memblock.Memblock` (its methods declare ``self: Memblock``). Each
operation opens the window of regions its range touches (:mod:`arena.memblock_store`),
changes the window's columns the way the kernel's loops change its array, and commits it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from arena.constants import (
    ENOMEM,
    HOTPLUG,
    KHO_SCRATCH,
    MIRROR,
    NOMAP,
    NUMA_NO_NODE,
    RSRV_KERN,
    RSRV_NOINIT,
    round_up,
)
from arena.errors import MemblockBug, MemblockPanic
from arena.memblock_store import MemblockType, Window

if TYPE_CHECKING:
    from arena.memblock import Memblock

__all__ = ["Regions"]

_log = logging.getLogger("arena.memblock")
_INFO = logging.INFO


class Regions:
    """The region-array operations of :class:`arena.memblock.Memblock` (a part of the class)."""

    # ========================================================================================
    # Region array primitives (memblock_double_array .. memblock_add_range)
    # ========================================================================================

    def _double_array(self: Memblock, t: MemblockType, new_area_start: int, new_area_size: int) -> int:
        """``memblock_double_array()``: grow ``t`` to ``2 * max`` regions (0 or -1).

        The new array's space comes from memblock itself (page aligned, avoiding the pending
        range when doubling ``reserved``), and is reserved afterwards; a previous non-static
        array is freed. Raises :class:`MemblockPanic` (>= 6.7) or returns -1 (older) when
        :meth:`allow_resize` was not called. O(n).
        """
        if not self._can_resize:
            if self._v_resize_panic:
                raise MemblockPanic(f"memblock: cannot resize {t.name} array")
            return -1
        ps = self._page_size
        old_size = t.max * self._region_size
        new_size = old_size << 1
        old_alloc = round_up(old_size, ps)
        new_alloc = round_up(new_size, ps)
        if t is not self.reserved:  # only exclude the pending range when doubling reserved
            new_area_start = new_area_size = 0
        addr = self._find_in_range(new_area_start + new_area_size, self._current_limit,
                                   new_alloc, ps)
        if not addr and new_area_size:
            addr = self._find_in_range(0, min(new_area_start, self._current_limit),
                                       new_alloc, ps)
        if not addr:
            _log.error(f"memblock: Failed to double {t.name} array from {t.max} to "
                       f"{t.max * 2} entries !")
            return -1
        if _log.isEnabledFor(_INFO):
            _log.info(f"memblock: {t.name} is doubled to {t.max * 2} at "
                      f"[{self._pa(addr)}-{self._pa(addr + new_size - 1)}]")
        old_phys = t.array_phys
        t.max <<= 1
        t.array_phys = addr
        # Free the old array unless it is a static one. (physmem's static array is not
        # recognised as static by the kernel; its address is unknown here, so nothing is freed.)
        if old_phys is not None:
            self._phys_free(old_phys, old_alloc)
        # Reserve the new array (BUG if that fails).
        if self._reserve_kern_internal(addr, new_alloc) != 0:
            raise MemblockBug(f"memblock: could not reserve the doubled {t.name} array "
                              f"at {self._pa(addr)}")
        return 0

    def _merge_regions(self: Memblock, t: MemblockType, w: Window, start_rgn: int, end_rgn: int) -> None:
        """``memblock_merge_regions()`` on window ``w``: merge touching neighbours with equal
        nid and flags, for the pairs ``(i, i+1)`` with ``i`` in ``[start_rgn - 1, end_rgn - 1]``
        (window indices; the window holds the neighbours on both sides, so this is the kernel's
        pass). Kernels < 6.3 scan the whole array; that differs only after
        ``cap_memory_range`` left it non-minimal, and then :meth:`_merge_all` runs instead.
        BUG on overlap. O(window)."""
        B, S, F, N = w.B, w.S, w.F, w.N
        n = len(B)
        if n == 0:
            return
        i = start_rgn - 1 if start_rgn > 0 else 0
        limit = min(end_rgn, n - 1)
        while i < limit:
            a_end = B[i] + S[i]
            nb = B[i + 1]
            if a_end != nb or N[i] != N[i + 1] or F[i] != F[i + 1]:
                if a_end > nb:
                    g = w.index(i)
                    w.commit()               # keep the storage consistent for the dump
                    raise MemblockBug(f"memblock: {t.name}[{g}] overlaps {t.name}[{g + 1}]:\n"
                                      + self.dump_all(log=False))
                i += 1
                continue
            S[i] += S[i + 1]
            del B[i + 1], S[i + 1], F[i + 1], N[i + 1]
            limit -= 1

    def _merge_all(self: Memblock, t: MemblockType) -> None:
        """The whole-array ``memblock_merge_regions()`` of kernels < 6.3. O(n)."""
        w = t.whole()
        self._merge_regions(t, w, 0, t.live)
        w.commit()

    def _merge_store(self: Memblock, t: MemblockType, w: Window, start_rgn: int, end_rgn: int) -> None:
        """Merge (:meth:`_merge_regions`) and store the window back into ``t``."""
        if self._v_window_merge or not (t.may_be_nonminimal or t.unsorted):
            self._merge_regions(t, w, start_rgn, end_rgn)
            w.commit()
        else:
            w.commit()
            self._merge_all(t)

    def _insert_region(self: Memblock, t: MemblockType, w: Window, idx: int, base: int, size: int,
                       nid: int, flags: int) -> None:
        """``memblock_insert_region()``: insert at window index ``idx``. BUG if ``t`` is full."""
        cnt = t.live + len(w.B) - w.k          # the array's count with this window
        if cnt >= t.max:
            w.commit()
            raise MemblockBug(f"memblock: inserting into a full {t.name} array "
                              f"(cnt {cnt}, max {t.max})")
        w.insert(idx, base, size, nid, flags)
        t.total_size = (t.total_size + size) & self._mask

    @staticmethod
    def _count_new_regions(w: Window, base: int, end: int) -> int:
        """The counting pass of ``memblock_add_range()``: how many regions adding
        ``[base, end)`` to window ``w`` would insert. O(window)."""
        B, S = w.B, w.S
        cur = base
        nr_new = 0
        idx = w.i0
        n = len(B)
        while idx < n:
            rbase = B[idx]
            if rbase >= end:
                break
            rend = rbase + S[idx]
            if rend <= cur:          # (only an unsorted array has such regions here)
                idx += 1
                continue
            if rbase > cur:
                nr_new += 1
            cur = rend if rend < end else end
            idx += 1
        if cur < end:
            nr_new += 1
        return nr_new

    def _add_range(self: Memblock, t: MemblockType, base: int, size: int, nid: int, flags: int) -> int:
        """``memblock_add_range()``: add ``[base, base + size)`` to ``t`` (0 or ``-ENOMEM``).

        Existing parts keep their attributes; only uncovered parts get ``(nid, flags)``; then
        touching equal neighbours merge. ``size`` is capped at ``PHYS_ADDR_MAX - base``; size 0
        is a no-op. Works on the window of regions the range overlaps (plus a neighbour on each
        side). O(log n + k) with k the regions overlapped.
        """
        size = min(size, self._mask - base)
        if not size:
            return 0
        if not self._numa:
            nid = 0
        end = base + size
        if not t.live:  # special case for an empty array
            if t.total_size:
                self._warn(f"memblock: empty {t.name} array has total_size {t.total_size:#x}")
            t.load([base], [size], [flags], [nid])
            t.total_size = size
            t.total_excess = 0
            return 0
        w = t.window(base, end)
        if t.live * 2 + 1 > t.max:
            # Counting pass: how many new regions are needed; grow the array first.
            nr_new = self._count_new_regions(w, base, end)
            if not nr_new:
                return 0
            if t.live + nr_new > t.max:
                while t.live + nr_new > t.max:
                    if self._double_array(t, base, size) < 0:
                        return -ENOMEM
                w = t.window(base, end)   # doubling reserved changes it
        # Inserting pass.
        B, S, F, N = w.B, w.S, w.F, w.N
        cur = base
        start_rgn = -1
        end_rgn = 0
        idx = w.i0
        while idx < len(B):
            rbase = B[idx]
            if rbase >= end:
                break
            rend = rbase + S[idx]
            if rend <= cur:
                idx += 1
                continue
            if rbase > cur:
                if self._numa and nid != N[idx]:
                    self._warn(f"memblock: adding [{self._pa(cur)}-{self._pa(rbase - 1)}] to "
                               f"{t.name} with nid {nid} next to nid {N[idx]}")
                if flags != F[idx] and (flags or self._v_flag_warn_any):
                    self._warn(f"memblock: adding [{self._pa(cur)}-{self._pa(rbase - 1)}] to "
                               f"{t.name} with flags {flags:#x} next to flags {F[idx]:#x}")
                if start_rgn == -1:
                    start_rgn = idx
                end_rgn = idx + 1
                self._insert_region(t, w, idx, cur, rbase - cur, nid, flags)
                idx += 1
            cur = rend if rend < end else end
            idx += 1
        if cur < end:
            if start_rgn == -1:
                start_rgn = idx
            end_rgn = idx + 1
            self._insert_region(t, w, idx, cur, end - cur, nid, flags)
        if start_rgn == -1:
            return 0
        self._merge_store(t, w, start_rgn, end_rgn)
        return 0

    # ========================================================================================
    # add / remove / free / reserve (memblock_add_node .. memblock_physmem_add)
    # ========================================================================================

    def add_node(self: Memblock, base: int, size: int, nid: int, flags: int = 0) -> int:
        """``memblock_add_node()``: add ``[base, base + size)`` to ``memory`` on node ``nid``.

        ``flags`` are :class:`MemblockFlags` for the new parts. Parts already in memory keep
        their own nid/flags. Returns 0, or ``-ENOMEM`` if the array could not grow.
        Raises :class:`MemblockPanic` when it must grow without :meth:`allow_resize` (>= 6.7).
        O(log n + k) plus memmoves.
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        if _log.isEnabledFor(_INFO):
            extra = f" nid={nid} flags={flags:x}" if self._v_add_node_flags else f" nid={nid}"
            self._dbg_range("memblock_add_node", base, size, extra)
        ret = self._add_range(self.memory, base, size, nid, flags)
        self._done()
        return ret

    def add(self: Memblock, base: int, size: int) -> int:
        """``memblock_add()``: add ``[base, base + size)`` to ``memory`` (nid ``MAX_NUMNODES``,
        flags 0). Returns 0 or ``-ENOMEM``. O(log n + k) plus memmoves."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_add", base, size)
        ret = self._add_range(self.memory, base, size, self._max_numnodes, 0)
        self._done()
        return ret

    def validate_numa_coverage(self: Memblock, threshold_bytes: int) -> bool:
        """``memblock_validate_numa_coverage()``: False (and the kernel's error line) if more
        than ``threshold_bytes`` of memory has no valid node."""
        threshold_bytes = self._ulong("threshold_bytes", threshold_bytes)
        pages = sum(e - s for s, e, n in self.for_each_mem_pfn_range(self._max_numnodes)
                    if not self._numa_valid_node(n))
        lost = pages << self._page_shift
        if lost > threshold_bytes:
            _log.error(f"NUMA: no nodes coverage for {lost >> 20}MB of "
                       f"{self.memory.total_size >> 20}MB RAM")
            return False
        return True

    def _isolate_range(self: Memblock, t: MemblockType, base: int,
                       size: int) -> tuple[int, Window | None, int, int]:
        """``memblock_isolate_range()``: split regions at ``base`` and ``base + size``.

        Returns ``(ret, w, start_rgn, end_rgn)``: ``ret`` 0 or ``-ENOMEM``; ``w`` the window of
        regions around the range, split but not yet stored back (None for an empty range);
        the regions inside the range are ``w``'s ``[start_rgn, end_rgn)``. Grows the array
        first whenever ``cnt + 2 > max``, even if no split is needed (kernel behaviour).
        O(log n + k).
        """
        size = min(size, self._mask - base)
        if not size:
            return 0, None, 0, 0
        end = base + size
        while t.cnt + 2 > t.max:
            if self._double_array(t, base, size) < 0:
                return -ENOMEM, None, 0, 0
        w = t.window(base, end)
        B, S, F, N = w.B, w.S, w.F, w.N
        start_rgn = end_rgn = 0
        idx = w.i0
        while idx < len(B):
            rbase = B[idx]
            if rbase >= end:
                break
            rend = rbase + S[idx]
            if rend <= base:
                idx += 1
                continue
            if rbase < base:
                # Straddles the start: keep the upper piece here, insert the lower one below;
                # go on with the upper piece (now at idx + 1).
                B[idx] = base
                S[idx] -= base - rbase
                t.total_size -= base - rbase
                self._insert_region(t, w, idx, rbase, base - rbase, N[idx], F[idx])
                idx += 1
            elif rend > end:
                # Straddles the end: insert the lower piece and look at it again.
                B[idx] = end
                S[idx] -= end - rbase
                t.total_size -= end - rbase
                self._insert_region(t, w, idx, rbase, end - rbase, N[idx], F[idx])
            else:
                if not end_rgn:
                    start_rgn = idx
                end_rgn = idx + 1
                idx += 1
        return 0, w, start_rgn, end_rgn

    def _emptied(self: Memblock, t: MemblockType) -> None:
        """After removals: an empty array warns about a left-over total and (kernels <= 6.10)
        its dummy entry reads nid ``MAX_NUMNODES``."""
        if not t.live:
            if t.total_size:
                self._warn(f"memblock: {t.name} is empty but total_size is {t.total_size:#x}")
            t.dummy_nid = self._max_numnodes if self._numa else 0

    def _remove_range(self: Memblock, t: MemblockType, base: int, size: int) -> int:
        """``memblock_remove_range()``: drop ``[base, base + size)`` from ``t`` (0/-ENOMEM);
        ``memblock_remove_region()`` for each region inside. O(log n + k)."""
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret or w is None or s >= e:
            return ret        # nothing inside the range, so nothing was split either
        S = w.S
        t.total_size = (t.total_size - sum(S[s:e])) & self._mask
        w.delete(s, e)
        w.commit(s)
        if not t.live:
            self._emptied(t)
        return 0

    def remove(self: Memblock, base: int, size: int) -> int:
        """``memblock_remove()``: remove ``[base, base + size)`` from ``memory``.

        Regions are split at the range ends as needed; removing what is not there is a no-op
        (but a nearly full array may still grow). Returns 0 or ``-ENOMEM``. O(log n + k).
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_remove", base, size)
        ret = self._remove_range(self.memory, base, size)
        self._done()
        return ret

    def free(self: Memblock, view_or_phys: Any, size: int | None = None) -> int:
        """``memblock_free(void *ptr, size)``: free an allocation given as a view or address.

        ``view_or_phys``: a numpy view from an ``alloc*`` method (``size`` defaults to its
        ``nbytes``; the empty array of a size-0 allocation outside the PhysicalMemory frees
        nothing and returns 0), a physical address (then ``size`` is required), or ``None``
        (the kernel's NULL: nothing happens). Returns what :meth:`phys_free` returns (0 for ``None``; the
        kernel's function is void). Raises ``ValueError`` for a view of other memory.
        O(log n + k).
        """
        if view_or_phys is None:
            return 0
        if isinstance(view_or_phys, np.ndarray):
            if self._physmem is None:
                raise ValueError("free(view): this Memblock has no PhysicalMemory")
            if not view_or_phys.nbytes and not size:
                try:
                    phys = self._physmem.phys_of(view_or_phys)
                except ValueError:
                    return 0    # a size-0 allocation outside the memory: 0 bytes to free
                return self.phys_free(phys, 0)
            phys = self._physmem.phys_of(view_or_phys)
            if size is None:
                size = view_or_phys.nbytes
        else:
            phys = view_or_phys
            if size is None:
                raise TypeError("free(phys, size): size is required with a physical address")
        return self.phys_free(phys, size)

    def _phys_free(self: Memblock, base: int, size: int) -> int:
        """``memblock_phys_free()`` without argument checks (also used by array doubling)."""
        if _log.isEnabledFor(_INFO):
            self._dbg_range(self._v_phys_free_name, base, size)
        ret = self._remove_range(self.reserved, base, size)
        if self._handed_over and ret == 0:
            # With slab up the kernel hands the whole pages to the page allocator.
            self._release_pages(base, size)
        return ret

    def phys_free(self: Memblock, base: int, size: int) -> int:
        """``memblock_phys_free()`` (``memblock_free()`` before 5.16): un-reserve
        ``[base, base + size)``.

        Freeing what was never reserved is a no-op returning 0. After :meth:`free_all` the
        whole pages of the range also go to the page allocator (order 0). Returns 0 or
        ``-ENOMEM``. O(log n + k).
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        if self._handed_over:
            self._check_pages_in_memory(base, size)
        ret = self._phys_free(base, size)
        self._done()
        return ret

    def _reserve(self: Memblock, base: int, size: int, nid: int, flags: int) -> int:
        """``__memblock_reserve()``: add ``[base, base + size)`` to ``reserved`` (debug line)."""
        if self._v_rsrv_kern:
            if _log.isEnabledFor(_INFO):
                self._dbg_range("__memblock_reserve", base, size, f" nid={nid} flags={flags:x}")
        elif _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_reserve", base, size)
        return self._add_range(self.reserved, base, size, nid, flags)

    def _reserve_plain(self: Memblock, base: int, size: int) -> int:
        """``memblock_reserve()``: ``{nid -1, flags 0}`` (< 6.16: ``{MAX_NUMNODES, 0}``)."""
        nid = NUMA_NO_NODE if self._v_rsrv_kern else self._max_numnodes
        return self._reserve(base, size, nid, 0)

    def _reserve_kern_internal(self: Memblock, base: int, size: int) -> int:
        """``memblock_reserve_kern()`` (< 6.16 the same calls used ``memblock_reserve()``)."""
        if self._v_rsrv_kern:
            return self._reserve(base, size, NUMA_NO_NODE, RSRV_KERN)
        return self._reserve_plain(base, size)

    def reserve(self: Memblock, base: int, size: int) -> int:
        """``memblock_reserve()``: reserve ``[base, base + size)`` (nid ``NUMA_NO_NODE``, flags 0;
        kernels < 6.16: nid ``MAX_NUMNODES``).

        Any range is accepted (also outside memory). Returns 0 or ``-ENOMEM``. Raises
        :class:`MemblockPanic` when the array must grow without :meth:`allow_resize`.
        O(log n + k) plus memmoves.
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        ret = self._reserve_plain(base, size)
        self._done()
        return ret

    def reserve_kern(self: Memblock, base: int, size: int) -> int:
        """``memblock_reserve_kern()``: reserve with flags RSRV_KERN, nid ``NUMA_NO_NODE``
        (what allocations record, so the two merge). Returns 0 or ``-ENOMEM``."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if self._v_rsrv_kern:
            ret = self._reserve(base, size, NUMA_NO_NODE, RSRV_KERN)
        else:
            ret = self._reserve(base, size, self._max_numnodes, RSRV_KERN)
        self._done()
        return ret

    def reserve_node(self: Memblock, base: int, size: int, nid: int, flags: int = 0) -> int:
        """``__memblock_reserve()``: reserve ``[base, base + size)`` with node ``nid`` and
        :class:`MemblockFlags` ``flags`` for the new parts (the attributes a 6.16+
        ``__memblock_reserve`` debug line prints; the counterpart of :meth:`add_node` for
        ``reserved``). Used by replays that reproduce such lines. Returns 0 or ``-ENOMEM``.
        O(log n + k)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        nid = self._nid_arg(nid)
        flags = self._flags_arg(flags)
        ret = self._reserve(base, size, nid, flags)
        self._done()
        return ret

    def physmem_add(self: Memblock, base: int, size: int) -> int:
        """``memblock_physmem_add()``: add ``[base, base + size)`` to ``physmem`` (capacity 4).
        Returns 0 or ``-ENOMEM``. O(log n + k)."""
        base = self._phys("base", base)
        size = self._phys("size", size)
        if _log.isEnabledFor(_INFO):
            self._dbg_range("memblock_physmem_add", base, size)
        ret = self._add_range(self.physmem, base, size, self._max_numnodes, 0)
        self._done()
        return ret

    # ========================================================================================
    # Flags (memblock_setclr_flag .. memblock_clear_kho_scratch)
    # ========================================================================================

    def _setclr_flag(self: Memblock, t: MemblockType, base: int, size: int, set_: bool, flag: int) -> int:
        """``memblock_setclr_flag()``: set or clear ``flag`` on ``[base, base + size)`` of ``t``."""
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret:
            return ret
        if w is not None and s < e:
            F = w.F
            if set_:
                for i in range(s, e):
                    F[i] |= flag
            else:
                keep = ~flag & 0xFF
                for i in range(s, e):
                    F[i] &= keep
            self._merge_store(t, w, s, e)
        elif not self._v_window_merge and t.may_be_nonminimal:
            self._merge_all(t)
        return 0

    def _setclr(self: Memblock, t: MemblockType, base: Any, size: Any, set_: bool, flag: int) -> int:
        base = self._phys("base", base)
        size = self._phys("size", size)
        ret = self._setclr_flag(t, base, size, set_, flag)
        self._done()
        return ret

    def mark_hotplug(self: Memblock, base: int, size: int) -> int:
        """``memblock_mark_hotplug()``: set HOTPLUG on ``memory`` in ``[base, base + size)``.
        Returns 0 or ``-ENOMEM``. O(log n + k)."""
        return self._setclr(self.memory, base, size, True, HOTPLUG)

    def clear_hotplug(self: Memblock, base: int, size: int) -> int:
        """``memblock_clear_hotplug()``: clear HOTPLUG on ``memory`` in ``[base, base + size)``."""
        return self._setclr(self.memory, base, size, False, HOTPLUG)

    def mark_mirror(self: Memblock, base: int, size: int) -> int:
        """``memblock_mark_mirror()``: set MIRROR on ``memory`` in ``[base, base + size)``.

        Does nothing (returns 0) unless ``mirrored_kernelcore`` is true (kernels >= 6.0);
        otherwise it first sets ``system_has_some_mirror``, after which every allocation tries
        mirrored memory first.
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        if self._v_mirror_gate and not self.mirrored_kernelcore:
            return 0
        self.system_has_some_mirror = True
        ret = self._setclr_flag(self.memory, base, size, True, MIRROR)
        self._done()
        return ret

    def mark_nomap(self: Memblock, base: int, size: int) -> int:
        """``memblock_mark_nomap()``: set NOMAP (not allocatable, not in the direct map)."""
        return self._setclr(self.memory, base, size, True, NOMAP)

    def clear_nomap(self: Memblock, base: int, size: int) -> int:
        """``memblock_clear_nomap()``: clear NOMAP on ``memory`` in ``[base, base + size)``."""
        return self._setclr(self.memory, base, size, False, NOMAP)

    def reserved_mark_noinit(self: Memblock, base: int, size: int) -> int:
        """``memblock_reserved_mark_noinit()``: set RSRV_NOINIT on ``reserved`` regions."""
        return self._setclr(self.reserved, base, size, True, RSRV_NOINIT)

    def reserved_mark_kern(self: Memblock, base: int, size: int) -> int:
        """``memblock_reserved_mark_kern()``: set RSRV_KERN on ``reserved`` regions."""
        return self._setclr(self.reserved, base, size, True, RSRV_KERN)

    def mark_kho_scratch(self: Memblock, base: int, size: int) -> int:
        """``memblock_mark_kho_scratch()``: set KHO_SCRATCH on ``memory``."""
        return self._setclr(self.memory, base, size, True, KHO_SCRATCH)

    def clear_kho_scratch(self: Memblock, base: int, size: int) -> int:
        """``memblock_clear_kho_scratch()``: clear KHO_SCRATCH on ``memory``."""
        return self._setclr(self.memory, base, size, False, KHO_SCRATCH)

    def set_kho_scratch_only(self: Memblock) -> None:
        """``memblock_set_kho_scratch_only()``: allocate only from KHO_SCRATCH memory."""
        self.kho_scratch_only = True

    def clear_kho_scratch_only(self: Memblock) -> None:
        """``memblock_clear_kho_scratch_only()``."""
        self.kho_scratch_only = False

    # ========================================================================================
    # Nodes (memblock_set_node)
    # ========================================================================================

    def set_node(self: Memblock, base: int, size: int, type: Any, nid: int) -> int:  # noqa: A002
        """``memblock_set_node()``: set the nid of ``type``'s regions in ``[base, base + size)``.

        ``type`` is ``self.memory``/``self.reserved``/``self.physmem`` or its name. Regions are
        split at the range ends and re-merged. Without NUMA: returns 0, no change.
        Returns 0 or ``-ENOMEM``. O(log n + k).
        """
        base = self._phys("base", base)
        size = self._phys("size", size)
        t = self._type_arg(type)
        nid = self._nid_arg(nid)
        ret = self._set_node(base, size, t, nid)
        self._done()
        return ret

    def _set_node(self: Memblock, base: int, size: int, t: MemblockType, nid: int) -> int:
        if not self._numa:
            return 0
        ret, w, s, e = self._isolate_range(t, base, size)
        if ret:
            return ret
        if w is not None and s < e:
            N = w.N
            for i in range(s, e):
                N[i] = nid
            self._merge_store(t, w, s, e)
        elif not self._v_window_merge and t.may_be_nonminimal:
            self._merge_all(t)
        return 0
