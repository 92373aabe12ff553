"""One arena shared by many processes: numpy arrays that cross process boundaries uncopied.

Kernel counterpart: none as a whole; the model is a per-thread heap allocator (each thread
allocates from heaps of its own, a block freed by another thread is pushed on its owner's
delayed-free list), with processes in the place of threads.

A :class:`SharedArena` is a memory file (:mod:`arena.memfd`) mapped ``MAP_SHARED`` by every
process attached to it. The file holds the shared metadata (:mod:`arena.shared_meta`) and
``processes`` *windows* of ``size`` bytes. Each attached process claims a window and allocates
there with an :class:`arena.Arena` of its own (its own memblock, size classes, budget and
statistics) over that window (a :class:`arena.physmem.PhysicalMemory` with ``shared=True``,
so the usual alignment, node slices and binding apply): allocating and freeing in one's own
window takes no lock shared with other processes.

Sending: pickling an array of the arena (``multiprocessing`` queues, pipes, ``Pool``,
``ProcessPoolExecutor``, or plain ``pickle`` in a process attached to the arena) sends a
:class:`arena.handles.Handle`; unpickling it in a process of the same arena gives an array
over the same bytes. A process that is not attached yet attaches on the way: fork children
inherit the mapping; other processes open the sender's descriptor through
``/proc/<pid>/fd/<fd>`` (allowed between processes of one user), or attach explicitly with
:func:`attach` and a :meth:`SharedArena.token` passed to them (which carries the descriptor
itself, through ``multiprocessing``'s descriptor passing: as a ``Pool`` initializer's argument
under ``spawn`` or ``forkserver``).

Lifetime across processes: leases. Each block that crosses a process boundary gets a lease
record in the shared metadata, counting per process the views (and handles in flight) it
holds. Making a handle counts one for the sender; opening it moves the count to the receiver,
which gives it back when the last array it derived from that handle dies. The owner keeps the
block's array (a *pin*) while any lease count remains, so its own arena — garbage-collected or
manual lifetime alike — does not reuse the block while another process may view it; it drops
the pin when it sees the lease gone (its event counter moved) at its next allocation. A free by
a process that does not own the block raises the lease's ``freed`` flag (the owner's
delayed-free list) and the owner frees the block at its next allocation.

Faults: a process that dies keeps nothing: whoever notices (the next claim of a window,
:meth:`SharedArena.reclaim`, :meth:`SharedArena.check`, :meth:`SharedArena.shared_stats`)
drops its leases, and its window is given back (its pages punched out) once no other process
views its blocks. Process ids are reused, so a process is named by its pid and start time.
See :mod:`arena.shared_meta` for the lock and how a half-written record is detected.
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import os
import secrets
import threading
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from arena import handles
from arena._arena_util import _lifetime_arg, _round_up
from arena._args import int_arg
from arena.arena import ARENA_PHYS_BASE, Arena
from arena.errors import (
    BadHandleError,
    BudgetExceededError,
    ClosedError,
    DoubleFreeError,
    ForeignBufferError,
    LiveViewsError,
    SharedStateError,
)
from arena.handles import Handle
from arena.physmem import PAGE_SIZE, PhysicalMemory, parse_size
from arena.shared_meta import MAX_SLOTS, ProcessInfo, SharedMeta
from arena.stats import ArenaStats
from arena.unit import LIVE

__all__ = ["SharedArena", "SharedStats", "AttachToken", "attach", "arena_of", "Handle",
           "ProcessInfo"]

#: Attached shared arenas of this process by id.
_BY_ID: dict[bytes, SharedArena] = {}
#: id(buffer object) -> (buffer, arena): the exporters arrays of attached arenas sit on.
_EXPORTERS: dict[int, tuple[Any, SharedArena]] = {}
_REG_LOCK = threading.Lock()


class SharedStats(NamedTuple):
    """Statistics of a whole shared arena (:meth:`SharedArena.shared_stats`), in bytes:
    ``processes`` (live), ``dead_windows`` (processes gone whose blocks others still view),
    ``bytes_allocated``, ``live_allocations``, ``total_bytes_allocated`` (sums of what each
    process last published), ``shared_blocks`` and ``shared_bytes`` (blocks with a lease),
    ``capacity`` (all windows), ``per_process`` (the process records)."""

    processes: int
    dead_windows: int
    bytes_allocated: int
    live_allocations: int
    total_bytes_allocated: int
    shared_blocks: int
    shared_bytes: int
    capacity: int
    per_process: list[ProcessInfo]


class AttachToken:
    """What :meth:`SharedArena.token` returns: pass it to another process (e.g. as a ``Pool``
    initializer's argument) and call :func:`attach` there. Pickled by ``multiprocessing``
    while it starts a process or sends through a connection, it carries the memory file's
    descriptor itself (``multiprocessing.reduction.DupFd``); otherwise it names the
    descriptor by ``/proc/<pid>/fd/<fd>``."""

    def __init__(self, arena_id: bytes, pid: int, fd: int) -> None:
        self.arena_id = arena_id
        self.pid = pid
        self.fd = fd
        self.dup: Any = None

    def __reduce__(self) -> Any:
        from multiprocessing.reduction import DupFd
        try:
            dup = DupFd(self.fd)
        except Exception:   # not inside multiprocessing: name the descriptor only
            dup = None
        return (_rebuild_token, (self.arena_id, self.pid, self.fd, dup))


def _rebuild_token(arena_id: bytes, pid: int, fd: int, dup: Any) -> AttachToken:
    t = AttachToken(arena_id, pid, fd)
    t.dup = dup
    return t


def attach(token: AttachToken) -> SharedArena:
    """This process's :class:`SharedArena` for ``token`` (attaching if need be). Usable as a
    ``Pool(initializer=attach, initargs=(arena.token(),))``. Raises
    :class:`arena.errors.BadHandleError` if the arena cannot be reached."""
    have = _BY_ID.get(token.arena_id)
    if have is not None and not have.closed:
        return have
    if token.dup is not None:
        fd = token.dup.detach()
        return SharedArena._from_fd(fd, token.arena_id)
    return _attach_by_proc(token.arena_id, [(token.pid, token.fd)])


def _attach_by_proc(arena_id: bytes, where: Sequence[tuple[int, int]]) -> SharedArena:
    """Attach by opening ``/proc/<pid>/fd/<fd>`` of a process that has the file open."""
    errors = []
    for pid, fd in where:
        try:
            my_fd = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            errors.append(f"/proc/{pid}/fd/{fd}: {exc.strerror}")
            continue
        try:
            return SharedArena._from_fd(my_fd, arena_id)
        except (BadHandleError, SharedStateError) as exc:
            errors.append(str(exc))
    raise BadHandleError(f"cannot attach shared arena {arena_id.hex()}: "
                         f"{'; '.join(errors) or 'no process to open it from'}")


def arena_of(array: np.ndarray) -> SharedArena | None:
    """The attached :class:`SharedArena` whose memory ``array`` lies in, or None."""
    found = _find(array)
    return None if found is None else found[1]


def _find(array: np.ndarray) -> tuple[np.ndarray, SharedArena] | None:
    """``(anchor, arena)``: the last ndarray of ``array``'s base chain and its arena."""
    x = array
    while True:
        b = x.base
        if type(b) is np.ndarray:
            x = b
            continue
        break
    hit = _EXPORTERS.get(id(b))
    if hit is None or hit[0] is not b:
        return None
    return x, hit[1]


def _reduce(array: np.ndarray) -> Any:
    """Reduction of an array of an attached arena to a handle; None (numpy's own reduction,
    a copy) for every other array and for arrays a fork child inherited from its parent's
    window (they belong to no allocation of the child's)."""
    found = _find(array)
    if found is None or found[1].closed:
        return None
    try:
        return (_open_handle, (found[1]._handle(array, found[0]),))
    except (ForeignBufferError, DoubleFreeError):
        return None


def _open_handle(h: Handle) -> np.ndarray:
    """Unpickling a handle: open it in this process's arena (attaching if need be)."""
    if not isinstance(h, Handle):
        raise BadHandleError(f"not a handle: {type(h).__name__}")
    sa = _BY_ID.get(h.arena)
    if sa is None or sa.closed:
        sa = _attach_by_proc(h.arena, [(h.sender_pid, h.sender_fd)])
    return sa.open(h)


class _Lease:
    """This process's hold on a received block (filed under ``id()`` of the array all views
    of it derive from; that array is not referenced here, so its death can be seen)."""

    __slots__ = ("owner", "off", "tag", "size")

    def __init__(self, owner: int, off: int, tag: int, size: int) -> None:
        self.owner, self.off, self.tag, self.size = owner, off, tag, size


class SharedArena:
    """One arena for many processes (module docstring).

    ``SharedArena(size, *, processes=8, leases=4096, nodes=None, budget=None, align=64,
    lifetime="gc", hugepages=False, track_callers=False, total_budget=None)`` — also ``Arena(size,
    shared=True, ...)``.

    * ``size`` — bytes of each process's window (an int or a string such as ``"256 MiB"``),
      whole pages; the memory file holds ``processes`` windows (each followed by an alignment
      pad of 1 GiB minus a page that is never touched). The file is sparse: only pages
      written cost RAM.
    * ``processes`` — windows, i.e. processes attached at a time (1 .. 16). A window whose
      process ended is reused once no other process views its blocks.
    * ``leases`` — blocks that may be shared across processes at a time.
    * ``nodes``, ``budget`` (per process), ``align``, ``lifetime``, ``hugepages``,
      ``track_callers`` — as :class:`arena.Arena` takes them, for every process's arena.
    * ``total_budget`` — bytes all processes together may have allocated (``None`` = no
      limit beyond the windows): each allocation checks the others' bytes as of their last
      allocation, so the bound is approximate by the frees since then.

    The object works in every process it reaches (by fork, or :func:`attach`); each process
    allocates in its own window. Raises TypeError/ValueError for bad arguments, OSError if the
    memory file cannot be made.
    """

    def __init__(self, size: int | str, *, processes: int = 8, leases: int = 4096,
                 nodes: Any = None, budget: int | str | None = None, align: int = 64,
                 lifetime: str = "gc", hugepages: bool = False,
                 track_callers: bool = False, total_budget: int | str | None = None) -> None:
        size = _round_up(parse_size(size, name="size"), PAGE_SIZE)
        processes = int_arg("processes", processes)
        leases = int_arg("leases", leases)
        if not 1 <= processes <= MAX_SLOTS:
            raise ValueError(f"processes must be 1 .. {MAX_SLOTS}, got {processes}")
        if not 1 <= leases <= 1 << 20:
            raise ValueError(f"leases must be 1 .. {1 << 20}, got {leases}")
        if budget is not None:
            budget = parse_size(budget, name="budget", allow_zero=True)
        if total_budget is not None:
            total_budget = parse_size(total_budget, name="total_budget", allow_zero=True)
        params = {"nodes": nodes, "budget": budget, "align": align,
                  "lifetime": _lifetime_arg(lifetime), "hugepages": hugepages,
                  "track_callers": track_callers}
        # Fail on bad arguments before any file exists: a throwaway arena checks them all.
        Arena(size, **params).close()
        self._setup(SharedMeta.create(size, processes, leases,
                                      {**params, "total_budget": total_budget}))

    @classmethod
    def _from_fd(cls, fd: int, arena_id: bytes) -> SharedArena:
        try:
            meta = SharedMeta(fd, owned=True)
        except (OSError, ValueError, SharedStateError) as exc:
            os.close(fd)
            raise BadHandleError(f"not a shared arena: {exc}") from None
        if meta.id != arena_id:
            meta.close()
            raise BadHandleError(f"the file is shared arena {meta.id.hex()}, not "
                                 f"{arena_id.hex()}")
        self = cls.__new__(cls)
        self._setup(meta)
        return self

    def _setup(self, meta: SharedMeta) -> None:
        self._meta = meta
        self._params = {k: v for k, v in meta.params.items() if k != "total_budget"}
        self._total: int | None = meta.params.get("total_budget")
        self._closed = False
        self._pid = -1
        self._slot = -1
        self._gen = 0
        self._local: Arena | None = None
        self._seen = 0
        self._pins: dict[int, tuple[np.ndarray, int, np.ndarray]] = {}  # off -> anchor, tag, whole
        self._leases: dict[int, _Lease] = {}   # id(blk) -> lease
        self._maps: dict[int, tuple[mmap.mmap, Any]] = {}   # slot -> mapping, exporter
        with _REG_LOCK:
            _BY_ID[meta.id] = self
        handles.install(_reduce)
        self._join()

    def _join(self) -> None:
        """Claim a window for this process (the arena is built lazily at first use)."""
        self._slot, self._gen = self._meta.claim(self._meta.fd)
        self._pid = os.getpid()
        self._forks = _FORKS[0]
        # The event counters as a memoryview of uint64: one index gives a Python int (the
        # hot path's only look at shared memory).
        self._events = memoryview(self._meta.events_raw).cast("B").cast("Q")  # type: ignore[arg-type]
        self._ev_index = self._meta.events_index(self._slot)
        self._seen = int(self._events[self._ev_index])
        self._local = None
        _EXIT_HOOK.add(self)

    # -- properties ----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The arena's id (32 hex digits), the same in every process."""
        return self._meta.id.hex()

    @property
    def slot(self) -> int:
        """This process's window."""
        self._ready()
        return self._slot

    @property
    def closed(self) -> bool:
        """True after :meth:`close` in this process."""
        return self._closed

    @property
    def local(self) -> Arena:
        """This process's own :class:`arena.Arena` (over its window)."""
        return self._heap()

    def __repr__(self) -> str:
        return (f"<SharedArena {self.id[:8]} {self._meta.slots} windows of "
                f"{self._meta.slot_size:#x} bytes, this process in window {self._slot}"
                f"{' closed' if self._closed else ''}>")

    def token(self) -> AttachToken:
        """An :class:`AttachToken` for :func:`attach` in another process."""
        self._ready()
        return AttachToken(self._meta.id, os.getpid(), self._meta.fd)

    # -- per process state ---------------------------------------------------------------------

    def _ready(self) -> None:
        if self._closed:
            raise ClosedError("the shared arena is closed")
        if self._pid != os.getpid():     # a fork child: a window of its own
            self._after_fork()
        self._forks = _FORKS[0]

    def _after_fork(self) -> None:
        self._meta.after_fork()
        self._pins = {}
        self._leases = {}   # inherited views are not leased by this process
        self._join()

    def _heap(self) -> Arena:
        """This process's arena, built at first use; delayed frees and dropped leases are
        taken in when the event counter moved."""
        local = self._local
        if local is None or self._forks != _FORKS[0]:
            self._ready()
            local = self._local
            if local is None:
                local = self._local = self._make_local()
        if self._events[self._ev_index] != self._seen:
            self._drain()
        return local

    def _make_local(self) -> Arena:
        p = self._params
        meta = self._meta
        pm = PhysicalMemory(meta.slot_size, phys_base=ARENA_PHYS_BASE, nodes=p["nodes"],
                            hugepages=p["hugepages"], shared=True, fd=meta.fd,
                            offset=meta.slot_offset(self._slot))
        local = Arena(meta.slot_size, _physmem=pm, nodes=p["nodes"], budget=p["budget"],
                      align=p["align"], lifetime=p["lifetime"], hugepages=p["hugepages"],
                      track_callers=p["track_callers"])
        self._win_off = pm.file_offset
        buf = pm.exporter()[0]
        with _REG_LOCK:
            _EXPORTERS[id(buf)] = (buf, self)
        meta.set_window(self._slot, pm.file_offset)
        return local

    def _drain(self) -> None:
        """Take in what other processes did to this process's blocks: free the blocks pushed
        on the delayed-free list, drop the pins of blocks no process views any more."""
        meta = self._meta
        to_free = []
        with meta.locked():
            self._seen = int(self._events[self._ev_index])
            current = {off: (i, freed) for i, off, freed in meta.owned_by(self._slot)}
            for off in list(self._pins):
                hit = current.get(off)
                if hit is None or int(meta.lease[hit[0]]["tag"]) != self._pins[off][1]:
                    del self._pins[off]
                elif hit[1] == 1:
                    to_free.append(self._pins[off][2])
                    meta.taken_in(hit[0])
        for whole in to_free:
            if self._local is not None:
                try:
                    self._local.free(whole)
                except (ForeignBufferError, ValueError):
                    pass   # freed here meanwhile

    # -- allocation: this process's window -----------------------------------------------------

    def alloc(self, nbytes: int, **kwargs: Any) -> np.ndarray:
        """:meth:`arena.Arena.alloc` in this process's window (same arguments). Raises as it
        does, and :class:`arena.errors.BudgetExceededError` past ``total_budget``."""
        local = self._heap()
        if self._total is None:
            return local.alloc(nbytes, **kwargs)
        self._check_total(local, nbytes)
        out = local.alloc(nbytes, **kwargs)
        self._meta.allocated[self._slot] = local._allocated
        return out

    def alloc_array(self, shape: int | tuple[int, ...], dtype: Any = np.float64,
                    **kwargs: Any) -> np.ndarray:
        """:meth:`arena.Arena.alloc_array` in this process's window (same arguments). Raises
        as it does, and :class:`arena.errors.BudgetExceededError` past ``total_budget``."""
        local = self._heap()
        if self._total is None:
            return local.alloc_array(shape, dtype, **kwargs)
        dims = shape if isinstance(shape, tuple) else (shape,)
        self._check_total(local, int(np.prod(dims)) * np.dtype(dtype).itemsize)
        out = local.alloc_array(shape, dtype, **kwargs)
        self._meta.allocated[self._slot] = local._allocated
        return out

    def _check_total(self, local: Arena, nbytes: Any) -> None:
        """Refuse a request that would take the whole arena past ``total_budget``: the other
        processes' bytes as of their last allocation, this one's now (requests not yet
        rounded up to their size class)."""
        limit = self._total
        if limit is None:
            return
        col = self._meta.allocated
        mine = local._allocated
        total = int(col.sum()) - int(col[self._slot]) + mine
        n = nbytes if type(nbytes) is int and nbytes > 0 else 0
        if total + n > limit:
            raise BudgetExceededError(
                f"shared arena budget: {n} more bytes would take the arena to {total + n} "
                f"of total_budget {limit}", size=n, free_bytes=max(0, limit - total))

    def free(self, array: np.ndarray) -> None:
        """Free an allocation: one of this process's (:meth:`arena.Arena.free`), or one
        received from another process — then it goes on its owner's delayed-free list and the
        owner frees it at its next allocation (the bytes stay valid while views of them
        live in the garbage-collected lifetime). Raises ForeignBufferError for an array not
        of this arena, DoubleFreeError as :meth:`arena.Arena.free`."""
        local = self._heap()
        found = _find(array)
        if found is None or found[1] is not self:
            raise ForeignBufferError("the array is not in this shared arena's memory")
        lease = self._leases.get(id(found[0]))
        if lease is None:
            local.free(array)
            return
        meta = self._meta
        with meta.locked():
            i = meta.find(lease.owner, lease.off, lease.tag)
            if i < 0 or int(meta.lease[i]["freed"]):
                raise ForeignBufferError("the block was already freed by its owner's process")
            meta.mark_freed(i)

    # -- handles -------------------------------------------------------------------------------

    def handle(self, array: np.ndarray) -> Handle:
        """A :class:`arena.handles.Handle` of ``array`` (an array of this arena, or any view of
        one) to send to another process. Each handle made holds the block until it is opened
        once (a handle never opened holds it until this process ends). Raises
        ForeignBufferError for an array not of this arena."""
        found = _find(array)
        if found is None or found[1] is not self:
            raise ForeignBufferError("the array is not in this shared arena's memory")
        return self._handle(array, found[0])

    def _handle(self, array: np.ndarray, anchor: np.ndarray) -> Handle:
        self._heap()
        meta = self._meta
        lease = self._leases.get(id(anchor))
        with meta.locked():
            if lease is not None:        # forwarding a block received from another process
                i = meta.find(lease.owner, lease.off, lease.tag)
                if i < 0:
                    raise BadHandleError("the block's lease is gone (its owner freed it)")
                owner, off, tag, size = lease.owner, lease.off, lease.tag, lease.size
            else:
                owner, off, tag, size, i = self._own_lease(array, anchor)
            meta.add(i, self._slot, +1)
        addr = array.__array_interface__["data"][0]
        base = anchor.__array_interface__["data"][0]
        return Handle(meta.id, owner, tag, off, size, addr - base,
                      array.dtype.str, tuple(array.shape), tuple(array.strides), self._slot,
                      os.getpid(), meta.fd, bool(array.flags.writeable))

    def _own_lease(self, array: np.ndarray, anchor: np.ndarray) -> tuple[int, int, int, int,
                                                                            int]:
        """Lease record (made if need be) of this process's block under ``anchor``; pins it."""
        local = self._local
        unit = local._unit_of(array) if local is not None else None
        if unit is None or unit.anchor is not anchor:
            raise ForeignBufferError("the array is not an allocation of this arena (or a view "
                                     "of one)")
        if unit.state != LIVE:
            raise DoubleFreeError("the array's allocation was freed: no handle is made for it")
        off = self._win_off + unit.phys - ARENA_PHYS_BASE
        size = unit.csize
        pin = self._pins.get(off)
        meta = self._meta
        i = -1 if pin is None else meta.find(self._slot, off, pin[1])
        if i < 0:
            tag = secrets.randbits(63)
            i = meta.new_lease(self._slot, off, size, tag)
            self._pins[off] = (anchor, tag, anchor[:unit.size])
        return self._slot, off, self._pins[off][1], size, i

    def open(self, h: Handle) -> np.ndarray:
        """The array handle ``h`` names, over the same bytes as the sender's (in the
        garbage-collected sense, a view this process holds until its last array derived from
        it dies). Raises :class:`arena.errors.BadHandleError` for a handle of another arena,
        of a freed block, or forged (block not sent, view outside the block); nothing changes
        then."""
        if not isinstance(h, Handle):
            raise TypeError(f"need a Handle, not {type(h).__name__}")
        if h.arena != self._meta.id:
            raise BadHandleError(f"the handle is of shared arena {bytes(h.arena).hex()}, not of "
                                 f"{self.id}")
        dt, shape, strides = handles.checked_geometry(h)
        if not isinstance(h.writeable, bool):
            raise BadHandleError(f"malformed handle: writeable is {type(h.writeable).__name__}")
        self._heap()
        meta = self._meta
        try:
            owner, sender = int_arg("owner", h.owner), int_arg("sender", h.sender)
            off, tag, size = int_arg("offset", h.offset), int_arg("tag", h.tag), int(h.size)
        except (TypeError, ValueError) as exc:
            raise BadHandleError(f"malformed handle: {exc}") from None
        if not (0 <= owner < meta.slots and 0 <= sender < meta.slots):
            raise BadHandleError(f"handle names window {owner} of {meta.slots}")
        with meta.locked():
            i = meta.find(owner, off, tag) if off > 0 else -1
            if i < 0 or int(meta.lease[i]["size"]) != size:
                raise BadHandleError(
                    f"no block [{off:#x}, +{size:#x}) of window {owner} was sent with this "
                    f"tag: it was freed, or the handle is forged")
            if int(meta.lease[i]["freed"]):
                raise BadHandleError("the handle's block was freed")
            if owner == self._slot and off in self._pins:
                blk = self._pins[off][0]
            else:
                blk = self._lease_view(owner, off, size, tag)
                meta.add(i, self._slot, +1)
            meta.add(i, sender, -1)   # the handle in flight arrived
        view = np.ndarray(shape, dt, blk, int(h.view_offset), strides)
        view.flags.writeable = h.writeable   # a read-only view arrives read-only
        return view

    def _lease_view(self, owner: int, off: int, size: int, tag: int) -> np.ndarray:
        """A new uint8 array over another window's block; its death gives the lease back."""
        mm, buf = self._window_map(owner)
        blk = np.ndarray((size,), np.uint8, buf, off - self._meta.slot_offset(owner))
        lease = _Lease(owner, off, tag, size)
        key = id(blk)
        self._leases[key] = lease
        weakref.finalize(blk, _lease_died, weakref.ref(self), key, owner, off, tag,
                         os.getpid())
        return blk

    def _window_map(self, slot: int) -> tuple[mmap.mmap, Any]:
        hit = self._maps.get(slot)
        if hit is None:
            meta = self._meta
            mm = mmap.mmap(meta.fd, meta.slot_extent, flags=mmap.MAP_SHARED,
                           offset=meta.slot_offset(slot))
            buf = (ctypes.c_char * len(mm)).from_buffer(mm)
            with _REG_LOCK:
                _EXPORTERS[id(buf)] = (buf, self)
            hit = self._maps[slot] = (mm, buf)
        return hit

    def _give_back(self, owner: int, off: int, tag: int) -> None:
        """Under the lock: the last array of a received block died."""
        meta = self._meta
        i = meta.find(owner, off, tag)
        if i >= 0 and self._slot >= 0:
            meta.add(i, self._slot, -1)

    # -- whole arena ---------------------------------------------------------------------------

    def reclaim(self) -> list[int]:
        """Retire the processes that died (their leases dropped, their windows given back
        once nobody views their blocks) and repair records they left half written. Returns
        the windows of the processes found dead. Call it after ``Pool.join()``; the next
        claim of a window, :meth:`check` and :meth:`shared_stats` do it too."""
        self._ready()
        return self._meta.reclaim()

    def processes(self) -> list[ProcessInfo]:
        """The process table (consistent snapshot of each record)."""
        self._ready()
        return self._meta.processes()

    def stats(self) -> ArenaStats:
        """This process's :class:`arena.ArenaStats` (its window); also published for
        :meth:`shared_stats`."""
        local = self._heap()
        st = local.stats()
        self._meta.publish(self._slot, st.bytes_allocated, st.live_allocations,
                           st.max_memory, st.total_bytes_allocated)
        return st

    def shared_stats(self) -> SharedStats:
        """Statistics of the whole arena: this process's published now, the others' as they
        last published them (:meth:`stats`, at exit). Reclaims dead processes first."""
        self.stats()
        meta = self._meta
        meta.reclaim()
        procs = meta.processes()
        used = meta.keys != 0
        return SharedStats(
            sum(p.state == "live" for p in procs), sum(p.state == "dead" for p in procs),
            sum(p.bytes_allocated for p in procs if p.state != "free"),
            sum(p.live_allocations for p in procs if p.state != "free"),
            sum(p.total_bytes_allocated for p in procs),
            int(used.sum()), int(meta.lease["size"][used].sum()),
            meta.slots * meta.slot_size, procs)

    def check(self) -> list[str]:
        """This process's arena's check (:meth:`arena.Arena.check`; raises as it does) and the
        shared metadata's, after reclaiming dead processes. Returns the problems found in the
        metadata (empty = consistent)."""
        local = self._heap()
        local.check()
        self._meta.reclaim()
        return self._meta.check()

    def close(self, *, _exiting: bool = False) -> None:
        """Leave the arena in this process. Idempotent.

        If no array of this process's window and no array received from another process is
        alive any more, its arena is closed, its holds on other processes' blocks go and its
        window is given back (once no other process views its blocks). Otherwise the process
        keeps its window and its holds until it ends (arrays stay valid; the arena is retired
        as :meth:`arena.Arena.close` with ``defer=True`` does) and the next reclaim after its
        end gives them back. Afterwards every method raises ClosedError.
        """
        if self._closed:
            return
        with _REG_LOCK:
            for key in [k for k, (_, owner) in _EXPORTERS.items() if owner is self]:
                del _EXPORTERS[key]    # arrays still alive keep their buffers themselves
        if self._pid == os.getpid():
            leave = True
            if self._local is not None:
                try:
                    self.stats()
                except ClosedError:
                    pass
                try:
                    self._local.close()
                except LiveViewsError:
                    self._local.close(defer=True)
                    leave = False
            gc.collect()   # received arrays kept only by reference cycles
            if self._leases:
                leave = False
            if leave or _exiting:
                self._meta.leave(self._slot)
                self._pins.clear()
        self._closed = True
        self._local = None
        _EXIT_HOOK.discard(self)
        with _REG_LOCK:
            if _BY_ID.get(self._meta.id) is self:
                del _BY_ID[self._meta.id]

    def __enter__(self) -> SharedArena:
        self._ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lease_died(ref: weakref.ref[SharedArena], key: int, owner: int, off: int, tag: int,
                pid: int) -> None:
    """Finalizer of a received block's array: give the lease back (deferred to the lock's
    holder if a thread of this process holds it)."""
    sa = ref()
    if sa is None or sa.closed or os.getpid() != pid:
        return
    sa._leases.pop(key, None)     # now: the id may name a new array soon
    meta = sa._meta
    meta.pending.append(lambda: sa._give_back(owner, off, tag))
    meta.try_locked_run()


class _ExitHook:
    """Leave every attached arena when the process ends (``atexit`` and ``multiprocessing``'s
    exit functions, which run in its workers)."""

    def __init__(self) -> None:
        self.arenas: weakref.WeakSet[SharedArena] = weakref.WeakSet()
        self.installed_in = -1

    def add(self, sa: SharedArena) -> None:
        """Leave ``sa`` at exit (registering the hook once per process: a ``multiprocessing``
        child starts with no exit functions of its parent's)."""
        self.arenas.add(sa)
        if self.installed_in != os.getpid():
            import atexit
            from multiprocessing import util
            if self.installed_in == -1:
                atexit.register(self.run)
            util.Finalize(None, self.run, exitpriority=100)
            self.installed_in = os.getpid()

    def discard(self, sa: SharedArena) -> None:
        self.arenas.discard(sa)

    def run(self) -> None:
        for sa in list(self.arenas):
            if sa._pid == os.getpid():
                try:
                    sa.close(_exiting=True)
                except Exception:   # leaving is best effort; a dead process is reclaimed
                    pass


_EXIT_HOOK = _ExitHook()


#: Forks this process descends through (bumped in every fork child): an arena whose count is
#: behind is a fork child's copy and claims a window of its own.
_FORKS = [0]


def _after_fork_child() -> None:
    global _REG_LOCK
    _REG_LOCK = threading.Lock()
    _FORKS[0] += 1
    # Windows are claimed lazily (SharedArena._ready): a fork child that never uses the arena
    # takes none.


os.register_at_fork(after_in_child=_after_fork_child)
