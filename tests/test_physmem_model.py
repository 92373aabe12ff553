"""Model-based tests of arena.physmem: contents and the "possibly written" record against a
plain bytearray model, step by step."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
from hypothesis import given
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from arena.physmem import PAGE_SIZE, PhysicalMemory

PAGES = 24
SIZE = PAGES * PAGE_SIZE
BASE = 7 * PAGE_SIZE

offsets = st.integers(0, SIZE - 1)


def _range(draw_off: int, length: int) -> tuple[int, int]:
    length = max(1, min(length, SIZE - draw_off))
    return BASE + draw_off, length


class PhysMemMachine(RuleBasedStateMachine):
    """Drive fill/zero/view writes/release and compare every byte with a bytearray."""

    def __init__(self) -> None:
        super().__init__()
        self.pm = PhysicalMemory(SIZE, phys_base=BASE)
        self.model = bytearray(SIZE)

    @rule(off=offsets, length=st.integers(1, 3 * PAGE_SIZE), byte=st.integers(0, 255))
    def fill(self, off, length, byte):
        phys, size = _range(off, length)
        self.pm.fill(phys, size, byte)
        self.model[phys - BASE:phys - BASE + size] = bytes([byte]) * size

    @rule(off=offsets, length=st.integers(1, 3 * PAGE_SIZE))
    def zero(self, off, length):
        phys, size = _range(off, length)
        self.pm.zero(phys, size)
        self.model[phys - BASE:phys - BASE + size] = bytes(size)

    @rule(off=offsets, length=st.integers(1, 2 * PAGE_SIZE), seed=st.integers(1, 250))
    def write_view(self, off, length, seed):
        phys, size = _range(off, length)
        data = ((np.arange(size) + seed) % 251 + 1).astype(np.uint8).tobytes()   # never zero
        v = self.pm.view(phys, size)
        v[:] = memoryview(data)
        del v
        self.model[phys - BASE:phys - BASE + size] = data

    @rule(page=st.integers(0, PAGES - 1), npages=st.integers(1, 4))
    def release(self, page, npages):
        npages = min(npages, PAGES - page)
        self.pm.release(BASE + page * PAGE_SIZE, npages * PAGE_SIZE)
        s = page * PAGE_SIZE
        self.model[s:s + npages * PAGE_SIZE] = bytes(npages * PAGE_SIZE)

    @rule(off=offsets, length=st.integers(1, SIZE))
    def read_part(self, off, length):
        phys, size = _range(off, length)
        assert self.pm.read(phys, size) == bytes(self.model[phys - BASE:phys - BASE + size])

    @invariant()
    def matches_model(self):
        self.pm.check()
        assert self.pm.read(BASE, SIZE) == bytes(self.model)
        # every non-zero byte lies in the "possibly written" record (else zero() would miss it)
        w = self.pm._written
        covered = np.zeros(SIZE, bool)
        for a, b in zip(w[::2], w[1::2], strict=True):
            covered[a:b] = True
        assert covered[np.frombuffer(self.model, np.uint8) != 0].all()

    def teardown(self):
        self.pm.close()   # every view was deleted: must succeed without a gc pass


TestPhysMemModel = PhysMemMachine.TestCase


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.integers(1, 12)), max_size=40))
def test_written_record_is_a_page_set(ops):
    """The interval record equals a set of pages under any mark/unmark sequence."""
    pm = PhysicalMemory(48 * PAGE_SIZE)
    model: set[int] = set()
    for mark, page, n in ops:
        s, e = page * PAGE_SIZE, min(48, page + n) * PAGE_SIZE
        if mark:
            pm._mark_written(s, e)
            model |= set(range(page, min(48, page + n)))
        else:
            pm._unmark_written(s, e)
            model -= set(range(page, min(48, page + n)))
        pm.check()
        w = pm._written
        got = {p for a, b in zip(w[::2], w[1::2], strict=True)
               for p in range(a // PAGE_SIZE, b // PAGE_SIZE)}
        assert got == model
        # minimal: no two intervals touch
        assert all(w[i] < w[i + 1] for i in range(len(w) - 1))
        pieces = pm._written_pieces(5 * PAGE_SIZE + 7, 30 * PAGE_SIZE + 3)
        want = {p for p in model if 5 <= p <= 30}
        assert {q // PAGE_SIZE for a, b in pieces for q in range(a, b)} == want
    pm.close()


def test_mark_unaligned_rounds_out_to_pages():
    pm = PhysicalMemory(8 * PAGE_SIZE)
    pm._mark_written(PAGE_SIZE + 5, 2 * PAGE_SIZE + 1)
    assert pm._written == [PAGE_SIZE, 3 * PAGE_SIZE]
    pm._mark_written(3 * PAGE_SIZE, 4 * PAGE_SIZE)           # adjacent: merged
    assert pm._written == [PAGE_SIZE, 4 * PAGE_SIZE]
    pm._unmark_written(2 * PAGE_SIZE, 3 * PAGE_SIZE)          # hole in the middle
    assert pm._written == [PAGE_SIZE, 2 * PAGE_SIZE, 3 * PAGE_SIZE, 4 * PAGE_SIZE]
    pm.close()
