"""arena.render: the compressed axis, who-reserved-what, the terminal map and the SVG map."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from arena.memblock import Memblock, MemblockFlags
from arena.render import (
    Axis,
    CallerPiece,
    human_size,
    svg,
    text_map,
)
from arena.trace import parse, replay
from arena.trace_callers import callers_from_log, callers_from_ops

DATA = Path(__file__).parent / "data"
LOGS = sorted(DATA.glob("*.log"))
NS = "{http://www.w3.org/2000/svg}"
GiB, MiB = 1 << 30, 1 << 20


def two_node_memblock() -> Memblock:
    """4 GiB in the QEMU layout: node 0 [1 MiB, 2 GiB), node 1 [2 GiB, 3 GiB) + [4 GiB, 5 GiB)."""
    mb = Memblock(None)
    mb.add_node(0x100000, 2 * GiB - 0x100000, 0)
    mb.add_node(2 * GiB, GiB, 1)
    mb.add_node(4 * GiB, GiB, 1)
    mb.reserve(16 * MiB, 38 * MiB)
    mb.reserve(5 * GiB - 4096, 4096)
    mb.reserve(5 * GiB - 3 * 4096, 4096)
    return mb


def big_memblock(seed: int = 1) -> tuple[Memblock, list[CallerPiece]]:
    """64 GiB on 8 nodes with holes, NOMAP/MIRROR memory and >= 1000 reserved regions."""
    rnd = random.Random(seed)
    mb = Memblock(None)
    mb.allow_resize()
    pos = 0x1000
    for nid in range(8):
        end = pos + 8 * GiB - (0x1000 if nid == 0 else 0)
        while pos < end:
            size = min(rnd.choice([256, 512, 1024, 2048]) * MiB, end - pos)
            mb.add_node(pos, size, nid)
            pos += size
            if nid == 0 and pos == 2 * GiB:
                pos, end = 4 * GiB, end + 2 * GiB          # the PCI hole below 4 GiB
            elif rnd.random() < 0.3:
                gap = rnd.choice([2, 64, 256]) * MiB       # a small hole
                pos, end = pos + gap, end + gap
    regions = list(mb.memory.regions)
    for r in rnd.sample(regions, 2):
        mb.mark_nomap(r.base, r.size // 2)
    mb.mirrored_kernelcore = True
    mb.mark_mirror(regions[3].base, regions[3].size)
    callers = []
    names = [f"caller_{i}" for i in range(30)]
    while mb.reserved.cnt < 1000:
        r = rnd.choice(regions)
        size = int(2 ** rnd.uniform(6, 24))
        base = rnd.randrange(r.base, r.base + r.size - size) & ~63
        mb.reserve(base, size)
        callers.append(CallerPiece(base, size, rnd.choice(names)))
    return mb, callers


def parse_svg(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == NS + "svg"
    return root


def elements(root: ET.Element, tag: str, cls: str | None = None) -> list[ET.Element]:
    found = root.iter(NS + tag)
    return [e for e in found if cls is None or cls in (e.get("class") or "").split()]


def all_text(root: ET.Element) -> str:
    return "\n".join("".join(t.itertext()) for t in root.iter(NS + "text"))


# -- human_size and the axis ----------------------------------------------------------------------

@pytest.mark.parametrize("n, text", [(0, "0 B"), (73, "73 B"), (1024, "1 KiB"),
                                     (1536, "1.5 KiB"), (38 * MiB, "38 MiB"),
                                     (6 * GiB, "6 GiB"), (6 * GiB - 4096, "6 GiB"),  # one form: never "6.0"
                                     (1 << 40, "1 TiB")])
def test_human_size(n, text):
    assert human_size(n) == text


def test_axis_linear_without_holes():
    ax = Axis([(0x1000, 0x11000)], 100, 10)
    assert ax.x(0x1000) == 0 and ax.x(0x11000) == 100
    assert ax.x(0x9000) == pytest.approx(50)
    assert ax.x(0) == 0 and ax.x(1 << 40) == 100          # clamped
    assert ax.compressed_holes() == []


def test_axis_compresses_big_holes_and_keeps_small_ones():
    # 1 GiB of memory, a 2 GiB hole, 1 GiB of memory, a 4 KiB hole, 1 GiB.
    runs = [(0, GiB), (3 * GiB, 4 * GiB), (4 * GiB + 4096, 5 * GiB + 4096)]
    ax = Axis(runs, 1000, 40)
    holes = ax.compressed_holes()
    assert [(s, e) for s, e, _a, _b in holes] == [(GiB, 3 * GiB)]
    assert holes[0][3] - holes[0][2] == pytest.approx(40)
    # memory shares the rest at one scale
    widths = [x1 - x0 for _s, _e, x0, x1 in ax.runs()]
    assert widths[0] == pytest.approx(widths[1], rel=1e-6)
    assert sum(widths) + 40 == pytest.approx(1000, abs=0.01)
    # monotone, addresses inside the hole map into the break
    xs = [ax.x(a) for a in range(0, 5 * GiB, GiB // 8)]
    assert xs == sorted(xs)
    assert holes[0][2] < ax.x(2 * GiB) < holes[0][3]


def test_axis_caps_many_holes_to_a_quarter_of_the_width():
    runs = [(i * GiB, i * GiB + MiB) for i in range(100)]
    ax = Axis(runs, 1000, 40)
    total_gap = sum(x1 - x0 for _s, _e, x0, x1 in ax.compressed_holes())
    assert total_gap <= 250 + 1e-6
    assert ax.pieces[-1][3] == 1000


def test_axis_extends_to_lo_hi():
    ax = Axis([(GiB, 2 * GiB)], 100, 5, lo=0, hi=3 * GiB)
    assert ax.lo == 0 and ax.hi == 3 * GiB
    assert len(ax.compressed_holes()) == 2


def test_axis_bad_input():
    with pytest.raises(ValueError, match="width"):
        Axis([(0, 10)], 0, 1)
    with pytest.raises(ValueError, match="at least one"):
        Axis([], 100, 1)


# -- callers ------------------------------------------------------------------------------------------

LOG = """\
memblock_reserve: [0x0000000001000000-0x00000000035fffff] setup_arch+0x275/0xf80
memblock_reserve: [0x0000000000000000-0x00000000000fffff] setup_arch+0x74e/0xf80
memblock_alloc_try_nid: 4096 bytes align=0x40 nid=-1 from=0x0 max_addr=0x0 sparse_index_alloc+0x3b/0x60
memblock_reserve: [0x000000007fffb000-0x000000007fffbfff] memblock_alloc_internal+0x4e/0xc0
memblock_reserve: [0x0000000000098000-0x000000000009efff] reserve_real_mode+0x52/0x90
memblock_phys_free: [0x0000000001100000-0x00000000011fffff] free_initrd+0x1/0x2
"""


def test_callers_from_log_credits_requests_and_carves_frees():
    pieces = callers_from_log(LOG)
    assert pieces == [
        CallerPiece(0, 0x100000, "setup_arch"),               # the earlier name wins overlaps
        CallerPiece(0x1000000, 0x100000, "setup_arch"),
        CallerPiece(0x1200000, 0x2400000, "setup_arch"),      # the freed MiB is carved out
        CallerPiece(0x7FFFB000, 0x1000, "sparse_index_alloc"),  # the request's caller
    ]


def test_callers_from_ops_ignores_failed_requests_and_other_ops():
    log = ("memblock_add: [0x0-0xfffffff] e820__memblock_setup+0x6e/0xb0\n"
           "memblock_alloc_try_nid: 4096 bytes align=0x40 nid=-1 from=0x0 max_addr=0x0 x+0x1\n"
           "memblock_alloc_try_nid: 8192 bytes align=0x40 nid=-1 from=0x0 max_addr=0x0 y+0x1\n"
           "memblock_reserve: [0x0000000000002000-0x0000000000003fff] memblock_alloc_internal\n")
    assert callers_from_ops(parse(log)) == [CallerPiece(0x2000, 0x2000, "y")]


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_callers_cover_exactly_the_reserved_regions_of_a_replayed_log(log):
    report = replay(parse(log.read_text()))
    pieces = callers_from_ops(report.ops)
    covered = sorted((p.base, p.base + p.size) for p in pieces)
    merged: list[list[int]] = []
    for s, e in covered:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    reserved = []
    for r in report.memblock.reserved.regions:
        if r.size:
            if reserved and r.base == reserved[-1][1]:
                reserved[-1][1] = r.base + r.size
            else:
                reserved.append([r.base, r.base + r.size])
    assert merged == reserved
    assert all(p.caller and "+" not in p.caller for p in pieces)


# -- the terminal map ---------------------------------------------------------------------------------

def test_text_map_rows_per_node():
    text = text_map(two_node_memblock(), width=40)
    lines = text.splitlines()
    assert lines[0].startswith("memory map:")
    headers = [ln for ln in lines if re.match(r"node \d+:", ln)]
    assert [h.split(":")[0] for h in headers] == ["node 0", "node 1"]
    rows = [ln for ln in lines if ln.startswith("  |")]
    assert len(rows) == 2
    for row in rows:
        assert len(row) == 2 + 1 + 40 + 1 and row.endswith("|")
        assert set(row[3:-1]) <= set("#+. N")
    node0, node1 = rows[0][3:-1], rows[1][3:-1]
    assert "#" in node0 or "+" in node0                     # the kernel image
    assert node1.rstrip().endswith(("+", "#"))               # the reservations at the top
    assert " " in node1.strip()                              # the 1 GiB hole, compressed
    assert "holes 1 GiB" in headers[1]
    scale = lines[lines.index(rows[1]) + 1]
    assert "0x80000000" in scale and "0x13fffffff" in scale


def test_text_map_marks_nomap_and_full_reservations():
    mb = Memblock(None)
    mb.add_node(0, 64 * MiB, 0)
    mb.mark_nomap(0, 32 * MiB)
    mb.reserve(48 * MiB, 16 * MiB)
    row = [ln for ln in text_map(mb, width=16).splitlines() if ln.startswith("  |")][0][3:-1]
    assert row == "N" * 8 + "." * 4 + "#" * 4


def test_text_map_without_memory_and_bad_input():
    assert text_map(Memblock(None)) == "memory map: no memory"
    with pytest.raises(ValueError, match="width"):
        text_map(two_node_memblock(), width=7)
    with pytest.raises(TypeError, match="width"):
        text_map(two_node_memblock(), width=True)
    with pytest.raises(TypeError, match="Memblock"):
        text_map("not a memblock")


def test_text_map_nodes_of_unnoded_memory_count_as_node_0():
    mb = Memblock(None)
    mb.add(0, 16 * MiB)                 # nid MAX_NUMNODES until set_node
    assert "node 0:" in text_map(mb)


# -- the SVG --------------------------------------------------------------------------------------------

def test_svg_well_formed_with_lanes_legend_and_tooltips():
    mb = two_node_memblock()
    callers = [CallerPiece(16 * MiB, 38 * MiB, "early_reserve_memory")]
    root = parse_svg(svg(mb, callers=callers, title="two nodes"))
    assert root.find(NS + "title").text == "two nodes"
    groups = {g.get("id") for g in root.iter(NS + "g")}
    assert {"overview", "node-0", "node-1", "legend"} <= groups
    text = all_text(root)
    assert "early_reserve_memory: 38 MiB, 1" in text          # caller legend: total, count
    assert "free memory, node 0" in text and "free memory, node 1" in text
    assert "reserved, caller unknown" in text                 # the two pages at the top
    assert "1 GiB hole" in text
    memory = elements(root, "rect", "memory")
    assert len(memory) >= 2 * mb.memory.cnt                    # overview + lanes
    for r in elements(root, "rect", "reserved"):
        assert float(r.get("width")) >= 1.0                    # never thinner than a pixel
        assert r.find(NS + "title") is not None
    assert float(root.get("width")) == 1200


def test_svg_callouts_and_zoom_name_the_callers():
    mb = two_node_memblock()
    callers = [CallerPiece(16 * MiB, 38 * MiB, "early_reserve_memory")]
    top = 5 * GiB
    for i in range(12):
        base = top - (i + 1) * 4096
        mb.reserve(base, 4096)
        callers.append(CallerPiece(base, 4096, f"small_{i % 3}"))
    root = parse_svg(svg(mb, callers=callers))
    callouts = " ".join(e.text or "" for e in elements(root, "text", "callout"))
    assert "early_reserve_memory 38 MiB" in callouts
    zoom = [g for g in root.iter(NS + "g") if g.get("id") == "zoom"]
    assert len(zoom) == 1
    assert "Zoom" in all_text(zoom[0])
    inside = {(e.text or "") + "".join(c.tail or "" for c in e)   # the name, not its tooltip
              for e in elements(zoom[0], "text", "inside")}
    assert inside & {"small_0", "small_1", "small_2"}


def test_svg_flags_are_in_the_legend():
    mb = Memblock(None)
    mb.add_node(0, 256 * MiB, 0)
    mb.mark_nomap(0, 16 * MiB)
    mb.mark_hotplug(128 * MiB, 64 * MiB)
    text = all_text(parse_svg(svg(mb)))
    assert "NOMAP memory" in text and "HOTPLUG memory" in text
    assert "MIRROR" not in text


def test_svg_of_an_empty_memblock():
    root = parse_svg(svg(Memblock(None)))
    assert "no memory and no reservations" in all_text(root)


def test_svg_readable_for_64_gib_and_1000_regions(tmp_path):
    mb, callers = big_memblock()
    assert mb.reserved.cnt >= 1000 and mb.memory.cnt >= 20
    text = svg(mb, callers=callers, title="64 GiB, 8 nodes")
    root = parse_svg(text)
    assert len(text) < 3_000_000
    ids = {g.get("id") for g in root.iter(NS + "g")}
    assert {f"node-{n}" for n in range(8)} <= ids
    reserved = elements(root, "rect", "reserved")
    assert len(reserved) >= mb.reserved.cnt
    legend = all_text([g for g in root.iter(NS + "g") if g.get("id") == "legend"][0])
    assert "other callers" in legend                     # 30 callers, 16 colours
    assert "NOMAP" in legend and "MIRROR" in legend
    # the picture fits a screen width and a sensible height
    assert int(root.get("height")) < 1600
    (tmp_path / "big.svg").write_text(text)


def test_svg_of_every_replayed_log():
    for log in LOGS:
        report = replay(parse(log.read_text()))
        callers = callers_from_ops(report.ops)
        root = parse_svg(svg(report.memblock, callers=callers))
        assert callers, log.name
        biggest = max(callers, key=lambda c: c.size).caller
        assert biggest in all_text(root), (log.name, biggest)   # named in a callout/legend
        assert len(elements(root, "rect")) >= report.memblock.reserved.cnt


@pytest.mark.parametrize("kwargs, exc", [
    ({"width": 399}, ValueError), ({"width": 12.5}, TypeError), ({"width": True}, TypeError),
    ({"top_callers": 17}, ValueError), ({"top_callers": -1}, ValueError),
    ({"callouts": -1}, ValueError), ({"title": 3}, TypeError),
    ({"callers": "setup_arch"}, TypeError), ({"callers": [(1, 2)]}, TypeError),
    ({"callers": [(0, -1, "x")]}, ValueError), ({"callers": [(0, 1, 2)]}, TypeError),
])
def test_svg_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        svg(two_node_memblock(), **kwargs)


def test_svg_rejects_non_memblock():
    with pytest.raises(TypeError, match="Memblock"):
        svg(object())


def test_svg_does_not_change_the_memblock():
    mb = two_node_memblock()
    before = (list(mb.memory.regions), list(mb.reserved.regions))
    svg(mb)
    text_map(mb)
    assert (list(mb.memory.regions), list(mb.reserved.regions)) == before
    mb.check()


def test_flag_names_in_tooltips():
    mb = Memblock(None)
    mb.add_node(0, 64 * MiB, 0)
    mb.mark_nomap(0, 4 * MiB)
    tips = [t.text for t in parse_svg(svg(mb)).iter(NS + "title")]
    assert any(MemblockFlags.NOMAP.name in (t or "") for t in tips)
