"""Red zones sized by the user (``Arena(debug=True, redzone=N)``) and the blame of a broken
canary: every kind of memory bug is caught and reported against the allocation that made it,
not the neighbour whose canary it happened to hit."""

from __future__ import annotations

import mmap
import re

import numpy as np
import pytest

from arena import Arena
from arena.debug import POISON_FREE, RED_ACTIVE, REDZONE, REDZONE_MIN
from arena.errors import CorruptionError, DoubleFreeError
from tests.arenas import arena_factory

SZ_1M = 1 << 20


@pytest.fixture
def make():
    yield from arena_factory(4 * SZ_1M, defer=True, debug=True, lifetime="manual")


def make_victim(a: Arena, n: int) -> np.ndarray:
    return a.alloc(n)


def make_writer(a: Arena, n: int) -> np.ndarray:
    return a.alloc(n)


def neighbours(a: Arena, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(writer, victim)``: two allocations whose blocks touch, the writer's block first by
    address (memblock places allocations top-down: the later one lies below)."""
    victim = make_victim(a, n)
    writer = make_writer(a, n)
    lo, hi = a.info(writer), a.info(victim)
    assert lo.phys + lo.reserved == hi.phys      # equal layouts: blocks touch
    return writer, victim


def overrun(v: np.ndarray, start: int, count: int, byte: int = 0x41) -> None:
    """The bug: write ``count`` bytes from ``start`` bytes past the end of ``v``, through the
    array itself (as a wrong stride or length would)."""
    wide = np.lib.stride_tricks.as_strided(v, (v.nbytes + start + count,))
    wide[v.nbytes + start:] = byte


def one_report(a: Arena) -> str:
    reports = a.check(repair=True)
    assert len(reports) == 1, reports
    assert a.check() == []                       # repaired
    return reports[0]


# -- the argument ------------------------------------------------------------------------------

@pytest.mark.parametrize("redzone, exc", [
    ("16", TypeError), (16.0, TypeError), (True, TypeError), (REDZONE_MIN - 1, ValueError),
    (-16, ValueError), (mmap.PAGESIZE + 1, ValueError),
])
def test_redzone_bad_input(redzone, exc):
    with pytest.raises(exc, match="redzone"):
        Arena(SZ_1M, debug=True, redzone=redzone)


@pytest.mark.parametrize("kwargs, exc", [
    ({"debug": "yes"}, TypeError), ({"debug": "guard", "guard": "middle"}, ValueError),
    ({"debug": "guard", "guard": 1}, TypeError),
])
def test_debug_and_guard_bad_input(kwargs, exc):
    with pytest.raises(exc):
        Arena(SZ_1M, **kwargs)


@pytest.mark.parametrize("redzone", [REDZONE_MIN, REDZONE, 100, 256, mmap.PAGESIZE])
def test_redzone_sizes_both_sides(make, redzone):
    a = make(redzone=redzone)
    for align in (1, 64):
        v = a.alloc(100, align=align)
        phys = a.info(v).phys
        assert a.physmem.read(phys - redzone, redzone) == bytes([RED_ACTIVE]) * redzone
        assert a.physmem.read(phys + 100, redzone) == bytes([RED_ACTIVE]) * redzone
        assert a.info(v).reserved >= 100 + 2 * redzone
        a.free(v)
    assert a.check() == []


def test_redzone_ignored_without_debug():
    with Arena(SZ_1M, debug=False, redzone=64) as a:
        assert not a.debug and a.guard is None


# -- overruns ----------------------------------------------------------------------------------

def test_overrun_8_bytes(make):
    a = make()
    writer, victim = neighbours(a)
    overrun(writer, 0, 8)
    report = one_report(a)
    assert report.startswith("overrun of the 64-byte allocation at phys "
                             f"{a.info(writer).phys:#x}")
    assert "8 byte(s) past its end were written" in report
    assert "in make_writer" in report and "make_victim" not in report


def test_overrun_200_bytes_past_a_16_byte_red_zone(make):
    a = make(redzone=16)
    writer, victim = neighbours(a)
    overrun(writer, 0, 200)
    report = one_report(a)
    assert report.startswith(f"overrun of the 64-byte allocation at phys "
                             f"{a.info(writer).phys:#x}")
    assert "200 byte(s) past its end were written" in report
    assert "overran its end by 200 bytes into the red zone of the 64-byte allocation at " \
           f"phys {a.info(victim).phys:#x}" in report
    assert "through its data (overwritten)" in report    # the neighbour's data was hit
    assert "underrun" not in report


def test_overrun_100_bytes_into_next_allocation_blames_the_writer(make):
    a = make()
    writer, victim = neighbours(a)
    overrun(writer, 0, 100)
    before = a.stats()
    with pytest.raises(CorruptionError) as ei:
        a.free(victim)                           # found at the victim's free: still the writer's
    assert a.stats() == before and a.owns(victim)
    (report,) = ei.value.reports
    assert report.startswith(f"overrun of the 64-byte allocation at phys "
                             f"{a.info(writer).phys:#x}")
    assert "100 byte(s) past its end" in report and "in make_writer" in report
    assert "before its start" not in report
    assert "into the red zone of the 64-byte allocation" in report


def test_write_far_past_the_end_landing_before_the_next_allocation(make):
    """A write 100 bytes past the end of an 80-byte allocation skips its own red zone and
    lands 12 bytes before the next allocation's start: it is the writer's overrun, not the
    neighbour's underrun."""
    a = make()
    victim = make_victim(a, 80)
    writer = make_writer(a, 80)
    assert a.info(writer).phys + 192 == a.info(victim).phys
    overrun(writer, 100, 1)
    report = one_report(a)
    assert report.startswith(f"overrun of the 80-byte allocation at phys "
                             f"{a.info(writer).phys:#x}")
    assert "101 byte(s) past its end" in report and "at +100" in report
    assert "in make_writer" in report
    assert "written 12 bytes before its start" in report     # the other reading, named


def test_overrun_wider_than_the_red_zone_with_a_larger_red_zone(make):
    a = make(redzone=256)
    writer, victim = neighbours(a)
    overrun(writer, 0, 200)
    report = one_report(a)
    assert "200 byte(s) past its end" in report and "into" not in report


def test_overrun_into_a_freed_neighbour_is_no_write_after_free(make):
    a = make()
    writer, victim = neighbours(a)
    a.free(victim)
    overrun(writer, 0, 150)
    report = one_report(a)
    assert report.startswith("overrun of the 64-byte allocation")
    assert "in make_writer" in report and "write after free" not in report
    assert "freed 64-byte allocation" in report


# -- underruns, writes after free, double frees ------------------------------------------------

def test_underrun_blames_the_allocation_itself(make):
    a = make()
    writer, victim = neighbours(a)
    under = np.lib.stride_tricks.as_strided(victim[4:], (2,), (-5,))
    under[1] = 1                                 # victim[-1]
    with pytest.raises(CorruptionError) as ei:
        a.free(victim)
    (report,) = ei.value.reports
    assert report.startswith(f"underrun of the 64-byte allocation at phys "
                             f"{a.info(victim).phys:#x}")
    assert "1 byte(s) before its start" in report and "in make_victim" in report
    a.check(repair=True)


def test_write_after_free(make):
    a = make()
    v = make_victim(a, 200)
    a.free(v)
    v[5:9] = 7
    report = one_report(a)
    assert report.startswith("write after free to the 200-byte allocation")
    assert "offsets 5 .. 8" in report and f"poison {POISON_FREE:#04x}" in report
    assert re.search(r"freed at:\n +\S+test_arena_redzones.py:\d+ in test_write_after_free",
                     report)


def test_double_free_names_the_first_free(make):
    a = make()
    v = make_victim(a, 10)
    a.free(v)
    with pytest.raises(DoubleFreeError, match=r"already freed \(at .*in "
                                              r"test_double_free_names_the_first_free\)"):
        a.free(v)


def test_clean_neighbours_stay_quiet(make):
    a = make(redzone=32)
    views = [a.alloc(n) for n in range(1, 300, 7)]
    for v in views:
        v[:] = 0xFF                              # every byte of every allocation: fine
    assert a.check() == []
    for v in views[::2]:
        a.free(v)
    assert a.check() == []
    for v in views[1::2]:
        a.free(v)


def test_overrun_through_two_neighbours_is_one_report(make):
    a = make()
    far = make_victim(a, 64)
    victim = make_victim(a, 64)
    writer = make_writer(a, 64)
    assert a.info(writer).phys + 192 == a.info(victim).phys == a.info(far).phys - 192
    overrun(writer, 0, 400)                      # to 16 bytes into far's end red zone
    report = one_report(a)
    assert report.startswith(f"overrun of the 64-byte allocation at phys "
                             f"{a.info(writer).phys:#x}")
    assert "400 byte(s) past its end" in report
    assert report.count("through its data (overwritten) into its end red zone") == 2
    assert f"phys {a.info(victim).phys:#x}" in report and f"phys {a.info(far).phys:#x}" in report


def test_overrun_ending_in_the_neighbours_data_says_at_least(make):
    a = make()
    writer, victim = neighbours(a)
    overrun(writer, 0, 138)                      # its red zone, the victim's, 10 data bytes
    report = one_report(a)
    assert report.startswith(f"overrun of the 64-byte allocation at phys "
                             f"{a.info(writer).phys:#x}")
    assert "at least 128 byte(s) past its end" in report
    assert "at least up to its data, which it may have overwritten" in report
    assert victim[:10].tolist() == [0x41] * 10 and not victim[10:].any()
