"""Tests of ``arena.trace``: the ``memblock=debug`` log parser, the replay and its command line.

The three real boot logs of ``tests/data/`` (with their README)
must reproduce fully: every allocation lands where the kernel put it and every
``MEMBLOCK configuration`` dump equals ours. Synthetic snippets cover each line format of
kernels 3.x to 7.x, the corner cases of the printed ranges and the failure reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from arena.cli.replay import replay_main
from arena.trace import (
    AllocOp,
    DoubleOp,
    DumpOp,
    RangeOp,
    Settings,
    Trace,
    parse,
    parse_dump,
    replay,
)

DATA = Path(__file__).parent / "data"
X86 = DATA / "x86_64-qemu-numa-6.6.41.log"
MIPS = DATA / "mips32-bmips5200-5.11.log"
ARM = DATA / "arm32-hisi-ca9-5.10.log"

#: log -> (settings of the README as command-line options, allocation requests, dumps)
LOGS = {
    X86: (["--trim-memory", "4096", "--nodes-from-dump"], 52, 2),
    MIPS: (["--bottom-up"], 28, 1),
    ARM: (["--phys-bits", "32", "--current-limit", "0xb0200000"], 43, 1),
}
#: The same, with nothing inferred: every setting spelled out.
NO_INFER = {
    X86: ["--no-infer", "--kernel-version", "6.6", "--trim-memory", "0x1000",
          "--nodes-from-dump", "--top-down"],
    MIPS: ["--no-infer", "--kernel-version", "5.11", "--phys-bits", "32", "--bottom-up",
           "--no-numa"],
    ARM: ["--no-infer", "--kernel-version", "5.10", "--phys-bits", "32", "--current-limit",
          "0xb0200000", "--no-numa"],
}


def log(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def only(trace: Trace, kind: type):
    return [op for op in trace if isinstance(op, kind)]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = replay_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# -- parser: line formats ----------------------------------------------------------------------

def test_parse_add_and_add_node_formats():
    t = parse(log(
        "[    0.003813] memblock_add: [0x0000000000001000-0x000000000009fbff] e820__memblock_setup+0x6e/0xb0",
        "memblock_add_node: [0x0000000100000000-0x000000013fffffff] nid=1 flags=0 acpi+0x1/0x2",
        "memblock_add_node: [0x0000000140000000-0x000000017fffffff] nid=2 numa+0x1/0x2",
    ))
    assert t.ops == [
        RangeOp("add", 1, "memblock_add", 0x1000, 0x9ec00, caller="e820__memblock_setup+0x6e/0xb0"),
        RangeOp("add", 2, "memblock_add_node", 1 << 32, 1 << 30, 1, 0, "acpi+0x1/0x2"),
        RangeOp("add", 3, "memblock_add_node", 0x140000000, 1 << 30, 2, None, "numa+0x1/0x2"),
    ]
    assert t.malformed == [] and t.widths == {64}


def test_parse_reserve_both_spellings_and_old_format():
    t = parse(log(
        "memblock_reserve: [0x0000000001000000-0x00000000035fffff] setup_arch+0x275/0xf80",
        "__memblock_reserve: [0x0000000001000000-0x0000000001ffffff] nid=-1 flags=0 setup_arch+0x1",
        "__memblock_reserve: [0x000000007fffc000-0x000000007fffffff] nid=0 flags=20 alloc_node_data",
        # 3.13-4.x: %#016llx (14 digits) and "flags %#02lx"
        "memblock_reserve: [0x00000001000000-0x00000001ffffff] flags 0x0 setup_arch+0x2d2/0x8a3",
    ))
    r = only(t, RangeOp)
    assert [(op.kind, op.base, op.size, op.nid, op.flags) for op in r] == [
        ("reserve", 0x1000000, 0x2600000, None, None),
        ("reserve", 0x1000000, 0x1000000, -1, 0),
        ("reserve", 0x7fffc000, 0x4000, 0, 0x20),
        ("reserve", 0x1000000, 0x1000000, None, 0),
    ]
    assert r[0].caller == "setup_arch+0x275/0xf80"
    assert t.widths == {64}  # 14 digits is a 64-bit %#016llx, not a 32-bit kernel


def test_parse_free_remove_physmem_and_free_late():
    t = parse(log(
        "memblock_free: [0x03245000-0x03244fff] pcpu_embed_first_chunk+0x7a0/0x884",
        "memblock_phys_free: [0x000000013fe00000-0x000000013fffffff] init_mem_mapping+0x1b8",
        "memblock_remove: [0x0000000080000000-0x000000008fffffff] arm64_memblock_init+0x1",
        "memblock_physmem_add: [0x0000000000000000-0x000000007fffffff] setup_memory+0x1",
        "memblock_free_late: [0x0000000010000000-0x0000000010000fff] efi_free_boot+0x1",
    ))
    assert [(op.kind, op.func, op.base, op.size) for op in t] == [
        ("free", "memblock_free", 0x03245000, 0),
        ("free", "memblock_phys_free", 0x13fe00000, 0x200000),
        ("remove", "memblock_remove", 0x80000000, 0x10000000),
        ("physmem_add", "memblock_physmem_add", 0, 0x80000000),
        ("free_late", "memblock_free_late", 0x10000000, 0x1000),
    ]


@pytest.mark.parametrize("line, func, nid, start, end, exact, phys_range", [
    # 3.x/4.x: from/max_addr printed 0x%llx (unpadded), align 0 = SMP_CACHE_BYTES
    ("memblock_virt_alloc_try_nid_nopanic: 4096 bytes align=0x0 nid=-1 from=0x0 max_addr=0x0 "
     "alloc_node_mem_map+0x5c/0x80", "memblock_virt_alloc_try_nid_nopanic", -1, 0, 0, False, False),
    ("memblock_virt_alloc_try_nid: 4096 bytes align=0x1000 nid=0 from=0x1000000 "
     "max_addr=0x0 sparse_init+0x1", "memblock_virt_alloc_try_nid", 0, 0x1000000, 0, False, False),
    ("memblock_virt_alloc_try_nid_raw: 4096 bytes align=0x1000 nid=1 from=0x0 max_addr=0x0 x+0x1",
     "memblock_virt_alloc_try_nid_raw", 1, 0, 0, False, False),
    ("memblock_alloc_try_nid_nopanic: 4096 bytes align=0x1000 nid=-1 from=0x0000000000000000 "
     "max_addr=0x0000000000000000 x+0x1", "memblock_alloc_try_nid_nopanic", -1, 0, 0, False, False),
    ("memblock_alloc_try_nid: 4096 bytes align=0x1000 nid=-1 from=0x00000000 "
     "max_addr=0xffffffff fixrange_init+0x90/0xf4", "memblock_alloc_try_nid", -1, 0, 0xFFFFFFFF,
     False, False),
    ("memblock_alloc_try_nid_raw: 4096 bytes align=0x1000 nid=0 from=0x0000000001000000 "
     "max_addr=0x0000000000000000 vmemmap+0x5d", "memblock_alloc_try_nid_raw", 0, 0x1000000, 0,
     False, False),
    ("memblock_alloc_exact_nid_raw: 4096 bytes align=0x80000 nid=0 from=0xc09fffff "
     "max_addr=0x00000000 sparse_init_nid+0xec/0x1d8", "memblock_alloc_exact_nid_raw", 0,
     0xC09FFFFF, 0, True, False),
    ("memblock_phys_alloc_range: 4096 bytes align=0x1000 from=0x0000000120000000 "
     "max_addr=0x0000000140000000 alloc_low_pages+0x91/0x150", "memblock_phys_alloc_range", None,
     0x120000000, 0x140000000, False, True),
])
def test_parse_allocation_request_families(line, func, nid, start, end, exact, phys_range):
    (op,) = parse(log(line)).ops
    assert isinstance(op, AllocOp)
    assert (op.func, op.size, op.nid, op.start, op.end) == (func, 4096, nid, start, end)
    assert (op.exact, op.phys_range, op.result) == (exact, phys_range, None)


def test_request_answer_is_the_next_memblock_line():
    t = parse(log(
        "memblock_alloc_try_nid: 40 bytes align=0x4 nid=-1 from=0x00000000 max_addr=0x00000000 x",
        "some noise in between",
        "memblock_reserve: [0xafffefd8-0xafffefff] memblock_alloc_range_nid+0x104/0x13c",
        "memblock_reserve: [0x80000000-0x80000fff] other_reserve+0x1",
    ))
    alloc, plain = t.ops
    assert isinstance(alloc, AllocOp)
    assert (alloc.result, alloc.result_lineno) == (0xAFFFEFD8, 3)
    assert isinstance(plain, RangeOp) and (plain.base, plain.lineno) == (0x80000000, 4)


@pytest.mark.parametrize("after", [
    "memblock_alloc_try_nid: 8 bytes align=0x4 nid=-1 from=0x00000000 max_addr=0x00000000 x",
    "memblock_free: [0x10000000-0x10000fff] x",
    "memblock_reserve: [0x10000000-0x10000fff] reserve_of_another_size+0x1",
    "Kernel panic - not syncing: memblock_alloc_try_nid: Failed to allocate 40 bytes",
    "MEMBLOCK configuration:",
    None,  # end of the log
])
def test_failed_requests(after):
    lines = ["memblock_alloc_try_nid: 40 bytes align=0x4 nid=-1 from=0x00000000 "
             "max_addr=0x00000000 x"]
    if after == "MEMBLOCK configuration:":
        lines += [after, " memory size = 0x00000000 reserved size = 0x00000000",
                  " memory.cnt  = 0x0", " reserved.cnt  = 0x0"]
    elif after is not None:
        lines.append(after)
    t = parse(log(*lines))
    first = t.ops[0]
    assert isinstance(first, AllocOp) and first.result is None and first.result_lineno is None
    assert t.malformed == []
    if after and after.startswith("memblock_reserve"):  # the reserve stays a reserve of its own
        assert isinstance(t.ops[1], RangeOp) and t.ops[1].kind == "reserve"


def test_32bit_size_zero_and_wrap_around():
    t = parse(log(
        "memblock_reserve: [0x0096a000-0x00969fff] setup_arch+0x3fc/0x69c",    # size 0
        "memblock_add: [0xfec00000-0xffffffff] early_init_dt_scan_memory+0x11c",  # to the top
        "memblock_add: [0xfff00000-0x000fffff] wrapped+0x1",                   # past the top
        "memblock_free: [0x00000000-0xffffffff] zero_at_zero+0x1",             # size 0 at 0
    ))
    assert [op.size for op in t] == [0, 0x1400000, 0x200000, 0]
    assert t.widths == {32}
    t64 = parse(log(
        "memblock_reserve: [0x0000000000001000-0x0000000000000fff] x",
        "memblock_add: [0xfffffffffff00000-0x00000000000fffff] x",
    ))
    assert [op.size for op in t64] == [0, 0x200000]


def test_malformed_lines_are_reported_with_their_line_number():
    text = log(
        "memblock_add: [0x00000000-0x0fffffff] ok+0x1",
        "memblock_reserve: [0x00aa7600-0x00aa",                       # cut by an e-mail wrap
        "memblock_alloc_try_nid: lots of bytes align=0x40 nid=-1 from=0x0 max_addr=0x0 x",
        "__memblock_reserve: [0x00001000-0x00001fff] nid=abc flags=0 x",
        "memblock_phys_alloc_range: 4096 bytes align=0x1000 x",
    )
    t = parse(text)
    assert [m.lineno for m in t.malformed] == [2, 3, 4, 5]
    assert "line 2" in str(t.malformed[0])
    assert len(t.ops) == 1
    with pytest.raises(ValueError, match="line 2"):
        parse(text, strict=True)


def test_unknown_lines_are_skipped():
    t = parse(log(
        "[    0.000000] Command line: memblock=debug nokaslr",
        "memblock_cap_memory_range: No memory registered yet",
        "memblock: Failed to double reserved array from 128 to 256 entries !",
        "NODE_DATA(0) allocated [mem 0x7fffc000-0x7fffffff]",
        " memblock_alloc_range_nid+0x104/0x13c",
        "[<c0a1b2c3>] (memblock_alloc_range_nid) from [<c0a1b2d4>] (memblock_alloc_try_nid+0x9/0xc)",
        "  memory[0x0] outside any dump is noise",
        "",
    ))
    assert t.ops == [] and t.malformed == []


def test_line_prefixes_do_not_matter():
    t = parse(log(
        "<6>[    0.000000] memblock_add: [0x00000000-0x0fffffff] a+0x1",
        "Jan 01 00:00:00 host kernel: memblock_add: [0x20000000-0x2fffffff] a+0x1",
        "memblock_add: [0x40000000-0x4fffffff] a+0x1",
    ))
    assert [op.base for op in t] == [0, 0x20000000, 0x40000000]


def test_version_highmem_and_doubling_lines():
    t = parse(log(
        "[    0.000000] Linux version 5.11.0-g5695e5161974 (florian@localhost) #84 SMP",
        "   HighMem  [mem 0x00000000b0200000-0x00000000ffffefff]",
        "memblock: reserved is doubled to 256 at [0x000000013fff0000-0x000000013fff17ff]",
    ))
    assert (t.version, t.version_lineno) == ((5, 11), 1)
    assert (t.highmem_start, t.highmem_lineno) == (0xB0200000, 2)
    assert t.ops == [DoubleOp(3, "reserved", 256, 0x13FFF0000, 0x13FFF17FF)]


# -- parser: dumps -----------------------------------------------------------------------------

def test_dump_numa_64bit():
    (dump,) = only(parse(X86.read_text()), DumpOp)[1:]
    assert (dump.lineno, dump.end_lineno) == (99, 112)
    assert (dump.memory_size, dump.reserved_size) == (0xFFF7EC00, 0x2714E95)
    assert [(r.base, r.size, r.nid) for r in dump.memory] == [
        (0x1000, 0x9E000, 0), (0x100000, 0x7FF00000, 0), (0x80000000, 0x3FFE0000, 1),
        (0x100000000, 0x40000000, 1)]
    assert [r.nid for r in dump.reserved] == [0, 0, None, 1, None, 1]
    assert dump.shows_nodes and dump.physmem is None


def test_dump_formats_of_other_kernels():
    t = parse(log(
        "MEMBLOCK configuration:",                         # 3.x: %#llx sizes, %#016llx ranges
        " memory size = 0x7ff7ec00 reserved size = 0x1d3b000",
        " memory.cnt  = 0x1",
        " memory[0x0]\t[0x00000000001000-0x0000000009efff], 0x9e000 bytes flags: 0x0",
        " reserved.cnt  = 0x1",
        " reserved[0x0]\t[0x00000000000000-0x0000000000ffff], 0x10000 bytes flags: 0x0",
        "MEMBLOCK configuration:",                         # <= 6.10 empty array: dummy entry
        " memory size = 0x0000000000000000 reserved size = 0x0000000000000000",
        " memory.cnt  = 0x1",
        " memory[0x0]\t[0x0000000000000000-0xffffffffffffffff], 0x0000000000000000 bytes on node 0 flags: 0x0",
        " reserved.cnt  = 0x1",
        " reserved[0x0]\t[0x0000000000000000-0xffffffffffffffff], 0x0000000000000000 bytes flags: 0x0",
        " physmem.cnt  = 0x1",
        " physmem[0x0]\t[0x0000000000000000-0x000000007fffffff], 0x0000000080000000 bytes flags: 0x0",
    ))
    old, empty = only(t, DumpOp)
    assert old.memory[0].size == 0x9E000 and old.reserved[0].base == 0
    assert empty.memory[0].size == 0 and empty.memory[0].nid == 0
    assert empty.physmem is not None and empty.physmem[0].size == 0x80000000


def test_dump_with_missing_regions_is_malformed():
    t = parse(log(
        "MEMBLOCK configuration:",
        " memory size = 0x80000000 reserved size = 0x00000000",
        " memory.cnt  = 0x2",
        " memory[0x0]\t[0x00000000-0x3fffffff], 0x40000000 bytes flags: 0x0",
        " reserved.cnt  = 0x0",
    ))
    assert only(t, DumpOp) == []
    assert [m.lineno for m in t.malformed] == [1]
    assert "memory.cnt" in t.malformed[0].reason


def test_parse_dump_reads_our_own_dump():
    from arena.memblock import Memblock

    mb = Memblock(None, phys_addr_bits=32)
    mb.add(0x1000_0000, 0x1000_0000)
    mb.reserve(0x1800_0000, 0x1000)
    dump = parse_dump(mb.dump_all(log=False))
    assert [(r.base, r.size) for r in dump.memory] == [(0x1000_0000, 0x1000_0000)]
    assert [(r.base, r.size) for r in dump.reserved] == [(0x1800_0000, 0x1000)]
    with pytest.raises(ValueError):
        parse_dump("no dump here")


def test_parse_rejects_non_text():
    with pytest.raises(TypeError):
        parse(b"memblock_add: [0x0-0x1]")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_dump(None)  # type: ignore[arg-type]


# -- replay: the three real logs ---------------------------------------------------------------

@pytest.mark.parametrize("path", list(LOGS), ids=lambda p: p.name)
def test_real_logs_reproduce_fully_with_everything_inferred(path):
    trace = parse(path.read_text())
    assert trace.malformed == []
    report = replay(trace)
    _, allocs, dumps = LOGS[path]
    assert (len(report.allocations), len(report.dumps)) == (allocs, dumps)
    assert report.divergences == [], str(report.first_divergence)
    assert report.summary_line() == (f"allocations reproduced: {allocs}/{allocs}, "
                                     f"dumps matched: {dumps}/{dumps}")
    assert report.ok and report.memblock is not None


def test_inferred_settings_of_the_real_logs():
    x86 = replay(parse(X86.read_text())).settings
    assert (x86.phys_bits, x86.kernel_version, x86.bottom_up, x86.trim_memory,
            x86.nodes_from_dump, x86.numa, x86.current_limit) == (64, (6, 6), False, 4096, True,
                                                                  True, None)
    mips = replay(parse(MIPS.read_text())).settings
    assert (mips.phys_bits, mips.kernel_version, mips.bottom_up, mips.numa) == (32, (5, 11),
                                                                                True, False)
    arm = replay(parse(ARM.read_text()))
    assert (arm.settings.phys_bits, arm.settings.current_limit, arm.settings.bottom_up,
            arm.settings.numa) == (32, 0xB0200000, False, False)
    said = {i.setting: i.reason for i in arm.inferred}
    assert "HighMem" in said["current_limit"] and "8 hex digits" in said["phys_bits"]


def test_node_ids_are_applied_after_the_last_reservation_shown_on_a_node():
    report = replay(parse(X86.read_text()))
    (where,) = [i.value for i in report.inferred if i.setting == "nodes_applied"]
    # line 93 reserves the last ACPI table (node 1 in the dump); line 95 is NODE_DATA(0)
    assert where == "before line 95"


@pytest.mark.parametrize("path", list(LOGS), ids=lambda p: p.name)
def test_cli_with_the_readme_settings(path, capsys):
    options, allocs, dumps = LOGS[path]
    rc, out, _ = run_cli([path, *options], capsys)
    assert rc == 0
    assert out.splitlines()[-1] == (f"allocations reproduced: {allocs}/{allocs}, "
                                    f"dumps matched: {dumps}/{dumps}")


@pytest.mark.parametrize("path", list(NO_INFER), ids=lambda p: p.name)
def test_cli_with_every_setting_given_and_no_inference(path, capsys):
    rc, out, _ = run_cli([path, *NO_INFER[path]], capsys)
    assert rc == 0, out
    assert "inferred" not in out
    assert out.splitlines()[-1].startswith("allocations reproduced: ")


@pytest.mark.parametrize("path, options, line, kind", [
    # without the trim, the first dump shows memory the replay does not have
    (X86, ["--no-infer", "--kernel-version", "6.6", "--nodes-from-dump"], 40, "dump"),
    # without the lowmem limit, the first allocation lands at the top of memory
    (ARM, ["--no-infer", "--kernel-version", "5.10", "--phys-bits", "32", "--no-numa"], 52,
     "alloc"),
    # top-down instead of bottom-up
    (MIPS, ["--top-down"], 24, "alloc"),
])
def test_wrong_settings_diverge(path, options, line, kind, capsys):
    report = replay(parse(path.read_text()), _settings(options))
    first = report.first_divergence
    assert first is not None and (first.lineno, first.kind) == (line, kind)
    rc, out, _ = run_cli([path, *options], capsys)
    assert rc == 1 and f"first divergence: line {line}:" in out


def _settings(options: list[str]) -> Settings:
    import argparse

    from arena.cli.replay import _settings_from, add_replay_arguments

    p = argparse.ArgumentParser()
    add_replay_arguments(p)
    return _settings_from(p.parse_args(["x", *options]))


# -- replay: divergences -----------------------------------------------------------------------

def corrupt(path: Path, lineno: int, old: str, new: str, tmp_path: Path) -> Path:
    lines = path.read_text().splitlines()
    assert old in lines[lineno - 1]
    lines[lineno - 1] = lines[lineno - 1].replace(old, new)
    out = tmp_path / f"corrupt-{path.name}"
    out.write_text("\n".join(lines) + "\n")
    return out


def test_corrupted_address_reports_the_first_divergence(tmp_path, capsys):
    bad = corrupt(X86, 205, "0x000000013fff4000-0x000000013fff4fff",
                  "0x000000013fff0000-0x000000013fff0fff", tmp_path)
    report = replay(parse(bad.read_text()))
    first = report.first_divergence
    assert first is not None and (first.lineno, first.kind) == (204, "alloc")
    assert "kernel [0x13fff0000-0x13fff0fff] (line 205), ours [0x13fff4000-0x13fff4fff]" in \
        first.message
    text = "\n".join(first.context)
    assert ">   204 |" in text and "our state before the request" in text and "reserved[" in text
    assert not report.ok and report.allocations_reproduced < 52
    rc, out, _ = run_cli([bad], capsys)
    assert rc == 1
    assert "first divergence: line 204:" in out
    assert out.splitlines()[-1].startswith("allocations reproduced: ")
    assert out.splitlines()[-1] != "allocations reproduced: 52/52, dumps matched: 2/2"


def test_corrupted_dump_is_reported_and_allocations_still_count(tmp_path, capsys):
    bad = corrupt(MIPS, 74, "0x0000bc80-0x0000bdff], 0x00000180",
                  "0x0000bc80-0x0000bdff], 0x00000181", tmp_path)
    report = replay(parse(bad.read_text()))
    assert report.allocations_reproduced == 28 and report.dumps_matched == 0
    first = report.first_divergence
    assert first is not None and (first.lineno, first.kind) == (61, "dump")
    assert any("reserved[0x6]" in c for c in first.context)
    rc, out, _ = run_cli([bad], capsys)
    assert rc == 1 and out.splitlines()[-1] == "allocations reproduced: 28/28, dumps matched: 0/1"


SMALL = [
    "memblock_add: [0x0000000000000000-0x000000003fffffff] setup+0x1",
    "memblock_reserve: [0x0000000001000000-0x0000000001ffffff] setup+0x2",
]


def test_failed_request_is_reproduced_when_ours_fails_too():
    t = parse(log(
        *SMALL,
        "memblock_alloc_try_nid: 2147483648 bytes align=0x1000 nid=-1 from=0x0000000000000000 "
        "max_addr=0x0000000000000000 too_big+0x1",
        "memblock_alloc_try_nid: 4096 bytes align=0x1000 nid=-1 from=0x0000000000000000 "
        "max_addr=0x0000000000000000 fits+0x1",
        "memblock_reserve: [0x000000003ffff000-0x000000003fffffff] memblock_alloc_range_nid+0x1",
    ))
    report = replay(t, Settings(kernel_version=(6, 6)))
    assert [r.op.result for r in report.allocations] == [None, 0x3FFFF000]
    assert [r.ours for r in report.allocations] == [None, 0x3FFFF000]
    assert report.summary_line() == "allocations reproduced: 2/2, dumps matched: 0/0"
    assert report.ok


def test_request_the_kernel_failed_but_we_serve_is_a_divergence():
    t = parse(log(
        *SMALL,
        "memblock_alloc_try_nid: 4096 bytes align=0x1000 nid=-1 from=0x0000000000000000 "
        "max_addr=0x0000000000000000 fits+0x1",
        "memblock_phys_free: [0x0000000001000000-0x0000000001ffffff] x+0x1",
    ))
    report = replay(t, Settings(kernel_version=(6, 6)))
    assert report.summary_line() == "allocations reproduced: 0/1, dumps matched: 0/0"
    assert report.first_divergence is not None and "kernel failed" in report.first_divergence.message
    # our block was given back: the state follows the kernel's
    assert report.memblock.reserved.total_size == 0


def test_reserve_attributes_of_kernels_from_6_16():
    t = parse(log(
        "memblock_add: [0x0000000000000000-0x000000003fffffff] setup+0x1",
        "__memblock_reserve: [0x0000000001000000-0x0000000001ffffff] nid=-1 flags=0 setup+0x2",
        "__memblock_reserve: [0x0000000020000000-0x0000000020000fff] nid=0 flags=20 node_data+0x1",
        "memblock_alloc_try_nid: 4096 bytes align=0x1000 nid=-1 from=0x0000000000000000 "
        "max_addr=0x0000000000000000 x+0x1",
        "__memblock_reserve: [0x000000003ffff000-0x000000003fffffff] nid=-1 flags=20 "
        "memblock_alloc_range_nid+0x1",
        "__memblock_reserve: [0x000000003fffe000-0x000000003fffefff] nid=-1 flags=20 kern+0x1",
        "MEMBLOCK configuration:",
        " memory size = 0x0000000040000000 reserved size = 0x0000000001003000",
        " memory.cnt  = 0x1",
        " memory[0x0]\t[0x0000000000000000-0x000000003fffffff], 0x0000000040000000 bytes flags: 0x0",
        " reserved.cnt  = 0x3",
        " reserved[0x0]\t[0x0000000001000000-0x0000000001ffffff], 0x0000000001000000 bytes flags: 0x0",
        " reserved[0x1]\t[0x0000000020000000-0x0000000020000fff], 0x0000000000001000 bytes on node 0 flags: 0x20",
        " reserved[0x2]\t[0x000000003fffe000-0x000000003fffffff], 0x0000000000002000 bytes flags: 0x20",
    ))
    report = replay(t)
    assert report.settings.kernel_version is None  # __memblock_reserve: 6.16 or newer
    assert report.ok, str(report.first_divergence)
    assert report.summary_line() == "allocations reproduced: 1/1, dumps matched: 1/1"


def test_old_kernel_virt_alloc_with_align_zero():
    t = parse(log(
        "memblock_reserve: [0x00000001000000-0x00000001ffffff] flags 0x0 setup_arch+0x1",
        "memblock_virt_alloc_try_nid_nopanic: 100 bytes align=0x0 nid=-1 from=0x0 max_addr=0x0 x",
        "memblock_reserve: [0x0000003fffff80-0x0000003fffffe3] flags 0x0 memblock_virt_alloc+0x1",
    ))
    # memory comes from a line this kernel did not print: add it as the first operation
    ops = [RangeOp("add", 0, "memblock_add", 0, 0x40000000), *t.ops]
    report = replay(ops, Settings(smp_cache_bytes=128, kernel_version=(4, 20)))
    assert report.ok, str(report.first_divergence)  # 0x40000000 - 100 rounded down to 128
    guessed = replay(Trace(ops=ops, funcs=t.funcs))
    assert guessed.settings.kernel_version == (4, 20)
    assert any(i.setting == "smp_cache_bytes" for i in guessed.inferred)


def test_32bit_bank_at_the_top_is_capped():
    t = parse(log(
        "memblock_add: [0xfec00000-0xffffffff] early_init_dt_scan_memory+0x11c/0x188",
        "MEMBLOCK configuration:",
        "  memory size = 0x013fffff reserved size = 0x00000000",
        "  memory.cnt  = 0x1",
        "  memory[0x0]    [0xfec00000-0xfffffffe], 0x013fffff bytes flags: 0x0",
        "  reserved.cnt  = 0x1",
        "  reserved[0x0]    [0x00000000-0xffffffff], 0x00000000 bytes flags: 0x0",
    ))
    report = replay(t, Settings(kernel_version=(5, 10), numa=False))
    assert report.settings.phys_bits == 32
    assert report.ok, str(report.first_divergence)


PRE_511_BOTTOM_UP = log(
    "[    0.000000] Linux version 5.4.0 (builder@host) #1 SMP",
    "memblock_add: [0x0000000000000000-0x000000003fffffff] setup+0x1",
    "memblock_reserve: [0x0000000001000000-0x0000000001ffffff] kernel_image+0x1",
    "memblock_alloc_try_nid: 4096 bytes align=0x1000 nid=-1 from=0x0000000000000000 "
    "max_addr=0x0000000000000000 x+0x1",
    "memblock_reserve: [0x0000000002000000-0x0000000002000fff] memblock_alloc_range_nid+0x1",
)


def test_pre_5_11_bottom_up_starts_above_the_kernel_end(tmp_path, capsys):
    path = tmp_path / "bottom-up-5.4.log"
    path.write_text(PRE_511_BOTTOM_UP)
    rc, out, _ = run_cli([path, "--bottom-up", "--kernel-end", "0x2000000"], capsys)
    assert rc == 0, out
    rc, out, _ = run_cli([path, "--bottom-up"], capsys)  # 5.11 rule: starts at the first page
    assert rc == 1
    assert "ours [0x1000-0x1fff]" in out and "give --kernel-end" in out


def test_dump_regions_know_their_log_lines():
    first, second = only(parse(X86.read_text()), DumpOp)
    assert (first.sizes_lineno, first.memory[0].lineno, first.reserved[-1].lineno) == (41, 43, 49)
    assert second.reserved[5].lineno == 112


def test_a_64bit_log_on_a_32bit_replay_is_refused_not_crashed(capsys):
    rc, out, _ = run_cli([X86, "--phys-bits", "32"], capsys)
    assert rc == 1
    assert "our memblock refused the operation" in out


def test_malformed_line_makes_the_exit_status_nonzero(tmp_path, capsys):
    bad = tmp_path / "malformed.log"
    bad.write_text(MIPS.read_text() + "memblock_reserve: [0x00000000-0x0000\n")
    rc, out, _ = run_cli([bad], capsys)
    assert rc == 1
    assert "line 124: malformed memblock line" in out
    assert out.splitlines()[-1] == "allocations reproduced: 28/28, dumps matched: 1/1"


def test_replay_of_a_plain_list_of_operations():
    trace = parse(MIPS.read_text())
    report = replay(list(trace.ops), Settings(phys_bits=32, kernel_version=(5, 11)))
    assert report.ok and report.settings.bottom_up is True


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc", [
    ({"phys_bits": 48}, ValueError),
    ({"phys_bits": True}, TypeError),
    ({"page_size": 3000}, ValueError),
    ({"smp_cache_bytes": 0}, ValueError),
    ({"current_limit": -1}, ValueError),
    ({"current_limit": 1.5}, TypeError),
    ({"current_limit": "0x1000"}, TypeError),
    ({"current_limit": 1 << 33, "phys_bits": 32}, ValueError),
    ({"kernel_end": True}, TypeError),
    ({"bottom_up": 1}, TypeError),
    ({"numa": "no"}, TypeError),
    ({"kernel_version": (6,)}, TypeError),
    ({"kernel_version": "6.6"}, TypeError),
])
def test_bad_settings(kwargs, exc):
    with pytest.raises(exc):
        Settings(**kwargs)


def test_settings_accept_numpy_integers():
    s = Settings(current_limit=np.uint64(0xB0200000), page_size=np.int32(4096))
    assert s.current_limit == 0xB0200000


def test_replay_bad_arguments():
    with pytest.raises(TypeError):
        replay("memblock_add: [0x0-0x1]")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        replay([1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        replay(parse(""), {"phys_bits": 32})  # type: ignore[arg-type]


def test_cli_reads_stdin(capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(MIPS.read_text()))
    rc, out, _ = run_cli(["-"], capsys)
    assert rc == 0 and out.startswith("replay of <stdin>:")
    assert out.splitlines()[-1] == "allocations reproduced: 28/28, dumps matched: 1/1"


def test_cli_usage_errors(tmp_path, capsys):
    rc, _, err = run_cli([tmp_path / "missing.log"], capsys)
    assert rc == 2 and "cannot read" in err
    with pytest.raises(SystemExit) as e:
        replay_main([str(MIPS), "--page-size", "3000"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        replay_main([str(MIPS), "--phys-bits", "48"])
    with pytest.raises(SystemExit):
        replay_main([str(MIPS), "--bottom-up", "--top-down"])
    rc, _, err = run_cli([MIPS, "--current-limit", hex(1 << 40), "--phys-bits", "32"], capsys)
    assert rc == 2 and "does not fit" in err


# -- output: verbose, JSON, SVG ----------------------------------------------------------------

def test_verbose_lists_every_allocation_and_dump(capsys):
    rc, out, _ = run_cli([MIPS, "-v"], capsys)
    assert rc == 0
    assert sum(" ok  memblock_alloc_try_nid" in line for line in out.splitlines()) == 28
    assert "ok  MEMBLOCK configuration" in out


def test_json_report(tmp_path, capsys):
    path = tmp_path / "report.json"
    rc, out, _ = run_cli([X86, "--json", path], capsys)
    assert rc == 0
    data = json.loads(path.read_text())
    assert data["summary"] == "allocations reproduced: 52/52, dumps matched: 2/2" and data["ok"]
    assert data["settings"]["trim_memory"] == 4096
    assert {i["setting"] for i in data["inferred"]} >= {"phys_bits", "kernel_version",
                                                         "trim_memory", "nodes_from_dump"}
    assert len(data["allocations"]) == 52 and all(a["match"] for a in data["allocations"])
    assert data["allocations"][0] == {
        "line": 50, "func": "memblock_phys_alloc_range", "size": 28672, "align": 0x1000,
        "nid": None, "from": 0, "max_addr": 0x100000, "kernel": 0x98000, "kernel_line": 51,
        "ours": 0x98000, "match": True}
    assert len(data["ops"]) == sum(data["operations"].values())
    assert data["first_divergence"] is None
    rc, out, err = run_cli([MIPS, "--top-down", "--json", "-"], capsys)
    assert rc == 1
    data = json.loads(out)
    assert data["first_divergence"]["line"] == 24
    assert err.splitlines()[-1] == data["summary"]


def test_svg_is_written_from_the_final_memblock(tmp_path, capsys, monkeypatch):
    import types

    seen = []
    fake = types.ModuleType("arena.render")
    fake.svg = lambda mb, **kw: seen.append((mb, kw)) or f"<svg><!-- {mb.reserved.cnt} --></svg>"
    monkeypatch.setitem(sys.modules, "arena.render", fake)
    monkeypatch.setattr("arena.trace_callers.callers_from_ops",
                        lambda ops: [(0, 1, f"{len(ops)} ops")])
    path = tmp_path / "map.svg"
    rc, _, _ = run_cli([MIPS, "--svg", path], capsys)
    assert rc == 0 and len(seen) == 1
    mb, kw = seen[0]
    assert path.read_text() == f"<svg><!-- {mb.reserved.cnt} --></svg>"
    assert kw["callers"] == [(0, 1, "42 ops")] and MIPS.name in kw["title"]


def test_svg_of_the_final_map(tmp_path, capsys):
    path = tmp_path / "map.svg"
    rc, _, _ = run_cli([X86, "--svg", path], capsys)
    assert rc == 0
    drawing = path.read_text()
    assert drawing.lstrip().startswith(("<svg", "<?xml")) and "</svg>" in drawing
    assert "sparse_init_nid" in drawing  # the largest reservations are named by their caller
