"""``python -m arena``: the demo, map, replay and physmem subcommands through ``main([...])``."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from arena.__main__ import COMMANDS, main

DATA = Path(__file__).parent / "data"
LOGS = sorted(DATA.glob("*.log"))
SMALL = ["--memory", "1G"]


def test_help_lists_every_command(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in ("demo", "map", "replay", "soak", "physmem"):
        assert name in out
    assert set(COMMANDS) == {"demo", "map", "replay", "soak", "physmem"}


def test_demo_prints_all_sections_and_progress(capsys):
    assert main(["demo", *SMALL]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert out.startswith("memblock-arena demo: x86-64 PC")
    for header in ("memblock=debug boot log", "memblock_dump_all()", "/proc/buddyinfo",
                   "/proc/zoneinfo", "memory map", "summary"):
        assert f"== {header}" in out
    assert "demo: [6/6] hand-over to the buddy allocator" in captured.err


def test_demo_quiet_and_no_log(capsys):
    assert main(["demo", *SMALL, "--no-log"]) == 0
    captured = capsys.readouterr()
    assert "boot log" not in captured.out and "demo: [1/6]" in captured.err
    assert main(["demo", *SMALL, "-q"]) == 0
    captured = capsys.readouterr()
    assert "boot log" not in captured.out and captured.err == ""
    assert "== memory map ==" in captured.out


@pytest.mark.parametrize("direction", ["--top-down", "--bottom-up"])
@pytest.mark.parametrize("nodes", [1, 2, 3, 4])
def test_demo_directions_and_nodes(capsys, direction, nodes):
    assert main(["demo", *SMALL, "-q", "--nodes", str(nodes), direction]) == 0
    out = capsys.readouterr().out
    assert direction.lstrip("-") in out.splitlines()[0]
    rows = re.findall(r"^node (\d+): ", out, re.M)
    assert rows == [str(n) for n in range(nodes)]
    assert len(re.findall(r"^Node \d+, zone +Normal +\d", out, re.M)) == nodes


def test_demo_current_limit_and_kernel_version(capsys):
    assert main(["demo", "-q", "--current-limit", "0x100000000", "--kernel-version", "6.6"]) == 0
    out = capsys.readouterr().out
    assert "current_limit 0x100000000" in out and "kernel 6.6" in out


def test_demo_svg(tmp_path, capsys):
    path = tmp_path / "demo.svg"
    assert main(["demo", *SMALL, "-q", "--svg", str(path)]) == 0
    assert f"SVG memory map written to {path}" in capsys.readouterr().out
    root = ET.fromstring(path.read_text())
    assert any(g.get("id") == "legend" for g in root.iter())


@pytest.mark.parametrize("argv, status, message", [
    (["demo", "--memory", "100M"], 2, "256 MiB"),
    (["demo", "--memory", "2 GB"], 2, "ambiguous"),
    (["demo", "--width", "3"], 2, "--width"),
    (["demo", *SMALL, "--current-limit", "8M"], 1, "Kernel panic"),
    (["demo", *SMALL, "-q", "--svg", "/nonexistent/dir/x.svg"], 2, "cannot write"),
])
def test_demo_errors(capsys, argv, status, message):
    assert main(argv) == status
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["demo", "--nodes", "9"], ["demo", "--nodes", "x"],
                                  ["demo", "--current-limit", "-1"],
                                  ["demo", "--kernel-version", "six"],
                                  ["demo", "--kernel-version", "99.0"],
                                  ["demo", "--bottom-up", "--top-down"]])
def test_demo_bad_options_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error: argument" in err


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_map_of_each_log(capsys, log, tmp_path):
    svg_path = tmp_path / "map.svg"
    assert main(["map", str(log), "--svg", str(svg_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"replay of {log}: allocations reproduced: ")
    rows = [ln for ln in out.splitlines() if ln.startswith("  |")]
    nodes = re.findall(r"^node \d+: ", out, re.M)
    assert len(rows) == len(nodes) >= 1
    assert all(len(r) == 3 + 72 + 1 for r in rows)
    ET.fromstring(svg_path.read_text())


def test_map_of_the_demo_machine(capsys):
    assert main(["map", *SMALL, "--nodes", "3", "--width", "40"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("demo machine: x86-64 PC")
    rows = [ln for ln in out.splitlines() if ln.startswith("  |")]
    assert len(rows) == 3 and all(len(r) == 3 + 40 + 1 for r in rows)


def test_map_from_stdin(monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(LOGS[0].read_text()))
    assert main(["map", "-"]) == 0
    assert capsys.readouterr().out.startswith("replay of <stdin>")


@pytest.mark.parametrize("argv, status, message", [
    (["map", "/nonexistent.log"], 2, "cannot read"),
    (["map", "--width", "2"], 2, "--width"),
    (["map", "--memory", "1K"], 2, "256 MiB"),
    (["map", *SMALL, "--current-limit", "8M"], 1, "Kernel panic"),
])
def test_map_errors(capsys, argv, status, message):
    assert main(argv) == status
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_replay_of_each_log(capsys, log):
    assert main(["replay", str(log)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^allocations reproduced: (\d+)/\1, dumps matched: (\d+)/\2$", out, re.M)


def test_replay_of_a_missing_log(capsys):
    assert main(["replay", "/nonexistent.log"]) == 2


def test_replay_of_the_demo_log(tmp_path, capsys):
    """The demo's boot log is a memblock=debug log like a kernel's: replay reproduces it."""
    from arena.demo import Machine, boot

    with boot(Machine(memory="1 GiB", nodes=2)) as b:
        path = tmp_path / "demo.log"
        path.write_text(b.log_text())
    assert main(["replay", str(path)]) == 0
    assert "no divergence" in capsys.readouterr().out


def test_physmem_tour(capsys):
    assert main(["physmem", "--size", "4 MiB", "--nodes", "1"]) == 0
    assert "closed" in capsys.readouterr().out


def test_python_dash_m_demo():
    proc = subprocess.run([sys.executable, "-m", "arena", "demo", "-q", *SMALL],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "== memory map ==" in proc.stdout
