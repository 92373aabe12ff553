"""The command line as a new user meets it: usage names, one-line errors, quiet pipes, what
each command says it wrote, and the package metadata behind ``pip install``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arena.cli import main as cli_main

ROOT = Path(__file__).parents[1]
DATA = Path(__file__).parent / "data"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_installed_script_names_itself_in_usage(capsys):
    assert cli_main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: memblock-arena ")


def test_python_dash_m_names_itself_in_usage():
    proc = subprocess.run([sys.executable, "-m", "arena", "--help"], capture_output=True,
                          text=True, timeout=60, env=ENV)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m arena ")


def test_console_script_points_at_the_cli_package():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["memblock-arena"] == "arena.cli:main"
    include = meta["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "arena.*" in include                          # arena.cli is packaged
    assert meta["project"]["license"] == "MIT"          # the SPDX string form, not a table
    dev = " ".join(meta["project"]["optional-dependencies"]["dev"])
    for tool in ("tox", "ruff", "mypy", "pytest", "hypothesis"):
        assert tool in dev


@pytest.mark.parametrize("argv", [["--size", "-5"], ["--size", "lots"], ["--size", "0"],
                                  ["--nodes", "0"], ["--size", "4096", "--nodes", "2"],
                                  ["--size", "100T"]])
def test_physmem_bad_options_print_one_line_and_exit_2(argv, capsys):
    assert cli_main(["physmem", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and err.startswith(("memblock-arena physmem: error:",
                                                      "physmem:"))


@pytest.mark.parametrize("argv", [["demo", "--kernel-version", "99.0"],
                                  ["demo", "--kernel-version", "3.25"],
                                  ["demo", "--kernel-version", "2.4"],
                                  ["replay", "x.log", "--kernel-version", "8.0"]])
def test_kernel_versions_that_do_not_exist_are_refused(argv, capsys):
    assert cli_main(argv) == 2
    assert "no kernel" in capsys.readouterr().err


def test_one_address_type_for_every_command(capsys, tmp_path):
    """``4G`` and ``0x100000000`` mean the same address in ``demo`` and ``replay``."""
    from arena.cli import parser

    p = parser()
    a = p.parse_args(["demo", "--current-limit", "4G"]).current_limit
    b = p.parse_args(["replay", "x", "--current-limit", "4G"]).current_limit
    c = p.parse_args(["replay", "x", "--current-limit", "0x100000000"]).current_limit
    assert a == b == c == 1 << 32


# -- a reader that goes away: `... | head -1` ----------------------------------------------------

PIPED = [
    ["replay", str(DATA / "x86_64-qemu-numa-6.6.41.log"), "-v"],
    ["soak", "--episodes", "1", "--ops", "20", "--seed", "1"],
    ["physmem", "--size", "4M"],
    ["map", "-"],
    ["demo", "--memory", "1G"],
]


@pytest.mark.parametrize("argv", PIPED, ids=lambda a: a[0])
def test_closed_pipe_ends_quietly(argv):
    """Standard output is a pipe whose reader has already gone: the command stops without a
    traceback or an error message, as ``... | head -1`` expects."""
    r, w = os.pipe()
    os.close(r)                      # the reader is gone before the first write
    stdin = open(DATA / "mips32-bmips5200-5.11.log", "rb") if argv == ["map", "-"] else None
    try:
        proc = subprocess.run([sys.executable, "-m", "arena", *argv], stdout=w, stdin=stdin,
                              stderr=subprocess.PIPE, text=True, timeout=120, env=ENV)
    finally:
        os.close(w)
        if stdin is not None:
            stdin.close()
    err = "\n".join(line for line in proc.stderr.splitlines()
                    if not line.startswith(("demo: [", "soak: episode")))   # progress lines
    assert "Traceback" not in err and "Broken pipe" not in err and "BrokenPipe" not in err, err
    assert proc.returncode in (0, 141)


def test_run_command_returns_pipe_status_on_broken_pipe():
    from arena.cli import PIPE_CLOSED, run_command

    def run(_args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    assert run_command(run, None) == PIPE_CLOSED


# -- what the commands say they wrote --------------------------------------------------------------

def test_replay_svg_says_where_it_wrote(tmp_path, capsys):
    path = tmp_path / "m.svg"
    assert cli_main(["replay", str(DATA / "mips32-bmips5200-5.11.log"), "--svg",
                     str(path)]) == 0
    assert f"SVG memory map written to {path}" in capsys.readouterr().out
    assert path.read_text().lstrip().startswith(("<svg", "<?xml"))


def test_a_5_10_log_is_reported_as_the_range_its_names_allow(capsys):
    assert cli_main(["replay", str(DATA / "arm32-hisi-ca9-5.10.log")]) == 0
    settings = next(line for line in capsys.readouterr().out.splitlines()
                    if line.startswith("settings:"))
    assert "kernel=5.0–5.15 " in settings, settings
    assert "kernel=5.15 " not in settings


def test_sizes_print_one_way_in_the_demo(capsys):
    assert cli_main(["demo", "-q", "--memory", "4G"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"\b\d+\.0 [KMGT]iB", out) == []
    assert "4 GiB" in out


def test_render_never_imports_the_log_code():
    """Imports point one way: the log code may hand pieces to the pictures, the pictures never
    read a log (no ``arena.trace*``/``arena.bootlog`` import in ``arena/render*.py``)."""
    offenders = [f"{p.name}: {line.strip()}" for p in sorted((ROOT / "arena").glob("render*.py"))
                 for line in p.read_text().splitlines()
                 if re.match(r"\s*(from|import) arena\.(trace|bootlog|demo|cli)", line)]
    assert offenders == []


def test_a_parametrization_over_nothing_fails_collection(tmp_path):
    """No test run shows ``SKIPPED ... got empty parameter set``: the project's pytest
    configuration turns such a parametrization into a collection error."""
    (tmp_path / "test_empty.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('x', [])\ndef test_a(x):\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
                           str(tmp_path / "test_empty.py")],
                          capture_output=True, text=True, timeout=120, env=ENV, cwd=tmp_path)
    assert proc.returncode != 0
    assert "SKIPPED" not in proc.stdout and "Empty parameter set" in proc.stdout


def test_the_long_profile_reports_each_test_as_it_ends(tmp_path):
    """``HYPOTHESIS_PROFILE=long`` runs for hours: each test is named as it finishes, with
    its duration, instead of one dot."""
    (tmp_path / "test_prop.py").write_text(
        "from hypothesis import given, settings, strategies as st\n\n"
        "@settings(max_examples=3)\n@given(st.integers())\ndef test_prop(x):\n    assert x == x\n")
    env = {**ENV, "HYPOTHESIS_PROFILE": "long"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p",
                           "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull,
                           str(tmp_path / "test_prop.py")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"test_prop\.py::test_prop PASSED \(\d+ s\)", proc.stdout), proc.stdout
