"""``python -m arena physmem``: the tour of the physical memory, and the subcommand frame."""

from __future__ import annotations

import io
import subprocess
import sys

from arena.__main__ import COMMANDS, main
from arena.cli.physmem import physmem_demo


def test_demo_function_reports_what_it_did():
    out = io.StringIO()
    assert physmem_demo(out, size="8 MiB", nodes=2) == 0
    text = out.getvalue()
    assert "mapped 0x800000 bytes" in text
    assert "resident before any write: 0 B" in text
    assert "node 0:" in text and "node 1:" in text
    assert "[0, 0, 0, 0, 0, 0, 0, 0]" in text and "[1, 0, 0, 0, 0, 0, 0, 0]" in text
    assert "0 modulo 2 MiB" in text
    assert "released everything: 0 B resident" in text
    assert text.rstrip().endswith("closed")


def test_main_physmem(capsys):
    assert main(["physmem", "--size", "4 MiB", "--nodes", "1"]) == 0
    assert "mapped 0x400000 bytes" in capsys.readouterr().out


def test_main_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "physmem" in capsys.readouterr().out


def test_main_rejects_unknown_command(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_commands_table_is_extensible():
    assert set(COMMANDS) >= {"demo", "map", "replay", "physmem"}
    help_text, add_args, run = COMMANDS["physmem"]
    assert help_text and callable(add_args) and callable(run)


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "arena", "physmem", "--size", "4 MiB"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "closed" in proc.stdout
