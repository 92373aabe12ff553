"""Worker functions for the shared-arena tests (importable by spawned processes)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from arena.shared import arena_of


def double(x: np.ndarray) -> np.ndarray:
    """Double in place and send the same array back."""
    x *= 2
    return x


def checksum(x: np.ndarray) -> int:
    """Sum of the bytes the worker sees."""
    return int(x.view(np.uint8).sum(dtype=np.uint64))


def fresh(args: tuple[np.ndarray, int]) -> np.ndarray:
    """Allocate a new array in the worker's own window, filled with ``value``."""
    x, value = args
    sa = arena_of(x)
    assert sa is not None
    y = sa.alloc_array(x.shape, x.dtype)
    y[...] = value
    return y


def info(x: np.ndarray) -> tuple[int, int]:
    """(pid, window of the worker)."""
    sa = arena_of(x)
    assert sa is not None
    return os.getpid(), sa.slot


def free_remote(x: np.ndarray) -> int:
    """Free a block the worker does not own (pushed on its owner's delayed-free list)."""
    sa = arena_of(x)
    assert sa is not None
    sa.free(x)
    return sa.slot


def identity(x: Any) -> Any:
    return x


def hold(conn: Any) -> None:
    """Receive an array, report its first byte, hold it until told, drop it, acknowledge."""
    x = conn.recv()
    conn.send(int(x.view(np.uint8)[0]))
    conn.recv()
    del x
    conn.send("dropped")
    conn.recv()


def write_then_read(conn: Any) -> None:
    """Receive an array, write 0x11 into it, wait, then report what the parent wrote."""
    x = conn.recv()
    x[...] = 0x11
    conn.send("written")
    conn.recv()
    conn.send(bytes(x.view(np.uint8)[:4]))


def alloc_forever(sa: Any, conn: Any) -> None:
    """Allocate in this process's window without end after sending one array to the parent
    (a fork child: ``sa`` is inherited)."""
    first = sa.alloc(4096)
    first[:] = 0x77
    conn.send(first)
    keep = []
    n = 0
    while True:
        keep.append(sa.alloc(64 + n % 5000))
        n += 1
        if n == 200:
            conn.send("allocating")
        if len(keep) > 1000:
            keep.clear()


def crash_in_claim(sa: Any) -> None:
    """Die by SIGKILL in the middle of writing this process's record (fault injection)."""
    from arena import shared_meta
    shared_meta.crash_hook = shared_meta.kill_self
    sa.alloc(64)


def check_from_child(x: np.ndarray) -> list[str]:
    """The metadata check as a worker sees it, with an array of the parent's held."""
    sa = arena_of(x)
    assert sa is not None
    y = sa.alloc(1000)
    y[:] = 1
    return sa.check()


_VIA_TOKEN: list[bool] = []


def attach_noting(token: Any) -> None:
    """Pool initializer: attach with ``token`` and note whether it carried the descriptor."""
    from arena.shared import attach
    _VIA_TOKEN.append(token.dup is not None)
    attach(token)


def via_token(x: np.ndarray) -> tuple[list[bool], int]:
    """What :func:`attach_noting` noted, and the checksum of ``x``."""
    return list(_VIA_TOKEN), checksum(x)


def alloc_bytes(args: tuple[np.ndarray, int]) -> str:
    """Try to allocate ``n`` bytes in the worker's window; the error's class name or "ok"."""
    x, n = args
    sa = arena_of(x)
    assert sa is not None
    try:
        y = sa.alloc(n)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return type(exc).__name__
    del y
    return "ok"


def churn(xs: list[np.ndarray]) -> list[np.ndarray]:
    """Read the arrays, free every third one remotely, send back fresh ones of the worker's."""
    sa = arena_of(xs[0])
    assert sa is not None
    out = []
    for i, x in enumerate(xs):
        y = sa.alloc_array(x.shape, x.dtype)
        y[...] = x + 1
        out.append(y)
        if i % 3 == 0:
            sa.free(x)
    return out
