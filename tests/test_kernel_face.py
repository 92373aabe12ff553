"""The kernel-spelled face (``arena.kernel``): ``MAX_NUMNODES``, ``__pa``/``__va``, the
``memblock=debug`` switch, ``memblock_free_all()`` without an argument, and what
``memblock_alloc*`` does after the hand-over (warn, then memory from the page allocator)."""

from __future__ import annotations

import ctypes
import io
import logging
import warnings

import numpy as np
import pytest

import arena.kernel as k
from arena.buddy import BuddyAllocator
from arena.errors import HandoverError, MemblockPanic
from arena.physmem import PhysicalMemory

MiB = 1 << 20


@pytest.fixture
def booted():
    """The global memblock over 8 MiB at 1 GiB, 1 MiB of it reserved."""
    pm = PhysicalMemory(8 * MiB, phys_base=1 << 30, nodes=2)
    k.reset(pm)
    k.memblock_add_node(pm.phys_base, 4 * MiB, 0)
    k.memblock_add_node(pm.phys_base + 4 * MiB, 4 * MiB, 1)
    k.memblock_reserve(pm.phys_base, MiB)
    yield pm
    k.memblock_debug(False)
    k.reset()
    import gc

    gc.collect()
    pm.close()


def test_max_numnodes_is_the_default_configurations():
    from arena.memblock import Memblock

    assert k.MAX_NUMNODES == Memblock(None).max_numnodes > 1
    assert "MAX_NUMNODES" in k.__all__
    k.reset(numa=False)
    try:
        assert k.memblock.max_numnodes == 1 and k.MAX_NUMNODES > 1   # a build-time constant
    finally:
        k.reset()


def test_pa_and_va_are_inverse_and_va_is_the_real_address(booted):
    pm = booted
    phys = pm.phys_base + 3 * MiB + 123
    virt = k.__va(phys)
    view = pm.view(phys, 8)
    view[:] = np.arange(8, dtype=np.uint8)
    assert virt == view.__array_interface__["data"][0]
    assert ctypes.string_at(virt, 8) == bytes(range(8))        # the byte really lives there
    assert k.__pa(virt) == phys
    assert k.__pa(view) == phys                                # a view works too
    assert k.__va(pm.phys_end) - k.__va(pm.phys_base) == pm.size
    del view


@pytest.mark.parametrize("call, arg", [("__va", (1 << 30) - 1), ("__va", (1 << 30) + 9 * MiB),
                                       ("__pa", 0), ("__va", "0x1000"), ("__pa", 1.5)])
def test_pa_and_va_refuse_what_is_not_in_the_memory(booted, call, arg):
    with pytest.raises((TypeError, ValueError)):
        getattr(k, call)(arg)


def test_pa_and_va_need_a_physical_memory():
    k.reset()
    with pytest.raises(ValueError, match="reset"):
        k.__va(0)


def test_memblock_debug_switch_prints_the_debug_lines(booted):
    out = io.StringIO()
    assert k.memblock_debug(True, out) is False
    k.memblock_reserve(booted.phys_base + 2 * MiB, 4096)
    assert k.memblock_debug(False) is True
    k.memblock_reserve(booted.phys_base + 3 * MiB, 4096)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("__memblock_reserve: [0x0000000040200000-0x0000000040200fff]")
    assert logging.getLogger("arena.memblock").level == logging.NOTSET


def test_memblock_debug_refuses_a_non_bool():
    with pytest.raises(TypeError):
        k.memblock_debug("yes")  # type: ignore[arg-type]


def test_free_all_without_an_argument_makes_the_page_allocator(booted):
    assert k.page_allocator() is None
    pages = k.memblock_free_all()
    buddy = k.page_allocator()
    assert isinstance(buddy, BuddyAllocator)
    assert pages == 7 * MiB // 4096 == buddy.nr_free_pages()
    with pytest.raises(HandoverError):
        k.memblock_free_all()
    assert k.page_allocator() is buddy


def test_free_all_still_takes_a_page_allocator(booted):
    buddy = BuddyAllocator(booted)
    assert k.memblock_free_all(buddy) == 7 * MiB // 4096
    assert k.page_allocator() is buddy


def test_reset_forgets_the_page_allocator(booted):
    k.memblock_free_all()
    k.reset(booted)
    assert k.page_allocator() is None


@pytest.mark.parametrize("call, args", [
    ("memblock_alloc", (100, 8)), ("memblock_alloc_raw", (5000, 8)),
    ("memblock_alloc_from", (64, 64, 0)), ("memblock_alloc_low", (64, 64)),
    ("memblock_alloc_node", (64, 64, 1)),
    ("memblock_alloc_try_nid", (64, 64, 0, k.MEMBLOCK_ALLOC_ACCESSIBLE, 1)),
    ("memblock_alloc_try_nid_raw", (64, 64, 0, k.MEMBLOCK_ALLOC_ACCESSIBLE, 0)),
    ("memblock_alloc_exact_nid_raw", (64, 64, 0, k.MEMBLOCK_ALLOC_ACCESSIBLE, 1)),
    ("memblock_alloc_or_panic", (64, 64)),
])
def test_alloc_after_the_handover_warns_and_falls_back(booted, call, args):
    k.memblock_free_all()
    buddy = k.page_allocator()
    before = buddy.nr_free_pages()
    reserved = k.memblock_reserved_size()
    with pytest.warns(k.MemblockWarning, match="after the hand-over"):
        view = getattr(k, call)(*args)
    assert isinstance(view, np.ndarray) and view.nbytes == args[0]
    assert not view.any()                                        # zeroed, as kzalloc
    assert buddy.nr_free_pages() < before                        # from the page allocator
    assert k.memblock_reserved_size() == reserved                # memblock untouched
    if call in ("memblock_alloc_node", "memblock_alloc_try_nid", "memblock_alloc_exact_nid_raw"):
        assert booted.phys_of(view) >= booted.phys_base + 4 * MiB   # node 1 preferred


def test_alloc_before_the_handover_does_not_warn(booted):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view = k.memblock_alloc(64, 64)
    assert view is not None and k.memblock_reserved_size() == MiB + 64


def test_phys_alloc_after_the_handover_still_refuses(booted):
    k.memblock_free_all()
    with pytest.raises(HandoverError):
        k.memblock_phys_alloc(4096, 4096)


def test_fallback_out_of_memory(booted):
    k.memblock_free_all()
    with pytest.warns(k.MemblockWarning):
        assert k.memblock_alloc(64 * MiB, 8) is None
    with pytest.warns(k.MemblockWarning), pytest.raises(MemblockPanic):
        k.memblock_alloc_or_panic(64 * MiB, 8)


def test_kzalloc_node_before_the_handover_refuses():
    k.reset()
    with pytest.raises(HandoverError):
        k.kzalloc_node(64)


@pytest.mark.parametrize("args", [("64", 8), (64.0, 8), (-1, 8), (True, 8)])
def test_fallback_refuses_bad_arguments_before_warning_or_taking_pages(booted, args):
    k.memblock_free_all()
    free = k.page_allocator().nr_free_pages()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no MemblockWarning first
        with pytest.raises((TypeError, ValueError)):
            k.memblock_alloc(*args)
    assert k.page_allocator().nr_free_pages() == free
