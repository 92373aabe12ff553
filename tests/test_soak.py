"""``python -m arena soak``: the stateful workload at full speed, every check on.

* ``soak --seconds N`` runs episodes of the memblock, arena, arena-debug and buddy workloads
  (:mod:`arena.soak`) for N seconds with ``check()`` and the model comparison after every
  operation, and prints operations per second, peak regions and ``0 invariant violations``;
* a run is reproducible from its seed (episode ``i`` uses ``seed + i``);
* a broken allocator is caught: the first violation is printed with its reproducer
  (``--seed S --episodes 1``) and the operation list, the exit status is 1, and the printed
  command reproduces the same violation;
* bad command-line values are refused by argparse (exit status 2).

A long soak (``--run-slow``) runs for two minutes.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from arena.soak import add_soak_arguments, run_soak, soak_command, soak_main


def _args(*argv: str):
    import argparse

    p = argparse.ArgumentParser()
    add_soak_arguments(p)
    return p.parse_args(list(argv))


def _check_summary(out: str) -> None:
    assert re.search(r"^\d+ operations in [\d.]+ s: [\d,]+ ops/s", out, re.M), out
    assert re.search(r"^peak regions: memblock \d+, arena \d+, arena-debug \d+, buddy \d+$",
                     out, re.M), out
    assert out.rstrip().endswith("0 invariant violations"), out


def test_soak_module_runs_one_second():
    r = subprocess.run([sys.executable, "-m", "arena.soak", "--seconds", "1", "--seed", "11"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    _check_summary(r.stdout)


def test_arena_soak_subcommand_runs_one_second():
    r = subprocess.run([sys.executable, "-m", "arena", "soak", "--seconds", "1", "--seed", "12",
                        "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    _check_summary(r.stdout)


def test_soak_is_reproducible_from_its_seed():
    a = run_soak(0, seed=7, episodes=4, ops_per_episode=60)
    b = run_soak(0, seed=7, episodes=4, ops_per_episode=60)
    assert a.violation is None and b.violation is None
    assert (a.ops, a.episodes, a.peak_regions) == (b.ops, b.episodes, b.peak_regions)
    assert sum(a.episodes.values()) == 4


def test_soak_reports_the_first_violation_with_a_reproducer(monkeypatch):
    """A memblock that forgets to merge neighbours is caught; the printed command reproduces
    the same violation."""
    from arena.memblock import Memblock

    monkeypatch.setattr(Memblock, "_merge_regions", lambda self, t, s, e: None)
    out = io.StringIO()
    rc = soak_command(_args("--seed", "3", "--episodes", "30", "--ops", "100", "--quiet",
                            "--workload", "memblock"), out)
    text = out.getvalue()
    assert rc == 1, text
    first = re.search(r"^1 invariant violation \(episode seed (\d+)\): (.*)$", text, re.M)
    assert first, text
    repro = re.search(r"^reproduce: python -m arena soak (.*)$", text, re.M)
    assert repro and "--episodes 1" in repro.group(1), text
    assert re.search(r"^operations of the failing episode \(\d+\):\n  \w+\(", text, re.M)
    out2 = io.StringIO()
    assert soak_command(_args(*repro.group(1).split(), "--quiet"), out2) == 1
    assert first.group(0) in out2.getvalue()


@pytest.mark.parametrize("argv", [["--seconds", "0"], ["--seconds", "-1"],
                                  ["--seconds", "nan"], ["--seconds", "abc"],
                                  ["--episodes", "0"], ["--ops", "-5"], ["--workload", "x"],
                                  ["--seed", "1.5"]])
def test_soak_refuses_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        soak_main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_long_soak():
    out = io.StringIO()
    assert soak_command(_args("--seconds", "120"), out) == 0, out.getvalue()
    _check_summary(out.getvalue())
