"""numpy's own data allocations served by an arena: :meth:`arena.Arena.numpy_allocator`.

Kernel counterpart: none. numpy (1.22 and later) lets a program replace the allocator of array
data: a *memory handler* is a ``PyCapsule`` named ``"mem_handler"`` holding a
``PyDataMem_Handler`` struct (a name of 127 bytes, a version byte (1) and four C functions
``malloc(ctx, size)``, ``calloc(ctx, nelem, elsize)``, ``realloc(ctx, ptr, new_size)``,
``free(ctx, ptr, size)``). ``PyDataMem_SetHandler`` makes a handler the current one of the
running context (numpy keeps it in a ``contextvars`` variable, so each thread and each asyncio
task has its own), and every array numpy makes from then on takes its data from it and keeps
a reference to it, so that the array's data goes back to the same handler whenever the array
dies — also long after the handler stopped being the current one.

This module writes such a handler with :mod:`ctypes` (callbacks made by ``ctypes.CFUNCTYPE``
take the GIL themselves, so numpy may call them from any thread, with or without it):

* ``malloc``/``calloc`` make an :meth:`arena.Arena.alloc` allocation (so the budget, the
  statistics, the size classes and debug mode's red zones and poison apply) and return the
  address of its first byte; the arena's array is kept in a table ``address -> allocation``
  until numpy frees the address. The allocation records the line of Python that made numpy
  allocate (debug mode, ``track_callers``), counts in ``stats()`` and in leak reports, and is
  *pinned*: whatever the arena's lifetime, only numpy's ``free`` gives it back (``reset()``
  and a scope's end leave it alone; the garbage-collected lifetime never collects it while
  numpy holds it).
* ``realloc`` makes a new allocation, copies ``min(old, new)`` bytes and frees the old one.
* ``free`` frees the allocation (``free(NULL)`` does nothing). A red zone found broken there
  cannot be raised through numpy: the report is kept and returned (or raised) by the arena's
  next :meth:`arena.Arena.check`, and the red zones are restored so the memory can go back.
* A refused allocation (budget, out of memory, arena closed) returns ``NULL``, so numpy
  raises ``MemoryError``. No Python exception ever leaves a callback.
* An allocation numpy makes while the same thread is inside the arena's own code (say, a
  check of the arena, or a finalizer the garbage collector runs there) cannot enter the
  arena again mid-operation, and one made by a module's top-level code while it is imported
  (say, numpy importing one of its submodules on first use) belongs to the module, which
  lives as long as the process: both are served by the C library's ``malloc`` instead (and
  freed with ``free``).

Each allocation holds a strong reference to its arena, so an arena stays alive while numpy
holds any of its memory, and :meth:`arena.Arena.close` is refused then
(:class:`arena.errors.LiveViewsError`). Each arena that used the hook keeps a handler struct
and capsule (a few hundred bytes) for the life of the process: numpy may still call them
through a context copied while the block was active.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib._bootstrap as _bootstrap
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from arena.errors import ArenaError, CorruptionError

if TYPE_CHECKING:
    from arena.arena import Arena
    from arena.unit import Unit

__all__ = ["HANDLER_NAME", "NumpyAllocator", "numpy_allocator", "numpy_held"]

#: The name numpy reports for the handler (``numpy.core.multiarray.get_handler_name()``).
HANDLER_NAME = "memblock-arena"

#: Slots of ``PyDataMem_SetHandler`` and ``PyDataMem_GetHandler`` in numpy's C-API table
#: (the same in numpy 1.22 .. 2.x).
_SET_HANDLER_SLOT = 304
_GET_HANDLER_SLOT = 305
#: Requests above this many bytes are refused (``NULL``) before they reach the arena.
_MAX_REQUEST = 1 << 62
#: numpy's data needs malloc's alignment (``long double``, ``complex128``).
_MIN_ALIGN = 16

_MALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_CALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
_REALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class _Allocator(ctypes.Structure):
    """numpy's ``PyDataMemAllocator``."""

    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", _MALLOC), ("calloc", _CALLOC),
                ("realloc", _REALLOC), ("free", _FREE)]


