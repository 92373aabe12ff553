"""Handles: small picklable names of the arrays of a shared arena, and the picklers that send
them instead of the bytes.

Kernel counterpart: none. A :class:`Handle` names a view of one block of a shared arena
(:class:`arena.shared.SharedArena`): which arena (its random 128-bit id), the window that owns
the block, the block (file offset, size and a random tag that changes when the block is
reused), where the view starts in the block, its dtype, shape and strides, and who sent it (so
that a process not yet attached can find the arena's memory file). Opening a handle in a
process gives a numpy array over the same bytes (:meth:`arena.shared.SharedArena.open`).

:func:`install` registers one reducer for ``numpy.ndarray`` with ``multiprocessing``'s
pickler (``ForkingPickler``: queues, pipes, ``Pool``, ``ProcessPoolExecutor``) and with plain
``pickle`` (``copyreg``). It sends a handle when the array's memory lies in a shared arena
this process is attached to, and falls back to numpy's own reduction (a copy of the bytes)
otherwise. It is installed when the first shared arena is made or attached in a process.
"""

from __future__ import annotations

import copyreg
import math
import pickle
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any, NamedTuple

import numpy as np

from arena.errors import BadHandleError

__all__ = ["Handle", "install", "view_extent"]


class Handle(NamedTuple):
    """A picklable name of a view of a shared arena's block (module docstring).

    Fields: ``arena`` (the arena's id, 16 bytes), ``owner`` (window slot owning the block),
    ``tag`` (the block's tag), ``offset`` and ``size`` (the block in the arena's memory file,
    bytes), ``view_offset`` (bytes from the block's start to the view's first element),
    ``dtype`` (``numpy.dtype.str``), ``shape``, ``strides`` (bytes), ``sender`` (slot of the
    process that made the handle), ``sender_pid`` and ``sender_fd`` (its process id and its
    descriptor of the memory file: a process not attached opens ``/proc/PID/fd/FD``),
    ``writeable`` (False: the sender's view was read-only, and so is the one opened).
    """

    arena: bytes
    owner: int
    tag: int
    offset: int
    size: int
    view_offset: int
    dtype: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    sender: int
    sender_pid: int
    sender_fd: int
    writeable: bool = True


def view_extent(view_offset: int, itemsize: int, shape: tuple[int, ...],
                strides: tuple[int, ...]) -> tuple[int, int]:
    """``[low, high)``: the bytes (from the block's start) a view with this geometry reaches.
    An empty view reaches nothing (``low == high == view_offset``). O(ndim)."""
    low = high = view_offset
    if math.prod(shape) == 0:
        return low, high
    for n, s in zip(shape, strides, strict=True):
        if s < 0:
            low += s * (n - 1)
        else:
            high += s * (n - 1)
    return low, high + itemsize


def checked_geometry(h: Any) -> tuple[np.dtype, tuple[int, ...], tuple[int, ...]]:
    """The dtype, shape and strides of handle ``h``, checked to be plain values that stay
    inside its block; raises :class:`arena.errors.BadHandleError` otherwise."""
    try:
        dt = np.dtype(h.dtype)
        shape = tuple(int(d) for d in h.shape)
        strides = tuple(int(s) for s in h.strides)
        view_offset, size = int(h.view_offset), int(h.size)
    except (TypeError, ValueError) as exc:
        raise BadHandleError(f"malformed handle: {exc}") from None
    if dt.hasobject:
        raise BadHandleError(f"handle dtype {dt} holds Python objects")
    if len(shape) != len(strides) or any(d < 0 for d in shape):
        raise BadHandleError(f"handle shape {shape} / strides {strides} do not match")
    low, high = view_extent(view_offset, dt.itemsize, shape, strides)
    if low < 0 or high > size or view_offset < 0 or view_offset > size:
        raise BadHandleError(
            f"the view [{low}, {high}) of the handle lies outside its {size}-byte block")
    return dt, shape, strides


_installed: list[Callable[[np.ndarray], Any]] = []


def install(reduce: Callable[[np.ndarray], Any]) -> None:
    """Register ``reduce`` for ``numpy.ndarray`` with ``ForkingPickler`` and ``copyreg``.

    ``reduce(array)`` returns a reduction tuple sending a handle, or ``None`` to fall back to
    numpy's own. Idempotent (the first registration stays).
    """
    if _installed:
        return
    _installed.append(reduce)

    def _reducer(array: np.ndarray) -> Any:
        out = reduce(array)
        if out is None:
            return array.__reduce_ex__(pickle.DEFAULT_PROTOCOL)
        return out

    ForkingPickler.register(np.ndarray, _reducer)
    copyreg.pickle(np.ndarray, _reducer)
