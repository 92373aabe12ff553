"""Side-by-side equivalence: :class:`arena.memblock.Memblock` against the plain linear reference
:class:`arena.memblock_linear.LinearMemblock` (the kernel's loops, written straightforwardly).

Random operation sequences (add, add_node, reserve, reserve_kern, phys_free, remove, direction,
current limit, phys_alloc, phys_alloc_range, alloc_range_nid) run on both; after every step the
results, both region arrays (every region's base, size, flags and nid), ``cnt``, ``max`` and
``total_size`` must be identical. Small initial capacities make the arrays double (the doubled
array is itself placed by memblock and reserved), and addresses near ``PHYS_ADDR_MAX`` exercise
the capping. This is the test that keeps any fast path of ``Memblock`` bit-exact.
"""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arena.errors import MemblockBug, MemblockPanic
from arena.memblock import Memblock, MemblockWarning
from arena.memblock_linear import PHYS_ADDR_MAX, LinearMemblock
from bench.bench_memblock import build_fragmented

PAGE = 4096
MAX = PHYS_ADDR_MAX
FLAG_CHOICES = (0, 0, 0, 0x1, 0x2, 0x4, 0x8, 0x40)
NIDS = (-1, -1, 0, 1, 2, 3, 64, 99)   # 64 is MAX_NUMNODES: "no node" like -1 and 99
ALIGNS = (0, 1, 8, 64, 64, 4096, 4096, 8192, 48)

# -- strategies ---------------------------------------------------------------------------------

