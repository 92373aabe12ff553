"""arena.demo: the built-in machine, its boot on memblock, the hand-over and the printed tour."""

from __future__ import annotations

import io
import itertools
import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from arena.demo import Boot, E820Entry, Machine, boot, run_demo
from arena.errors import MemblockPanic
from arena.memblock import MemblockFlags
from arena.trace import Settings, parse, replay

DATA = Path(__file__).parent / "data"
QEMU_LOG = DATA / "x86_64-qemu-numa-6.6.41.log"
GiB, MiB = 1 << 30, 1 << 20
SMALL = dict(memory="1 GiB", nodes=2)


def strip_time(line: str) -> str:
    return re.sub(r"^\[\s*\d+\.\d+\] ", "", line)


# -- the machine --------------------------------------------------------------------------------

def test_machine_e820_and_nodes_are_the_qemu_guest_of_the_real_log():
    m = Machine(memory="4 GiB", nodes=2)
    printed = [strip_time(ln) for ln in QEMU_LOG.read_text().splitlines() if "BIOS-e820:" in ln]
    ours = [f"BIOS-e820: [mem {e.base:#018x}-{e.end - 1:#018x}] {e.kind}" for e in m.e820]
    assert ours == printed
    # "NUMA: Node 0 ... -> [mem 0x00000000-0x7fffffff]", "Node 1 ... -> [mem 0x80000000-0x13fffffff]"
    assert m.node_spans == [(0, 0x80000000), (0x80000000, 0x140000000)]
    assert m.phys_end == 0x140000000
    assert m.cpus == 4


def test_machine_layout_small_and_large():
    small = Machine(memory="512 MiB", nodes=1)
    assert small.low_memory == 512 * MiB and small.phys_end == 512 * MiB
    assert [e.kind for e in small.e820].count("usable") == 2     # nothing above 4 GiB
    big = Machine(memory="64 GiB", nodes=8)
    assert big.low_memory == 3 * GiB and big.phys_end == 65 * GiB
    spans = big.node_spans
    assert len(spans) == 8 and spans[0][0] == 0 and spans[-1][1] == 65 * GiB
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all((e - s) % (128 * MiB) == 0 for s, e in spans[1:])


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"memory": "100 MiB"}, ValueError, "256 MiB"),
    ({"memory": 256 * MiB + 4096}, ValueError, "2 MiB"),
    ({"memory": 2 << 40}, ValueError, "1 TiB"),
    ({"memory": True}, TypeError, "memory"),
    ({"memory": 1.5}, TypeError, "memory"),
    ({"memory": "lots"}, ValueError, "memory"),
    ({"nodes": 0}, ValueError, "nodes"),
    ({"nodes": 9}, ValueError, "nodes"),
    ({"nodes": 2.0}, TypeError, "nodes"),
    ({"memory": "512 MiB", "nodes": 5}, ValueError, "128 MiB per node"),
    ({"cpus_per_node": 0}, ValueError, "cpus_per_node"),
    ({"bottom_up": 1}, TypeError, "bottom_up"),
    ({"current_limit": -1}, ValueError, "current_limit"),
    ({"kernel_version": (6,)}, TypeError, "kernel_version"),
])
def test_machine_rejects_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Machine(**kwargs)


def test_boot_rejects_a_non_machine():
    with pytest.raises(TypeError, match="Machine"):
        boot({"memory": "1G"})


def test_e820_entry_end():
    assert E820Entry(0x1000, 0x2000, "usable").end == 0x3000


# -- the boot -----------------------------------------------------------------------------------

@pytest.fixture
def booted():
    with boot(Machine(**SMALL)) as b:
        yield b


def test_boot_hands_every_free_page_to_the_buddy_allocator(booted: Boot):
    mb, buddy = booted.memblock, booted.buddy
    assert mb.handed_over
    mb.check()
    buddy.check()
    assert buddy.nr_free_pages() == booted.pages > 0
    # exactly the whole pages of memory minus reserved
    assert booted.pages == sum(max((e >> 12) - ((s + 4095) >> 12), 0)
                               for s, e, _nid in mb.for_each_free_mem_range())
    # the pages of both nodes arrived, each on its node
    assert buddy.nr_free_pages(0) > 0 and buddy.nr_free_pages(1) > 0


