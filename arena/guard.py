"""Guard mode (``Arena(debug="guard")``): each allocation against a ``PROT_NONE`` guard page,
so that the faulty access itself faults, and a fault note that names the allocation.

Kernel counterpart: KFENCE (and user space's Electric Fence). Each allocation is a block of its
own: whole data pages plus one guard page. With ``guard="end"`` (the default) the user bytes
end flush against the guard page (``[red zone][user bytes][gap][guard page]``), so a read or a
write one byte past the end faults; with ``guard="start"`` they start right after it
(``[guard page][user bytes][red zone]``), so an underrun faults. An aligned request cannot
always end flush: the start is rounded down to the alignment and the bytes between the end and
the guard page (fewer than ``align``) are a red zone, checked at ``free()``, like KFENCE's; the
gap is :attr:`arena.tracking.AllocationInfo.guard_gap`. Requests without ``align=`` are
aligned to :data:`GUARD_ALIGN` (16) bytes in guard mode, not the arena's ``align``. A freed block is made ``PROT_NONE``
whole while it is in the quarantine, so a read or a write after free faults too.

The fault note: a ``SIGSEGV`` handler (installed with ``sigaction(SA_SIGINFO)`` through
``ctypes``) reads the faulting address, looks it up among the guarded blocks of every arena
of the process (:data:`_REGISTRY`) and writes a note naming the allocation, its allocating
stack and (freed) its freeing stack to standard error (:func:`set_note_fd`). It then puts the
handler it replaced back and returns: the access faults again, and that handler — Python's
``faulthandler`` when enabled — prints the Python traceback of the faulting line and ends the
process. The handler is (re)installed at each guarded allocation, so ``faulthandler`` may be
enabled before or after the arena is made.
"""

from __future__ import annotations

import bisect
import ctypes
import os
import signal
import threading
from typing import Any

from arena.debug import Record
from arena.tracking import fmt_stack
from arena.unit import LIVE

__all__ = ["GUARD_ALIGN", "guard_need", "guard_place", "register", "unregister", "set_note_fd",
           "install_handler", "fault_note"]

#: Alignment of a guarded request made without ``align=`` (malloc's on 64-bit Linux), unless
#: the arena's ``align`` is smaller: a size that is a multiple of it ends flush.
GUARD_ALIGN = 16

_SA_SIGINFO = 4
_SA_RESETHAND = 0x80000000 - (1 << 32)   # as a C int


class _SigAction(ctypes.Structure):
    """glibc's ``struct sigaction`` (x86_64 and aarch64)."""

    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.sigaction.argtypes = [ctypes.c_int, ctypes.POINTER(_SigAction),
                            ctypes.POINTER(_SigAction)]
_libc.sigaction.restype = ctypes.c_int
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

#: Guarded blocks of every arena of the process: virtual start -> (virtual end, record,
#: virtual minus physical address). Read by the fault handler without a lock.
_REGISTRY: dict[int, tuple[int, Record, int]] = {}
_STARTS: list[int] = []
_LOCK = threading.Lock()
_state: dict[str, Any] = {"fd": 2, "previous": None}


# -- layout ------------------------------------------------------------------------------------

def guard_need(nbytes: int, align: int, page: int, side: str) -> tuple[int, int]:
    """``(bytes to reserve, block alignment)`` of a guarded allocation of ``nbytes``."""
    pages = max(1, -(-nbytes // page)) * page
    if side == "end":
        return pages + page, max(align, page)
    return max(align, page) + pages, max(align, page)


def guard_place(block: int, nbytes: int, align: int, page: int,
                side: str) -> tuple[int, int, int, tuple[int, int]]:
    """``(phys, lo, hi, guard range)`` of a guarded allocation in the block at ``block``:
    the user bytes at ``phys``, the readable bytes ``[lo, hi)``."""
    pages = max(1, -(-nbytes // page)) * page
    if side == "end":
        guard_at = block + pages
        return (guard_at - nbytes) & -align, block, guard_at, (guard_at, guard_at + page)
    phys = block + max(align, page)
    return phys, phys, phys + pages, (block, phys)


# -- the registry the fault handler reads -----------------------------------------------------

def register(rec: Record, virt_delta: int) -> None:
    """File a guarded block (its whole reservation) for the fault note."""
    start = rec.block + virt_delta
    with _LOCK:
        if start not in _REGISTRY:
            bisect.insort(_STARTS, start)
        _REGISTRY[start] = (start + rec.csize, rec, virt_delta)


def unregister(rec: Record, virt_delta: int) -> None:
    """Forget a guarded block (its memory goes back)."""
    start = rec.block + virt_delta
    with _LOCK:
        if _REGISTRY.pop(start, None) is not None:
            del _STARTS[bisect.bisect_left(_STARTS, start)]


def fault_note(addr: int) -> str | None:
    """The note for a fault at virtual address ``addr``, or ``None`` if no guarded block
    holds it."""
    i = bisect.bisect_right(_STARTS, addr) - 1
    if i < 0:
        return None
    entry = _REGISTRY.get(_STARTS[i])
    if entry is None or addr >= entry[0]:
        return None
    rec, phys = entry[1], addr - entry[2]
    if rec.state != LIVE:
        return (f"arena: invalid access at phys {phys:#x}: use after free, offset "
                f"{phys - rec.phys} of the freed {rec.describe()[4:]}\n  allocated at:"
                + fmt_stack(rec.stack) + "\n  freed at:" + fmt_stack(rec.freed_at) + "\n")
    end = rec.phys + rec.size
    where = (f"{phys - end} byte(s) past the end" if phys >= end
             else f"{rec.phys - phys} byte(s) before the start")
    return (f"arena: invalid access at phys {phys:#x}: {where} of {rec.describe()} "
            f"(guard page)\n  allocated at:" + fmt_stack(rec.stack) + "\n")


# -- the SIGSEGV handler -------------------------------------------------------------------------

def set_note_fd(fd: int) -> None:
    """Write fault notes to file descriptor ``fd`` (default 2, standard error)."""
    _state["fd"] = int(fd)


def _on_fault(signum: int, info: int | None, context: int | None) -> None:
    """The handler: note, put the previous handler back, return (the access faults again)."""
    user_sent = True
    try:
        if info:
            user_sent = ctypes.c_int.from_address(info + 8).value <= 0   # si_code
            addr = ctypes.c_void_p.from_address(info + 16).value or 0      # si_addr
            note = None if user_sent else fault_note(addr)
            if note:
                os.write(_state["fd"], note.encode(errors="replace"))
    finally:
        previous = _state["previous"]
        if previous is not None:
            _libc.sigaction(signal.SIGSEGV, ctypes.byref(previous), None)
        _state["previous"] = None
        if user_sent:   # sent by kill(): it will not come again by itself
            os.kill(os.getpid(), signal.SIGSEGV)


_HANDLER = _HANDLER_TYPE(_on_fault)
_HANDLER_ADDR = ctypes.cast(_HANDLER, ctypes.c_void_p).value


def install_handler() -> None:
    """Put the fault-note handler in front of the current ``SIGSEGV`` handler (which it calls
    on, see the module docstring) unless it is there already. O(1): one or two syscalls."""
    current = _SigAction()
    if _libc.sigaction(signal.SIGSEGV, None, ctypes.byref(current)) != 0:
        return
    if current.handler == _HANDLER_ADDR:
        return
    new = _SigAction()
    new.handler = _HANDLER_ADDR
    new.flags = _SA_SIGINFO | _SA_RESETHAND
    if _libc.sigaction(signal.SIGSEGV, ctypes.byref(new), None) == 0:
        _state["previous"] = current
