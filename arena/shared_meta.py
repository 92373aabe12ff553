"""The shared metadata of a shared arena: header, process table and lease table.

Kernel counterpart: none (the kernel's memory is one machine's; this is the bookkeeping that
lets several processes allocate from one memory file). The metadata sits at the start of the
arena's memory file (see :mod:`arena.memfd`), before the processes' windows:

* the **header** (one page): a magic string, the layout, the arena's random 128-bit id and the
  parameters every process builds its own allocator with;
* the **process table**: one record per window (``slots`` of them, at most
  :data:`MAX_SLOTS`): the state (:data:`FREE`, :data:`LIVE`, :data:`DEAD` = its process is
  gone but others still view some of its blocks), the process id and its start time (process
  ids are reused; the start time tells a new process from the old one), a generation counted
  up at every claim, the file offset of the window's first byte, an event counter (bumped
  whenever another process frees one of its blocks or the last view of one of its blocks
  elsewhere goes away) and published statistics;
* the **lease table**: one record per block that crossed a process boundary: its owner's slot,
  file offset, size, a random tag (so that a handle to a block that was freed and reused is
  refused), a ``freed`` flag (the owner's delayed-free list is the set of its records with the
  flag raised) and, per process slot, how many views (or handles in flight) that process holds.

Locking: every change of the metadata is made under one lock spanning processes, a POSIX
record lock (``fcntl.lockf``) on the file's first byte plus a thread lock within the process.
The kernel drops a record lock when its process dies, so a killed process never leaves the
lock taken. The lock is taken only for rare operations — claiming a window, sending or opening
a handle, the last view of a received block dying, a free across processes, reclaiming a dead
process, publishing statistics, :meth:`SharedMeta.check` — never to allocate in one's own window.

Torn updates: a record whose update writes several fields is written like a seqlock: its
sequence number goes odd before the first field and even after the last. Writes happen under
the lock, so a record found odd under the lock was left half done by a process that died
holding it; :meth:`SharedMeta.repair` puts such records right (a process record becomes
:data:`DEAD`, a lease record is kept only if it still names a block). Single counters
(the event counter, a holder's count) are one aligned 8- or 4-byte store, which is atomic on
the architectures the package supports (x86_64, aarch64). Readers outside the lock retry while
a record's sequence number is odd or changes.
"""

from __future__ import annotations

import fcntl
import itertools
import mmap
import os
import pickle
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from arena import memfd
from arena.constants import round_up
from arena.errors import SharedStateError
from arena.physmem import MAX_ALIGN, PAGE_SIZE

__all__ = ["SharedMeta", "ProcessInfo", "MAX_SLOTS", "FREE", "LIVE", "DEAD", "process_start"]

MAGIC = b"MBARENA1"
VERSION = 1
#: Most windows (processes at a time) one shared arena has.
MAX_SLOTS = 16
FREE, LIVE, DEAD = 0, 1, 2
_STATE_NAMES = {FREE: "free", LIVE: "live", DEAD: "dead"}

HEADER = np.dtype([("magic", "S8"), ("version", "<u4"), ("slots", "<u4"), ("leases", "<u4"),
                   ("pad", "<u4"), ("slot_size", "<u8"), ("slot_extent", "<u8"),
                   ("data_off", "<u8"), ("file_size", "<u8"), ("id", "S16"),
                   ("creator_pid", "<u8"), ("creator_fd", "<i8"), ("params_len", "<u8"),
                   ("params", "S3072")])
PROC = np.dtype([("seq", "<u8"), ("state", "<u8"), ("pid", "<u8"), ("start", "<u8"),
                 ("gen", "<u8"), ("win_off", "<u8"), ("events", "<u8"), ("fd", "<i8"),
                 ("allocated", "<u8"), ("live", "<u8"), ("peak", "<u8"),
                 ("total", "<u8"), ("pad", "<u8", (4,))])
LEASE = np.dtype([("seq", "<u8"), ("off", "<u8"), ("size", "<u8"), ("tag", "<u8"),
                  ("owner", "<i4"), ("freed", "<u4"), ("counts", "<u4", (MAX_SLOTS,)),
                  ("pad", "<u8", (4,))])
_PROC_OFF = PAGE_SIZE
_EVENTS_OFF = 6 * 8          # byte offset of "events" in a PROC record
_ALLOCATED_OFF = 8 * 8       # byte offset of "allocated" in a PROC record
_PARAMS_MAX = 3072           # bytes of the pickled parameters at most
_LEASE_OFF = _PROC_OFF + MAX_SLOTS * PROC.itemsize

