"""Guard mode (``Arena(debug="guard")``): an access past the end, before the start (with
``guard="start"``) or to a freed block faults at the faulty line, and the fault note names the
allocation. Faulting code runs in a child interpreter (or, through the pytest plugin, in a
forked child): only the child dies."""

from __future__ import annotations

import mmap
import os
import re
import signal
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

import arena.pytest_plugin  # noqa: F401  (imported once: pytester's in-process runs reuse it)
from arena import Arena
from arena.errors import CorruptionError

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
PAGE = mmap.PAGESIZE

PROGRAM = '''
import faulthandler
import numpy as np
from arena import Arena

faulthandler.enable()
a = Arena(1 << 20, debug="guard", guard={side!r})


def make_buffer():
    return a.alloc_array(10, np.float64)


v = make_buffer()
{body}
print("survived")
'''


def run_child(body: str, side: str = "end") -> subprocess.CompletedProcess[str]:
    src = PROGRAM.format(side=side, body=textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                          env=env, timeout=120)


def faulted(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == -signal.SIGSEGV, (run.returncode, run.stdout, run.stderr)
    assert "survived" not in run.stdout
    assert "Fatal Python error: Segmentation fault" in run.stderr
    return run.stderr


def test_overrun_faults_at_the_line():
    err = faulted(run_child('''
        wide = np.lib.stride_tricks.as_strided(v, (11,))
        wide[10] = 1.0                                      # the faulty line
    '''))
    assert re.search(r"arena: invalid access at phys 0x[0-9a-f]+: 0 byte\(s\) past the end "
                     r"of the 80-byte allocation", err)
    assert "allocated at:\n    <string>:11 in make_buffer\n    <string>:14 in <module>" in err
    assert 'File "<string>", line 17 in <module>' in err


def test_underrun_faults_with_guard_start():
    err = faulted(run_child('''
        under = np.lib.stride_tricks.as_strided(v, (2,), (-8,))
        under[1] = 1.0                                      # v[-1]
    ''', side="start"))
    assert "8 byte(s) before the start of the 80-byte allocation" in err
    assert 'File "<string>", line 17 in <module>' in err


def test_write_after_free_faults():
    err = faulted(run_child('''
        a.free(v)
        v[3] = 1.0                                          # the faulty line
    '''))
    assert "use after free, offset 24 of the freed 80-byte allocation" in err
    assert "allocated at:\n    <string>:11 in make_buffer" in err
    assert "freed at:\n    <string>:16 in <module>" in err
    assert 'File "<string>", line 17 in <module>' in err


def test_read_after_free_faults():
    err = faulted(run_child('''
        a.free(v)
        total = float(v[7])                                 # the faulty line
    '''))
    assert "use after free, offset 56 of the freed 80-byte allocation" in err
    assert 'File "<string>", line 17 in <module>' in err


def test_clean_program_survives_and_memory_comes_back():
    run = run_child('''
        a2 = Arena(1 << 20, debug="guard", quarantine=4 * 8192, lifetime="manual")
        for round in range(3):
            views = [a2.alloc(n) for n in (1, 16, 100, 4096, 5000)]
            for x in views:
                x[:] = 7                                    # every byte is usable
            for x in views:
                a2.free(x)
        del views, x
        assert a2.check() == []
        a.free(v)
        del v
        w = a.alloc(16)
        a.free(w)
        del w
        a.close()
        a2.close()
    ''')
    assert run.returncode == 0, run.stderr
    assert "survived" in run.stdout


def test_close_with_live_arrays_makes_freed_pages_usable():
    run = run_child('''
        a.free(v)
        a.close(defer=True)                                 # v still alive: deferred
        v[0] = 1.0                                          # no longer guarded
        assert v[0] == 1.0
    ''')
    assert run.returncode == 0, run.stderr


# -- in-process: layout, gap, checks -----------------------------------------------------------

@pytest.fixture
def guarded():
    with Arena(1 << 22, debug="guard", lifetime="manual") as a:
        yield a


def test_ends_flush_against_the_guard_page(guarded):
    a = guarded
    assert a.guard == "end" and a.debug
    for n in (16, 80, 4096, 5008):
        v = a.alloc(n)
        info = a.info(v)
        assert info.guard_gap == 0 and (info.phys + n) % PAGE == 0
        a.free(v)


def test_aligned_request_keeps_its_alignment_and_reports_the_gap(guarded):
    a = guarded
    v = a.alloc(100, align=64)
    info = a.info(v)
    assert info.phys % 64 == 0 and info.align == 64
    assert info.guard_gap == 28 and (info.phys + 100 + 28) % PAGE == 0
    np.lib.stride_tricks.as_strided(v, (101,))[100] = 1     # in the gap: no fault
    with pytest.raises(CorruptionError, match=r"1 byte\(s\) past its end"):
        a.free(v)                                           # found at free(), like KFENCE
    a.check(repair=True)
    a.free(v)


def test_guard_start_layout(guarded):
    with Arena(1 << 22, debug="guard", guard="start", lifetime="manual") as a:
        v = a.alloc(100)
        info = a.info(v)
        assert info.phys % PAGE == 0 and info.guard_gap == 0
        np.lib.stride_tricks.as_strided(v, (101,))[100] = 1  # past the end: a red zone
        with pytest.raises(CorruptionError, match=r"1 byte\(s\) past its end"):
            a.free(v)
        a.check(repair=True)
        a.free(v)


# -- through the pytest plugin: only the forked child dies ---------------------------------------

def _plugin_args() -> list[str]:
    installed = any(ep.value == "arena.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "arena.pytest_plugin"]


CASES = '''
import numpy as np
import pytest


def make_buffer(arena):
    return arena.alloc_array(10, np.float64)


@pytest.mark.arena(guard=True)
def test_write_after_free(arena):
    v = make_buffer(arena)
    arena.free(v)
    v[3] = 1.0


@pytest.mark.arena(guard=True)
def test_read_after_free(arena):
    v = make_buffer(arena)
    arena.free(v)
    assert v[3] == 0


@pytest.mark.arena(guard="start")
def test_clean_in_child(arena):
    v = make_buffer(arena)
    v[:] = 1
    print("output of the child")
    arena.free(v)


@pytest.mark.arena(guard=True)
def test_fails_in_child(arena):
    assert make_buffer(arena)[0] == 1, "its own assertion"


def test_after_the_faults(arena):
    arena.free(arena.alloc(10))
'''


def _line(text: str) -> int:
    """Line number of ``text`` in the test file pytester writes from :data:`CASES`."""
    return next(i for i, ln in enumerate(CASES.strip().splitlines(), 1) if text in ln)


def test_plugin_guard_fault_fails_only_that_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_guarded=CASES)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    alloc = _line("return arena.alloc_array")
    for name, line in (("test_write_after_free", _line("v[3] = 1.0")),
                       ("test_read_after_free", _line("assert v[3] == 0"))):
        section = out.split(f"_ {name} _", 1)[1].split("\n___", 1)[0]
        assert "forked for guard mode) was killed by SIGSEGV" in section
        assert "use after free, offset 24 of the freed 80-byte allocation" in section
        assert re.search(rf"allocated at:\n +\S*test_guarded.py:{alloc} in make_buffer",
                         section)
        assert re.search(rf"freed at:\n +\S*test_guarded.py:{line - 1} in {name}", section)
        assert re.search(rf'File "\S*test_guarded.py", line {line} in {name}', section)
    assert "its own assertion" in out
    assert "PASSED test_guarded.py::test_clean_in_child" in out
    assert "PASSED test_guarded.py::test_after_the_faults" in out


# -- the fault note's table ------------------------------------------------------------------------

def test_fault_note_names_live_and_freed_blocks():
    from arena.guard import fault_note
    a = Arena(1 << 22, debug="guard", lifetime="manual", quarantine=8192)
    v = a.alloc(32)
    info = a.info(v)
    end = info.address + 32                      # the first byte of the guard page
    note = fault_note(end)
    assert note is not None and note.startswith(
        f"arena: invalid access at phys {info.phys + 32:#x}: 0 byte(s) past the end of the "
        f"32-byte allocation at phys {info.phys:#x}")
    assert "in test_fault_note_names_live_and_freed_blocks" in note
    a.free(v)
    note = fault_note(info.address + 4)
    assert note is not None and "use after free, offset 4 of the freed 32-byte" in note
    assert note.count("in test_fault_note_names_live_and_freed_blocks") == 3   # both stacks
    w = a.alloc(32)                               # pushes v out of the quarantine
    a.free(w)
    assert fault_note(info.address + 4) is None   # gone back: nothing to name
    assert fault_note(0) is None
    del v, w
    a.close()
    assert fault_note(end) is None                # close() forgets its blocks