addr = st.one_of(
    st.builds(lambda p, o: p * PAGE + o, st.integers(0, 40), st.sampled_from((0, 0, 0, 64, 100))),
    st.sampled_from((MAX - 2 * PAGE, MAX - PAGE, MAX - 1, MAX)),
)
size = st.one_of(
    st.builds(lambda p, o: p * PAGE + o, st.integers(0, 10), st.sampled_from((0, 0, 0, 64, 100))),
    st.integers(1, 300),
    st.sampled_from((MAX, MAX // 2)),
)
limit = st.one_of(addr, st.sampled_from((0, 1, MAX)))
nid = st.sampled_from(NIDS)
align = st.sampled_from(ALIGNS)

op = st.one_of(
    st.tuples(st.just("add"), addr, size),
    st.tuples(st.just("add_node"), addr, size, st.integers(0, 3), st.sampled_from(FLAG_CHOICES)),
    st.tuples(st.sampled_from(("reserve", "reserve_kern", "phys_free", "remove")), addr, size),
    st.tuples(st.sampled_from(("reserve", "reserve_kern", "phys_free")), addr, size),
    st.tuples(st.just("set_bottom_up"), st.booleans()),
    st.tuples(st.just("set_current_limit"), limit),
    st.tuples(st.just("phys_alloc"), size, align),
    st.tuples(st.just("phys_alloc_range"), size, align, limit, limit),
    st.tuples(st.just("alloc_range_nid"), size, align, limit, limit, nid, st.booleans()),
)

# -- the comparison -----------------------------------------------------------------------------


def assert_same_state(mb: Memblock, ref: LinearMemblock, step: object) -> None:
    """Both arrays, region by region, plus cnt, max and total_size."""
    for name in ("memory", "reserved"):
        ours, theirs = getattr(mb, name), getattr(ref, name)
        assert list(ours.regions) == theirs.regions, f"{name} differs after {step!r}"
        assert (ours.cnt, ours.max, ours.total_size) == (theirs.cnt, theirs.max,
                                                          theirs.total_size), (name, step)
    mb.check()


def apply(obj: object, step: tuple) -> tuple[str, object]:
    """Run one operation: ``("ok", result)``, ``("panic", message)`` or ``("bug", None)`` (the
    kernel's BUG, e.g. no room left to reserve a doubled array; the texts differ)."""
    try:
        return "ok", getattr(obj, step[0])(*step[1:])
    except MemblockPanic as e:
        return "panic", str(e)
    except MemblockBug:
        return "bug", None


def run_side_by_side(ops: list[tuple], init_regions: int, resize: bool,
                     setup: list[tuple] = ()) -> int:
    """Apply ``setup`` then ``ops`` to both; compare after every step. Returns steps compared."""
    mb = Memblock(None, init_regions=init_regions)
    ref = LinearMemblock(init_regions=init_regions)
    if resize:
        mb.allow_resize()
        ref.allow_resize()
    steps = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemblockWarning)
        for step in [*setup, *ops]:
            ours, theirs = apply(mb, step), apply(ref, step)
            assert ours == theirs, f"{step!r}: Memblock gave {ours!r}, the reference {theirs!r}"
            steps += 1
            if ours[0] != "ok":   # the kernel stops here
                break
            assert_same_state(mb, ref, step)
    return steps


MEMORY = [("add", 0, 32 * PAGE), ("add_node", 34 * PAGE, 6 * PAGE, 1, 0)]


@given(ops=st.lists(op, max_size=60), init=st.sampled_from((4, 8, 128)),
       resize=st.sampled_from((True, True, True, False)))
def test_random_sequences(ops, init, resize):
    """Every result and both arrays agree after every step of a random sequence."""
    run_side_by_side(ops, init, resize, MEMORY)


@given(ops=st.lists(op, max_size=40))
def test_random_sequences_no_setup(ops):
    """Sequences that start from empty arrays (and may never add memory)."""
    run_side_by_side(ops, 8, True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_fragmented_sequences(seed):
    """Two thousand operations on a fragmented layout (hundreds of reserved regions, several
    doublings of both arrays), both directions and two nodes."""
    rnd = random.Random(seed)
    span = 2000 * PAGE
    setup = [("add_node", PAGE, span // 2, 0, 0), ("add_node", PAGE + span // 2, span // 2, 1, 0)]
    ops: list[tuple] = []
    for _ in range(2000):
        k = rnd.random()
        base = rnd.randrange(0, span + 4 * PAGE, 64)
        sz = rnd.choice((64, 128, 4096, 8192, rnd.randrange(1, 3 * PAGE)))
        if k < 0.35:
            ops.append((rnd.choice(("reserve", "reserve_kern")), base, sz))
        elif k < 0.55:
            ops.append(("phys_free", base, rnd.choice((sz, 8 * PAGE, 32 * PAGE))))
        elif k < 0.6:
            ops.append(("set_bottom_up", rnd.random() < 0.5))
        elif k < 0.62:
            ops.append(("remove", base, sz))
        elif k < 0.8:
            ops.append(("phys_alloc", sz, rnd.choice(ALIGNS)))
        else:
            ops.append(("alloc_range_nid", sz, rnd.choice(ALIGNS), rnd.choice((0, base)),
                        rnd.choice((0, base + 40 * PAGE, MAX)), rnd.choice(NIDS),
                        rnd.random() < 0.3))
    assert run_side_by_side(ops, 16, True, setup) == len(setup) + len(ops)


@pytest.mark.parametrize("n", [1, 10, 300])
def test_benchmark_layout_is_identical(n):
    """The fragmented layout of benchmark family 3 is the same in both, and each measured
    operation (scanning allocation, fitting allocation, reserve + free) gives the same results."""
    mb, ref, ops = build_fragmented(n, seed=n)
    assert mb.reserved.cnt == n
    assert_same_state(mb, ref, "build")
    for name, (do, undo) in ops.items():
        got = [do(mb), do(ref)]
        assert got[0] == got[1], name
        assert_same_state(mb, ref, name)
        assert undo(mb, got[0]) == undo(ref, got[1]) == 0
        assert_same_state(mb, ref, name)


def test_panic_without_resize():
    """Growing an array without allow_resize() panics in both, with the kernel's text; the
    fifth separate region is the first that does not fit four slots."""
    ops = [("reserve", i * 2 * PAGE, PAGE) for i in range(1, 10)]
    assert run_side_by_side(ops, 4, False) == 5
    ref = LinearMemblock(init_regions=4)
    for step in ops[:4]:
        getattr(ref, step[0])(*step[1:])
    with pytest.raises(MemblockPanic, match="cannot resize reserved array"):
        ref.reserve(*ops[4][1:])


def test_kernel_numbers_top_down_and_bottom_up():
    """Two of the kernel suite's simplest expectations, on the reference alone."""
    ref = LinearMemblock()
    ref.add(PAGE, 32 * 1024)
    assert ref.phys_alloc(2048, 64) == PAGE + 32 * 1024 - 2048
    ref.set_bottom_up(True)
    assert ref.phys_alloc(100, 64) == PAGE
    assert ref.reserved.regions == [(PAGE, 100, 0x20, -1), (PAGE + 32 * 1024 - 2048, 2048, 0x20, -1)]


@pytest.mark.parametrize("bad", [1.0, True, None, "4096", -1, 1 << 64])
@pytest.mark.parametrize("method", ["add", "reserve", "reserve_kern", "phys_free", "remove"])
def test_bad_input_changes_nothing(method, bad):
    ref = LinearMemblock()
    ref.add(PAGE, 16 * PAGE)
    ref.reserve(2 * PAGE, PAGE)
    before = (list(ref.memory.regions), list(ref.reserved.regions))
    err = ValueError if isinstance(bad, int) and not isinstance(bad, bool) else TypeError
    with pytest.raises(err):
        getattr(ref, method)(bad, PAGE)
    with pytest.raises(err):
        getattr(ref, method)(PAGE, bad)
    assert (ref.memory.regions, ref.reserved.regions) == before
    with pytest.raises(err):
        ref.alloc_range_nid(PAGE, bad, 0, 0, -1)
    with pytest.raises(TypeError):
        ref.add_node(PAGE, PAGE, 1.5)
    assert (ref.memory.regions, ref.reserved.regions) == before


@pytest.mark.parametrize("bottom_up", [False, True])
def test_doubling_below_the_pending_range_respects_current_limit(bottom_up):
    """A reservation above ``current_limit`` that makes ``reserved`` double: the new array is
    searched above the pending range (empty: above the limit), then in ``[0, min(start,
    limit))``."""
    setup = [("add", 0, 64 * PAGE), ("set_bottom_up", bottom_up), ("set_current_limit", 16 * PAGE)]
    ops = [("reserve", (2 + 3 * i) * PAGE, PAGE) for i in range(4)] + [("reserve", 40 * PAGE, 64)]
    assert run_side_by_side(ops, 4, True, setup) == len(setup) + len(ops)
    ref = LinearMemblock(init_regions=4)
    ref.allow_resize()
    for step in setup + ops:
        getattr(ref, step[0])(*step[1:])
    assert ref.reserved.max == 8
    array = [r for r in ref.reserved.regions if r[2] == 0x20]
    assert len(array) == 1 and array[0][0] + array[0][1] <= 16 * PAGE