class _Handler(ctypes.Structure):
    """numpy's ``PyDataMem_Handler`` (version 1)."""

    _fields_ = [("name", ctypes.c_char * 127), ("version", ctypes.c_uint8),
                ("allocator", _Allocator)]


# -- numpy's C API, found once ---------------------------------------------------------------

class _Api:
    """``PyDataMem_SetHandler``/``GetHandler`` from numpy's C-API table, and the C library's
    allocator (for allocations that cannot enter the arena)."""

    def __init__(self) -> None:
        try:
            umath = importlib.import_module("numpy._core._multiarray_umath")
        except ImportError:   # numpy 1.x
            umath = importlib.import_module("numpy.core._multiarray_umath")
        capsule = umath._ARRAY_API
        api = ctypes.pythonapi
        api.PyCapsule_GetName.restype = ctypes.c_char_p
        api.PyCapsule_GetName.argtypes = [ctypes.py_object]
        api.PyCapsule_GetPointer.restype = ctypes.c_void_p
        api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        table = api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
        if not table:
            raise ArenaError("numpy's C-API table could not be read")
        slots = (ctypes.c_void_p * (_GET_HANDLER_SLOT + 1)).from_address(table)
        set_at, get_at = slots[_SET_HANDLER_SLOT], slots[_GET_HANDLER_SLOT]
        if not set_at or not get_at:
            raise ArenaError("numpy's C-API table has no PyDataMem_SetHandler/GetHandler")
        proto = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)
        self.set_handler = proto(set_at)
        self.get_handler = ctypes.PYFUNCTYPE(ctypes.py_object)(get_at)
        self.capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_void_p)(("PyCapsule_New", api))
        try:
            from numpy._core.multiarray import get_handler_name
        except ImportError:   # numpy 1.x
            from numpy.core.multiarray import get_handler_name  # type: ignore[no-redef]
        self.handler_name = get_handler_name
        try:
            libc = ctypes.CDLL(None)
        except OSError:   # no C library to load by name: re-entrant allocations fail (NULL)
            libc = None
        if libc is None or not hasattr(libc, "malloc"):
            self.c_malloc = self.c_calloc = self.c_realloc = _no_memory
            self.c_free = _no_free
            return
        self.c_malloc = libc.malloc
        self.c_malloc.restype = ctypes.c_void_p
        self.c_malloc.argtypes = [ctypes.c_size_t]
        self.c_calloc = libc.calloc
        self.c_calloc.restype = ctypes.c_void_p
        self.c_calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        self.c_realloc = libc.realloc
        self.c_realloc.restype = ctypes.c_void_p
        self.c_realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.c_free = libc.free
        self.c_free.restype = None
        self.c_free.argtypes = [ctypes.c_void_p]


def _no_memory(*args: Any) -> None:
    """The C library's allocator where none could be loaded: every request fails."""
    return None


def _no_free(addr: Any) -> None:
    """The C library's ``free`` where none could be loaded (nothing was ever allocated)."""


_API: _Api | None = None
_CAPSULE_NAME = ctypes.create_string_buffer(b"mem_handler")   # numpy compares it by strcmp


def _api() -> _Api:
    global _API
    if _API is None:
        if tuple(int(x) for x in np.__version__.split(".")[:2]) < (1, 22):
            raise ArenaError(f"numpy_allocator() needs numpy >= 1.22 (memory handlers); this "
                             f"is numpy {np.__version__}")
        _API = _Api()
    return _API


# -- the hook of one arena -------------------------------------------------------------------

