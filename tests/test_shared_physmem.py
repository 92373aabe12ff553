"""PhysicalMemory(shared=True): a memory file mapped MAP_SHARED, same rules as the private one."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from arena.errors import ArenaMemoryError
from arena.physmem import MAX_ALIGN, PAGE_SIZE, PhysicalMemory


def test_shared_memory_is_seen_through_the_file() -> None:
    with PhysicalMemory(1 << 20, phys_base=1 << 30, shared=True) as pm:
        assert pm.shared and pm.fd is not None
        v = pm.view(pm.phys_base + PAGE_SIZE, 16)
        v[:] = 7
        with mmap.mmap(pm.fd, PAGE_SIZE, offset=pm.file_offset + PAGE_SIZE) as m:
            assert m[:16] == b"\x07" * 16
            m[0:1] = b"\x09"
        assert v[0] == 9    # a write through another mapping is seen here
        del v
        pm.check()


def test_shared_alignment_and_nodes_as_private() -> None:
    with PhysicalMemory(4 << 20, phys_base=1 << 30, nodes=2, shared=True) as pm:
        addr = pm.view(pm.phys_base, 1).__array_interface__["data"][0]
        assert addr % MAX_ALIGN == pm.phys_base % MAX_ALIGN
        assert [s.nid for s in pm.slices] == [0, 1]
        assert pm.file_offset % PAGE_SIZE == 0


def test_shared_release_reads_zero_in_every_mapping() -> None:
    """MADV_DONTNEED on a shared mapping keeps the file's bytes: release must punch them."""
    with PhysicalMemory(1 << 20, shared=True) as pm:
        pm.fill(0, PAGE_SIZE, 0x5A)
        with mmap.mmap(pm.fd, PAGE_SIZE, offset=pm.file_offset) as m:
            pm.release(0, PAGE_SIZE)
            assert m[:4] == b"\0" * 4
        assert pm.read(0, 4) == b"\0" * 4


def test_private_memory_is_not_shared() -> None:
    with PhysicalMemory(1 << 20) as pm:
        assert not pm.shared and pm.fd is None and pm.file_offset == 0


def test_close_closes_the_file() -> None:
    pm = PhysicalMemory(1 << 20, shared=True)
    fd = pm.fd
    assert fd is not None
    pm.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_map_an_existing_file() -> None:
    """A second PhysicalMemory over the same file sees the same bytes at the same offset."""
    with PhysicalMemory(1 << 20, shared=True) as a:
        assert a.fd is not None
        b = PhysicalMemory(1 << 20, shared=True, fd=a.fd)
        try:
            a.fill(0, 8, 3)
            delta = a.file_offset - b.file_offset   # each chose its own aligned start
            if 0 <= delta <= (1 << 20) - 8:
                assert b.read(delta, 8) == b"\x03" * 8
            assert b.fd == a.fd
        finally:
            b.close()
        os.fstat(a.fd)   # b did not close a's file


def test_a_file_too_small_is_refused() -> None:
    with PhysicalMemory(1 << 20, shared=True) as a, pytest.raises(ArenaMemoryError):
        PhysicalMemory(1 << 20, shared=True, fd=a.fd, offset=1 << 30)


@pytest.mark.parametrize("kw", [{"fd": 3}, {"offset": PAGE_SIZE},
                                {"shared": True, "offset": 1},
                                {"shared": True, "offset": -PAGE_SIZE}])
def test_bad_shared_arguments(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PhysicalMemory(1 << 20, **kw)  # type: ignore[arg-type]


def test_shared_must_be_bool() -> None:
    with pytest.raises(TypeError):
        PhysicalMemory(1 << 20, shared=1)  # type: ignore[arg-type]


def test_bad_fd_is_a_memory_error() -> None:
    with pytest.raises(ArenaMemoryError):
        PhysicalMemory(1 << 20, shared=True, fd=987654)


def test_arrays_cross_a_fork(tmp_path: object) -> None:
    with PhysicalMemory(1 << 20, shared=True) as pm:
        v = pm.view(pm.phys_base, 8)
        pid = os.fork()
        if pid == 0:   # child: write, exit at once
            v[:] = 42
            os._exit(0)
        os.waitpid(pid, 0)
        assert np.all(v == 42)
        del v
