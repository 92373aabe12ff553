"""The package's shape: memblock's storage / index / linear-walk modules and their API, the
public calls trace uses, one home per concept (exceptions, invariant error, constants, no
``assert`` in library code) and the typed seams.
"""

from __future__ import annotations

import ast
import logging
import random
import subprocess
import sys
from pathlib import Path

import pytest

import arena
from arena.buddy import BuddyAllocator, BuddyBug
from arena.constants import NUMA_NO_NODE, RSRV_KERN, MemblockFlags, round_up, round_up_wrap
from arena.errors import (
    InvariantError,
    InvariantViolation,
    KernelBug,
    MemblockBug,
    MemblockWarning,
)
from arena.memblock import Memblock
from arena.memblock_index import highest_fit, lowest_fit
from arena.memblock_linear import LinearMemblock, find_range_bottom_up, find_range_top_down
from arena.physmem import PhysicalMemory
from arena.protocols import PageSink, PhysMemory

PKG = Path(arena.__file__).parent
MASK = (1 << 64) - 1


def _modules() -> list[Path]:
    return sorted(PKG.glob("*.py"))


# -- memblock's modules --------------------------------------------------------------------------

def _fragmented(seed: int, n: int = 40) -> Memblock:
    rnd = random.Random(seed)
    mb = Memblock(None, init_regions=256)
    mb.add(1 << 30, 1 << 24)
    base = (1 << 30) + 0x10000
    for _ in range(n):
        size = rnd.randrange(0x40, 0x3000, 0x40)
        mb.reserve(base, size)
        base += size + rnd.randrange(0x40, 0x4000, 0x40)
    mb.memory._cmax = mb.reserved._cmax = 4   # many chunks: the index's chunk bounds matter
    return mb


@pytest.mark.parametrize("seed", range(6))
def test_index_fits_equal_the_linear_walk(seed):
    """highest_fit / lowest_fit over the chunk bounds give the kernel walk's first fit."""
    mb = _fragmented(seed)
    lo, hi = 1 << 30, (1 << 30) + (1 << 24)
    rnd = random.Random(seed)
    for _ in range(60):
        size = rnd.choice([0x40, 0x100, 0x1000, 0x2000, 0x3000, 0x5000])
        align = rnd.choice([0x40, 0x1000, 0x4000])
        a = rnd.randrange(lo, hi - 0x1000, 0x40)
        b = rnd.randrange(a + 0x40, hi + 1, 0x40)
        free = list(mb.for_each_free_mem_range())
        want_down = find_range_top_down(reversed(free), a, b, size, align)
        want_up = find_range_bottom_up(free, a, b, size, align)
        assert highest_fit(mb.reserved, a, b, size, ~(align - 1) & MASK) == want_down
        assert lowest_fit(mb.reserved, a, b, size, align - 1) == want_up


def test_window_commit_is_the_store_api():
    """Open a window, change it in place, commit it: the array is what the kernel would have."""
    mb = Memblock(None)
    mb.add(0x100000, 0x100000)
    mb.reserve(0x110000, 0x1000)
    mb.reserve(0x130000, 0x1000)
    t = mb.reserved
    w = t.window(0x120000, 0x121000)
    assert (w.count(), w.index(w.i0)) == (2, 1)
    w.insert(w.i0, 0x120000, 0x1000, NUMA_NO_NODE, 0)
    t.total_size += 0x1000
    w.commit()
    assert [(r.base, r.size) for r in t.regions] == [(0x110000, 0x1000), (0x120000, 0x1000),
                                                      (0x130000, 0x1000)]
    mb.check()
    assert t.containing(0x120800) == (0x120000, 0x1000, 0, NUMA_NO_NODE)
    assert t.containing(0x121000) is None
    assert t.overlaps(0x120fff, 0x121001) and not t.overlaps(0x121000, 0x130000)
    assert (t.first_base(), t.last_end()) == (0x110000, 0x131000)


@pytest.mark.parametrize("seed", range(3))
def test_store_walks_match_the_region_list(seed):
    """last_below / first_ending_above (the walks of the search) agree with a plain scan of
    the regions, across chunk boundaries."""
    mb = _fragmented(seed, 30)
    rows = [(r.base, r.end, int(r.flags), r.nid) for r in mb.reserved.regions]
    mb.reserved._cmax = 4
    mb.reserved.load(*map(list, zip(*[(b, e - b, f, n) for b, e, f, n in rows], strict=True)))
    assert len(mb.reserved._cb) > 5
    rnd = random.Random(seed)
    probes = [0, rows[0][0], rows[-1][1], MASK] + [rnd.randrange(rows[0][0] - 0x1000,
                                                                 rows[-1][1] + 0x1000)
                                                   for _ in range(300)]
    probes += [b for b, *_ in rows] + [e for _, e, *_ in rows]
    for a in probes:
        below = [r for r in rows if r[0] < a]
        above = [r for r in rows if r[1] > a]
        assert mb.reserved.last_below(a) == (below[-1] if below else None)
        assert mb.reserved.first_ending_above(a) == (above[0] if above else None)