class _Hook:
    """The handler of one arena: its struct and capsule, and the allocations numpy holds.

    ``live`` maps each address handed to numpy to ``(array, unit, arena)``: the arena's
    array keeps the unit viewed, the arena reference keeps the arena alive. ``foreign`` holds
    the addresses served by the C library (re-entrant calls)."""

    def __init__(self, a: Arena, key: int) -> None:
        self.ref: weakref.ref[Arena] = weakref.ref(a)
        self.live: dict[int, tuple[np.ndarray, Unit, Arena]] = {}
        self.foreign: set[int] = set()
        self.handler = _Handler()
        self.handler.name = HANDLER_NAME.encode()
        self.handler.version = 1
        self.handler.allocator = _Allocator(key, _malloc_cb, _calloc_cb, _realloc_cb, _free_cb)
        self.capsule = _api().capsule_new(ctypes.addressof(self.handler),
                                          ctypes.addressof(_CAPSULE_NAME), None)

    def alloc(self, size: int, zero: bool, frame: Any) -> int | None:
        """Address of a new allocation of ``size`` bytes for numpy, or ``None``."""
        a = self.ref()
        if a is None or a._closed or size >= _MAX_REQUEST:
            return None
        lock = a._lock
        if lock._is_owned() or (_MODULE_LOCKS and _importing()):   # type: ignore[attr-defined]
            # Called from inside the arena's own code (a check, a finalizer run there): the
            # arena is mid-operation; or by a module's import (its arrays live as long as the
            # module): the C library serves it.
            api = _api()
            addr = api.c_calloc(1, size or 1) if zero else api.c_malloc(size or 1)
            if addr:
                self.foreign.add(addr)
            return addr or None
        with lock:
            if a._align >= _MIN_ALIGN:
                arr = a.alloc(size, zero=zero)
            else:
                arr = a.alloc(size, zero=zero, align=_MIN_ALIGN)
            try:
                unit = a._anchors.get(id(arr.base))
                if unit is None or unit.view is not arr:
                    unit = a._unit_of(arr)
                if unit is None:   # cannot happen: every array alloc() returns views a unit
                    raise ArenaError("the arena's new array has no unit")
                addr = unit.phys + a._virt_delta
                if a._track and frame is not None:
                    a._remember_caller(unit, _user_frame(frame))
            except BaseException:
                a.free(arr)   # nothing handed to numpy: the allocation goes back
                raise
            a._pinned.add(unit)
            self.live[addr] = (arr, unit, a)
        return addr

    def free(self, addr: int) -> None:
        """Give numpy's allocation at ``addr`` back (reusable at once: numpy frees an address
        only once no array uses it)."""
        entry = self.live.pop(addr, None)
        if entry is None:
            if addr in self.foreign:
                self.foreign.discard(addr)
                _api().c_free(addr)
            return
        arr, unit, a = entry
        del entry
        with a._lock:
            a._pinned.discard(unit)
            if a._closed:
                return
            if a._debug or not a._gc or unit.view is not arr:
                # The manual lifetime's free is its fast path; in debug mode it records the
                # freeing stack, poisons and quarantines.
                try:
                    a.free(arr)
                except CorruptionError:
                    _keep_reports(a)
                    a.free(arr)
                return
            del arr   # the arena's own array is the last reference: the unit goes back now
            a._free_units([unit], None)

    def realloc(self, addr: int, size: int, frame: Any) -> int | None:
        """numpy's ``realloc``: a new allocation with the old contents; the old one freed."""
        entry = self.live.get(addr)
        if entry is None:
            if addr not in self.foreign:
                return None
            new = _api().c_realloc(addr, size or 1)
            if new:
                self.foreign.discard(addr)
                self.foreign.add(new)
            return new or None
        new = self.alloc(size, False, frame)
        if new is None:
            return None   # the old allocation stays valid, as C's realloc leaves it
        ctypes.memmove(new, addr, min(entry[1].size, size))
        self.free(addr)
        return new


#: The import system's per-module locks (name -> weak reference to a lock whose ``owner`` is
#: the importing thread), held while a module's top-level code runs; empty when the
#: interpreter keeps them elsewhere (then imports are not told apart).
_MODULE_LOCKS: dict[str, Any] = getattr(_bootstrap, "_module_locks", {})


def _importing() -> bool:
    """Whether this thread is running a module's top-level code (an import). O(imports in
    progress): the import system's lock table is empty between imports."""
    me = threading.get_ident()
    for ref in list(_MODULE_LOCKS.values()):
        lock = ref() if callable(ref) else ref
        if getattr(lock, "owner", None) == me:
            return True
    return False


#: Frames of numpy's own Python code (``np.ones``, ``np.linspace``, ...) are not the place
#: that made numpy allocate: the first frame outside numpy's directory is.
_NUMPY_DIR = os.path.dirname(np.__file__) + os.sep


def _user_frame(frame: Any) -> Any:
    """The innermost frame at or above ``frame`` that is not numpy's own code."""
    f = frame
    while f is not None and f.f_code.co_filename.startswith(_NUMPY_DIR):
        f = f.f_back
    return frame if f is None else f


