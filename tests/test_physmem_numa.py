"""arena.physmem NUMA: slicing by count, sizes and fractions; binding to host nodes through
mbind and checking the real placement with move_pages; clean fallback for absent nodes.

This machine type has one host node (0): binding to it is verified page by page; higher node
ids keep their tag and are reported unbound.
"""

from __future__ import annotations

import gc
from fractions import Fraction

import numpy as np
import pytest

import arena.physmem as physmem
import arena.physmem_host as physmem_host
from arena.physmem import PAGE_SIZE, BindStatus, NodeSlice, PhysicalMemory, host_nodes

MiB, GiB = 1 << 20, 1 << 30
# The kernel harness's node sizes in basis points (as tests/harness.py, which needs memblock).
NODE_FRACTIONS = (2500, 625, 1250, 1250, 625, 625, 2500, 625)
HOST = host_nodes()
needs_node0 = pytest.mark.skipif(0 not in HOST, reason="host has no NUMA node 0")


def sizes(mem: PhysicalMemory) -> list[int]:
    return [s.size for s in mem.slices]


# -- slicing -------------------------------------------------------------------------------------

def test_count_gives_equal_page_slices_remainder_last():
    with PhysicalMemory(10 * PAGE_SIZE, phys_base=GiB, nodes=3) as mem:
        assert mem.slices == [NodeSlice(0, GiB, 3 * PAGE_SIZE),
                              NodeSlice(1, GiB + 3 * PAGE_SIZE, 3 * PAGE_SIZE),
                              NodeSlice(2, GiB + 6 * PAGE_SIZE, 4 * PAGE_SIZE)]
        mem.check()
    with PhysicalMemory("64 MiB", nodes=np.int32(4)) as mem:
        assert sizes(mem) == [16 * MiB] * 4


def test_list_of_sizes():
    with PhysicalMemory("8 MiB", nodes=[2 * MiB, "4 MiB", np.int64(2 * MiB)]) as mem:
        assert mem.slices == [NodeSlice(0, 0, 2 * MiB), NodeSlice(1, 2 * MiB, 4 * MiB),
                              NodeSlice(2, 6 * MiB, 2 * MiB)]


