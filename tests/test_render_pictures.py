"""Every SVG picture the project writes, checked as a reader would look at it.

Each picture (the demo's, ``map --svg`` and ``replay --svg`` of every log in ``tests/data/``,
a hand-made log with holes of every width, the change pictures) must be well-formed XML with a
``<title>`` on every segment, hole and lane; tick labels on round addresses (multiples of the
axis's power-of-two step) and the lanes' exact ends written apart (smaller, bracketed); every
hole at least 3 px wide hatched and labelled with its size; every small segment of the zoomed
lane labelled; caller colours from the colour-blind-safe palette in order of size.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from arena.__main__ import main
from arena.demo import Machine, boot
from arena.memblock import Memblock
from arena.render import CallerPiece, human_size, svg
from arena.render_axis import Axis, round_ticks
from arena.render_draw import HOLE_MIN_PX, fan, text_w
from arena.render_palette import CALLER_FILL, OKABE_ITO, caller_colours
from arena.trace import parse, replay
from arena.trace_callers import callers_from_ops

DATA = Path(__file__).parent / "data"
LOGS = sorted(DATA.glob("*.log"))
NS = "{http://www.w3.org/2000/svg}"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
RANGE = re.compile(r"\[(0x[0-9a-f]+)-(0x[0-9a-f]+)\]")

#: Hole widths of the hand-made log: from a page to 1 GiB.
HOLE_WIDTHS = [4 * KiB, 64 * KiB, 1 * MiB, 2 * MiB, 8 * MiB, 20 * MiB, 24 * MiB, 32 * MiB,
               64 * MiB, 256 * MiB, 1 * GiB]


def holes_log() -> str:
    """A ``memblock=debug`` log: 12 banks of 64 MiB, separated by holes of every width, a
    reservation in each bank and a few small allocations."""
    lines, base = [], 0x10000000
    for i, hole in enumerate(HOLE_WIDTHS + [0]):
        end = base + 64 * MiB - 1
        lines.append(f"memblock_add: [{base:#010x}-{end:#010x}] setup_machine+0x{i:x}/0x80")
        lines.append(f"memblock_reserve: [{base + MiB:#010x}-{base + (2 + i) * MiB - 1:#010x}] "
                     f"bank_init_{i % 4}+0x1/0x2")
        base = end + 1 + hole
    for i in range(6):
        lines.append(f"memblock_alloc_try_nid: {64 << i} bytes align=0x40 nid=-1 from=0x0 "
                     f"max_addr=0x0 small_user_{i % 3}+0x1/0x2")
        top = base - (i + 1) * 4 * KiB
        lines.append(f"memblock_reserve: [{top:#010x}-{top + (64 << i) - 1:#010x}] "
                     f"memblock_alloc_range_nid+0x1/0x2")
    return "\n".join(lines) + "\n"


# -- the checks ----------------------------------------------------------------------------------

def classes(e: ET.Element) -> set[str]:
    return set((e.get("class") or "").split())


def shown(t: ET.Element) -> str:
    """The visible text of a ``<text>`` element (without its tooltip)."""
    return (t.text or "") + "".join(c.tail or "" for c in t)


def title_of(e: ET.Element) -> str:
    t = e.find(NS + "title")
    return "" if t is None else (t.text or "")


def rects(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(NS + "rect") if cls in classes(e)]


def check_tooltips(root: ET.Element) -> None:
    """A ``<title>`` on every segment, hole and lane, holes naming their size."""
    for cls in ("memory", "reserved", "hole", "lane"):
        for r in rects(root, cls):
            assert title_of(r), f"{cls} rect without a tooltip: {ET.tostring(r)[:120]!r}"
    for r in rects(root, "hole"):
        t = title_of(r)
        s, e = (int(v, 16) for v in RANGE.search(t).groups())
        assert human_size(e + 1 - s) in t


def check_ticks(root: ET.Element) -> int:
    """Tick labels are multiples of their group's power-of-two step (>= 4 KiB); the lanes'
    ends are bracketed, smaller and not ticks. Returns the number of ticks."""
    count = 0
    for grp in root.iter(NS + "g"):
        if "ticks" not in classes(grp):
            continue
        step = int(grp.get("data-step"), 16)
        assert step >= 4096 and step & (step - 1) == 0
        ends = [t for t in grp.iter(NS + "text") if "lane-end" in classes(t)]
        ticks = [t for t in grp.iter(NS + "text") if "tick" in classes(t)]
        assert len(ends) == 2
        assert ends[0].text.startswith("[") and ends[1].text.endswith("]")
        for t in ticks:
            assert int(t.text, 16) % step == 0, f"{t.text} is not a multiple of {step:#x}"
            assert float(t.get("font-size")) > float(ends[0].get("font-size"))
        count += len(ticks)
    return count


def check_holes(root: ET.Element) -> int:
    """Every hole at least HOLE_MIN_PX wide is hatched and has a bracket spanning it with its
    size as label (or a number whose key gives the size). Returns the number checked."""
    marks = []
    for grp in root.iter(NS + "g"):
        if "hole-mark" in classes(grp):
            label = "".join(t.text or "" for t in grp.iter(NS + "text"))
            marks.append((float(grp.get("data-x0")), float(grp.get("data-x1")), label))
    keys = " ".join(t.text or "" for t in root.iter(NS + "text") if "hole-key" in classes(t))
    checked = 0
    for r in rects(root, "hole"):
        x, w = float(r.get("x")), float(r.get("width"))
        if w < HOLE_MIN_PX:
            continue
        assert r.get("fill") == "url(#hole)"
        s, e = (int(v, 16) for v in RANGE.search(title_of(r)).groups())
        size = human_size(e + 1 - s)
        found = [m for m in marks if abs(m[0] - x) < 0.03 and abs(m[1] - (x + w)) < 0.03]
        assert found, f"hole {title_of(r)} ({w:.1f} px) has no label"
        label = found[0][2]
        assert label.startswith(size) or f"{label}: {size} hole" in keys, (label, size)
        checked += 1
    return checked


def check_zoom_labels(root: ET.Element) -> None:
    """In the zoomed lane, every reserved segment too narrow for its name inside is covered
    by a labelled range (label tooltips give the ranges)."""
    zoom = [g for g in root.iter(NS + "g") if g.get("id") == "zoom"]
    if not zoom:
        return
    labelled = []
    for t in zoom[0].iter(NS + "text"):
        if "segment-label" in classes(t) or "group" in classes(t):
            tip = title_of(t)
            s, e = (int(v, 16) for v in RANGE.search(tip).groups())
            labelled.append((s, e))
            assert shown(t)
    lane = [r for r in rects(zoom[0], "lane")][0]
    lo, hi = (int(v, 16) for v in RANGE.search(title_of(lane)).groups())
    for r in rects(zoom[0], "caller"):
        tip = title_of(r)
        name = tip.split(":", 1)[0]
        if float(r.get("width")) >= text_w(name, 10) + 8:
            continue
        s, e = (int(v, 16) for v in RANGE.search(tip).groups())
        s, e = max(s, lo), min(e, hi)
        if s > e:
            continue
        assert any(a <= s and e <= b for a, b in labelled), f"unlabelled small segment {tip}"


def check_picture(text: str) -> ET.Element:
    """All checks on one SVG text; returns its root."""
    root = ET.fromstring(text)
    assert root.tag == NS + "svg"
    check_tooltips(root)
    check_ticks(root)
    check_holes(root)
    check_zoom_labels(root)
    return root


# -- every picture the project writes ------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_svg() -> str:
    with boot(Machine(memory="6 GiB", nodes=2)) as b:
        return svg(b.memblock, callers=b.callers(), title="demo")


def test_the_demo_picture(demo_svg):
    root = check_picture(demo_svg)
    assert check_ticks(root) >= 10
    zoom = [g for g in root.iter(NS + "g") if g.get("id") == "zoom"][0]
    assert [t for t in zoom.iter(NS + "text") if "segment-label" in classes(t)]


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_map_and_replay_pictures_of_each_log(log, tmp_path, capsys):
    for argv in (["map", str(log)], ["replay", str(log)]):
        path = tmp_path / f"{argv[0]}.svg"
        assert main([*argv, "--svg", str(path)]) in (0, 1)
        check_picture(path.read_text())
    capsys.readouterr()


def test_demo_command_picture(tmp_path, capsys):
    path = tmp_path / "demo.svg"
    assert main(["demo", "--memory", "1G", "-q", "--svg", str(path)]) == 0
    check_picture(path.read_text())
    capsys.readouterr()


def test_holes_of_every_width_are_hatched_and_labelled():
    report = replay(parse(holes_log()))
    text = svg(report.memblock, callers=callers_from_ops(report.ops), title="holes")
    root = check_picture(text)
    # 11 holes on the node lane and the overview; at this scale (1 px ~ 0.7 MiB) the holes of
    # 8 MiB and more are at least 3 px wide, so labelled on both.
    assert check_holes(root) >= 2 * sum(1 for w in HOLE_WIDTHS if w >= 8 * MiB)
    assert len(rects(root, "hole")) >= 2 * len(HOLE_WIDTHS)   # narrower ones: tooltips only
    labels = {t.text for t in root.iter(NS + "text") if "hole-label" in classes(t)}
    for w in (20 * MiB, 24 * MiB, 32 * MiB, 64 * MiB, 256 * MiB, GiB):
        assert f"{human_size(w)} hole" in labels or human_size(w) in labels


def test_arm_log_holes_of_20_to_32_mib_are_labelled():
    log = DATA / "arm32-hisi-ca9-5.10.log"
    report = replay(parse(log.read_text()))
    root = check_picture(svg(report.memblock, callers=callers_from_ops(report.ops)))
    overview = [g for g in root.iter(NS + "g") if g.get("id") == "overview"][0]
    labels = [t.text for t in overview.iter(NS + "text") if "hole-label" in classes(t)]
    for size in ("20 MiB", "32 MiB", "192 MiB", "319 MiB"):
        assert any(lb.startswith(size) for lb in labels), (size, labels)
    wide = [r for r in rects(overview, "hole") if float(r.get("width")) >= HOLE_MIN_PX]
    assert len(labels) == len(wide) >= 8


def test_lane_ends_are_not_ticks(demo_svg):
    root = ET.fromstring(demo_svg)
    ends = [t.text for t in root.iter(NS + "text") if "lane-end" in classes(t)]
    ticks = {t.text for t in root.iter(NS + "text") if "tick" in classes(t)}
    assert "0xbffe1e94]" in ends                       # node 0's exact (odd) end
    assert not any(e.strip("[]") in ticks for e in ends if int(e.strip("[]"), 16) % 4096)


# -- the parts -----------------------------------------------------------------------------------

def test_round_ticks_are_multiples_of_a_power_of_two():
    ax = Axis([(0x1000, 0xbffe1e95)], 1080, 30)
    step, ticks = round_ticks(ax, 100)
    assert step == 0x20000000
    assert {a for a, _x in ticks} == {0x20000000 * i for i in range(1, 6)}
    ax = Axis([(0x3c75, 0x13c75)], 1080, 30)              # a 64 KiB zoom window
    step, ticks = round_ticks(ax, 110)
    assert step == 0x2000 and all(a % step == 0 for a, _x in ticks)
    assert ticks[0][0] == 0x10000                          # the roundest first


def test_round_ticks_skip_compressed_holes():
    ax = Axis([(0, GiB), (3 * GiB, 4 * GiB)], 1000, 40)
    _step, ticks = round_ticks(ax, 100)
    assert not any(GiB < a < 3 * GiB for a, _x in ticks)


def test_fan_keeps_order_and_fits_or_refuses():
    lefts = fan([(10, 20), (12, 20), (14, 20)], 100)
    assert lefts == [0, 24, 48]
    lefts = fan([(95, 20), (98, 20)], 100)
    assert lefts is not None and lefts[1] + 20 <= 100 and lefts[0] + 24 <= lefts[1]
    assert fan([(50, 60), (52, 60)], 100) is None
    assert fan([(30, 10), (70, 10)], 100) == [25, 65]       # no crowding: exactly centred


def test_caller_colours_follow_size_okabe_ito_first():
    pieces = [CallerPiece(i * MiB, (20 - i) * 4096, f"c{i:02d}") for i in range(20)]
    colours, ranked = caller_colours(pieces, 16)
    assert [c for c, _b, _n in ranked] == [f"c{i:02d}" for i in range(20)]
    assert [colours[f"c{i:02d}"] for i in range(8)] == list(OKABE_ITO)
    assert len({colours[f"c{i:02d}"] for i in range(16)}) == 16 == len(set(CALLER_FILL))
    assert len({colours[f"c{i:02d}"] for i in range(16, 20)}) == 1


def test_svg_legend_swatches_in_size_order():
    mb = Memblock(None)
    mb.add_node(0, GiB, 0)
    callers = [CallerPiece(i * 16 * MiB, (i + 1) * MiB, f"user_{i}") for i in range(10)]
    for p in callers:
        mb.reserve(p.base, p.size)
    root = ET.fromstring(svg(mb, callers=callers))
    legend = [g for g in root.iter(NS + "g") if g.get("id") == "legend"][0]
    swatches = {title_of(r): r.get("fill") for r in rects(legend, "swatch")}
    assert swatches["user_9"] == OKABE_ITO[0] and swatches["user_2"] == OKABE_ITO[7]
    assert swatches["user_0"] == CALLER_FILL[9]


def test_small_segments_of_the_zoom_get_numbers_and_a_key_when_names_do_not_fit():
    mb = Memblock(None)
    mb.add_node(0, GiB, 0)
    callers = []
    for i in range(40):
        base = GiB - (i + 1) * 256
        mb.reserve(base, 64)
        callers.append(CallerPiece(base, 64, f"a_rather_long_caller_name_{i}"))
    root = check_picture(svg(mb, callers=callers))
    labels = [t for t in root.iter(NS + "text") if "segment-label" in classes(t)]
    assert len(labels) == 40 and {shown(t) for t in labels} == {str(i) for i in range(1, 41)}
    keys = [t.text or "" for t in root.iter(NS + "text") if "segment-key" in classes(t)]
    assert len(keys) == 40 and any("a_rather_long_caller_name_7" in k for k in keys)


@pytest.mark.parametrize("name", ["arena.render_axis", "arena.render_palette", "arena.render_draw",
                                  "arena.render_layout", "arena.render_callers",
                                  "arena.render_zoom", "arena.render_diff"])
def test_render_modules_document_their_public_names(name):
    from tests.test_public_api import test_every_public_name_exists_and_is_documented as check

    check(name)
