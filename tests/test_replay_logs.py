"""Replay of every kernel's spelling and of logs that do not print their start state.

The constructed logs of ``tests/data/constructed/*.log`` (written in the debug formats of
kernels 3.10 to 6.16, see the README there) must reproduce every allocation and every dump
replayed; files that are not boot logs and crafted logs must end in one line and exit status 2,
never a traceback.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.bootlog import AllocOp, DumpOp, RangeOp, not_a_log, parse
from arena.cli.replay import replay_main
from arena.trace import Settings, replay

DATA = Path(__file__).parent / "data" / "constructed"
HAND_61 = ["--memory", "0x0-0x7fffffff@0", "--reserved", "0x1000000-0x1ffffff",
           "--nomap", "0x7fe00000-0x7fffffff"]

#: log -> (options, allocations, dumps compared, start, skipped operations, unrequested)
CONSTRUCTED = {
    "constructed-3.10-exclusive-end.log": ([], 0, 1, "the dump at line 5", 0, 0),
    "constructed-3.15-no-memblock-add.log": ([], 3, 1, "the dump at line 6", 0, 0),
    "constructed-4.4-quoted-raw-callers.log": ([], 2, 2, "an empty memblock", 0, 2),
    "constructed-4.18-free-early.log": ([], 3, 1, "an empty memblock", 0, 0),
    "constructed-5.4-gap.log": ([], 3, 1, "an empty memblock", 0, 0),
    "constructed-6.1-starts-late.log": (HAND_61, 4, 1, "the start state given by hand", 0, 0),
    "constructed-6.16-dt-dump-start.log": ([], 3, 1, "the dump at line 6", 0, 0),
}


def run(argv: list, capsys) -> tuple[int, str, str]:
    rc = replay_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def log(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# -- every spelling, every start state ---------------------------------------------------------

@pytest.mark.parametrize("name", list(CONSTRUCTED))
def test_constructed_logs_reproduce_fully(name, capsys):
    options, allocs, dumps, start, skipped, unrequested = CONSTRUCTED[name]
    rc, out, _ = run([DATA / name, *options], capsys)
    assert rc == 0, out
    assert out.splitlines()[-1] == (f"allocations reproduced: {allocs}/{allocs}, "
                                    f"dumps matched: {dumps}/{dumps}")
    assert f"start: {start}" in out
    trace = parse((DATA / name).read_text())
    assert trace.malformed == []
    assert trace.counts().get("unrequested", 0) == unrequested


def test_constructed_logs_are_marked_in_the_readme():
    readme = (DATA.parent / "README.md").read_text()
    for name in CONSTRUCTED:
        assert f"`{name}`" in readme
        assert (DATA / name).read_text().startswith("# CONSTRUCTED")


def test_3x_exclusive_ends_are_read_as_exclusive():
    trace = parse((DATA / "constructed-3.10-exclusive-end.log").read_text())
    assert trace.exclusive_end and "3.14" in trace.end_reason
    sizes = [(op.kind, op.base, op.size) for op in trace if isinstance(op, RangeOp)]
    assert sizes == [("reserve", 0x3FFF0000, 0x10000), ("reserve", 0x9F000, 0x61000),
                     ("free", 0x3FFF8000, 0x8000), ("reserve", 0x2000000, 0x1234)]
    # read as inclusive, every range is one byte too long and the second dump differs
    wrong = replay(parse((DATA / "constructed-3.10-exclusive-end.log").read_text(),
                         end="inclusive"))
    assert not wrong.ok


def test_exclusive_ends_without_a_version_line():
    text = log("memblock_reserve: [0x00000001000000-0x00000002000000] setup+0x1",
               "   memblock_free: [0x00000001800000-0x00000002000000] free+0x1",
               "memblock_reserve: [0x00000003000000-0x00000003001234] x+0x1")
    trace = parse(text)
    assert trace.exclusive_end and "page-aligned" in trace.end_reason
    assert [op.size for op in trace] == [0x1000000, 0x800000, 0x1234]
    # one end in 0xfff, or any allocation request, means inclusive
    assert not parse(text + "memblock_reserve: [0x0000000-0x0000fff] x\n").exclusive_end
    assert not parse(text.replace("Linux", "") + "memblock_alloc_try_nid: 8 bytes align=0x8 "
                     "nid=-1 from=0x0 max_addr=0x0 x\n").exclusive_end
    assert not parse(text, end="inclusive").exclusive_end
    assert parse(log("memblock_reserve: [0x1000-0x1fff] x"), end="exclusive").ops[0].size == 0xFFF
    with pytest.raises(ValueError):
        parse(text, end="open")


def test_old_spellings_of_frees_and_requests():
    t = parse(log(
        "__memblock_free_early: [0x0000000040000000-0x0000000040000fff] free_initrd+0x1",
        "__memblock_free_late: [0x0000000040000000-0x0000000040000fff] 0xffffffff81234567",
        "memblock_free_early_nid: [0x0000000040000000-0x0000000040000fff] x",
        "memblock_virt_alloc_try_nid_raw: 4096 bytes align=0x1000 nid=-1 from=0x0 max_addr=0x0 y",
        "memblock_reserve: [0x000000007ffff000-0x000000007fffffff] flags 0x0 0xc0123456",
    ))
    kinds = [(op.kind, op.func) for op in t]
    assert kinds == [("free", "__memblock_free_early"), ("free_late", "__memblock_free_late"),
                     ("free", "memblock_free_early_nid"),
                     ("alloc", "memblock_virt_alloc_try_nid_raw")]
    assert t.ops[1].caller == "0xffffffff81234567"
    assert isinstance(t.ops[3], AllocOp) and t.ops[3].result == 0x7FFFF000


def test_free_early_is_replayed(capsys):
    """A 4.18 ``__memblock_free_early`` gives the block back: the next request lands in it."""
    text = (DATA / "constructed-4.18-free-early.log").read_text()
    assert replay(parse(text)).ok
    ignored = replay(parse(text.replace("__memblock_free_early:", "__memblock_fre_early:")))
    assert ignored.allocations_reproduced == 1


def test_quote_prefixes_comments_and_no_timestamps():
    t = parse(log(
        "# a comment naming memblock_add: [0x0-0xfff] is not read",
        "> memblock_add: [0x0000000000000000-0x000000003fffffff] a+0x1",
        ">> memblock_reserve: [0x0000000001000000-0x0000000001ffffff] b+0x1",
        "> > [    0.000000] memblock_reserve: [0x0000000002000000-0x0000000002ffffff] c+0x1",
        ">MEMBLOCK configuration:",
        "> memory size = 0x0000000040000000 reserved size = 0x0000000002000000",
        ">  memory.cnt  = 0x1",
        ">  memory[0x0]\t[0x0000000000000000-0x000000003fffffff], 0x0000000040000000 bytes flags: 0x0",
        ">  reserved.cnt  = 0x1",
        ">  reserved[0x0]\t[0x0000000001000000-0x0000000002ffffff], 0x0000000002000000 bytes flags: 0x0",
    ))
    assert [op.kind for op in t] == ["add", "reserve", "reserve", "dump"] and t.malformed == []
    assert replay(t).ok


def test_allocator_reserves_without_a_request_are_counted_apart(capsys):
    name = DATA / "constructed-4.4-quoted-raw-callers.log"
    trace = parse(name.read_text())
    unreq = [op for op in trace if isinstance(op, RangeOp) and op.unrequested]
    assert [op.caller.split("+")[0] for op in unreq] == ["__alloc_memory_core_early"] * 2
    rc, out, _ = run([name], capsys)
    assert rc == 0 and "2 unrequested" in out and "unrequested: 2 reserve(s)" in out


def test_version_is_a_range_of_what_the_names_allow():
    report = replay(parse((DATA / "constructed-6.1-starts-late.log").read_text()),
                    Settings(memory=((0, 1 << 31, 0),)))
    (inf,) = [i for i in report.inferred if i.setting == "kernel_version"]
    assert inf.value == "5.16\u20136.15" and "newest they allow" in inf.reason
    assert report.settings.kernel_version == (6, 15)


# -- start states ------------------------------------------------------------------------------

def test_dump_start_is_decided_and_explained(capsys):
    rc, out, _ = run([DATA / "constructed-6.16-dt-dump-start.log"], capsys)
    assert rc == 0
    assert "inferred start = the dump at line 6: the first dump cannot be explained: it shows " \
           "memory [0x80000000-0xbfffffff]" in out


def test_a_log_without_its_start_state(capsys):
    name = DATA / "constructed-6.1-starts-late.log"
    rc, out, _ = run([name], capsys)  # the only dump is the start: nothing left to compare
    assert rc == 0 and "skipped: 5 operation(s) at lines 4-11 (4 allocation(s))" in out
    rc, out, _ = run([name, "--start-at-dump", "0"], capsys)  # an empty memblock: all fail
    assert rc == 1 and out.splitlines()[-1] == "allocations reproduced: 0/4, dumps matched: 0/1"
    rc, out, _ = run([name, *HAND_61[:4]], capsys)  # without the nomap range: the first differs
    assert rc == 1 and "first divergence: line 4:" in out


def test_start_at_a_later_dump_of_a_real_log(capsys):
    x86 = Path(__file__).parent / "data" / "x86_64-qemu-numa-6.6.41.log"
    rc, out, _ = run([x86, "--start-at-dump", "1"], capsys)
    assert rc == 0 and out.splitlines()[-1] == "allocations reproduced: 52/52, dumps matched: 1/1"
    rc, out, _ = run([x86, "--start-at-dump", "2"], capsys)
    assert rc == 0 and out.splitlines()[-1] == "allocations reproduced: 48/48, dumps matched: 0/0"
    rc, out, err = run([x86, "--start-at-dump", "3"], capsys)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and "2 MEMBLOCK" in err


def test_gap_stops_the_replay(capsys, tmp_path):
    name = DATA / "constructed-5.4-gap.log"
    trace = parse(name.read_text())
    assert trace.gap is not None and (trace.gap.lineno, trace.gap.memblock_lines) == (24, 3)
    assert all(op.lineno < 24 for op in trace)
    rc, out, _ = run([name, "--json", tmp_path / "r.json"], capsys)
    assert rc == 0 and "not replayed: lines 25-27 not replayed" in out
    assert '"gap_line": 24' in (tmp_path / "r.json").read_text()
    pending = parse(log("memblock_add: [0x0-0x3fffffff] x",
                        "memblock_alloc_try_nid: 4096 bytes align=0x1000 nid=-1 from=0x0 "
                        "max_addr=0x0 y", "# GAP", "memblock_reserve: [0x3ffff000-0x3fffffff] z"))
    assert pending.gap is not None and pending.gap.pending == 2
    assert [op.kind for op in pending] == ["add"]  # the request is not counted as failed


@pytest.mark.parametrize("kwargs, exc", [
    ({"memory": "0x0-0x1000"}, TypeError),
    ({"memory": ((0, 0),)}, ValueError),
    ({"memory": ((0, 1 << 33),), "phys_bits": 32}, ValueError),
    ({"memory": ((0, 4096, 5000),)}, ValueError),
    ({"reserved": ((0, 4096, 0),)}, TypeError),
    ({"nomap": ((1.5, 4096),)}, TypeError),
    ({"start_at_dump": 1, "reserved": ((0, 4096),)}, ValueError),
    ({"start_at_dump": -1}, ValueError),
])
def test_bad_start_states(kwargs, exc):
    with pytest.raises(exc):
        Settings(**kwargs)


@pytest.mark.parametrize("argv", [
    ["--memory", "0x2000-0x1000"], ["--memory", "banana"], ["--reserved", "0x0-0xfff@1"],
    ["--start-at-dump", "-1"], ["--start-at-dump", "1", "--memory", "0x0-0xfff"],
])
def test_start_state_usage_errors(argv, capsys):
    x86 = DATA.parent / "x86_64-qemu-numa-6.6.41.log"
    try:
        rc = replay_main([str(x86), *argv])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    assert "Traceback" not in capsys.readouterr().err


def test_set_total_size_keeps_state_on_bad_input():
    from arena.memblock import Memblock

    mb = Memblock(None)
    mb.add(0x100000, 0x100000)
    with pytest.raises(ValueError):
        mb.set_total_size(mb.memory, 0x1000)
    assert mb.memory.total_size == 0x100000
    mb.set_total_size("memory", 0x180000)
    mb.check()  # an inflated total is the trimming quirk, not a broken invariant
    assert mb.memory.total_size == 0x180000


def test_unexplained_ignores_a_few_stray_bytes():
    from arena.bootlog import DumpRegion
    from arena.trace_start import unexplained

    ops = [RangeOp("reserve", 1, "memblock_reserve", 0x1000, 0x1000)]
    exact = DumpOp(1, 1, 0, 0x1000, (), (DumpRegion(0x1000, 0x1000, None, 0),))
    few = DumpOp(1, 1, 0, 0x1001, (), (DumpRegion(0x1000, 0x1001, None, 0),))
    page = DumpOp(1, 1, 0, 0x2000, (), (DumpRegion(0x1000, 0x2000, None, 0),))
    assert unexplained(exact, ops) is None
    assert unexplained(few, ops) is None
    assert "reserved [0x1000-0x2fff]" in unexplained(page, ops)
    assert unexplained(page, ops, reserved=[(0x2000, 0x1000)]) is None


# -- files that are not boot logs, crafted logs ------------------------------------------------

NOT_LOGS = [Path("/bin/ls"), Path("/dev/null"), Path(__file__).parents[1] / "README.md"]


@pytest.mark.parametrize("path", NOT_LOGS, ids=lambda p: p.name)
@pytest.mark.parametrize("command", ["replay", "map"])
def test_files_that_are_not_boot_logs(path, command, capsys):
    from arena.__main__ import main

    assert main([command, str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert "not a memblock=debug boot log" in err and "expected a kernel log" in err


CRAFTED = {
    "huge-cnt": ("MEMBLOCK configuration:", " memory size = 0x0 reserved size = 0x0",
                 " memory.cnt  = 0xffffffffffffffffff", " reserved.cnt  = 0x0"),
    "big-cnt": ("MEMBLOCK configuration:", " memory size = 0x0 reserved size = 0x0",
                " memory.cnt  = 0x4000000", " reserved.cnt  = 0x0", " memory[0x0]\t[0x0-0xfff], 0x1000 bytes"),
    "5000-digits": (f"memblock_alloc_try_nid: {'9' * 5000} bytes align=0x1000 nid=-1 from=0x0 "
                    "max_addr=0x0 x",),
    "5000-hex-digits": (f"memblock_add: [0x0-0x{'f' * 5000}] x",),
    "huge-nid": ("memblock_add_node: [0x0-0xfff] nid=99999999999999 x",),
    "huge-index": ("MEMBLOCK configuration:", " memory size = 0x0 reserved size = 0x0",
                   " memory.cnt  = 0x1", f" memory[0x{'1' * 40}]\t[0x0-0xfff], 0x1000 bytes",
                   " reserved.cnt  = 0x0"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_logs_end_in_one_line(name, tmp_path, capsys):
    path = tmp_path / f"{name}.log"
    path.write_text(log(*CRAFTED[name]))
    tracemalloc.start()
    try:
        rc, out, err = run([path], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and "line " in err
    assert peak < 20 << 20
    # inside a real log the same line is a malformed line naming its number: exit 1
    real = (DATA / "constructed-4.18-free-early.log").read_text()
    path.write_text(real + log(*CRAFTED[name]))
    rc, out, _ = run([path], capsys)
    assert rc == 1 and "malformed memblock line" in out


def test_no_traceback_from_the_command_line(tmp_path):
    path = tmp_path / "crafted.log"
    path.write_text(log(*CRAFTED["huge-cnt"]))
    proc = subprocess.run([sys.executable, "-m", "arena", "replay", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "line 3" in proc.stderr and "does not fit 64 bits" in proc.stderr


def test_not_a_log_reasons():
    assert not_a_log("", parse("")) == "the file is empty"
    assert not_a_log("\x00\x01", parse("\x00\x01")) == "binary data"
    assert not_a_log("hello\n", parse("hello\n")) == "no memblock line"
    assert not_a_log("# GAP\n", parse("# GAP\n")) == "no memblock line before the # GAP at line 1"
    one = log("memblock_add: [0x0-0xfff] x")
    assert not_a_log(one, parse(one)) is None


FRAGMENTS = ["memblock_add: ", "memblock_reserve: ", "__memblock_free_early: ",
             "memblock_alloc_try_nid: ", "MEMBLOCK configuration:", " memory.cnt  = ",
             " reserved.cnt  = ", " memory[0x0]\t", " memory size = 0x10 reserved size = 0x0",
             "[0x1000-0x1fff]", "[0xffffffffffffffff-0x0]", "4096 bytes align=0x0 nid=-1 ",
             "from=0x0 max_addr=0x0 ", "nid=7 ", "flags 0x4 ", "0x", "99999999999999999999",
             "-", ", 0x1000 bytes", " on node 3", " flags: 0x2", "> ", "# GAP", "\n"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
def test_any_text_parses_and_replays_without_raising(parts):
    text = "".join(parts)
    trace = parse(text)
    if not_a_log(text, trace) is None:
        replay(trace, Settings(bottom_up=False))


# -- the modules' public surface ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["arena.bootlog", "arena.trace_report", "arena.trace_start",
                                  "arena.cli.replay", "arena.trace_callers",
                                  "arena.trace_points", "arena.cli", "arena.cli.args"])
def test_new_modules_document_their_public_names(name):
    import importlib

    module = importlib.import_module(name)
    assert inspect.getdoc(module)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name}.{attr}"