#: The modules holding Memblock's methods: the class and its parts (mixins).
MEMBLOCK_PARTS = ("memblock.py", "memblock_regions.py", "memblock_query.py", "memblock_alloc.py",
                  "memblock_dump.py", "memblock_handover.py")


@pytest.mark.parametrize("name", MEMBLOCK_PARTS)
def test_memblock_reaches_into_no_other_class_private_fields(name):
    """Memblock's modules use the store and the index only through their API (``x._y`` only on
    ``self``: the parts are Memblock)."""
    tree = ast.parse((PKG / name).read_text())
    bad = sorted({f"{ast.unparse(n.value)}.{n.attr}" for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and n.attr.startswith("_")
                  and not n.attr.startswith("__")
                  and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "sys"))})
    assert bad == [], bad


def test_memblock_is_composed_of_its_parts():
    """Every module of MEMBLOCK_PARTS gives Memblock its methods (and no other module does),
    and the debug lines skip the frames of every part when they name their caller."""
    from arena import memblock_dump

    parts = [k for k in Memblock.__mro__ if k is not object]
    assert sorted(Path(sys.modules[k.__module__].__file__).name for k in parts) == \
        sorted(MEMBLOCK_PARTS)
    assert {str(PKG / n) for n in MEMBLOCK_PARTS} <= memblock_dump._SKIP_FILES


@pytest.mark.parametrize("cls", [Memblock, PhysicalMemory, arena.Arena],
                         ids=lambda c: c.__name__)
def test_parts_define_each_name_once(cls):
    """A class split into parts (mixins) defines each method and attribute in one part only:
    a second definition would silently shadow the first through the method resolution
    order."""
    seen: dict[str, str] = {}
    for k in cls.__mro__:
        if k is object:
            continue
        for name in vars(k):
            if not (name.startswith("__") and name.endswith("__")):
                assert name not in seen, f"{name} in {k.__name__} and {seen[name]}"
                seen[name] = k.__name__


