"""``map --diff A B`` and :mod:`arena.render_diff`: points of a log, the states at them, the
changes between two states and their picture."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from arena.__main__ import main
from arena.memblock import Memblock
from arena.render import CallerPiece
from arena.render_diff import Change, changes, svg_diff
from arena.render_palette import ALLOCATED_FILL, FREED_FILL
from arena.trace import parse, replay
from arena.trace_points import Point, parse_point, state_at
from tests.test_render_pictures import NS, check_picture, classes, rects, shown, title_of

DATA = Path(__file__).parent / "data"
MIPS = DATA / "mips32-bmips5200-5.11.log"
X86 = DATA / "x86_64-qemu-numa-6.6.41.log"
MiB, GiB = 1 << 20, 1 << 30


def dumps(mb: Memblock) -> tuple[str, ...]:
    return tuple(repr(list(t.regions)) for t in (mb.memory, mb.reserved))


# -- points ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, point", [
    ("start", Point("start")), ("END", Point("end")), ("dump:2", Point("dump", 2)),
    ("dump:-1", Point("dump", -1)), ("line:57", Point("line", 57)), ("57", Point("line", 57)),
    (" 0 ", Point("line", 0)),
])
def test_parse_point(text, point):
    assert parse_point(text) == point


@pytest.mark.parametrize("text", ["", "dump", "dump:0", "line:-3", "-3", "dump:x", "begin",
                                  "line:1:2", "0x10"])
def test_parse_point_rejects(text):
    with pytest.raises(ValueError):
        parse_point(text)


def test_parse_point_type():
    with pytest.raises(TypeError):
        parse_point(57)


# -- states -----------------------------------------------------------------------------------------

def test_state_after_a_line_counts_an_allocation_once_answered():
    trace = parse(MIPS.read_text())
    settings = replay(trace).settings
    # line 57 requests 32 bytes (setup_usemap); line 58 is the reserve that answers it
    before = state_at(trace, Point("line", 57), settings).memblock
    after = state_at(trace, Point("line", 58), settings).memblock
    ch = changes(before, after)
    assert ch == [Change("allocated", 0xBC00, 32, "", 0)]


def test_state_at_start_end_and_dumps():
    trace = parse(X86.read_text())
    full = replay(trace)
    end = state_at(trace, Point("end"), full.settings).memblock
    assert dumps(end) == dumps(full.memblock)
    start = state_at(trace, Point("start")).memblock
    assert start.memory.cnt <= 1 and start.memory.total_size == 0
    first = state_at(trace, Point("dump", 1), full.settings)
    assert first.dumps and first.dumps[-1].match          # our state at the dump = the kernel's
    last = state_at(trace, Point("dump", -1), full.settings)
    assert len(last.dumps) == 2


@pytest.mark.parametrize("point", [Point("dump", 3), Point("dump", -3), Point("line", 10**6)])
def test_state_at_a_point_not_in_the_log(point):
    with pytest.raises(ValueError):
        state_at(parse(X86.read_text()), point)


# -- changes ----------------------------------------------------------------------------------------

def two_states() -> tuple[Memblock, Memblock]:
    a, b = Memblock(None), Memblock(None)
    for mb in (a, b):
        mb.add_node(0, GiB, 0)
        mb.add_node(GiB, GiB, 1)
        mb.reserve(16 * MiB, 32 * MiB)
    a.reserve(100 * MiB, 2 * MiB)            # freed later
    b.reserve(GiB + 4 * MiB, 4096)           # allocated
    b.reserve(2 * GiB - 8192, 8192)          # allocated
    b.add_node(3 * GiB, GiB, 1)              # memory added
    return a, b


def test_changes_allocated_freed_added_named_by_callers():
    a, b = two_states()
    before, after = dumps(a), dumps(b)
    ch = changes(a, b, callers_before=[CallerPiece(100 * MiB, MiB, "early_thing")],
                 callers_after=[CallerPiece(GiB + 4 * MiB, 4096, "late_thing")])
    assert ch == [
        Change("allocated", GiB + 4 * MiB, 4096, "late_thing", 1),
        Change("allocated", 2 * GiB - 8192, 8192, "", 1),
        Change("freed", 100 * MiB, MiB, "early_thing", 0),
        Change("freed", 101 * MiB, MiB, "", 0),
        Change("added", 3 * GiB, GiB, "", 1),
    ]
    assert (dumps(a), dumps(b)) == (before, after)        # nothing changed by looking
    assert str(ch[0]).startswith("+ allocated [0x40400000-0x40400fff] 4 KiB late_thing")
    assert changes(a, a) == []


def test_changes_rejects_non_memblocks():
    with pytest.raises(TypeError, match="Memblock"):
        changes(object(), Memblock(None))
    with pytest.raises(TypeError):
        changes(Memblock(None), Memblock(None), callers_after="x")


# -- the picture ------------------------------------------------------------------------------------

def test_svg_diff_draws_allocations_and_frees_in_two_colours():
    a, b = two_states()
    root = check_picture(svg_diff(a, b, labels=("A", "B")))
    fills: dict[str, list[ET.Element]] = {}
    for lane in (g for g in root.iter(NS + "g") if "node" in classes(g)):   # not the zoom
        for r in rects(lane, "reserved"):
            fills.setdefault(r.get("fill"), []).append(r)
    assert len(fills[ALLOCATED_FILL]) == 2 and len(fills[FREED_FILL]) == 1
    for r in fills[ALLOCATED_FILL] + fills[FREED_FILL]:
        assert float(r.get("width")) >= 3 and title_of(r).startswith(("allocated", "freed"))
    summary = [shown(t) for t in root.iter(NS + "text") if "summary" in classes(t)][0]
    assert summary.startswith("from A to B: allocated 12 KiB in 2 pieces; freed 2 MiB")
    listed = [shown(t) for t in root.iter(NS + "text") if "change" in classes(t)]
    assert len(listed) == 4 and listed[-1].startswith("+ memory added")
    # the 4 KiB allocation is far below a pixel on its lane: a zoom shows it
    assert any(g.get("id") == "zoom" for g in root.iter(NS + "g"))


def test_svg_diff_of_equal_states_and_bad_arguments():
    a, _b = two_states()
    root = check_picture(svg_diff(a, a))
    assert "no change" in " ".join(shown(t) for t in root.iter(NS + "text"))
    check_picture(svg_diff(Memblock(None), Memblock(None)))
    for kwargs, exc in [({"width": 300}, ValueError), ({"width": "wide"}, TypeError),
                        ({"labels": ("x",)}, TypeError), ({"title": 5}, TypeError)]:
        with pytest.raises(exc):
            svg_diff(a, a, **kwargs)


# -- the command ------------------------------------------------------------------------------------

def test_map_diff_of_two_dumps(tmp_path, capsys):
    path = tmp_path / "diff.svg"
    assert main(["map", str(X86), "--diff", "dump:1", "dump:2", "--svg", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"diff of {X86}: from dump 1 to dump 2: allocated ")
    assert "+ allocated [0x10000-0x97fff] 544 KiB setup_arch (node 0)" in out
    root = check_picture(path.read_text())
    assert root.find(NS + "title").text == f"{X86.name}: from dump 1 to dump 2"


def test_map_diff_before_and_after_a_line(capsys):
    assert main(["map", str(MIPS), "--diff", "57", "58"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["  + allocated [0xbc00-0xbc1f] 32 B setup_usemap (node 0)"]


def test_map_diff_of_the_demo_boot_log_shows_frees(tmp_path, capsys):
    path = tmp_path / "frees.svg"
    log = tmp_path / "boot.log"
    from arena.demo import Machine, boot

    with boot(Machine(memory="1 GiB", nodes=2)) as b:
        text = b.log_text()
    log.write_text(text)
    lines = [i for i, ln in enumerate(text.splitlines(), 1)
             if "memblock_phys_free" in ln and "pcpu_embed_first_chunk" in ln]
    assert main(["map", str(log), "--diff", str(lines[0] - 1), str(lines[0]),
                 "--svg", str(path)]) == 0
    out = capsys.readouterr().out
    assert "freed" in out and "pcpu_embed_first_chunk" in out
    root = check_picture(path.read_text())
    assert [r for r in rects(root, "reserved") if r.get("fill") == FREED_FILL]
    # without a LOG, the demo machine's own boot log
    assert main(["map", "--memory", "1G", "--diff", "start", "end"]) == 0
    assert "diff of the demo machine's boot log: from start to end: allocated" in \
        capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--diff", "dump:9", "end"], "no dump 9"),
    (["--diff", "0", "99999"], "no line 99999"),
    (["--diff", "first", "end"], "not a point"),
])
def test_map_diff_bad_points_exit_2(argv, message, capsys):
    assert main(["map", str(X86), *argv]) == 2
    assert message in capsys.readouterr().err


def test_map_diff_unreadable_log_and_unwritable_svg(tmp_path, capsys):
    assert main(["map", str(tmp_path / "none.log"), "--diff", "start", "end"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["map", str(MIPS), "--diff", "start", "end", "--svg",
                 str(tmp_path / "no" / "x.svg")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_map_diff_needs_two_points(capsys):
    assert main(["map", str(MIPS), "--diff", "start"]) == 2
    assert "expected 2 arguments" in capsys.readouterr().err


def test_diff_picture_is_valid_xml_for_every_pair_of_dumps():
    trace = parse(X86.read_text())
    settings = replay(trace).settings
    states = [state_at(trace, p, settings).memblock
              for p in (Point("start"), Point("dump", 1), Point("dump", 2), Point("end"))]
    for a, b in zip(states, states[1:], strict=False):
        ET.fromstring(svg_diff(a, b))
        check_picture(svg_diff(a, b))


def test_readme_diff_example_is_what_the_command_prints(capsys):
    readme = (Path(__file__).parent.parent / "docs" / "maps.md").read_text()
    block = readme.split("$ python -m arena map --diff 146 160\n", 1)[1].split("```", 1)[0]
    shown_lines = [ln for ln in block.splitlines() if ln.strip() != "..."]
    assert main(["map", "--diff", "146", "160"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(ln in out for ln in shown_lines) and out[0] == shown_lines[0]