def test_fractions_and_harness_basis_points():
    with PhysicalMemory("16 MiB", nodes=[0.25, 0.75]) as mem:
        assert sizes(mem) == [4 * MiB, 12 * MiB]
    bp = [Fraction(b, 10000) for b in NODE_FRACTIONS]
    with PhysicalMemory("16 MiB", nodes=bp) as mem:
        assert sizes(mem) == [16 * MiB * b // 10000 for b in NODE_FRACTIONS]
        assert [s.nid for s in mem.slices] == list(range(8))
        mem.check()
    with PhysicalMemory("16 MiB", nodes=[b / 10000 for b in NODE_FRACTIONS]) as mem:
        assert sizes(mem) == [16 * MiB * b // 10000 for b in NODE_FRACTIONS]


def test_fractions_round_down_to_pages_remainder_last():
    with PhysicalMemory(10 * PAGE_SIZE, nodes=[1 / 3, 1 / 3, 1 / 3]) as mem:
        assert sizes(mem) == [3 * PAGE_SIZE, 3 * PAGE_SIZE, 4 * PAGE_SIZE]
        assert sum(sizes(mem)) == mem.size


@pytest.mark.parametrize("nodes, exc, words", [
    (0, ValueError, "nodes=0"),
    (-1, ValueError, "nodes=-1"),
    (5, ValueError, "nodes=5"),                  # more nodes than the 4 pages
    (True, TypeError, "bool"),
    (2.0, TypeError, "float"),
    ("2", TypeError, "str"),
    ([], ValueError, "entries"),
    ([PAGE_SIZE, PAGE_SIZE], ValueError, "sum"),
    ([2500, 7500], ValueError, "basis points"),
    ([PAGE_SIZE + 1, 3 * PAGE_SIZE - 1], ValueError, "whole pages"),
    ([4 * PAGE_SIZE, 0], ValueError, "positive"),
    ([-PAGE_SIZE, 5 * PAGE_SIZE], ValueError, "positive"),
    ([0.5, 0.4], ValueError, "sum to 1"),
    ([float("nan"), 1.0], ValueError, "finite"),
    ([float("inf"), 1.0], ValueError, "finite"),
    ([1.5, -0.5], ValueError, "positive"),
    ([0.01, 0.99], ValueError, "whole page"),    # 1 % of 4 pages is no page
    ([0.5, 2 * PAGE_SIZE], TypeError, "only sizes"),
    ([None], TypeError, "only sizes"),
    ({0: 1}, TypeError, "dict"),
])
def test_bad_nodes_rejected(nodes, exc, words):
    with pytest.raises(exc, match=words):
        PhysicalMemory(4 * PAGE_SIZE, nodes=nodes)


# -- binding -------------------------------------------------------------------------------------

def test_nodes_none_is_unbound_default_policy():
    with PhysicalMemory("4 MiB") as mem:
        (st,) = mem.bind_status()
        assert st == BindStatus(0, 0, 4 * MiB, None, st.reason) and not st.bound
        assert "nodes=None" in st.reason


def test_host_nodes():
    assert isinstance(HOST, frozenset)
    assert all(isinstance(n, int) and n >= 0 for n in HOST)


@needs_node0
def test_bind_to_host_node_verified_by_node_of_page():
    with PhysicalMemory("8 MiB", phys_base=GiB, nodes=2) as mem:
        s0, s1 = mem.bind_status()
        assert s0.bound and s0.host_node == 0 and "bound to host node 0" in s0.reason
        first = mem.slices[0]
        assert mem.node_of_page(first.phys_start) is None     # never touched
        mem.fill(first.phys_start, first.size, 1)
        for phys in range(first.phys_start, first.phys_start + first.size, 64 * PAGE_SIZE):
            assert mem.node_of_page(phys) == 0
        assert mem.node_of_page(first.phys_start + first.size - 1) == 0
        if 1 not in HOST:
            assert not s1.bound and s1.host_node is None
            assert "host has no node 1" in s1.reason


def test_unavailable_node_falls_back_cleanly():
    missing = max(HOST | {0}) + 1
    with PhysicalMemory("8 MiB", nodes=missing + 1) as mem:
        st = mem.bind_status()[missing]
        assert (st.nid, st.host_node, st.bound) == (missing, None, False)
        assert f"host has no node {missing}" in st.reason
        sl = mem.slices[missing]
        v = mem.view(sl.phys_start, sl.size)   # the slice is ordinary memory
        v[:] = 0x3C
        assert mem.read(sl.phys_start + sl.size - 1, 1) == b"\x3c"
        node = mem.node_of_page(sl.phys_start)
        assert node in HOST or not HOST          # placed by the default policy
        del v


def test_mbind_failure_reported(monkeypatch):
    # Pretend the host has node 1: the kernel refuses the mbind (EINVAL), and the slice is
    # reported unbound with the kernel's reason instead of failing the construction.
    if 1 in HOST:
        pytest.skip("host really has node 1")
    monkeypatch.setattr(physmem, "host_nodes", lambda: HOST | {1})
    with PhysicalMemory("8 MiB", nodes=2) as mem:
        st = mem.bind_status()[1]
        assert not st.bound and "mbind to host node 1 failed" in st.reason
        assert "Invalid argument" in st.reason or "errno" in st.reason.lower()
        mem.fill(mem.slices[1].phys_start, PAGE_SIZE, 1)


def test_unsupported_architecture(monkeypatch):
    monkeypatch.setattr(physmem_host, "_NR", None)   # the system calls live there
    with PhysicalMemory("4 MiB", nodes=2) as mem:
        assert not any(st.bound for st in mem.bind_status())
        with pytest.raises(OSError, match="not wired"):
            mem.node_of_page(0)


@needs_node0
def test_node_of_page_none_after_release_and_for_read_only():
    with PhysicalMemory("4 MiB", nodes=1) as mem:
        mem.fill(0, PAGE_SIZE, 1)
        assert mem.node_of_page(100) == 0
        mem.release(0, PAGE_SIZE)
        assert mem.node_of_page(0) is None
        v = mem.view(PAGE_SIZE, PAGE_SIZE)
        assert v[0] == 0                         # a read maps the shared zero page
        assert mem.node_of_page(PAGE_SIZE) is None
        assert mem.resident_bytes(0, 2 * PAGE_SIZE) <= 2 * MiB   # nothing moved or faulted
        del v


@needs_node0
def test_populate_after_binding():
    with PhysicalMemory("4 MiB", nodes=1, populate=True) as mem:
        assert mem.bind_status()[0].bound
        assert mem.resident_bytes() == 4 * MiB
        assert mem.node_of_page(2 * MiB) == 0


def test_bind_status_is_a_copy():
    with PhysicalMemory("4 MiB", nodes=2) as mem:
        mem.bind_status().clear()
        mem.slices.clear()
        assert len(mem.bind_status()) == 2 and len(mem.slices) == 2


def test_many_nodes_fork_and_close():
    mem = PhysicalMemory("64 MiB", nodes=64)
    assert len(mem.bind_status()) == 64
    assert sum(st.bound for st in mem.bind_status()) == len(HOST & set(range(64)))
    gc.collect()
    mem.close()
