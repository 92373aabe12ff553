"""Shared "physical memory" files: anonymous memory files (``memfd_create``) and page holes.

Kernel counterpart: none (host plumbing for :class:`arena.physmem.PhysicalMemory` with
``shared=True``). A memory file lives in RAM (tmpfs); its size is virtual until pages are
written, so a file of many GiB costs nothing until touched. Mapping it ``MAP_SHARED`` in several
processes makes them see the same bytes. Punching a hole (``fallocate(PUNCH_HOLE)``) gives
pages back to the host and makes them read as zero in every process that maps them.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["create", "punch_hole", "file_size"]

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
_libc.fallocate.restype = ctypes.c_int


def create(size: int, name: str = "memblock-arena") -> int:
    """A new memory file of ``size`` bytes (sparse: no page is allocated yet); returns its
    descriptor (close-on-exec, as every descriptor Python opens). Raises OSError."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Drop the pages of bytes ``[offset, offset + length)`` of the file (whole pages): they
    read as zero afterwards in every mapping. Raises OSError."""
    if length <= 0:
        return
    rc = _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fallocate(PUNCH_HOLE): {os.strerror(err)}")


def file_size(fd: int) -> int:
    """The file's size in bytes."""
    return os.fstat(fd).st_size