def test_boot_makes_the_kernels_allocations(booted: Boot):
    text = booted.log_text()
    for caller in ("early_reserve_memory", "reserve_bios_regions", "e820__memblock_setup",
                   "reserve_real_mode", "alloc_low_pages", "acpi_reserve_initial_tables",
                   "alloc_node_data", "sparse_init", "sparse_init_nid", "vmemmap_pud_populate",
                   "pcpu_embed_first_chunk", "pcpu_setup_first_chunk", "spp_getpage"):
        assert re.search(rf"\] \S*memblock\S*: .* {caller}$", text, re.M), caller
    assert "NODE_DATA(0) allocated" in text and "NODE_DATA(1) allocated" in text
    assert text.count("MEMBLOCK configuration:") == 2
    assert "memblock_phys_free:" in text             # per-CPU unit tails given back
    assert "swiotlb_init_remap" not in text          # 1 GiB: nothing above 4 GiB
    # per node: NODE_DATA and mem_map on the node itself
    reserved = list(booted.memblock.reserved.regions)
    for nid, (s, e) in enumerate(booted.machine.node_spans):
        assert any(s <= r.base < e and r.size >= 2 * MiB and r.nid == nid for r in reserved)


def test_boot_log_replays_without_divergence(booted: Boot):
    report = replay(parse(booted.log_text()))
    assert report.ok, report.first_divergence
    assert len(report.allocations) > 30 and len(report.dumps) == 2


@pytest.mark.parametrize("bottom_up", [False, True], ids=["top_down", "bottom_up"])
@pytest.mark.parametrize("nodes", [1, 2, 3, 4])
def test_boot_directions_and_node_counts_replay_exactly(bottom_up, nodes):
    m = Machine(memory="1 GiB", nodes=nodes, bottom_up=bottom_up)
    with boot(m) as b:
        b.memblock.check()
        assert sorted(b.buddy.nodes) == list(range(nodes))
        report = replay(parse(b.log_text()))
        assert report.ok, report.first_divergence
        assert report.settings.bottom_up is bottom_up
        node_data = [int(x, 16) for x in re.findall(r"NODE_DATA\(\d\) allocated \[mem (0x[0-9a-f]+)",
                                                   b.log_text())]
        assert len(node_data) == nodes
        for nid, phys in enumerate(node_data):
            s, e = m.node_spans[nid]
            assert s <= phys < e
            # top-down: at the top of its node; bottom-up: in its lowest 64 MiB of free memory
            if bottom_up:
                assert phys < s + 64 * MiB
            else:
                assert phys > e - 64 * MiB


def test_bottom_up_allocates_just_above_the_kernel_image():
    with boot(Machine(memory="1 GiB", nodes=1, bottom_up=True)) as b:
        text = b.log_text()
    first = re.search(r"alloc_low_pages\n.*\[(0x[0-9a-f]+)-", text)
    assert first is not None
    assert 0x3609000 <= int(first.group(1), 16) < 0x4000000


def test_default_machine_boots_fast_and_cheap():
    with boot(Machine()) as b:
        assert b.machine.memory == 6 * GiB
        assert b.physmem.size == 7 * GiB
        assert "swiotlb_init_remap" in b.log_text()    # memory above 4 GiB
        # fresh pages are never touched: zeroed allocations of them write nothing
        assert b.physmem.resident_bytes() < 16 * MiB
        report = replay(parse(b.log_text()))
        assert report.ok, report.first_divergence


def test_first_dump_equals_the_real_kernels():
    """Booting the 4 GiB QEMU guest as kernel 6.6 prints the kernel's first dump line by line."""
    def first_dump(lines):
        i = next(k for k, ln in enumerate(lines) if ln.endswith("MEMBLOCK configuration:"))
        j = next(k for k in range(i + 1, len(lines)) if "reserved[0x2]" in lines[k])
        return [strip_time(ln) for ln in lines[i:j + 1]]

    kernel = first_dump(QEMU_LOG.read_text().splitlines())
    with boot(Machine(memory="4 GiB", nodes=2, kernel_version=(6, 6))) as b:
        ours = first_dump(b.log)
        assert ours == kernel
        # the real-mode trampoline lands where the kernel put it
        assert "[0x0000000000098000-0x000000000009efff] reserve_real_mode" in b.log_text()
        # NODE_DATA(0) too (0x7fffc000 in the log)
        assert "NODE_DATA(0) allocated [mem 0x7fffc000-0x7fffffff]" in b.log_text()