#: Test hook: called with a description after a record went odd, before its fields are
#: written (a fault-injection test makes it kill the process there).
crash_hook: Callable[[str], None] | None = None


class ProcessInfo(NamedTuple):
    """One process table record (:meth:`arena.shared.SharedArena.processes`): window ``slot``,
    ``state`` ("free", "live", "dead"), ``pid``, ``generation`` (claims of the window so far),
    and the statistics the process last published (bytes)."""

    slot: int
    state: str
    pid: int
    generation: int
    bytes_allocated: int
    live_allocations: int
    max_memory: int
    total_bytes_allocated: int


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), or None if it is gone or a
    zombie. Process ids are reused; the pair (pid, start time) names one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def _meta_len(leases: int) -> int:
    """Bytes of metadata: header, process table, lease records, lease keys."""
    return _LEASE_OFF + leases * (LEASE.itemsize + 8)


class SharedMeta:
    """The metadata of one shared arena, mapped in this process (see the module docstring).

    Made by :meth:`create` (a new memory file) or :meth:`open` (an existing one). Not for
    direct use: :class:`arena.shared.SharedArena` is the public face.
    """

    def __init__(self, fd: int, *, owned: bool) -> None:
        self.fd = fd
        self._owned = owned
        mm = mmap.mmap(fd, _LEASE_OFF, flags=mmap.MAP_SHARED)
        hdr = np.frombuffer(mm, HEADER, 1, 0)
        if hdr["magic"][0] != MAGIC or int(hdr["version"][0]) != VERSION:
            del hdr
            mm.close()
            raise SharedStateError("the file is not a shared arena of this version")
        self.leases_n = int(hdr["leases"][0])
        meta_len = _meta_len(self.leases_n)
        del hdr
        mm.close()
        self._mm = mmap.mmap(fd, meta_len, flags=mmap.MAP_SHARED)
        self.hdr = np.frombuffer(self._mm, HEADER, 1, 0)[0]
        self.proc = np.frombuffer(self._mm, PROC, MAX_SLOTS, _PROC_OFF)
        self.lease = np.frombuffer(self._mm, LEASE, self.leases_n, _LEASE_OFF)
        #: Each lease record's block offset again, in one dense column (0 = unused), so that a
        #: lookup scans 8 bytes per record; written with the record, inside its odd/even window.
        self.keys = np.frombuffer(self._mm, "<u8", self.leases_n,
                                  _LEASE_OFF + self.leases_n * LEASE.itemsize)
        #: The event counters, one uint64 per slot (read without the lock on the hot path).
        self.events = np.ndarray((MAX_SLOTS,), "<u8", self._mm,
                                 _PROC_OFF + _EVENTS_OFF, (PROC.itemsize,))
        #: The process table's bytes as uint64 words (see :meth:`events_index`).
        self.events_raw = np.frombuffer(self._mm, "<u8", MAX_SLOTS * PROC.itemsize // 8,
                                        _PROC_OFF)
        #: Bytes each process had allocated at its last allocation (whole-arena budget).
        self.allocated = np.ndarray((MAX_SLOTS,), "<u8", self._mm,
                                    _PROC_OFF + _ALLOCATED_OFF, (PROC.itemsize,))
        self.id = bytes(self.hdr["id"])
        self.slots = int(self.hdr["slots"])
        self.slot_size = int(self.hdr["slot_size"])
        self.slot_extent = int(self.hdr["slot_extent"])
        self.data_off = int(self.hdr["data_off"])
        self.params: dict[str, Any] = pickle.loads(
            bytes(self.hdr["params"])[:int(self.hdr["params_len"])])
        self._tlock = threading.Lock()
        self._depth = 0
        self.pending: list[Callable[[], None]] = []   # work deferred by finalizers

    # -- creation --------------------------------------------------------------------------

    @classmethod
    def create(cls, slot_size: int, slots: int, leases: int,
               params: dict[str, Any]) -> SharedMeta:
        """A new memory file holding the metadata and ``slots`` windows of ``slot_size``
        bytes (each followed by the alignment pad). Raises OSError, ValueError."""
        raw = pickle.dumps(params)
        if len(raw) > _PARAMS_MAX:
            raise ValueError("shared arena parameters too large")
        meta_len = _meta_len(leases)
        data_off = round_up(meta_len, PAGE_SIZE)
        extent = slot_size + MAX_ALIGN - PAGE_SIZE
        size = data_off + slots * extent
        fd = memfd.create(size, "memblock-arena-shared")
        try:
            with mmap.mmap(fd, PAGE_SIZE, flags=mmap.MAP_SHARED) as mm:
                hdr = np.frombuffer(mm, HEADER, 1, 0)
                h = hdr[0]
                h["version"], h["slots"], h["leases"] = VERSION, slots, leases
                h["slot_size"], h["slot_extent"], h["data_off"] = slot_size, extent, data_off
                h["file_size"], h["id"] = size, secrets.token_bytes(16)
                h["creator_pid"], h["creator_fd"] = os.getpid(), fd
                h["params_len"], h["params"] = len(raw), raw
                h["magic"] = MAGIC    # last: a file is an arena once all the rest is there
                del h, hdr
            return cls(fd, owned=True)
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def events_index(slot: int) -> int:
        """Index of ``slot``'s event counter in :attr:`events_raw`."""
        return (slot * PROC.itemsize + _EVENTS_OFF) // 8

    def slot_offset(self, slot: int) -> int:
        """File offset of window ``slot``'s mapping (its data starts inside, aligned)."""
        return self.data_off + slot * self.slot_extent

    def close(self) -> None:
        """Unmap the metadata and close the file descriptor (if this object opened it)."""
        self.events = self.allocated = self.events_raw = None  # type: ignore[assignment]
        self.proc = self.lease = self.hdr = self.keys = None  # type: ignore[assignment]
        try:
            self._mm.close()
        except BufferError:
            pass
        if self._owned:
            os.close(self.fd)
            self._owned = False

    # -- the lock and records --------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the arena's lock (thread lock, then the file's record lock). Not re-entrant.
        On the way out, work finalizers deferred meanwhile is done first."""
        self._tlock.acquire()
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, 0)
            try:
                yield
                self._run_pending()
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)
        finally:
            self._tlock.release()
        if self.pending:     # a finalizer ran after the work above: do its part now
            self.try_locked_run()

    def try_locked_run(self) -> None:
        """Do deferred work now if the lock is free in this process (finalizers call this;
        if a thread of this process holds the lock, it does the work on its way out)."""
        if self._tlock.acquire(blocking=False):
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, 0)
                try:
                    self._run_pending()
                finally:
                    fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)
            finally:
                self._tlock.release()

    def _run_pending(self) -> None:
        while self.pending:
            self.pending.pop()()

    def after_fork(self) -> None:
        """In a forked child: a fresh thread lock, no deferred work of the parent's."""
        self._tlock = threading.Lock()
        self.pending = []

    @contextmanager
    def _writing(self, table: np.ndarray, i: int, what: str) -> Iterator[Any]:
        rec = table[i]
        rec["seq"] += 1           # odd: update in progress
        if crash_hook is not None:
            crash_hook(what)
        yield rec
        rec["seq"] += 1           # even: done

    # -- processes ---------------------------------------------------------------------------

    def alive(self, slot: int) -> bool:
        """True if the process recorded in ``slot`` still runs (pid and start time)."""
        p = self.proc[slot]
        return process_start(int(p["pid"])) == int(p["start"])

    def claim(self, fd: int) -> tuple[int, int]:
        """Claim a free window for this process (reclaiming dead processes' first); returns
        ``(slot, generation)``. Raises SharedStateError when every window is taken by a live
        process or still viewed."""
        pid = os.getpid()
        start = process_start(pid) or 0
        with self.locked():
            self._reclaim_locked()
            for slot in range(self.slots):
                if int(self.proc[slot]["state"]) == FREE:
                    break
            else:
                raise SharedStateError(
                    f"every one of the arena's {self.slots} process windows is taken (raise "
                    f"processes= when creating the arena)")
            with self._writing(self.proc, slot, "claim") as p:
                p["pid"], p["start"], p["fd"] = pid, start, fd
                p["gen"] += 1
                p["win_off"] = 0
                p["allocated"] = p["live"] = p["peak"] = p["total"] = 0
                p["state"] = LIVE
            return slot, int(self.proc[slot]["gen"])

    def set_window(self, slot: int, win_off: int) -> None:
        """Record the file offset of the first byte of ``slot``'s window."""
        with self.locked(), self._writing(self.proc, slot, "window") as p:
            p["win_off"] = win_off

    def publish(self, slot: int, allocated: int, live: int, peak: int, total: int) -> None:
        """Record a process's statistics in its record (bytes)."""
        with self.locked(), self._writing(self.proc, slot, "publish") as p:
            p["allocated"], p["live"], p["peak"], p["total"] = allocated, live, peak, total

    def leave(self, slot: int) -> None:
        """This process leaves: its views' leases go and its window is given up (kept as
        DEAD while other processes view its blocks)."""
        with self.locked():
            self._retire(slot)

    def reclaim(self) -> list[int]:
        """Repair torn records and retire every process that died: returns their slots."""
        with self.locked():
            return self._reclaim_locked()

    def _reclaim_locked(self) -> list[int]:
        self.repair()
        gone = []
        for slot in range(self.slots):
            if int(self.proc[slot]["state"]) == LIVE and not self.alive(slot):
                self._retire(slot)
                gone.append(slot)
        return gone

    def _retire(self, slot: int) -> None:
        """Drop ``slot``'s holds on every lease; mark the slot DEAD, or FREE (its pages
        punched out) if no other process views its blocks."""
        for i in np.flatnonzero(self.lease["counts"][:, slot]).tolist():
            self._count(i, slot, -int(self.lease[i]["counts"][slot]))
        if int(self.proc[slot]["state"]) != FREE:
            with self._writing(self.proc, slot, "retire") as p:
                p["state"] = DEAD
            for i in np.flatnonzero((self.lease["owner"] == slot)
                                    & (self.keys != 0)).tolist():
                self._clear_if_done(i)     # delayed frees nobody will take in now
            self._free_if_unviewed(slot)

    def _free_if_unviewed(self, slot: int) -> None:
        if int(self.proc[slot]["state"]) != DEAD:
            return
        if np.any((self.lease["owner"] == slot) & (self.keys != 0)):
            return
        memfd.punch_hole(self.fd, self.slot_offset(slot), self.slot_extent)
        with self._writing(self.proc, slot, "free") as p:
            p["state"] = FREE
            p["pid"] = p["start"] = p["win_off"] = 0
            p["allocated"] = p["live"] = 0

    def repair(self) -> list[str]:
        """Put right the records a dead process left half written (under the lock). Returns
        what was repaired, in words."""
        out = []
        for slot in np.flatnonzero(self.proc["seq"] & 1).tolist():
            p = self.proc[slot]
            p["state"] = DEAD if int(p["state"]) != FREE else FREE
            p["seq"] += 1
            out.append(f"process record {slot} was half written: marked dead")
        for i in np.flatnonzero(self.lease["seq"] & 1).tolist():
            r = self.lease[i]
            if int(r["off"]) == 0 or int(r["counts"].sum()) == 0:
                r["off"] = r["size"] = r["tag"] = r["freed"] = 0
                self.keys[i] = 0
                r["counts"] = 0
            r["seq"] += 1
            out.append(f"lease record {i} was half written: repaired")
        return out

    # -- leases ------------------------------------------------------------------------------

    def find(self, owner: int, off: int, tag: int | None = None) -> int:
        """Index of the lease record of ``owner``'s block at file offset ``off`` (with
        ``tag`` if given), or -1."""
        for i in np.flatnonzero(self.keys == off).tolist():
            r = self.lease[i]
            if int(r["owner"]) == owner and (tag is None or int(r["tag"]) == tag):
                return int(i)
        return -1

    def new_lease(self, owner: int, off: int, size: int, tag: int) -> int:
        """A new lease record with no holder yet (the caller adds one at once)."""
        free = np.flatnonzero(self.keys == 0)
        if not len(free):
            raise SharedStateError(
                f"the arena's lease table is full ({self.leases_n} blocks shared at once; "
                f"raise leases= when creating the arena)")
        i = int(free[0])
        with self._writing(self.lease, i, "lease create") as r:
            r["owner"], r["size"], r["tag"], r["freed"] = owner, size, tag, 0
            r["counts"] = 0
            r["off"] = off
            self.keys[i] = off
        return i

    def add(self, i: int, holder: int, delta: int) -> None:
        """Change holder ``holder``'s count on lease ``i`` by ``delta`` (never below 0); the
        record goes when no holder remains."""
        self._count(i, holder, delta)

    def _count(self, i: int, holder: int, delta: int) -> None:
        r = self.lease[i]
        r["counts"][holder] = max(0, int(r["counts"][holder]) + delta)
        self._clear_if_done(i)

    def _clear_if_done(self, i: int) -> None:
        """Clear lease ``i`` if no process holds it and its owner has nothing to take in
        from it (a delayed free not yet taken in by a live owner keeps it)."""
        r = self.lease[i]
        owner = int(r["owner"])
        if int(r["counts"].sum()) == 0 and (int(r["freed"]) != 1
                                            or int(self.proc[owner]["state"]) != LIVE):
            with self._writing(self.lease, i, "lease clear") as w:
                w["off"] = w["size"] = w["tag"] = w["freed"] = 0
                self.keys[i] = 0
            self.events[owner] += 1
            self._free_if_unviewed(owner)

    def mark_freed(self, i: int) -> None:
        """Push lease ``i``'s block on its owner's delayed-free list."""
        r = self.lease[i]
        r["freed"] = 1
        self.events[int(r["owner"])] += 1

    def taken_in(self, i: int) -> None:
        """The owner freed lease ``i``'s block (its delayed free is done)."""
        self.lease[i]["freed"] = 2
        self._clear_if_done(i)

    def owned_by(self, slot: int) -> list[tuple[int, int, int]]:
        """``(index, off, freed)`` of every lease record of blocks ``slot`` owns."""
        base = self.slot_offset(slot)
        idx = np.flatnonzero((self.keys >= base) & (self.keys < base + self.slot_extent))
        return [(int(i), int(self.lease[i]["off"]), int(self.lease[i]["freed"]))
                for i in idx]

    # -- reading and checking ----------------------------------------------------------------

    def processes(self) -> list[ProcessInfo]:
        """A consistent copy of every process record (each read seqlock-style)."""
        out = []
        for slot in range(self.slots):
            p = self._read(self.proc, slot)
            out.append(ProcessInfo(slot, _STATE_NAMES.get(int(p["state"]), "?"),
                                   int(p["pid"]), int(p["gen"]), int(p["allocated"]),
                                   int(p["live"]), int(p["peak"]), int(p["total"])))
        return out

    @staticmethod
    def _read(table: np.ndarray, i: int) -> Any:
        for _ in range(10000):
            s1 = int(table[i]["seq"])
            rec = table[i].copy()
            if not s1 & 1 and int(table[i]["seq"]) == s1:
                return rec
            os.sched_yield()
        return table[i].copy()   # a writer that died mid-update: the caller sees it odd

    def check(self) -> list[str]:
        """Every broken invariant of the metadata, in words (empty = consistent). Takes the
        lock, so it sees no update half done by a live process; a record left half done by a
        dead one is reported (the next reclaim repairs it)."""
        with self.locked():
            return self._problems()

    def _problems(self) -> list[str]:
        out = []
        if bytes(self.hdr["magic"]) != MAGIC:
            out.append("header: bad magic")
        for slot in range(self.slots):
            p = self.proc[slot]
            if int(p["seq"]) & 1:
                out.append(f"process record {slot}: half written (its writer died)")
            if int(p["state"]) not in _STATE_NAMES:
                out.append(f"process record {slot}: unknown state {int(p['state'])}")
            if int(p["state"]) == LIVE and not int(p["pid"]):
                out.append(f"process record {slot}: live without a pid")
            w = int(p["win_off"])
            base = self.slot_offset(slot)
            if w and not base <= w <= base + self.slot_extent - self.slot_size:
                out.append(f"process record {slot}: window {w:#x} outside its extent")
        used = np.flatnonzero(self.keys != 0).tolist()
        if not np.array_equal(self.keys, self.lease["off"]):
            out.append("lease keys differ from the lease records' offsets")
        blocks: dict[int, list[tuple[int, int]]] = {}
        for i in used:
            r = self.lease[i]
            owner, off, size = int(r["owner"]), int(r["off"]), int(r["size"])
            if int(r["seq"]) & 1:
                out.append(f"lease record {i}: half written (its writer died)")
            if not 0 <= owner < self.slots or int(self.proc[owner]["state"]) == FREE:
                out.append(f"lease record {i}: owner {owner} has no window")
                continue
            base = self.slot_offset(owner)
            if not base <= off and off + size <= base + self.slot_extent:
                out.append(f"lease record {i}: block [{off:#x}, +{size:#x}) outside window "
                           f"{owner}")
            if int(r["counts"].sum()) == 0 and int(r["freed"]) != 1:
                out.append(f"lease record {i}: kept without a holder")
            blocks.setdefault(owner, []).append((off, size))
        for owner, bl in blocks.items():
            bl.sort()
            for (a, n), (b, _) in itertools.pairwise(bl):
                if a + max(n, 1) > b:
                    out.append(f"lease records of window {owner}: blocks at {a:#x} and "
                               f"{b:#x} overlap")
        return out


def kill_self(what: str) -> None:
    """A :data:`crash_hook` for fault tests: die by SIGKILL at once."""
    os.kill(os.getpid(), signal.SIGKILL)