def _keep_reports(a: Arena) -> None:
    """The red zones of an allocation numpy frees are broken: keep the reports for the
    arena's next :meth:`arena.Arena.check` and restore the patterns, so the free can go on."""
    before = len(a._pending)
    reports = a.check(repair=True)   # returns the pending ones first, and clears them
    a._pending.extend(reports[:before])
    a._pending.extend(r + "\n  (found when numpy freed the array's memory)"
                      for r in reports[before:])


_HOOKS: dict[int, _Hook] = {}   # ctx - 1 -> hook, for the life of the process
_getframe = sys._getframe


def _hook(ctx: int | None) -> _Hook:
    return _HOOKS[(ctx or 0) - 1]


def _malloc(ctx: int | None, size: int) -> int | None:
    try:
        return _HOOKS[ctx - 1].alloc(size, False, _getframe(1))  # type: ignore[operator]
    except BaseException:   # numpy raises MemoryError for NULL; nothing may escape
        return None


def _calloc(ctx: int | None, nelem: int, elsize: int) -> int | None:
    try:
        return _hook(ctx).alloc(nelem * elsize, True, _getframe(1))
    except BaseException:
        return None


def _realloc(ctx: int | None, ptr: int | None, size: int) -> int | None:
    try:
        if not ptr:
            return _hook(ctx).alloc(size, False, _getframe(1))
        return _hook(ctx).realloc(ptr, size, _getframe(1))
    except BaseException:
        return None


def _free(ctx: int | None, ptr: int | None, size: int) -> None:
    if not ptr:
        return
    try:
        _HOOKS[ctx - 1].free(ptr)  # type: ignore[operator]
    except BaseException:   # a free that fails leaves the memory allocated: never a crash
        pass


# The callbacks live as long as the process: numpy may call them as long as arrays exist.
_malloc_cb = _MALLOC(_malloc)
_calloc_cb = _CALLOC(_calloc)
_realloc_cb = _REALLOC(_realloc)
_free_cb = _FREE(_free)


def _hook_of(a: Arena) -> _Hook:
    """The hook of an arena, made on first use (ctx = its key + 1: never ``NULL``)."""
    key = a._serial
    hook = _HOOKS.get(key)
    if hook is None:
        hook = _HOOKS[key] = _Hook(a, key + 1)
    return hook


# -- the public face -------------------------------------------------------------------------

class NumpyAllocator:
    """What :meth:`arena.Arena.numpy_allocator` returns: a context manager that makes the
    arena the allocator of every numpy array data allocation its context (thread, asyncio
    task) makes inside the block, and puts the previous handler back on exit. Blocks nest
    (the innermost arena wins). Entering yields the arena."""

    __slots__ = ("arena", "old")

    def __init__(self, a: Arena) -> None:
        self.arena = a
        self.old: list[Any] = []   # the handlers to put back, innermost last

    def __enter__(self) -> Arena:
        a = self.arena
        with a._lock:
            a._open()
            hook = _hook_of(a)
        api = _api()
        old = api.set_handler(hook.capsule)
        if api.get_handler() is not hook.capsule or api.handler_name() != HANDLER_NAME:
            api.set_handler(old)
            raise ArenaError("numpy did not take the arena's memory handler "
                             "(PyDataMem_SetHandler had no effect); nothing changed")
        self.old.append(old)
        return a

    def __exit__(self, *exc: object) -> None:
        if self.old:
            _api().set_handler(self.old.pop())


def numpy_allocator(a: Arena) -> NumpyAllocator:
    """``a.numpy_allocator()`` (see :meth:`arena.Arena.numpy_allocator`)."""
    return a.numpy_allocator()


def numpy_held(a: Arena) -> tuple[int, int]:
    """``(allocations, bytes)`` that numpy holds in arena ``a`` (made inside
    :meth:`arena.Arena.numpy_allocator` blocks and not freed yet; bytes as requested). O(n)."""
    hook = _HOOKS.get(a._serial)
    if hook is None:
        return 0, 0
    entries = list(hook.live.values())
    return len(entries), sum(e[1].size for e in entries)