def test_no_module_exceeds_1000_lines():
    """A reader holds a module in their head: none is longer than 1,000 lines (no exceptions)."""
    allowed: dict[str, int] = {}     # justified exceptions would be listed here, with a reason
    long = {str(p.relative_to(PKG)): n for p in sorted(PKG.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > allowed.get(p.name, 1000)}
    assert long == {}, long


def test_one_linear_reference():
    """The kernel's walk exists once: Memblock's reference path, LinearMemblock and the soak's
    model all call arena.memblock_linear; bench has no copy."""
    old = PKG.parent / "bench" / "linear_ref.py"     # an alias module for old imports
    if old.exists():
        tree = ast.parse(old.read_text())
        assert not [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    for name in ("memblock_alloc.py", "soak_models.py"):
        text = (PKG / name).read_text()
        assert "find_range_top_down(" in text and "find_range_bottom_up(" in text, name
    mb, ref = Memblock(None), LinearMemblock()
    for o in (mb, ref):
        o.add(0x100000, 0x400000)
        o.reserve(0x200000, 0x1000)
    mb._fast = False
    assert mb.phys_alloc(0x1000, 0x1000) == ref.phys_alloc(0x1000, 0x1000) == 0x4FF000


# -- the public calls trace needs ------------------------------------------------------------------

def test_reserve_node_is_dunder_memblock_reserve(caplog):
    mb = Memblock(None)
    caplog.set_level(logging.INFO, logger="arena.memblock")
    assert mb.reserve_node(0x1000, 0x1000, 3, MemblockFlags.RSRV_KERN) == 0
    r = mb.reserved.regions[0]
    assert (r.base, r.size, int(r.flags), r.nid) == (0x1000, 0x1000, RSRV_KERN, 3)
    assert "__memblock_reserve: [0x0000000000001000-0x0000000000001fff] nid=3 flags=20" \
        in caplog.text


def test_reserve_node_refuses_bad_flags_without_change():
    mb = Memblock(None)
    mb.reserve(0x1000, 0x1000)
    before = mb.dump_all(log=False)
    with pytest.raises(ValueError):
        mb.reserve_node(0x3000, 0x1000, 0, 0x80)
    assert mb.dump_all(log=False) == before


@pytest.mark.parametrize("min_addr", [0, 0x180000, 0x7F0000])
def test_alloc_internal_chooses_what_alloc_try_nid_does(min_addr):
    pm = PhysicalMemory(1 << 23, phys_base=1 << 20)
    try:
        a, b = Memblock(pm), Memblock(pm)
        for m in (a, b):
            m.add(1 << 20, 1 << 23)
            m.reserve(0x500000, 0x10000)
            m.set_current_limit(0x600000)
        view = a.alloc_try_nid(0x3000, 0x1000, min_addr, MASK, NUMA_NO_NODE)
        got = b.alloc_internal(0x3000, 0x1000, min_addr, MASK, NUMA_NO_NODE)
        assert view is not None and got == a.virt_to_phys(view)
        assert list(a.reserved.regions) == list(b.reserved.regions)
        del view
    finally:
        import gc

        gc.collect()
        pm.close()


def test_trace_uses_only_public_memblock_calls():
    for path in PKG.glob("trace*.py"):
        text = path.read_text()
        assert "mb._" not in text and "._reserve(" not in text, path.name


# -- one home per concept ----------------------------------------------------------------------------

def test_every_exception_class_lives_in_errors():
    for path in _modules():
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                assert not any(b.endswith(("Error", "Exception", "Warning", "Bug"))
                               for b in bases), f"{path.name}: class {node.name}{bases}"


def test_old_exception_names_still_import_from_their_old_modules():
    import arena.buddy
    import arena.memblock
    import arena.soak

    assert arena.buddy.BuddyBug is BuddyBug
    assert arena.memblock.MemblockWarning is MemblockWarning
    assert arena.soak.InvariantViolation is InvariantViolation
    assert arena.soak.KernelBug is KernelBug
    for cls in (MemblockBug, BuddyBug, InvariantViolation):
        assert issubclass(cls, InvariantError)
    assert issubclass(InvariantError, AssertionError)   # callers that caught that still do


def test_no_assert_statement_in_library_code():
    for path in _modules():
        tree = ast.parse(path.read_text())
        lines = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
        assert not lines, f"{path.name}: assert at lines {lines}"


def test_shared_constants_defined_once():
    names = {"NUMA_NO_NODE", "HOTPLUG", "MIRROR", "NOMAP", "RSRV_KERN", "KHO_SCRATCH",
             "_HOTPLUG", "_NOMAP", "_RSRV_KERN", "_round_up", "round_up"}
    seen: dict[str, list[str]] = {}
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            targets = ([t.id for t in node.targets if isinstance(t, ast.Name)]
                       if isinstance(node, ast.Assign) else
                       [node.name] if isinstance(node, ast.FunctionDef) else [])
            for name in targets:
                if name in names:
                    seen.setdefault(name, []).append(path.name)
    assert all(files == ["constants.py"] for files in seen.values()), seen
    assert round_up(0x1001, 0x1000) == 0x2000 and round_up_wrap(MASK, 0x1000, MASK) == 0


def test_every_check_raises_the_one_invariant_error():
    mb = Memblock(None)
    mb.add(0x100000, 0x100000)
    mb.memory._size[0] = 0        # a raw write, as into the kernel's array
    with pytest.raises(InvariantError, match="size 0"):
        mb.check()
    code = ("import arena.physmem as p\n"
            "pm = p.PhysicalMemory(1 << 20)\n"
            "pm._written.append(5)\n"
            "try:\n"
            "    pm.check()\n"
            "except p.InvariantError as e:\n"
            "    print('InvariantError')\n")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.stdout.strip() == "InvariantError", out.stderr


# -- typed seams ---------------------------------------------------------------------------------------

def test_protocols_describe_the_real_classes():
    pm = PhysicalMemory(1 << 20)
    try:
        assert isinstance(pm, PhysMemory)
        assert isinstance(BuddyAllocator(pm), PageSink)
        assert not isinstance(object(), PhysMemory) and not isinstance(object(), PageSink)
        with pytest.raises(TypeError, match="PhysicalMemory"):
            Memblock(object())  # type: ignore[arg-type]
        mb = Memblock(None)
        with pytest.raises(TypeError, match="boot_free"):
            mb.free_all(object())  # type: ignore[arg-type]
    finally:
        pm.close()


def test_mypy_is_strict_for_the_package():
    text = (PKG.parent / "pyproject.toml").read_text()
    assert "disallow_untyped_defs = true" in text