def test_kernel_version_selects_the_log_format():
    with boot(Machine(memory="512 MiB", nodes=1, kernel_version=(6, 6))) as b:
        assert "Linux version 6.6.0-arena" in b.log_text()
        assert "] memblock_reserve: [" in b.log_text()
        assert "__memblock_reserve" not in b.log_text()
    with boot(Machine(memory="512 MiB", nodes=1)) as b:
        assert "__memblock_reserve: [" in b.log_text()
        flags = {r.flags for r in b.memblock.reserved.regions}
        assert MemblockFlags.RSRV_KERN in flags


def test_current_limit_moves_allocations_below_it():
    limit = 4 * GiB
    with boot(Machine(current_limit=limit)) as b:
        text = b.log_text()
        report = replay(parse(text), Settings(current_limit=limit))
        assert report.ok, report.first_divergence
        # node 1 lies wholly above the limit: its mem_map falls back, section by section
        assert "vmemmap_alloc_block" in text
        late = [r for r in b.memblock.reserved.regions
                if r.flags & MemblockFlags.RSRV_KERN and r.base >= limit]
        # only the early page tables (allocated before the limit was set) stay above it
        assert sum(r.size for r in late) <= 16 * 4096


def test_a_boot_that_cannot_allocate_panics():
    with pytest.raises(MemblockPanic, match="failed to allocate"):
        boot(Machine(memory="1 GiB", current_limit=8 * MiB))


def test_boot_restores_the_logger():
    log = logging.getLogger("arena.memblock")
    level, propagate, handlers = log.level, log.propagate, list(log.handlers)
    with boot(Machine(**SMALL)):
        pass
    assert (log.level, log.propagate, log.handlers) == (level, propagate, handlers)


def test_progress_reports_each_phase():
    lines: list[str] = []
    with boot(Machine(**SMALL), progress=lines.append) as b:
        pass
    assert b.physmem.closed
    assert lines[0].startswith("mapped 1 GiB")
    assert [ln.split("]")[0] for ln in lines[1:]] == [f"[{i}/6" for i in range(1, 7)]
    assert "hand-over" in lines[-1]


def test_callers_name_the_boot_functions(booted: Boot):
    names = {p.caller for p in booted.callers()}
    assert {"early_reserve_memory", "sparse_init_nid", "pcpu_embed_first_chunk"} <= names


# -- the printed tour ---------------------------------------------------------------------------

def test_run_demo_prints_every_section(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    svg_file = tmp_path / "map.svg"
    assert run_demo(Machine(**SMALL), out, err=err, svg_path=str(svg_file)) == 0
    text = out.getvalue()
    for header in ("== memblock=debug boot log", "== memblock_dump_all() after the hand-over ==",
                   "== /proc/buddyinfo ==", "== /proc/zoneinfo (summary) ==",
                   "== memory map ==", "== summary =="):
        assert header in text, header
    assert text.index("boot log") < text.index("buddyinfo") < text.index("memory map")
    assert re.search(r"^Node 0, zone +Normal( +\d+){11} $", text, re.M)
    assert "node 0:" in text and "node 1:" in text
    assert "[6/6] hand-over" in err.getvalue()
    root = ET.fromstring(svg_file.read_text())
    assert {"node-0", "node-1", "legend"} <= {g.get("id") for g in root.iter()
                                               if g.get("id")}


def test_run_demo_without_log_and_quiet():
    out = io.StringIO()
    assert run_demo(Machine(**SMALL), out, log=False) == 0
    text = out.getvalue()
    assert "boot log" not in text and "__memblock_reserve" not in text
    assert "== memory map ==" in text


def test_run_demo_reports_a_panic():
    out, err = io.StringIO(), io.StringIO()
    assert run_demo(Machine(memory="1 GiB", current_limit=8 * MiB), out, err=err) == 1
    assert "Kernel panic - not syncing" in err.getvalue()


def test_a_panic_with_live_views_still_unmaps(monkeypatch):
    """A panic deep in the per-CPU setup (views of the memory alive in the failing frames)
    surfaces as the panic, and the memory is unmapped."""
    import arena.demo as demo

    mapped = []
    real = demo.PhysicalMemory

    def tracking(*args, **kwargs):
        pm = real(*args, **kwargs)
        mapped.append(pm)
        return pm

    def fail(self):
        raise MemblockPanic("pcpu_setup_first_chunk: forced")

    monkeypatch.setattr(demo, "PhysicalMemory", tracking)
    monkeypatch.setattr(demo._X86Boot, "pcpu_setup_first_chunk", fail)
    with pytest.raises(MemblockPanic, match="forced"):
        boot(Machine(**SMALL))
    assert len(mapped) == 1 and mapped[0].closed
